"""The run queue: executes the runs whose records are missing, one at a time by default.

    scripts/queue.sh status  [--set main,clean] [--results DIR] [--runs DIR]
    scripts/queue.sh run     [--set main] [--only ID,...] [--max-runs N] [--executor local|slurm|dask]
                             [--scheduler tcp://HOST:PORT] [--jobs N] [--threads 2] [--nice 10] [--tinyzo PATH]
    scripts/queue.sh run-one ID            (what a Slurm array task or a Dask task executes)
    scripts/queue.sh collect               (copy records of finished runs from the run directories)

Run directories live outside the work tree: --runs, else $TINYZO_RUNS, else
${XDG_DATA_HOME:-~/.local/share}/tinyzo/runs. Each run writes its record into its run directory and
into --results (default: results/ of this checkout); the runner never commits anything. A killed run is
resumed from its checkpoint (`tinyzo train --resume`) or restarted (the BP baselines, the evals).
A run directory is locked (flock) while a run executes in it, so several runners, local or on a
cluster, never execute the same run twice at once.
"""

import argparse
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

if __package__ in (None, ""):  # run as a script: make `experiments` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "experiments"  # noqa: A001

from experiments import matrix, records  # noqa: E402


EX_TEMPFAIL = 75  # tinyzo train: the run directory is locked by a live run


class QueueError(Exception):
    pass


def default_runs_root():
    if os.environ.get("TINYZO_RUNS"):
        return os.environ["TINYZO_RUNS"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "tinyzo", "runs")


def default_tinyzo():
    return os.path.join(matrix.REPO, "build", "release", "tinyzo")


def select_runs(sets, only, results, quiet=False):
    runs, seen = [], set()
    if only:
        cand = [matrix.parse_run_id(i) for i in only.split(",") if i.strip()]
    else:
        cand = [r for s in sets.split(",") for r in run_set(s.strip(), results, quiet)]
    for r in cand:
        if r.id not in seen:
            seen.add(r.id)
            runs.append(r)
    return runs


def run_set(name, results, quiet=False):
    """matrix.run_set, plus the sets that depend on a selection made from records (dense: the learning
    rate chosen on the dense-grid records)."""
    from experiments import selection
    if name in ("main", "ablations"):
        aug = selection.augment_choice(records.load_results(results))
        if aug is None:
            if not quiet:
                    print("queue: set %s waits for the augmentation choice (set augment is not complete)" % name,
                      file=sys.stderr)
            return []
        runs = matrix.run_set(name)
        if aug and name == "main":
            runs = [matrix.Run(r.schedule, r.corruption, r.method + "_aug") for r in runs]
        return runs
    if name == "dense":
        chosen = selection.dense_choice(records.load_results(results))
        out = []
        for r in matrix.run_set("dense"):
            lr = chosen.get(r.method)
            if lr is None and r.method in selection.DENSE_METHODS:
                continue  # its grid is not complete yet: nothing to run for it
            # "@lr1" too: on gaussian_noise the dense run is the grid's own run, not a second one
            out.append(matrix.Run(r.schedule, r.corruption, r.method if lr is None else "%s@lr%s" % (r.method, lr)))
        return out
    return matrix.run_set(name)


def state_of(run, results, root):
    """'done' (a current record in results), 'recorded' (a current record in the run directory only),
    'stale' (a record of another protocol or command), 'partial' (a run directory without a record), or
    'missing'."""
    path = run.record_path(results)
    if os.path.exists(path):
        if records.record_is_current(records.load_record(path), run):
            return "done"
        return "stale"
    rd = run.run_dir(root)
    rp = os.path.join(rd, "record.json")
    if os.path.exists(rp) and records.record_is_current(records.load_record(rp), run):
        return "recorded"
    return "partial" if os.path.isdir(rd) else "missing"


def collect_record(run, results, root):
    """Copies the record a finished run left in its run directory into results/."""
    records.write_record(run.record_path(results), records.load_record(os.path.join(run.run_dir(root), "record.json")))


class Lock:
    """An exclusive flock on PATH, or None if another process holds it."""

    def __init__(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_child = None


def _forward(signum, _frame):
    if _child is not None and _child.poll() is None:
        _child.send_signal(signum)
    raise SystemExit(128 + signum)


def _proc_cpu_seconds(pid):
    """User + system CPU seconds of a live process (all its threads), from /proc; 0 if unreadable."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def execute(argv, log_path, nice, capture=False, on_tick=None, tick_seconds=20):
    """Runs argv, its output appended to log_path (stdout returned instead when capture); returns
    (exit code, wall s, CPU s of the child, stdout). on_tick(wall, cpu) is called every tick_seconds
    while the child runs, so that a runner killed mid-run loses at most one tick of accounting."""
    global _child
    t0 = time.time()
    with open(log_path, "a") as log:
        log.write("\n$ %s\n" % " ".join(shlex.quote(a) for a in argv))
        log.flush()
        _child = child = subprocess.Popen(argv, cwd=matrix.REPO, stdout=subprocess.PIPE if capture else log,
                                          stderr=log, preexec_fn=(lambda: os.nice(nice)) if nice else None,
                                          text=True)
        done = threading.Event()

        def tick():
            while not done.wait(tick_seconds):
                on_tick(time.time() - t0, _proc_cpu_seconds(child.pid))

        ticker = threading.Thread(target=tick, daemon=True) if on_tick else None
        if ticker:
            ticker.start()
        out = child.stdout.read() if capture else ""
        # The child's own resource usage, not the other runs': wait4 on its pid.
        _, status, ru = os.wait4(child.pid, 0)
        done.set()
        child.returncode = rc = os.waitstatus_to_exitcode(status)
        _child = None
    return rc, time.time() - t0, ru.ru_utime + ru.ru_stime, out


def ensure_split(run, tinyzo, root, nice, log_path):
    """The split a BP baseline reads, made once per schedule and corruption (atomically: a directory
    renamed into place, under a lock, so concurrent runners never see half a split)."""
    split = run.split_dir(root)
    if os.path.exists(os.path.join(split, "test.bin")):
        return
    lock = Lock(os.path.join(os.path.dirname(split), ".split.lock"))
    while lock.fd is None:  # another runner is making it
        time.sleep(2)
        lock = Lock(os.path.join(os.path.dirname(split), ".split.lock"))
    try:
        if os.path.exists(os.path.join(split, "test.bin")):
            return
        tmp = "%s.tmp.%d" % (split, os.getpid())
        shutil.rmtree(tmp, ignore_errors=True)
        rc, _, _, _ = execute(run.split_command(tinyzo, root, tmp), log_path, nice)
        if rc != 0:
            raise QueueError("%s: tinyzo split failed (exit %d), see %s" % (run.id, rc, log_path))
        shutil.rmtree(split, ignore_errors=True)
        os.rename(tmp, split)
    finally:
        lock.release()


def run_one(run, a, say=print):
    """Executes one run unless it is done or running elsewhere; returns 'done', 'ran', 'busy' or raises."""
    root, results = a.runs, a.results
    st = state_of(run, results, root)
    rd = run.run_dir(root)
    if st == "done":
        return "done"
    if st == "recorded":
        collect_record(run, results, root)
        return "done"
    os.makedirs(rd, exist_ok=True)
    lock = Lock(os.path.join(rd, ".queue.lock"))
    if lock.fd is None:
        return "busy"
    try:
        log_path = os.path.join(rd, "queue.log")
        # BP: one torch thread, always (its float reductions then have one order, and torch threads spin
        # badly on a shared machine); --threads is tinyzo's (bitwise the same for any count).
        argv = run.command(a.tinyzo, root, a.threads, 1)
        meta_path = os.path.join(rd, "queue-run.json")
        meta = {}
        if os.path.exists(meta_path):
            try:
                meta = json.load(open(meta_path))
            except ValueError:
                meta = {}
        same = meta.get("key") == run.key() and meta.get("protocol") == matrix.PROTOCOL
        started = meta.get("started", time.time()) if same else time.time()
        prior_wall, prior_cpu = (meta.get("wall", 0.0), meta.get("cpu", 0.0)) if same else (0.0, 0.0)
        if run.kind == "bp":
            ensure_split(run, a.tinyzo, root, a.nice, log_path)
        extra = []
        if run.kind == "zo":
            # Resume the same command's checkpoint (tinyzo writes one at step 0); anything else in out/ is
            # an older or different run: --overwrite removes exactly its files (docs/run-directories.md).
            has_ck = os.path.exists(os.path.join(run.out_dir(root), "checkpoint.bin"))
            extra = ["--resume"] if (same and has_ck) else (["--overwrite"] if os.path.isdir(run.out_dir(root)) else [])
        def save_meta(wall, cpu):
            with open(meta_path + ".tmp", "w") as f:
                json.dump({"key": run.key(), "protocol": matrix.PROTOCOL, "argv": argv, "started": started,
                           "wall": wall, "cpu": cpu}, f)
            os.replace(meta_path + ".tmp", meta_path)

        save_meta(prior_wall, prior_cpu)
        tick = lambda w, c: save_meta(prior_wall + w, prior_cpu + c)  # noqa: E731
        say("queue: %s %s%s" % ("resuming" if extra == ["--resume"] else "running", run.id,
                                " (%s)" % rd if a.verbose else ""))
        rc, wall, cpu, out = execute(argv + extra, log_path, a.nice, capture=run.kind == "eval", on_tick=tick)
        if rc == EX_TEMPFAIL and run.kind == "zo":  # tinyzo: another process holds the run directory
            return "busy"
        if rc != 0 and extra == ["--resume"]:
            say("queue: %s: resume failed (exit %d), starting again" % (run.id, rc))
            prior_wall = prior_cpu = 0.0
            rc, wall, cpu, out = execute(argv + ["--overwrite"], log_path, a.nice, on_tick=tick)
        if rc != 0:
            raise QueueError("%s failed (exit %d); its output: %s" % (run.id, rc, log_path))
        rec = records.make_record(run, argv, run.out_dir(root), prior_wall + wall, prior_cpu + cpu, started,
                                  commit=a.commit, dirty=a.dirty, stdout_text=out)
        records.write_record(os.path.join(rd, "record.json"), rec)
        records.write_record(run.record_path(results), rec)
        say("queue: %s finished: %s" % (run.id, summary_line(rec)))
        return "ran"
    finally:
        lock.release()


def summary_line(rec):
    if "top1" in rec:
        return "top-1 %.2f %% (%d/%d)" % (100 * rec["top1"], rec["correct"], rec["images"])
    return "test %.2f -> %.2f %%, best val %.0f %% (epoch %s), final loss %.3f, %.0f s wall, %.0f s CPU" % (
        100 * rec["test_before"], 100 * rec["test_after"], 100 * rec["best_val"], rec["best_epoch"],
        rec["final_loss"], rec["wall_seconds"], rec["cpu_seconds"])


def cmd_status(a):
    runs = select_runs(a.set, a.only, a.results)
    counts = {}
    for r in runs:
        st = state_of(r, a.results, a.runs)
        counts[st] = counts.get(st, 0) + 1
        if a.verbose or st != "done":
            print("%-9s %s" % (st, r.id))
    print("status: %s of %d runs (%s); records in %s, run directories in %s" % (
        counts.get("done", 0), len(runs), ", ".join("%d %s" % (v, k) for k, v in sorted(counts.items())),
        a.results, a.runs))
    return 0


def cmd_collect(a):
    n = 0
    for r in select_runs(a.set, a.only, a.results):
        if state_of(r, a.results, a.runs) == "recorded":
            collect_record(r, a.results, a.runs)
            n += 1
    print("collect: copied %d records into %s" % (n, a.results))
    return 0


def run_one_argv(a, run_id):
    """The command line of `run-one` for a run, as a cluster task executes it."""
    return [matrix.PY, os.path.join(matrix.REPO, "python", "experiments", "runner.py"), "run-one", run_id,
            "--runs", a.runs, "--results", a.results, "--tinyzo", a.tinyzo, "--threads", str(a.threads),
            "--nice", str(a.nice)]


def cmd_run(a):
    runs = [r for r in select_runs(a.set, a.only, a.results) if state_of(r, a.results, a.runs) != "done"]
    if a.max_runs and a.executor != "local":
        runs = runs[:a.max_runs]
    if not runs:
        print("queue: nothing to run (every record of the selection is in %s)" % a.results)
        return 0
    if a.executor == "local" and not os.access(a.tinyzo, os.X_OK):
        raise QueueError("tinyzo binary %s not found: build it (cmake --build --preset release) or pass --tinyzo"
                         % a.tinyzo)
    print("queue: %d runs to do, executor %s, run directories in %s" % (len(runs), a.executor, a.runs), flush=True)
    if a.executor == "slurm":
        from experiments import executors
        return executors.run_slurm(a, runs)
    if a.executor == "dask":
        from experiments import executors
        return executors.run_dask(a, runs)
    # Local: one run at a time. The selection is made again after every run, so that sets which depend
    # on other runs' records (main and ablations on the augmentation choice, dense on its grid) join the
    # queue as soon as their choice is made.
    failed, tried, waited, done = [], set(), set(), 0
    while not a.max_runs or done < a.max_runs:
        pending = [r for r in select_runs(a.set, a.only, a.results, quiet=True)
                   if r.id not in tried and state_of(r, a.results, a.runs) != "done"]
        if not pending:
            break
        r = pending[0]
        tried.add(r.id)
        try:
            res = run_one(r, a, say=lambda m: print(m, flush=True))
            if res == "busy" and r.id not in waited and a.busy_wait > 0:
                # A runner stopped a moment ago may still hold the lock while its run writes its
                # checkpoint: ask once more after a pause before leaving the run to another runner.
                waited.add(r.id)
                tried.discard(r.id)
                print("queue: %s is locked; trying again in %g s" % (r.id, a.busy_wait), flush=True)
                time.sleep(a.busy_wait)
            elif res == "busy":
                print("queue: %s is running in another runner; skipped" % r.id, flush=True)
            else:
                done += 1
        except QueueError as e:
            failed.append(r.id)
            print("queue: %s" % e, file=sys.stderr, flush=True)
            if not a.keep_going:
                return 1
    select_runs(a.set, a.only, a.results)  # says which sets still wait for a choice
    print("queue: %d runs done%s" % (done, "; failed: " + ", ".join(failed) if failed else ""), flush=True)
    return 1 if failed else 0


def cmd_run_one(a):
    r = matrix.parse_run_id(a.id)
    res = run_one(r, a, say=lambda m: print(m, flush=True))
    if res == "busy":
        print("queue: %s is running in another runner" % r.id)
        return EX_TEMPFAIL
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="scripts/queue.sh", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("status", "run", "run-one", "collect"):
        p = sub.add_parser(name)
        if name == "run-one":
            p.add_argument("id", help="schedule/corruption/method")
        else:
            p.add_argument("--set", default="clean,augment,main", help="comma list of run sets: %s" % ", ".join(matrix.RUN_SETS))
            p.add_argument("--only", default="", help="comma list of run ids instead of --set")
        p.add_argument("--results", default=os.path.join(matrix.REPO, "results"))
        p.add_argument("--runs", default=default_runs_root(), help="run directories (outside the work tree)")
        p.add_argument("--tinyzo", default=default_tinyzo())
        p.add_argument("--threads", type=int, default=2, help="threads per run (tinyzo engines, torch threads)")
        p.add_argument("--nice", type=int, default=10)
        p.add_argument("-v", "--verbose", action="store_true")
        if name == "run":
            p.add_argument("--max-runs", type=int, default=0, help="stop after N runs (0: all)")
            p.add_argument("--keep-going", action="store_true", help="go on after a failed run")
            p.add_argument("--busy-wait", type=float, default=15.0,
                           help="seconds to wait before asking once more for a run another runner holds "
                                "(a runner stopped a moment ago may still hold it; 0: skip at once)")
            p.add_argument("--executor", choices=("local", "slurm", "dask"), default="local")
            p.add_argument("--scheduler", default="", help="dask: the scheduler address (tcp://HOST:PORT)")
            p.add_argument("--jobs", type=int, default=0, help="slurm / dask: runs at once (0: no limit)")
            p.add_argument("--partition", default="", help="slurm: the partition")
            p.add_argument("--sbatch-arg", action="append", default=[], help="slurm: one more sbatch argument")
            p.add_argument("--no-wait", action="store_true", help="slurm: submit and return")
    a = ap.parse_args(argv)
    a.runs, a.results = os.path.abspath(os.path.expanduser(a.runs)), os.path.abspath(a.results)
    a.tinyzo = os.path.abspath(a.tinyzo)
    if a.threads < 1 or a.nice < 0 or a.nice > 19:
        ap.error("--threads must be >= 1 and --nice in 0..19")
    if os.path.commonpath([a.runs, matrix.REPO]) == matrix.REPO:
        ap.error("--runs %s is inside the work tree: keep run directories outside it (they hold data-derived "
                 "files and must survive a fresh checkout)" % a.runs)
    # The commit the runs are made from: that of the checkout at the runner's start (a later checkout or
    # rebuild does not change what a running queue claims).
    a.commit, a.dirty = records.git_state()
    signal.signal(signal.SIGTERM, _forward)
    try:
        return {"status": cmd_status, "run": cmd_run, "run-one": cmd_run_one, "collect": cmd_collect}[a.cmd](a)
    except (QueueError, ValueError, OSError) as e:
        print("queue: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
