"""The int8 network of docs/semantics.md in PyTorch, built from reference.build_network.

Activations are float32 tensors holding int8 values (NCHW). A frozen conv computes the int32
accumulator with a float32 convolution, exact because every partial sum stays below 2^24 (checked
per layer at build time; a layer that could exceed it runs in float64), then requantizes with the
same binary32 operations in the same order as reference.requantize. So the forward pass is bit-exact
with reference.py and tinyzo; `check_against_reference` verifies it.

For training, rounding has a straight-through gradient (identity) and the clamp passes the gradient
only inside [-128, 127] (the clamp mask; it is also the ReLU). A trainable conv holds its parameters
in one of two forms (docs/baselines.md):
  'fp32': real-valued W_f = s_w * W_int, b_f = s_x * s_w * b_int, v = (s_x (x - z_x) * W_f + b_f) / s_y;
  'int8': W_int, b_int as integer-valued float tensors, the engine's own formula
          v = ((x - z_x) * W_int + b_int) * m / s_y, gradients dL/dW_int, dL/db_int.
"""

import numpy as np
import torch
import torch.nn.functional as F

F32 = np.float32
EXACT = 2 ** 24


class RoundSTE(torch.autograd.Function):
    """torch.round (half to even, like rne) forward; identity backward."""

    @staticmethod
    def forward(ctx, v):
        return torch.round(v)

    @staticmethod
    def backward(ctx, g):
        return g


def quantize_out(v, z_y):
    """y = clamp(rne(v) + z_y, -128, 127); gradient: STE through rne, mask of the clamp."""
    return torch.clamp(RoundSTE.apply(v) + float(z_y), -128.0, 127.0)


class QConv(torch.nn.Module):
    def __init__(self, c, mode="frozen"):
        super().__init__()
        self.name, self.mode = c.name, mode
        self.stride, self.groups = c.stride, c.groups
        self.pad = c.w.shape[2] // 2
        self.z_x, self.z_y = int(c.z_x), int(c.z_y)
        self.s_x, self.s_y = F32(c.s_x), F32(c.s_y)
        self.s_w = np.asarray(c.s_w, F32)
        mult = (np.float64(c.s_x) * self.s_w.astype(np.float64)).astype(F32)
        # Worst case of |acc| over any partial sum: sum |w| * max |x - z_x|.
        bound = np.abs(c.w).reshape(c.w.shape[0], -1).sum(1).max() * max(abs(-128 - c.z_x), abs(127 - c.z_x))
        self.dtype = torch.float32 if bound < EXACT else torch.float64
        self.register_buffer("mult", torch.from_numpy(mult).view(1, -1, 1, 1))
        w_int = torch.from_numpy(c.w.astype(np.float64))
        b_int = torch.from_numpy(c.b_f32.astype(np.float64))  # integer-valued (int32 biases as f32)
        if mode == "frozen":
            self.register_buffer("w", w_int.to(self.dtype))
            self.register_buffer("b", torch.from_numpy(c.b_f32).view(1, -1, 1, 1))
        elif mode == "int8":
            self.w = torch.nn.Parameter(w_int.float())
            self.b = torch.nn.Parameter(b_int.float())
        elif mode == "fp32":
            sw = torch.from_numpy(self.s_w.astype(np.float64))
            self.w = torch.nn.Parameter((w_int * sw.view(-1, 1, 1, 1)).float())
            self.b = torch.nn.Parameter((b_int * float(self.s_x) * sw).float())
        else:
            raise ValueError(mode)

    def forward(self, x):
        xs = x - float(self.z_x)  # padding with 0 after this = reading the zero point
        if self.mode == "frozen":
            acc = F.conv2d(xs.to(self.dtype), self.w, None, self.stride, self.pad, 1, self.groups).float()
            v = (acc + self.b) * self.mult
        elif self.mode == "int8":
            acc = F.conv2d(xs, self.w, None, self.stride, self.pad, 1, self.groups)
            v = (acc + self.b.view(1, -1, 1, 1)) * self.mult
        else:
            v = F.conv2d(xs * float(self.s_x), self.w, None, self.stride, self.pad, 1, self.groups)
            v = v + self.b.view(1, -1, 1, 1)
        return quantize_out(v / float(self.s_y), self.z_y)

    # ---- the integer parameters (int8 / int32), whatever the training form
    def int_params(self):
        if self.mode == "fp32":
            sw = torch.from_numpy(self.s_w).view(-1, 1, 1, 1)
            w = torch.clamp(torch.round(self.w.detach() / sw), -128, 127)
            b = torch.round(self.b.detach().double() / (float(self.s_x) * sw.view(-1).double()))
            return w, b.clamp(-2 ** 31, 2 ** 31 - 1).float()
        return self.w.detach().clone(), self.b.detach().view(-1).clone()


class QAdd(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a

    def forward(self, x1, x2):
        a = self.a
        v = (x1 - float(a.z1)) * float(a.s1) + (x2 - float(a.z2)) * float(a.s2)
        return quantize_out(v / float(a.s_y), a.z_y)


class QNet(torch.nn.Module):
    """stages[i] = (convs, add) as in reference.Network; `trainable` maps conv name -> mode."""

    def __init__(self, net, trainable=(), mode="int8"):
        super().__init__()
        assert net.head[0] == "f32", "only the float-head .pth model"
        names = {c.name for convs, _ in net.stages for c in convs}
        for t in trainable:
            if t not in names:
                raise SystemExit("baselines: no conv named %s" % t)
        self.stages = torch.nn.ModuleList()
        self.adds = []
        for convs, a in net.stages:
            self.stages.append(torch.nn.ModuleList([QConv(c, mode if c.name in trainable else "frozen")
                                                    for c in convs]))
            self.adds.append(QAdd(a) if a is not None else None)
        _, _, w, b, s_x, z_x = net.head
        self.register_buffer("head_w", torch.from_numpy(w))
        self.register_buffer("head_b", torch.from_numpy(b))
        self.head_sx, self.head_zx = F32(s_x), int(z_x)
        # First stage holding a trainable conv: everything before it is a fixed function of the input.
        self.first_trainable = min([i for i, st in enumerate(self.stages) if any(c.mode != "frozen" for c in st)],
                                   default=len(self.stages))

    def trainable_convs(self):
        return [c for st in self.stages for c in st if c.mode != "frozen"]

    def run_stages(self, x, first=0, last=None):
        for st, a in zip(list(self.stages)[first:last], self.adds[first:last]):
            block_in = x
            for c in st:
                x = c(x)
            if a is not None:
                x = a(block_in, x)
        return x

    def pooled(self, x):
        h, w = x.shape[2], x.shape[3]
        # y = rne(f32(sum) / f32(H*W)); the sum of <= 64 int8 values is exact in binary32
        return quantize_out(x.sum(dim=(2, 3)) / F32(h * w), 0.0)  # same zero point as the input

    def logits(self, p, exact=False):
        xf = (p - float(self.head_zx)) * float(self.head_sx)
        if not exact:
            return xf @ self.head_w.t() + self.head_b
        # reference.linear_f32: strictly in index order, then + b (bit-exact logits for eval)
        acc = torch.zeros(xf.shape[0], self.head_w.shape[0])
        for k in range(self.head_w.shape[1]):
            acc = acc + xf[:, k:k + 1] * self.head_w[None, :, k]
        return acc + self.head_b

    def forward_from(self, x, first=0, exact=False):
        return self.logits(self.pooled(self.run_stages(x, first)), exact)

    def prefix(self, x, batch=100):
        """int8 (as float) inputs of stage first_trainable, computed without gradients."""
        with torch.no_grad():
            return torch.cat([self.run_stages(x[i:i + batch].float(), 0, self.first_trainable)
                              for i in range(0, x.shape[0], batch)])
