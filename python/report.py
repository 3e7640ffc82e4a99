#!/usr/bin/python3
"""The reproduction report (docs/results.md, docs/img/*.png): ZO (tinyzo train) against our
back-propagation baselines (python/baselines) on the same split, model and layers.

    /usr/bin/python3 python/report.py [--corruptions gaussian_noise,defocus_blur,fog,contrast | all]
        [--epochs 50] [--queries-w 25 --queries-b 25 --queries-np 50] [--dense] [--no-ablations]
        [--tinyzo build-bp/tinyzo] [--runs out/report] [--out docs] [--smoke]

Every run goes to RUNS/<corruption>/<method>/ and is reused when its summary.json exists and its
recorded command is the same (delete the directory to rerun). The defaults are the full protocol
(METHOD §6, configs/paper.json); --smoke is the CI mode (two corruptions, 2 steps, 1 + 1 / 2 queries,
2 / 1 / 2 images per class, the --dense runs on the first corruption only, writes into RUNS only, never into
docs/, and always reruns).
All methods use the eval preprocessing for training (`tinyzo train --no-augment`), see docs/baselines.md.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

ALL_CORRUPTIONS = ("gaussian_noise,shot_noise,impulse_noise,speckle_noise,gaussian_blur,glass_blur,defocus_blur,"
                   "motion_blur,zoom_blur,snow,frost,fog,brightness,contrast,saturate,jpeg_compression,pixelate,"
                   "elastic_transform,spatter")  # the 19 of CORRUPTIONS.md (METHOD §6)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
BP = os.path.join(REPO, "python", "baselines", "train_bp.py")


def run(cmd, out_dir, log_name="stdout.txt"):
    """Runs cmd (a list) unless out_dir/summary.json exists from the same command; returns
    (summary dict, wall seconds, reused?)."""
    os.makedirs(out_dir, exist_ok=True)
    cmd_file = os.path.join(out_dir, "command.txt")
    line = " ".join(shlex.quote(c) for c in cmd)
    # The thread count changes the speed only (tinyzo: bitwise; torch: the suffix is small), so a run
    # made with another --threads is reused.
    key = re.sub(r"--threads \S+ ", "", line)
    summary = os.path.join(out_dir, "summary.json")
    if os.path.exists(summary) and os.path.exists(cmd_file) and re.sub(r"--threads \S+ ", "", open(cmd_file).read().strip()) == key:
        rec = json.load(open(os.path.join(out_dir, "wall.json")))
        return json.load(open(summary)), rec["wall_seconds"], True
    print("report: " + line, flush=True)
    t0 = time.time()
    with open(os.path.join(out_dir, log_name), "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    wall = time.time() - t0
    if r.returncode != 0:
        sys.exit("report: failed (exit %d): %s\n  see %s" % (r.returncode, line, os.path.join(out_dir, log_name)))
    with open(cmd_file, "w") as f:
        f.write(line + "\n")
    with open(os.path.join(out_dir, "wall.json"), "w") as f:
        json.dump({"wall_seconds": wall}, f)
    return json.load(open(summary)), wall, False


def tinyzo_plan(tz, layers, extra):
    """`tinyzo plan --json` of a layer set (its stderr when it fails)."""
    r = subprocess.run([tz, "plan", "--model", "mcunet-cifar10", "--train", layers, "--json", "--no-chart"] + extra,
                       capture_output=True, text=True, cwd=REPO)
    return r.stdout if r.returncode == 0 else r.stderr


def dense_modes(out_dir):
    """ZO modes ("WP" / "NP") of the layers of a tinyzo run, from its log's start record."""
    for r in read_log(out_dir):
        if r.get("type") == "start":
            return [l.get("mode", "?") for l in r.get("layers", [])]
    return []


def diag_text(a, before, corruptions):
    """The eta0 / 10 diagnostic runs of the whole-network columns (FP32 BP all, ZO dense), as a sentence."""
    parts, lr = [], None
    for key, name in (("bp_fp32_all_lr10", "FP32 BP on all convs"), ("zo_dense_lr10", "ZO dense")):
        r = getattr(a, "diag", {}).get(key)
        if not r:
            continue
        ls = losses(r["dir"])
        lr = r["cmd"][r["cmd"].index("--lr") + 1]
        parts.append("%s: test %.2f -> %.2f %% (loss %.2f, max %.2f, last 10 steps %.2f)" %
                     (name, before[corruptions[0]], pct(r["summary"]["test_after"]), ls[0], max(ls),
                      sum(ls[-10:]) / len(ls[-10:])))
    if not parts:
        return ""
    return (" At a tenth of the step (eta0 / 10, `--lr %s`, the diagnostic rows of the runs table) on %s, %s." %
            (lr, corruptions[0], "; ".join(parts)))


def step_macs(out_dir):
    """Forward MACs of a tinyzo run's first step (the same every step)."""
    for r in read_log(out_dir):
        if r.get("type") == "step":
            return r.get("macs", 0)
    return 0


def read_log(out_dir):
    recs = [json.loads(l) for l in open(os.path.join(out_dir, "log.jsonl")) if l.strip()]
    return recs


def losses(out_dir):
    return [r["loss"] for r in read_log(out_dir) if r.get("type") == "step"]


def pct(v):
    """Both tinyzo and the baselines log accuracies as fractions (k / n)."""
    return 100.0 * v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corruptions", default="gaussian_noise,defocus_blur,fog,contrast",
                    help="comma list, or all (the 19 of METHOD §6)")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--queries-w", type=int, default=25)
    ap.add_argument("--queries-b", type=int, default=25)
    ap.add_argument("--queries-np", type=int, default=50)
    ap.add_argument("--per-class", default="100,10,90", help="train,val,test images per class")
    ap.add_argument("--dense", action="store_true",
                    help="also ZO on all convs (`--layers all --mode auto`) and BP on all convs")
    ap.add_argument("--no-ablations", action="store_true")
    ap.add_argument("--tinyzo", default=os.path.join(REPO, "build-bp", "tinyzo"))
    ap.add_argument("--runs", default=os.path.join(REPO, "out", "report"),
                    help="run directories (default out/report: ignored by git; they hold data-derived files)")
    ap.add_argument("--out", default=os.path.join(REPO, "docs"), help="results.md and img/ go here")
    ap.add_argument("--threads", type=int, default=2, help="tinyzo engines per run")
    ap.add_argument("--bp-threads", type=int, default=1, help="torch threads per BP run")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.corruptions, a.max_steps, a.epochs = "gaussian_noise,fog", 2, 1
        a.queries_w, a.queries_b, a.queries_np, a.per_class = 1, 1, 2, "2,1,2"
        a.dense = True  # the dense columns on the first corruption only (the table shows "-" for the other)
        a.runs = os.path.join(a.runs, "smoke") if a.runs.endswith("report") else a.runs
        a.out = os.path.join(a.runs, "docs")
        # CI: never reuse runs of an older build; remove only what this mode creates.
        for d in a.corruptions.split(",") + ["docs"]:
            shutil.rmtree(os.path.join(a.runs, d), ignore_errors=True)
    if a.corruptions == "all":
        a.corruptions = ALL_CORRUPTIONS
    t_all = time.time()
    corruptions = a.corruptions.split(",")
    tr, va, te = a.per_class.split(",")
    tz = a.tinyzo
    sched = ["--epochs", str(a.epochs)] + (["--max-steps", str(a.max_steps)] if a.max_steps else [])
    queries = ["--queries-w", str(a.queries_w), "--queries-b", str(a.queries_b), "--queries-np", str(a.queries_np)]
    split_counts = ["--train-per-class", tr, "--val-per-class", va, "--test-per-class", te]

    def zo(c, name, extra):
        out = os.path.join(a.runs, c, name)
        cmd = [tz, "train", "--config", "configs/paper.json", "--corruption", c, "--no-augment", "--threads",
               str(a.threads), "--no-progress", "--out", out] + split_counts + sched + queries + extra
        s, wall, _ = run(cmd, out)
        return {"summary": s, "wall": wall, "cmd": cmd, "dir": out}

    def bp(c, method, layers="paper", suffix="", extra=()):
        out = os.path.join(a.runs, c, "bp_%s%s%s" % (method, "" if layers == "paper" else "_" + layers, suffix))
        cmd = [PY, BP, "--split", os.path.join(a.runs, c, "split"), "--method", method, "--layers", layers,
               "--threads", str(a.bp_threads), "--out", out] + sched + list(extra)
        s, wall, _ = run(cmd, out)
        return {"summary": s, "wall": wall, "cmd": cmd, "dir": out}

    # Splits first (every run of a corruption reads them), then all runs, `--jobs` at a time: tinyzo's
    # training loop and the BP baselines are single-threaded for the steps, so two runs share 2 cores.
    for c in corruptions:
        split_dir = os.path.join(a.runs, c, "split")
        if not os.path.exists(os.path.join(split_dir, "test.bin")):
            subprocess.run([tz, "split", "--corruption", c, "--out", split_dir] + split_counts, check=True, cwd=REPO,
                           stdout=subprocess.DEVNULL)
    plan = {}
    for layers, extra in (("paper", []), ("all", ["--mode", "auto", "--budget-kb", "1024"])):
        plan[layers] = tinyzo_plan(tz, layers, extra)
    # Dense ZO: every conv (`--layers all`; the trainer's layer table lives in its arena, kMaxLayers = 256 >
    # MCUNet's 42 convs). Fallback for a model with more trainable convs than ZoTrainer::kMaxLayers (`tinyzo
    # plan` reports "the trainer takes at most N layers"): the last N convs, the largest set it takes.
    a.dense_layers, a.dense_note = "all", ""
    if a.dense:
        try:
            pa = json.loads(plan["all"])["training"]
            names = [l["name"] for l in pa["layers"]]
            m = re.search(r"at most (\d+) layers", json.dumps(pa.get("zo_trainer_measured", {})))
        except (ValueError, KeyError):
            names, m = [], None
        if m and int(m.group(1)) < len(names):
            n = int(m.group(1))
            a.dense_layers = ",".join(names[-n:])
            a.dense_note = ("the last %d of the %d convs, `%s` .. `%s` (the trainer takes at most %d layers, "
                            "`ZoTrainer::kMaxLayers`)" % (n, len(names), names[-n], names[-1], n))
        if a.dense_layers != "all":
            # (plan's `--mode auto` is "NP while it fits --budget-kb", not the trainer's D <= 2 d_w rule: the
            # modes the run used and its measured arena come from its log, see memory_table.)
            plan["dense"] = tinyzo_plan(tz, a.dense_layers, ["--mode", "wp"])
    jobs = {}
    for c in corruptions:
        jobs[(c, "zo_sparse")] = lambda c=c: zo(c, "zo_sparse", [])
        jobs[(c, "bp_fp32")] = lambda c=c: bp(c, "fp32")
        jobs[(c, "bp_int8")] = lambda c=c: bp(c, "int8")
        if a.dense and (not a.smoke or c == corruptions[0]):
            jobs[(c, "zo_dense")] = lambda c=c: zo(c, "zo_dense", ["--layers", a.dense_layers, "--mode", "auto"])
            jobs[(c, "bp_fp32_all")] = lambda c=c: bp(c, "fp32", "all")
            jobs[(c, "bp_int8_all")] = lambda c=c: bp(c, "int8", "all")
    if a.dense:
        # Diagnostic for the whole-network columns (BP all, ZO dense): the same run at a tenth of the protocol's eta0.
        lr10 = "%.9g" % (0.01 * 100 / 256 / 10)
        jobs[("diag", "bp_fp32_all_lr10")] = lambda: bp(corruptions[0], "fp32", "all", "_lr10", ["--lr", lr10])
        jobs[("diag", "zo_dense_lr10")] = lambda: zo(corruptions[0], "zo_dense_lr10",
                                                     ["--layers", a.dense_layers, "--mode", "auto", "--lr", lr10])
    abl_names = []
    if not a.no_ablations:
        c0 = corruptions[0]
        for est in ("layer", "model"):
            for mode in ("np", "wp"):
                name = "%s-wise %s" % (est, mode.upper())
                abl_names.append(name)
                jobs[("abl", name)] = lambda est=est, mode=mode: zo(c0, "abl_%s_%s" % (est, mode),
                                                                    ["--estimation", est, "--mode", mode])
        abl_names.append("no GNS")
        jobs[("abl", "no GNS")] = lambda: zo(c0, "abl_no_gns", ["--gns", "none"])
        if "--no-qas" in subprocess.run([tz, "train", "--help"], capture_output=True, text=True).stdout:
            abl_names.append("no QAS")
            jobs[("abl", "no QAS")] = lambda: zo(c0, "abl_no_qas", ["--no-qas"])
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        futures = {k: pool.submit(f) for k, f in jobs.items()}
        done = {k: f.result() for k, f in futures.items()}
    results = {c: {m: r for (cc, m), r in done.items() if cc == c} for c in corruptions}
    a.diag = {m: r for (cc, m), r in done.items() if cc == "diag"}
    for c in corruptions:
        # The start model seen by both sides must be the same: exact equality of test accuracy.
        t0 = pct(results[c]["zo_sparse"]["summary"]["test_before"])
        for k in results[c]:
            if abs(pct(results[c][k]["summary"]["test_before"]) - t0) > 1e-12:
                sys.exit("report: %s: start accuracy differs: tinyzo %.4f, %s %.4f" %
                         (c, t0, k, pct(results[c][k]["summary"]["test_before"])))
    ablations = {}
    if abl_names:
        ablations["adaptive (threshold:5)"] = results[corruptions[0]]["zo_sparse"]
        for n in abl_names:
            ablations[n] = done[("abl", n)]

    write_report(a, corruptions, results, ablations, plan, time.time() - t_all)


def write_report(a, corruptions, results, ablations, plan, total_wall):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = os.path.join(a.out, "img")
    os.makedirs(img, exist_ok=True)
    cols = [("zo_sparse", "ZO sparse"), ("zo_dense", "ZO dense"), ("bp_fp32", "FP32 BP"), ("bp_int8", "int8 BP"),
            ("bp_fp32_all", "FP32 BP all"), ("bp_int8_all", "int8 BP all")]
    color = {None: "0.6", "zo_sparse": "C0", "zo_dense": "C1", "bp_fp32": "C2", "bp_int8": "C3", "bp_fp32_all": "C4",
             "bp_int8_all": "C5"}
    hdr = ["corruption", "before"] + [n for k, n in cols if any(k in results[c] for c in corruptions)]
    keys = [k for k, n in cols if any(k in results[c] for c in corruptions)]
    acc = {c: {k: pct(results[c][k]["summary"]["test_after"]) for k in keys if k in results[c]} for c in corruptions}
    before = {c: pct(results[c]["zo_sparse"]["summary"]["test_before"]) for c in corruptions}
    dense = "zo_dense" in keys
    sched = ("%d steps" % a.max_steps) if a.max_steps else ("%d epochs = %d steps" % (a.epochs, a.epochs * 10))
    L = ["# Results: ZO against back-propagation on CIFAR-10-C (generated)", "",
         "Generated by `/usr/bin/python3 python/report.py %s` (%s; this invocation %.0f s wall, the runs' own "
         "wall times add up to %.0f s, see the last table; runs execute `--jobs` at a time on a shared 2-core "
         "machine). Do not edit by hand." %
         (" ".join(sys.argv[1:]), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), total_wall,
          sum(r["wall"] for c in corruptions for r in results[c].values()) +
          sum(r["wall"] for n, r in ablations.items() if n != "adaptive (threshold:5)") +
          sum(r["wall"] for r in getattr(a, "diag", {}).values())), "",
         "Setting: MCUNet-5fps int8 (`mcunet_in1_cifar10.pth`), severity 5, class-balanced split seed 0 "
         "(%s train / val / test images per class), B = 100, eta0 = 0.01 B / 256 with a cosine to 0, "
         "best-validation checkpoint re-tested on the test split. **Schedule: %s; ZO queries %d + %d (WP) / %d (NP)** "
         "(the paper: 50 epochs, 25 + 25 / 50), the same for every column. All methods train on the eval "
         "preprocessing (`--no-augment`), so ZO and BP see identical inputs (docs/baselines.md)." %
         (a.per_class.replace(",", " / "), sched, a.queries_w, a.queries_b, a.queries_np), "",
         "Trained layers per column:", "",
         "- **ZO sparse, FP32 BP, int8 BP**: the paper's `1.{4,5,6,7}.conv.0` (ZO: WP for blocks 4-5, NP for "
         "6-7, `--mode threshold:5`)."]
    if dense:
        modes = dense_modes(results[corruptions[0]]["zo_dense"]["dir"])
        L += ["- **ZO dense**: `tinyzo train --layers %s --mode auto` (no budget: per layer NP when D <= 2 d_w, "
              "docs/training.md; here %s): %s." %
              ("all" if a.dense_layers == "all" else "<%d convs>" % len(a.dense_layers.split(",")),
               "%d WP + %d NP" % (modes.count("WP"), modes.count("NP")) if modes else "modes in the run's log",
               a.dense_note or "every conv (%d, depthwise included)" % len(modes)),
              "- **FP32 BP all, int8 BP all**: `train_bp.py --layers all`, every conv (42, depthwise included)."]
    L += ["", "## Test accuracy (%) per corruption", "", "| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for c in corruptions:
        row = [before[c]] + [acc[c].get(k) for k in keys]
        L.append("| %s | " % c + " | ".join("-" if v is None else "%.2f" % v for v in row) + " |")
    means = [sum(before.values()) / len(corruptions)] + \
            [sum(acc[c][k] for c in corruptions) / len(corruptions) if all(k in acc[c] for c in corruptions) else None
             for k in keys]
    L.append("| **mean** | " + " | ".join("-" if v is None else "**%.2f**" % v for v in means) + " |")
    L += ["", "The 'before' column is the start model's accuracy; tinyzo and the Python baselines measured it "
          "independently and the report stops unless they agree exactly." +
          (" 10.00 is chance (10 classes, balanced test split): that run diverged and even its best-validation epoch "
           "predicts a single class." if any(abs(v - 10.0) < 1e-9 for c in corruptions for v in acc[c].values()) else ""),
          ""]
    if not a.dense:
        L += ["ZO dense and BP on all convs are not in this run (`--dense` adds them: `tinyzo train --layers all "
              "--mode auto` and `train_bp.py --layers all`).", ""]

    # ZO against BP, in points, and where ZO is within one point of FP32 BP.
    pairs = [("zo_sparse", "bp_fp32", "ZO sparse - FP32 BP"), ("zo_sparse", "bp_int8", "ZO sparse - int8 BP"),
             ("zo_dense", "bp_fp32", "ZO dense - FP32 BP (paper layers)"),
             ("zo_dense", "bp_fp32_all", "ZO dense - FP32 BP all"), ("zo_dense", "zo_sparse", "ZO dense - ZO sparse")]
    pairs = [p for p in pairs if p[0] in keys and p[1] in keys]
    L += ["## ZO against BP (points)", "", "| corruption | " + " | ".join(p[2] for p in pairs) + " |",
          "|---|" + "---|" * len(pairs)]
    for c in corruptions + ["mean"]:
        def diff(p, c=c):
            cs = [x for x in corruptions if p[0] in acc[x] and p[1] in acc[x]] if c == "mean" else [c]
            if not cs or p[0] not in acc[cs[0]] or p[1] not in acc[cs[0]]:
                return "-"
            return "%+.2f" % (sum(acc[x][p[0]] - acc[x][p[1]] for x in cs) / len(cs))
        L.append("| %s | " % c + " | ".join(diff(p) for p in pairs) + " |")
    L.append("")
    for zk, zn in (("zo_sparse", "ZO sparse"), ("zo_dense", "ZO dense")):
        if zk not in keys:
            continue
        cs = [c for c in corruptions if zk in acc[c]]
        near = ["%s (%.2f vs %.2f)" % (c, acc[c][zk], acc[c]["bp_fp32"]) for c in cs
                if abs(acc[c][zk] - acc[c]["bp_fp32"]) <= 1.0]
        far = ["%s (%.2f vs %.2f, %+.2f)" % (c, acc[c][zk], acc[c]["bp_fp32"], acc[c][zk] - acc[c]["bp_fp32"])
               for c in cs if abs(acc[c][zk] - acc[c]["bp_fp32"]) > 1.0]
        L.append("- **%s within one point of FP32 BP (paper layers)**: %s; **not within one point**: %s." %
                 (zn, "; ".join(near) or "none", "; ".join(far) or "none"))
    L.append("")
    # Runs that end below the start model: diverged (the training loss jumps above 3x its first value or ends
    # above it) or not.
    diverged, below = [], []
    for c in corruptions:
        for k in keys:
            if k not in acc[c]:
                continue
            ls = losses(results[c][k]["dir"])
            s_ = results[c][k]["summary"]
            txt = "%s %s (test %.2f -> %.2f; loss %.2f, max %.2f, last 10 steps %.2f; val %.0f -> best %.0f %%)" % (
                c, dict(cols)[k], before[c], acc[c][k], ls[0], max(ls), sum(ls[-10:]) / len(ls[-10:]),
                pct(s_.get("val_before", 0)), pct(s_.get("best_val", 0)))
            if acc[c][k] >= before[c]:
                continue
            if max(ls) > 3 * ls[0] or sum(ls[-10:]) / len(ls[-10:]) > ls[0]:
                diverged.append(txt)
            else:
                below.append(txt)
    if diverged:
        L += ["**Diverged** (below the start model; the training loss jumps above 3x its start value, or ends "
              "above it): " + "; ".join(diverged) + ". Plain SGD at the protocol's eta0 = 0.0039 (fine for "
              "the 4 paper layers) is too large a step when every layer moves at once; nothing here tunes the "
              "step per method." + diag_text(a, before, corruptions), ""]
    if below:
        n_val = 10 * int(a.per_class.split(",")[1])
        L += ["**Below the start model without diverging** (the training loss falls; the checkpoint is the "
              "best of %s validations on %d images, which resolve %.0f point%s and need not track the %d test "
              "images): " % (a.max_steps and "the" or a.epochs, n_val, 100.0 / n_val, "" if n_val == 100 else "s",
                             10 * int(a.per_class.split(",")[2])) + "; ".join(below) + ".", ""]

    # accuracy bars
    n_c = len(corruptions)
    fig, ax = plt.subplots(figsize=(max(7.5, 1.1 * n_c + 2), 3.4), dpi=80)
    width = 0.8 / (1 + len(keys))
    for j, (lab, k) in enumerate([("before", None)] + [(n, k) for k, n in cols if k in keys]):
        vals = [before[c] if k is None else acc[c].get(k, 0.0) for c in corruptions]
        ax.bar([i + j * width for i in range(n_c)], vals, width, label=lab, color=color[k])
    ax.set_xticks([i + 0.4 - width / 2 for i in range(n_c)])
    ax.set_xticklabels(corruptions, fontsize=8, rotation=30 if n_c > 6 else 0, ha="right" if n_c > 6 else "center")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.axhline(10.0, color="grey", lw=0.6, ls=":")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("best-validation checkpoint, %s" % sched, fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(img, "accuracy.png"))
    plt.close(fig)

    ncol = min(n_c, 4)
    nrow = (n_c + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.9 * nrow), dpi=80, squeeze=False)
    for i, c in enumerate(corruptions):
        ax = axes[i // ncol][i % ncol]
        for k, n in cols:
            if k in results[c]:
                ls = losses(results[c][k]["dir"])
                ax.plot(ls, label=n, lw=1, ls="--" if k.endswith("_all") else "-", color=color[k])
        # Diverged runs reach losses of 10+ while the others stay near 1: a log axis shows both.
        ax.set_yscale("log")
        ax.set_title(c, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for j in range(n_c, nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    for r in range(nrow):
        axes[r][0].set_ylabel("training loss (batch mean, log)", fontsize=8)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(os.path.join(img, "loss.png"))
    plt.close(fig)
    L += ["![test accuracy](img/accuracy.png)", "", "![training loss](img/loss.png)", ""]

    if ablations:
        c = corruptions[0]
        L += ["## Ablations on %s (ZO, paper layers)" % c, "",
              "| run | final training loss (mean of the last 10 steps) | test after | flags |", "|---|---|---|---|"]
        for name, r in ablations.items():
            ls = losses(r["dir"])
            extra = r["cmd"][r["cmd"].index("--queries-np") + 2:]
            L.append("| %s | %.3f | %.2f | `%s` |" % (name, sum(ls[-10:]) / len(ls[-10:]),
                                                    pct(r["summary"]["test_after"]), " ".join(extra) or "-"))
        for fname, title, names in (("ablation_estimation.png", "estimation / perturbation",
                                     [n for n in ablations if n != "no GNS" and n != "no QAS"]),
                                    ("ablation_gns_qas.png", "GNS and QAS", ["adaptive (threshold:5)", "no GNS",
                                                                             "no QAS"])):
            fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
            for n in names:
                if n in ablations:
                    ax.plot(losses(ablations[n]["dir"]), label=n, lw=1)
            ax.set_title("%s: %s" % (c, title), fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylabel("training loss")
            ax.legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(os.path.join(img, fname))
            plt.close(fig)
        L += ["", "![ablation (a)](img/ablation_estimation.png) ![ablation (b)](img/ablation_gns_qas.png)", ""]
        if "no QAS" not in ablations:
            L += ["*No QAS* is not run: `tinyzo train` has no flag to turn quantization-aware scaling off. "
                  "It needs e.g. `--qas none` (update `W_int <- clamp(rne(W_int - eta g_W))`, "
                  "`b_int <- clamp(rne(b_int - eta g_b))`, i.e. the 1/s_w^2 and 1/(s_x s_w)^2 factors of "
                  "METHOD §3.6 replaced by 1); the paper reports that nothing is learned without it.", ""]

    L += ["## Memory (`tinyzo plan --model mcunet-cifar10 --train paper --json`; "
          "`all`: `--train all --mode auto --budget-kb 1024`%s), B = 100, Q = 50" %
          ("; `dense`: `--train <the ZO dense set> --mode wp`" if "dense" in plan else ""), ""]
    run_rows = []
    if dense:
        for r0 in read_log(results[corruptions[0]]["zo_dense"]["dir"]):
            if r0.get("type") == "start" and "trainer_arena_bytes" in r0:
                m = dense_modes(results[corruptions[0]]["zo_dense"]["dir"])
                run_rows.append(("dense" if "dense" in plan else "all", "ZoTrainer of the ZO dense run (%d WP + %d NP, Q = %d + %d / %d; its log)" %
                                 (m.count("WP"), m.count("NP"), a.queries_w, a.queries_b, a.queries_np),
                                 r0["trainer_arena_bytes"], r0["engine_arena_bytes"] + r0["trainer_arena_bytes"]))
    try:
        L += memory_table({k: json.loads(v) for k, v in plan.items()}, run_rows)
    except Exception:  # noqa: BLE001  (plan output is shown verbatim instead)
        L += ["```"] + [v.strip()[:2000] for v in plan.values()] + ["```"]
    L += ["", "## Notes", "",
          "- **Same inputs.** `tinyzo split` writes the split `tinyzo train` uses; the baselines rebuild the int8 "
          "network from the original `.pth` (bit-exact with tests/reference/reference.py, checked by "
          "python/tests/test_baselines.py) and use the eval preprocessing, as `tinyzo train --no-augment` does. "
          "No training augmentation in any method (docs/baselines.md says why).",
          "- **What is evaluated.** ZO and int8 BP: the int8 model. FP32 BP: the float trainable convs (activations "
          "still int8-quantized); rounding its weights to int8 for deployment is not included.",
          "- **Optimizer.** Every method: plain SGD, eta0 = 0.01 B / 256 = 0.0039, cosine per step, the same "
          "number of steps; int8 BP and ZO round each update to whole LSBs with QAS (METHOD §3.6); FP32 BP does not round.",
          "- **ZO step.** One estimate per step from Q queries per layer (WP: Q_w + Q_b, NP: Q_np), with GNS; "
          "the BP gradient is exact (up to the STE). With fewer queries than the paper's 25 + 25 / 50, ZO is "
          "handicapped relative to the paper's setting; BP's result does not depend on Q.",
          ] + ([] if not dense else [
          "- **Cost of a ZO step** (forward MACs, from the logs, %s): sparse %.1f GMAC, dense %.1f GMAC (one suffix "
          "forward of the batch per query and layer, from the layer on: prefix reuse). Per step %.1f s sparse, "
          "%.1f s dense (train seconds / steps; wall is shared with the other runs and the machine's other users)." %
          ((corruptions[0],) + tuple(step_macs(results[corruptions[0]][k]["dir"]) / 1e9 for k in ("zo_sparse", "zo_dense")) +
           tuple(results[corruptions[0]][k]["summary"].get("train_seconds", 0) /
                 max(1, results[corruptions[0]][k]["summary"].get("steps", 1)) for k in ("zo_sparse", "zo_dense")))]) + [
          "- **Batch order** differs between tinyzo (its `epoch_order`) and the baselines (numpy `default_rng(0)`); "
          "the images per epoch are the same.", ""]
    L += ["## Runs (exact commands and wall time)", "",
          "| corruption | method | finished (UTC) | wall s | train s | steps | best epoch | command |",
          "|---|---|---|---|---|---|---|---|"]
    allruns = [(c, k, results[c][k]) for c in corruptions for k in results[c]]
    allruns += [(corruptions[0], "ablation: " + n, r) for n, r in ablations.items() if n != "adaptive (threshold:5)"]
    allruns += [(corruptions[0], "diagnostic: " + n, r) for n, r in getattr(a, "diag", {}).items()]
    for c, k, r in allruns:
        s = r["summary"]
        cmd = " ".join(shlex.quote(x) for x in r["cmd"]).replace(REPO + "/", "")
        done_at = time.strftime("%Y-%m-%d %H:%M", time.gmtime(os.path.getmtime(os.path.join(r["dir"], "summary.json"))))
        L.append("| %s | %s | %s | %.0f | %.0f | %d | %d | `%s` |" % (c, k, done_at, r["wall"], s.get("train_seconds", 0),
                                                                    s.get("steps", 0), s.get("best_epoch", 0), cmd))
    L += ["", "A run is reused when its `command.txt` matches up to `--threads` (which changes only the speed), "
          "so a reused run may have been made with another thread count; its own `command.txt` has the exact line.",
          "", "Full protocol (not what the numbers above ran unless the schedule line says 50 epochs and "
          "25 + 25 / 50 queries): `scripts/report.sh --corruptions %s --epochs 50 --queries-w 25 --queries-b 25 "
          "--queries-np 50%s`; all 19 corruptions of METHOD §6: the same with `--corruptions all`, e.g. at "
          "this report's schedule `scripts/report.sh --corruptions all --epochs %d --queries-w %d --queries-b %d "
          "--queries-np %d%s` (it reuses the runs above and adds the other 15 corruptions)." %
          (a.corruptions, " --dense" if a.dense else "", a.epochs, a.queries_w, a.queries_b, a.queries_np,
           " --dense" if a.dense else ""), ""]
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write("\n".join(L))
    print("report: wrote %s and %s/*.png (%.0f s)" % (os.path.join(a.out, "results.md"), img, total_wall))


def memory_table(plans, run_rows=()):
    """SRAM of inference, ZO and BP training from `tinyzo plan --json` (docs/memory.md); run_rows:
    (layers, what, extra bytes, total bytes) measured by runs."""
    rows = ["| layers | what | extra over inference (KB) | SRAM total (KB) |", "|---|---|---|---|"]
    for layers, p in plans.items():
        inf = p["inference"]["total_bytes"]
        if layers == "paper":
            rows.append("| - | inference (activation arena + tables) | 0 | %.1f |" % (inf / 1024.0))
        t = p["training"]
        label = "%s (%d convs)" % (layers, len(t.get("layers", []))) if layers != "paper" else layers
        for key, what in (("zo", "ZO, the layers' modes (paper: WP/WP/NP/NP; all: plan's auto, NP while it fits 1024 KB)"), ("zo_all_wp", "ZO, all WP"), ("zo_all_np", "ZO, all NP"),
                          ("zo_trainer_measured", "ZoTrainer as built (measured)"),
                          ("sparse_bp", "BP, MIT-style sparse"), ("bp", "BP, every op input kept")):
            if layers == "dense" and key == "zo":
                continue  # planned with --mode wp: the same as "all WP"
            if layers == "dense" and key == "zo_trainer_measured":
                what = "ZoTrainer as built, all WP (measured)"
            if isinstance(t.get(key), dict) and "extra_bytes" in t[key]:
                rows.append("| %s | %s | %.1f | %.1f |" % (label, what, t[key]["extra_bytes"] / 1024.0,
                                                            t[key]["total_bytes"] / 1024.0))
            elif isinstance(t.get(key), dict) and "unavailable" in t[key]:
                rows.append("| %s | %s | n/a: %s | n/a |" % (label, what, t[key]["unavailable"]))
        for lay, what, extra, total in run_rows:
            if lay == layers:
                rows.append("| %s | %s | %.1f | %.1f |" % (label, what, extra / 1024.0, total / 1024.0))
    rows += ["", "Flash (paper layer set file): %.1f KB." % (plans["paper"]["flash"]["file_bytes"] / 1024.0)]
    return rows


if __name__ == "__main__":
    main()
