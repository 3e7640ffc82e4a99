#!/usr/bin/env bash
# The firmware's memory report (docs/mcu.md): for each image, the linker's RAM and flash, and for
# each job the device's measured SRAM (static data, arena split into engine and trainer, stack
# high-water mark, MPU guard) next to `tinyzo plan`'s prediction; then the planner's figures for
# the other reference models next to MIT's published sparse-BP numbers. Markdown on stdout.
#
#   scripts/fw_report.sh TINYZO_HOST_BINARY FIRMWARE_BUILD_DIR [OUT_DIR]
#
# FIRMWARE_BUILD_DIR: a built firmware/ (build-fw/m4f or build-fw/m7 from fw_test.sh). Takes
# about a minute of QEMU (small jobs: the arena does not depend on the batch, and the stack peak
# not on the query count; the arenas at the paper's query counts come from the sizing probe).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
(($# >= 2)) || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
tool=$(realpath "$1")
fw=$(realpath "$2")
out=$(realpath -m "${3:-$fw/report}")
mkdir -p "$out"
[[ -f $fw/CMakeCache.txt ]] || { echo "fw_report.sh: $fw is not a configured firmware build" >&2; exit 2; }
case $(sed -n 's/^TINYZO_MCU:STRING=//p' "$fw/CMakeCache.txt") in
  cortex-m7) machine=mps2-an500 ;;
  cortex-m3) machine=mps2-an385 ;;
  *) machine=mps2-an386 ;;
esac
model=$fw/model/model.tzm
"$tool" fw-data --model "$model" -o "$out/clean1.bin" -n 1 >/dev/null
"$tool" fw-data --model "$model" --split train -o "$out/train2.bin" -n 2 >/dev/null

q() { (cd "$out" && "$here/fw_qemu.sh" --machine "$machine" --timeout 600 "$@"); }
# mem LOG KEY: a field of the firmware's MEM line.
mem() { sed -n 's/^MEM .*\b'"$2"'=\([0-9a-z-]*\).*/\1/p' "$1" | tail -n 1; }
kb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }
sec() { arm-none-eabi-size -A "$1" | awk -v s="$2" '$1 == s { print $2 + 0 }'; }

echo "## Firmware images ($(basename "$fw"), $machine)"
echo
echo "| image | RAM budget | RAM linked (stack + .data/.bss + arena) | stack (MPU guard below RAM) | arena | flash used (code + model) |"
echo "|---|---|---|---|---|---|"
for img in 256k 1024k; do
  elf=$fw/tz_$img.elf
  stack=$(sec "$elf" .stack) data=$(sec "$elf" .data) bss=$(sec "$elf" .bss) arena=$(sec "$elf" .arena)
  text=$(sec "$elf" .text) rodata=$(sec "$elf" .rodata) modelb=$(sec "$elf" .model) exidx=$(sec "$elf" .ARM.exidx)
  ram=$(printf '%d' "0x$(arm-none-eabi-nm "$elf" | awk '$3 == "__ram_size__" { print $1 }')")
  guard=$(printf '%d' "0x$(arm-none-eabi-nm "$elf" | awk '$3 == "__stack_guard_size__" { print $1 }')")
  linked=$((stack + data + bss + arena))
  flash=$((text + rodata + modelb + exidx + data))
  echo "| tz_$img | $ram B ($(kb "$ram") KB) | $linked B ($(kb "$linked") KB, $((ram - linked)) B free) |" \
    "$stack B ($guard B) | $arena B | $flash B ($((text + rodata)) B + model $modelb B) |"
done
echo

# The jobs, measured on the device.
q "$fw/tz_256k.elf" infer clean1.bin infer.out n=1 >"$out/infer.log"
q "$fw/tz_256k.elf" train train2.bin sparse.out layers=paper steps=1 batch=1 qw=8 qb=8 qnp=16 >"$out/sparse.log"
q "$fw/tz_1024k.elf" train train2.bin dense.out layers=all steps=1 batch=1 qw=1 qb=1 >"$out/dense.log"
q "$fw/tz_probe.elf" size paper.rsp layers=paper >"$out/probe_paper.log"
q "$fw/tz_probe.elf" size dense.rsp layers=all >"$out/probe_dense.log"
probe() { sed -n 's/^ARENA .*\b'"$2"'=\([0-9]*\).*/\1/p' "$out/$1.log"; }

# tinyzo plan's prediction (host: 8-byte pointers in the engine tables).
plan_json() { "$tool" plan --model "$model" --train "$1" --json --no-chart 2>/dev/null; }
plan_json paper >"$out/plan_paper.json"
plan_json all >"$out/plan_all.json"
pj() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }
p_inf=$(pj "$out/plan_paper.json" "j['inference']['total_bytes']")
p_paper=$(pj "$out/plan_paper.json" "j['training']['zo']['total_bytes']")
p_paper_built=$(pj "$out/plan_paper.json" "j['training']['zo_trainer_measured']['total_bytes']")
p_dense=$(pj "$out/plan_all.json" "j['training']['zo']['total_bytes']")

echo "## SRAM of each job on the device (MCUNet-5fps, CIFAR-10, 128x128)"
echo
echo "Measured: static = .data + .bss; arena = engine (activations + tables) + trainer (trainer objects,"
echo "trainable copies, buffers); stack = high-water mark (painted). Peak = their sum (the MPU guard is below RAM)."
echo
echo "| job | image | static | engine arena | trainer arena | stack peak | device peak | tinyzo plan (host) |"
echo "|---|---|---|---|---|---|---|---|"
row() {
  local name=$1 img=$2 log=$3 plan=$4
  local st ea ta sp sg pk
  st=$(mem "$log" data_bss) ea=$(mem "$log" engine_arena) ta=$(mem "$log" trainer_arena)
  sp=$(mem "$log" stack_peak) pk=$(mem "$log" peak_sram)
  echo "| $name | $img | $st | $ea | $ta | $sp | $pk B ($(kb "$pk") KB) | $plan |"
}
row "inference" tz_256k "$out/infer.log" "$p_inf B ($(kb "$p_inf") KB)"
row "sparse ZO, paper set (2 WP + 2 NP), Q=8/8/16" tz_256k "$out/sparse.log" \
  "ZO model $p_paper B; ZoTrainer as built $p_paper_built B"
dense_groups=$(sed -n 's/^train: .*; \([0-9]* trainers\{0,1\}\)).*/\1/p' "$out/dense.log")
row "dense ZO, 42 convs WP, $dense_groups, Q=1+1" tz_1024k "$out/dense.log" "ZO model $p_dense B"
echo
pa=$(probe probe_paper arena) da=$(probe probe_dense arena)
sst=$(mem "$out/sparse.log" data_bss) ssp=$(mem "$out/sparse.log" stack_peak)
dst=$(mem "$out/dense.log" data_bss) dsp=$(mem "$out/dense.log" stack_peak)
sstack=$(mem "$out/sparse.log" stack_region)
echo "At the paper's queries (25 W + 25 b per WP layer, 50 per NP layer; arena from the sizing probe):"
echo "sparse paper set: $pa B arena, $((sst + pa + ssp)) B peak ($(kb $((sst + pa + ssp))) KB), and with"
echo "tz_256k's $sstack B stack region $((sst + pa + sstack)) B linked, $((262144 - sst - pa - sstack)) B under 256 KB;"
echo "dense: $da B arena, $((dst + da + dsp)) B peak ($(kb $((dst + da + dsp))) KB)."
echo

echo "## Planner (tinyzo plan) for the other reference models, paper-style layer set, next to MIT"
echo
echo "| model | inference | ZO sparse (2 WP + 2 NP) | ZoTrainer as built | sparse BP (planner) | MIT tiny-training sparse BP |"
echo "|---|---|---|---|---|---|"
declare -A mit=([mbv2-w0.35]=141 [proxyless-w0.3]=135 [mcunet-5fps]=173)
for m in mbv2-w0.35 proxyless-w0.3 mcunet-5fps; do
  "$tool" plan --model "$m" --train paper --json --no-chart >"$out/plan_$m.json" 2>/dev/null || continue
  f=$out/plan_$m.json
  echo "| $m | $(kb "$(pj "$f" "j['inference']['total_bytes']")") KB |" \
    "$(kb "$(pj "$f" "j['training']['zo']['total_bytes']")") KB |" \
    "$(kb "$(pj "$f" "j['training']['zo_trainer_measured']['total_bytes']")") KB |" \
    "$(kb "$(pj "$f" "j['training']['sparse_bp']['total_bytes']")") KB | ${mit[$m]} KB |"
done
