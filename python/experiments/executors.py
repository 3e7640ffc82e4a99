"""Cluster executors of the run queue: the same `run-one` command, submitted to an existing
distributed engine instead of run here.

- Slurm: one job array, a task per run (`sbatch --array=0-(N-1)[%jobs]`); each task executes
  `runner.py run-one <id>` for the id on its line of a manifest. Run directories and results must be
  on a file system the nodes share (the usual home or project directory of a cluster).
- Dask distributed: one task per run on the workers of the scheduler at --scheduler; each task
  executes the same `run-one` command in a subprocess, so workers need only Debian's python3 and this
  checkout at the same path.
Both wait for the runs to finish (Slurm: unless --no-wait) and report which records arrived.
"""

import os
import shlex
import subprocess
import sys
import time

from . import matrix


def _report(a, runs, failed):
    from .runner import state_of
    done = [r for r in runs if state_of(r, a.results, a.runs) in ("done", "recorded")]
    print("queue: %d of %d runs have records%s" % (len(done), len(runs),
                                                     "; failed: " + ", ".join(failed) if failed else ""), flush=True)
    return 0 if len(done) == len(runs) and not failed else 1


def run_slurm(a, runs):
    from .runner import run_one_argv, QueueError
    stamp = time.strftime("%Y%m%dT%H%M%S") + "-%d" % os.getpid()
    d = os.path.join(a.runs, "_slurm", stamp)
    os.makedirs(d, exist_ok=True)
    manifest = os.path.join(d, "manifest.txt")
    with open(manifest, "w") as f:
        f.write("".join(r.id + "\n" for r in runs))
    script = os.path.join(d, "task.sh")
    with open(script, "w") as f:
        f.write("#!/bin/bash\n# One run of the tinyzo queue per array task (python/experiments/executors.py).\n"
                "set -euo pipefail\n"
                "id=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" %s)\n"
                "exec %s \"$id\" %s\n" % (shlex.quote(manifest), " ".join(shlex.quote(x) for x in run_one_argv(a, "X")[:3]),
                                         " ".join(shlex.quote(x) for x in run_one_argv(a, "X")[4:])))
    os.chmod(script, 0o755)
    array = "0-%d" % (len(runs) - 1) + ("%%%d" % a.jobs if a.jobs else "")
    cmd = ["sbatch", "--parsable", "--job-name", "tinyzo-queue", "--array", array, "--cpus-per-task", str(a.threads),
           "--output", os.path.join(d, "task-%a.log"), "--chdir", matrix.REPO]
    if a.partition:
        cmd += ["--partition", a.partition]
    cmd += a.sbatch_arg + ([] if a.no_wait else ["--wait"]) + [script]
    print("queue: " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise QueueError("sbatch not found: --executor slurm needs a Slurm client (Debian: slurm-client)")
    if r.returncode != 0 and (a.no_wait or not r.stdout.strip()):
        raise QueueError("sbatch failed (exit %d): %s" % (r.returncode, (r.stderr or r.stdout).strip()))
    job = r.stdout.strip().split(";")[0]
    print("queue: Slurm job array %s, %d tasks; task logs in %s" % (job, len(runs), d), flush=True)
    if a.no_wait:
        return 0
    failed = []
    for i, run in enumerate(runs):
        log = os.path.join(d, "task-%d.log" % i)
        if os.path.exists(log):
            sys.stdout.write("".join("  [%s] %s\n" % (run.id, l.rstrip()) for l in open(log) if l.startswith("queue:")))
    from .runner import state_of
    failed = [r.id for r in runs if state_of(r, a.results, a.runs) not in ("done", "recorded")]
    return _report(a, runs, failed)


def run_dask(a, runs):
    from .runner import run_one_argv, QueueError
    if not a.scheduler:
        raise QueueError("--executor dask needs --scheduler tcp://HOST:PORT (a running dask scheduler)")
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise QueueError("--executor dask needs Dask distributed (Debian: python3-distributed)")
    failed = []
    with Client(a.scheduler, timeout=30) as client:
        nworkers = len(client.scheduler_info().get("workers", {}))
        print("queue: Dask scheduler %s, %d workers" % (a.scheduler, nworkers), flush=True)
        futures = {}
        for r in runs:
            # subprocess.run is importable on every worker: nothing of ours is pickled.
            f = client.submit(subprocess.run, run_one_argv(a, r.id), capture_output=True, text=True,
                              key="tinyzo-run-%s" % r.id.replace("/", "-"), pure=False)
            futures[f] = r
        for f in as_completed(futures):
            r = futures[f]
            try:
                cp = f.result()
            except Exception as e:  # noqa: BLE001  (a worker died or the task raised)
                failed.append(r.id)
                print("queue: %s: the Dask task failed: %s" % (r.id, e), flush=True)
                continue
            for line in (cp.stdout + cp.stderr).splitlines():
                print("  [%s] %s" % (r.id, line), flush=True)
            if cp.returncode != 0:
                failed.append(r.id)
    return _report(a, runs, failed)
