#!/usr/bin/python3
"""The table of issue 13's search (docs/zo-search.md) from the committed records alone.

    /usr/bin/python3 python/zo_search_table.py [--results results] [--schedule short]
    /usr/bin/python3 python/zo_search_table.py --full   # the confirmation at the paper's schedule

One row per method of matrix.SEARCH (plus the paper's zo_sparse and the BP baselines for reference)
with a record on every development corruption: forward passes per sample and step, SRAM, mean best
validation accuracy over the four (what chose), forward MACs per step (of the first corruption's record), each corruption's best validation, mean test accuracy
after training (best-validation weights; chose nothing), mean final training loss. Methods missing a
corruption are listed below the table with what they have.

--full: the confirmation at the full schedule, one row per method of FULL_METHODS: forward passes,
GMAC per step, mean best validation (what chooses), each development corruption's best validation
(its epoch) / test after training ("not yet" where the record does not exist yet), "late val" (the
mean validation of the last 10 epochs: how much of a best-of-50 maximum holds), mean test, final
loss. --plot PNG draws every run's validation per epoch, one panel per corruption.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from experiments import matrix, records, selection  # noqa: E402


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
    if s.get("plus_biases"):  # the second, bias-only trainer: its own unperturbed forward and its queries
        n += 1 + s["plus_biases"] * sides
    return n


# The full-schedule candidates of issue 13's rule (at the paper's passes, then at half of them), the BP baselines.
FULL_METHODS = tuple(dict.fromkeys(matrix.FULL_CANDIDATES + matrix.HALF_CANDIDATES + ("bp_int8", "bp_fp32")))
LATE_EPOCHS = 10  # "late val": the mean validation of the last epochs, a check on a best-of-50 maximum


def load(recs, schedule, corruption, method):
    """The record of a run from records.load_results(), or None when there is none or it is not current
    (another protocol or command than matrix.py's: selection.zo_plus_choice ignores it too)."""
    run = matrix.Run(schedule, corruption, method)
    rec = recs.get(run.id)
    return rec if rec is not None and records.record_is_current(rec, run) else None


def late_val(rec):
    v = rec.get("val_per_epoch") or []
    v = [x for x in v if x is not None][-LATE_EPOCHS:]
    return sum(v) / len(v) if v else None


def full_table(recs):
    """One row per method of FULL_METHODS: forward passes per sample, GMAC per step, mean best validation
    over the development corruptions (what chooses), each corruption's best validation (its epoch) / test,
    the mean of the last epochs' validation, mean test, mean final loss; "not yet" for a missing record."""
    corr = matrix.DEV_CORRUPTIONS
    print("| method | fwd/sample | GMAC/step | mean val | " + " | ".join(c.split("_")[0] for c in corr) +
          " | late val | mean test | final loss |")
    print("|---|---|---|---|" + "---|" * len(corr) + "---|---|---|")
    for m in FULL_METHODS:
        rs = [load(recs, "full", c, m) for c in corr]
        have = [r for r in rs if r is not None]
        if not have:
            continue
        r0 = have[0]
        zo = bool(r0.get("modes")) and "sram_bytes" in r0
        fwd = str(forwards(r0)) if zo else "-"
        gmac = "%.1f" % (r0["macs_per_step"] / 1e9) if zo and r0.get("macs_per_step") else "-"
        cells = ["not yet" if r is None else "%.0f (%d) / %.2f" % (100 * r["best_val"], r["best_epoch"],
                                                                   100 * r["test_after"]) for r in rs]
        done = len(have) == len(rs)
        mean = lambda f: "%.2f" % (100 * sum(f(r) for r in rs) / len(rs)) if done else "-"  # noqa: E731
        lv = [late_val(r) for r in have]
        late = "%.2f" % (100 * sum(lv) / len(lv)) if done and None not in lv else "-"
        loss = "%.3f" % (sum(r["final_loss"] for r in rs) / len(rs)) if done else "-"
        print("| `%s` | %s | %s | **%s** | %s | %s | %s | %s |" % (
            m, fwd, gmac, mean(lambda r: r["best_val"]), " | ".join(cells), late, mean(lambda r: r["test_after"]),
            loss))


def full_choice(recs):
    """The rule's choice (selection.zo_plus_choice) at the paper's passes and at half of them, as text."""
    return ["The rule's choice %s: %s." % (name, selection.zo_plus_choice_text(recs, cands, current))
            for name, cands, current in (
                ("at most the paper's forward passes", matrix.FULL_CANDIDATES, matrix.ZO_PLUS),
                ("at half of them", matrix.HALF_CANDIDATES, matrix.ZO_PLUS_HALF))]


def full_plot(recs, path):
    """Validation accuracy per epoch of every FULL_METHODS run, one panel per development corruption."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    corr = matrix.DEV_CORRUPTIONS
    fig, axes = plt.subplots(1, len(corr), figsize=(4.2 * len(corr), 3.6), sharey=False)
    colors = {m: "C%d" % i for i, m in enumerate(FULL_METHODS)}  # one color per method in every panel
    handles = {}
    for ax, c in zip(axes, corr):
        for m in FULL_METHODS:
            r = load(recs, "full", c, m)
            if r is None or not r.get("val_per_epoch"):
                continue
            v = [100 * x if x is not None else float("nan") for x in r["val_per_epoch"]]
            style = "--" if m.startswith("bp_") else "-"
            handles[m], = ax.plot(range(1, len(v) + 1), v, style, lw=1.2, color=colors[m], label=m)
        ax.set_title(c)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy %")
    order = [m for m in FULL_METHODS if m in handles]
    fig.legend([handles[m] for m in order], order, fontsize=8, loc="lower center", ncol=len(order))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=90)
    print("wrote %s" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=os.path.join(matrix.REPO, "results"))
    ap.add_argument("--schedule", default="short")
    ap.add_argument("--full", action="store_true", help="the full-schedule confirmation table instead")
    ap.add_argument("--plot", metavar="PNG", help="with --full: also plot validation per epoch into PNG")
    a = ap.parse_args()
    if a.plot and not a.full:
        ap.error("--plot goes with --full")
    recs = records.load_results(a.results)  # once, for the table, the choice and the plot
    if a.full:
        full_table(recs)
        print()
        for line in full_choice(recs):
            print(line + "\n")
        if a.plot:
            full_plot(recs, a.plot)
        return
    methods = ["zo_sparse"] + list(matrix.SEARCH) + ["bp_int8", "bp_fp32"]
    corr = matrix.DEV_CORRUPTIONS
    print("| method | fwd/sample | GMAC/step | SRAM KB | mean val | " + " | ".join(c.split("_")[0] for c in corr) +
          " | mean test | final loss |")
    print("|---|---|---|---|---|" + "---|" * len(corr) + "---|---|")
    partial = []
    for m in methods:
        have = {c: load(recs, a.schedule, c, m) for c in corr}
        have = {c: r for c, r in have.items() if r is not None}
        if len(have) < len(corr):
            if have:
                partial.append("%s: %s" % (m, ", ".join("%s val %.0f %%" % (c, 100 * r["best_val"])
                                                        for c, r in have.items())))
            continue
        r0 = have[corr[0]]
        zo = "sram_bytes" in r0 and r0.get("modes")
        fwd = str(forwards(r0)) if zo else "-"
        sram = "%.1f" % (r0["sram_bytes"]["total"] / 1024) if zo else "-"
        gmac = "%.1f" % (r0["macs_per_step"] / 1e9) if zo and r0.get("macs_per_step") else "-"
        val = [have[c]["best_val"] for c in corr]
        test = [have[c]["test_after"] for c in corr]
        loss = [have[c]["final_loss"] for c in corr]
        print("| `%s` | %s | %s | %s | **%.2f** | %s | %.2f | %.3f |" % (
            m, fwd, gmac, sram, 100 * sum(val) / len(val), " | ".join("%.0f" % (100 * v) for v in val),
            100 * sum(test) / len(test), sum(loss) / len(loss)))
    for p in partial:
        print("\nincomplete: " + p)


if __name__ == "__main__":
    main()
