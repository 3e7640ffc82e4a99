#!/usr/bin/env bash
# Instruction counts of the firmware under QEMU (tools/qemu_plugin/insncount.c): instructions per
# MAC of the conv kernels the image runs (armv7em-dsp on Cortex-M4/M7, or ref:: in a build
# configured with CXXFLAGS=-DTINYZO_KERNELS_REF), per forward, per ZO training sample and per
# step, and the time per step on a Cortex-M7 at 216 MHz (STM32F746 class) and 480 MHz (STM32H7 class) under
# the stated assumption of one instruction per cycle (no stalls, no cache misses, no flash wait
# states: a lower bound on a real part, see docs/mcu.md).
#
#   scripts/fw_cost.sh [--infer-only] TINYZO_HOST_BINARY FIRMWARE_BUILD_DIR [OUT_DIR]
#
# FIRMWARE_BUILD_DIR is a configured and built firmware/ (e.g. build-fw/m7 from fw_test.sh);
# OUT_DIR (default FIRMWARE_BUILD_DIR/cost) receives the raw plugin reports and logs.
# Runs (about 2-4 minutes of QEMU):
#   infer   2 clean images on the 256k image: per-forward and per-kernel counts;
#   sparse  the paper's layer set with the paper's queries (25 W + 25 b per WP layer, 50 per NP
#           layer), batch 2, one step: per-sample and per-update counts, measured;
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
model=$fw/model/model.tzm
batch=100

cmake -S "$here/../tools/qemu_plugin" -B "$out/plugin" >/dev/null
cmake --build "$out/plugin" >/dev/null
plugin=$out/plugin/libinsncount.so

"$tool" fw-data --model "$model" -o "$out/clean2.bin" -n 2 >/dev/null
"$tool" fw-data --model "$model" --split train -o "$out/train4.bin" -n 4 >/dev/null

# ranges ELF > FILE: every function of the image as "lo hi mangled-name".
ranges() {
  arm-none-eabi-nm -S --defined-only "$1" | while read -r a s t n; do
    case $t in t | T | W | w) printf '%x %x %s\n' $((16#$a)) $((16#$a + 16#$s)) "$n" ;; esac
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
mark() { awk -v i="$2" '$1 == "mark" && $2 == i { print $3 }' "$out/$1.count"; }
nmarks() { awk '$1 == "mark"' "$out/$1.count" | wc -l; }
# kernel NAME PATTERN: instructions inside functions whose demangled name matches PATTERN.
kernel() {
  awk '$1 == "range" { print $2, $3 }' "$out/$1.count" | c++filt | awk -v p="$2" 'index($0, p) { s += $NF } END { print s + 0 }'
}
calc() { awk "BEGIN { printf \"$1\n\", $2 }"; }

echo "== fw_cost: $(basename "$fw") on $machine; raw reports in $out"

# ---- inference: 2 forwards, marks before each and after the last.
count infer "$fw/tz_256k.elf" infer clean2.bin infer.out n=2
fwd=$(($(mark infer 2) - $(mark infer 1)))
read -r _ macs pw dw cv _ < <(sed -n 's/^MACS per_forward=\([0-9]*\) pointwise=\([0-9]*\) depthwise=\([0-9]*\) conv=\([0-9]*\) other=\([0-9]*\)/x \1 \2 \3 \4 \5/p' "$out/infer.log")
# The kernel table the image runs: armv7em-dsp unless built with -DTINYZO_KERNELS_REF.
ns=ref
(($(arm-none-eabi-nm -C "$fw/tz_256k.elf" | grep -c 'armv7em::pointwise_conv2d_s8'))) && ns=armv7em
k_pw=$(kernel infer "${ns}::pointwise_conv2d_s8")
k_dw=$(kernel infer "${ns}::depthwise_conv2d_s8")
# "(": not the pointwise/depthwise names; the general conv's im2col helper counts with it.
k_cv=$(($(kernel infer "${ns}::conv2d_s8(") + $(kernel infer "${ns}::(anonymous namespace)::stage_window")))
echo "forward (MCUNet-5fps, 128x128): $macs MAC, $fwd instructions: $(calc %.2f "$fwd / $macs") instructions/MAC"
echo "  pointwise conv ($ns): $(calc %.2f "$k_pw / 2 / $pw") instructions/MAC ($pw MAC per forward)"
echo "  depthwise conv ($ns): $(calc %.2f "$k_dw / 2 / $dw") instructions/MAC ($dw MAC)"
echo "  general conv ($ns, the 3x3/2 stem): $(calc %.2f "$k_cv / 2 / $cv") instructions/MAC ($cv MAC)"
echo "  kernels: $(calc %.1f "100 * ($k_pw + $k_dw + $k_cv) / 2 / $fwd") % of the forward"
((infer_only)) && exit 0

# step_parts NAME: marks are step start, one per sample and trainer group, step end; the number of
# groups (trainers) is the one the run's "train:" line reports.
# Prints "begin sample update macs_per_sample".
step_parts() {
  local name=$1 groups n
  groups=$(sed -n 's/^train: .*; \([0-9]*\) trainers\{0,1\}).*/\1/p' "$out/$name.log")
  [[ -n $groups ]] || { echo "fw_cost.sh: no trainer count in $out/$name.log" >&2; exit 1; }
  n=$(nmarks "$name")
  # marks: 0 = step start; 1..2*groups = loads (2 samples); n-1 = after the step
  local m0 m1 m2 mend
  m0=$(mark "$name" 0)
  m1=$(mark "$name" 1)
  m2=$(mark "$name" $((1 + groups)))
  mend=$(mark "$name" $((n - 1)))
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
  echo "  time per step at 1 instruction/cycle: $(calc %.1f "$step / 216e6") s at 216 MHz," \
    "$(calc %.1f "$step / 480e6") s at 480 MHz; 500 steps: $(calc %.1f "500 * $step / 480e6 / 3600") h at 480 MHz"
}

# ---- sparse: the paper's set and queries, measured (on the 1024k image: the 256k one is sized
# for at most 8/8/16 queries; the instruction counts do not depend on the image).
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
