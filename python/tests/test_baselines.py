#!/usr/bin/python3
"""Tests of python/baselines (run with /usr/bin/python3 -m unittest python/tests/test_baselines.py,
or directly). Needs the shared data directory (model + CIFAR-10 test batch); skipped without it."""

import os
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from baselines import data as bdata  # noqa: E402
from baselines import qnet, train_bp  # noqa: E402

ref = bdata.reference
DATA = ref.default_data_dir()
MODEL = os.path.join(DATA, "models", "original", "mcunet_in1_cifar10.pth")
HAVE_DATA = os.path.exists(MODEL) and os.path.exists(os.path.join(DATA, "cifar10", "test_batch.bin.gz"))

torch.set_num_threads(2)


@unittest.skipUnless(HAVE_DATA, "no shared data directory")
class BaselineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.net = ref.build_network(MODEL)
        cls.labels, cls.images = ref.load_cifar10(DATA, 0, 12)
        cls.x = ref.preprocess(cls.images)  # NHWC int8

    def model_with_gradients(self, layers, method):
        """QNet of `layers` after one backward pass of the cross-entropy over the test batch."""
        model = qnet.QNet(self.net, layers, method)
        xp = model.prefix(torch.from_numpy(self.x.transpose(0, 3, 1, 2).copy()))
        torch.nn.functional.cross_entropy(model.forward_from(xp, model.first_trainable),
                                          torch.from_numpy(self.labels.astype(np.int64))).backward()
        return model

    def test_forward_bit_exact_with_reference(self):
        outs = ref.run_network(self.net, self.x)
        for mode in ("int8", "fp32"):
            model = qnet.QNet(self.net, train_bp.PAPER_LAYERS if mode == "int8" else [], mode)
            xt = torch.from_numpy(self.x.transpose(0, 3, 1, 2).copy()).float()
            with torch.no_grad():
                y = model.run_stages(xt)
                lg = model.forward_from(xt, 0, exact=True)
            last = [k for k in outs if k not in ("pool", "4")][-1]
            np.testing.assert_array_equal(y.numpy().transpose(0, 2, 3, 1).astype(np.int8), outs[last])
            np.testing.assert_array_equal(lg.numpy(), outs["4"])

    def test_prefix_then_suffix_equals_whole(self):
        model = qnet.QNet(self.net, train_bp.PAPER_LAYERS, "int8")
        xt = torch.from_numpy(self.x.transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            a = model.forward_from(model.prefix(xt), model.first_trainable, exact=True)
            b = model.forward_from(xt.float(), 0, exact=True)
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    def test_fp32_start_weights_round_trip(self):
        model = qnet.QNet(self.net, train_bp.PAPER_LAYERS, "fp32")
        convs = {c.name: c for convs, _ in self.net.stages for c in convs}
        for c in model.trainable_convs():
            w, b = c.int_params()
            np.testing.assert_array_equal(w.numpy(), convs[c.name].w)
            live = np.abs(convs[c.name].b_f32) < 2 ** 30
            np.testing.assert_array_equal(b.numpy()[live], convs[c.name].b_f32[live])

    def test_ste_gradient_and_integer_qas_update(self):
        model = self.model_with_gradients(train_bp.PAPER_LAYERS, "int8")
        grads = [c.w.grad.abs().sum().item() for c in model.trainable_convs()]
        self.assertTrue(all(g > 0 for g in grads), grads)
        moved = train_bp.sgd_step(model, "int8", 0.01 * 100 / 256)
        self.assertGreater(moved, 0)  # QAS: without the 1/s_w^2 scaling every step would round to 0
        for c in model.trainable_convs():
            w = c.w.detach()
            self.assertTrue(torch.equal(w, torch.round(w)))
            self.assertTrue(bool((w >= -128).all() and (w <= 127).all()))

    def test_layer_step_norm_moves_every_layer_by_lr_times_its_norm(self):
        # --step-norm layer: FP32 BP moves each layer's weights by exactly lr ||W|| (up to float error),
        # whatever its gradient's size; int8 with stochastic rounding stays integer and in range.
        layers = ["0", "1.1.conv.2", "1.13.conv.1"]  # gradients of very different relative size
        for method in ("fp32", "int8"):
            model = self.model_with_gradients(layers, method)
            before = [c.w.detach().double().clone() for c in model.trainable_convs()]
            lr = 0.01
            gen = torch.Generator().manual_seed(1)
            moved = train_bp.sgd_step(model, method, lr, "layer", "stochastic", gen)
            for c, w0 in zip(model.trainable_convs(), before):
                dw = float((c.w.detach().double() - w0).norm())
                if method == "fp32":
                    self.assertAlmostEqual(dw / (lr * float(w0.norm())), 1.0, places=4, msg=c.name)
                else:
                    w = c.w.detach()
                    self.assertTrue(torch.equal(w, torch.round(w)))
                    self.assertTrue(bool((w >= -128).all() and (w <= 127).all()))
            if method == "int8":
                self.assertGreater(moved, 0)

    def test_bias_only_moves_the_biases_and_keeps_the_weights(self):
        # --params bias (BitFit): the same update rule, applied to the biases alone.
        layers = ["1.1.conv.2", "1.6.conv.0"]
        for method in ("fp32", "int8"):
            model = self.model_with_gradients(layers, method)
            w0 = [c.w.detach().clone() for c in model.trainable_convs()]
            b0 = [c.b.detach().clone() for c in model.trainable_convs()]
            train_bp.sgd_step(model, method, 1.0 if method == "int8" else 0.01, params="bias")
            for c, w, b in zip(model.trainable_convs(), w0, b0):
                self.assertTrue(torch.equal(c.w.detach(), w), c.name)
            self.assertTrue(any(not torch.equal(c.b.detach(), b) for c, b in zip(model.trainable_convs(), b0)), method)

    def test_train_bp_smoke(self):
        with tempfile.TemporaryDirectory() as d:
            split = os.path.join(d, "split")
            os.makedirs(split)
            labels, images = ref.load_cifar10(DATA, 100, 30)
            rec = np.concatenate([labels[:, None], images.reshape(30, -1)], 1).astype(np.uint8)
            for part in ("train", "val", "test"):
                rec.tofile(os.path.join(split, part + ".bin"))
            for method in ("fp32", "int8"):
                s = train_bp.main(["--split", split, "--method", method, "--max-steps", "2", "--batch", "10",
                                   "--out", os.path.join(d, method)])
                self.assertEqual(s["steps"], 2)
                self.assertGreaterEqual(s["best_epoch"], 1)


if __name__ == "__main__":
    unittest.main()
