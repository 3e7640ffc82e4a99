#!/usr/bin/env bash
# Fault injection for the power-safe weight slots (docs/mcu.md, "Power-safe weights"): cuts the
# emulated MCU's power at many instruction counts inside a slot write, restarts it and checks that
# it comes up with the old weights or the new ones, intact, never a mix, never a fault; then that
# the store takes a new write after the recovery.
#
#   scripts/fw_powercut.sh [options] IMAGE.elf
#
# options: --machine mps2-an386|mps2-an500|mps2-an385 (default mps2-an386), --cuts N (default 40: spread over
# the write, always including every boundary of the header program, the commit), --every-op (one
# cut inside every flash operation of the write, about 2,750 cuts, ~10 min), --work DIR (default a
# temporary directory), --plugin LIB (the insncount plugin; default: built from
# tools/qemu_plugin with the host C compiler), --recover-every K (after every K-th cut, also write
# new weights after the recovery and check the next boot restores them; default 4), --no-recover.
#
# How: the firmware's `persist` mode boots from the slot file, dumps the weights it came up with and
# writes new ones (every weight + 1). The instruction-count plugin (exact=on) records a marker
# before the write, before every flash operation (each 8-byte program unit, each 256-byte erase
# chunk) and after the write's read-back; cut=N ends QEMU before instruction N + 1, leaving the slot
# file as the host wrote it by then. Every cut run starts from the same slot file (A: an older
# record, B: the newest, so the write erases and overwrites A) in a directory of the same name, so
# instruction counts are the same as in the reference run. Exit status 0 when every cut recovered
# to old or new weights (mixed = 0, faults = 0).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
machine=mps2-an386 n_cuts=40 every_op=0 work="" plugin="" recover=1 recover_every=4
while (($#)); do
  case $1 in
    --machine) machine=$2; shift 2 ;;
    --cuts) n_cuts=$2; shift 2 ;;
    --every-op) every_op=1; shift ;;
    --work) work=$2; shift 2 ;;
    --plugin) plugin=$2; shift 2 ;;
    --no-recover) recover=0; shift ;;
    --recover-every) recover_every=$2; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fw_powercut.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
(($# == 1)) || { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
elf=$(realpath "$1")
[[ -f $elf ]] || { echo "fw_powercut.sh: $1: no such file" >&2; exit 2; }
if [[ -z $work ]]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/tinyzo-powercut.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
work=$(realpath "$work")
if [[ -z $plugin ]]; then
  plugin=$work/libinsncount.so
  "${CC:-cc}" -O2 -Wall -shared -fPIC -o "$plugin" "$here/../tools/qemu_plugin/insncount.c"
fi
mark=$(arm-none-eabi-nm "$elf" | awk '$3 == "tz_fw_mark" { print $1 }')
[[ -n $mark ]] || { echo "fw_powercut.sh: no tz_fw_mark in $elf" >&2; exit 2; }

# The job's trainers must fit the image's arena; the persist mode trains nothing, so few queries.
args=(qw=2 qb=2 qnp=4)
qemu() { "$here/fw_qemu.sh" --machine "$machine" --timeout 60 "$@"; }
# boot DIR OUT: a restart without the plugin (what the device does after the power returns).
boot() { (cd "$1" && qemu "$elf" persist store.bin "$2" "${args[@]}"); }

# ---- the starting slot file: A = generation 1 (sequence 1), B = generation 2 (sequence 2).
mkdir -p "$work/setup"
rm -f "$work/setup/store.bin"
(cd "$work/setup" && qemu "$elf" persist store.bin gen0.bin save=1 "${args[@]}" >gen0.log &&
  qemu "$elf" persist store.bin gen1.bin save=1 "${args[@]}" >gen1.log)
cp "$work/setup/store.bin" "$work/base.bin"

# ---- the reference run: the write of generation 3 into A, with a marker count at every flash op.
mkdir -p "$work/run"
cp "$work/base.bin" "$work/run/store.bin"
(cd "$work/run" && qemu --plugin "$plugin,mark=0x$mark,exact=on,out=$work/marks.txt" "$elf" persist store.bin \
  dump.bin save=1 "${args[@]}" >"$work/ref.log" 2>&1) ||
  { cat "$work/ref.log"; echo "fw_powercut.sh: the uncut reference write failed" >&2; exit 1; }
cp "$work/run/dump.bin" "$work/old.bin"  # the weights it booted with: generation 2
boot "$work/run" new.bin >"$work/new.log" && cp "$work/run/new.bin" "$work/new.bin"
cmp -s "$work/old.bin" "$work/new.bin" && { echo "fw_powercut.sh: old and new weights are the same" >&2; exit 1; }
saved=$(grep -o 'SAVED slot .*' "$work/ref.log")
mapfile -t marks < <(awk '$1 == "mark" { print $3 }' "$work/marks.txt")
n_marks=${#marks[@]}
n_ops=$((n_marks - 2))  # markers: before the write, one per flash op, after the read-back
slot_kb=32
n_erase=$((slot_kb * 1024 / 256))
n_header=5  # the 40-byte header in 8-byte units
n_payload=$((n_ops - n_erase - n_header))
((n_payload > 0)) || { echo "fw_powercut.sh: unexpected marker count $n_marks" >&2; exit 1; }
begin=${marks[0]} end=${marks[$((n_marks - 1))]}

# phase N: where in the write instruction count N falls (marker i + 1 precedes flash op i, 1-based).
phase() {
  local n=$1 i
  if ((n < marks[1])); then echo "before erase"; return; fi
  # the last marker at or below n
  local lo=1 hi=$((n_marks - 2)) mid
  while ((lo < hi)); do
    mid=$(((lo + hi + 1) / 2))
    if ((marks[mid] <= n)); then lo=$mid; else hi=$((mid - 1)); fi
  done
  i=$lo
  if ((i <= n_erase)); then echo "erase"
  elif ((i <= n_erase + n_payload)); then echo "payload"
  elif ((i < n_ops)); then echo "header"
  else echo "last header unit, read-back"
  fi
}

# ---- cut points
declare -a cuts=()
lcg=12345
rand_below() { lcg=$(((lcg * 1103515245 + 12345) % 2147483648)); echo $((lcg % $1)); }
if ((every_op)); then
  for ((i = 1; i <= n_ops; ++i)); do
    lo=${marks[i]} hi=${marks[$((i + 1))]}
    cuts+=($((lo + $(rand_below $((hi - lo))))))
  done
else
  # Stratified by flash operation, a point inside each op chosen: the write's start, 6 erase chunks,
  # every boundary of the header program (the commit) and 7 points inside its last unit and the
  # read-back, and the rest spread over the payload units.
  inside_op() { local lo=${marks[$1]} hi=${marks[$(($1 + 1))]}; echo $((lo + $(rand_below $((hi - lo))))); }
  cuts+=("$begin")
  for ((k = 0; k < 6; ++k)); do cuts+=("$(inside_op $((1 + k * n_erase / 6)))"); done
  first_header=$((n_erase + n_payload + 1))
  for ((i = first_header; i <= n_ops + 1; ++i)); do cuts+=("${marks[i]}"); done
  last=${marks[n_ops]}
  for f in 1 2 4 8 16 32 64; do cuts+=($((last + (end - last) * f / 100))); done
  rest=$((n_cuts - ${#cuts[@]}))
  ((rest > 0)) || rest=1
  for ((k = 0; k < rest; ++k)); do cuts+=("$(inside_op $((n_erase + 1 + k * n_payload / rest)))"); done
fi
mapfile -t cuts < <(printf '%s\n' "${cuts[@]}" | sort -n | uniq)

echo "power-cut sweep: $(basename "$elf") on $machine"
echo "write: $saved (over an older record; the newest stays in the other slot)"
echo "window: instructions $begin .. $end ($((end - begin)) instructions): $n_ops flash operations ="
echo "        $n_erase erase chunks of 256 B (8 blocks of 4 KB) + $n_payload payload units + $n_header header units of 8 B"
echo

declare -A by_phase_old=() by_phase_new=()
n=0 cut_ok=0 recovered=0 old=0 new=0 mixed=0 faults=0 rewrites=0 rewrites_tried=0
fail_lines=()
cd "$work/run"
for c in "${cuts[@]}"; do
  n=$((n + 1))
  cp "$work/base.bin" store.bin
  rm -f dump.bin after.bin again.bin
  set +e
  qemu --plugin "$plugin,cut=$c" "$elf" persist store.bin dump.bin save=1 "${args[@]}" >cut.log 2>&1
  rc=$?
  set -e
  ((rc == 86)) && cut_ok=$((cut_ok + 1))
  p=$(phase "$c")
  set +e
  boot "$work/run" after.bin >boot.log 2>&1
  brc=$?
  set -e
  if ((brc != 0)) || grep -q FAULT boot.log; then
    faults=$((faults + 1))
    fail_lines+=("cut $c ($p): restart failed with status $brc: $(tail -n 1 boot.log)")
    continue
  fi
  recovered=$((recovered + 1))
  if cmp -s after.bin "$work/old.bin"; then
    old=$((old + 1))
    by_phase_old[$p]=$((${by_phase_old[$p]:-0} + 1))
  elif cmp -s after.bin "$work/new.bin"; then
    new=$((new + 1))
    by_phase_new[$p]=$((${by_phase_new[$p]:-0} + 1))
  else
    mixed=$((mixed + 1))
    cp store.bin "$work/mixed-$c.bin"
    fail_lines+=("cut $c ($p): restarted with weights that are neither old nor new (store kept: mixed-$c.bin)")
    continue
  fi
  if ((recover && n % recover_every == 0)); then
    # The store takes a new write after the recovery, and the next boot restores exactly it.
    set +e
    qemu "$elf" persist store.bin dump.bin save=1 "${args[@]}" >again.log 2>&1
    arc=$?
    boot "$work/run" again.bin >again-boot.log 2>&1
    set -e
    want=$(sed -n 's/.*SAVED slot . sequence [0-9]*: [0-9]* bytes, weights crc32 \([0-9a-f]*\).*/\1/p' again.log)
    got=$(sed -n 's/.*BOOT restored slot .* weights crc32 \([0-9a-f]*\).*/\1/p' again-boot.log)
    rewrites_tried=$((rewrites_tried + 1))
    if ((arc == 0)) && [[ -n $want && $want == "$got" ]]; then
      rewrites=$((rewrites + 1))
    else
      fail_lines+=("cut $c ($p): the write after the recovery did not come back (saved '$want', booted '$got')")
    fi
  fi
done

printf '%-34s %8s\n' "cut points tried" "$n"
printf '%-34s %8s\n' "power cut inside the write" "$cut_ok"
printf '%-34s %8s\n' "recoveries (restart, exit 0)" "$recovered"
printf '%-34s %8s\n' "old weights (generation 2)" "$old"
printf '%-34s %8s\n' "new weights (generation 3)" "$new"
printf '%-34s %8s\n' "mixed" "$mixed"
printf '%-34s %8s\n' "faults" "$faults"
((recover)) && printf '%-34s %8s\n' "new write after recovery ok" "$rewrites of $rewrites_tried"
echo
printf '%-28s %6s %6s\n' "cut during" old new
for p in "before erase" erase payload header "last header unit, read-back"; do
  printf '%-28s %6s %6s\n' "$p" "${by_phase_old[$p]:-0}" "${by_phase_new[$p]:-0}"
done
for l in "${fail_lines[@]}"; do echo "FAIL: $l"; done
if ((mixed == 0 && faults == 0 && cut_ok == n && rewrites == rewrites_tried)); then
  echo "fw_powercut: OK: every cut came back with the old or the new weights, intact"
  exit 0
fi
echo "fw_powercut: FAILED" >&2
exit 1
