#!/usr/bin/env bash
# Configures and builds the firmware for emulated cores, then runs its QEMU tests
# (tests/firmware/CMakeLists.txt): Cortex-M4F on mps2-an386, Cortex-M7 on mps2-an500 and Cortex-M3
# (no FPU, no DSP extension) on mps2-an385.
#
#   scripts/fw_test.sh TINYZO_HOST_BINARY [BUILD_ROOT [CORE...]]
#
# BUILD_ROOT default: build-fw (each core builds in BUILD_ROOT/CORE); CORE: m4f, m7, m3, or one of
# them with -fixed (the model converted to fixed-point requantization at build time,
# TINYZO_FW_REQUANT=fixed; its bit-exactness cases only) or -fused (the engine with fused row-band
# blocks, TINYZO_FW_FUSE=ON; its bit-exactness cases only). Default: m4f m7, the cores of the ctest
# case firmware_qemu; firmware_qemu_m3 runs m3 m3-fixed.
#
# The host binary imports the model from the data directory ($TINYZO_DATA or ../shared/data) and
# is the reference the device is compared with. Needs arm-none-eabi-gcc + newlib and
# qemu-system-arm (scripts/setup.sh installs them). Exit status: 0 when every case passed.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(($# >= 1)) || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
tool=$(realpath "$1")
root=$(realpath -m "${2:-$src/build-fw}")
shift $(($# >= 2 ? 2 : 1))
cores=("$@")
((${#cores[@]})) || cores=(m4f m7)
for core in "${cores[@]}"; do
  base=${core%-fixed}
  case ${base%-fused} in m4f | m7 | m3) ;; *) echo "fw_test.sh: unknown core '$core' (m4f, m7, m3[-fixed|-fused])" >&2; exit 2 ;; esac
done
[[ -x $tool ]] || { echo "fw_test.sh: $1 is not an executable" >&2; exit 2; }
for t in arm-none-eabi-g++ qemu-system-arm cmake; do
  command -v "$t" >/dev/null || { echo "fw_test.sh: $t not found (scripts/setup.sh installs it)" >&2; exit 2; }
done
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
jobs=$(nproc 2>/dev/null || echo 2)

status=0
for core in "${cores[@]}"; do
  dir=$root/$core
  echo "==== firmware $core: configure + build ($dir)"
  # -U: a build directory made by an older checkout must not keep stale image lists.
  cmake -S "$src/firmware" -B "$dir" "${gen[@]}" -U 'TINYZO_FW_*' \
    -DCMAKE_TOOLCHAIN_FILE="$src/cmake/arm-none-eabi.cmake" -DTINYZO_MCU="cortex-$(base=${core%-fixed}; echo "${base%-fused}")" \
    -DTINYZO_FW_FUSE="$([[ $core == *-fused ]] && echo ON || echo OFF)" \
    -DTINYZO_FW_REQUANT="$([[ $core == *-fixed ]] && echo fixed || echo float)" \
    -DTINYZO_HOST_TOOL="$tool" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "==== firmware $core: QEMU tests"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" || status=1
done
exit $status
