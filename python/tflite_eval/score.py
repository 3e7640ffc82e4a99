#!/usr/bin/python3
"""Top-1 of a `.tflite` in Arm NN (CpuRef) on int8 inputs and labels written by
`tinyzo split --inputs-for MODEL` (the very inputs `tinyzo train` measures its accuracy on), and,
given `tinyzo run`'s outputs on the same inputs, how far the two runtimes are apart.

    /usr/bin/python3 python/tflite_eval/score.py model.tflite --inputs split/test_inputs.npy \
        --labels split/test_labels.npy [--reference tinyzo_y.npy] [--save-outputs y.npy] [--json]

Prints `Arm NN CpuRef model.tflite: top-1 71.11% (640/900)` (and with --reference: the largest
output difference in LSB, how many outputs differ, and how many predictions agree). Exit status 1
with one line on stderr when a file is missing or Arm NN refuses the model."""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def compare(outputs, reference, lsb=None):
    """Arm NN's outputs against another runtime's on the same inputs (same shapes). Differences are in
    LSB of the model's last int8 result: the values themselves for int8 outputs, float differences
    divided by `lsb` (flatbuf.output_lsb) and rounded for a dequantized output; raw float
    differences when lsb is None."""
    a = outputs.reshape(len(outputs), -1)
    b = reference.reshape(len(reference), -1)
    if a.shape != b.shape:
        raise ValueError(f"outputs {a.shape} vs reference {b.shape}")
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        d = np.abs(a.astype(np.int64) - b.astype(np.int64))
    elif lsb:
        d = np.rint(np.abs(a.astype(np.float64) - b.astype(np.float64)) / lsb).astype(np.int64)
    else:
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    from tflite_eval.armnn_runner import top1
    pa, pb = top1(a), top1(b)
    return {
        "max_abs_diff": float(d.max()),
        "values_differing": int((d != 0).sum()),
        "values": int(d.size),
        "items_with_any_difference": int((d.max(axis=1) != 0).sum()),
        "predictions_agree": int((pa == pb).sum()),
        "items": int(len(a)),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tflite")
    ap.add_argument("--inputs", required=True, help="int8 [N, ...] (tinyzo split --inputs-for)")
    ap.add_argument("--labels", required=True, help="[N] class indices")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N items")
    ap.add_argument("--reference", help="another runtime's outputs on the same inputs (tinyzo run --output)")
    ap.add_argument("--save-outputs", help="write Arm NN's outputs [N, ...] as .npy")
    ap.add_argument("--json", action="store_true", help="print JSON")
    a = ap.parse_args(argv)
    for f in (a.tflite, a.inputs, a.labels, a.reference):
        if f and not os.path.isfile(f):
            print(f"score: error: {f}: no such file", file=sys.stderr)
            return 1
    try:
        import pyarmnn  # noqa: F401
    except ImportError as e:
        print(f"score: error: pyarmnn is not installed ({e}); apt-get install python3-pyarmnn "
              "libarmnn-cpuref-backend22, and run /usr/bin/python3", file=sys.stderr)
        return 1
    from tflite_eval.armnn_runner import ArmnnModel, top1

    xs, labels = np.load(a.inputs), np.load(a.labels)
    if len(xs) != len(labels):
        print(f"score: error: {len(xs)} inputs but {len(labels)} labels", file=sys.stderr)
        return 1
    if a.limit:
        xs, labels = xs[:a.limit], labels[:a.limit]
    try:
        model = ArmnnModel(a.tflite)
    except RuntimeError as e:
        print(f"score: error: {e}", file=sys.stderr)
        return 1
    if int(np.prod(model.input_shape)) != int(np.prod(xs.shape[1:])):
        print(f"score: error: {a.tflite} takes {model.input_shape}, the inputs are {xs.shape[1:]}", file=sys.stderr)
        return 1
    ys = model.run_all(xs)
    pred = top1(ys)
    correct = int((pred == labels.astype(np.int64)).sum())
    result = {"model": a.tflite, "runtime": "Arm NN CpuRef", "items": int(len(xs)), "correct": correct,
              "top1": correct / len(xs) if len(xs) else 0.0, "output_dtype": str(ys.dtype),
              "output_shape": list(model.output_shape)}
    if a.save_outputs:
        np.save(a.save_outputs, ys)
    if a.reference:
        ref = np.load(a.reference)
        if a.limit:
            ref = ref[:a.limit]
        from tflite_eval import flatbuf
        result["vs_reference"] = compare(ys, ref, flatbuf.output_lsb(open(a.tflite, "rb").read()))
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"Arm NN CpuRef {a.tflite}: top-1 {100 * result['top1']:.2f}% ({correct}/{len(xs)})")
    if a.reference:
        c = result["vs_reference"]
        print(f"  vs {a.reference}: max |diff| {c['max_abs_diff']:g} LSB, {c['values_differing']}/{c['values']} "
              f"values differ ({c['items_with_any_difference']}/{c['items']} items), "
              f"predictions agree on {c['predictions_agree']}/{c['items']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
