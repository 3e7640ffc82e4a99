#!/usr/bin/env bash
# Runs a tinyzo firmware image under QEMU with semihosting (console, command line, host files,
# exit status) and returns the firmware's exit status.
#
#   scripts/fw_qemu.sh [--machine mps2-an386|mps2-an500|mps2-an385] [--timeout SECONDS] \
#                      [--plugin LIB[,k=v...]] IMAGE.elf [ARG...]
#
# ARGs reach the firmware as its command line (argv[0] is the image name); host paths are
# relative to the current directory. --plugin loads a TCG plugin (tools/qemu_plugin) and sends
# its report to stderr. Default machine: $QEMU_MACHINE or mps2-an386 (Cortex-M4F); mps2-an500 is
# the Cortex-M7, mps2-an385 the Cortex-M3 (no FPU). A hung or faulted firmware cannot block: the
# run ends after --timeout seconds (default $QEMU_TIMEOUT or 300) with status 124.
set -euo pipefail

machine=${QEMU_MACHINE:-mps2-an386}
seconds=${QEMU_TIMEOUT:-300}
plugin=""
while (($#)); do
  case $1 in
    --machine) machine=$2; shift 2 ;;
    --timeout) seconds=$2; shift 2 ;;
    --plugin) plugin=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
(($#)) || { echo "fw_qemu.sh: no image given (see --help)" >&2; exit 2; }
elf=$1
shift
[[ -f $elf ]] || { echo "fw_qemu.sh: $elf: no such file" >&2; exit 2; }

# -semihosting-config is a comma-separated option list: a comma inside an argument is doubled.
# The firmware's console goes to stdout (chardev); QEMU's and the plugin's messages to stderr.
cfg="enable=on,target=native,chardev=tzcon,arg=$(basename "$elf")"
for a in "$@"; do
  [[ $a == *" "* ]] && { echo "fw_qemu.sh: argument '$a' contains a space (the firmware splits on spaces)" >&2; exit 2; }
  cfg+=",arg=${a//,/,,}"
done
extra=()
[[ -n $plugin ]] && extra=(-plugin "$plugin" -d plugin)
exec timeout "$seconds" qemu-system-arm -M "$machine" -nographic -monitor none -serial none \
  -chardev stdio,id=tzcon,signal=off -semihosting-config "$cfg" "${extra[@]}" -kernel "$elf"
