"""Hyperparameter choices made from records, on validation data only.

The rule, the same for every method: on the development corruption gaussian_noise at the short
schedule, each method runs with eta = x * eta0 for x in matrix.LR_GRID; it takes the x with the highest
best-validation accuracy; a tie goes to the lower final training loss, then to the larger step. Test
accuracy is never looked at. Dense training applies it to the methods with per-layer step normalisation
(matrix.DENSE_LN: each layer moves eta ||W|| per step); the same rule over one learning rate for every
layer (matrix.DENSE_GLOBAL) is kept as the evidence of why that was not enough.
"""

from . import matrix, records

DENSE_METHODS = matrix.DENSE_LN + matrix.DENSE_GLOBAL
GRID_SCHEDULE, GRID_CORRUPTION = "short", "gaussian_noise"


def grid_records(results, method):
    """{multiplier string: record} of a method's grid runs that have current records."""
    out = {}
    for x in matrix.LR_GRID:
        run = matrix.Run(GRID_SCHEDULE, GRID_CORRUPTION, "%s@lr%s" % (method, x))
        rec = results.get(run.id)
        if rec is not None and records.record_is_current(rec, run):
            out[x] = rec
    return out


def choose(grid):
    """The chosen multiplier of a complete grid {x: record} (see the module's rule)."""
    return max(grid, key=lambda x: (grid[x]["best_val"], -grid[x]["final_loss"], float(x)))


def dense_choice(results):
    """{method: chosen multiplier string} for the dense methods whose grid is complete."""
    out = {}
    for m in DENSE_METHODS:
        g = grid_records(results, m)
        if len(g) == len(matrix.LR_GRID):
            out[m] = choose(g)
    return out


AUGMENT_METHODS = ("zo_sparse", "bp_fp32", "bp_int8")


def augment_table(results):
    """{(corruption, method, augmented): record} of the augment set's current records."""
    out = {}
    for c in matrix.DEV_CORRUPTIONS:
        for m in AUGMENT_METHODS:
            for aug in (False, True):
                run = matrix.Run("short", c, m + ("_aug" if aug else ""))
                rec = results.get(run.id)
                if rec is not None and records.record_is_current(rec, run):
                    out[(c, m, aug)] = rec
    return out


def augment_choice(results):
    """True (train with augmentation), False (without), or None while the augment set is incomplete.
    The rule: the setting with the higher mean best-validation accuracy over the three methods (ZO sparse,
    FP32 BP, int8 BP) and the four development corruptions at the short schedule; a tie keeps no
    augmentation (identical inputs for every method, the simpler setting). One setting for every method,
    so that ZO and BP always see identical batches."""
    t = augment_table(results)
    if len(t) < 2 * len(AUGMENT_METHODS) * len(matrix.DEV_CORRUPTIONS):
        return None
    mean = {aug: sum(r["best_val"] for (c, m, a), r in t.items() if a == aug) / (len(t) / 2) for aug in (False, True)}
    return mean[True] > mean[False]


def zo_plus_choice(results, candidates, schedule="full"):
    """Issue 13's rule (docs/zo-search.md): among `candidates` with a current record on every development
    corruption at `schedule`, the highest mean best-validation accuracy over the four; a tie goes to the lower
    mean final training loss, then to the earlier candidate. Test accuracy is never looked at. Returns
    (method or None, {method: (mean best validation, mean final loss)} of the complete candidates)."""
    scores = {}
    for m in candidates:
        recs = []
        for c in matrix.DEV_CORRUPTIONS:
            run = matrix.Run(schedule, c, m)
            rec = results.get(run.id)
            if rec is None or not records.record_is_current(rec, run):
                break
            recs.append(rec)
        else:
            n = len(recs)
            scores[m] = (sum(r["best_val"] for r in recs) / n, sum(r["final_loss"] for r in recs) / n)
    if not scores:
        return None, scores
    order = {m: i for i, m in enumerate(candidates)}
    return max(scores, key=lambda m: (scores[m][0], -scores[m][1], -order[m])), scores


def zo_plus_choice_text(results, candidates, named, schedule="full"):
    """zo_plus_choice as one line of markdown (the report and zo_search_table.py print it): the choice,
    every complete candidate's mean best validation (best first), the incomplete ones, and a warning when
    `named` (what matrix.py names) is not the choice."""
    m, scores = zo_plus_choice(results, candidates, schedule)
    ranked = sorted(scores, key=lambda k: (-scores[k][0], scores[k][1]))
    waiting = [c for c in candidates if c not in scores]
    text = "%s (complete: %s%s)" % (
        "`%s`" % m if m else "none yet",
        ", ".join("`%s` %.2f %%" % (k, 100 * scores[k][0]) for k in ranked) or "none",
        "; incomplete: " + ", ".join("`%s`" % c for c in waiting) if waiting else "")
    if m is not None and m != named:
        text += "; **matrix.py names `%s`, not the rule's choice**" % named
    return text
