#!/usr/bin/env bash
# One firmware test case under QEMU, checked against the host (used by tests/firmware/CMakeLists.txt;
# runnable by hand). Every case prints what it ran and exits non-zero on any mismatch.
#
#   fw_case.sh [options] infer  IMAGE.elf SAMPLES N
#       device logits of the first N samples == host logits (tinyzo fw-ref infer), bit for bit
#   fw_case.sh [options] train  IMAGE.elf SAMPLES key=value...
#       device-trained weights == host run of the same loop, bit for bit; the trained weights
#       exported as a .tzm must pass `tinyzo eval`
#   fw_case.sh [options] guard  IMAGE.elf SAMPLES key=value...
#       train with power-safe weights and the divergence guard (store=, val=, margin= added by the
#       case: fresh slot files): weights, losses and the slot files bitwise identical to the host
#       run; the guard must have restored the best weights at least once; a restart boots from the
#       best record
#   fw_case.sh [options] float-check IMAGE.elf [n=N] [seed=S]
#       the firmware's binary32 digests (arithmetic, conversions, compares, requantization, the
#       trainer's math: firmware/common/fw_floatcheck.h) == `tinyzo fw-floatcheck` on the host
#   fw_case.sh [options] fault  IMAGE.elf fault-stack|fault-flash
#       the MPU must stop the firmware with a MemManage fault report and exit status 99
#   fw_case.sh [options] link-fails BUILD_DIR TARGET
#       building TARGET must fail at link time with the RAM-budget message
#
# options: --tool TINYZO (host binary, required for infer/train), --model MODEL.tzm (what the
# firmware embeds), --machine mps2-an386|mps2-an500|mps2-an385, --work DIR (outputs; default: cwd),
# --timeout SECONDS (QEMU, default 300), --no-eval (train: the model is not a CIFAR-10 model, so the
# exported .tzm is not run through `tinyzo eval`). For infer/train the firmware's MEM line is checked too:
# the stack peak must stay below the stack region, and the job's SRAM peak within the image's
# RAM budget.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tool="" model="" machine=mps2-an386 work=. timeout=300 eval=1
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --no-eval) eval=0; shift; continue ;;
    --tool) tool=$2 ;;
    --model) model=$2 ;;
    --machine) machine=$2 ;;
    --work) work=$2 ;;
    --timeout) timeout=$2 ;;
    *) echo "fw_case.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
(($# >= 2)) || { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
case_name=$1
shift
mkdir -p "$work"
run() { echo "+ $*"; "$@"; }

# check_mem LOG: the firmware's "MEM ..." line against its own budget.
check_mem() {
  local line
  line=$(grep '^MEM ' "$1" | tail -n 1) || { echo "fw_case: no MEM line in the firmware output" >&2; return 1; }
  local -A m=()
  local kv
  for kv in ${line#MEM }; do m[${kv%%=*}]=${kv#*=}; done
  local usable=${m[stack_region]}  # the MPU guard lies below RAM
  echo "memory: job ${m[job]} on ${m[core]}: SRAM peak ${m[peak_sram]} B of ${m[ram_budget]} B budget" \
    "(linked ${m[ram_linked]} B); stack peak ${m[stack_peak]} of ${usable} usable; arena ${m[arena_used]}" \
    "of ${m[arena_reserved]} (engine ${m[engine_arena]} + trainer ${m[trainer_arena]})"
  ((m[stack_peak] < usable)) || { echo "fw_case: stack peak ${m[stack_peak]} >= usable stack $usable" >&2; return 1; }
  ((m[peak_sram] <= m[ram_budget])) || { echo "fw_case: SRAM peak over the budget" >&2; return 1; }
  ((m[ram_linked] <= m[ram_budget])) || { echo "fw_case: linked RAM over the budget" >&2; return 1; }
}

need_tool() { [[ -x $tool && -f $model ]] || { echo "fw_case: $case_name needs --tool and --model" >&2; exit 2; }; }

case $case_name in
  infer)
    need_tool
    elf=$1 samples=$2 n=$3
    tag=$(basename "$elf" .elf)-$machine
    log=$work/infer-$tag.log
    run "$here/fw_qemu.sh" --machine "$machine" --timeout "$timeout" "$elf" infer "$samples" \
      "$work/infer-$tag.device.bin" "n=$n" | tee "$log"
    run "$tool" fw-ref infer "$samples" "$work/infer-$tag.host.bin" "n=$n" --model "$model"
    run "$tool" fw-check "$work/infer-$tag.host.bin" "$work/infer-$tag.device.bin"
    check_mem "$log"
    ;;
  train)
    need_tool
    elf=$1 samples=$2
    shift 2
    tag=$(basename "$elf" .elf)-$machine-$(printf '%s' "$*" | cksum | cut -d' ' -f1)
    log=$work/train-$tag.log
    run "$here/fw_qemu.sh" --machine "$machine" --timeout "$timeout" "$elf" train "$samples" \
      "$work/train-$tag.device.bin" "$@" | tee "$log"
    run "$tool" fw-ref train "$samples" "$work/train-$tag.host.bin" "$@" --model "$model"
    run "$tool" fw-check "$work/train-$tag.host.bin" "$work/train-$tag.device.bin" --model "$model" \
      --export "$work/train-$tag.tzm"
    ((eval)) && run "$tool" eval --model "$work/train-$tag.tzm" -n 20
    check_mem "$log"
    ;;
  guard)
    need_tool
    elf=$1 samples=$2
    shift 2
    tag=$(basename "$elf" .elf)-$machine-guard
    log=$work/$tag.log
    rm -f "$work/$tag.device.slots" "$work/$tag.host.slots"
    samples=$(realpath "$samples") elf=$(realpath "$elf")
    # From the work directory with relative output names: the firmware's command line holds
    # 511 characters and a store= path 95.
    (cd "$work" && run "$here/fw_qemu.sh" --machine "$machine" --timeout "$timeout" "$elf" train "$samples" \
      "$tag.device.bin" "$@" "store=$tag.device.slots") | tee "$log"
    run "$tool" fw-ref train "$samples" "$work/$tag.host.bin" "$@" "store=$work/$tag.host.slots" --model "$model"
    run "$tool" fw-check "$work/$tag.host.bin" "$work/$tag.device.bin" --model "$model"
    cmp "$work/$tag.host.slots" "$work/$tag.device.slots"
    echo "fw_case: slot files bitwise identical ($(stat -c %s "$work/$tag.device.slots") bytes)"
    grep -q "action=restore" "$log" || { echo "fw_case: the divergence guard never restored" >&2; exit 1; }
    best=$(grep "action=save" "$log" | tail -n 1 | sed -n 's/.*weights crc32 \([0-9a-f]*\).*/\1/p')
    # A restart (no training) comes up with the best saved weights.
    (cd "$work" && run "$here/fw_qemu.sh" --machine "$machine" --timeout "$timeout" "$elf" persist "$tag.device.slots" \
      "$tag.boot.bin" $(printf '%s\n' "$@" | grep -E '^(layers|qw|qb|qnp)=')) | tee "$work/$tag.boot.log"
    grep -q "BOOT restored slot .* weights crc32 $best" "$work/$tag.boot.log" ||
      { echo "fw_case: the restart did not restore the best weights ($best)" >&2; exit 1; }
    check_mem "$log"
    echo "fw_case: guard restored $(grep -c action=restore "$log") times; restart came up with the best weights ($best)"
    ;;
  float-check)
    [[ -x $tool ]] || { echo "fw_case: float-check needs --tool" >&2; exit 2; }
    elf=$1
    shift
    device=$("$here/fw_qemu.sh" --machine "$machine" --timeout "$timeout" "$elf" float-check "$@" | grep '^float-check ')
    host=$("$tool" fw-floatcheck "$@")
    echo "device: $device"
    echo "host:   $host"
    [[ -n $device && $device == "$host" ]] || { echo "fw_case: float-check: device and host digests differ" >&2; exit 1; }
    echo "fw_case: float-check: bitwise identical"
    ;;
  fault)
    elf=$1 kind=$2
    set +e
    out=$("$here/fw_qemu.sh" --machine "$machine" --timeout 30 "$elf" "$kind" 2>&1)
    rc=$?
    set -e
    echo "$out"
    [[ $rc == 99 ]] || { echo "fw_case: $kind: exit status $rc, expected 99 (fault handler)" >&2; exit 1; }
    case $kind in
      fault-stack) want="stack overflow" ;;
      fault-flash) want="write to flash" ;;
      *) want="FAULT" ;;
    esac
    grep -q "FAULT MemManage: .*$want" <<<"$out" || { echo "fw_case: no '$want' fault report" >&2; exit 1; }
    echo "fw_case: $kind stopped by the MPU as expected"
    ;;
  link-fails)
    dir=$1 target=$2
    set +e
    out=$(cmake --build "$dir" --target "$target" 2>&1)
    rc=$?
    set -e
    echo "$out" | grep -E "RAM|overflow|budget|error" || true
    [[ $rc != 0 ]] || { echo "fw_case: $target linked, but its arena should not fit its RAM" >&2; exit 1; }
    grep -q "tinyzo: RAM budget exceeded" <<<"$out" ||
      { echo "fw_case: $target failed, but not with the RAM-budget message" >&2; exit 1; }
    echo "fw_case: $target rejected at link time: $(grep -o "region .RAM. overflowed by [0-9]* bytes" <<<"$out" | head -n 1)"
    ;;
  *)
    echo "fw_case.sh: unknown case '$case_name'" >&2
    exit 2
    ;;
esac
