#!/usr/bin/python3
"""Compare the C++ engine with reference.py, bit for bit, on every op output.

    /usr/bin/python3 tests/reference/check_engine.py --tinyzo build/tinyzo --model M.tzm \
        [--data-dir D] [--n 200] [--first 0] [--source SRC] [--kernels ref|best] [--dump FILE]

Runs `tinyzo --data-dir D dump --model M --first F --count N --out TMP`, whose file is
"TZD1", u32 n_images, u32 n_ops, then per image: u8 label, per op in execution order
(u32 nbytes, the op's output bytes: int8, or float32 little-endian). The op names come from the
.tzm (python/tinyzo/tzm.py reader); the expected outputs from reference.py run on the ORIGINAL
source model (--source, default <data>/models/original/mcunet_in1_cifar10.pth). `--dump FILE`
compares an existing dump instead of running the binary.

Exit 0 when every op output and the logits are bit-identical; 1 on the first mismatch (printed:
layer, image, element, both values); 2 when the check cannot run (binary fails, bad files).
"""

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402
from tinyzo import tzm  # noqa: E402  (reference.py put python/ on the path)


class CheckError(Exception):
    """The comparison cannot be made (exit 2)."""


def read_dump(path, op_sizes):
    """Parse a dump: (labels uint8 [n], list per op of uint8 [n, nbytes]). `op_sizes` are the
    expected byte sizes per op (from the .tzm), checked against every record."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 12 or blob[:4] != b"TZD1":
        raise CheckError("%s: not a tinyzo dump (magic %r)" % (path, blob[:4]))
    n_images, n_ops = struct.unpack_from("<II", blob, 4)
    if n_ops != len(op_sizes):
        raise CheckError("%s: %d ops per image, the model has %d" % (path, n_ops, len(op_sizes)))
    record = 1 + sum(4 + s for s in op_sizes)
    if len(blob) != 12 + n_images * record:
        raise CheckError("%s: %d bytes, expected %d for %d images of %d ops (truncated, or another model's dump)"
                         % (path, len(blob), 12 + n_images * record, n_images, n_ops))
    raw = np.frombuffer(blob, np.uint8, offset=12).reshape(n_images, record)
    labels = raw[:, 0].copy()
    outs, pos = [], 1
    for k, size in enumerate(op_sizes):
        sizes = raw[:, pos:pos + 4].copy().view("<u4").ravel()
        if (sizes != size).any():
            i = int(np.argmax(sizes != size))
            raise CheckError("%s: image %d op %d has %d bytes, expected %d" % (path, i, k, sizes[i], size))
        outs.append(raw[:, pos + 4:pos + 4 + size])
        pos += 4 + size
    return labels, outs


def expected_bytes(a):
    """reference output [n, ...] -> uint8 [n, nbytes] in the dump's byte order."""
    a = a.astype("<f4") if a.dtype == np.float32 else a
    return np.ascontiguousarray(a).view(np.uint8).reshape(a.shape[0], -1)


def main():
    ap = argparse.ArgumentParser(description="engine vs reference.py, bit for bit")
    ap.add_argument("--tinyzo", help="path of the tinyzo binary")
    ap.add_argument("--model", required=True, help="the imported .tzm")
    ap.add_argument("--source", help="its original source model (default: the CIFAR-10 .pth)")
    ap.add_argument("--arch", help="architecture .pkl of a .pth (default mcunet-5fps.pkl beside it)")
    ap.add_argument("--data-dir", default=reference.default_data_dir())
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--dump", help="compare this existing dump file instead of running the binary")
    ap.add_argument("--kernels", choices=("ref", "best"), help="kernel set passed to `tinyzo dump`")
    args = ap.parse_args()
    if not args.dump and not args.tinyzo:
        ap.error("give --tinyzo (or --dump)")
    try:
        return check(args)
    except (CheckError, tzm.TzmError, OSError) as e:
        print("check_engine: error: %s" % e, file=sys.stderr)
        return 2


def check(args):
    with open(args.model, "rb") as f:
        model = tzm.read_tzm(f.read())
    names = [op.name for op in model.ops]
    outputs = [model.tensors[op.output] for op in model.ops]
    op_sizes = [t.numel * tzm.DTYPE_SIZE[t.dtype] for t in outputs]

    t0 = time.time()
    if args.dump:
        labels, engine = read_dump(args.dump, op_sizes)
    else:
        fd, tmp = tempfile.mkstemp(prefix="tinyzo_dump_", suffix=".tzd")
        os.close(fd)
        try:
            cmd = [args.tinyzo, "--data-dir", args.data_dir, "dump", "--model", args.model,
                   "--first", str(args.first), "--count", str(args.n), "--out", tmp]
            if args.kernels:
                cmd += ["--kernels", args.kernels]
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
            if r.returncode != 0:
                msg = (r.stderr or r.stdout).strip().splitlines()
                raise CheckError("%s exited with %d%s" % (" ".join(cmd), r.returncode, ": " + msg[-1] if msg else ""))
            labels, engine = read_dump(tmp, op_sizes)
        finally:
            os.unlink(tmp)
    t_engine = time.time() - t0
    if len(labels) != args.n:
        raise CheckError("the dump holds %d images, expected %d" % (len(labels), args.n))

    source = args.source or os.path.join(args.data_dir, "models", "original", "mcunet_in1_cifar10.pth")
    t0 = time.time()
    net = reference.build_network(source, args.arch)
    if reference.op_names(net) != names:
        raise CheckError("the .tzm ops %s... do not match %s's layers %s..."
                         % (names[:3], os.path.basename(source), reference.op_names(net)[:3]))
    ref_labels, ref = reference.run_images(net, args.data_dir, args.first, args.n)
    t_ref = time.time() - t0
    if not np.array_equal(labels, ref_labels):
        i = int(np.argmax(labels != ref_labels))
        print("MISMATCH: image %d label: engine %d, reference %d" % (args.first + i, labels[i], ref_labels[i]))
        return 1

    # Report the earliest layer that differs: later layers only inherit its error.
    for k, name in enumerate(names):
        want = expected_bytes(ref[name])
        got = engine[k]
        if want.shape != got.shape:
            raise CheckError("op %s: reference gives %d bytes per image, the dump %d"
                             % (name, want.shape[1], got.shape[1]))
        diff = np.argwhere(want != got)
        if len(diff):
            img, byte = (int(v) for v in diff[0])
            t = outputs[k]
            if t.dtype == tzm.FLOAT32:
                elem = byte // 4
                e_val = got[img].view("<f4")[elem]
                r_val = want[img].view("<f4")[elem]
                vals = "engine %r (0x%08x), reference %r (0x%08x)" % (
                    float(e_val), int(got[img].view("<u4")[elem]), float(r_val), int(want[img].view("<u4")[elem]))
            else:
                elem = byte
                vals = "engine %d, reference %d" % (got[img].view(np.int8)[elem], want[img].view(np.int8)[elem])
            index = np.unravel_index(elem, t.dims)
            n_bad_images = len(np.unique(diff[:, 0]))
            print("MISMATCH: layer %s (op %d of %d), image %d, element %s of %s: %s (%d images differ in this layer)"
                  % (name, k, len(names), args.first + img, tuple(int(v) for v in index), t.dims, vals, n_bad_images))
            return 1
    head = "logits" if outputs[-1].dtype == tzm.FLOAT32 else "outputs"
    print("engine == reference: %d images, %d layers, %s bit-exact (engine %.1fs, reference %.1fs)"
          % (args.n, len(names), head, t_engine, t_ref))
    return 0


if __name__ == "__main__":
    sys.exit(main())
