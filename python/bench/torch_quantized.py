#!/usr/bin/python3
"""MCUNet-5fps (CIFAR-10, 128x128) on PyTorch's quantized CPU path, for bench/bench.sh.

The network is rebuilt from the ORIGINAL checkpoint (torch.load of mcunet_in1_cifar10.pth, the
architecture's strides from mcunet-5fps.pkl), with the structure of
tests/reference/check_authors_sim.py: the first 3x3 conv, 14 inverted-residual blocks
(pointwise1 / depthwise / pointwise2, residual adds where the checkpoint has q_add), global
average pool and the float 160 -> 10 head. Every conv is a torch.ao.nn.quantized.Conv2d holding the
checkpoint's int8 weights (per-channel qint8, scales scale_w), its int32 bias as the float bias
b * s_x * s_w, and the output scale / zero point of the checkpoint (shifted by +128: torch's
activations are quint8, tinyzo's int8). As in the int8 model itself, the ReLU6 clamps are the
requantization's clamp to the output range (s_y = 6/255, z_y = -128 covers exactly [0, 6]); no
extra op. The residual add is quantized::add with the checkpoint's output scale / zero point.
Numerics are torch's own (its rounding of the requantization differs from tinyzo's), shapes and
MAC count are the same: the script counts the MACs the way tinyzo does and prints them.

Prints img/s (wall: mean and best repetition; CPU time of the process) per engine, thread count
and batch size, and the top-1 on a few CIFAR-10 test images as a sanity check that the rebuilt
network is the trained one.

    /usr/bin/python3 python/bench/torch_quantized.py [--engines qnnpack,onednn] [--threads 1,2]
        [--batches 1,16] [--seconds 3] [--check 200] [--json OUT.json]
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))


def default_data_dir():
    return os.environ.get("TINYZO_DATA") or os.path.join(os.path.dirname(REPO), "shared", "data")


def _nnq():
    try:
        import torch.ao.nn.quantized as nnq  # torch >= 1.13
    except ImportError:  # older torch
        import torch.nn.quantized as nnq
    return nnq


class QuantNet(torch.nn.Module):
    """The int8 network on torch's quantized kernels; forward takes a quint8 NCHW tensor."""

    def __init__(self, state, arch):
        super().__init__()
        nnq = _nnq()
        self.macs = 0  # convs + adds + pool + head
        self.conv_macs = 0
        shape = [3, arch["first_conv"]["in_shape"]]  # channels, side

        def conv(prefix, stride, in_c):
            g = lambda k: state[prefix + "." + k]  # noqa: E731
            w = g("weight")
            out_c, cin_g, k, _ = w.shape
            groups = in_c // cin_g
            m = nnq.Conv2d(in_c, out_c, k, stride=stride, padding=k // 2, groups=groups)
            s_w = g("scale_w").double()
            qw = torch._make_per_channel_quantized_tensor(w.round().to(torch.int8), s_w,
                                                          torch.zeros(out_c, dtype=torch.long), 0)
            bias = (g("bias").double() * float(g("scale_x")) * s_w).float()
            m.set_weight_bias(qw, bias)
            m.scale = float(g("scale_y"))
            m.zero_point = int(g("zero_y")) + 128
            side = (shape[1] + 2 * (k // 2) - k) // stride + 1
            self.macs += side * side * out_c * k * k * cin_g
            self.conv_macs += side * side * out_c * k * k * cin_g
            shape[0], shape[1] = out_c, side
            return m

        self.stem = conv("0", arch["first_conv"]["stride"], 3)
        self.blocks = torch.nn.ModuleList()
        self.adds = []
        for k, blk in enumerate(arch["blocks"]):
            convs = torch.nn.ModuleList()
            for j, part in enumerate(p for p in ("pointwise1", "depthwise", "pointwise2") if blk[p] is not None):
                convs.append(conv("1.%d.conv.%d" % (k, j), blk[part]["stride"], shape[0]))
            self.blocks.append(convs)
            q = "1.%d.q_add." % k
            if q + "scale_y" in state:
                self.adds.append((float(state[q + "scale_y"]), int(state[q + "zero_y"]) + 128))
                self.macs += shape[0] * shape[1] * shape[1]  # one MAC per element, as tinyzo counts
            else:
                self.adds.append(None)
        self.head_w, self.head_b = state["4.weight"].float(), state["4.bias"].float()
        self.macs += shape[0] * shape[1] * shape[1] + self.head_w.numel()  # pool + head
        self.out_shape = tuple(shape)

    def forward(self, x):
        x = self.stem(x)
        for convs, add in zip(self.blocks, self.adds):
            block_in = x
            for c in convs:
                x = c(x)
            if add is not None:
                x = torch.ops.quantized.add(block_in, x, add[0], add[1])
        x = F.adaptive_avg_pool2d(x, 1)
        return F.linear(x.dequantize().flatten(1), self.head_w, self.head_b)


def quantize_input(x_int8_nhwc):
    """int8 NHWC numpy (the model input, s_x = 1/127.5, z = 0) -> quint8 NCHW (channels-last) with the
    same scale and z = 128 (q + 128)."""
    t = torch.from_numpy(x_int8_nhwc.astype("int16") + 128).to(torch.uint8).permute(0, 3, 1, 2)
    return torch._make_per_tensor_quantized_tensor(t.contiguous(memory_format=torch.channels_last),
                                                   1.0 / 127.5, 128)


def measure(net, x, seconds):
    """(mean wall s/iter, best wall s/iter, CPU s/iter) over repetitions for about `seconds`."""
    with torch.no_grad():
        for _ in range(2):
            net(x)
        n, best = 0, 1e30
        w0, c0 = time.perf_counter(), time.process_time()
        while True:
            t = time.perf_counter()
            net(x)
            best = min(best, time.perf_counter() - t)
            n += 1
            if time.perf_counter() - w0 >= seconds and n >= 3:
                break
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return wall / n, best, cpu / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="default <data>/models/original/mcunet_in1_cifar10.pth")
    ap.add_argument("--arch", help="default mcunet-5fps.pkl beside the model")
    ap.add_argument("--data-dir", default=default_data_dir())
    ap.add_argument("--engines", default="qnnpack,onednn,fbgemm,x86",
                    help="comma list; engines this torch build lacks are reported and skipped")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--seconds", type=float, default=3.0, help="measuring time per configuration")
    ap.add_argument("--check", type=int, default=200, help="CIFAR-10 test images for the top-1 check (0: none)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    model = args.model or os.path.join(args.data_dir, "models", "original", "mcunet_in1_cifar10.pth")
    arch_path = args.arch or os.path.join(os.path.dirname(os.path.abspath(model)), "mcunet-5fps.pkl")
    obj = torch.load(model, map_location="cpu")
    state = obj.get("state_dict", obj)
    arch = torch.load(arch_path, map_location="cpu")
    side = arch["first_conv"]["in_shape"]

    import reference  # tests/reference: the exact input pipeline of tinyzo eval
    check_x = check_y = None
    if args.check > 0:
        labels, images = reference.load_cifar10(args.data_dir, 0, args.check)
        check_x, check_y = quantize_input(reference.preprocess(images)), torch.from_numpy(labels.astype("int64"))

    supported = torch.backends.quantized.supported_engines
    results = []
    print("torch %s, quantized engines available: %s" % (torch.__version__, ", ".join(supported)))
    for engine in [e for e in args.engines.split(",") if e]:
        if engine not in supported:
            print("engine %s: not in this torch build, skipped" % engine)
            continue
        torch.backends.quantized.engine = engine  # packed weights are per engine: build after this
        net = QuantNet(state, arch).eval()
        line = "engine %s: %.3f MMAC/image (convs %.3f, + adds, pool, head)" % (engine, net.macs / 1e6,
                                                                             net.conv_macs / 1e6)
        if check_x is not None:
            torch.set_num_threads(2)
            with torch.no_grad():
                pred = torch.cat([net(check_x[i:i + 50]).argmax(1) for i in range(0, len(check_y), 50)])
            line += ", top-1 %.1f%% on the first %d CIFAR-10 test images" % (
                100.0 * float((pred == check_y).float().mean()), len(check_y))
        print(line, flush=True)
        gen = torch.Generator().manual_seed(1)
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            for batch in [int(b) for b in args.batches.split(",")]:
                net = QuantNet(state, arch).eval()  # fresh packed weights per configuration (onednn)
                q = torch.randint(0, 256, (batch, 3, side, side), generator=gen, dtype=torch.uint8)
                x = torch._make_per_tensor_quantized_tensor(q.contiguous(memory_format=torch.channels_last),
                                                            1.0 / 127.5, 128)
                try:
                    mean, best, cpu = measure(net, x, args.seconds)
                except RuntimeError as e:
                    print("  %-8s threads %d batch %2d: failed: %s" % (engine, threads, batch, str(e).splitlines()[0]))
                    continue
                r = {"engine": engine, "threads": threads, "batch": batch, "macs": net.macs,
                     "img_s_mean": batch / mean, "img_s_best": batch / best, "cpu_s_per_img": cpu / batch,
                     "wall_s_per_img": mean / batch}
                results.append(r)
                print("  %-8s threads %d batch %2d: %8.1f img/s mean wall, %8.1f img/s best repetition, "
                      "%.2f ms CPU/img (%.2f CPU/wall)" % (engine, threads, batch, r["img_s_mean"], r["img_s_best"],
                                                         1e3 * r["cpu_s_per_img"], cpu / mean), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "results": results}, f, indent=1)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
