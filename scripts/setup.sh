#!/usr/bin/env bash
# Installs everything tinyzo needs on Debian 12 (bookworm), with apt only:
# host build and tests, Cortex-M cross toolchain + QEMU, and the Python side (importer, baselines).
#
#   bash scripts/setup.sh            # as root, or as a user with sudo
#
# About 3 GB on a fresh machine, most of it the ARM toolchain's multilib libstdc++ and torch.
set -euo pipefail

packages=(
  # host build and tests
  cmake ninja-build g++ make pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev libstb-dev zlib1g-dev
  # TensorFlow Lite import (host/models/tflite_reader.cc): flatc + the header-only FlatBuffers runtime
  flatbuffers-compiler libflatbuffers-dev
  # coverage-guided fuzzing (fuzz/, docs/fuzzing.md): clang with libFuzzer's runtime
  clang clang-14 libclang-rt-14-dev
  # Cortex-M4F/M7 cross build and emulation
  gcc-arm-none-eabi binutils-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib
  qemu-system-arm
  # model import and baselines: Debian's torch (run it with /usr/bin/python3);
  # Pillow and torchvision for the eval pipeline's bit-exactness test (python/tests/test_preprocess.py)
  python3 python3-numpy python3-torch python3-matplotlib python3-pil python3-torchvision
  # the run queue on a Dask cluster (python/experiments/executors.py; its test starts a local one)
  python3-distributed
  # Arm NN, an independent TFLite loader for the `tinyzo export --tflite` check (python/tests/test_tflite_export_armnn.py)
  python3-pyarmnn libarmnn-cpuref-backend22
  # ... and on Slurm job arrays (its test starts a private single-node Slurm: munged, slurmctld, slurmd)
  slurm-wlm munge
)

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup.sh: run as root or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${packages[@]}"

echo "setup.sh: installed ${#packages[@]} packages:"
cmake --version | head -n 1
g++ --version | head -n 1
arm-none-eabi-g++ --version | head -n 1
qemu-system-arm --version | head -n 1
clang++ --version | head -n 1
/usr/bin/python3 -c 'import numpy, torch, torchvision, PIL
print("numpy", numpy.__version__, "torch", torch.__version__, "torchvision", torchvision.__version__,
      "Pillow", PIL.__version__)'
