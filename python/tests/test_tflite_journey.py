#!/usr/bin/python3
"""The TFLite journey (examples/tflite-journey) end to end in its --quick form, checked from the
files it leaves (ctest tflite_journey_quick; docs/import.md, "The journey end to end"):

1. the paper's MCUNet exported as a new .tflite and the adapted export both load in Arm NN
   (python3-pyarmnn, CpuRef) and give one 10-class output (int8, or float32 dequantized from the head's int8) per
   test image, of the dtype tinyzo gives;
2. Arm NN's outputs agree with `tinyzo run`'s on the same inputs: at most MAX_LSB apart per value
   and the same top-1 on at least MIN_AGREE of the items (Arm NN is not bit-exact with TFLite
   Micro's reference kernels, which tinyzo is; measured on the full run: README.md there);
3. the adapted .tflite has the original's size and differs from it only inside the data of
   weight / bias buffers of the conv operators train adapted (at most the 4 paper layers), none
   outside any buffer;
4. training helped on validation data, which the schedule never saw: the best epoch's val top-1
   beats the start model's, and the adapted .tflite's val loss (cross-entropy of tinyzo's
   logits) is lower than the original's;
5. the numbers are the same numbers: tinyzo run on the split's inputs scores the original and the
   adapted .tflite exactly as `tinyzo train` reported for the start and the best model (so the
   inputs Arm NN gets are train's, and export -> re-import loses nothing).

Every step is deterministic (seeded, bit-exact kernels, thread-count independent), so a pass or a
failure repeats on every machine; nothing is timed. Exits 77 (skipped) only when pyarmnn cannot be
imported; a missing data directory or binary is a failure.

    /usr/bin/python3 python/tests/test_tflite_journey.py --tinyzo build/release/tinyzo [--keep DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import pyarmnn  # noqa: F401
except ImportError as e:  # only this may skip the test
    print(f"skipped: pyarmnn is not installed ({e}); apt-get install python3-pyarmnn libarmnn-cpuref-backend22")
    sys.exit(77)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))
from tflite_eval import flatbuf  # noqa: E402

MAX_LSB = 8        # per output value, Arm NN vs tinyzo (int8 logits)
MIN_AGREE = 0.9    # fraction of items with the same top-1
MAX_LAYERS = 4     # the paper's layers (--layers paper)

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tinyzo", default=os.environ.get("TINYZO_BIN", os.path.join(REPO, "build", "release", "tinyzo")))
    ap.add_argument("--keep", help="run in this directory and keep it")
    a = ap.parse_args()
    if not os.path.isfile(a.tinyzo):
        print(f"FAIL: {a.tinyzo} is missing")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = a.keep or os.path.join(tmp, "journey")
        r = subprocess.run(["bash", os.path.join(REPO, "examples", "tflite-journey", "run.sh"), "--quick",
                            "--out", out, "--tinyzo", a.tinyzo], capture_output=True, text=True)
        print(r.stdout)
        if r.returncode != 0:
            print(r.stderr[-4000:])
            print(f"FAIL: run.sh --quick exited {r.returncode}")
            return 1
        return verify(out)


def verify(out):
    p = lambda *n: os.path.join(out, *n)  # noqa: E731
    s = json.load(open(p("summary.json")))
    train = json.load(open(p("train.json")))
    labels = {k: np.load(p("split", f"{k}_labels.npy")) for k in ("val", "test")}
    orig, adapted = open(p("mcunet.tflite"), "rb").read(), open(p("adapted.tflite"), "rb").read()

    # 1 + 2: both files ran in Arm NN; its outputs against tinyzo's, recomputed from the raw outputs.
    for m in ("mcunet", "adapted"):
        ya, yt = np.load(p(f"armnn_{m}_test.npy")), np.load(p(f"tinyzo_{m}_test.npy"))
        n = len(labels["test"])
        check(ya.shape == (n, 10) and ya.dtype == yt.dtype, f"{m}.tflite: Arm NN gives {ya.dtype} {ya.shape}, "
              f"tinyzo {yt.dtype} {yt.shape} for {n} test images")
        if ya.shape != yt.reshape(n, -1).shape:
            continue
        lsb = flatbuf.output_lsb(open(p(f"{m}.tflite"), "rb").read())
        if ya.dtype == np.int8:
            d = np.abs(ya.astype(np.int64) - yt.reshape(n, -1).astype(np.int64))
        else:  # float logits dequantized from the head's int8 output: the difference in its LSB
            check(lsb is not None and lsb > 0, f"{m}.tflite: float output dequantized from int8 (LSB {lsb})")
            if not lsb:
                continue
            d = np.rint(np.abs(ya.astype(np.float64) - yt.reshape(n, -1).astype(np.float64)) / lsb).astype(np.int64)
        agree = int((ya.argmax(1) == yt.reshape(n, -1).argmax(1)).sum())
        check(int(d.max()) <= MAX_LSB, f"{m}.tflite: Arm NN within {MAX_LSB} LSB of tinyzo (max {int(d.max())}, "
              f"{int((d != 0).sum())}/{d.size} values differ)")
        check(agree >= MIN_AGREE * n, f"{m}.tflite: same top-1 in Arm NN and tinyzo on {agree}/{n} images "
              f"(>= {MIN_AGREE:.0%})")

    # 3: only weight / bias bytes of at most the trained convs changed.
    check(len(orig) == len(adapted), f"adapted.tflite has the original's size ({len(adapted)} vs {len(orig)} bytes)")
    if len(orig) == len(adapted):
        changed, outside, ops = flatbuf.differing_buffers(orig, adapted)
        wb = flatbuf.weight_and_bias_buffers(orig)
        check(outside == 0, f"no byte changed outside the buffers ({outside})")
        check(len(changed) > 0 and changed <= wb, f"{len(changed)} buffers changed, all weights / biases of conv "
              f"operators ({len(changed - wb)} others)")
        check(1 <= len(ops) <= MAX_LAYERS, f"{len(ops)} operators adapted (1..{MAX_LAYERS}): {ops}")

    # 4: better on validation data.
    m, ad = s["models"]["mcunet"], s["models"]["adapted"]
    check(train["best_val"] > train["val_before"], f"best val top-1 {train['best_val']:.3f} > start "
          f"{train['val_before']:.3f}")
    check(ad["tinyzo_val_loss"] < m["tinyzo_val_loss"], f"val loss {ad['tinyzo_val_loss']:.4f} (adapted) < "
          f"{m['tinyzo_val_loss']:.4f} (original)")

    # 5: tinyzo run on the split's inputs = train's own accuracies.
    nv, nt = len(labels["val"]), len(labels["test"])
    check(m["tinyzo_val_correct"] == round(train["val_before"] * nv) and
          m["tinyzo_test_correct"] == round(train["test_before"] * nt),
          f"original: tinyzo run val {m['tinyzo_val_correct']}/{nv}, test {m['tinyzo_test_correct']}/{nt} = "
          f"train's start model ({train['val_before']:.3f}, {train['test_before']:.3f})")
    check(ad["tinyzo_val_correct"] == round(train["best_val"] * nv) and
          ad["tinyzo_test_correct"] == round(train["test_after"] * nt),
          f"adapted: tinyzo run val {ad['tinyzo_val_correct']}/{nv}, test {ad['tinyzo_test_correct']}/{nt} = "
          f"train's best model ({train['best_val']:.3f}, {train['test_after']:.3f})")
    if failures:
        print(f"FAIL: {len(failures)} check(s) failed")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
