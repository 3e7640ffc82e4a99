#!/bin/sh
# The run queue (python/experiments/runner.py, docs/experiments.md): executes the runs whose result
# records are missing, one at a time, niced, resuming killed runs; or submits them to Slurm or Dask.
#
#   scripts/queue.sh status [--set clean,main]
#   nohup scripts/queue.sh run --set clean,main,ablations > ~/tinyzo-queue.log 2>&1 &
#   scripts/queue.sh run --set main --executor slurm [--partition P] [--jobs N]
#   scripts/queue.sh run --set main --executor dask --scheduler tcp://HOST:8786
#   scripts/queue.sh collect          # records of finished runs -> results/ (e.g. after a fresh checkout)
#
# It commits nothing: commit results/ yourself, then regenerate the report with scripts/report.sh.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
exec /usr/bin/python3 "$here/python/experiments/runner.py" "$@"
