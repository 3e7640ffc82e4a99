#!/usr/bin/python3
"""Back-propagation baselines on the protocol of METHOD §6 (docs/baselines.md).

    /usr/bin/python3 python/baselines/train_bp.py --split DIR --method fp32|int8 [--layers paper|all|NAME,...]
        [--epochs 50] [--batch 100] [--lr 0] [--max-steps 0] [--seed 0] [--out DIR]

DIR holds train.bin / val.bin / test.bin from `tinyzo split`. Inputs: the eval preprocessing for
training too (like `tinyzo train --no-augment`). With --tinyzo BIN the batches are exactly those of
`tinyzo train` with the same --seed: its epoch order (`tinyzo batches --order-only`), and with
--augment its augmented inputs (`tinyzo batches`, identical int8 images, made per epoch). Writes OUT/log.jsonl (start, before, step, epoch,
summary records, like `tinyzo train`) and OUT/summary.json.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from baselines import data as bdata  # noqa: E402
from baselines import qnet  # noqa: E402

PAPER_LAYERS = ["1.4.conv.0", "1.5.conv.0", "1.6.conv.0", "1.7.conv.0"]


def default_model():
    return os.path.join(bdata.reference.default_data_dir(), "models", "original", "mcunet_in1_cifar10.pth")


def layer_names(net, spec):
    if spec == "paper":
        return PAPER_LAYERS
    if spec == "all":
        return [c.name for convs, _ in net.stages for c in convs]
    return spec.split(",")


def cosine_lr(eta0, step, total):
    return eta0 * (1.0 + math.cos(math.pi * step / total)) / 2.0


def accuracy(model, xp, labels, batch=300):
    """Top-1 accuracy as a fraction (like tinyzo's logs) with the exact (index-ordered) float head, on inputs of stage first_trainable."""
    correct = 0
    with torch.no_grad():
        for i in range(0, xp.shape[0], batch):
            lg = model.forward_from(xp[i:i + batch], model.first_trainable, exact=True)
            correct += int((lg.argmax(1) == labels[i:i + batch]).sum())
    return correct / xp.shape[0]


def layer_trust(w, g):
    """The per-layer step normalisation's factor ||W|| / ||g|| (0 for a zero gradient): with it the
    step of every layer is lr * ||W|| in norm, whatever the scale of its gradient (LARS)."""
    gn = float(g.double().norm())
    return float(w.double().norm()) / gn if gn > 0 else 0.0


def rounded(v, rounding, gen):
    """v rounded to integers: "nearest" (half to even) or "stochastic" (floor(v + u), u ~ U[0, 1) from
    `gen`: unbiased, a step below half an LSB still moves on average)."""
    if rounding == "nearest":
        return torch.round(v)
    return torch.floor(v + torch.rand(v.shape, generator=gen, dtype=v.dtype))


def sgd_step(model, method, lr, step_norm="none", rounding="nearest", gen=None, params="all"):
    """fp32: W_f -= lr dL/dW_f (real units). int8 (QAS + integer update, METHOD §3.6):
    W_int <- clamp(rne(W_int - lr g_W / s_w^2)), b_int <- clamp(rne(b_int - lr g_b / (s_x s_w)^2)).
    step_norm "layer": every layer's step (weights and bias) is multiplied by ||W|| / ||g_W|| of its
    weights, in the units it is applied in (real for fp32, LSBs after QAS for int8). rounding: how the
    int8 update rounds (see rounded). params "bias": the weights stay as they are and only the
    biases move (BitFit), by the same rule."""
    moved = 0
    with torch.no_grad():
        for c in model.trainable_convs():
            if method == "fp32":
                t = layer_trust(c.w, c.w.grad) if step_norm == "layer" else 1.0
                if params == "all":
                    c.w -= lr * t * c.w.grad
                c.b -= lr * t * c.b.grad
                continue
            sw = torch.from_numpy(c.s_w.astype(np.float64))
            gw = c.w.grad.double() / (sw.view(-1, 1, 1, 1) ** 2)
            gb = c.b.grad.double() / (float(c.s_x) * sw) ** 2
            t = layer_trust(c.w, gw) if step_norm == "layer" else 1.0
            w_new = (torch.clamp(rounded(c.w.double() - lr * t * gw, rounding, gen), -128, 127) if params == "all"
                     else c.w.double())
            b_new = torch.clamp(rounded(c.b.double() - lr * t * gb, rounding, gen), -2 ** 31, 2 ** 31 - 1)
            moved += int((w_new != c.w.double()).sum()) + int((b_new != c.b.double()).sum())
            c.w.copy_(w_new.float())
            c.b.copy_(b_new.float())
    return moved


def tinyzo_epoch(a, epoch, tmp):
    """(order, inputs or None) of `tinyzo train`'s epoch (0-based) from `tinyzo batches`: the split's
    training-image index at each position, and with --augment the int8 NHWC inputs in that order."""
    prefix = os.path.join(tmp, "epoch%d" % epoch)
    cmd = [a.tinyzo, "batches", "--split", a.split, "--epoch", str(epoch), "--seed", str(a.seed), "--out", prefix]
    cmd += ["--augment"] if a.augment else ["--order-only"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("train_bp: %s failed: %s" % (" ".join(cmd), r.stderr.strip()))
    order = np.load(prefix + ".order.npy")
    x = None
    if a.augment:
        x = np.load(prefix + ".inputs.npy")
        os.remove(prefix + ".inputs.npy")
    return order, x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", required=True, help="directory of tinyzo split")
    ap.add_argument("--method", choices=["fp32", "int8"], required=True)
    ap.add_argument("--layers", default="paper", help="paper | all | comma list of conv names")
    ap.add_argument("--model", default=None)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.0, help="0: 0.01 * B / 256")
    ap.add_argument("--step-norm", choices=["none", "layer"], default="none",
                    help="layer: per-layer step normalisation, each layer moves lr * ||W|| per step (LARS)")
    ap.add_argument("--rounding", choices=["nearest", "stochastic"], default="nearest",
                    help="int8: how the integer update rounds (stochastic: unbiased, seeded by --seed)")
    ap.add_argument("--params", choices=["all", "bias"], default="all",
                    help="what trains in the chosen layers: weights and biases, or the biases only (BitFit)")
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images of each split (smoke)")
    ap.add_argument("--tinyzo", default="", help="tinyzo binary: train on tinyzo train's batches (order, augmentation)")
    ap.add_argument("--augment", action="store_true", help="with --tinyzo: tinyzo's training augmentation")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.augment and not a.tinyzo:
        ap.error("--augment needs --tinyzo (the augmented inputs are tinyzo's, bit for bit)")
    if a.tinyzo and a.limit:
        ap.error("--limit and --tinyzo exclude each other (tinyzo's order covers the whole split)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    t_start = time.time()
    net = bdata.reference.build_network(a.model or default_model())
    layers = layer_names(net, a.layers)
    model = qnet.QNet(net, layers, a.method)
    split = bdata.load_split(a.split)
    xs, ys = {}, {}
    for part, (lab, x) in split.items():
        if a.limit:
            lab, x = lab[:a.limit], x[:a.limit]
        ys[part] = torch.from_numpy(lab)
        # With the eval preprocessing the frozen prefix is a fixed function of the image: run it once.
        xs[part] = model.prefix(torch.from_numpy(x))
    n = len(ys["train"])
    steps_per_epoch = -(-n // a.batch)
    total = a.max_steps or a.epochs * steps_per_epoch
    eta0 = a.lr or 0.01 * a.batch / 256
    log = open(os.path.join(a.out, "log.jsonl"), "w")

    def emit(rec):
        log.write(json.dumps(rec) + "\n")
        log.flush()

    config = dict(vars(a), lr0=eta0, total_steps=total, layers=layers, batches="tinyzo" if a.tinyzo else "numpy",
                  trainable_params=sum(c.w.numel() + c.b.numel() for c in model.trainable_convs()))
    emit({"type": "start", "config": config, "prefix_seconds": time.time() - t_start})
    # The start model is the integer network (in 'fp32' form the trainable convs compute in float,
    # which may flip an image): measure it with the integer form of the same layers.
    start = model if a.method == "int8" else qnet.QNet(net, layers, "int8")
    val0, test0 = accuracy(start, xs["val"], ys["val"]), accuracy(start, xs["test"], ys["test"])
    del start
    emit({"type": "before", "val_acc": val0, "test_acc": test0})
    best_val, best_epoch, best = -1.0, 0, None  # fractions, as in tinyzo's log
    rng = np.random.default_rng(a.seed)
    gen = torch.Generator().manual_seed(a.seed)  # stochastic rounding's draws
    step, epoch, t_train = 0, 0, 0.0
    tmp = tempfile.mkdtemp(prefix="train_bp-") if a.tinyzo else None
    while step < total:
        epoch += 1
        x_train, y_train = xs["train"], ys["train"]
        if a.tinyzo:
            order, x_epoch = tinyzo_epoch(a, epoch - 1, tmp)
            if x_epoch is not None:  # augmented: this epoch's inputs, already in tinyzo's order
                with torch.no_grad():
                    x_train = model.prefix(torch.from_numpy(x_epoch.transpose(0, 3, 1, 2).copy()))
                y_train = ys["train"][torch.from_numpy(order.astype(np.int64))]
                order = torch.arange(n)
            else:
                order = torch.from_numpy(order.astype(np.int64))
        else:
            order = torch.from_numpy(rng.permutation(n))
        for b in range(steps_per_epoch):
            if step >= total:
                break
            t0 = time.time()
            idx = order[b * a.batch:(b + 1) * a.batch]
            lr = cosine_lr(eta0, step, total)
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model.forward_from(x_train[idx], model.first_trainable), y_train[idx])
            loss.backward()
            moved = sgd_step(model, a.method, lr, a.step_norm, a.rounding, gen, a.params)
            dt = time.time() - t0
            t_train += dt
            emit({"type": "step", "step": step, "epoch": epoch, "loss": float(loss), "lr": lr,
                  "moved": moved, "seconds": dt, "train_seconds": t_train})
            step += 1
        v = accuracy(model, xs["val"], ys["val"])
        if v > best_val:  # strictly better: the earliest epoch wins a tie
            best_val, best_epoch = v, epoch
            best = [p.detach().clone() for p in model.parameters()]
        emit({"type": "epoch", "epoch": epoch, "steps": step, "val_acc": v, "best_val": best_val,
              "best_epoch": best_epoch})
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    if best is not None:
        with torch.no_grad():
            for p, q in zip(model.parameters(), best):
                p.copy_(q)
    test = accuracy(model, xs["test"], ys["test"])
    summary = {"type": "summary", "method": "bp-" + a.method, "test_before": test0, "test_after": test,
               "val_before": val0, "best_val": best_val, "best_epoch": best_epoch, "steps": step,
               "train_seconds": t_train, "wall_seconds": time.time() - t_start}
    emit(summary)
    log.close()
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("%s %s: test %.2f%% -> %.2f%% (best val %.0f%% at epoch %d), %d steps, %.1f s" %
          (summary["method"], a.layers, 100 * test0, 100 * test, 100 * best_val, best_epoch, step, summary["wall_seconds"]))
    return summary


if __name__ == "__main__":
    main()
