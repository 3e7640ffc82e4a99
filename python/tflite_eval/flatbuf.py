"""A minimal read-only walk over a TensorFlow Lite FlatBuffer (field ids of TensorFlow Lite's
published schema.fbs), enough to patch one field of a copy for Arm NN and to compare two files
buffer by buffer. Standard library only."""

import struct


def _u32(b, at):
    return struct.unpack_from("<I", b, at)[0]


def field(b, table, field_id):
    """Absolute position of a table field's value, or None when absent (default)."""
    vt = table - struct.unpack_from("<i", b, table)[0]
    vt_size = struct.unpack_from("<H", b, vt)[0]
    slot = 4 + 2 * field_id
    if slot >= vt_size:
        return None
    off = struct.unpack_from("<H", b, vt + slot)[0]
    return table + off if off else None


def deref(b, at):
    return at + _u32(b, at)


def vector(b, at):
    """Positions of the elements (4-byte slots) of the vector the offset at `at` points to."""
    v = deref(b, at)
    return [v + 4 + 4 * i for i in range(_u32(b, v))]


def vector_bytes(b, at):
    """(start, length) of a [ubyte] vector the offset at `at` points to."""
    v = deref(b, at)
    return v + 4, _u32(b, v)


def tensors(b):
    """Per tensor of subgraph 0: dict(index, name, shape, buffer)."""
    root = deref(b, 0)
    sg = deref(b, vector(b, field(b, root, 2))[0])          # Model.subgraphs[0]
    out = []
    for i, slot in enumerate(vector(b, field(b, sg, 0))):   # SubGraph.tensors
        t = deref(b, slot)
        shape_at = field(b, t, 0)                           # Tensor.shape
        shape = [struct.unpack_from("<i", b, s)[0] for s in vector(b, shape_at)] if shape_at else []
        buf_at = field(b, t, 2)                             # Tensor.buffer
        name_at = field(b, t, 3)                            # Tensor.name
        name = ""
        if name_at:
            s = deref(b, name_at)
            name = bytes(b[s + 4:s + 4 + _u32(b, s)]).decode("utf-8", "replace")
        out.append({"index": i, "name": name, "shape": shape, "buffer": _u32(b, buf_at) if buf_at else 0})
    return out


def buffer_ranges(b):
    """(start, length) of every Model.buffers[k].data in the file ((0, 0) when empty)."""
    root = deref(b, 0)
    out = []
    for slot in vector(b, field(b, root, 4)):               # Model.buffers
        buf = deref(b, slot)
        d = field(b, buf, 0)                                # Buffer.data
        out.append(vector_bytes(b, d) if d else (0, 0))
    return out


def zero_rank1_quantized_dimension(data):
    """A copy of the model bytes with quantized_dimension = 0 on every rank-1 tensor (Arm NN 20.08
    checks it against the rank; TFLite ignores it on biases), and how many were patched."""
    b = bytearray(data)
    root = deref(b, 0)
    patched = 0
    for sg_slot in vector(b, field(b, root, 2)):             # Model.subgraphs
        sg = deref(b, sg_slot)
        for t_slot in vector(b, field(b, sg, 0)):            # SubGraph.tensors
            t = deref(b, t_slot)
            shape = field(b, t, 0)
            q = field(b, t, 4)                               # Tensor.quantization
            if shape is None or q is None or len(vector(b, shape)) != 1:
                continue
            qd = field(b, deref(b, q), 6)                    # QuantizationParameters.quantized_dimension
            if qd is not None and struct.unpack_from("<i", b, qd)[0] != 0:
                struct.pack_into("<i", b, qd, 0)
                patched += 1
    return bytes(b), patched


TENSOR_TYPES = {0: "float32", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}
# BuiltinOperator codes of the operators whose inputs 1 and 2 are the trainable weights and bias.
WEIGHTED_OPERATORS = {3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 9: "FULLY_CONNECTED"}


def _subgraph0(b):
    root = deref(b, 0)
    return root, deref(b, vector(b, field(b, root, 2))[0])


def _ints(b, at, fmt="<i", size=4):
    if at is None:
        return []
    v = deref(b, at)
    n = _u32(b, v)
    return [struct.unpack_from(fmt, b, v + 4 + size * i)[0] for i in range(n)]


def tensor_quantization(b, index):
    """(dtype name, scale, zero point) of tensor `index` of subgraph 0 (scale 0.0 when absent)."""
    _, sg = _subgraph0(b)
    t = deref(b, vector(b, field(b, sg, 0))[index])
    ty = field(b, t, 1)
    dtype = TENSOR_TYPES.get(b[ty] if ty is not None else 0, "other")
    q = field(b, t, 4)
    if q is None:
        return dtype, 0.0, 0
    q = deref(b, q)
    scales = _ints(b, field(b, q, 2), "<f")
    zeros = _ints(b, field(b, q, 3), "<q", 8)
    return dtype, (scales[0] if scales else 0.0), (zeros[0] if zeros else 0)


def output_tensor(b):
    """Index of subgraph 0's (first) output tensor."""
    _, sg = _subgraph0(b)
    return _ints(b, field(b, sg, 2))[0]


def operators(b):
    """Per operator of subgraph 0: dict(index, code (BuiltinOperator), inputs, outputs)."""
    root, sg = _subgraph0(b)
    codes = []
    for slot in vector(b, field(b, root, 1)):                # Model.operator_codes
        oc = deref(b, slot)
        dep = field(b, oc, 0)                                # deprecated_builtin_code (int8)
        new = field(b, oc, 3)                                # builtin_code (int32)
        c_dep = struct.unpack_from("<b", b, dep)[0] if dep is not None else 0
        c_new = struct.unpack_from("<i", b, new)[0] if new is not None else 0
        codes.append(max(c_dep, c_new))
    out = []
    for k, slot in enumerate(vector(b, field(b, sg, 3))):    # SubGraph.operators
        op = deref(b, slot)
        oi = field(b, op, 0)
        out.append({"index": k, "code": codes[_u32(b, oi) if oi is not None else 0],
                    "inputs": _ints(b, field(b, op, 1)), "outputs": _ints(b, field(b, op, 2))})
    return out


def differing_buffers(a, b):
    """Compares two files of the same graph. Returns (changed buffer indices, bytes that differ outside
    every buffer's data, and the weighted operators (index, name) whose weight or bias buffer changed)."""
    if len(a) != len(b):
        raise ValueError(f"sizes differ: {len(a)} vs {len(b)} bytes")
    diff = [i for i in range(len(a)) if a[i] != b[i]] if a != b else []
    ranges = buffer_ranges(a)
    if ranges != buffer_ranges(b):
        raise ValueError("the buffers lie at different places")
    changed, outside = set(), 0
    for i in diff:
        hit = [k for k, (s, n) in enumerate(ranges) if s <= i < s + n]
        if hit:
            changed.add(hit[0])
        else:
            outside += 1
    ts = tensors(a)
    weighted = []
    for op in operators(a):
        if op["code"] in WEIGHTED_OPERATORS:
            bufs = {ts[t]["buffer"] for t in op["inputs"][1:3] if t >= 0}
            if bufs & changed:
                weighted.append((op["index"], WEIGHTED_OPERATORS[op["code"]]))
    return changed, outside, weighted


def weight_and_bias_buffers(b):
    """Buffer indices holding the weights or biases (inputs 1 and 2) of CONV_2D / DEPTHWISE_CONV_2D /
    FULLY_CONNECTED operators."""
    ts = tensors(b)
    out = set()
    for op in operators(b):
        if op["code"] in WEIGHTED_OPERATORS:
            out |= {ts[t]["buffer"] for t in op["inputs"][1:3] if t >= 0}
    return out


DEQUANTIZE = 6


def output_lsb(b):
    """The real value of one LSB of the model's last int8 result: the output's scale when the output is
    int8, the scale of a final DEQUANTIZE's int8 input when the output is float32 made by one; None
    otherwise (a float output computed in float)."""
    out = output_tensor(b)
    dtype, scale, _ = tensor_quantization(b, out)
    if dtype == "int8":
        return scale
    for op in operators(b):
        if out in op["outputs"] and op["code"] == DEQUANTIZE:
            in_dtype, in_scale, _ = tensor_quantization(b, op["inputs"][0])
            return in_scale if in_dtype == "int8" else None
    return None


PAD = 34


def with_output(data, tensor_index):
    """A copy of the model bytes whose (first) subgraph output is tensor `tensor_index`: a runtime then
    computes the graph up to that tensor (to compare an intermediate result). Changes one int32."""
    b = bytearray(data)
    _, sg = _subgraph0(b)
    v = deref(b, field(b, sg, 2))                            # SubGraph.outputs
    struct.pack_into("<i", b, v + 4, tensor_index)
    return bytes(b)


def pads_with_nonzero_zero_point(b):
    """Indices of the PAD operators whose output zero point is not 0: TFLite fills with the zero point
    (real 0); Arm NN 20.08 fills int8 tensors with the value 0 instead."""
    out = []
    for op in operators(b):
        if op["code"] == PAD and tensor_quantization(b, op["outputs"][0])[2] != 0:
            out.append(op["index"])
    return out


def constant_int32(b, tensor_index):
    """The values of a constant int32 tensor (from its buffer), as a flat list."""
    t = tensors(b)[tensor_index]
    start, n = buffer_ranges(b)[t["buffer"]]
    return list(struct.unpack_from(f"<{n // 4}i", b, start))


def pad_amounts(b, op_index):
    """[(before, after)] per dimension of a PAD operator's paddings."""
    v = constant_int32(b, operators(b)[op_index]["inputs"][1])
    return [(v[2 * i], v[2 * i + 1]) for i in range(len(v) // 2)]
