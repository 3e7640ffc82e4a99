#!/usr/bin/env bash
# Checks that a static library (normally libtinyzo_device.a) references no heap, exceptions, RTTI,
# stdio or process-exit symbols: the device library must link into firmware that has none of them.
#
#   scripts/check_device_symbols.sh build/m4f/libtinyzo_device.a [more archives or .o files]
#   scripts/check_device_symbols.sh --self-test      # proves the check fails on bad objects
#
# Reads `nm -A -u` (arm-none-eabi-nm for ARM objects, the host nm otherwise; override with NM=...).
# Allowed: everything not forbidden below, e.g. memcpy/memset/memmove, libm (nearbyintf, expf),
# libgcc and ARM EABI helpers (__aeabi_dmul, __aeabi_ldivmod, __udivsi3), __aeabi_atexit/__dso_handle.
# Exit status: 0 all allowed, 1 forbidden symbols found (listed with the object that references
# them), 2 usage or tool error.
set -euo pipefail

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

# One extended regex per category, matched against the mangled name.
readonly HEAP_RE='^(malloc|calloc|realloc|reallocarray|free|aligned_alloc|posix_memalign|memalign|valloc|pvalloc|strdup|strndup|sbrk|_sbrk|_sbrk_r|_(malloc|calloc|realloc|free|memalign)_r|_Zn[wa].*|_Zd[la].*)$'
readonly EXC_RE='^(__cxa_(allocate_exception|free_exception|throw|rethrow|begin_catch|end_catch|end_cleanup|call_unexpected|get_exception_ptr|current_exception_type|bad_cast|bad_typeid|throw_bad_array_new_length)|__gxx_personality_.*|_Unwind_.*|__aeabi_unwind_cpp_pr[0-9]+|_ZSt[0-9]+__throw_.*|_ZSt9terminatev)$'
readonly RTTI_RE='^(_ZTI.*|_ZTS.*|__dynamic_cast|_ZTVN10__cxxabiv1.*)$'
readonly STDIO_RE='^(v?f?s?n?i?printf|v?as?printf|dprintf|v?f?s?scanf|puts|fputs|fputc|putc|putchar|putw|getc|getchar|fgetc|fgets|gets|ungetc|fwrite|fread|fopen|fdopen|freopen|fclose|fflush|fseeko?|ftello?|rewind|perror|setvbuf|setbuf|remove|rename|tmpfile|tmpnam|stdin|stdout|stderr|_(v?f?s?n?i?printf|v?f?s?scanf|puts|fputs|fputc|putc|putchar|fwrite|fread|fopen|fclose|fflush|fseek|ftell|getc|getchar)_r|__(swbuf|srget|sfvwrite|smakebuf|sflush)_r|__sinit|__assert|__assert_func|__assert_fail|__[a-z]*(printf|scanf|puts|fgets|fread)_chk|_IO_.*|_ZSt4(cout|cerr|clog|cin)|_ZNS[oi].*|_ZStlsI.*|_ZNSt8ios_base4Init.*)$'
readonly EXIT_RE='^(abort|exit|_exit|_Exit|quick_exit)$'

category() {
  local s=$1
  if [[ $s =~ $HEAP_RE ]]; then echo heap
  elif [[ $s =~ $EXC_RE ]]; then echo exceptions
  elif [[ $s =~ $RTTI_RE ]]; then echo rtti
  elif [[ $s =~ $STDIO_RE ]]; then echo stdio
  elif [[ $s =~ $EXIT_RE ]]; then echo exit
  fi
}

# Picks an nm that can read $1 (arm-none-eabi-nm cannot read x86 objects; some host nm builds
# cannot read ARM ones). Prints the tool name.
pick_nm() {
  local f=$1 t
  for t in ${NM:-} arm-none-eabi-nm nm; do
    command -v "$t" >/dev/null 2>&1 || continue
    # nm may exit 0 on an archive whose members it cannot read, so look at what it says, too.
    local err
    if err=$("$t" -A -u "$f" 2>&1 >/dev/null) && [[ $err != *"not recognized"* ]]; then
      echo "$t"
      return 0
    fi
  done
  return 1
}

demangle() {
  if command -v c++filt >/dev/null 2>&1; then c++filt "$1"; else echo "$1"; fi
}

# check_one FILE: prints the report for one archive or object; returns 1 on forbidden symbols.
check_one() {
  local file=$1 nm ar n_objects out
  [[ -f $file ]] || { echo "check_device_symbols: $file: no such file" >&2; return 2; }
  nm=$(pick_nm "$file") || { echo "check_device_symbols: no nm can read $file" >&2; return 2; }
  if [[ $file == *.a ]]; then
    ar=${nm%nm}ar
    command -v "$ar" >/dev/null 2>&1 || ar=ar
    n_objects=$("$ar" t "$file" | grep -c . || true)
  else
    n_objects=1
  fi
  # Symbols one member defines and another uses are not the library's external references.
  local -A defined=() seen=()
  local sym
  while read -r sym; do [[ -n $sym ]] && defined[$sym]=1; done < <("$nm" --defined-only "$file" 2>/dev/null |
    awk 'NF >= 3 { print $NF }')
  # Lines: "lib.a:member.o:   U sym" (archive) or "x.o:   U sym" (object).
  out=$("$nm" -A -u "$file" 2>/dev/null)
  local -a bad=()
  local line where cat
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    sym=${line##* }
    [[ -n ${defined[$sym]:-} ]] && continue
    where=${line%%:*}
    [[ $file == *.a ]] && { where=${line#*:}; where=${where%%:*}; }
    seen[$sym]=1
    cat=$(category "$sym")
    [[ -n $cat ]] && bad+=("$(printf '%-11s %-28s %s' "$cat" "$where" "$sym")")
  done <<<"$out"

  local n_undef=${#seen[@]}
  if ((${#bad[@]} == 0)); then
    echo "check_device_symbols: $file: $n_objects objects, $n_undef undefined symbols, all allowed ($nm)"
    if [[ ${VERBOSE:-0} == 1 && $n_undef -gt 0 ]]; then printf '  %s\n' "${!seen[@]}" | sort; fi
    return 0
  fi
  echo "check_device_symbols: $file: $n_objects objects, $n_undef undefined symbols," \
    "${#bad[@]} forbidden references ($nm):"
  printf '  %-11s %-28s %s\n' category object symbol
  local b
  for b in "${bad[@]}"; do
    printf '  %s  (%s)\n' "$b" "$(demangle "${b##* }")"
  done | sort
  if printf '%s\n' "${bad[@]}" | grep -q ' _Zdl'; then
    echo "  hint: a virtual destructor emits a deleting destructor that calls operator delete;" \
      "make the base destructor protected and non-virtual (objects live in the arena)."
  fi
  if printf '%s\n' "${bad[@]}" | grep -q ' _ZSt[0-9]*__throw_'; then
    echo "  hint: std::__throw_* comes from a standard container or algorithm that can throw" \
      "(vector, string, function, stoi...); use Span and the Arena instead."
  fi
  return 1
}

self_test() {
  local dir cxx flags rc=0
  dir=$(mktemp -d)
  cat >"$dir/good.cc" <<'EOF'
#include <cmath>
#include <cstdint>
#include <cstring>
struct Base { virtual int f(int) const = 0; protected: ~Base() = default; };
struct Impl final : Base { int f(int x) const override { return x * 3; } };
int call(const Base& b, int x) { return b.f(x); }
float good(float* d, const float* s, unsigned n, int64_t a, int64_t b) {
  std::memcpy(d, s, n * sizeof(float));
  std::memset(d, 0, 4);
  return std::nearbyint(s[0]) + float(a / b) + float(double(s[1]) * 2.0) + float(call(Impl(), 2));
}
EOF
  cat >"$dir/heap.cc" <<'EOF'
#include <cstdlib>
void* heap(unsigned n) { return std::malloc(n); }
void unheap(void* p) { std::free(p); }
int* heap_array(unsigned n) { return new int[n]; }
EOF
  cat >"$dir/vdtor.cc" <<'EOF'
struct V { virtual ~V(); virtual int f() { return 1; } };
V::~V() {}  // key function: the vtable, with its deleting destructor, is emitted here
EOF
  cat >"$dir/vec.cc" <<'EOF'
#include <vector>
void vec(std::vector<int>& v, int n) { v.push_back(n); }
EOF
  cat >"$dir/throws.cc" <<'EOF'
int ext(int);
int throws(int x) { if (x < 0) throw x; try { return ext(x); } catch (...) { return 0; } }
EOF
  cat >"$dir/rtti.cc" <<'EOF'
#include <typeinfo>
struct P { virtual ~P() = default; }; struct Q : P {};
const char* rtti(P* p) { return dynamic_cast<Q*>(p) ? typeid(*p).name() : "x"; }
EOF
  cat >"$dir/stdio.cc" <<'EOF'
#include <cstdio>
#include <cstdlib>
void say(int x) { std::printf("%d\n", x); std::puts("x"); if (x == 3) std::abort(); }
EOF
  local -a expect=(malloc _Znaj:_Znam _ZdlPv printf puts abort __cxa_throw __gxx_personality_v0
    __dynamic_cast _ZTI __throw_length_error)
  # Cortex-M4F (hard float) and Cortex-M3 (soft-float: the float code calls __aeabi_fmul and
  # friends, which must pass as libgcc helpers).
  local -a toolchains=("g++")
  command -v arm-none-eabi-g++ >/dev/null 2>&1 && toolchains+=("arm-none-eabi-g++:m4f" "arm-none-eabi-g++:m3")
  local tc
  for tc in "${toolchains[@]}"; do
    cxx=${tc%%:*}
    flags="-std=c++17 -O2 -ffunction-sections -fdata-sections -fno-threadsafe-statics"
    [[ $tc == *:m4f ]] && flags+=" -mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard -mthumb"
    [[ $tc == *:m3 ]] && flags+=" -mcpu=cortex-m3 -mfloat-abi=soft -mthumb"
    local ar=${cxx%g++}ar
    [[ $cxx == g++ ]] && ar=ar
    local o
    for o in good heap vdtor vec stdio; do
      $cxx $flags -fno-exceptions -fno-rtti -c "$dir/$o.cc" -o "$dir/$o.o"
    done
    $cxx $flags -c "$dir/throws.cc" -o "$dir/throws.o"
    $cxx $flags -fno-exceptions -c "$dir/rtti.cc" -o "$dir/rtti.o"
    rm -f "$dir/good.a" "$dir/bad.a"
    "$ar" rcs "$dir/good.a" "$dir/good.o"
    "$ar" rcs "$dir/bad.a" "$dir/good.o" "$dir/heap.o" "$dir/vdtor.o" "$dir/vec.o" "$dir/throws.o" \
      "$dir/rtti.o" "$dir/stdio.o"
    echo "== self-test ($tc): clean archive must pass"
    check_one "$dir/good.a" || { echo "SELF-TEST FAILED: clean archive rejected"; rc=1; }
    if [[ $tc == *:m3 ]] && ! arm-none-eabi-nm -u "$dir/good.o" | grep -q '__aeabi_[fd]'; then
      echo "SELF-TEST FAILED: the soft-float object calls no __aeabi_ float helper (is it soft-float?)"
      rc=1
    fi
    echo "== self-test ($tc): archive with heap/exceptions/RTTI/stdio/abort must fail"
    local report status=0
    report=$(check_one "$dir/bad.a") || status=$?
    echo "$report"
    if ((status != 1)); then
      echo "SELF-TEST FAILED: bad archive gave exit $status, expected 1"
      rc=1
    fi
    local e alt found
    for e in "${expect[@]}"; do
      found=0
      for alt in ${e//:/ }; do grep -q -- "$alt" <<<"$report" && found=1; done
      ((found)) || { echo "SELF-TEST FAILED: $e not reported"; rc=1; }
    done
    grep -q 'good.o' <<<"$report" && { echo "SELF-TEST FAILED: good.o blamed"; rc=1; }
  done
  rm -rf "$dir"
  ((rc == 0)) && echo "check_device_symbols self-test: OK (${toolchains[*]})"
  return $rc
}

(($# >= 1)) || usage
case $1 in
  -h | --help) usage ;;
  --self-test) self_test; exit $? ;;
esac
status=0
for f in "$@"; do
  check_one "$f" || { s=$?; ((s > status)) && status=$s; }
done
exit $status
