#!/usr/bin/env python3
"""What the inference peak would become with in-place execution that tinyzo does not have.

Reads `tinyzo plan --model M --json` (the requests the engine plans: bytes and lifetimes of every
tensor, and the ops) and recomputes the live bytes at every op under two hypothetical schemes:

* in-place depthwise (TinyEngine's trick): a depthwise conv whose input dies at that op writes its
  output over its input. Done with the existing kernels on row bands, each band computed into a
  temp buffer and copied down once no later output row needs the input bytes under it; the temp is
  (pad + 1) output rows (stride 1: a row can be committed once the row `pad` below it is computed;
  stride 2 needs fewer), counted at that op.
* in-place pointwise expand (not proposed in issue 11, shown because it is what the peak of MCUNet
  and ProxylessNAS needs): a 1x1 conv with more output than input channels whose input dies there
  reads its input from the tail of its own output buffer; with the input placed one output row
  further up, row bands never overwrite input not yet read: output bytes + one output row.

Neither touches the model input (the caller owns it), as for the engine's in-place Add. The live
bytes are a lower bound that the planner reaches on all four reference models (docs/memory.md), so
the peak here is what a plan would need.

    python3 python/bench/memory_whatif.py [--tinyzo build/release/tinyzo] [MODEL ...]
"""
import argparse
import json
import subprocess

MODELS = ["mcunet-cifar10", "mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3"]


def dims(shape):
    return [int(v) for v in shape.split("x")]


def live_per_step(tensors, n_ops, at_op=None):
    """Bytes alive at steps -1..n_ops (as live_bytes_at); at_op(step) -> bytes to add at that step."""
    out = []
    for step in range(-1, n_ops + 1):
        live = 0
        for t in tensors.values():
            if t["first_use"] <= step <= t["last_use"]:
                live += t["bytes"]
                # An in-place Add's output is inside its dying input at the hand-over.
                if t["in_place_over"] >= 0 and t["first_use"] == step:
                    p = tensors.get(t["in_place_over"])
                    if p and p["last_use"] == step and p["bytes"] >= t["bytes"]:
                        live -= t["bytes"]
        out.append(live + (at_op(step) if at_op else 0))
    return out


def analyse(plan):
    tensors = {t["tensor"]: t for t in plan["tensors"]}
    n_ops = plan["n_ops"]
    ops = plan["ops"]
    base = live_per_step(tensors, n_ops)
    assert base == plan["live_bytes_per_step"], "live bytes differ from tinyzo's"

    def dying_input(op):
        x = tensors.get(op["input"])
        return x is not None and x["first_use"] >= 0 and x["last_use"] == op["op"]

    def inplace_dw(step):
        if not 0 <= step < n_ops:
            return 0
        op = ops[step]
        if not op["kind"].startswith("dw") or not dying_input(op):
            return 0
        y = tensors[op["output"]]
        ho, wo, c = dims(y["shape"])
        return -y["bytes"] + (op["pad_top"] + 1) * wo * c

    def inplace_pw(step):
        if not 0 <= step < n_ops:
            return 0
        op = ops[step]
        if op["kind"] != "pw1x1" or not dying_input(op):
            return 0
        x, y = tensors[op["input"]], tensors[op["output"]]
        if y["bytes"] <= x["bytes"]:
            return 0
        ho, wo, c = dims(y["shape"])
        return -x["bytes"] + wo * c

    dw = live_per_step(tensors, n_ops, inplace_dw)
    pw = live_per_step(tensors, n_ops, inplace_pw)
    both = live_per_step(tensors, n_ops, lambda s: inplace_dw(s) + inplace_pw(s))

    def peak(live):
        top = max(live)
        where = [ops[s - 1]["name"] + " (op %d, %s)" % (s - 1, ops[s - 1]["kind"])
                 for s in range(len(live)) if live[s] == top and 0 <= s - 1 < n_ops]
        return top, where

    return peak(base), peak(dw), peak(pw), peak(both)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tinyzo", default="build/release/tinyzo")
    ap.add_argument("models", nargs="*", default=MODELS)
    a = ap.parse_args()
    kb = lambda b: "%.1f KB" % (b / 1024)
    for m in a.models:
        plan = json.loads(subprocess.run([a.tinyzo, "plan", "--model", m, "--json"], check=True,
                                         capture_output=True, text=True).stdout)
        planned = plan["inference"]["activation_bytes"]
        (b, bw), *rest = analyse(plan)
        print("%s: planned %s, live peak %s at %s" % (m, kb(planned), kb(b), "; ".join(bw)))
        for label, (v, where) in zip(["in-place depthwise", "in-place pointwise expand", "both"], rest):
            print("  %-27s peak %s (%+.1f KB) at %s" % (label + ":", kb(v), (v - b) / 1024, "; ".join(where)))


if __name__ == "__main__":
    main()
