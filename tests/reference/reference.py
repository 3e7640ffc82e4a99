#!/usr/bin/python3
"""Independent numpy reference of docs/semantics.md (and the CIFAR-10 input pipeline of
docs/data.md), computed from the ORIGINAL source models, never from a .tzm.

It shares no code with the importer: the source files are read with `tinyzo.torchzip` (a plain
zip/pickle reader, checked against torch.load by check_authors_sim.py) and the network is rebuilt
here from the state_dict (+ the MCUNet .pkl for strides) or from a tiny-training .pkl.
Every float step is a numpy float32 operation in the documented order; accumulators are int32
(exact: |acc| < 2^31 for int8 x int8 sums of at most a few thousand terms).

    /usr/bin/python3 tests/reference/reference.py [--model SRC] [--data-dir D] [--first 0] [--n 200]
                                                  [--write-dump FILE]

Prints accuracy and timing. Library use: `build_network`, `load_cifar10`, `run_network`.
"""

import argparse
import collections
import gzip
import os
import struct
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))
from tinyzo import torchzip  # noqa: E402  (source-file reader only)

F32 = np.float32


def default_data_dir():
    return os.environ.get("TINYZO_DATA") or os.path.join(os.path.dirname(REPO), "shared", "data")


# ---------------------------------------------------------------------------------------------
# Input pipeline (docs/data.md): CIFAR-10 binary records; the authors' evaluation transform
# (torchvision Resize(147) on the PIL image = Pillow's bilinear resampling, CenterCrop(128),
# ToTensor, Normalize(0.5, 1/255)) and the rounding of their first quantized conv.

CIFAR_RECORD = 1 + 3 * 32 * 32
RESIZE, CROP = 147, 128


def load_cifar10(data_dir, first, n):
    """Returns (labels uint8 [n], images uint8 [n, 3, 32, 32]) of records first..first+n-1."""
    path = os.path.join(data_dir, "cifar10", "test_batch.bin.gz")
    with gzip.open(path, "rb") as f:
        f.seek(first * CIFAR_RECORD)
        raw = f.read(n * CIFAR_RECORD)
    if len(raw) != n * CIFAR_RECORD:
        raise SystemExit("reference: %s holds fewer than %d images" % (path, first + n))
    rec = np.frombuffer(raw, np.uint8).reshape(n, CIFAR_RECORD)
    return rec[:, 0].copy(), rec[:, 1:].reshape(n, 3, 32, 32)


PILLOW_PRECISION_BITS = 22  # 32 - 8 - 2


def _pillow_filter(name, x):
    if name == "bilinear":
        x = abs(x)
        return 1.0 - x if x < 1.0 else 0.0
    if name == "box":  # box_filter since Pillow 7.0
        return 1.0 if -0.5 < x <= 0.5 else 0.0
    raise ValueError(name)


def pillow_axis(name, in_size, out_size, first=0, count=None):
    """Pillow's fixed-point coefficients of one axis (precompute_coeffs + normalize_coeffs_8bpc in
    libImaging/Resample.c), outputs first..first+count-1, as (index [count, K], weight [count, K])
    int64 arrays: output o = sum_k p[index[o, k]] * weight[o, k] in units of 2^-22 (unused taps
    have weight 0). Python floats are doubles, so every step is the C code's double arithmetic."""
    count = out_size - first if count is None else count
    if in_size == out_size:  # Pillow skips the pass: the identity
        idx = np.arange(first, first + count, dtype=np.int64)[:, None]
        return idx, np.full((count, 1), 1 << PILLOW_PRECISION_BITS, np.int64)
    support0 = {"bilinear": 1.0, "box": 0.5}[name]
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = support0 * filterscale
    ss = 1.0 / filterscale
    ksize = int(np.ceil(support)) * 2 + 1
    idx = np.zeros((count, ksize), np.int64)
    wts = np.zeros((count, ksize), np.int64)
    used = 1
    for o in range(count):
        center = (first + o + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # int() truncates toward zero, as C's (int)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [_pillow_filter(name, (x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for w in k:
            ww += w
        for x in range(xmax):
            w = k[x] / ww if ww != 0.0 else k[x]
            fixed = w * (1 << PILLOW_PRECISION_BITS)
            idx[o, x] = x + xmin
            wts[o, x] = int(-0.5 + fixed) if w < 0 else int(0.5 + fixed)
        used = max(used, xmax)
    return idx[:, :used], wts[:, :used]  # taps no output uses dropped


def _pillow_pass(x, idx, wts):
    """One pass along the last axis of uint8 x: the 22-bit fixed-point sum plus 2^21, shifted right
    by 22 and clipped to uint8. Summed tap by tap in int32, as Pillow's int: for non-negative
    weights the sum is at most 255 * (2^22 + taps) + 2^21 < 2^31."""
    acc = np.full(x.shape[:-1] + (idx.shape[0],), 1 << (PILLOW_PRECISION_BITS - 1), np.int32)
    for k in range(idx.shape[1]):
        acc += x[..., idx[:, k]].astype(np.int32) * wts[:, k].astype(np.int32)
    return np.clip(acc >> PILLOW_PRECISION_BITS, 0, 255).astype(np.uint8)


def pillow_resize(images, out_w, out_h, name="bilinear", box=None):
    """PIL.Image.resize((out_w, out_h), filter) of uint8 [..., H, W] planes, optionally only the
    outputs box = (left, top, width, height) of the result (the crop of the full resize: each
    output depends only on its own coefficients). Horizontal pass first (rounded to uint8), then
    vertical."""
    in_h, in_w = images.shape[-2:]
    left, top, w, h = box if box is not None else (0, 0, out_w, out_h)
    x = _pillow_pass(images, *pillow_axis(name, in_w, out_w, left, w))
    x = _pillow_pass(np.swapaxes(x, -1, -2), *pillow_axis(name, in_h, out_h, top, h))
    return np.swapaxes(x, -1, -2)


def center_crop_offset(size, crop):
    """torchvision's int(round((size - crop) / 2.0)), round half to even."""
    return int(round((size - crop) / 2.0))


def resize_for_crop(crop):
    """The authors' Resize size: int(math.ceil(image_size / 0.875)) (147 for 128)."""
    return int(np.ceil(crop / 0.875))


def input_table():
    """pixel p (0..255) -> int8: ToTensor's float32 p / 255, Normalize's float32 (x - 0.5) / (1/255),
    then the first conv's torch.round (half to even). Every step is a numpy float32 operation."""
    x = np.arange(256, dtype=F32) / F32(255)
    q = np.round((x - F32(0.5)) / F32(1 / 255))
    assert q.min() >= -128 and q.max() <= 127
    return q.astype(np.int8)


def preprocess(images, crop=CROP, resize=None):
    """uint8 [n, 3, S, S] -> int8 NHWC [n, crop, crop, 3]: Pillow bilinear resize to `resize`
    (default resize_for_crop(crop)), centre crop, then input_table()."""
    resize = resize_for_crop(crop) if resize is None else resize
    off = center_crop_offset(resize, crop)
    p = pillow_resize(images, resize, resize, "bilinear", (off, off, crop, crop))
    return input_table()[p].transpose(0, 2, 3, 1).copy()


# ---------------------------------------------------------------------------------------------
# The network, rebuilt from the source model.

Conv = collections.namedtuple("Conv", "name w b_f32 s_w s_x z_x s_y z_y stride groups")
Add = collections.namedtuple("Add", "name s1 z1 s2 z2 s_y z_y")
Network = collections.namedtuple("Network", "input_hw stages pool head")
# head: ("f32", name, W f32 [N, C], b f32 [N], s_x, z_x) or ("fc", Conv)


def _np(t):
    return np.array(t.data, dtype=t.dtype).reshape(t.shape)


def _f32s(v):
    """A scalar scale as float32 (the .pth holds float32, the .pkl float64)."""
    return F32(v.item() if isinstance(v, torchzip.Tensor) else v)


def _int(v):
    v = v.item() if isinstance(v, torchzip.Tensor) else v
    assert v == int(v)
    return int(v)


def _pkl_network(obj):
    def conv(d, name):
        p = d["params"]
        w = _np(p["weight"]).astype(np.int32)
        return Conv(name, w, _np(p["bias"]).astype(F32), _np(p["w_scales"]).astype(F32),
                    _f32s(p["x_scale"]), _int(p["x_zero"]), _f32s(p["y_scale"]), _int(p["y_zero"]),
                    d["stride"], d["groups"])

    stages = [([conv(obj["first_conv"], "first_conv")], None)]
    for k, blk in enumerate(obj["blocks"]):
        convs = [conv(blk[part], "blocks.%d.%s" % (k, part))
                 for part in ("pointwise1", "depthwise", "pointwise2") if blk[part] is not None]
        add = None
        if blk["residual"] is not None:
            q = blk["residual"]["params"]
            # x1 = block input (the residual's x_*), x2 = the last conv's output
            add = Add("blocks.%d.residual" % k, _f32s(q["x_scale"]), _int(q["x_zero"]),
                      convs[-1].s_y, convs[-1].z_y, _f32s(q["y_scale"]), _int(q["y_zero"]))
        stages.append((convs, add))
    return Network(obj["first_conv"]["in_shape"], stages, "pool", ("fc", conv(obj["classifier"], "classifier")))


def _pth_network(state, arch):
    """The CIFAR-10 checkpoint: parameters from the state_dict, strides from the .pkl."""
    def conv(prefix, stride, in_c):
        g = lambda key: state[prefix + "." + key]  # noqa: E731
        w = _np(g("weight"))
        assert np.array_equal(w, np.round(w)) and w.min() >= -128 and w.max() <= 127
        if prefix + ".keep_mask" in state:
            assert (_np(g("keep_mask")) == 1).all(), prefix + ": keep_mask not all ones"
        assert _np(g("zero_w")).item() == 0
        w = w.astype(np.int32)
        # groups from the weight shape: Ci / (Ci per group); depthwise gives Ci.
        return Conv(prefix, w, _np(g("bias")).astype(F32), _np(g("scale_w")),
                    _f32s(g("scale_x")), _int(g("zero_x")), _f32s(g("scale_y")), _int(g("zero_y")),
                    stride, in_c // w.shape[1])

    c = conv("0", arch["first_conv"]["stride"], 3)
    channels = c.w.shape[0]
    stages = [([c], None)]
    for k, blk in enumerate(arch["blocks"]):
        parts = [p for p in ("pointwise1", "depthwise", "pointwise2") if blk[p] is not None]
        convs = []
        for j, part in enumerate(parts):
            c = conv("1.%d.conv.%d" % (k, j), blk[part]["stride"], channels)
            convs.append(c)
            channels = c.w.shape[0]
        add = None
        q = "1.%d.q_add." % k
        if q + "scale_y" in state:
            add = Add(q[:-1], *[_f32s(state[q + f]) if f.startswith("scale") else _int(state[q + f])
                                for f in ("scale_x1", "zero_x1", "scale_x2", "zero_x2", "scale_y", "zero_y")])
        stages.append((convs, add))
    head = ("f32", "4", _np(state["4.weight"]).astype(F32), _np(state["4.bias"]).astype(F32),
            _f32s(state["4.scale_x"]), _int(state["4.zero_x"]))
    return Network(arch["first_conv"]["in_shape"], stages, "pool", head)


def build_network(src, arch=None):
    obj = torchzip.load(src)
    if "first_conv" in obj:
        return _pkl_network(obj)
    arch = arch or os.path.join(os.path.dirname(os.path.abspath(src)), "mcunet-5fps.pkl")
    return _pth_network(obj.get("state_dict", obj), torchzip.load(arch))


def op_names(net):
    """Op names in execution order (the names the importer gives the .tzm ops)."""
    names = []
    for convs, add in net.stages:
        names += [c.name for c in convs] + ([add.name] if add else [])
    names.append(net.pool)
    names += [net.head[1]] if net.head[0] == "f32" else [net.head[1].name, "dequantize"]
    return names


# ---------------------------------------------------------------------------------------------
# Integer semantics (docs/semantics.md), batched over images, NHWC.

def requantize(acc, b_f32, mult, s_y, z_y):
    """v = (f32(acc) + f32(b)) * m; v = v / s_y; y = clamp(rne(v) + z_y)."""
    v = (acc.astype(F32) + b_f32) * mult
    v = v / F32(s_y)
    return np.clip(np.rint(v) + F32(z_y), -128, 127).astype(np.int8)


def conv2d(x, c):
    """x int8 [n, H, W, Ci]; c.w int32 [Co, Ci/g, kh, kw] (PyTorch layout) -> int8 [n, Ho, Wo, Co]."""
    n, h, w_in, ci = x.shape
    co, ci_g, kh, kw = c.w.shape
    s = c.stride
    ph, pw = kh // 2, kw // 2
    ho, wo = (h + 2 * ph - kh) // s + 1, (w_in + 2 * pw - kw) // s + 1
    # Subtracting the zero point first makes the padding contribute exactly 0.
    xs = np.zeros((n, h + 2 * ph, w_in + 2 * pw, ci), np.int32)
    xs[:, ph:ph + h, pw:pw + w_in, :] = x.astype(np.int32) - c.z_x

    def tap(ky, kx):
        return xs[:, ky:ky + s * (ho - 1) + 1:s, kx:kx + s * (wo - 1) + 1:s, :]

    if c.groups == ci == co and ci_g == 1:  # depthwise: one multiply-add per tap
        acc = np.zeros((n, ho, wo, co), np.int32)
        for ky in range(kh):
            for kx in range(kw):
                acc += tap(ky, kx) * c.w[:, 0, ky, kx]
    else:
        acc = np.zeros((n, ho, wo, co), np.int32)
        gi, go = ci // c.groups, co // c.groups
        for g in range(c.groups):
            for ky in range(kh):
                for kx in range(kw):
                    xg = tap(ky, kx)[..., g * gi:(g + 1) * gi]
                    wg = c.w[g * go:(g + 1) * go, :, ky, kx]  # [go, gi]
                    acc[..., g * go:(g + 1) * go] += np.matmul(xg, wg.T)
    mult = (np.float64(c.s_x) * c.s_w.astype(np.float64)).astype(F32)
    return requantize(acc, c.b_f32, mult, c.s_y, c.z_y)


def add(x1, x2, a):
    """v = f32(q1 - z1) * s1 + f32(q2 - z2) * s2; y = clamp(rne(v / s_y) + z_y)."""
    v = (x1.astype(np.int32) - a.z1).astype(F32) * a.s1 + (x2.astype(np.int32) - a.z2).astype(F32) * a.s2
    return np.clip(np.rint(v / a.s_y) + F32(a.z_y), -128, 127).astype(np.int8)


def global_avg_pool(x):
    """y = rne(f32(sum) / f32(H*W)), same quantization as the input."""
    n, h, w, c = x.shape
    total = x.astype(np.int32).sum(axis=(1, 2)).astype(F32)
    return np.clip(np.rint(total / F32(h * w)), -128, 127).astype(np.int8).reshape(n, 1, 1, c)


def linear_f32(x, w, b, s_x, z_x):
    """x[k] = f32(q - z) * s; logits = ((0 + x0 w0) + x1 w1) + ... strictly in index order, + b."""
    xf = (x.reshape(x.shape[0], -1).astype(np.int32) - z_x).astype(F32) * s_x
    acc = np.zeros((x.shape[0], w.shape[0]), F32)
    for k in range(w.shape[1]):
        acc = acc + xf[:, k:k + 1] * w[None, :, k]
    return acc + b


def run_network(net, x):
    """x int8 [n, H, W, 3] -> OrderedDict op name -> output ([n, ...] int8, float32 for heads)."""
    out = collections.OrderedDict()
    cur = x
    for convs, a in net.stages:
        block_in = cur
        for c in convs:
            cur = out[c.name] = conv2d(cur, c)
        if a is not None:
            cur = out[a.name] = add(block_in, cur, a)
    cur = out[net.pool] = global_avg_pool(cur)
    if net.head[0] == "f32":
        _, name, w, b, s_x, z_x = net.head
        out[name] = linear_f32(cur, w, b, s_x, z_x)
    else:
        c = net.head[1]
        # The int8 classifier is a 1x1 conv on the pooled [1, 1, C] vector.
        y = conv2d(cur, c).reshape(cur.shape[0], -1)
        out[c.name] = y
        out["dequantize"] = (y.astype(np.int32) - c.z_y).astype(F32) * c.s_y
    return out


def run_images(net, data_dir, first, n, batch=50):
    """Labels and every op output for images first..first+n-1 (in batches to bound memory)."""
    labels, images = load_cifar10(data_dir, first, n)
    parts = []
    for i in range(0, n, batch):
        parts.append(run_network(net, preprocess(images[i:i + batch])))
    outs = collections.OrderedDict((k, np.concatenate([p[k] for p in parts])) for k in parts[0])
    return labels, outs


def write_dump(path, labels, outs):
    """The `tinyzo dump` file: "TZD1", u32 n_images, u32 n_ops, then per image a label byte and
    per op (u32 nbytes, the output bytes: int8, or float32 little-endian)."""
    names = list(outs)
    with open(path, "wb") as f:
        f.write(b"TZD1" + struct.pack("<II", len(labels), len(names)))
        for i in range(len(labels)):
            f.write(struct.pack("<B", int(labels[i])))
            for k in names:
                a = outs[k][i]
                raw = a.astype("<f4").tobytes() if a.dtype == F32 else a.tobytes()
                f.write(struct.pack("<I", len(raw)) + raw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="source model (default <data>/models/original/mcunet_in1_cifar10.pth)")
    ap.add_argument("--arch", help="architecture .pkl of a .pth (default mcunet-5fps.pkl beside it)")
    ap.add_argument("--data-dir", default=default_data_dir())
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--write-dump", metavar="FILE", help="also write the outputs as a tinyzo dump file")
    args = ap.parse_args()
    model = args.model or os.path.join(args.data_dir, "models", "original", "mcunet_in1_cifar10.pth")
    t0 = time.time()
    net = build_network(model, args.arch)
    labels, outs = run_images(net, args.data_dir, args.first, args.n)
    dt = time.time() - t0
    logits = outs[list(outs)[-1]]
    acc = ""
    if logits.shape[1] == 10:  # top-1 only means something for a CIFAR-10 head
        acc = ", top-1 %.2f%%" % (100.0 * (logits.argmax(1) == labels).mean())
    print("reference: %s, %d images, %d ops%s, %.1fs" % (os.path.basename(model), args.n, len(outs), acc, dt))
    if args.write_dump:
        write_dump(args.write_dump, labels, outs)
        print("reference: wrote", args.write_dump)


if __name__ == "__main__":
    main()
