#!/usr/bin/env bash
# Builds and runs the libFuzzer targets (fuzz/, docs/fuzzing.md) and prints one line per target:
# executions, executions per second, coverage (libFuzzer's cov = covered edges, ft = features),
# corpus size and crashes.
#
#   scripts/fuzz.sh --ci                       # CI: every target 25 s from the committed seeds
#   scripts/fuzz.sh --seconds 3600 model       # a long run of one target (niced), corpus kept
#   scripts/fuzz.sh --seeds                    # regenerate the committed seed corpus (fuzz/corpus)
#   scripts/fuzz.sh --reproduce model FILE     # run one input (a crash artifact) through a target
#
# options: --seconds N (per target; default 25), --runs N (also stop after N executions), --build DIR (default build/fuzz, configured with
# the fuzz preset when it is the default), --work DIR (working corpora and artifacts; default
# build/fuzz-work; --ci uses a fresh temporary directory), --no-build. Targets: model checkpoint
# config cifar10 image tflite (default: all). The working corpus of a target starts from its committed
# seeds and, outside --ci, keeps growing across runs. Crash, leak, timeout and OOM inputs are saved as
# WORK/artifacts/<target>/crash-* etc. Exit status: 0 when no target crashed.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
all_targets=(model checkpoint config cifar10 image tflite)
seconds=25 runs=-1 build="" work="" mode=run do_build=1
targets=()
while (($#)); do
  case $1 in
    --ci) mode=ci; shift ;;
    --seeds) mode=seeds; shift ;;
    --reproduce) mode=reproduce; shift ;;
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

if [[ -z $build ]]; then
  build=$src/build/fuzz
  if ((do_build)); then
    command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (scripts/setup.sh installs clang)" >&2; exit 2; }
    (cd "$src" && cmake --preset fuzz >/dev/null && cmake --build --preset fuzz -j "$(nproc 2>/dev/null || echo 2)")
  fi
elif ((do_build)); then
  cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)"
fi
bin=$build/fuzz

if [[ $mode == seeds ]]; then
  # Regenerate the synthetic seeds; keep the regress-* inputs (what crashed a target once).
  [[ -d $src/fuzz/corpus ]] && find "$src/fuzz/corpus" -type f ! -name 'regress-*' -delete
  exec "$bin/tz_make_seeds" "$src/fuzz/corpus"
fi
if [[ $mode == reproduce ]]; then
  ((${#targets[@]} == 2)) || { echo "usage: fuzz.sh --reproduce TARGET FILE" >&2; exit 2; }
  exec "$bin/tz_fuzz_${targets[0]}" "${targets[1]}"
fi

((${#targets[@]})) || targets=("${all_targets[@]}")
if [[ $mode == ci ]]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/tinyzo-fuzz.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
work=${work:-$src/build/fuzz-work}
mkdir -p "$work"

# Per-target options: a dictionary where one helps (JSON tokens and the config keys).
extra_for() {
  case $1 in
    config) echo "-dict=$src/fuzz/config.dict" ;;
    *) echo "" ;;
  esac
}

status=0
declare -a rows=()
for t in "${targets[@]}"; do
  exe=$bin/tz_fuzz_$t
  [[ -x $exe ]] || { echo "fuzz.sh: no target $t ($exe)" >&2; exit 2; }
  corpus=$work/corpus/$t
  art=$work/artifacts/$t
  mkdir -p "$corpus" "$art"
  log=$work/$t.log
  echo "==== fuzz $t: ${seconds} s ($log)"
  set +e
  # -malloc_limit_mb: a single allocation above 512 MB from inputs of a few KB is a bug (unbounded
  # read); -timeout: one input may take at most 10 s. New inputs go to the working corpus, the
  # committed seeds are only read.
  nice -n 10 "$exe" "$corpus" "$src/fuzz/corpus/$t" -max_total_time="$seconds" -runs="$runs" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -artifact_prefix="$art/" -print_final_stats=1 \
    -use_value_profile=1 $(extra_for "$t") >"$log" 2>&1
  rc=$?
  set -e
  execs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ { print $NF }' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  n_art=$(find "$art" -type f | wc -l)
  result=ok
  if ((rc != 0 || n_art > 0)); then
    result="FAILED (exit $rc, $n_art artifacts in $art)"
    status=1
    grep -E "ERROR|SUMMARY|Test unit written|^Base64" "$log" | head -n 6 || true
  fi
  rows+=("$(printf '%-11s %8s s %12s %8s %6s %7s %12s  %s' "$t" "$seconds" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result")")
done
echo
printf '%-11s %10s %12s %8s %6s %7s %12s  %s\n' target time executions exec/s cov ft corpus result
for r in "${rows[@]}"; do echo "$r"; done
exit $status
