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
