#!/usr/bin/python3
"""A copy of a .tzm whose Pad ops fill with the value 0 instead of the zero point: what Arm NN 20.08
computes for a TFLite PAD on an int8 tensor (it ignores the zero point; TensorFlow Lite and TFLM
fill with it). `tinyzo run` on the copy is the reference Arm NN's outputs are compared with; on
the file itself tinyzo computes TFLite's semantics. Standard library only.

    python3 python/tflite_eval/armnn_pads.py IN.tzm OUT.tzm

The .tzm layout is docs/format.md's: a 64-byte header (CRC-32 of everything after it at byte 16),
104-byte op records with the op type at +32 and the int32 params at +56; a Pad op (OpType 12)
holds its fill value in params[8]."""

import struct
import sys
import zlib

K_PAD = 12
PAD_VALUE_PARAM = 8


def pads_fill_zero(data):
    """(the copy's bytes, how many Pad ops)."""
    b = bytearray(data)
    _magic, _vmaj, _vmin, hsize, fsize, _crc, _n_t, _t_off, n_ops, ops_off = struct.unpack_from("<IHHIIIIIII", b, 0)
    if fsize != len(b):
        raise ValueError(f"not a .tzm: header size {fsize}, file {len(b)} bytes")
    n = 0
    for k in range(n_ops):
        rec = ops_off + 104 * k
        if struct.unpack_from("<H", b, rec + 32)[0] == K_PAD:
            struct.pack_into("<i", b, rec + 56 + 4 * PAD_VALUE_PARAM, 0)
            n += 1
    struct.pack_into("<I", b, 16, zlib.crc32(bytes(b[hsize:])) & 0xFFFFFFFF)
    return bytes(b), n


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    data, n = pads_fill_zero(open(sys.argv[1], "rb").read())
    open(sys.argv[2], "wb").write(data)
    print(f"{sys.argv[2]}: {n} Pad ops fill with 0 (Arm NN 20.08's PAD)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
