#!/bin/sh
# The reproduction report (python/report.py, docs/results.md): ZO (tinyzo train) against the
# back-propagation baselines (python/baselines) on the same CIFAR-10-C splits.
#
#   scripts/report.sh [--smoke] [--tinyzo BUILD/tinyzo] [python/report.py options]
#
# --smoke is the CI mode (ctest): two corruptions, 2 steps, tiny splits, under 3 minutes on 2 cores;
# it writes only under --runs (default out/report/smoke), never docs/.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3  # Debian's numpy / torch / matplotlib (the PATH python3 lacks them)
exec "$PY" "$here/python/report.py" "$@"
