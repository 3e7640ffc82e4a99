#!/usr/bin/env bash
# Instruction counts of the firmware under QEMU (tools/qemu_plugin/insncount.c): instructions per
# MAC of the conv kernels the image runs (armv7em-dsp on Cortex-M4/M7, ref:: on the Cortex-M3 or
# in a build configured with CXXFLAGS=-DTINYZO_KERNELS_REF), per forward, per ZO training sample
# and per step, and the time per step on a Cortex-M7 at 216 MHz (STM32F746 class) and 480 MHz
# (STM32H7 class), or a Cortex-M3 at 72 MHz (STM32F103 class) and 120 MHz (STM32F2 class), under
# the stated assumption of one instruction per cycle (no stalls, no cache misses, no flash wait
# states: a lower bound on a real part, see docs/mcu.md). On the Cortex-M3 (no FPU) it also
# reports the libgcc soft-float routines: instructions and calls per forward, per sample and per
# step, and which functions call them (the kernels' requantization, the trainer's own float math).
#
#   scripts/fw_cost.sh [--infer-only] TINYZO_HOST_BINARY FIRMWARE_BUILD_DIR [OUT_DIR]
#
# FIRMWARE_BUILD_DIR is a configured and built firmware/ (e.g. build-fw/m7 from fw_test.sh);
# OUT_DIR (default FIRMWARE_BUILD_DIR/cost) receives the raw plugin reports and logs.
# Runs (about 2-4 minutes of QEMU):
#   infer   2 clean images on the 256k image: per-forward and per-kernel counts;
#   sparse  the paper's layer set with the paper's queries (25 W + 25 b per WP layer, 50 per NP
#           layer), batch 2, one step: per-sample and per-update counts, measured (Cortex-M3:
#           at 1 and 2 queries per tensor, batch 1 and 2, extrapolated to 25 like dense: a
#           measured sample would take about 60 G emulated instructions);
#   dense   all 42 convs (WP) at 1 and 2 queries per tensor, batch 2: per-sample and update
#           counts are linear in the query count, so 25 + 25 queries is extrapolated from those.
# A step of the paper's batch B = 100 is begin + B x sample + update. --infer-only: only the first.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
infer_only=0
[[ ${1:-} == --infer-only ]] && { infer_only=1; shift; }
(($# >= 2)) || { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
tool=$(realpath "$1")
fw=$(realpath "$2")
out=$(realpath -m "${3:-$fw/cost}")
mkdir -p "$out"
[[ -f $fw/CMakeCache.txt ]] || { echo "fw_cost.sh: $fw is not a configured firmware build" >&2; exit 2; }
case $(sed -n 's/^TINYZO_MCU:STRING=//p' "$fw/CMakeCache.txt") in
  cortex-m7) machine=mps2-an500 ;;
  cortex-m3) machine=mps2-an385 ;;
  *) machine=mps2-an386 ;;
esac
# Clock rates for the time per step; the Cortex-M3 has no FPU: report soft-float.
clocks=(216 480)
softfloat=0
[[ $machine == mps2-an385 ]] && { clocks=(72 120); softfloat=1; }
model=$fw/model/model.tzm
batch=100

cmake -S "$here/../tools/qemu_plugin" -B "$out/plugin" >/dev/null
cmake --build "$out/plugin" >/dev/null
plugin=$out/plugin/libinsncount.so

"$tool" fw-data --model "$model" -o "$out/clean2.bin" -n 2 >/dev/null
"$tool" fw-data --model "$model" --split train -o "$out/train4.bin" -n 4 >/dev/null

# ranges ELF > FILE: every function of the image as "lo hi mangled-name", with a fourth field F
# for libgcc's soft-float routines (single and double: __aeabi_fmul, __mulsf3, __aeabi_cfcmple,
# __aeabi_i2f, __fixsfsi, __aeabi_dadd...).
readonly SOFTFLOAT_RE='^__(aeabi_([cd]?[fd][a-z0-9]+|u?[il]2[fd])|[a-z]*[sd]f[23]|float(un)?[sd]i[sd]f|fix(uns)?[sd]f[sd]i)$'
ranges() {
  arm-none-eabi-nm -S --defined-only "$1" | while read -r a s t n; do
    case $t in
      t | T | W | w)
        local tag=""
        [[ $n =~ $SOFTFLOAT_RE ]] && tag=" F"
        printf '%x %x %s%s\n' $((16#$a)) $((16#$a + 16#$s)) "$n" "$tag"
        ;;
    esac
  done
}
# count NAME ELF ARGS...: runs the firmware with the plugin; report in $out/NAME.count, log in $out/NAME.log.
count() {
  local name=$1 elf=$2
  shift 2
  ranges "$elf" >"$out/ranges-$(basename "$elf" .elf).txt"
  local mark
  mark=$(arm-none-eabi-nm "$elf" | awk '$3 == "tz_fw_mark" { print $1 }')
  if ! (cd "$out" && "$here/fw_qemu.sh" --machine "$machine" --timeout 1200 \
    --plugin "$plugin,ranges=$out/ranges-$(basename "$elf" .elf).txt,mark=0x$mark,out=$out/$name.count" \
    "$elf" "$@") >"$out/$name.log"; then
    echo "fw_cost.sh: the $name run failed:" >&2
    tail -n 5 "$out/$name.log" >&2
    exit 1
  fi
}
# mark NAME I [COLUMN]: the running count at mark I: instructions (column 3, the default),
# soft-float instructions (4) or soft-float calls (5).
mark() { awk -v i="$2" -v c="${3:-3}" '$1 == "mark" && $2 == i { print $c }' "$out/$1.count"; }
nmarks() { awk '$1 == "mark"' "$out/$1.count" | wc -l; }
# kernel NAME PATTERN: instructions inside functions whose demangled name matches PATTERN.
kernel() {
  awk '$1 == "range" { print $2, $3 }' "$out/$1.count" | c++filt | awk -v p="$2" 'index($0, p) { s += $NF } END { print s + 0 }'
}
calc() { awk "BEGIN { printf \"$1\n\", $2 }"; }
# float_groups NAME: soft-float calls and instructions of run NAME by the kind of function that
# called them, one line "group calls instructions" for each of: engine (the kernels' and ops'
# requantization: ref::, armv7em::), trainer (every other tinyzo:: function: ZoTrainer, the loss,
# tz_expf/tz_logf, the learning-rate schedule), boot (ModelView validation at start-up) and
# firmware (the console's formatting, argmax of the logits, main).
float_groups() {
  awk '$1 == "fcaller" && $2 != "?" { print $3, $4, $2 }' "$out/$1.count" | c++filt |
    awk '{ c = $1; i = $2; $1 = ""; $2 = ""; n = substr($0, 3)
           g = "firmware"
           if (n ~ /::ref::|armv7em::/) g = "engine"
           else if (n ~ /ModelView::/) g = "boot"
           else if (n ~ /^tinyzo::/ && n !~ /^tinyzo::fw::argmax/) g = "trainer"
           calls[g] += c; insns[g] += i }
         END { split("engine trainer boot firmware", order, " ")
               for (k = 1; k <= 4; ++k) printf "%s %.0f %.0f\n", order[k], calls[order[k]], insns[order[k]] }'
}
# group_of NAME GROUP: "calls instructions" of one group.
group_of() { float_groups "$1" | awk -v g="$2" '$1 == g { print $2, $3 }'; }

echo "== fw_cost: $(basename "$fw") on $machine; raw reports in $out"

# ---- inference: 2 forwards, marks before each and after the last.
count infer "$fw/tz_256k.elf" infer clean2.bin infer.out n=2
fwd=$(($(mark infer 2) - $(mark infer 1)))
read -r _ macs pw dw cv _ < <(sed -n 's/^MACS per_forward=\([0-9]*\) pointwise=\([0-9]*\) depthwise=\([0-9]*\) conv=\([0-9]*\) other=\([0-9]*\)/x \1 \2 \3 \4 \5/p' "$out/infer.log")
# The kernel table the image ran: armv7em-dsp on a DSP core unless built with
# -DTINYZO_KERNELS_REF, else ref (the image links both: the kernel self-test calls armv7em).
ns=ref
(($(kernel infer "armv7em::pointwise_conv2d_s8") > 0)) && ns=armv7em
# armv7em: each entry point runs a body templated over the requantization rule
# (pointwise_impl<Rule>, ...; conv_dsp.cc), counted with it.
anon="${ns}::(anonymous namespace)"
k_pw=$(($(kernel infer "${ns}::pointwise_conv2d_s8") + $(kernel infer "$anon::pointwise_impl<")))
k_dw=$(($(kernel infer "${ns}::depthwise_conv2d_s8") + $(kernel infer "$anon::depthwise_impl<") +
  $(kernel infer "$anon::dw_scalar<")))
# "(": not the pointwise/depthwise names; the general conv's im2col helper counts with it.
k_cv=$(($(kernel infer "${ns}::conv2d_s8(") + $(kernel infer "$anon::conv_impl<") +
  $(kernel infer "$anon::stage_window")))
echo "forward (MCUNet-5fps, 128x128): $macs MAC, $fwd instructions: $(calc %.2f "$fwd / $macs") instructions/MAC"
echo "  pointwise conv ($ns): $(calc %.2f "$k_pw / 2 / $pw") instructions/MAC ($pw MAC per forward)"
echo "  depthwise conv ($ns): $(calc %.2f "$k_dw / 2 / $dw") instructions/MAC ($dw MAC)"
echo "  general conv ($ns, the 3x3/2 stem): $(calc %.2f "$k_cv / 2 / $cv") instructions/MAC ($cv MAC)"
echo "  kernels: $(calc %.1f "100 * ($k_pw + $k_dw + $k_cv) / 2 / $fwd") % of the forward"
if ((softfloat)); then
  f_insns=$(($(mark infer 2 4) - $(mark infer 1 4)))
  f_calls=$(($(mark infer 2 5) - $(mark infer 1 5)))
  echo "  soft-float (libgcc, no FPU): $f_insns instructions per forward ($(calc %.1f "100 * $f_insns / $fwd") %)" \
    "in $f_calls calls ($(calc %.1f "$f_insns / $f_calls") instructions per call); without them" \
    "$((fwd - f_insns)) instructions ($(calc %.2f "($fwd - $f_insns) / $macs") per MAC)"
  lost=$(awk '$1 == "fcaller" && $2 == "?" { print $4 }' "$out/infer.count")
  ((lost == 0)) || echo "  note: $lost soft-float instructions reached without a decoded call (callers incomplete)"
  echo "  soft-float calls per forward by caller (the requantization, inlined into each kernel):"
  awk '$1 == "fcaller" && $2 != "?" { print $3, $4, $2 }' "$out/infer.count" | c++filt |
    awk '/::ref::|armv7em::/ { c = $1; i = $2; $1 = ""; $2 = ""; sub(/\(.*/, ""); sub(/^ +/, "")
           printf "    %-40s %10.0f calls %12.0f instructions\n", $0, c / 2, i / 2 }'
  echo "  soft-float calls per routine (first-instruction executions; fall-through entries count too):"
  awk '$1 == "fentry" { printf "    %s %.0f\n", $2, $3 / 2 }' "$out/infer.count" | sort -k2 -n -r | head -n 12
fi
((infer_only)) && exit 0

# step_parts NAME: marks are step start, one per sample and trainer group, step end; the number of
# groups (trainers) is the one the run's "train:" line reports. COLUMN: as for mark.
# Prints "begin sample update macs_per_sample".
step_parts() {
  local name=$1 col=${2:-3} groups n
  groups=$(sed -n 's/^train: .*; \([0-9]*\) trainers\{0,1\}).*/\1/p' "$out/$name.log")
  [[ -n $groups ]] || { echo "fw_cost.sh: no trainer count in $out/$name.log" >&2; exit 1; }
  n=$(nmarks "$name")
  # marks: 0 = step start; 1..2*groups = loads (2 samples); n-1 = after the step
  local m0 m1 m2 mend
  m0=$(mark "$name" 0 "$col")
  m1=$(mark "$name" 1 "$col")
  m2=$(mark "$name" $((1 + groups)) "$col")
  mend=$(mark "$name" $((n - 1)) "$col")
  local sample=$((m2 - m1))
  local update=$((mend - m2 - sample))
  local fmacs
  fmacs=$(sed -n 's/^step 1\/1 .*forward_macs=\([0-9]*\).*/\1/p' "$out/$name.log")
  echo "$((m1 - m0)) $sample $update $((fmacs / 2))"
}
report_step() {
  local label=$1 begin=$2 sample=$3 update=$4 smacs=$5
  local step
  step=$(calc %.0f "$begin + $batch * $sample + $update")
  echo "$label: per sample $sample instructions ($smacs forward MAC: $(calc %.2f "$sample / $smacs") instr/MAC);" \
    "update $update; step of B=$batch: $(calc %.3e "$step") instructions"
  local c1=${clocks[0]} c2=${clocks[1]}
  echo "  time per step at 1 instruction/cycle: $(calc %.1f "$step / ${c1}e6") s at $c1 MHz," \
    "$(calc %.1f "$step / ${c2}e6") s at $c2 MHz; 500 steps: $(calc %.1f "500 * $step / ${c2}e6 / 3600") h at $c2 MHz"
}

# ---- sparse: the paper's set and queries, measured (on the 1024k image: the 256k one is sized
# for at most 8/8/16 queries; the instruction counts do not depend on the image).
if ((softfloat)); then
  # Cortex-M3: q = 1 and 2 queries per WP tensor (2q per NP layer), batch 2 for the per-sample and
  # update split, batch 1 for the callers' split (a run's per-caller totals: batch 2 minus batch 1
  # is one sample); every count is linear in q, so Q = 25 is extrapolated.
  for q in 1 2; do
    for bb in 1 2; do
      count sparse_q${q}_b$bb "$fw/tz_1024k.elf" train train4.bin sparse.out layers=paper steps=1 batch=$bb \
        qw=$q qb=$q qnp=$((2 * q))
    done
  done
  x25() { echo $(($1 + 24 * ($2 - $1))); }
  read -r b1 s1 u1 m1 < <(step_parts sparse_q1_b2)
  read -r b2 s2 u2 m2 < <(step_parts sparse_q2_b2)
  echo "sparse ZO at q=1: per sample $s1 instructions ($m1 MAC), update $u1; q=2: $s2 ($m2 MAC), update $u2"
  s25=$(x25 "$s1" "$s2") u25=$(x25 "$u1" "$u2") m25=$(x25 "$m1" "$m2")
  report_step "sparse ZO (paper set, Q=25+25 WP / 50 NP, extrapolated)" "$b2" "$s25" "$u25" "$m25"
  for col in 4 5; do
    read -r fb1 fs1 fu1 _ < <(step_parts sparse_q1_b2 $col)
    read -r fb2 fs2 fu2 _ < <(step_parts sparse_q2_b2 $col)
    if ((col == 4)); then
      fis=$(x25 "$fs1" "$fs2") fiu=$(x25 "$fu1" "$fu2") fib=$fb2
    else
      fcs=$(x25 "$fs1" "$fs2") fcu=$(x25 "$fu1" "$fu2") fcb=$fb2
    fi
  done
  fstep=$(calc %.0f "$fib + $batch * $fis + $fiu")
  step=$(calc %.0f "$b2 + $batch * $s25 + $u25")
  echo "  soft-float: per sample $fis instructions ($(calc %.1f "100 * $fis / $s25") % of the sample) in $fcs calls;" \
    "update $fiu instructions in $fcu calls; step of B=$batch: $(calc %.3e "$fstep") instructions" \
    "($(calc %.1f "100 * $fstep / $step") % of the step) in $(calc %.3e "$fcb + $batch * $fcs + $fcu") calls"
  # By caller: per sample = batch 2 - batch 1; the rest (step begin, update, start-up) = 2 x batch 1 - batch 2.
  for g in engine trainer; do
    declare -A per=()
    for q in 1 2; do
      read -r c1 i1 < <(group_of sparse_q${q}_b1 $g)
      read -r c2 i2 < <(group_of sparse_q${q}_b2 $g)
      per[cs$q]=$((c2 - c1)) per[is$q]=$((i2 - i1)) per[cr$q]=$((2 * c1 - c2)) per[ir$q]=$((2 * i1 - i2))
    done
    cs=$(x25 "${per[cs1]}" "${per[cs2]}") is=$(x25 "${per[is1]}" "${per[is2]}")
    cr=$(x25 "${per[cr1]}" "${per[cr2]}") ir=$(x25 "${per[ir1]}" "${per[ir2]}")
    # (The engine runs no forward outside the samples: its "rest" is only the sample-to-sample
    # variation of the comparisons' short-circuits, so it is not printed.)
    rest=""
    [[ $g == trainer ]] && rest="; per step outside the samples (begin, update) $cr calls, $ir instructions"
    echo "  soft-float called by the $g: per sample $cs calls, $is instructions$rest; step of B=$batch:" \
      "$(calc %.3e "$batch * $cs + $cr") calls, $(calc %.3e "$batch * $is + $ir") instructions" \
      "($(calc %.2f "100 * ($batch * $is + $ir) / $step") % of the step's instructions)"
    unset per
  done
  echo "  the trainer's soft-float callers in a batch-2 step at q=2 (calls, instructions):"
  awk '$1 == "fcaller" && $2 != "?" { print $3, $4, $2 }' "$out/sparse_q2_b2.count" | c++filt |
    awk '{ c = $1; i = $2; $1 = ""; $2 = ""; n = substr($0, 3)
           if (n ~ /^tinyzo::/ && n !~ /::ref::|armv7em::|ModelView::|fw::argmax/) {
             sub(/\(.*/, "", n); printf "    %-48s %10.0f %12.0f\n", n, c, i } }' | sort -k2 -n -r
  echo "dense ZO: not measured on the Cortex-M3"
  exit 0
fi
count sparse "$fw/tz_1024k.elf" train train4.bin sparse.out layers=paper steps=1 batch=2
read -r b s u m < <(step_parts sparse)
report_step "sparse ZO (paper set, Q=25+25 WP / 50 NP)" "$b" "$s" "$u" "$m"
for f in write_perturbed_weights write_perturbed_bias np_local_gradient for_each_gradient save_boundary restore_boundary; do
  c=$(kernel sparse "$f")
  ((c > 0)) && echo "  in ${f}: $(calc %.1f "100 * $c / ($s * 2 + $u)") % of the step's instructions"
done

# ---- dense: all convs at q = 1 and 2 queries per tensor, extrapolated to 25.
for q in 1 2; do
  count dense_q$q "$fw/tz_1024k.elf" train train4.bin dense.out layers=all steps=1 batch=2 qw=$q qb=$q
done
read -r b1 s1 u1 m1 < <(step_parts dense_q1)
read -r b2 s2 u2 m2 < <(step_parts dense_q2)
s25=$((s1 + 24 * (s2 - s1)))
u25=$((u1 + 24 * (u2 - u1)))
m25=$((m1 + 24 * (m2 - m1)))
echo "dense ZO at q=1: per sample $s1 instructions ($m1 MAC), update $u1; q=2: $s2 ($m2 MAC), update $u2"
report_step "dense ZO (42 convs, Q=25+25, extrapolated)" "$b2" "$s25" "$u25" "$m25"
c=$(kernel dense_q2 "write_perturbed_weights")
echo "  at q=2, writing perturbed weights: $(calc %.1f "100 * $c / ($s2 * 2 + $u2)") % of the step's instructions"
