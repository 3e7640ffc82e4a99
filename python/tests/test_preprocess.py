#!/usr/bin/python3
"""tinyzo's eval input pipeline against the authors' code path, bit for bit (docs/data.md):

    torchvision Resize(147) on the PIL image -> CenterCrop(128) -> ToTensor -> Normalize(0.5, 1/255)
    -> round (the first conv of tiny-training's quantized network)

computed with Debian's python3-pil and python3-torchvision, compared with the C++ pipeline
(tinyzo_preprocess_tool, built in tests/) and the numpy reference (tests/reference/reference.py)
on CIFAR-10 test images and on random images of other sizes; and Pillow's BOX / BILINEAR resize of
single planes against the C++ and numpy resamplers on many sizes, up and down.

    /usr/bin/python3 python/tests/test_preprocess.py [--tool PATH]

The tool defaults to $TINYZO_PREPROCESS_TOOL, then build/release/tests/tinyzo_preprocess_tool.
$TINYZO_PREPROCESS_IMAGES sets how many CIFAR-10 test images are compared (default 1000, to keep
the test at a few seconds; 10000 = all, about 20 s of CPU). Exits 77 (ctest: skipped) only when PIL
or torchvision cannot be imported; a missing data directory or tool is a failure.
"""

import os
import subprocess
import sys
import unittest

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
import reference as ref  # noqa: E402

try:
    from PIL import Image
    import torch
    import torchvision.transforms as T
    HAVE_TORCHVISION = True
    IMPORT_ERROR = ""
except ImportError as e:  # only these imports may skip the test
    HAVE_TORCHVISION = False
    IMPORT_ERROR = str(e)

TOOL = os.environ.get("TINYZO_PREPROCESS_TOOL") or os.path.join(REPO, "build", "release", "tests",
                                                                "tinyzo_preprocess_tool")
N_CIFAR = int(os.environ.get("TINYZO_PREPROCESS_IMAGES", "1000"))


def run_tool(args, data, out_bytes):
    if not os.path.exists(TOOL):
        raise AssertionError("tinyzo_preprocess_tool not found at %s (build it, or pass --tool)" % TOOL)
    r = subprocess.run([TOOL] + [str(a) for a in args], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise AssertionError("%s %s failed: %s" % (TOOL, args, r.stderr.decode()))
    if len(r.stdout) != out_bytes:
        raise AssertionError("tool wrote %d bytes, expected %d" % (len(r.stdout), out_bytes))
    return r.stdout


def authors_pipeline(images, crop, resize):
    """uint8 [n, 3, S, S] -> int8 NHWC [n, crop, crop, 3] through PIL + torchvision, as the authors'
    evaluation transform (tiny-training build_val_transform) and their first conv's x.round()."""
    geometry = T.Compose([T.Resize(resize), T.CenterCrop(crop)])  # on the PIL image: Pillow bilinear
    to_tensor = T.ToTensor()
    normalize = T.Normalize(mean=[0.5, 0.5, 0.5], std=[1 / 255, 1 / 255, 1 / 255])
    # ToTensor per image (it takes one PIL image), Normalize on the stacked batch: the same
    # element-wise float32 operations as per image, in a fraction of the time.
    x = torch.stack([to_tensor(geometry(Image.fromarray(np.ascontiguousarray(im.transpose(1, 2, 0)), "RGB")))
                     for im in images])
    q = normalize(x).round()
    assert float(q.min()) >= -128 and float(q.max()) <= 127
    return q.numpy().astype(np.int8).transpose(0, 2, 3, 1)


def tool_eval(images, crop, resize):
    n, _, s, _ = images.shape
    raw = run_tool(["eval", s, crop, resize, n], np.ascontiguousarray(images).tobytes(), n * crop * crop * 3)
    return np.frombuffer(raw, np.int8).reshape(n, crop, crop, 3)


def first_difference(a, b):
    idx = np.argwhere(a != b)[0]
    return "first difference at %s: %d vs %d (%d values differ)" % (
        tuple(int(i) for i in idx), int(a[tuple(idx)]), int(b[tuple(idx)]), int((a != b).sum()))


@unittest.skipUnless(HAVE_TORCHVISION, "PIL / torchvision not importable: " + IMPORT_ERROR)
class EvalPipelineTest(unittest.TestCase):
    def check_equal(self, want, got, what):
        self.assertEqual(want.shape, got.shape, what)
        if not np.array_equal(want, got):
            self.fail("%s: %s" % (what, first_difference(want, got)))

    def test_pixel_table(self):
        # Every pixel value through ToTensor + Normalize + round (a 16x16 image: Resize(16) and
        # CenterCrop(16) leave it unchanged).
        img = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16).repeat(3, axis=1)
        want = authors_pipeline(img, 16, 16)[0, :, :, 0].reshape(256)
        self.check_equal(want, ref.input_table(), "numpy reference table")
        tool = np.frombuffer(run_tool(["table"], b"", 256), np.int8)
        self.check_equal(want, tool, "C++ table")

    def test_cifar10_test_images(self):
        n = N_CIFAR
        labels, images = ref.load_cifar10(ref.default_data_dir(), 0, n)
        self.assertEqual(len(labels), n)
        for i in range(0, n, 100):
            batch = images[i:i + 100]
            want = authors_pipeline(batch, 128, 147)
            self.check_equal(want, tool_eval(batch, 128, 0), "C++, CIFAR-10 images %d.." % i)
            self.check_equal(want, ref.preprocess(batch), "numpy, CIFAR-10 images %d.." % i)

    def test_other_sizes(self):
        rng = np.random.default_rng(10)
        # (source side, crop, resize): the paper's, a smaller model input, odd sizes, a crop equal
        # to the resize, and downscaling (the resize smaller than the source).
        for src, crop, resize in [(32, 128, 147), (32, 64, 74), (17, 90, 100), (32, 40, 40), (64, 32, 40),
                                  (100, 17, 20), (7, 5, 5), (3, 130, 131)]:
            images = rng.integers(0, 256, (6, 3, src, src), dtype=np.uint8)
            images[0] = 255  # constant images exercise the extremes of the table
            images[1] = 0
            want = authors_pipeline(images, crop, resize)
            what = "%d -> %d, crop %d" % (src, resize, crop)
            self.check_equal(want, tool_eval(images, crop, resize), "C++ " + what)
            self.check_equal(want, ref.preprocess(images, crop, resize), "numpy " + what)
        # The default resize for a crop is the authors' int(math.ceil(crop / 0.875)).
        images = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
        for crop in (64, 96, 160):
            self.check_equal(authors_pipeline(images, crop, int(np.ceil(crop / 0.875))), tool_eval(images, crop, 0),
                             "C++ default resize for crop %d" % crop)


@unittest.skipUnless(HAVE_TORCHVISION, "PIL not importable: " + IMPORT_ERROR)
class PillowResizeTest(unittest.TestCase):
    def test_planes(self):
        rng = np.random.default_rng(11)
        filters = {"box": Image.BOX, "bilinear": Image.BILINEAR}
        # (in_w, in_h, out_w, out_h): up, down, mixed, non-square, pixelate's sizes, degenerate.
        sizes = [(32, 32, 147, 147), (32, 32, 64, 64), (17, 17, 100, 100), (64, 64, 40, 40), (100, 100, 17, 17),
                 (32, 32, 30, 30), (30, 30, 32, 32), (32, 32, 20, 20), (20, 20, 32, 32), (29, 13, 7, 31),
                 (7, 5, 64, 3), (1, 1, 5, 4), (5, 4, 1, 1), (33, 33, 33, 16), (255, 3, 16, 3)]
        for name, pil_filter in filters.items():
            for in_w, in_h, out_w, out_h in sizes:
                planes = rng.integers(0, 256, (5, in_h, in_w), dtype=np.uint8)
                planes[0] = 255
                planes[1, :, : (in_w + 1) // 2] = 0  # a hard edge
                want = np.stack([np.asarray(Image.fromarray(p, "L").resize((out_w, out_h), pil_filter))
                                 for p in planes])
                what = "%s %dx%d -> %dx%d" % (name, in_w, in_h, out_w, out_h)
                raw = run_tool(["resize", name, in_w, in_h, out_w, out_h, len(planes)], planes.tobytes(),
                               want.size)
                got = np.frombuffer(raw, np.uint8).reshape(want.shape)
                if not np.array_equal(want, got):
                    self.fail("C++ %s: %s" % (what, first_difference(want, got)))
                got = ref.pillow_resize(planes, out_w, out_h, name)
                if not np.array_equal(want, got):
                    self.fail("numpy %s: %s" % (what, first_difference(want, got)))


if __name__ == "__main__":
    if "--tool" in sys.argv:
        i = sys.argv.index("--tool")
        TOOL = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    if not HAVE_TORCHVISION:
        print("test_preprocess: skipped, PIL / torchvision not importable (%s); scripts/setup.sh installs "
              "python3-pil and python3-torchvision" % IMPORT_ERROR)
        sys.exit(77)
    torch.set_num_threads(1)
    unittest.main()
