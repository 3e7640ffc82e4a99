#!/usr/bin/env bash
# Issue 11's SRAM targets on the device, one firmware build per model: each model embedded in a
# Cortex-M4F or -M7 image whose linker RAM budget is the target, the engine with fused row-band
# blocks, the trainer taking one layer per pass; then the paper-position set (first pointwise conv
# of blocks 4-7, WP on 4-5, NP on 6-7) at the paper's query counts (25 + 25 WP, 50 NP), 2 steps
# of batch 1, checked bit for bit against the host by scripts/fw_case.sh (which also checks the
# job's SRAM peak against the budget). Prints one MEM line per model. A benchmark, not a test:
# several minutes of cross builds and QEMU.
#
#   scripts/fw_targets.sh TINYZO_HOST_BINARY [BUILD_ROOT [CORE]]      CORE: m4f (default) or m7
#
# Targets (docs/memory.md): mcunet-cifar10 128 KB (<= 128 KB), mbv2-w0.35 140 KB (< 141 KB, MIT's
# sparse BP), proxyless-w0.3 134 KB (< 135 KB). The ImageNet models are trained on CIFAR-10 images
# with labels 0-9 as class indices: a memory and bit-exactness proof, not an accuracy run.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(($# >= 1)) || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
tool=$(realpath "$1")
root=$(realpath -m "${2:-$src/build-fw-targets}")
core=${3:-m4f}
case $core in m4f) machine=mps2-an386 ;; m7) machine=mps2-an500 ;; *) echo "fw_targets.sh: core m4f or m7" >&2; exit 2 ;; esac
[[ -x $tool ]] || { echo "fw_targets.sh: $1 is not an executable" >&2; exit 2; }
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
job="layers=paper+qw=25+qb=25+qnp=50+passes=layer"
status=0
for spec in mcunet-cifar10:128K mbv2-w0.35:140K proxyless-w0.3:134K; do
  model=${spec%%:*} ram=${spec#*:}
  dir=$root/$core-$model
  echo "==== $model on $core: a $ram image ($dir)"
  cmake -S "$src/firmware" -B "$dir" "${gen[@]}" -U 'TINYZO_FW_*' \
    -DCMAKE_TOOLCHAIN_FILE="$src/cmake/arm-none-eabi.cmake" -DTINYZO_MCU="cortex-$core" -DTINYZO_FW_BOARD=mps2 \
    -DTINYZO_FW_FUSE=ON -DTINYZO_FW_MODEL="$model" -DTINYZO_FW_IMAGES="target:$ram:4608:4096:$job" \
    -DTINYZO_FW_OVERSIZED="" -DTINYZO_HOST_TOOL="$tool" >/dev/null
  if ! cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" >"$dir.build.log" 2>&1; then
    echo "$model: the $ram image does not build or link (see $dir.build.log)"
    status=1
    continue
  fi
  "$tool" fw-data --model "$dir/model/model.tzm" --split train -o "$dir/train8.bin" -n 8 >/dev/null
  noeval=()
  [[ $model == mcunet-cifar10 ]] || noeval=(--no-eval)  # a 1000-class model: no CIFAR-10 eval
  if "$src/scripts/fw_case.sh" "${noeval[@]}" --tool "$tool" --model "$dir/model/model.tzm" --machine "$machine" \
      --work "$dir/out" --timeout 600 train "$dir/tz_target.elf" "$dir/train8.bin" \
      layers=paper passes=layer steps=2 batch=1 qw=25 qb=25 qnp=50 lr=0.05 seed=7 >"$dir.case.log" 2>&1; then
    echo "$model: bit-exact with the host; $(grep -h '^MEM ' "$dir"/out/*.log | tail -n 1)"
  else
    echo "$model: FAILED (see $dir.case.log)"
    status=1
  fi
done
exit $status
