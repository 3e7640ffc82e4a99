#!/usr/bin/python3
"""The numbers of examples/tflite-journey from the files its run.sh wrote into OUT: top-1 and loss of
the original and adapted `.tflite` in tinyzo (`tinyzo train`'s own report and `tinyzo run` on the
split's inputs) and in Arm NN, how far Arm NN's outputs are from tinyzo's, and which bytes the
adapted export changed. Writes OUT/summary.json and prints a table.

    /usr/bin/python3 python/tflite_eval/journey.py OUT
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tflite_eval import flatbuf  # noqa: E402


def logits(y, tflite_bytes):
    """Real-valued logits of a model's outputs (int8 dequantized with the output tensor's scale)."""
    y = y.reshape(len(y), -1)
    if y.dtype == np.int8:
        _, scale, zero = flatbuf.tensor_quantization(tflite_bytes, flatbuf.output_tensor(tflite_bytes))
        return (y.astype(np.float64) - zero) * scale
    return y.astype(np.float64)


def cross_entropy(z, labels):
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(z)), labels.astype(np.int64)].mean())


def top1(y, labels):
    y = y.reshape(len(y), -1)
    return int((np.argmax(y, axis=1) == labels.astype(np.int64)).sum())


def summarize(out):
    p = lambda *n: os.path.join(out, *n)  # noqa: E731
    train = json.load(open(p("train.json")))
    files = {m: open(p(f"{m}.tflite"), "rb").read() for m in ("mcunet", "adapted")}
    labels = {s: np.load(p("split", f"{s}_labels.npy")) for s in ("val", "test")}
    s = {"train": {k: train[k] for k in ("layers", "steps", "val_before", "test_before", "best_val", "best_epoch",
                                          "test_after", "train_seconds") if k in train},
         "images": {k: int(len(v)) for k, v in labels.items()}, "models": {}}
    for m, data in files.items():
        r = {"bytes": len(data)}
        for split in ("val", "test"):
            y = np.load(p(f"tinyzo_{m}_{split}.npy"))
            r[f"tinyzo_{split}_correct"] = top1(y, labels[split])
            r[f"tinyzo_{split}_loss"] = cross_entropy(logits(y, data), labels[split])
        for split in ("val", "test"):  # TensorFlow Lite Micro (run.sh --tflm-driver)
            if os.path.isfile(p(f"tflm_{m}_{split}.npy")):
                y = np.load(p(f"tflm_{m}_{split}.npy")).reshape(len(labels[split]), -1)
                yt = np.load(p(f"tinyzo_{m}_{split}.npy")).reshape(len(labels[split]), -1)
                r[f"tflm_{split}_correct"] = top1(y, labels[split])
                r[f"tflm_{split}_items_bit_exact"] = int((y.view(np.uint8).reshape(len(y), -1) ==
                                                          yt.view(np.uint8).reshape(len(y), -1)).all(axis=1).sum())
        a = json.load(open(p(f"armnn_{m}_test.json")))
        ya = np.load(p(f"armnn_{m}_test.npy"))
        r["armnn_test_correct"] = a["correct"]
        r["armnn_test_loss"] = cross_entropy(logits(ya, data), labels["test"])
        r["armnn_vs_tinyzo"] = a["vs_reference"]
        s["models"][m] = r
    changed, outside, ops = flatbuf.differing_buffers(files["mcunet"], files["adapted"])
    wb = flatbuf.weight_and_bias_buffers(files["mcunet"])
    s["export_diff"] = {"changed_buffers": sorted(changed), "changed_weight_or_bias_buffers": len(changed & wb),
                        "changed_other_buffers": len(changed - wb), "bytes_changed_outside_buffers": outside,
                        "operators_changed": [f"{k} {n}" for k, n in ops]}
    return s


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    out = sys.argv[1]
    s = summarize(out)
    json.dump(s, open(os.path.join(out, "summary.json"), "w"), indent=2)
    nv, nt = s["images"]["val"], s["images"]["test"]
    pct = lambda c, n: f"{100.0 * c / n:.2f} % ({c}/{n})"  # noqa: E731
    t = s["train"]
    print(f"tinyzo train ({t['layers']}, {t['steps']} steps): val {100 * t['val_before']:.2f} % -> best "
          f"{100 * t['best_val']:.2f} % (epoch {t['best_epoch']}), test {100 * t['test_before']:.2f} % -> "
          f"{100 * t.get('test_after', float('nan')):.2f} %")
    print()
    tflm = "tflm_test_correct" in s["models"]["mcunet"]
    print("| model | tinyzo val top-1 | tinyzo val loss | tinyzo test top-1 | " +
          ("TFLM test top-1 (outputs bit-exact with tinyzo: test, val) | " if tflm else "") +
          "Arm NN test top-1 | Arm NN vs tinyzo with Arm NN's PAD: max diff, same top-1 |")
    print("|---|---|---|---|" + ("---|" if tflm else "") + "---|---|")
    for m, r in s["models"].items():
        c = r["armnn_vs_tinyzo"]
        t = (f"{pct(r['tflm_test_correct'], nt)} ({r['tflm_test_items_bit_exact']}/{nt}, "
             f"{r.get('tflm_val_items_bit_exact', 0)}/{nv}) | " if tflm else "")
        print(f"| {m}.tflite | {pct(r['tinyzo_val_correct'], nv)} | {r['tinyzo_val_loss']:.4f} | "
              f"{pct(r['tinyzo_test_correct'], nt)} | {t}{pct(r['armnn_test_correct'], nt)} | "
              f"{c['max_abs_diff']:g} LSB, {c['predictions_agree']}/{c['items']} |")
    d = s["export_diff"]
    print()
    print(f"adapted.tflite vs mcunet.tflite: same size ({s['models']['adapted']['bytes']} bytes); "
          f"{len(d['changed_buffers'])} buffers changed ({d['changed_weight_or_bias_buffers']} weight / bias, "
          f"{d['changed_other_buffers']} other), {d['bytes_changed_outside_buffers']} bytes changed outside buffers; "
          f"operators: {', '.join(d['operators_changed']) or 'none'}")
    print(f"summary: {os.path.join(out, 'summary.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
