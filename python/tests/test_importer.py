"""Tests of the .tzm writer/reader and the model importer. Standard library only, so any python3
runs them:

    python3 python/tests/test_importer.py          (or: python3 -m unittest discover -s python/tests)

The source models are read from $TINYZO_DATA or <repo>/../shared/data; if neither exists the
model tests fail (they are never skipped silently).
"""

import os
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))
from tinyzo import importer, torchzip, tzm  # noqa: E402

DATA_DIR = os.environ.get("TINYZO_DATA") or os.path.join(os.path.dirname(REPO), "shared", "data")
MODELS = os.path.join(DATA_DIR, "models", "original")
IMPORTER = os.path.join(REPO, "python", "tinyzo", "importer.py")

# Per source: (ops, tensors, conv-like ops, adds, input dims, output dims, first/last op names).
EXPECTED = {
    "mcunet_in1_cifar10.pth": (51, 180, 42, 7, (128, 128, 3), (10,), "0", "4"),
    "mcunet-5fps.pkl": (52, 182, 43, 7, (128, 128, 3), (1000,), "first_conv", "dequantize"),
    "mbv2-w0.35.pkl": (64, 221, 52, 10, (128, 128, 3), (1000,), "first_conv", "dequantize"),
    "proxyless-w0.3.pkl": (76, 260, 61, 13, (128, 128, 3), (1000,), "first_conv", "dequantize"),
}


def model_path(name):
    path = os.path.join(MODELS, name)
    if not os.path.exists(path):
        raise AssertionError("source model %s not found: set TINYZO_DATA to the shared data directory "
                             "(tried %s)" % (name, DATA_DIR))
    return path


def run_importer(*args, module=False):
    cmd = [sys.executable] + (["-m", "tinyzo.importer"] if module else [IMPORTER]) + list(args)
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env)


def small_model():
    """input [4,4,2] -> conv 3x3 (2->2) -> add(input, conv) -> pool -> LinearF32 [3]."""
    b = tzm.TzmBuilder()
    x = b.add_tensor("input", tzm.INT8, (4, 4, 2), tzm.INPUT, scale=0.5, zero_point=-3)
    w = b.add_tensor("c.weight", tzm.INT8, (2, 3, 3, 2), tzm.CONSTANT | tzm.TRAINABLE | tzm.PER_CHANNEL,
                     list(range(-18, 18)), channel_scales=[0.25, 0.125])
    bias = b.add_tensor("c.bias", tzm.INT32, (2,), tzm.CONSTANT | tzm.TRAINABLE, [2 ** 31 - 1, -2 ** 31])
    m = b.add_tensor("c.mult", tzm.FLOAT32, (2,), tzm.CONSTANT, [0.125, 0.0625])
    y = b.add_tensor("c", tzm.INT8, (4, 4, 2), scale=0.75, zero_point=5)
    b.add_op("c", tzm.CONV2D, (x, w, bias, m), y, (3, 3, 1, 1, 1, 1, 1, 1, 1, -128, 127))
    a = b.add_tensor("add", tzm.INT8, (4, 4, 2), scale=1.0, zero_point=0)
    b.add_op("add", tzm.ADD, (x, y), a, (-128, 127))
    p = b.add_tensor("pool", tzm.INT8, (1, 1, 2), scale=1.0, zero_point=0)
    b.add_op("pool", tzm.GLOBAL_AVG_POOL, (a,), p)
    hw = b.add_tensor("h.weight", tzm.FLOAT32, (3, 2), tzm.CONSTANT, [1.5, -2.0, 0.0, 1e-3, 3.0, 4.0])
    hb = b.add_tensor("h.bias", tzm.FLOAT32, (3,), tzm.CONSTANT, [0.5, 0.25, -1.0])
    out = b.add_tensor("logits", tzm.FLOAT32, (3,), tzm.OUTPUT)
    b.add_op("h", tzm.LINEAR_F32, (p, hw, hb), out)
    b.input_tensor, b.output_tensor = x, out
    return b


class TzmRoundTrip(unittest.TestCase):
    def test_round_trip(self):
        blob = small_model().to_bytes()
        self.assertEqual(blob[:4], b"TZM1")
        m = tzm.read_tzm(blob)
        h = m.header
        self.assertEqual((h["version_major"], h["version_minor"], h["header_size"]), (1, 0, 64))
        self.assertEqual(h["file_size"], len(blob))
        self.assertEqual(h["crc32"], zlib.crc32(blob[64:]) & 0xFFFFFFFF)
        self.assertEqual((h["n_tensors"], h["n_ops"]), (10, 4))
        self.assertEqual(h["tensor_table_offset"], 64)
        self.assertEqual(h["op_table_offset"], 64 + 80 * 10)
        self.assertEqual(h["data_offset"] % 16, 0)
        self.assertLessEqual(h["data_offset"] + h["data_size"], len(blob))
        self.assertEqual((m.input_tensor, m.output_tensor), (0, 9))

        w = m.tensor("c.weight")
        self.assertEqual((w.dtype, w.dims, w.flags), (tzm.INT8, (2, 3, 3, 2), 1 | 2 | 16))
        self.assertEqual(list(w.values()), list(range(-18, 18)))
        self.assertEqual(w.channel_scales, (0.25, 0.125))
        self.assertEqual(list(m.tensor("c.bias").values()), [2 ** 31 - 1, -2 ** 31])
        self.assertEqual(list(m.tensor("h.weight").values()), [1.5, -2.0, 0.0, struct.unpack("<f", struct.pack("<f", 1e-3))[0], 3.0, 4.0])
        x = m.tensor("input")
        self.assertEqual((x.scale, x.zero_point, x.flags, x.dims), (0.5, -3, tzm.INPUT, (4, 4, 2)))
        # every blob and per-channel scale array starts on a 16-byte boundary of the data section
        for i in range(m.header["n_tensors"]):
            f = tzm.TENSOR.unpack_from(blob, 64 + 80 * i)
            self.assertEqual(f[8] % 16, 0)
            self.assertEqual(f[12] % 16, 0)
            self.assertEqual(f[14], 0)  # reserved
        op = m.op("c")
        self.assertEqual((op.type, op.inputs, op.output), (tzm.CONV2D, (0, 1, 2, 3), 4))
        self.assertEqual(op.params, (3, 3, 1, 1, 1, 1, 1, 1, 1, -128, 127, 0))
        raw = tzm.OP.unpack_from(blob, m.header["op_table_offset"] + 104 * 1)
        self.assertEqual(raw[2:8], (2, 1, 0, 4, -1, -1))  # Add: n_inputs 2, unused slots -1

    def test_reader_rejects_corruption(self):
        blob = small_model().to_bytes()
        bad_crc = bytearray(blob)
        bad_crc[-1] ^= 1
        bad_major = bytearray(blob)
        bad_major[4:6] = struct.pack("<H", 2)
        bad_magic = b"XZM1" + blob[4:]
        for bad, why in ((bytes(bad_crc), "CRC"), (blob[:-1], "truncated"), (bytes(bad_major), "major"),
                         (bad_magic, "magic"), (blob[:40], "truncated")):
            with self.assertRaisesRegex(tzm.TzmError, why):
                tzm.read_tzm(bad)

    def test_newer_minor_version_accepted(self):
        blob = bytearray(small_model().to_bytes())
        blob[6:8] = struct.pack("<H", 3)
        tzm.read_tzm(bytes(blob))

    def test_writer_rejects_bad_graphs(self):
        b = small_model()
        b.tensors[4].dims = (3, 4, 2)  # conv output that does not chain
        with self.assertRaisesRegex(tzm.TzmError, "does not chain"):
            b.to_bytes()
        b = tzm.TzmBuilder()
        with self.assertRaisesRegex(tzm.TzmError, "characters"):
            b.add_tensor("x" * 32, tzm.INT8, (1,), tzm.INPUT, scale=1.0)
        with self.assertRaisesRegex(tzm.TzmError, "data bytes"):
            b.add_tensor("w", tzm.INT8, (2, 2), tzm.CONSTANT, [1, 2, 3])
        with self.assertRaisesRegex(tzm.TzmError, "scale"):
            b.add_tensor("a", tzm.INT8, (2,), scale=0.0)


def fixed_point_model(m_values=(1 << 30, 1717986918), shifts=(-3, 0), requant=tzm.REQUANT_FIXED_POINT):
    """small_model() with its conv on TFLite's fixed-point requantization (format 1.1)."""
    b = small_model()
    b.tensors[3] = tzm.Tensor("c.mult", tzm.INT32, (2, 2), tzm.CONSTANT, list(m_values) + list(shifts))
    op = b.ops[0]
    params = list(op.params) + [0] * (tzm.MAX_PARAMS - len(op.params))
    params[tzm.CONV_REQUANT] = requant
    b.ops[0] = tzm.Op(op.name, op.type, op.inputs, op.output, tuple(params))
    return b


class TzmFixedPoint(unittest.TestCase):
    def test_round_trip_is_version_1_1(self):
        blob = fixed_point_model().to_bytes()
        m = tzm.read_tzm(blob)
        self.assertEqual(m.header["version_minor"], 1)
        self.assertEqual(m.op("c").params[tzm.CONV_REQUANT], tzm.REQUANT_FIXED_POINT)
        self.assertEqual(list(m.tensor("c.mult").values()), [1 << 30, 1717986918, -3, 0])
        # Without a fixed-point op the writer keeps 1.0.
        self.assertEqual(tzm.read_tzm(small_model().to_bytes()).header["version_minor"], 0)

    def test_bad_operands_rejected(self):
        for kwargs, why in (({"m_values": (5, 1 << 30)}, "fixed-point multiplier"),
                            ({"shifts": (31, 0)}, "fixed-point shift"),
                            ({"shifts": (0, -32)}, "fixed-point shift"),
                            ({"requant": 2}, "unknown requantization kind"),
                            ({"requant": tzm.REQUANT_FLOAT_SCALE}, "float-scale multiplier")):
            with self.assertRaisesRegex(tzm.TzmError, why):
                fixed_point_model(**kwargs).to_bytes()
        # A fixed-point op in a file that says 1.0.
        blob = bytearray(fixed_point_model().to_bytes())
        blob[6:8] = struct.pack("<H", 0)
        blob[8 + 4 + 4:8 + 4 + 8] = struct.pack("<I", zlib.crc32(bytes(blob[64:])) & 0xFFFFFFFF)
        with self.assertRaisesRegex(tzm.TzmError, "needs format 1.1"):
            tzm.read_tzm(bytes(blob))


class ImportModels(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def import_ok(self, name, module=False):
        out = os.path.join(self.tmp.name, name + ".tzm")
        r = run_importer(model_path(name), "-o", out, module=module)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.strip().splitlines()), 1, r.stdout)
        with open(out, "rb") as f:
            blob = f.read()
        return r.stdout, blob, tzm.read_tzm(blob)

    def test_all_models(self):
        for name, (n_ops, n_tensors, n_conv, n_add, in_dims, out_dims, first, last) in EXPECTED.items():
            with self.subTest(model=name):
                line, blob, m = self.import_ok(name)
                self.assertIn("%d ops, %d tensors" % (n_ops, n_tensors), line)
                self.assertIn("%d bytes" % len(blob), line)
                self.assertEqual(m.header["crc32"], zlib.crc32(blob[64:]) & 0xFFFFFFFF)
                self.assertEqual((len(m.ops), len(m.tensors)), (n_ops, n_tensors))
                types = [op.type for op in m.ops]
                self.assertEqual(types.count(tzm.CONV2D) + types.count(tzm.FULLY_CONNECTED), n_conv)
                self.assertEqual(types.count(tzm.ADD), n_add)
                self.assertEqual((m.ops[0].name, m.ops[-1].name), (first, last))
                x, y = m.tensors[m.input_tensor], m.tensors[m.output_tensor]
                self.assertEqual((x.dims, x.dtype, x.zero_point), (in_dims, tzm.INT8, 0))
                self.assertAlmostEqual(x.scale, 1 / 127.5, places=9)
                self.assertEqual((y.dims, y.dtype, y.flags), (out_dims, tzm.FLOAT32, tzm.OUTPUT))
                for op in m.ops:
                    self.assertLessEqual(len(op.name), 31)
                    if op.type in (tzm.CONV2D, tzm.FULLY_CONNECTED):
                        w, b, mult = (m.tensors[i] for i in op.inputs[1:])
                        self.assertEqual(w.flags, tzm.CONSTANT | tzm.TRAINABLE | tzm.PER_CHANNEL)
                        self.assertEqual(b.flags, tzm.CONSTANT | tzm.TRAINABLE)
                        self.assertEqual((w.name, b.name, mult.name), (op.name + ".weight", op.name + ".bias",
                                                                       op.name + ".mult"))
                        self.assertEqual(op.params[-3 if op.type == tzm.CONV2D else 0:][:2], (-128, 127))
                # consecutive ops chain their quantization: every conv reads what its producer wrote
                producers = {op.output: op for op in m.ops}
                for op in m.ops:
                    if op.type == tzm.CONV2D and op.inputs[0] in producers:
                        self.assertIs(producers[op.inputs[0]].output, op.inputs[0])

    def test_cifar_values(self):
        _, _, m = self.import_ok("mcunet_in1_cifar10.pth")
        state = torchzip.load(model_path("mcunet_in1_cifar10.pth"))["state_dict"]
        # first conv: PyTorch [Co, Ci, kh, kw] -> [Co, kh, kw, Ci]
        src = state["0.weight"]
        w = m.tensor("0.weight")
        self.assertEqual(w.dims, (16, 3, 3, 3))
        got = w.values()
        for o, c, y, x in ((0, 0, 0, 0), (5, 2, 1, 0), (15, 1, 2, 2)):
            self.assertEqual(got[((o * 3 + y) * 3 + x) * 3 + c], src.data[((o * 3 + c) * 3 + y) * 3 + x])
        # dead channels: float32 +-2^31 biases clamp into int32
        src_b = state["1.0.conv.0.bias"].data
        got_b = m.tensor("1.0.conv.0.bias").values()
        for s, g in zip(src_b, got_b):
            self.assertEqual(g, min(int(s), 2 ** 31 - 1))
        self.assertIn(2 ** 31 - 1, list(got_b))
        # multiplier = f32(f64(s_x) * f64(s_w[o]))
        s_x = state["1.4.conv.1.scale_x"].item()
        s_w = state["1.4.conv.1.scale_w"].data
        mult = m.tensor("1.4.conv.1.mult").values()
        self.assertEqual(list(mult), [importer.f32(s_x * v) for v in s_w])
        self.assertEqual(m.tensor("1.4.conv.1.weight").channel_scales, tuple(s_w))
        # head: LinearF32 on the pool output with the pool's quantization
        head = m.op("4")
        self.assertEqual(head.type, tzm.LINEAR_F32)
        pool = m.tensors[head.inputs[0]]
        self.assertEqual((pool.name, pool.dims), ("pool", (1, 1, 160)))
        self.assertEqual((pool.scale, pool.zero_point), (state["4.scale_x"].item(), state["4.zero_x"].item()))
        self.assertEqual(list(m.tensor("4.weight").values()), list(state["4.weight"].data))
        add = m.op("1.2.q_add")
        self.assertEqual([m.tensors[i].name for i in add.inputs], ["1.1.conv.2", "1.2.conv.2"])

    def test_input_size(self):
        # --input-size S: the same graph and weights for an S x S input; every activation shape
        # follows (k // 2 padding, stride s: ceil(h / s)), the pool and head are unchanged.
        _, _, full = self.import_ok("mcunet_in1_cifar10.pth")
        out = os.path.join(self.tmp.name, "s64.tzm")
        r = run_importer(model_path("mcunet_in1_cifar10.pth"), "-o", out, "--input-size", "64")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            small = tzm.read_tzm(f.read())
        self.assertEqual(small.tensors[small.input_tensor].dims, (64, 64, 3))
        self.assertEqual([op.name for op in small.ops], [op.name for op in full.ops])
        for a, b in zip(full.tensors, small.tensors):
            self.assertEqual(a.name, b.name)
            if a.flags & tzm.CONSTANT:
                self.assertEqual((a.dims, list(a.values())), (b.dims, list(b.values())), a.name)
            elif len(a.dims) == 3:  # activations: half the side (128 -> 64) at every resolution
                self.assertEqual((b.dims[0], b.dims[1], b.dims[2]),
                                 ((a.dims[0] + 1) // 2, (a.dims[1] + 1) // 2, a.dims[2]), a.name)
        self.assertEqual(small.tensor("pool").dims, (1, 1, 160))
        for bad in ("16", "2048"):
            self.assertIn("--input-size", self.assert_clean_failure(model_path("mcunet_in1_cifar10.pth"),
                                                                      "--input-size", bad))

    def test_module_entry_point(self):
        line, _, m = self.import_ok("mbv2-w0.35.pkl", module=True)
        self.assertIn("64 ops", line)

    def assert_clean_failure(self, src, *extra):
        out_dir = tempfile.mkdtemp(dir=self.tmp.name)
        out = os.path.join(out_dir, "out.tzm")
        r = run_importer(src, "-o", out, *extra)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("error", r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(os.listdir(out_dir), [])  # no output, no temporary left behind
        return r.stderr

    def test_truncated_pth(self):
        with open(model_path("mcunet_in1_cifar10.pth"), "rb") as f:
            blob = f.read()
        for cut in (len(blob) // 2, len(blob) - 100, 10):
            src = os.path.join(self.tmp.name, "truncated_%d.pth" % cut)
            with open(src, "wb") as f:
                f.write(blob[:cut])
            with self.subTest(cut=cut):
                self.assertIn("truncated", self.assert_clean_failure(src))

    def test_not_a_zip(self):
        src = os.path.join(self.tmp.name, "text.pth")
        with open(src, "w") as f:
            f.write("this is not a model\n")
        self.assertIn("not a torch.save zip", self.assert_clean_failure(src))

    def test_missing_file_and_missing_arch(self):
        self.assert_clean_failure(os.path.join(self.tmp.name, "nope.pth"))
        self.assertIn("--arch", self.assert_clean_failure(
            model_path("mcunet_in1_cifar10.pth"), "--arch", os.path.join(self.tmp.name, "nope.pkl")))

    def test_existing_output_survives_failure(self):
        out_dir = tempfile.mkdtemp(dir=self.tmp.name)
        out = os.path.join(out_dir, "keep.tzm")
        with open(out, "wb") as f:
            f.write(b"previous")
        src = os.path.join(out_dir, "bad.pkl")
        with open(src, "wb") as f:
            f.write(b"PK\x03\x04garbage")
        r = run_importer(src, "-o", out)
        self.assertEqual(r.returncode, 2)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"previous")
        self.assertEqual(sorted(os.listdir(out_dir)), ["bad.pkl", "keep.tzm"])


class ImporterChecks(unittest.TestCase):
    """The checks on the source's quantization and values (on edited copies of real sources)."""

    def pkl(self):
        return torchzip.load(model_path("mcunet-5fps.pkl"))

    def pth(self):
        arch = self.pkl()
        return torchzip.load(model_path("mcunet_in1_cifar10.pth"))["state_dict"], arch

    def test_pkl_none_quantization_taken_from_neighbours(self):
        want, _ = importer._emit(importer._from_pkl(self.pkl()))
        obj = self.pkl()
        blk = obj["blocks"][4]
        blk["depthwise"]["params"]["x_scale"] = None     # from pointwise1's y
        blk["pointwise1"]["params"]["y_zero"] = None     # from depthwise's x
        blk["residual"]["params"]["x_scale"] = None      # from the block input
        got, _ = importer._emit(importer._from_pkl(obj))
        self.assertEqual(got, want)

    def test_pkl_unresolvable_none(self):
        obj = self.pkl()
        p = obj["blocks"][4]
        p["depthwise"]["params"]["x_scale"] = p["pointwise1"]["params"]["y_scale"] = None
        with self.assertRaisesRegex(importer.ImportError_, "blocks.4.pointwise1: y_scale is None and no neighbour"):
            importer._emit(importer._from_pkl(obj))

    def test_chain_mismatch(self):
        obj = self.pkl()
        obj["blocks"][5]["pointwise2"]["params"]["x_scale"] *= 1.0000001
        with self.assertRaisesRegex(importer.ImportError_, "blocks.5.pointwise2 expects input quantization"):
            importer._emit(importer._from_pkl(obj))
        state, arch = self.pth()
        state["1.4.q_add.zero_x2"].data[0] += 1
        with self.assertRaisesRegex(importer.ImportError_, r"1.4.q_add \(x2\) expects"):
            importer._emit(importer._from_pth(state, arch, "arch.pkl"))

    def test_keep_mask_must_be_all_ones(self):
        state, arch = self.pth()
        state["1.9.conv.0.keep_mask"].data[3] = 0.0
        with self.assertRaisesRegex(importer.ImportError_, "keep_mask is not all ones"):
            importer._from_pth(state, arch, "arch.pkl")

    def test_bad_values(self):
        for key, index, value, why in (("1.3.conv.0.weight", 5, 128.0, "int8"),
                                       ("1.3.conv.0.weight", 5, 0.5, "int8"),
                                       ("1.3.conv.0.bias", 1, 2.0 ** 32, "int32"),
                                       ("1.3.conv.0.scale_w", 0, 0.0, "positive")):
            with self.subTest(key=key, value=value):
                state, arch = self.pth()
                state[key].data[index] = value
                with self.assertRaisesRegex(importer.ImportError_, why):
                    importer._from_pth(state, arch, "arch.pkl")

    def test_unknown_key_and_architecture_mismatch(self):
        state, arch = self.pth()
        state["1.3.conv.0.extra"] = state["1.3.conv.0.zero_w"]
        with self.assertRaisesRegex(importer.ImportError_, "not understood: 1.3.conv.0.extra"):
            importer._from_pth(state, arch, "arch.pkl")
        state, arch = self.pth()
        arch["blocks"][4]["residual"] = None
        with self.assertRaisesRegex(importer.ImportError_, "residual add present in the checkpoint but absent"):
            importer._from_pth(state, arch, "arch.pkl")


class TorchZip(unittest.TestCase):
    def test_pkl_numpy_arrays(self):
        obj = torchzip.load(model_path("mcunet-5fps.pkl"))
        w = obj["first_conv"]["params"]["weight"]
        self.assertEqual((w.shape, w.dtype, len(w.data)), ((16, 3, 3, 3), "int8", 432))
        self.assertEqual(obj["blocks"][2]["residual"]["params"]["y_zero"], 12)
        self.assertEqual(obj["classifier"]["params"]["w_scales"].dtype, "float32")

    def test_unknown_global_refused(self):
        import zipfile
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        src = os.path.join(tmp.name, "evil.pth")
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("archive/data.pkl", b"\x80\x02cos\nsystem\nq\x00.")  # a pickle naming os.system
        with self.assertRaisesRegex(torchzip.TorchZipError, "unsupported pickled object os.system"):
            torchzip.load(src)


def tflite_chain(perm=(1, 2, 0), softmax_zero=-128, pad_after=1, input_dtype=tzm.INT8, first=tzm.TRANSPOSE):
    """The shapes of tests/test_models.h make_tflite_ops_model() (every TFLite op type) with valid
    fixed-point params (the reader checks ranges, not their derivation: tests/tflite_ops_test.cc)."""
    b = tzm.TzmBuilder()
    x = b.add_tensor("in", input_dtype, (2, 4, 4), tzm.INPUT, scale=0.05, zero_point=3)
    t = b.add_tensor("tr", tzm.INT8, (4, 4, 2), scale=0.05, zero_point=3)
    b.add_op("transpose", first, [x], t, list(perm) + [0] * (12 - len(perm)))
    p = b.add_tensor("pad", tzm.INT8, (6, 6, 2), scale=0.05, zero_point=3)
    b.add_op("pad", tzm.PAD, [t], p, [1, 1, 0, 0, 1, pad_after, 0, 0, 3, 0, 0, 0])
    q = b.add_tensor("pool", tzm.INT8, (3, 3, 2), scale=0.05, zero_point=3)
    b.add_op("pool", tzm.AVG_POOL2D_TFL, [p], q, [2, 2, 2, 2, 0, 0, 0, 0, -128, 127, 0, 0])
    a = b.add_tensor("add", tzm.INT8, (3, 3, 2), scale=0.08, zero_point=-7)
    b.add_op("add", tzm.ADD_TFL, [q, q], a, [-7, 127, 20, 1 << 30, 0, 1 << 30, 0, 1342177280, -19, 0, 0, 0])
    m = b.add_tensor("mean", tzm.INT8, (2,), scale=0.03, zero_point=2)
    b.add_op("mean", tzm.MEAN_TFL, [a], m, [1272582903, -1] + [0] * 10)
    r = b.add_tensor("rs", tzm.INT8, (1, 2), scale=0.03, zero_point=2)
    b.add_op("reshape", tzm.RESHAPE, [m], r, [0] * 12)
    sm = b.add_tensor("sm", tzm.INT8, (1, 2), scale=1 / 256, zero_point=softmax_zero)
    b.add_op("softmax", tzm.SOFTMAX_TFL, [r], sm, [1030792151, 21, -992] + [0] * 9)
    o = b.add_tensor("out", tzm.INT8, (2,), tzm.OUTPUT, scale=1 / 128, zero_point=0)
    b.add_op("quantize", tzm.QUANTIZE, [sm], o, [1 << 30, 0] + [0] * 10)
    b.input_tensor, b.output_tensor = x, o
    return b


class TzmTfliteOps(unittest.TestCase):
    def test_round_trip(self):
        m = tzm.read_tzm(tflite_chain().to_bytes())
        self.assertEqual([op.type for op in m.ops],
                         [tzm.TRANSPOSE, tzm.PAD, tzm.AVG_POOL2D_TFL, tzm.ADD_TFL, tzm.MEAN_TFL, tzm.RESHAPE,
                          tzm.SOFTMAX_TFL, tzm.QUANTIZE])
        self.assertEqual(m.op("softmax").params[:3], (1030792151, 21, -992))
        self.assertEqual(tzm.OP_NAME[tzm.MEAN_TFL], "MeanTfl")

    def test_rejections(self):
        for kwargs, why in (({"perm": (1, 1, 0)}, "permutation"), ({"softmax_zero": -127}, "1/256"),
                            ({"pad_after": 2}, "does not chain"), ({"input_dtype": tzm.FLOAT32}, "float32")):
            with self.assertRaisesRegex(tzm.TzmError, why):
                tflite_chain(**kwargs).to_bytes()


if __name__ == "__main__":
    unittest.main()
