"""Result records: one small JSON file per finished run, the only input of the report.

    results/<schedule>/<corruption>/<method>.json

A record holds the exact command, the commit and settings, before / best-validation / test accuracy,
the per-step and per-epoch training loss, validation accuracy per epoch, SRAM, wall and CPU time. It
is made from the run directory (log.jsonl and summary.json of `tinyzo train` or train_bp.py, or the
JSON of `tinyzo eval`) by make_record().
"""

import json
import os
import platform
import subprocess
import time

from . import matrix

RECORD_VERSION = 1


def _read_log(run_dir):
    path = os.path.join(run_dir, "log.jsonl")
    recs = []
    with open(path) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    return recs


def git_state(repo=matrix.REPO):
    """(commit, dirty) of the work tree the run was made from; ("unknown", None) outside git."""
    try:
        commit = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, check=True).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", None


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count()}


def _r4(v):
    return None if v is None else round(float(v), 5)


def make_record(run, argv, run_dir, wall_seconds, cpu_seconds, started, commit=None, dirty=None, stdout_text=""):
    """The record of a finished run (raises ValueError if the run directory does not hold a finished run)."""
    if commit is None:
        commit, dirty = git_state()
    rec = {
        "record_version": RECORD_VERSION,
        "protocol": matrix.PROTOCOL,
        "id": run.id,
        "schedule": run.schedule,
        "corruption": run.corruption,
        "method": run.method,
        "base_method": run.base,
        "lr_scale": run.lr_scale,
        "description": run.doc,
        "command": [os.path.relpath(a, matrix.REPO) if os.path.isabs(a) and a.startswith(matrix.REPO) else a
                    for a in argv],
        "key": run.key(),
        "commit": commit,
        "dirty": dirty,
        "machine": machine(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": round(wall_seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
    }
    if run.kind == "eval":
        j = json.loads(stdout_text)
        rec.update({"images_file": matrix.CLEAN_FILES[run.corruption][0], "images": j["images"],
                    "correct": j["correct"], "top1": j["top1"], "predictions": j["predictions"]})
        return rec
    logs = _read_log(run_dir)
    summary_path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(summary_path):
        raise ValueError("%s: no summary.json (the run did not finish)" % run_dir)
    with open(summary_path) as f:
        s = json.load(f)
    start = next((r for r in logs if r.get("type") == "start"), {})
    steps = [r for r in logs if r.get("type") == "step"]
    epochs = [r for r in logs if r.get("type") == "epoch"]
    loss = [_r4(r["loss"]) for r in steps]
    if not loss:
        raise ValueError("%s: the log has no step records" % run_dir)
    by_epoch = {}
    for r in steps:
        by_epoch.setdefault(r["epoch"], []).append(r["loss"])
    tail = loss[-10:]
    rec.update({
        "settings": start.get("config", {}),
        "layers": [l.get("name") for l in start.get("layers", [])] if run.kind == "zo" else start.get("config", {}).get("layers"),
        "modes": [l.get("mode") for l in start.get("layers", [])] if run.kind == "zo" else None,
        "lr0": start.get("lr0", start.get("config", {}).get("lr0")),
        "steps": s.get("steps"),
        "val_before": s.get("val_before"),
        "test_before": s.get("test_before"),
        "best_val": s.get("best_val"),
        "best_epoch": s.get("best_epoch"),
        "test_after": s.get("test_after"),
        "final_loss": _r4(sum(tail) / len(tail)),
        "loss_per_step": loss,
        "loss_per_epoch": [_r4(sum(v) / len(v)) for _, v in sorted(by_epoch.items())],
        "val_per_epoch": [r.get("val_acc") for r in epochs],
        "train_seconds": _r4(s.get("train_seconds")),
    })
    if run.kind == "zo":
        rec["sram_bytes"] = {"engine_arena": s.get("engine_arena_bytes"), "trainer_arena": s.get("trainer_arena_bytes"),
                             "total": (s.get("engine_arena_bytes") or 0) + (s.get("trainer_arena_bytes") or 0)}
        rec["macs_per_step"] = s.get("macs_per_step")
    return rec


def write_record(path, rec):
    """Atomic write (a reader never sees half a record)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(dumps(rec))
    os.replace(tmp, path)


def dumps(rec):
    """One top-level key per line, each value compact: small diffs, small files."""
    return "{\n" + ",\n".join(" %s: %s" % (json.dumps(k), json.dumps(v, separators=(",", ":")))
                               for k, v in rec.items()) + "\n}\n"


def load_record(path):
    """The record in path; ValueError naming the file if it is not a JSON object."""
    try:
        with open(path) as f:
            rec = json.load(f)
    except ValueError as e:
        raise ValueError("%s: not a valid record (%s)" % (path, e))
    if not isinstance(rec, dict):
        raise ValueError("%s: not a valid record (not a JSON object)" % path)
    return rec


def record_is_current(rec, run):
    """A record counts for a run when it has this protocol version and the same command key."""
    return rec.get("protocol") == matrix.PROTOCOL and rec.get("key") == run.key()


def load_results(results):
    """{run id: record} of every record under results/ (whatever its protocol)."""
    out = {}
    if not os.path.isdir(results):
        return out
    for dirpath, _, files in os.walk(results):
        for f in sorted(files):
            if f.endswith(".json"):
                rec = load_record(os.path.join(dirpath, f))
                if "id" in rec:
                    out[rec["id"]] = rec
    return out
