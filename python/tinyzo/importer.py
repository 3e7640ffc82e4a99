"""Import an int8 source model into a .tzm file (docs/import.md).

    python3 python/tinyzo/importer.py SRC -o OUT.tzm [--name NAME] [--arch ARCH.pkl]
    PYTHONPATH=python python3 -m tinyzo.importer SRC -o OUT.tzm

Sources (detected from the content, not the file name):
  * the paper's CIFAR-10 checkpoint (`torch.save` of {'state_dict': ...}, keys `0.*`, `1.<k>.conv.<j>.*`,
    `1.<k>.q_add.*`, `4.*`): integer-valued float32 weights and a float32 head. Its state_dict has
    no strides, so the architecture comes from MCUNet-5fps's .pkl (`--arch`, default
    `mcunet-5fps.pkl` beside SRC), and every weight shape is checked against it.
  * tiny-training's `.pkl` models (first_conv / blocks / classifier dicts with numpy int8 weights).

Both are first turned into one small description of the network (`_Network`), which a single
emitter checks (quantization chains, shapes) and writes. Standard library only.
"""

import argparse
import math
import os
import struct
import sys
import tempfile

if __package__ in (None, ""):  # run as a script: make `tinyzo` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tinyzo import torchzip, tzm  # noqa: E402

INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1


class ImportError_(ValueError):
    """The source model cannot be imported (one-line message)."""


def _fail(msg):
    raise ImportError_(msg)


def f32(v):
    """Round a Python float to the nearest binary32 value (ties to even)."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


# ---------------------------------------------------------------------------------------------
# The common description both front ends produce.

class _Conv:
    """One int8 conv in PyTorch layout. Scales/zeros keep the source's own values (float32 from
    the .pth, float64 from the .pkl) so the chain checks compare exactly what the source says;
    they are rounded to binary32 only when written."""

    def __init__(self, name, weight, wshape, bias, w_scales, stride, groups,
                 s_x, z_x, s_y, z_y, act=None):
        self.name, self.weight, self.wshape, self.bias = name, weight, tuple(wshape), bias
        self.w_scales, self.stride, self.groups = w_scales, stride, groups
        self.s_x, self.z_x, self.s_y, self.z_y = s_x, z_x, s_y, z_y
        self.act = act  # None, or a ReLU folded into the clamp


class _Add:
    """Residual add y = x1 + x2, x1 = block input, x2 = the block's last conv output."""

    def __init__(self, name, s1, z1, s2, z2, s_y, z_y):
        self.name, self.s1, self.z1, self.s2, self.z2, self.s_y, self.z_y = name, s1, z1, s2, z2, s_y, z_y


class _Network:
    def __init__(self):
        self.input_hw = 0
        self.input_c = 0
        self.stages = []       # [(list of _Conv, _Add or None)]: first conv then one per block
        self.pool_name = "pool"
        self.head = None       # ('f32', name, W [N][C] floats, b [N], s_x, z_x) or ('fc', _Conv)


# ---------------------------------------------------------------------------------------------
# Value checks shared by the front ends.

def _scale(v, what):
    v = _scalar(v, what)
    if not 0.0 < v < math.inf or not 0.0 < f32(v) < math.inf:
        _fail("%s: scale %r is not positive and finite" % (what, v))
    return float(v)


def _zero(v, what):
    v = _scalar(v, what)
    if v != int(v) or not -128 <= v <= 127:
        _fail("%s: zero point %r is not an integer in [-128, 127]" % (what, v))
    return int(v)


def _scalar(v, what):
    if isinstance(v, torchzip.Tensor):
        if v.numel != 1:
            _fail("%s: expected one value, got shape %s" % (what, v.shape))
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        _fail("%s: expected a number, got %r" % (what, v))
    return v


def _tensor(v, what, shape=None):
    if not isinstance(v, torchzip.Tensor):
        _fail("%s: expected a tensor, got %s" % (what, type(v).__name__))
    if shape is not None and v.shape != tuple(shape):
        _fail("%s: shape %s, expected %s" % (what, v.shape, tuple(shape)))
    return v


def _int8_weight(t, what):
    """Weights as Python ints; the .pth stores them as integer-valued float32."""
    out = []
    for v in t.data:
        if v != int(v) or not -128 <= v <= 127:
            _fail("%s: weight value %r is not an int8 integer" % (what, v))
        out.append(int(v))
    return out


def _int32_bias(t, what):
    """Biases as int32. Dead channels carry +-2^31 as float32 (2^31 - 1 does not exist in
    binary32); clamping 2^31 to 2^31 - 1 keeps the semantics, since f32(2^31 - 1) == 2^31 again.
    Anything further out would change the result, so it is an error."""
    out = []
    for v in t.data:
        if not math.isfinite(v) or v != int(v) or not -2 ** 31 <= v <= 2 ** 31:
            _fail("%s: bias value %r is not an int32 integer" % (what, v))
        out.append(min(max(int(v), INT32_MIN), INT32_MAX))
    return out


def _channel_scales(t, what, n):
    _tensor(t, what, (n,))
    if not all(0.0 < v < math.inf for v in t.data):
        _fail("%s: weight scales must be positive and finite" % what)
    return [f32(v) for v in t.data]


# ---------------------------------------------------------------------------------------------
# Front end: tiny-training .pkl models.

_PKL_CONVS = ("pointwise1", "depthwise", "pointwise2")


def _pkl_conv(d, name, in_c, in_hw):
    """One .pkl conv dict -> _Conv (x/y quantization may still be None: resolved later)."""
    if not isinstance(d, dict) or not isinstance(d.get("params"), dict):
        _fail("%s: not a conv description" % name)
    p = d["params"]
    w = _tensor(p.get("weight"), name + ".weight")
    if w.dtype != "int8" or len(w.shape) != 4:
        _fail("%s: weight must be int8 [Co, Ci/g, kh, kw], got %s %s" % (name, w.dtype, w.shape))
    co, ci_g, kh, kw = w.shape
    groups = d.get("groups", 1)
    stride = d.get("stride", 1)
    ks = d.get("kernel_size", (kh, kw))
    ks = tuple(ks) if isinstance(ks, (tuple, list)) else (ks, ks)
    if ks != (kh, kw):
        _fail("%s: kernel_size %s does not match the weight %s" % (name, ks, w.shape))
    if not isinstance(groups, int) or groups < 1 or in_c % groups or co % groups or in_c // groups != ci_g:
        _fail("%s: groups=%r does not fit %d input channels and weight %s" % (name, groups, in_c, w.shape))
    if not isinstance(stride, int) or stride < 1:
        _fail("%s: unsupported stride %r" % (name, stride))
    for key, want in (("in_channel", in_c), ("out_channel", co), ("in_shape", in_hw)):
        if key in d and d[key] is not None and d[key] != want:
            _fail("%s: %s is %r, the network gives %r" % (name, key, d[key], want))
    if d.get("depthwise") and not (groups == in_c == co):
        _fail("%s: marked depthwise but groups=%d, channels %d->%d" % (name, groups, in_c, co))
    out_hw = (in_hw + 2 * (kh // 2) - kh) // stride + 1
    if d.get("out_shape") is not None and d["out_shape"] != out_hw:
        _fail("%s: out_shape %r, padding kernel//2 gives %d" % (name, d["out_shape"], out_hw))
    bias = _tensor(p.get("bias"), name + ".bias", (co,))
    if bias.dtype != "int32":
        _fail("%s: bias must be int32, got %s" % (name, bias.dtype))
    w_scales = _channel_scales(p.get("w_scales"), name + ".w_scales", co)
    act = d.get("act")
    if act not in (None, "relu", "relu6"):
        _fail("%s: unsupported activation %r" % (name, act))
    conv = _Conv(name, list(w.data), w.shape, list(bias.data), w_scales, stride, groups,
                 p.get("x_scale"), p.get("x_zero"), p.get("y_scale"), p.get("y_zero"), act)
    return conv, co, out_hw


def _from_pkl(obj):
    net = _Network()
    if obj.get("feature_mix") is not None:
        _fail("feature_mix is not supported (only None)")
    first = obj["first_conv"]
    if not isinstance(first, dict) or not isinstance(first.get("in_shape"), int):
        _fail("first_conv has no in_shape")
    net.input_hw = first["in_shape"]
    net.input_c = first.get("in_channel", 3)
    c, hw = net.input_c, net.input_hw
    conv, c, hw = _pkl_conv(first, "first_conv", c, hw)
    net.stages.append(([conv], None))
    blocks = obj["blocks"]
    if not isinstance(blocks, list):
        _fail("blocks is not a list")
    for k, blk in enumerate(blocks):
        if not isinstance(blk, dict):
            _fail("blocks.%d is not a dict" % k)
        if blk.get("se") is not None:
            _fail("blocks.%d: squeeze-excite is not supported" % k)
        in_c, in_hw = c, hw
        convs = []
        for part in _PKL_CONVS:
            if blk.get(part) is None:
                if part != "pointwise1":
                    _fail("blocks.%d.%s is missing" % (k, part))
                continue
            conv, c, hw = _pkl_conv(blk[part], "blocks.%d.%s" % (k, part), c, hw)
            convs.append(conv)
        add = None
        res = blk.get("residual")
        if res is not None:
            name = "blocks.%d.residual" % k
            if (c, hw) != (in_c, in_hw):
                _fail("%s: block maps %dx%dx%d to %dx%dx%d, cannot add" % (name, in_hw, in_hw, in_c, hw, hw, c))
            for key, want in (("in_channel", c), ("in_shape", hw)):
                if res.get(key) is not None and res[key] != want:
                    _fail("%s: %s is %r, the network gives %r" % (name, key, res[key], want))
            q = res.get("params") or {}
            # The .pkl gives x (the block input) and y; x2 is the last conv's output by construction.
            add = _Add(name, q.get("x_scale"), q.get("x_zero"), None, None, q.get("y_scale"), q.get("y_zero"))
        net.stages.append((convs, add))
    cls = obj["classifier"]
    if not isinstance(cls, dict):
        _fail("classifier is not a dict")
    conv, co, _ = _pkl_conv(dict(cls, in_shape=1), "classifier", c, 1)
    if conv.wshape[2:] != (1, 1) or conv.groups != 1:
        _fail("classifier must be a 1x1 conv without groups")
    net.head = ("fc", conv)
    _resolve_pkl_nones(net)
    return net


def _resolve_pkl_nones(net):
    """Inside a block the .pkl may leave x_* or y_* as None: they are the neighbouring tensor's.
    Walk the tensors in order: each quantized tensor's (scale, zero) is either what its producer
    says or, when that is None, what its consumer says as its input."""
    all_convs = [c for convs, _ in net.stages for c in convs] + [net.head[1]]
    # (producer, consumer) pairs of the same tensor, in order; an add reads the block input (x1)
    # and the last conv's output (x2), and the next block reads the add.
    links, add_inputs, prev = [], {}, None
    for convs, add in net.stages:
        block_in = prev
        for c in convs:
            links.append((prev, c))
            prev = c
        if add is not None:
            add_inputs[add] = (block_in, prev)
            prev = add
    links.append((prev, net.head[1]))
    for producer, consumer in links:
        if producer is None:
            continue
        for src, dst in (("s_y", "s_x"), ("z_y", "z_x")):
            a, b = getattr(producer, src), getattr(consumer, dst)
            if a is None and b is not None:
                setattr(producer, src, b)
            elif b is None and a is not None:
                setattr(consumer, dst, a)
    for add, (x1_from, x2_from) in add_inputs.items():
        if add.s1 is None:
            add.s1 = x1_from.s_y
        if add.z1 is None:
            add.z1 = x1_from.z_y
        add.s2, add.z2 = x2_from.s_y, x2_from.z_y
    for c in all_convs:
        for key, source_key in (("s_x", "x_scale"), ("z_x", "x_zero"), ("s_y", "y_scale"), ("z_y", "y_zero")):
            if getattr(c, key) is None:
                _fail("%s: %s is None and no neighbouring tensor gives it" % (c.name, source_key))


# ---------------------------------------------------------------------------------------------
# Front end: the paper's CIFAR-10 checkpoint (.pth state_dict) + the MCUNet .pkl architecture.

def _from_pth(state, arch, arch_path):
    net = _from_pkl(arch)  # strides, kernel sizes, groups and residual presence
    used = set()

    def take(key):
        if key not in state:
            _fail("state_dict has no %s" % key)
        used.add(key)
        return state[key]

    def conv_from_state(prefix, like):
        """The .pth conv `prefix` with the architecture of the .pkl conv `like`."""
        w = _tensor(take(prefix + ".weight"), prefix + ".weight", like.wshape)
        co = like.wshape[0]
        weight = _int8_weight(w, prefix)
        bias = _int32_bias(_tensor(take(prefix + ".bias"), prefix + ".bias", (co,)), prefix + ".bias")
        w_scales = _channel_scales(take(prefix + ".scale_w"), prefix + ".scale_w", co)
        if _scalar(take(prefix + ".zero_w"), prefix + ".zero_w") != 0:
            _fail("%s: zero_w must be 0 (symmetric weights)" % prefix)
        if prefix + ".keep_mask" in state:
            # A channel mask over the input channels (size Ci); honouring anything but all-ones
            # would need a masked conv, which the format does not have.
            mask = _tensor(take(prefix + ".keep_mask"), prefix + ".keep_mask")
            if any(v != 1 for v in mask.data):
                _fail("%s: keep_mask is not all ones (masked convs are not supported)" % prefix)
        return _Conv(prefix, weight, like.wshape, bias, w_scales, like.stride, like.groups,
                     _scalar(take(prefix + ".scale_x"), prefix + ".scale_x"),
                     _scalar(take(prefix + ".zero_x"), prefix + ".zero_x"),
                     _scalar(take(prefix + ".scale_y"), prefix + ".scale_y"),
                     _scalar(take(prefix + ".zero_y"), prefix + ".zero_y"))

    n_blocks = len(net.stages) - 1
    found_blocks = {int(k.split(".")[1]) for k in state if k.startswith("1.") and k.split(".")[1].isdigit()}
    if found_blocks != set(range(n_blocks)):
        _fail("state_dict has blocks %s, the architecture %s has %d"
              % (sorted(found_blocks), os.path.basename(arch_path), n_blocks))
    stages = [([conv_from_state("0", net.stages[0][0][0])], None)]
    for k in range(n_blocks):
        like_convs, like_add = net.stages[k + 1]
        convs = [conv_from_state("1.%d.conv.%d" % (k, j), like) for j, like in enumerate(like_convs)]
        add = None
        has_add = any(key.startswith("1.%d.q_add." % k) for key in state)
        if has_add != (like_add is not None):
            _fail("block 1.%d: residual add %s in the checkpoint but %s in the architecture"
                  % (k, "present" if has_add else "absent", "present" if like_add else "absent"))
        if has_add:
            q = "1.%d.q_add." % k
            add = _Add("1.%d.q_add" % k, *(_scalar(take(q + f), q + f) for f in
                                           ("scale_x1", "zero_x1", "scale_x2", "zero_x2", "scale_y", "zero_y")))
        stages.append((convs, add))
    net.stages = stages

    head_w = _tensor(take("4.weight"), "4.weight")
    if head_w.dtype != "float32" or len(head_w.shape) != 2:
        _fail("4.weight must be float32 [N, C], got %s %s" % (head_w.dtype, head_w.shape))
    n, c = head_w.shape
    head_b = _tensor(take("4.bias"), "4.bias", (n,))
    if head_b.dtype != "float32":
        _fail("4.bias must be float32")
    if not all(math.isfinite(v) for v in list(head_w.data) + list(head_b.data)):
        _fail("head weights must be finite")
    net.head = ("f32", "4", list(head_w.data), list(head_b.data), (n, c),
                _scalar(take("4.scale_x"), "4.scale_x"), _scalar(take("4.zero_x"), "4.zero_x"))
    extra = sorted(set(state) - used)
    if extra:
        _fail("state_dict keys not understood: %s%s" % (", ".join(extra[:5]), " ..." if len(extra) > 5 else ""))
    return net


# ---------------------------------------------------------------------------------------------
# The emitter: checks the quantization chain and writes the .tzm.

class _Act:
    """An activation tensor being chained: its index, [H, W, C], and source (scale, zero)."""

    def __init__(self, index, dims, scale, zero, name):
        self.index, self.dims, self.scale, self.zero, self.name = index, dims, scale, zero, name


def _same_quant(what, s, z, act):
    """`what` reads `act` with (s, z): they must be the producer's, exactly (source precision)."""
    if _scale(s, what) != act.scale or _zero(z, what) != act.zero:
        _fail("%s expects input quantization (%r, %r) but %s is (%r, %r)"
              % (what, s, z, act.name, act.scale, act.zero))


def _transpose_oihw_to_ohwi(w, co, ci, kh, kw):
    if kh == kw == 1 or ci == 1:
        return w  # identical memory order
    return [w[((o * ci + c) * kh + y) * kw + x] for o in range(co) for y in range(kh)
            for x in range(kw) for c in range(ci)]


def _emit(net):
    b = tzm.TzmBuilder()
    first = net.stages[0][0][0]
    s_in, z_in = _scale(first.s_x, first.name + ".scale_x"), _zero(first.z_x, first.name + ".zero_x")
    dims = (net.input_hw, net.input_hw, net.input_c)
    idx = b.add_tensor("input", tzm.INT8, dims, tzm.INPUT, scale=f32(s_in), zero_point=z_in)
    b.input_tensor = idx
    cur = _Act(idx, dims, s_in, z_in, "input")
    n_params = 0

    def conv_op(conv, x, fully_connected=False):
        nonlocal n_params
        co, ci_g, kh, kw = conv.wshape
        _same_quant(conv.name, conv.s_x, conv.z_x, x)
        s_x32 = f32(conv.s_x)
        s_y, z_y = _scale(conv.s_y, conv.name + ".scale_y"), _zero(conv.z_y, conv.name + ".zero_y")
        if conv.act in ("relu", "relu6") and z_y != -128:
            _fail("%s: a folded ReLU needs zero point -128, got %d" % (conv.name, z_y))
        # Exactly the simulation's effective_scale: float32(float64(s_x) * float64(s_w[o])).
        mult = [f32(s_x32 * s_w) for s_w in conv.w_scales]
        if not all(0.0 < m < math.inf for m in mult):
            _fail("%s: multiplier underflows or overflows float32" % conv.name)
        n_params += len(conv.weight) + len(conv.bias)
        quant = dict(channel_scales=conv.w_scales)
        train = tzm.CONSTANT | tzm.TRAINABLE
        if fully_connected:
            w_dims = (co, ci_g)
            weight = conv.weight
        else:
            w_dims = (co, kh, kw, ci_g)
            weight = _transpose_oihw_to_ohwi(conv.weight, co, ci_g, kh, kw)
        w = b.add_tensor(conv.name + ".weight", tzm.INT8, w_dims, train | tzm.PER_CHANNEL, weight, **quant)
        bias = b.add_tensor(conv.name + ".bias", tzm.INT32, (co,), train, conv.bias)
        m = b.add_tensor(conv.name + ".mult", tzm.FLOAT32, (co,), tzm.CONSTANT, mult)
        if fully_connected:
            y_dims = (co,)
            y = b.add_tensor(conv.name, tzm.INT8, y_dims, scale=f32(s_y), zero_point=z_y)
            b.add_op(conv.name, tzm.FULLY_CONNECTED, (x.index, w, bias, m), y, (-128, 127))
        else:
            h, wd, ci = x.dims
            if ci != ci_g * conv.groups:
                _fail("%s: weight %s does not fit %d input channels" % (conv.name, conv.wshape, ci))
            pad_h, pad_w = kh // 2, kw // 2
            y_dims = ((h + 2 * pad_h - kh) // conv.stride + 1, (wd + 2 * pad_w - kw) // conv.stride + 1, co)
            y = b.add_tensor(conv.name, tzm.INT8, y_dims, scale=f32(s_y), zero_point=z_y)
            b.add_op(conv.name, tzm.CONV2D, (x.index, w, bias, m), y,
                     (kh, kw, conv.stride, conv.stride, pad_h, pad_w, pad_h, pad_w, conv.groups, -128, 127))
        return _Act(y, y_dims, s_y, z_y, conv.name)

    for convs, add in net.stages:
        block_in = cur
        for conv in convs:
            cur = conv_op(conv, cur)
        if add is not None:
            _same_quant(add.name + " (x1)", add.s1, add.z1, block_in)
            _same_quant(add.name + " (x2)", add.s2, add.z2, cur)
            if block_in.dims != cur.dims:
                _fail("%s: shapes %s and %s differ" % (add.name, block_in.dims, cur.dims))
            s_y, z_y = _scale(add.s_y, add.name + ".scale_y"), _zero(add.z_y, add.name + ".zero_y")
            y = b.add_tensor(add.name, tzm.INT8, cur.dims, scale=f32(s_y), zero_point=z_y)
            b.add_op(add.name, tzm.ADD, (block_in.index, cur.index), y, (-128, 127))
            cur = _Act(y, cur.dims, s_y, z_y, add.name)

    # Global average pool keeps the input's quantization (the mean of the stored integers).
    pooled_dims = (1, 1, cur.dims[2])
    p = b.add_tensor(net.pool_name, tzm.INT8, pooled_dims, scale=f32(cur.scale), zero_point=cur.zero)
    b.add_op(net.pool_name, tzm.GLOBAL_AVG_POOL, (cur.index,), p)
    cur = _Act(p, pooled_dims, cur.scale, cur.zero, net.pool_name)

    if net.head[0] == "f32":
        _, name, w, bias, (n, c), s_x, z_x = net.head
        _same_quant(name, s_x, z_x, cur)
        if c != cur.dims[2]:
            _fail("%s: weight [%d, %d] does not fit %d features" % (name, n, c, cur.dims[2]))
        n_params += len(w) + len(bias)
        wi = b.add_tensor(name + ".weight", tzm.FLOAT32, (n, c), tzm.CONSTANT, w)
        bi = b.add_tensor(name + ".bias", tzm.FLOAT32, (n,), tzm.CONSTANT, bias)
        out = b.add_tensor("logits", tzm.FLOAT32, (n,), tzm.OUTPUT)
        b.add_op(name, tzm.LINEAR_F32, (cur.index, wi, bi), out)
    else:
        conv = net.head[1]
        if conv.wshape[1] != cur.dims[2]:
            _fail("%s: weight %s does not fit %d features" % (conv.name, conv.wshape, cur.dims[2]))
        y = conv_op(conv, cur, fully_connected=True)
        out = b.add_tensor("logits", tzm.FLOAT32, y.dims, tzm.OUTPUT)
        b.add_op("dequantize", tzm.DEQUANTIZE, (y.index,), out)
    b.output_tensor = out
    blob = b.to_bytes()
    return blob, dict(ops=len(b.ops), tensors=len(b.tensors), params=n_params, bytes=len(blob))


# ---------------------------------------------------------------------------------------------

def import_model(src, arch=None, input_size=None):
    """Import `src`; returns (tzm bytes, summary dict with ops, tensors, params, bytes).
    `arch` is the .pkl giving the architecture of a .pth checkpoint (default: mcunet-5fps.pkl
    beside it). `input_size` S builds the graph for an S x S input instead of the source's
    resolution (the same weights: every conv is padded k // 2 and the head follows a global
    average pool, so any S >= 32 gives a valid graph; S a multiple of 32 keeps every stride-2
    stage exact). Raises ImportError_ or torchzip.TorchZipError with a one-line message."""
    if input_size is not None and not 32 <= input_size <= 1024:
        _fail("--input-size %r: expected 32..1024" % (input_size,))
    obj = torchzip.load(src)
    if not isinstance(obj, dict):
        _fail("%s: unrecognised content (%s)" % (src, type(obj).__name__))
    try:
        if "first_conv" in obj and "blocks" in obj and "classifier" in obj:
            net = _from_pkl(obj)
        else:
            state = obj.get("state_dict", obj)
            if not isinstance(state, dict) or "0.weight" not in state or "4.weight" not in state:
                _fail("neither a tiny-training .pkl model nor the MCUNet CIFAR-10 checkpoint")
            arch = arch or os.path.join(os.path.dirname(os.path.abspath(src)), "mcunet-5fps.pkl")
            if not os.path.exists(arch):
                _fail("the checkpoint has no strides: give its architecture with --arch "
                      "(mcunet-5fps.pkl, not found at %s)" % arch)
            arch_obj = torchzip.load(arch)
            if not isinstance(arch_obj, dict) or "first_conv" not in arch_obj:
                _fail("%s is not a tiny-training .pkl model" % arch)
            net = _from_pth(state, arch_obj, arch)
        if input_size is not None:
            net.input_hw = input_size
        return _emit(net)
    except ImportError_ as e:
        raise ImportError_("%s: %s" % (os.path.basename(src), e)) from None
    except tzm.TzmError as e:
        raise ImportError_("%s: %s" % (os.path.basename(src), e)) from None
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
        # Structure not as expected (a key missing, a None where a dict belongs...).
        raise ImportError_("%s: malformed model (%s: %s)" % (os.path.basename(src), type(e).__name__, e)) from None


def write_atomic(path, blob):
    """Write via a temporary file in the same directory and rename: never a partial file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(argv=None):
    ap = argparse.ArgumentParser(prog="importer", description="Import an int8 source model into a .tzm file.")
    ap.add_argument("src", help="source model: the MCUNet CIFAR-10 .pth or a tiny-training .pkl")
    ap.add_argument("-o", "--output", required=True, help="output .tzm path")
    ap.add_argument("--name", help="model name for messages (default: the source file name)")
    ap.add_argument("--arch", help="architecture .pkl for a .pth checkpoint (default: mcunet-5fps.pkl beside it)")
    ap.add_argument("--input-size", type=int, help="build the graph for an S x S input (default: the source's)")
    args = ap.parse_args(argv)
    try:
        blob, s = import_model(args.src, args.arch, args.input_size)
        write_atomic(args.output, blob)
    except (ImportError_, torchzip.TorchZipError) as e:
        print("importer: error: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:  # reading errors arrive as TorchZipError: this is the output side
        print("importer: error: cannot write %s: %s" % (args.output, e.strerror or e), file=sys.stderr)
        return 2
    name = args.name or os.path.basename(args.src)
    print("%s -> %s: %d ops, %d tensors, %d params, %d bytes"
          % (name, args.output, s["ops"], s["tensors"], s["params"], s["bytes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
