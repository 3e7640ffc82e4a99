#!/bin/sh
# The reproduction report: docs/results.md and docs/img/*.png, generated from the committed result
# records in results/ alone (python/report.py). It runs nothing; missing runs are listed in the report
# and by `scripts/queue.sh status`.
#
#   scripts/report.sh [--results results] [--out docs]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
exec /usr/bin/python3 "$here/python/report.py" "$@"
