#!/usr/bin/python3
"""The table of issue 13's search (docs/zo-search.md) from the committed records alone.

    /usr/bin/python3 python/zo_search_table.py [--results results] [--schedule short]
    /usr/bin/python3 python/zo_search_table.py --full   # the confirmation at the paper's schedule

One row per method of matrix.SEARCH (plus the paper's zo_sparse and the BP baselines for reference)
with a record on every development corruption: forward passes per sample and step, SRAM, mean best
validation accuracy over the four (what chose), forward MACs per step (of the first corruption's record), each corruption's best validation, mean test accuracy
after training (best-validation weights; chose nothing), mean final training loss. Methods missing a
corruption are listed below the table with what they have.

--full: the confirmation at the full schedule, one row per development corruption and one column
per method of FULL_METHODS: best validation (its epoch) / test after training / final loss, "not yet"
where the record does not exist yet.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from experiments import matrix  # noqa: E402


def forwards(rec):
    """Forward passes per sample of one step, as the trainer counts them (docs/zo-search.md)."""
    s = rec["settings"]
    sides = 2 if s.get("two_sided") else 1
    n = 1
    if s.get("params") == "bias":  # every query one whole-network forward (ZO on the biases alone)
        return 1 + s["queries_b"] * sides
    if s.get("estimation") == "model":
        return 1 + s["queries_w"] * sides
    for mode in rec["modes"]:
        n += (s["queries_np"] if mode == "NP" else s["queries_w"] + (s["queries_b"] if s.get("update_bias", True) else 0)) * sides
    return n


# The paper's setting, the search's choice and the paper's step with the baseline (full and half the passes),
# ZO on the biases alone (stage 4, without and with the baseline), the BP baselines.
FULL_METHODS = ("zo_sparse", matrix.ZO_PLUS, "zo_sparse+cv", "zo_sparse+half+cv", "zo_bias+bmu0.25",
                "zo_bias+bmu0.25+cv", "bp_int8", "bp_fp32")


def load(results, schedule, corruption, method):
    p = os.path.join(results, schedule, corruption, method + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def full_table(results):
    print("| corruption | " + " | ".join("`%s`" % m for m in FULL_METHODS) + " |")
    print("|---|" + "---|" * len(FULL_METHODS))
    for c in matrix.DEV_CORRUPTIONS:
        cells = []
        for m in FULL_METHODS:
            r = load(results, "full", c, m)
            cells.append("not yet" if r is None else "%.0f (%d) / %.2f / %.3f" % (
                100 * r["best_val"], r["best_epoch"], 100 * r["test_after"], r["final_loss"]))
        print("| %s | %s |" % (c, " | ".join(cells)))
    means = []
    for m in FULL_METHODS:
        rs = [load(results, "full", c, m) for c in matrix.DEV_CORRUPTIONS]
        means.append("-" if None in rs else "%.2f / %.2f" % (100 * sum(r["best_val"] for r in rs) / len(rs),
                                                            100 * sum(r["test_after"] for r in rs) / len(rs)))
    print("| mean val / test | %s |" % " | ".join(means))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=os.path.join(matrix.REPO, "results"))
    ap.add_argument("--schedule", default="short")
    ap.add_argument("--full", action="store_true", help="the full-schedule confirmation table instead")
    a = ap.parse_args()
    if a.full:
        return full_table(a.results)
    methods = ["zo_sparse"] + list(matrix.SEARCH) + ["bp_int8", "bp_fp32"]
    corr = matrix.DEV_CORRUPTIONS
    print("| method | fwd/sample | GMAC/step | SRAM KB | mean val | " + " | ".join(c.split("_")[0] for c in corr) +
          " | mean test | final loss |")
    print("|---|---|---|---|---|" + "---|" * len(corr) + "---|---|")
    partial = []
    for m in methods:
        recs = {}
        for c in corr:
            p = os.path.join(a.results, a.schedule, c, m + ".json")
            if os.path.exists(p):
                with open(p) as f:
                    recs[c] = json.load(f)
        if len(recs) < len(corr):
            if recs:
                partial.append("%s: %s" % (m, ", ".join("%s val %.0f %%" % (c, 100 * r["best_val"])
                                                        for c, r in recs.items())))
            continue
        r0 = recs[corr[0]]
        zo = "sram_bytes" in r0 and r0.get("modes")
        fwd = str(forwards(r0)) if zo else "-"
        sram = "%.1f" % (r0["sram_bytes"]["total"] / 1024) if zo else "-"
        gmac = "%.1f" % (r0["macs_per_step"] / 1e9) if zo and r0.get("macs_per_step") else "-"
        val = [recs[c]["best_val"] for c in corr]
        test = [recs[c]["test_after"] for c in corr]
        loss = [recs[c]["final_loss"] for c in corr]
        print("| `%s` | %s | %s | %s | **%.2f** | %s | %.2f | %.3f |" % (
            m, fwd, gmac, sram, 100 * sum(val) / len(val), " | ".join("%.0f" % (100 * v) for v in val),
            100 * sum(test) / len(test), sum(loss) / len(loss)))
    for p in partial:
        print("\nincomplete: " + p)


if __name__ == "__main__":
    main()
