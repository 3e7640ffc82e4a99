#!/usr/bin/python3
"""Why whole-network training diverges at eta0: the size of the first SGD step, per layer.

    /usr/bin/python3 python/baselines/step_sizes.py --split DIR [--layers all] [--lr-scale 1] [--batch 100]

On the first batch of the split's training images (eval preprocessing), with every listed conv
trainable, prints per layer the relative step ||eta g|| / ||W|| of FP32 BP (real units) and, for int8
BP and ZO (the QAS integer update of METHOD §3.6, eta g / s_w^2 in LSBs), the relative step, the
fraction of weights that move (|step| >= 0.5 LSB) and the largest step in LSBs.
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from baselines import data as bdata  # noqa: E402
from baselines import qnet, train_bp  # noqa: E402


def first_step(net, split, layers, method, batch, eta):
    lab, x = split["train"]
    model = qnet.QNet(net, layers, method)
    xp = model.prefix(torch.from_numpy(x[:batch]))
    loss = F.cross_entropy(model.forward_from(xp, model.first_trainable), torch.from_numpy(lab[:batch]))
    loss.backward()
    rows = []
    for c in model.trainable_convs():
        g = c.w.grad.double()
        if method == "int8":
            g = g / torch.from_numpy(c.s_w.astype(np.float64)).view(-1, 1, 1, 1) ** 2
        step = eta * g
        rows.append((c.name, tuple(c.w.shape), float(step.norm() / c.w.double().norm()),
                     float((step.abs() >= 0.5).double().mean()), float(step.abs().max())))
    # the same batch's loss after the step (train_bp's update: QAS and rounding for int8)
    train_bp.sgd_step(model, method, eta)
    with torch.no_grad():
        after = F.cross_entropy(model.forward_from(xp, model.first_trainable), torch.from_numpy(lab[:batch]))
    return float(loss), float(after), rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", required=True, help="a tinyzo split directory")
    ap.add_argument("--layers", default="all")
    ap.add_argument("--lr-scale", type=float, default=1.0, help="eta = x * 0.01 B / 256")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    net = bdata.reference.build_network(train_bp.default_model())
    split = bdata.load_split(a.split)
    eta = a.lr_scale * 0.01 * a.batch / 256
    layers = train_bp.layer_names(net, a.layers)
    loss, after32, fp = first_step(net, split, layers, "fp32", a.batch, eta)
    _, after8, q = first_step(net, split, layers, "int8", a.batch, eta)
    print("%s: first batch loss %.3f; after one step with eta %.6g: %.3f (FP32 BP), %.3f (int8 BP)" %
          (a.layers, loss, eta, after32, after8))
    sys.stdout.flush()
    print("relative step ||eta g|| / ||W|| per layer:")
    print("%-14s %-18s %10s %10s %12s %14s" % ("layer", "weight shape", "FP32 rel", "int8 rel", "int8 moved",
                                               "int8 max LSB"))
    for (name, shape, r32, _, _), (_, _, r8, moved, mx) in zip(fp, q):
        print("%-14s %-18s %10.4f %10.4f %11.1f%% %14.1f" % (name, "x".join(map(str, shape)), r32, r8, 100 * moved, mx))


if __name__ == "__main__":
    main()
