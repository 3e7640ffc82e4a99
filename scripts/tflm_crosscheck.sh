#!/bin/sh
# Compares `tinyzo run` with TensorFlow Lite Micro's reference interpreter, bit for bit, on a list
# of .tflite models and .npy inputs (a development-time cross-check of exported files; nothing of
# TFLM enters the tinyzo tree: docs/import.md, "Checking exports against TFLM").
#
#   scripts/tflm_crosscheck.sh --tflm DIR --flatbuffers DIR --gemmlowp DIR --ruy DIR \
#       [--build DIR] [--tinyzo BIN] MODEL.tflite:INPUTS.npy [MODEL.tflite:INPUTS.npy ...]
#
# --tflm: a tflite-micro checkout (github.com/tensorflow/tflite-micro); --flatbuffers: a
# google/flatbuffers checkout at the tag TFLM pins (tensorflow/lite/micro/tools/make/
# flatbuffers_download.sh, e.g. v25.9.23); --gemmlowp, --ruy: google/gemmlowp and google/ruy
# checkouts. TFLM's own Makefile downloads these; here they are given, so no network is needed.
# The driver (scripts/tflm_driver: TFLM's reference kernels + a .npy reader / writer) is built
# with CMake in --build (default: a directory under ${TMPDIR:-/tmp}, outside the project).
# INPUTS.npy: the model input's dtype, one input or N inputs along a leading axis (what `tinyzo
# run` takes). For each pair it prints "<model> <inputs>: <exact>/<N> items bit-exact ..." and
# exits 1 when any item differs (2 on a usage or build error).
set -eu

usage() { echo "usage: $0 --tflm DIR --flatbuffers DIR --gemmlowp DIR --ruy DIR [--build DIR] [--tinyzo BIN] MODEL.tflite:INPUTS.npy ..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
tflm= fb= gemm= ruy= build="${TMPDIR:-/tmp}/tinyzo-tflm-crosscheck" tinyzo="$here/../build/release/tinyzo"
while [ $# -gt 0 ]; do
  case "$1" in
    --tflm) tflm=$2; shift 2 ;;
    --flatbuffers) fb=$2; shift 2 ;;
    --gemmlowp) gemm=$2; shift 2 ;;
    --ruy) ruy=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --tinyzo) tinyzo=$2; shift 2 ;;
    -h|--help) usage ;;
    --*) echo "$0: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ -n "$tflm" ] && [ -n "$fb" ] && [ -n "$gemm" ] && [ -n "$ruy" ] && [ $# -gt 0 ] || usage
[ -x "$tinyzo" ] || { echo "$0: $tinyzo is not an executable (--tinyzo)" >&2; exit 2; }
abs() { (cd "$1" && pwd); }

cmake -S "$here/tflm_driver" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DTFLM_DIR="$(abs "$tflm")" -DFLATBUFFERS_DIR="$(abs "$fb")" -DGEMMLOWP_DIR="$(abs "$gemm")" \
  -DRUY_DIR="$(abs "$ruy")" >"$build.cmake.log" 2>&1 || { echo "$0: cmake failed, see $build.cmake.log" >&2; exit 2; }
cmake --build "$build" -j2 >"$build.build.log" 2>&1 || { echo "$0: build failed, see $build.build.log" >&2; exit 2; }
driver="$build/tflm_driver"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for pair in "$@"; do
  model=${pair%%:*} inputs=${pair#*:}
  [ "$model" != "$pair" ] || { echo "$0: '$pair' is not MODEL.tflite:INPUTS.npy" >&2; exit 2; }
  "$tinyzo" run --model "$model" --input "$inputs" --output "$work/tz.npy" >/dev/null
  "$driver" "$model" "$inputs" "$work/tflm.npy" >/dev/null
  /usr/bin/python3 - "$model" "$inputs" "$work/tz.npy" "$work/tflm.npy" <<'EOF' || status=1
import sys
import numpy as np
model, inputs, a, b = sys.argv[1:]
tz, tf = np.load(a), np.load(b)
x = np.load(inputs)
if tz.dtype != tf.dtype or tz.size != tf.size:
    print(f"{model} {inputs}: tinyzo {tz.dtype} {tz.shape} vs TFLM {tf.dtype} {tf.shape}: MISMATCH")
    sys.exit(1)
# Items: the input's leading axis when it holds several inputs, else one.
n = tf.shape[0] if tf.ndim == 2 and tz.size % tf.shape[0] == 0 and x.shape[0] == tf.shape[0] else 1
tz2, tf2 = tz.reshape(n, -1), tf.reshape(n, -1)
exact = int(np.sum(np.all(tz2.view(np.uint8).reshape(n, -1) == tf2.view(np.uint8).reshape(n, -1), axis=1)))
diff = np.abs(tz2.astype(np.float64) - tf2.astype(np.float64)).max()
agree = int(np.sum(tz2.argmax(1) == tf2.argmax(1)))
print(f"{model} {inputs}: {exact}/{n} items bit-exact, max |diff| {diff:g}, argmax agreement {agree}/{n}")
sys.exit(0 if exact == n else 1)
EOF
done
exit $status
