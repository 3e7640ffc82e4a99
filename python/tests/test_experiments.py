#!/usr/bin/python3
"""Tests of the experiment machinery (python/experiments, python/report.py): records, the run queue
(local, resumed after a kill, and on a real local Dask cluster) and the report made from records alone.

    TINYZO_BIN=build/release/tinyzo /usr/bin/python3 python/tests/test_experiments.py

The end-to-end tests run the `smoke` schedule (2 steps, tiny splits): real tinyzo and BP runs in
seconds. They need the shared data directory and a built tinyzo; without them they fail (CI has both).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from experiments import matrix, records, runner, selection  # noqa: E402

REPO = matrix.REPO
TINYZO = os.path.abspath(os.environ.get("TINYZO_BIN", os.path.join(REPO, "build", "release", "tinyzo")))
RUNNER = os.path.join(REPO, "python", "experiments", "runner.py")
REPORT = os.path.join(REPO, "python", "report.py")


def queue(*args, check=True, env=None):
    r = subprocess.run([matrix.PY, RUNNER] + list(args), capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError("queue %s failed (%d):\n%s\n%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


class MatrixTest(unittest.TestCase):
    def test_ids_and_keys(self):
        r = matrix.Run("full", "fog", "zo_dense@lr0.1")
        self.assertEqual(r.id, "full/fog/zo_dense@lr0.1")
        self.assertEqual(r.lr_scale, 0.1)
        self.assertIn("--lr", r.command("x", "/a"))
        # the key ignores where runs live, the thread count and the binary's path
        self.assertEqual(matrix.key_of(r.command("/b/tinyzo", "/r1", threads=1)),
                         matrix.key_of(r.command("/c/tinyzo", "/r1", threads=2)))
        self.assertNotEqual(r.key(), matrix.Run("full", "fog", "zo_dense").key())
        self.assertEqual(matrix.parse_run_id("short/contrast/bp_int8").method, "bp_int8")

    def test_estimator_options(self):
        # issue 13's options: flags per option, query counts halved per query option, keys of plain methods kept
        r = matrix.Run("short", "fog", "zo_sparse+anti+cv+wp0.5@lr3")
        self.assertEqual((r.base, r.opts, r.lr_scale), ("zo_sparse", ["anti", "cv", "wp0.5"], 3.0))
        c = r.command("tinyzo", "/r")
        self.assertEqual(c[c.index("--queries-w") + 1], "2")
        self.assertEqual(c[c.index("--queries-np") + 1], "5")
        for flag in ("--two-sided", "--baseline", "--lr-wp"):
            self.assertIn(flag, c)
        self.assertEqual(c.count("--queries-w"), 1)
        full = matrix.Run("full", "fog", "zo_sparse+half").command("tinyzo", "/r")
        self.assertEqual([full[full.index(f) + 1] for f in ("--queries-w", "--queries-b", "--queries-np")],
                         ["12", "12", "25"])
        self.assertEqual(matrix.Run("short", "fog", "zo_sparse").key(),
                         ["tinyzo", "train", "--config", "configs/paper.json", "--corruption", "fog", "--no-augment",
                          "--no-progress", "--out", "<runs>/short/fog/zo_sparse/out", "--train-per-class", "100",
                          "--val-per-class", "10", "--test-per-class", "90", "--epochs", "5", "--queries-w", "5",
                          "--queries-b", "5", "--queries-np", "10"])
        # stage 2: momentum, stochastic rounding, and the WP layers' queries moved to the NP layers
        c = matrix.Run("short", "fog", "zo_sparse+cv+mom0.9+sr@lr3").command("tinyzo", "/r")
        self.assertEqual(c[c.index("--momentum") + 1], "0.9")
        self.assertEqual(c[c.index("--rounding") + 1], "stochastic")
        for sched, (qw, qnp) in (("short", ("5", "20")), ("full", ("25", "100"))):
            c = matrix.Run(sched, "fog", "zo_sparse+nponly+cv@lr3").command("tinyzo", "/r")
            self.assertEqual((c[c.index("--queries-w") + 1], c[c.index("--queries-np") + 1]), (qw, qnp))
            self.assertEqual(c[c.index("--layers") + 1], "1.6.conv.0:np,1.7.conv.0:np")
        # stage 7: decay towards the start model
        c = matrix.Run("full", "fog", "zo_sparse+anc0.03").command("tinyzo", "/r")
        self.assertEqual(c[c.index("--anchor") + 1], "0.03")
        c = matrix.Run("full", "fog", "zo_sparse+half+nponly").command("tinyzo", "/r")
        self.assertEqual(c[c.index("--queries-np") + 1], "49")  # 25 + 12 + 12: half the passes
        # per-layer step normalisation: the same flag for tinyzo train and train_bp.py
        for m in ("zo_dense+ln@lr0.1", "bp_fp32_all+ln@lr0.1", "bp_int8_all+ln+sr@lr0.1"):
            c = matrix.Run("short", "fog", m).command("tinyzo", "/r")
            self.assertEqual(c[c.index("--step-norm") + 1], "layer", m)
            self.assertEqual(c[c.index("--lr") + 1], "%.9g" % (0.1 * matrix.ETA0), m)
        c = matrix.Run("short", "fog", "bp_int8_all+ln+sr").command("tinyzo", "/r")
        self.assertEqual((c[0], c[c.index("--rounding") + 1]), (matrix.PY, "stochastic"))
        for bad in ("zo_sparse+nope", "zo_sparse+mu1.5", "bp_int8+cv", "zo_sparse+", "zo_sparse+mom", "bp_fp32+sr",
                    "bp_fp32_all+ln+mom0.9"):
            with self.assertRaises(ValueError, msg=bad):
                matrix.Run("short", "fog", bad)
        self.assertEqual(len(matrix.run_set("search")), 4 * len(matrix.SEARCH))
        # ZO on the biases alone: one whole-network forward per query, the paper set's Q_w + Q_b + Q_np
        # queries (half: halved), model-wise, every conv
        for sched, method, q in (("full", "zo_bias", "100"), ("full", "zo_bias+half+cv", "50"),
                                 ("short", "zo_bias+mu2@lr3", "20")):
            c = matrix.Run(sched, "fog", method).command("tinyzo", "/r")
            self.assertEqual(c[c.index("--queries-b") + 1], q, method)
            self.assertEqual([c[c.index(f) + 1] for f in ("--layers", "--params", "--estimation")],
                             ["all", "bias", "model"], method)
            self.assertNotIn("--queries-np", c)

    def test_bad_ids_are_refused(self):
        for bad in ("full/fog", "nope/fog/zo_sparse", "full/nope/zo_sparse", "full/fog/nope", "full/fog/zo_sparse@lr0",
                    "full/fog/zo_sparse@lrx", "clean/fog/eval", "clean/lossless_first932/zo_sparse"):
            with self.assertRaises(ValueError, msg=bad):
                matrix.parse_run_id(bad)

    def test_sets(self):
        main = matrix.run_set("main")
        self.assertEqual(len(main), 19 * 3)
        self.assertEqual(len({r.id for r in main}), 57)
        self.assertEqual(len(matrix.run_set("dense-grid")), 6 * len(matrix.LR_GRID))

    def test_selection_rule_uses_validation_only(self):
        def rec(m, x, val, loss, test):
            run = matrix.Run("short", "gaussian_noise", "%s@lr%s" % (m, x))
            return run.id, {"protocol": matrix.PROTOCOL, "key": run.key(), "best_val": val, "final_loss": loss,
                            "test_after": test}
        g = matrix.LR_GRID
        res = dict(rec("zo_dense", x, v, l, t) for x, v, l, t in
                   ((g[0], 0.10, 9.0, 0.99), (g[1], 0.40, 2.0, 0.1), (g[2], 0.40, 1.9, 0.2), (g[3], 0.30, 1.5, 0.3)))
        self.assertEqual(selection.dense_choice(res), {})  # the grid is not complete
        res.update([rec("zo_dense", x, 0.2, 2.2, 0.5) for x in g[4:]])
        # the best validation ties between g[1] and g[2]: the lower final loss wins; test accuracy plays no part
        self.assertEqual(selection.dense_choice(res), {"zo_dense": g[2]})

    def test_zo_plus_choice_uses_validation_only_over_complete_candidates(self):
        def recs(m, vals, losses, tests):
            out = {}
            for c, v, l, t in zip(matrix.DEV_CORRUPTIONS, vals, losses, tests):
                run = matrix.Run("full", c, m)
                out[run.id] = {"protocol": matrix.PROTOCOL, "key": run.key(), "best_val": v, "final_loss": l,
                               "test_after": t}
            return out
        cands = ("zo_sparse", "zo_sparse+cv", "zo_bias+bmu0.25")
        self.assertEqual(selection.zo_plus_choice({}, cands), (None, {}))
        res = recs("zo_sparse", (0.6, 0.8, 0.7, 0.7), (1, 1, 1, 1), (0.9, 0.9, 0.9, 0.9))
        res.update(recs("zo_sparse+cv", (0.7, 0.8, 0.7, 0.6), (1, 1, 1, 0.6), (0.1, 0.1, 0.1, 0.1)))
        # the best single corruption and three of four records: not a candidate yet
        res.update(recs("zo_bias+bmu0.25", (0.99, 0.99, 0.99), (0.1, 0.1, 0.1), (0.99, 0.99, 0.99)))
        m, scores = selection.zo_plus_choice(res, cands)
        self.assertEqual(set(scores), {"zo_sparse", "zo_sparse+cv"})
        self.assertAlmostEqual(scores["zo_sparse"][0], 0.7)
        # equal mean validation (0.70): the lower final loss wins; test accuracy plays no part
        self.assertEqual(m, "zo_sparse+cv")
        # a stale record (another command key) does not count
        rid = matrix.Run("full", "fog", "zo_sparse+cv").id
        res[rid] = dict(res[rid], key="other")
        self.assertEqual(selection.zo_plus_choice(res, cands)[0], "zo_sparse")
        res[matrix.Run("full", "contrast", "zo_bias+bmu0.25").id] = dict(
            recs("zo_bias+bmu0.25", (0, 0, 0, 0.2), (1, 1, 1, 1), (1, 1, 1, 1))[
                matrix.Run("full", "contrast", "zo_bias+bmu0.25").id])
        self.assertEqual(selection.zo_plus_choice(res, cands)[0], "zo_bias+bmu0.25")  # mean 0.7925


class QueueTest(unittest.TestCase):
    def setUp(self):
        self.assertTrue(os.access(TINYZO, os.X_OK), "no tinyzo binary at %s (set TINYZO_BIN)" % TINYZO)
        self.tmp = tempfile.mkdtemp(prefix="tinyzo-queue-test-")
        self.runs, self.results, self.docs = (os.path.join(self.tmp, d) for d in ("runs", "results", "docs"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def common(self):
        return ["--runs", self.runs, "--results", self.results, "--tinyzo", TINYZO, "--threads", "1", "--nice", "0"]

    def test_local_queue_records_and_report(self):
        only = "smoke/gaussian_noise/zo_sparse,smoke/gaussian_noise/bp_int8,smoke/fog/bp_fp32"
        out = queue("run", "--only", only, *self.common()).stdout
        self.assertIn("smoke/fog/bp_fp32 finished", out)
        for rid in only.split(","):
            run = matrix.parse_run_id(rid)
            rec = records.load_record(run.record_path(self.results))
            self.assertTrue(records.record_is_current(rec, run))
            self.assertEqual(rec["steps"], 2)
            self.assertEqual(len(rec["loss_per_step"]), 2)
            for k in ("command", "commit", "settings", "test_before", "best_val", "test_after", "final_loss",
                      "loss_per_epoch", "wall_seconds", "cpu_seconds"):
                self.assertIn(k, rec)
            self.assertGreater(rec["cpu_seconds"], 0)
            # the run directory holds the same record (collect recovers it after a fresh checkout)
            self.assertEqual(records.load_record(os.path.join(run.run_dir(self.runs), "record.json")), rec)
        zo = records.load_record(matrix.parse_run_id(only.split(",")[0]).record_path(self.results))
        self.assertGreater(zo["sram_bytes"]["total"], 100 * 1024)
        bp = records.load_record(matrix.parse_run_id(only.split(",")[1]).record_path(self.results))
        self.assertEqual(zo["test_before"], bp["test_before"])  # same start model, same split, same inputs
        # nothing left to do: a second run executes nothing
        self.assertIn("nothing to run", queue("run", "--only", only, *self.common()).stdout)
        st = queue("status", "--only", only + ",smoke/fog/zo_sparse", *self.common()).stdout
        self.assertIn("missing   smoke/fog/zo_sparse", st)
        self.assertIn("3 of 4 runs", st)
        # a fresh checkout has no results/: collect copies the records back from the run directories
        shutil.rmtree(self.results)
        self.assertIn("copied 3 records", queue("collect", "--only", only, *self.common()).stdout)
        # the report is made from the records alone (no run directory needed)
        shutil.rmtree(self.runs)
        r = subprocess.run([matrix.PY, REPORT, "--results", self.results, "--out", self.docs], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.docs, "results.md")) as f:
            md = f.read()
        self.assertIn("## Runs still missing", md)
        self.assertIn("`full/gaussian_noise/zo_sparse`", md)  # missing runs are listed
        self.assertIn("smoke/fog/bp_fp32", md)  # the runs table shows every record

    def test_killed_zo_run_is_resumed_bit_identically(self):
        rid = "smoke/fog/zo_sparse"
        run = matrix.parse_run_id(rid)
        # reference: an uninterrupted run into another root
        queue("run", "--only", rid, "--runs", self.runs, "--results", os.path.join(self.tmp, "ref-results"),
              "--tinyzo", TINYZO, "--threads", "1", "--nice", "0")
        ref = records.load_record(run.record_path(os.path.join(self.tmp, "ref-results")))
        # a queue run killed after its first step: run the same command with --stop-after 1 and leave the
        # runner's bookkeeping as a killed runner leaves it
        shutil.rmtree(self.runs)
        rd = run.run_dir(self.runs)
        os.makedirs(rd)
        argv = run.command(TINYZO, self.runs, 1, 1)
        with open(os.path.join(rd, "queue-run.json"), "w") as f:
            json.dump({"key": run.key(), "protocol": matrix.PROTOCOL, "argv": argv, "started": time.time(),
                       "wall": 5.0, "cpu": 4.0}, f)
        subprocess.run(argv + ["--stop-after", "1"], check=True, capture_output=True, cwd=REPO)
        self.assertTrue(os.path.exists(os.path.join(run.out_dir(self.runs), "checkpoint.bin")))
        out = queue("run", "--only", rid, *self.common()).stdout
        self.assertIn("resuming %s" % rid, out)
        rec = records.load_record(run.record_path(self.results))
        self.assertEqual(rec["loss_per_step"], ref["loss_per_step"])
        self.assertEqual(rec["test_after"], ref["test_after"])
        self.assertGreaterEqual(rec["wall_seconds"], 5.0)  # the killed segment's time is kept

    def test_runner_killed_mid_run_then_restarted(self):
        rid = "smoke/gaussian_noise/bp_fp32"
        run = matrix.parse_run_id(rid)
        p = subprocess.Popen([matrix.PY, RUNNER, "run", "--only", rid] + self.common(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
        lock = os.path.join(run.run_dir(self.runs), ".queue.lock")
        t0 = time.time()
        while not os.path.exists(lock) and time.time() - t0 < 60 and p.poll() is None:
            time.sleep(0.05)
        os.killpg(p.pid, signal.SIGKILL)  # the runner and its run, wherever they are
        p.wait()
        # whatever state it left, a new runner finishes the run and records it
        out = queue("run", "--only", rid, *self.common()).stdout
        self.assertTrue(os.path.exists(run.record_path(self.results)), out)
        self.assertEqual(records.load_record(run.record_path(self.results))["steps"], 2)

    def test_a_run_locked_by_another_runner_is_skipped(self):
        rid = "smoke/fog/bp_int8"
        run = matrix.parse_run_id(rid)
        lock = runner.Lock(os.path.join(run.run_dir(self.runs), ".queue.lock"))
        try:
            out = queue("run", "--only", rid, "--busy-wait", "0.2", *self.common()).stdout
            self.assertIn("trying again in 0.2 s", out)  # asked once more, then left to the holder
            self.assertIn("running in another runner", out)
            self.assertFalse(os.path.exists(run.record_path(self.results)))
        finally:
            lock.release()

    def test_a_lock_released_a_moment_later_is_not_skipped(self):
        # A runner stopped just before a new one starts may hold the run's lock for a moment (its run
        # writes a checkpoint): the new runner asks again after --busy-wait and runs it.
        rid = "smoke/fog/bp_int8"
        run = matrix.parse_run_id(rid)
        lock = runner.Lock(os.path.join(run.run_dir(self.runs), ".queue.lock"))
        threading.Timer(1.0, lock.release).start()
        out = queue("run", "--only", rid, "--busy-wait", "3", *self.common()).stdout
        self.assertIn("trying again in 3 s", out)
        self.assertNotIn("running in another runner", out)
        self.assertTrue(os.path.exists(run.record_path(self.results)), out)

    def test_bad_input(self):
        r = queue("run", "--only", "full/nope/zo_sparse", *self.common(), check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown corruption", r.stderr)
        r = queue("run", "--only", "smoke/fog/zo_sparse", "--runs", os.path.join(REPO, "x"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("inside the work tree", r.stderr)
        r = queue("run", "--only", "smoke/fog/zo_sparse", *self.common()[:4], "--tinyzo", "/nonexistent", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not found", r.stderr)
        # a corrupt record in results/ is an error naming the file, not a crash
        os.makedirs(os.path.join(self.results, "smoke", "fog"))
        with open(os.path.join(self.results, "smoke", "fog", "zo_sparse.json"), "w") as f:
            f.write("{ truncated")
        r = queue("status", "--only", "smoke/fog/zo_sparse", *self.common(), check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("zo_sparse.json", r.stderr)


class ZoSearchTableTest(unittest.TestCase):
    """python/zo_search_table.py --full: the full-schedule search table and its plot, from records alone."""
    TABLE = os.path.join(REPO, "python", "zo_search_table.py")

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tinyzo-zo-table-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, corruption, method, best_val, test, vals, current=True):
        d = os.path.join(self.tmp, "full", corruption)
        os.makedirs(d, exist_ok=True)
        run = matrix.Run("full", corruption, method)
        rec = {"best_val": best_val, "best_epoch": 1 + vals.index(max(vals)), "test_after": test, "final_loss": 1.0,
               "val_per_epoch": vals, "modes": ["WP", "NP"], "macs_per_step": 2e9, "sram_bytes": {"total": 1024},
               "settings": {"queries_w": 2, "queries_b": 1, "queries_np": 4},
               "id": run.id, "protocol": matrix.PROTOCOL, "key": run.key() if current else "another command"}
        with open(os.path.join(d, method + ".json"), "w") as f:
            json.dump(rec, f)

    def table(self, *args):
        return subprocess.run([matrix.PY, self.TABLE, "--results", self.tmp, *args], capture_output=True, text=True)

    def test_rows_means_late_validation_and_missing_runs(self):
        for k, c in enumerate(matrix.DEV_CORRUPTIONS):
            # 12 epochs: the last 10 average to 0.5 + k / 10, the best is 0.9 at epoch 1
            self.write(c, "zo_sparse", 0.9, 0.6 + 0.1 * k, [0.9, 0.1] + [0.5 + k / 10] * 10)
        self.write(matrix.DEV_CORRUPTIONS[0], "zo_bias+bmu0.25", 0.7, 0.65, [0.7, 0.2])
        for c in matrix.DEV_CORRUPTIONS:  # records of another command (not current) count nowhere
            self.write(c, "zo_sparse+cv", 0.99, 0.99, [0.99], current=False)
        r = self.table("--full")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = {line.split("|")[1].strip(): [x.strip() for x in line.split("|")[2:-1]]
                for line in r.stdout.splitlines() if line.startswith("| `")}
        self.assertEqual(set(rows), {"`zo_sparse`", "`zo_bias+bmu0.25`"})  # methods without any record are left out
        self.assertIn("The rule's choice at most the paper's forward passes: `zo_sparse` (complete: `zo_sparse` 90.00 %;"
                      " incomplete: ", r.stdout)
        z = rows["`zo_sparse`"]
        self.assertEqual(z[0], str(1 + 2 + 1 + 4))  # forward passes: 1 + WP (Q_w + Q_b) + NP Q_np
        self.assertEqual(z[1], "2.0")
        self.assertEqual(z[2], "**90.00**")
        self.assertEqual(z[3], "90 (1) / 60.00")
        self.assertEqual(z[7], "65.00")  # late val: mean of (50, 60, 70, 80)
        self.assertEqual(z[8], "75.00")  # mean test
        b = rows["`zo_bias+bmu0.25`"]
        self.assertEqual(b[2], "**-**")  # no mean over an incomplete set
        self.assertEqual(b[3:7], ["70 (1) / 65.00", "not yet", "not yet", "not yet"])

    def test_plot_and_bad_flags(self):
        for c in matrix.DEV_CORRUPTIONS:
            self.write(c, "zo_sparse", 0.5, 0.5, [0.4, 0.5])
        png = os.path.join(self.tmp, "v.png")
        r = self.table("--full", "--plot", png)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        r = self.table("--plot", png)  # --plot belongs to --full
        self.assertEqual(r.returncode, 2)
        self.assertIn("--plot goes with --full", r.stderr)


class BatchesTest(unittest.TestCase):
    """`tinyzo batches` gives the BP baselines tinyzo train's batches: its order, its inputs."""

    def test_order_labels_and_inputs(self):
        import numpy as np
        sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
        import reference
        self.assertTrue(os.access(TINYZO, os.X_OK), "no tinyzo binary at %s (set TINYZO_BIN)" % TINYZO)
        tmp = tempfile.mkdtemp(prefix="tinyzo-batches-test-")
        try:
            split = os.path.join(tmp, "split")
            subprocess.run([TINYZO, "split", "--corruption", "fog", "--train-per-class", "2", "--val-per-class", "1",
                            "--test-per-class", "1", "--out", split], check=True, capture_output=True)
            raw = np.fromfile(os.path.join(split, "train.bin"), np.uint8).reshape(-1, 3073)

            def batches(*args):
                out = os.path.join(tmp, "b%d" % len(os.listdir(tmp)))
                subprocess.run([TINYZO, "batches", "--split", split, "--out", out] + list(args), check=True,
                               capture_output=True)
                return [np.load(out + s) if os.path.exists(out + s) else None
                        for s in (".order.npy", ".inputs.npy", ".labels.npy")]
            o0, x0, l0 = batches("--epoch", "0", "--no-augment")
            o1, x1, l1 = batches("--epoch", "1", "--no-augment")
            oa, xa, la = batches("--epoch", "1")
            oo, xo, lo = batches("--epoch", "1", "--order-only")
            self.assertEqual(sorted(o0.tolist()), list(range(20)))  # a permutation
            self.assertFalse(np.array_equal(o0, o1))  # reshuffled every epoch
            self.assertTrue(np.array_equal(o1, oa) and np.array_equal(o1, oo))  # the order ignores augmentation
            self.assertIsNone(xo)
            self.assertTrue(np.array_equal(l1, raw[o1, 0]))
            # without augmentation: the eval preprocessing of the reference, in tinyzo's order
            pre = reference.preprocess(raw[:, 1:].reshape(-1, 3, 32, 32))
            self.assertTrue(np.array_equal(x1, pre[o1]))
            self.assertEqual(xa.shape, x1.shape)
            self.assertFalse(np.array_equal(xa, x1))  # augmented
            self.assertTrue(np.array_equal(xa, batches("--epoch", "1")[1]))  # deterministic
            r = subprocess.run([TINYZO, "batches", "--split", os.path.join(tmp, "nope"), "--epoch", "0", "--out",
                                os.path.join(tmp, "x")], capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("train.bin", r.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def stop_all(procs):
    """SIGTERM to each daemon's process group in turn, SIGKILL if it does not end within 20 s."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(p.pid, signal.SIGKILL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def have_dask():
    return shutil.which("dask-scheduler") is not None or shutil.which("dask") is not None


class DaskTest(unittest.TestCase):
    """The queue against a real Dask distributed cluster on loopback: a scheduler and one worker started
    here as separate processes, the runs executed by the worker."""

    def test_runs_on_a_local_dask_cluster(self):
        self.assertTrue(os.access(TINYZO, os.X_OK), "no tinyzo binary at %s (set TINYZO_BIN)" % TINYZO)
        self.assertTrue(have_dask(), "Dask distributed is not installed (Debian: python3-distributed)")
        tmp = tempfile.mkdtemp(prefix="tinyzo-dask-test-")
        port = free_port()
        addr = "tcp://127.0.0.1:%d" % port
        procs = []
        try:
            logs = open(os.path.join(tmp, "dask.log"), "w")
            procs.append(subprocess.Popen([matrix.PY, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                           "--port", str(port), "--dashboard-address", ":0"], stdout=logs,
                                          stderr=logs, start_new_session=True, cwd=tmp))
            procs.append(subprocess.Popen([matrix.PY, "-m", "distributed.cli.dask_worker", addr, "--nthreads", "1",
                                           "--nworkers", "1", "--dashboard-address", ":0", "--local-directory", tmp],
                                          stdout=logs, stderr=logs, start_new_session=True, cwd=tmp))
            from distributed import Client
            with Client(addr, timeout=60) as c:
                c.wait_for_workers(1, timeout=60)
            only = "smoke/fog/zo_sparse,smoke/fog/bp_int8"
            r = queue("run", "--only", only, "--executor", "dask", "--scheduler", addr, "--runs",
                      os.path.join(tmp, "runs"), "--results", os.path.join(tmp, "results"), "--tinyzo", TINYZO,
                      "--threads", "1", "--nice", "0", check=False)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr + open(os.path.join(tmp, "dask.log")).read()[-3000:])
            self.assertIn("1 workers", r.stdout)
            self.assertIn("2 of 2 runs have records", r.stdout)
            for rid in only.split(","):
                run = matrix.parse_run_id(rid)
                self.assertEqual(records.load_record(run.record_path(os.path.join(tmp, "results")))["steps"], 2)
        finally:
            stop_all(procs)
            shutil.rmtree(tmp, ignore_errors=True)


SLURM_CONF = """ClusterName=tinyzotest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={d}/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class SlurmTest(unittest.TestCase):
    """The queue against a real single-node Slurm started here: its own munged (own key and socket),
    slurmctld and slurmd on loopback ports, the runs executed as one job array. slurmd runs jobs as
    their user, so this needs root (CI is root)."""

    def test_runs_as_a_slurm_job_array(self):
        self.assertTrue(os.access(TINYZO, os.X_OK), "no tinyzo binary at %s (set TINYZO_BIN)" % TINYZO)
        if os.geteuid() != 0:
            self.skipTest("a private slurmd needs root")
        for tool in ("munged", "slurmctld", "slurmd", "sbatch"):
            self.assertIsNotNone(shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin"),
                                 "%s not installed (Debian: slurm-wlm, munge)" % tool)
        d = tempfile.mkdtemp(prefix="tinyzo-slurm-test-")
        os.chmod(d, 0o755)
        for sub in ("state", "spool"):
            os.makedirs(os.path.join(d, sub))
        with open(os.path.join(d, "munge.key"), "wb") as f:
            f.write(os.urandom(128))
        os.chmod(os.path.join(d, "munge.key"), 0o600)
        conf = os.path.join(d, "slurm.conf")
        with open(conf, "w") as f:
            f.write(SLURM_CONF.format(host=socket.gethostname().split(".")[0], ctld_port=free_port(),
                                      d_port=free_port(), d=d, cpus=os.cpu_count() or 1))
        env = dict(os.environ, SLURM_CONF=conf)
        sbin = lambda t: shutil.which(t) or os.path.join("/usr/sbin", t)  # noqa: E731
        procs = []
        try:
            logs = open(os.path.join(d, "daemons.log"), "w")
            procs.append(subprocess.Popen([sbin("munged"), "-F", "--force", "-S", os.path.join(d, "munge.sock"),
                                           "--key-file", os.path.join(d, "munge.key"), "--log-file",
                                           os.path.join(d, "munge.log"), "--pid-file", os.path.join(d, "munge.pid"),
                                           "--seed-file", os.path.join(d, "munge.seed")],
                                          stdout=logs, stderr=logs, start_new_session=True))
            t0 = time.time()
            while not os.path.exists(os.path.join(d, "munge.sock")) and time.time() - t0 < 20:
                time.sleep(0.1)
            procs.append(subprocess.Popen([sbin("slurmctld"), "-D", "-i", "-f", conf], env=env, stdout=logs,
                                          stderr=logs, start_new_session=True))
            procs.append(subprocess.Popen([sbin("slurmd"), "-D", "-f", conf], env=env, stdout=logs, stderr=logs,
                                          start_new_session=True))
            t0 = time.time()  # wait for the node to register as idle
            while time.time() - t0 < 60:
                r = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
                if r.stdout.strip() == "idle":
                    break
                time.sleep(0.5)
            self.assertEqual(r.stdout.strip(), "idle", "the test's Slurm did not come up: " + r.stderr)
            only = "smoke/gaussian_noise/zo_sparse,smoke/gaussian_noise/bp_fp32"
            r = queue("run", "--only", only, "--executor", "slurm", "--runs", os.path.join(d, "runs"), "--results",
                      os.path.join(d, "results"), "--tinyzo", TINYZO, "--threads", "1", "--nice", "0", check=False,
                      env=env)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("Slurm job array", r.stdout)
            self.assertIn("2 of 2 runs have records", r.stdout)
            for rid in only.split(","):
                run = matrix.parse_run_id(rid)
                self.assertEqual(records.load_record(run.record_path(os.path.join(d, "results")))["steps"], 2)
        finally:
            stop_all(reversed(procs))
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
