#!/usr/bin/python3
"""Cross-check reference.py against a re-implementation of the authors' PyTorch simulation.

The simulation (olokevin/tiny-training, algorithm/quantize/quantized_ops_diff.py) works in torch
float32 on integer-valued NCHW tensors: QuantizedConv2dDiff does F.conv2d(x - z_x, w), + bias,
* effective_scale (float32(float64(s_x) * float64(s_w))), then round(v / s_y) + z_y clamped;
the residual add dequantizes both inputs and requantizes; the pool is round(mean); ScaledLinear
dequantizes and runs F.linear. This script rebuilds that from torch.load of the ORIGINAL file
(torch's own unpickler, so the shared torchzip reader is checked too), feeds it the same int8
inputs as reference.py, and asserts: every int8 layer output identical, logits within 1e-4 and
the same argmax. Exit status 1 on any mismatch.

    /usr/bin/python3 tests/reference/check_authors_sim.py [--model SRC] [--data-dir D] [--n 200]
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402

torch.set_num_threads(2)
LOGIT_TOL = 1e-4


def _t(v):
    return v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=torch.float32)


class SimConv:
    """QuantizedConv2dDiff.forward followed by _TruncateActivationRange (activation None)."""

    def __init__(self, name, weight, bias, scale_w, scale_x, zero_x, scale_y, zero_y, stride, groups):
        self.name = name
        self.weight = weight.float()
        self.bias = bias.float()
        self.scale_w, self.scale_x, self.zero_x = scale_w.float(), _t(scale_x).float(), _t(zero_x).float()
        self.scale_y, self.zero_y = _t(scale_y).float(), _t(zero_y).float()
        self.stride, self.groups = stride, groups
        self.padding = weight.shape[-1] // 2

    def __call__(self, x):
        x = x.round() - self.zero_x
        out = F.conv2d(x, self.weight.round(), None, self.stride, self.padding, 1, self.groups)
        out = out.round() + self.bias.view(1, -1, 1, 1)
        effective_scale = (self.scale_x.to(torch.float64) * self.scale_w.to(torch.float64)).to(torch.float32)
        out = out * effective_scale.view(1, -1, 1, 1)
        return ((out / self.scale_y).round() + self.zero_y).clamp(-128, 127)


class SimAdd:
    """_QuantizedElementwiseAddFunc + the block's _TruncateActivationRange."""

    def __init__(self, name, s1, z1, s2, z2, s_y, z_y):
        self.name = name
        self.s1, self.z1, self.s2, self.z2 = (_t(v).float() for v in (s1, z1, s2, z2))
        self.s_y, self.z_y = _t(s_y).float(), _t(z_y).float()

    def __call__(self, x1, x2):
        out = (x1.round() - self.z1) * self.s1 + (x2.round() - self.z2) * self.s2
        return ((out / self.s_y).round() + self.z_y).clamp(-128, 127)


def build_from_pth(state, arch):
    """Stages [(convs, add)], head callable on the pooled NCHW tensor, head name."""
    def conv(prefix, stride, in_c):
        g = lambda k: state[prefix + "." + k]  # noqa: E731
        if prefix + ".keep_mask" in state:
            assert bool((g("keep_mask") == 1).all()), prefix
        w = g("weight")
        return SimConv(prefix, w, g("bias"), g("scale_w"), g("scale_x"), g("zero_x"), g("scale_y"), g("zero_y"),
                       stride, in_c // w.shape[1]), w.shape[0]

    c0, ch = conv("0", arch["first_conv"]["stride"], 3)
    stages = [([c0], None)]
    for k, blk in enumerate(arch["blocks"]):
        convs = []
        for j, part in enumerate(p for p in ("pointwise1", "depthwise", "pointwise2") if blk[p] is not None):
            c, ch = conv("1.%d.conv.%d" % (k, j), blk[part]["stride"], ch)
            convs.append(c)
        add = None
        q = "1.%d.q_add." % k
        if q + "scale_y" in state:
            add = SimAdd(q[:-1], *(state[q + f] for f in
                                   ("scale_x1", "zero_x1", "scale_x2", "zero_x2", "scale_y", "zero_y")))
        stages.append((convs, add))
    w, b = state["4.weight"], state["4.bias"]
    s_x, z_x = state["4.scale_x"], state["4.zero_x"]

    def head(pooled):  # ScaledLinear.forward
        x = (pooled.squeeze(-1).squeeze(-1) - z_x.view(1, -1)) * s_x.view(1, -1)
        return {"4": F.linear(x, w, b)}
    return stages, head


def build_from_pkl(obj):
    def conv(d, name, stride=None):
        p = d["params"]
        t = lambda a: torch.from_numpy(np.asarray(a))  # noqa: E731
        return SimConv(name, t(p["weight"]), t(p["bias"]), t(p["w_scales"]),
                       np.float32(p["x_scale"]), p["x_zero"], np.float32(p["y_scale"]), p["y_zero"],
                       d.get("stride", 1), d.get("groups", 1))

    stages = [([conv(obj["first_conv"], "first_conv")], None)]
    for k, blk in enumerate(obj["blocks"]):
        convs = [conv(blk[p], "blocks.%d.%s" % (k, p)) for p in ("pointwise1", "depthwise", "pointwise2")
                 if blk[p] is not None]
        add = None
        if blk["residual"] is not None:
            q = blk["residual"]["params"]
            add = SimAdd("blocks.%d.residual" % k, np.float32(q["x_scale"]), q["x_zero"],
                         convs[-1].scale_y, convs[-1].zero_y, np.float32(q["y_scale"]), q["y_zero"])
        stages.append((convs, add))
    cls = conv(obj["classifier"], "classifier")

    def head(pooled):
        y = cls(pooled)
        return {"classifier": y.flatten(1), "dequantize": (y.flatten(1) - cls.zero_y) * cls.scale_y}
    return stages, head


def run_sim(stages, head, x_nhwc):
    outs = {}
    with torch.no_grad():
        cur = torch.from_numpy(x_nhwc.astype(np.float32)).permute(0, 3, 1, 2).contiguous()
        for convs, add in stages:
            block_in = cur
            for c in convs:
                cur = outs[c.name] = c(cur)
            if add is not None:
                cur = outs[add.name] = add(block_in, cur)
        cur = outs["pool"] = cur.mean([-1, -2], keepdim=True).round()  # _QuantizedAvgPoolFunc
        outs.update(head(cur))
    return outs


def main():
    ap = argparse.ArgumentParser(description="reference.py vs the authors' PyTorch simulation")
    ap.add_argument("--model", help="source model (default <data>/models/original/mcunet_in1_cifar10.pth)")
    ap.add_argument("--arch", help="architecture .pkl of a .pth (default mcunet-5fps.pkl beside it)")
    ap.add_argument("--data-dir", default=reference.default_data_dir())
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args()
    model = args.model or os.path.join(args.data_dir, "models", "original", "mcunet_in1_cifar10.pth")

    t0 = time.time()
    net = reference.build_network(model, args.arch)
    labels, images = reference.load_cifar10(args.data_dir, args.first, args.n)
    obj = torch.load(model, map_location="cpu")
    if "first_conv" in obj:
        stages, head = build_from_pkl(obj)
    else:
        arch = args.arch or os.path.join(os.path.dirname(os.path.abspath(model)), "mcunet-5fps.pkl")
        stages, head = build_from_pth(obj.get("state_dict", obj), torch.load(arch, map_location="cpu"))
    t_ref = t_sim = 0.0
    max_diff, n_layers, agree, correct = 0.0, 0, 0, 0
    for i in range(0, args.n, args.batch):
        x = reference.preprocess(images[i:i + args.batch])
        t = time.time()
        ref = reference.run_network(net, x)
        t_ref += time.time() - t
        t = time.time()
        sim = run_sim(stages, head, x)
        t_sim += time.time() - t
        n_layers = len(ref)
        if set(ref) != set(sim):
            print("FAIL: layer names differ: %s" % sorted(set(ref) ^ set(sim)))
            return 1
        names = list(ref)
        for name in names[:-1]:  # every int8 layer (all but the float output)
            s = sim[name].numpy()
            s = s.transpose(0, 2, 3, 1) if s.ndim == 4 else s
            r = ref[name].astype(np.float32).reshape(s.shape)
            bad = np.argwhere(r != s)
            if len(bad):
                j = tuple(bad[0])
                print("FAIL: layer %s image %d element %s: reference %d, simulation %d (%d elements differ)"
                      % (name, args.first + i + j[0], j[1:], r[j], s[j], len(bad)))
                return 1
        r_log, s_log = ref[names[-1]], sim[names[-1]].numpy()
        max_diff = max(max_diff, float(np.abs(r_log - s_log).max()))
        agree += int((r_log.argmax(1) == s_log.argmax(1)).sum())
        correct += int((r_log.argmax(1) == labels[i:i + args.batch]).sum())
    if max_diff > LOGIT_TOL or agree != args.n:
        print("FAIL: max |logit difference| %.3g (tolerance %g), argmax agrees on %d of %d images"
              % (max_diff, LOGIT_TOL, agree, args.n))
        return 1
    acc = " top-1 %.1f%%," % (100.0 * correct / args.n) if net.head[0] == "f32" else ""
    print("reference == authors' simulation: %s, %d images, %d layers, int8 outputs identical, "
          "max |logit diff| %.2g, argmax identical,%s reference %.1fs, simulation %.1fs (total %.1fs)"
          % (os.path.basename(model), args.n, n_layers, max_diff, acc, t_ref, t_sim, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
