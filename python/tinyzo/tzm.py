"""Write and read `.tzm` model files (docs/format.md is the authority; this follows it field by
field). Standard library only.

Writer: `TzmBuilder` collects tensors and ops, then `to_bytes()` lays the file out as
header | tensor table | op table | data section, every constant blob (and every per-channel scale
array) starting on a 16-byte boundary, and fills in the CRC-32 of bytes [64, file_size).

Reader: `read_tzm(bytes)` parses and validates a file the way the device reader does (sizes,
CRC, bounds, alignment, shapes that chain) and returns a `TzmModel`; `TzmError` otherwise.
"""

import array
import struct
import sys
import zlib

MAGIC = 0x314D5A54  # the bytes "TZM1"
VERSION_MAJOR = 1
VERSION_MINOR = 1  # 1.1: fixed-point requantization; files without it are written as 1.0
ALIGN = 16
NAME_LEN = 32
MAX_DIMS = 4
MAX_INPUTS = 4
MAX_PARAMS = 12
MAX_TENSORS = 4096
MAX_OPS = 4096

HEADER = struct.Struct("<IHH9Iii3I")       # 64 bytes
TENSOR = struct.Struct("<32sBBH4iIIfiIII")  # 80 bytes
OP = struct.Struct("<32sHBB4ii12i")        # 104 bytes
assert (HEADER.size, TENSOR.size, OP.size) == (64, 80, 104)

# dtypes
INT8, INT32, FLOAT32 = 0, 1, 2
DTYPE_SIZE = {INT8: 1, INT32: 4, FLOAT32: 4}
DTYPE_NAME = {INT8: "int8", INT32: "int32", FLOAT32: "float32"}
_DTYPE_CODE = {INT8: "b", INT32: "i", FLOAT32: "f"}
assert array.array("i").itemsize == 4 and array.array("f").itemsize == 4

# tensor flags
CONSTANT, TRAINABLE, INPUT, OUTPUT, PER_CHANNEL = 1, 2, 4, 8, 16

# requantization kinds (conv params[11], fully-connected params[2]); docs/format.md
REQUANT_FLOAT_SCALE, REQUANT_FIXED_POINT = 0, 1
CONV_REQUANT, FC_REQUANT = 11, 2

# op types
CONV2D, ADD, GLOBAL_AVG_POOL, LINEAR_F32, FULLY_CONNECTED, MAX_POOL2D, AVG_POOL2D, DEQUANTIZE = range(1, 9)
OP_NAME = {CONV2D: "Conv2d", ADD: "Add", GLOBAL_AVG_POOL: "GlobalAvgPool", LINEAR_F32: "LinearF32",
           FULLY_CONNECTED: "FullyConnected", MAX_POOL2D: "MaxPool2d", AVG_POOL2D: "AvgPool2d",
           DEQUANTIZE: "Dequantize"}
# TFLite op types (TensorFlow Lite Micro reference semantics, docs/semantics.md "TFLite operators")
ADD_TFL, AVG_POOL2D_TFL, MEAN_TFL, PAD, RESHAPE, TRANSPOSE, SOFTMAX_TFL, QUANTIZE = range(9, 17)
OP_NAME.update({ADD_TFL: "AddTfl", AVG_POOL2D_TFL: "AvgPool2dTfl", MEAN_TFL: "MeanTfl", PAD: "Pad",
                RESHAPE: "Reshape", TRANSPOSE: "Transpose", SOFTMAX_TFL: "SoftmaxTfl", QUANTIZE: "Quantize"})
_N_INPUTS = {CONV2D: 4, FULLY_CONNECTED: 4, ADD: 2, LINEAR_F32: 3, GLOBAL_AVG_POOL: 1,
             MAX_POOL2D: 1, AVG_POOL2D: 1, DEQUANTIZE: 1, ADD_TFL: 2, AVG_POOL2D_TFL: 1, MEAN_TFL: 1,
             PAD: 1, RESHAPE: 1, TRANSPOSE: 1, SOFTMAX_TFL: 1, QUANTIZE: 1}


class TzmError(ValueError):
    """A model that cannot be written or read (one-line message)."""


def _align(n, a=ALIGN):
    return (n + a - 1) // a * a


def _le_bytes(values, dtype):
    """Values -> little-endian bytes of `dtype` (array.array is native-endian)."""
    a = array.array(_DTYPE_CODE[dtype], values)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def _from_le(raw, dtype):
    a = array.array(_DTYPE_CODE[dtype])
    a.frombytes(raw)
    if sys.byteorder != "little":
        a.byteswap()
    return a


def _encode_name(name):
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError:
        raise TzmError("name %r is not ASCII" % name) from None
    if not raw or len(raw) > NAME_LEN - 1 or b"\0" in raw:
        raise TzmError("name %r must be 1..%d characters" % (name, NAME_LEN - 1))
    return raw


def _window_out(size, k, stride, pad_a, pad_b):
    span = size + pad_a + pad_b - k
    return span // stride + 1 if span >= 0 and stride >= 1 else 0


def numel(dims):
    n = 1
    for d in dims:
        n *= d
    return n


class Tensor:
    """One tensor record. `data` holds the constant's values (a sequence, or little-endian
    bytes already); `channel_scales` the per-channel float32 scales."""

    def __init__(self, name, dtype, dims, flags=0, data=None, scale=0.0, zero_point=0,
                 channel_scales=None):
        self.name = name
        self.dtype = dtype
        self.dims = tuple(int(d) for d in dims)
        self.flags = flags
        self.data = data
        self.scale = scale
        self.zero_point = zero_point
        self.channel_scales = channel_scales

    @property
    def numel(self):
        return numel(self.dims)

    @property
    def is_constant(self):
        return bool(self.flags & CONSTANT)

    def values(self):
        """The constant's values as an array.array (int8 'b', int32 'i', float32 'f')."""
        if self.data is None:
            raise TzmError("tensor %s has no data" % self.name)
        if isinstance(self.data, (bytes, bytearray, memoryview)):
            return _from_le(bytes(self.data), self.dtype)
        return array.array(_DTYPE_CODE[self.dtype], self.data)

    def __repr__(self):
        return "Tensor(%s, %s, %s, flags=%d)" % (self.name, DTYPE_NAME.get(self.dtype), self.dims, self.flags)


class Op:
    def __init__(self, name, type, inputs, output, params=()):
        self.name = name
        self.type = type
        self.inputs = tuple(inputs)
        self.output = output
        self.params = tuple(params)

    def __repr__(self):
        return "Op(%s, %s, in=%s, out=%d)" % (self.name, OP_NAME.get(self.type), self.inputs, self.output)


class TzmBuilder:
    """Collects tensors and ops (in execution order) and serializes them."""

    def __init__(self):
        self.tensors = []
        self.ops = []
        self.input_tensor = -1
        self.output_tensor = -1
        self._names = set()

    def add_tensor(self, name, dtype, dims, flags=0, data=None, scale=0.0, zero_point=0,
                   channel_scales=None):
        """Adds a tensor; returns its index. Constants need `data` (values or LE bytes);
        PER_CHANNEL tensors need `channel_scales` (dims[0] positive floats)."""
        _encode_name(name)
        if name in self._names:
            raise TzmError("duplicate tensor name %s" % name)
        if dtype not in DTYPE_SIZE:
            raise TzmError("tensor %s: unknown dtype %r" % (name, dtype))
        if not 1 <= len(dims) <= MAX_DIMS or any(int(d) < 1 for d in dims):
            raise TzmError("tensor %s: bad dims %s" % (name, tuple(dims)))
        if flags & CONSTANT:
            if data is None:
                raise TzmError("constant %s has no data" % name)
            size = len(data) if isinstance(data, (bytes, bytearray)) else len(data) * DTYPE_SIZE[dtype]
            if size != numel(dims) * DTYPE_SIZE[dtype]:
                raise TzmError("constant %s: %d data bytes for dims %s" % (name, size, tuple(dims)))
        elif data is not None:
            raise TzmError("non-constant %s carries data" % name)
        if flags & PER_CHANNEL:
            if channel_scales is None or len(channel_scales) != int(dims[0]):
                raise TzmError("tensor %s: need %d per-channel scales" % (name, dims[0]))
            if not all(0.0 < s < float("inf") for s in channel_scales):
                raise TzmError("tensor %s: per-channel scales must be positive and finite" % name)
        if dtype == INT8 and not flags & CONSTANT:
            if not 0.0 < scale < float("inf"):
                raise TzmError("activation %s: scale %r must be positive and finite" % (name, scale))
            if not -128 <= zero_point <= 127:
                raise TzmError("activation %s: zero point %d outside int8" % (name, zero_point))
        self._names.add(name)
        self.tensors.append(Tensor(name, dtype, dims, flags, data, scale, zero_point, channel_scales))
        return len(self.tensors) - 1

    def add_op(self, name, type, inputs, output, params=()):
        _encode_name(name)
        if type not in _N_INPUTS:
            raise TzmError("op %s: unknown type %r" % (name, type))
        if len(inputs) != _N_INPUTS[type] or len(params) > MAX_PARAMS:
            raise TzmError("op %s: %d inputs / %d params" % (name, len(inputs), len(params)))
        for t in list(inputs) + [output]:
            if not 0 <= t < len(self.tensors):
                raise TzmError("op %s: tensor index %d out of range" % (name, t))
        self.ops.append(Op(name, type, inputs, output, params))
        return len(self.ops) - 1

    def to_bytes(self):
        """The complete file. Raises TzmError when the graph does not validate."""
        if not self.tensors or not self.ops:
            raise TzmError("a model needs at least one tensor and one op")
        if len(self.tensors) > MAX_TENSORS or len(self.ops) > MAX_OPS:
            raise TzmError("too many tensors or ops")
        tensor_table = HEADER.size
        op_table = tensor_table + TENSOR.size * len(self.tensors)
        data_offset = _align(op_table + OP.size * len(self.ops))

        # Data section: each blob (and each per-channel scale array) at the next 16-byte boundary.
        data = bytearray()
        placed = []  # per tensor: (data_offset, data_size, quant_offset, quant_count)
        for t in self.tensors:
            d_off = d_size = q_off = q_count = 0
            if t.flags & CONSTANT:
                raw = bytes(t.data) if isinstance(t.data, (bytes, bytearray)) else _le_bytes(t.data, t.dtype)
                data.extend(b"\0" * (_align(len(data)) - len(data)))
                d_off, d_size = len(data), len(raw)
                data.extend(raw)
            if t.flags & PER_CHANNEL:
                data.extend(b"\0" * (_align(len(data)) - len(data)))
                q_off, q_count = len(data), len(t.channel_scales)
                data.extend(_le_bytes(t.channel_scales, FLOAT32))
            placed.append((d_off, d_size, q_off, q_count))

        body = bytearray()
        for t, (d_off, d_size, q_off, q_count) in zip(self.tensors, placed):
            dims = list(t.dims) + [1] * (MAX_DIMS - len(t.dims))
            body += TENSOR.pack(_encode_name(t.name), t.dtype, len(t.dims), t.flags, *dims,
                                d_off, d_size, t.scale, t.zero_point, q_off, q_count, 0)
        for op in self.ops:
            inputs = list(op.inputs) + [-1] * (MAX_INPUTS - len(op.inputs))
            params = list(op.params) + [0] * (MAX_PARAMS - len(op.params))
            body += OP.pack(_encode_name(op.name), op.type, len(op.inputs), 1, *inputs, op.output, *params)
        body += b"\0" * (data_offset - HEADER.size - len(body))
        body += data

        file_size = HEADER.size + len(body)
        crc = zlib.crc32(bytes(body)) & 0xFFFFFFFF
        header = HEADER.pack(MAGIC, VERSION_MAJOR, _minor_version_needed(self.ops), HEADER.size, file_size, crc,
                             len(self.tensors), tensor_table, len(self.ops), op_table,
                             data_offset, len(data), self.input_tensor, self.output_tensor, 0, 0, 0)
        blob = header + bytes(body)
        read_tzm(blob)  # never hand out a file our own reader (and so the device) would reject
        return blob


def _requant_kind(op):
    """The requantization kind of a conv / fully-connected op (None for other ops)."""
    params = list(op.params) + [0] * (MAX_PARAMS - len(op.params))
    if op.type == CONV2D:
        return params[CONV_REQUANT]
    if op.type == FULLY_CONNECTED:
        return params[FC_REQUANT]
    return None


def _minor_version_needed(ops):
    """1 when an op uses the fixed-point requantization or a TFLite op type (format 1.1), else 0."""
    return 1 if any(op.type > DEQUANTIZE or _requant_kind(op) not in (None, REQUANT_FLOAT_SCALE)
                    for op in ops) else 0


class TzmModel:
    """A parsed .tzm: `header` (dict), `tensors` (list of Tensor with data as bytes),
    `ops` (list of Op), `input_tensor`, `output_tensor`."""

    def __init__(self, header, tensors, ops):
        self.header = header
        self.tensors = tensors
        self.ops = ops
        self.input_tensor = header["input_tensor"]
        self.output_tensor = header["output_tensor"]

    def tensor(self, name):
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def op(self, name):
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(name)


def _fail(why):
    raise TzmError(why)


def read_tzm(blob):
    """Parse and validate a .tzm file's bytes (the rules of docs/format.md, "Validation")."""
    blob = bytes(blob)
    if len(blob) < HEADER.size:
        _fail("truncated file (shorter than the 64-byte header)")
    fields = HEADER.unpack_from(blob, 0)
    keys = ("magic", "version_major", "version_minor", "header_size", "file_size", "crc32",
            "n_tensors", "tensor_table_offset", "n_ops", "op_table_offset", "data_offset",
            "data_size", "input_tensor", "output_tensor")
    h = dict(zip(keys, fields))
    if h["magic"] != MAGIC:
        _fail("bad magic (not a .tzm file)")
    if h["version_major"] != VERSION_MAJOR:
        _fail("unsupported major version %d" % h["version_major"])
    if h["header_size"] != HEADER.size:
        _fail("bad header size")
    if h["file_size"] != len(blob):
        _fail("truncated file" if h["file_size"] > len(blob) else "file size mismatch")
    if zlib.crc32(blob[HEADER.size:]) & 0xFFFFFFFF != h["crc32"]:
        _fail("CRC mismatch")
    if not 1 <= h["n_tensors"] <= MAX_TENSORS or not 1 <= h["n_ops"] <= MAX_OPS:
        _fail("tensor or op count out of range")
    for table, n, size in (("tensor_table_offset", h["n_tensors"], TENSOR.size),
                           ("op_table_offset", h["n_ops"], OP.size)):
        if h[table] < HEADER.size or h[table] % 4 or h[table] + n * size > len(blob):
            _fail("%s outside the file or misaligned" % table)
    if h["data_offset"] % ALIGN or h["data_offset"] + h["data_size"] > len(blob):
        _fail("data section outside the file or misaligned")
    data = blob[h["data_offset"]:h["data_offset"] + h["data_size"]]

    tensors = []
    for i in range(h["n_tensors"]):
        f = TENSOR.unpack_from(blob, h["tensor_table_offset"] + i * TENSOR.size)
        raw_name, dtype, rank, flags = f[0:4]
        dims, (d_off, d_size, scale, zero, q_off, q_count, _reserved) = f[4:8], f[8:]
        if b"\0" not in raw_name:
            _fail("tensor %d: name not NUL-terminated" % i)
        name = raw_name.split(b"\0", 1)[0].decode("ascii", "replace")
        if dtype not in DTYPE_SIZE:
            _fail("tensor %s: unknown dtype %d" % (name, dtype))
        if not 1 <= rank <= MAX_DIMS or any(d < 1 for d in dims) or any(d != 1 for d in dims[rank:]):
            _fail("tensor %s: dims out of range" % name)
        t = Tensor(name, dtype, dims[:rank], flags, None, scale, zero)
        if flags & CONSTANT:
            if d_off % ALIGN or d_off + d_size > len(data):
                _fail("tensor %s: blob outside the data section or misaligned" % name)
            if d_size != t.numel * DTYPE_SIZE[dtype]:
                _fail("tensor %s: blob size does not match its dims" % name)
            if flags & (INPUT | OUTPUT):
                _fail("tensor %s: a constant cannot be a model input/output" % name)
            t.data = data[d_off:d_off + d_size]
        elif dtype == INT8:
            if not 0.0 < scale < float("inf"):
                _fail("tensor %s: activation scale not positive and finite" % name)
            if not -128 <= zero <= 127:
                _fail("tensor %s: zero point outside int8" % name)
        if flags & PER_CHANNEL:
            if q_off % 4 or q_off + 4 * q_count > len(data) or q_count != dims[0]:
                _fail("tensor %s: per-channel scales out of range" % name)
            t.channel_scales = tuple(_from_le(data[q_off:q_off + 4 * q_count], FLOAT32))
            if not all(0.0 < s < float("inf") for s in t.channel_scales):
                _fail("tensor %s: per-channel scale not positive and finite" % name)
        tensors.append(t)

    n = len(tensors)
    if not 0 <= h["input_tensor"] < n or not 0 <= h["output_tensor"] < n:
        _fail("input/output tensor index out of range")
    ti, to = tensors[h["input_tensor"]], tensors[h["output_tensor"]]
    # float32 is allowed for TFLite models that start with QUANTIZE (checked per op below)
    if ti.is_constant or ti.dtype == INT32 or not ti.flags & INPUT:
        _fail("model input must be a non-constant int8 (or float32) tensor flagged input")
    if to.is_constant or not to.flags & OUTPUT:
        _fail("model output must be a non-constant tensor flagged output")

    ops = []
    produced = {h["input_tensor"]}
    for i in range(h["n_ops"]):
        f = OP.unpack_from(blob, h["op_table_offset"] + i * OP.size)
        raw_name, type, n_in, n_out = f[0:4]
        inputs, output, params = f[4:8], f[8], f[9:]
        if b"\0" not in raw_name:
            _fail("op %d: name not NUL-terminated" % i)
        name = raw_name.split(b"\0", 1)[0].decode("ascii", "replace")
        if type not in _N_INPUTS:
            _fail("op %s: unknown type %d" % (name, type))
        if n_in != _N_INPUTS[type] or n_out != 1 or any(x != -1 for x in inputs[n_in:]):
            _fail("op %s: wrong number of inputs/outputs" % name)
        for x in inputs[:n_in]:
            if not 0 <= x < n:
                _fail("op %s: input index out of range" % name)
            if not tensors[x].is_constant and x not in produced:
                _fail("op %s reads a tensor no earlier op produces" % name)
            if x == h["input_tensor"] and tensors[x].dtype == FLOAT32 and type != QUANTIZE:
                _fail("op %s: a float32 model input may only feed Quantize ops" % name)
        if not 0 <= output < n or tensors[output].is_constant or output in produced:
            _fail("op %s: bad output (constant, the input, or produced twice)" % name)
        op = Op(name, type, inputs[:n_in], output, params)
        _check_shapes(op, tensors, h["version_minor"])
        produced.add(output)
        ops.append(op)
    if h["output_tensor"] not in produced or h["output_tensor"] == h["input_tensor"]:
        _fail("no op produces the model output")
    return TzmModel(h, tensors, ops)


def _check_requant_operand(need, m, kind, co, version_minor):
    """The multiplier operand inputs[3] of a conv / fully-connected op for its requantization kind."""
    if kind == REQUANT_FLOAT_SCALE:
        need(m.dtype == FLOAT32 and m.is_constant and m.numel == co,
             "float-scale multiplier must be a constant float32 [Co]")
        return
    need(kind == REQUANT_FIXED_POINT, "unknown requantization kind")
    need(version_minor >= 1, "fixed-point requantization needs format 1.1")
    need(m.dtype == INT32 and m.is_constant and tuple(m.dims) == (2, co),
         "fixed-point requantization operand must be a constant int32 [2, Co]")
    q = m.values()
    need(all(v == 0 or v >= 1 << 30 for v in q[:co]), "fixed-point multiplier outside 0 or [2^30, 2^31)")
    need(all(-31 <= v <= 30 for v in q[co:]), "fixed-point shift outside [-31, 30]")


def _check_shapes(op, tensors, version_minor=VERSION_MINOR):
    """Shape/dtype rules per op type (format.md op table)."""
    x, y = tensors[op.inputs[0]], tensors[op.output]
    p = op.params
    name = op.name

    def need(cond, why):
        if not cond:
            _fail("op %s: %s" % (name, why))

    if op.type == CONV2D:
        w, b, m = (tensors[i] for i in op.inputs[1:])
        kh, kw, sh, sw, pt, pl, pb, pr, g, lo, hi = p[:11]
        need(x.dtype == INT8 and len(x.dims) == 3 and y.dtype == INT8 and len(y.dims) == 3,
             "conv input/output must be int8 [H, W, C]")
        need(w.dtype == INT8 and w.is_constant and len(w.dims) == 4 and w.flags & PER_CHANNEL,
             "conv weight must be a constant per-channel int8 [Co, kh, kw, Ci/g]")
        need(b.dtype == INT32 and b.is_constant, "conv bias must be constant int32")
        need(kh >= 1 and kw >= 1 and sh >= 1 and sw >= 1, "kernel or stride out of range")
        need(0 <= pt < kh and 0 <= pb < kh and 0 <= pl < kw and 0 <= pr < kw, "padding out of range")
        ci, co = x.dims[2], y.dims[2]
        need(g >= 1 and ci % g == 0 and co % g == 0, "groups do not divide the channels")
        need(w.dims == (co, kh, kw, ci // g), "weight shape does not match the op")
        need(b.numel == co, "bias/multiplier length != output channels")
        _check_requant_operand(need, m, p[CONV_REQUANT], co, version_minor)
        need(y.dims[0] == _window_out(x.dims[0], kh, sh, pt, pb)
             and y.dims[1] == _window_out(x.dims[1], kw, sw, pl, pr), "output shape does not chain")
        need(-128 <= lo <= hi <= 127, "activation range outside int8")
    elif op.type == FULLY_CONNECTED:
        w, b, m = (tensors[i] for i in op.inputs[1:])
        need(x.dtype == INT8 and y.dtype == INT8, "input/output must be int8")
        need(w.dtype == INT8 and w.is_constant and len(w.dims) == 2 and w.flags & PER_CHANNEL,
             "weight must be a constant per-channel int8 [Co, Ci]")
        need(b.dtype == INT32 and b.is_constant, "bias must be constant int32")
        need(w.dims[1] == x.numel and w.dims[0] == y.numel and b.numel == w.dims[0], "shapes do not chain")
        _check_requant_operand(need, m, p[FC_REQUANT], w.dims[0], version_minor)
        need(-128 <= p[0] <= p[1] <= 127, "activation range outside int8")
    elif op.type == ADD:
        x2 = tensors[op.inputs[1]]
        need(x.dtype == x2.dtype == y.dtype == INT8, "add needs int8 tensors")
        need(x.dims == x2.dims == y.dims, "add shapes do not chain")
        need(-128 <= p[0] <= p[1] <= 127, "activation range outside int8")
    elif op.type == GLOBAL_AVG_POOL:
        need(x.dtype == y.dtype == INT8 and len(x.dims) == 3 and y.dims[:2] == (1, 1)
             and len(y.dims) == 3 and y.dims[2] == x.dims[2], "global average pool shapes do not chain")
        need(y.scale == x.scale and y.zero_point == x.zero_point, "pool must keep the input quantization")
    elif op.type == LINEAR_F32:
        w, b = tensors[op.inputs[1]], tensors[op.inputs[2]]
        need(x.dtype == INT8 and y.dtype == FLOAT32, "float head maps int8 to float32")
        need(w.dtype == FLOAT32 and w.is_constant and len(w.dims) == 2 and b.dtype == FLOAT32 and b.is_constant,
             "float head weight/bias must be constant float32")
        need(w.dims[1] == x.numel and w.dims[0] == y.numel and b.numel == w.dims[0], "shapes do not chain")
    elif op.type in (MAX_POOL2D, AVG_POOL2D):
        kh, kw, sh, sw, pt, pl, pb, pr, lo, hi = p[:10]
        need(x.dtype == y.dtype == INT8 and len(x.dims) == 3 and len(y.dims) == 3 and y.dims[2] == x.dims[2],
             "pool input/output must be int8 [H, W, C]")
        need(kh >= 1 and kw >= 1 and sh >= 1 and sw >= 1 and 0 <= pt < kh and 0 <= pb < kh
             and 0 <= pl < kw and 0 <= pr < kw, "pool window out of range")
        need(y.dims[0] == _window_out(x.dims[0], kh, sh, pt, pb)
             and y.dims[1] == _window_out(x.dims[1], kw, sw, pl, pr), "output shape does not chain")
        need(y.scale == x.scale and y.zero_point == x.zero_point, "pool must keep the input quantization")
        need(-128 <= lo <= hi <= 127, "activation range outside int8")
    elif op.type == DEQUANTIZE:
        need(x.dtype == INT8 and y.dtype == FLOAT32 and x.numel == y.numel,
             "dequantize maps int8 to float32 of the same size")
    elif op.type == ADD_TFL:
        x2 = tensors[op.inputs[1]]
        need(x.dtype == x2.dtype == y.dtype == INT8, "add needs int8 tensors")
        need(x.dims == x2.dims == y.dims, "add shapes do not chain")
        need(0 <= p[2] <= 20 and all(p[k] >= 0 and -31 <= p[k + 1] <= 0 for k in (3, 5, 7)),
             "add fixed-point parameters out of range")
        need(-128 <= p[0] <= p[1] <= 127, "activation range outside int8")
    elif op.type == AVG_POOL2D_TFL:
        kh, kw, sh, sw, pt, pl, pb, pr, lo, hi = p[:10]
        need(x.dtype == y.dtype == INT8 and len(x.dims) == 3 and len(y.dims) == 3 and y.dims[2] == x.dims[2],
             "pool input/output must be int8 [H, W, C]")
        need(kh >= 1 and kw >= 1 and sh >= 1 and sw >= 1 and 0 <= pt < kh and 0 <= pb < kh
             and 0 <= pl < kw and 0 <= pr < kw and kh * kw <= 65536, "pool window out of range")
        need(y.dims[0] == _window_out(x.dims[0], kh, sh, pt, pb)
             and y.dims[1] == _window_out(x.dims[1], kw, sw, pl, pr), "output shape does not chain")
        need(-128 <= lo <= hi <= 127, "activation range outside int8")
    elif op.type == MEAN_TFL:
        need(x.dtype == y.dtype == INT8 and len(x.dims) == 3, "mean maps int8 [H, W, C] to int8")
        need(y.dims in ((1, 1, x.dims[2]), (x.dims[2],)), "mean output must be [1, 1, C] or [C]")
        need(p[0] >= 0 and -31 <= p[1] <= 30 and (255 * x.dims[0] * x.dims[1]) << max(p[1], 0) < 2 ** 31,
             "mean fixed-point parameters out of range")
    elif op.type == PAD:
        need(x.dtype == y.dtype == INT8 and len(x.dims) == len(y.dims), "pad maps int8 to int8 of the same rank")
        r = len(x.dims)
        need(all(p[k] >= 0 and p[4 + k] >= 0 for k in range(4)) and all(p[k] == p[4 + k] == 0 for k in range(r, 4)),
             "pad amounts out of range")
        need(all(y.dims[k] == p[k] + x.dims[k] + p[4 + k] for k in range(r)), "pad output shape does not chain")
        need(-128 <= p[8] <= 127, "pad value outside int8")
    elif op.type == RESHAPE:
        need(x.dtype == y.dtype and x.numel == y.numel, "reshape keeps the dtype and the element count")
    elif op.type == TRANSPOSE:
        need(x.dtype == y.dtype == INT8 and len(x.dims) == len(y.dims), "transpose maps int8 to int8 of the same rank")
        r = len(x.dims)
        need(sorted(p[:r]) == list(range(r)) and all(v == 0 for v in p[r:4]), "transpose permutation out of range")
        need(all(y.dims[k] == x.dims[p[k]] for k in range(r)), "transpose output shape does not chain")
    elif op.type == SOFTMAX_TFL:
        need(x.dtype == y.dtype == INT8 and x.dims == y.dims, "softmax maps int8 to int8 of the same dims")
        need(y.zero_point == -128 and y.scale == 1.0 / 256, "softmax output must have scale 1/256 and zero point -128")
        need(x.dims[-1] <= 4095, "softmax axis longer than 4095")
        need(p[0] >= 0 and 0 <= p[1] <= 31 and p[2] <= 0 and (-p[2]) << p[1] <= 31 << 26,
             "softmax fixed-point parameters out of range")
    elif op.type == QUANTIZE:
        need(y.dtype == INT8 and x.numel == y.numel, "quantize maps to int8 of the same size")
        need(x.dtype in (INT8, FLOAT32), "quantize reads int8 or float32")
        if x.dtype == INT8:
            need(p[0] >= 0 and -31 <= p[1] <= 30 and 255 << max(p[1], 0) < 2 ** 31,
                 "quantize fixed-point parameters out of range")
