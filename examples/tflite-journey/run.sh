#!/usr/bin/env bash
# The user's journey with TensorFlow Lite, end to end (README.md beside this file):
# the paper's MCUNet as a .tflite that a real TFLite runtime (Arm NN) loads, a folder of
# corrupted images, `tinyzo train --model mcunet.tflite --data DIR`, the adapted model exported
# back to .tflite, and both files scored by tinyzo and by Arm NN on the same test images.
#
#   examples/tflite-journey/run.sh [--quick] [--out DIR] [--data-dir DIR] [--tinyzo BIN] [--threads N]
#                                  [--tflm-driver BIN]
#
# --tflm-driver: also score both files with TensorFlow Lite Micro's reference interpreter (the
# tflm_driver of scripts/tflm_crosscheck.sh, built out of tree; docs/import.md), the runtime the
# firmware runs, and count the outputs bit-exact with tinyzo's.
# --quick: a small run for CI (ctest tflite_journey_quick): 1,000 images, a 10 / 10 / 5 per-class
# split, 10 short steps; the full run: the paper's 100 / 10 / 90 split of all 10,000 fog images
# and the schedule chosen on the validation split (README.md). Everything goes to --out (default
# ./tflite-journey, or ./tflite-journey-quick); nothing is written into the repository.
# Needs the data directory (--data-dir, else $TINYZO_DATA, else ../shared/data) and Debian's
# /usr/bin/python3 with numpy and python3-pyarmnn (scripts/setup.sh installs them).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
quick=0
out=""
data_dir=""
tinyzo="${TINYZO_BIN:-$repo/build/release/tinyzo}"
threads=2
tflm="${TINYZO_TFLM_DRIVER:-}"
py=/usr/bin/python3

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="$2"; shift ;;
    --data-dir) data_dir="$2"; shift ;;
    --tinyzo) tinyzo="$2"; shift ;;
    --threads) threads="$2"; shift ;;
    --tflm-driver) tflm="$2"; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] || { [ "$quick" = 1 ] && out=tflite-journey-quick || out=tflite-journey; }
[ -x "$tinyzo" ] || { echo "run.sh: $tinyzo is not an executable (build first, or --tinyzo BIN)" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The corruption and the schedule (see README.md for how the schedule was chosen).
corruption=(--corruption fog --severity 5)
if [ "$quick" = 1 ]; then
  count=(--count 1000)
  split=(--train-per-class 10 --val-per-class 10 --test-per-class 5)
  schedule=(--no-augment --batch 20 --epochs 2 --queries-w 5 --queries-b 5 --queries-np 10 --lr 0.01171875 --baseline mean)
else
  count=()
  split=(--train-per-class 100 --val-per-class 10 --test-per-class 90)
  # Chosen on the validation split (README.md): 10 epochs of the paper's batch 100 with a fifth of
  # its queries, eta0 x 3 and the leave-one-out baseline (issue 13's short-schedule choice, docs/zo-search.md stage 1).
  schedule=(--no-augment --batch 100 --epochs 10 --queries-w 5 --queries-b 5 --queries-np 10 --lr 0.01171875 --baseline mean)
fi

tz() {
  echo "+ tinyzo $*" >&2
  if [ -n "$data_dir" ]; then "$tinyzo" --data-dir "$data_dir" "$@"; else "$tinyzo" "$@"; fi
}
say() { echo "== $*" >&2; }

say "1. the paper's MCUNet in TFLite's integer semantics, exported as a new .tflite"
# --tflite: fixed-point requantization and TFLite op types (the float head becomes an int8
# FULLY_CONNECTED + DEQUANTIZE, its output range calibrated on 1,000 clean CIFAR-10 images);
# --clamp-bias: the checkpoint's dead channels (bias +-2^31) saturate instead of wrapping.
tz convert mcunet-cifar10 --tflite --calib 1000 --clamp-bias -o "$out/mcunet-tfl.tzm"
tz export "$out/mcunet-tfl.tzm" --tflite "$out/mcunet.tflite"

say "2. a folder of corrupted images (one subfolder per class)"
rm -rf "$out/fog5"
tz corrupt "${corruption[@]}" --format png "${count[@]}" --out "$out/fog5"

say "3. the split train uses, and the int8 inputs it evaluates, for the other runtime"
rm -rf "$out/split"
tz split --data "$out/fog5" "${split[@]}" --inputs-for "$out/mcunet.tflite" --out "$out/split"

say "4. adapt the .tflite on the folder"
rm -rf "$out/run"
tz train --model "$out/mcunet.tflite" --data "$out/fog5" "${split[@]}" "${schedule[@]}" \
  --threads "$threads" --no-progress --out "$out/run" --json > "$out/train.json"

say "5. export the adapted model as the original .tflite with new weights and biases"
tz export "$out/run/best.tzm" --tflite "$out/adapted.tflite" --from "$out/mcunet.tflite"

say "6. tinyzo, Arm NN (and TFLM) run both files on the same val / test inputs"
for m in mcunet adapted; do
  for s in val test; do
    tz run --model "$out/$m.tflite" --input "$out/split/${s}_inputs.npy" --output "$out/tinyzo_${m}_${s}.npy" >&2
    if [ -n "$tflm" ]; then
      echo "+ tflm_driver $m.tflite ${s}_inputs.npy (TensorFlow Lite Micro, reference kernels)" >&2
      "$tflm" "$out/$m.tflite" "$out/split/${s}_inputs.npy" "$out/tflm_${m}_${s}.npy" >&2
    fi
  done
  # Arm NN 20.08 fills an int8 PAD with 0, not the zero point: its reference is tinyzo on a copy
  # of the model whose Pad ops do the same (armnn_pads.py); every other operator is TFLite's.
  tz import "$out/$m.tflite" -o "$out/$m.tzm" >&2
  "$py" "$repo/python/tflite_eval/armnn_pads.py" "$out/$m.tzm" "$out/$m-armnn-pads.tzm" >&2
  tz run --model "$out/$m-armnn-pads.tzm" --input "$out/split/test_inputs.npy" \
    --output "$out/tinyzo_armnnpads_${m}_test.npy" >&2
  # Arm NN scores the test split; one process per model (one Arm NN runtime per process).
  echo "+ python/tflite_eval/score.py $m.tflite (Arm NN CpuRef)" >&2
  "$py" "$repo/python/tflite_eval/score.py" "$out/$m.tflite" --inputs "$out/split/test_inputs.npy" \
    --labels "$out/split/test_labels.npy" --reference "$out/tinyzo_armnnpads_${m}_test.npy" \
    --save-outputs "$out/armnn_${m}_test.npy" --json > "$out/armnn_${m}_test.json" 2> >(grep -v "Skipped I" >&2)
done

say "7. summary"
"$py" "$repo/python/tflite_eval/journey.py" "$out"
