#!/usr/bin/python3
"""A NEW .tflite written by `tinyzo export` (no --from) checked by an independent loader: the
paper's MCUNet-CIFAR-10, converted with `tinyzo convert --tflite --clamp-bias --calib 1000` and
exported, runs in Debian's Arm NN 20.08 (python3-pyarmnn, CpuRef backend) on N CIFAR-10 test
images (docs/import.md, "Export to TFLite").

Arm NN is not bit-exact with TensorFlow Lite Micro (its CpuRef kernels requantize in float), and
Arm NN 20.08 has one known deviation that matters here: its PAD fills int8 tensors with 0, where
TensorFlow Lite (and TFLM) fill with the tensor's zero point. The export inserts 5 PADs (the
paper's stride-2 convs pad k/2 on both sides, which TFLite's SAME does not), whose inputs have
zero point -128, so Arm NN runs a different network there. The check therefore compares Arm NN
with `tinyzo run` on the re-imported export whose 5 Pad ops fill with 0 (Arm NN's behaviour; a
.tzm edit of the pad value, CRC recomputed): every other operator, weight, scale and option of
the exported file must agree within TOL LSB of the int8 logits. The real export's outputs
(`tinyzo run` of the .tflite, TFLM's semantics) are printed beside Arm NN's for reference.

    /usr/bin/python3 python/tests/test_tflite_newexport_armnn.py --tinyzo build/release/tinyzo [--n 50]

Exits 77 (ctest: skipped) only when pyarmnn cannot be imported; a missing data directory or
binary is a failure. Measured (200 images): max 7 LSB, argmax agreement 192 / 200.
"""

import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
sys.path.insert(0, os.path.join(REPO, "python"))

try:
    import pyarmnn  # noqa: F401
except ImportError as e:  # only this import may skip the test
    print(f"skipped: pyarmnn is not installed ({e}); apt-get install python3-pyarmnn")
    sys.exit(77)

import reference as R  # noqa: E402  (tests/reference: CIFAR-10 reading, the eval preprocessing)
from tflite_eval.armnn_runner import ArmnnModel  # noqa: E402

TOL_LSB = 10           # measured max 7 over 200 images
MIN_AGREEMENT = 0.90   # argmax agreement with the pad-0 tinyzo run (measured 0.96)
K_PAD = 12             # OpType::kPad
PAD_VALUE_PARAM = 8    # its params[kPadValue]


def data_dir():
    return os.environ.get("TINYZO_DATA") or os.path.join(REPO, "..", "shared", "data")


def pad_value_zero(src, dst):
    """Copies a .tzm with every Pad op's fill value set to 0 (docs/format.md: header 64 bytes, op
    records 104 bytes, params at +56) and the CRC recomputed. Returns how many Pad ops."""
    b = bytearray(open(src, "rb").read())
    (_magic, _vmaj, _vmin, hsize, fsize, _crc, _n_t, _t_off, n_o, o_off) = struct.unpack_from("<IHHIIIIIII", b, 0)
    assert fsize == len(b)
    n = 0
    for k in range(n_o):
        rec = o_off + 104 * k
        if struct.unpack_from("<H", b, rec + 32)[0] == K_PAD:
            struct.pack_into("<i", b, rec + 56 + 4 * PAD_VALUE_PARAM, 0)
            n += 1
    struct.pack_into("<I", b, 16, zlib.crc32(bytes(b[hsize:])) & 0xFFFFFFFF)
    open(dst, "wb").write(bytes(b))
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tinyzo", default=os.environ.get("TINYZO_BIN", os.path.join(REPO, "build", "release", "tinyzo")))
    ap.add_argument("--n", type=int, default=50, help="CIFAR-10 test images (from the first)")
    a = ap.parse_args()
    if not os.path.isfile(a.tinyzo):
        print(f"FAIL: {a.tinyzo} is missing")
        return 1
    if not os.path.isfile(os.path.join(data_dir(), "cifar10", "test_batch.bin.gz")):
        print(f"FAIL: the CIFAR-10 test batch is missing under {data_dir()} (set $TINYZO_DATA)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        p = lambda n: os.path.join(tmp, n)  # noqa: E731

        def tz(*args):
            r = subprocess.run([a.tinyzo, *args], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"FAIL: tinyzo {' '.join(args)}: {r.stderr.strip()}")
            return r.stdout

        out = tz("convert", "mcunet-cifar10", "--tflite", "--clamp-bias", "--calib", "1000", "-o", p("m.tzm"))
        scale = float(re.search(r"output scale ([0-9.eE+-]+)", out).group(1))
        print(tz("export", p("m.tzm"), "--tflite", p("m.tflite")).strip())

        labels, images = R.load_cifar10(data_dir(), 0, a.n)
        x = R.preprocess(images)  # int8 [n, 128, 128, 3], the eval preprocessing (docs/data.md)
        np.save(p("x.npy"), x)
        tz("run", "--model", p("m.tflite"), "--input", p("x.npy"), "--output", p("y.npy"))
        y_tz = np.load(p("y.npy"))
        tz("import", p("m.tflite"), "-o", p("r.tzm"))
        n_pads = pad_value_zero(p("r.tzm"), p("r0.tzm"))
        tz("run", "--model", p("r0.tzm"), "--input", p("x.npy"), "--output", p("y0.npy"))
        y_tz0 = np.load(p("y0.npy"))

        y_an = ArmnnModel(p("m.tflite")).run_all(x[:a.n])
        if y_an.dtype != np.float32 or y_an.shape != y_tz.shape:
            print(f"FAIL: Arm NN output {y_an.dtype} {y_an.shape}, tinyzo run {y_tz.dtype} {y_tz.shape}")
            return 1

        def compare(name, y):
            lsb = np.rint(np.abs(y_an.astype(np.float64) - y.astype(np.float64)) / scale).astype(np.int64)
            agree = int(np.sum(y_an.argmax(1) == y.argmax(1)))
            print(f"Arm NN vs {name}: max {lsb.max()} LSB, mean {lsb.mean():.2f}, argmax agreement {agree} / {a.n}; "
                  f"top-1 {name} {np.mean(y.argmax(1) == labels):.3f}")
            return int(lsb.max()), agree

        print(f"Arm NN top-1 {np.mean(y_an.argmax(1) == labels):.3f} on {a.n} images; {n_pads} PADs in the export")
        compare("tinyzo run (TFLite PAD semantics)", y_tz)
        worst, agree = compare("tinyzo run, Pad filling 0 (Arm NN 20.08's PAD)", y_tz0)
        if n_pads != 5:
            print(f"FAIL: the export has {n_pads} PADs, expected 5 (MCUNet's stride-2 convs)")
            return 1
        if worst > TOL_LSB or agree < MIN_AGREEMENT * a.n:
            print(f"FAIL: Arm NN is {worst} LSB from tinyzo (tolerance {TOL_LSB}), argmax agreement {agree} / {a.n} "
                  f"(at least {MIN_AGREEMENT:.0%})")
            return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
