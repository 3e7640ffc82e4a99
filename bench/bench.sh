#!/usr/bin/env bash
# One benchmark table for the fast int8 kernels (docs/bench.md):
#   1. the int8 peak of one core (kernels_bench peak/*, best dot-product instruction);
#   2. whole-model GMAC/s of MCUNet-5fps (CIFAR-10, 128x128, batch 1) with `tinyzo eval`, per
#      kernel table (TINYZO_KERNELS=ref|portable|avx2|avx512vnni) and 1 / 2 threads, as a ratio to
#      the peak (per core: 2 threads against 2x peak);
#   3. the same network on PyTorch's quantized CPU path (python/bench/torch_quantized.py), batch 1
#      and 16, 1 and 2 threads, as a ratio to tinyzo's best table at the same thread count;
#   4. the wall time of one ZO step of configs/paper.json (--max-steps 2) with 1 and 2 threads, and
#      the projection to one 500-step corruption run.
# Wall and CPU time are both reported: on a shared, loaded machine wall time includes time other
# processes had the cores (CPU/wall well below the thread count shows it).
#
#   bench/bench.sh [BUILD_DIR]            # default build/release; about 5-10 minutes
#   BENCH_EVAL_N=500 BENCH_TORCH_SECONDS=3 BENCH_TRAIN_STEPS=2 bench/bench.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build/release}"
case "$BUILD" in /*) ;; *) BUILD="$PWD/$BUILD" ;; esac
TINYZO="$BUILD/tinyzo"
KBENCH="$BUILD/bench/kernels_bench"
EVAL_N="${BENCH_EVAL_N:-}"  # images per eval run; default per table, about 3-5 s of one core each
TORCH_SECONDS="${BENCH_TORCH_SECONDS:-3}"
TRAIN_STEPS="${BENCH_TRAIN_STEPS:-2}"
TORCH_PY="${BENCH_TORCH_PYTHON:-/usr/bin/python3}"  # needs torch + numpy
PY="$(command -v python3 || echo /usr/bin/python3)"  # the table (standard library only)
for f in "$TINYZO" "$KBENCH"; do
  [ -x "$f" ] || { echo "bench.sh: $f not built (cmake --preset release && cmake --build --preset release)" >&2; exit 1; }
done
TMP="$(mktemp -d "${TMPDIR:-/tmp}/tinyzo-bench.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
T0=$(date +%s)
LOAD0="$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || true)"
RES="$TMP/results.tsv"  # kind  key...  values
: >"$RES"

# Run a command under /usr/bin/time; appends "wall user sys" (s) of the whole process to $TMP/time.
timed() {
  /usr/bin/time -f "%e %U %S" -o "$TMP/time" "$@"
}

echo "== 1. int8 peak (kernels_bench peak/*, one core)" >&2
"$KBENCH" --benchmark_filter='^peak/' --benchmark_min_time=0.3 --benchmark_format=json \
  --benchmark_out="$TMP/peak.json" --benchmark_out_format=json >/dev/null 2>"$TMP/peak.err" || true
"$PY" - "$TMP/peak.json" >>"$RES" <<'EOF'
import json, sys
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if "best_GMAC/s" in b and not b.get("error_occurred"):
        print("peak\t%s\t%.3f\t%.3f" % (b["name"].split("/", 1)[1], b["best_GMAC/s"], b["GMAC/s"]))
EOF

echo "== 2. tinyzo eval, batch 1 and 16" >&2
# The CPU time of loading the model and the data (an eval of one image), subtracted below to get
# the CPU time of the timed loop.
timed "$TINYZO" eval --model mcunet-cifar10 --limit 1 >/dev/null 2>&1 || echo "0 0 0" >"$TMP/time"
printf 'evalfixed\t%s\n' "$(cat "$TMP/time")" >>"$RES"
for kb in ref:1 portable:1 avx2:1 avx512vnni:1 avx2:16 avx512vnni:16; do
  k="${kb%:*}" b="${kb#*:}"
  for t in 1 2; do
    if [ "$k" = ref ]; then kflag=ref; else kflag=best; fi
    case "$k" in ref) n=60 ;; portable) n=300 ;; avx2) n=1000 ;; *) n=2000 ;; esac
    n="${EVAL_N:-$n}"
    if ! TINYZO_KERNELS=$k timed "$TINYZO" eval --model mcunet-cifar10 --limit "$n" --threads "$t" --batch "$b" --kernels "$kflag" >"$TMP/eval.out" 2>"$TMP/eval.err"; then
      echo "eval $k $t failed: $(tail -1 "$TMP/eval.err")" >&2
      continue
    fi
    line="$(grep -E 'img/s' "$TMP/eval.out" | tail -1)"
    rate="$(sed -E 's/.* ([0-9.]+) img\/s, ([a-z0-9]+) kernels.*/\1 \2/' <<<"$line")"
    set -- $rate "" ""
    if [ "$2" != "$k" ]; then  # TINYZO_KERNELS names a table this CPU cannot run: it is ignored
      echo "eval $k: this CPU runs $2 instead, skipped" >&2
      continue
    fi
    printf 'eval\t%s\t%s\t%s\t%s\t%s\t%s\n' "$k" "$t" "$1" "$(cat "$TMP/time")" "$n" "$b" >>"$RES"
    echo "   $k, $t thread(s), batch $b: $line" >&2
  done
done
# Engine only (no image decoding / resizing, which `tinyzo eval` includes): forward_bench, one
# thread, per table (BM_ForwardBest runs best_kernels(), which TINYZO_KERNELS selects). Its
# MMAC/image counter is the MAC count used for every GMAC/s here.
MMAC=22.455
if [ -x "$BUILD/bench/forward_bench" ]; then
  for k in ref portable avx2 avx512vnni; do
    if [ "$k" = ref ]; then f=BM_ForwardRef; else f=BM_ForwardBest; fi
    TINYZO_KERNELS=$k "$BUILD/bench/forward_bench" --benchmark_filter="^$f" --benchmark_format=json \
      >"$TMP/fwd.json" 2>/dev/null || continue
    "$PY" - "$TMP/fwd.json" "$k" >>"$RES" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))["benchmarks"][0]
if b.get("label", sys.argv[2]) == sys.argv[2]:  # the table really ran (TINYZO_KERNELS is ignored if unsupported)
    unit = {"ms": 1e-3, "us": 1e-6, "ns": 1e-9, "s": 1.0}[b.get("time_unit", "ms")]
    print("fwd\t%s\t%.6f\t%.6f\t%.4f" % (sys.argv[2], b["real_time"] * unit, b["cpu_time"] * unit, b["MMAC/image"]))
EOF
    echo "   forward_bench $k: $(tail -1 "$RES")" >&2
  done
  # Batches through the fastest table: engine only, 1 and 2 threads (one engine each).
  "$BUILD/bench/forward_bench" --benchmark_filter='^BM_ForwardBatch' --benchmark_format=json \
    >"$TMP/fwdb.json" 2>/dev/null || true
  [ -s "$TMP/fwdb.json" ] && "$PY" - "$TMP/fwdb.json" >>"$RES" <<'EOF'
import json, sys
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("error_occurred"):
        continue
    batch = int(b["name"].split("/")[1])
    print("fwdb\t%s\t%d\t%d\t%.3f\t%.4f" % (b.get("label", "?"), batch, b["threads"], b["items_per_second"],
                                           b["MMAC/image"]))
EOF
  grep '^fwdb' "$RES" | sed 's/^/   forward_bench /' >&2
  m="$(awk -F'\t' '$1=="fwd"{print $5; exit}' "$RES")"
  [ -n "$m" ] && MMAC="$m"
fi
printf 'mmac\t%s\n' "$MMAC" >>"$RES"

echo "== 2b. per-kernel kind (kernels_bench, every MCUNet conv, batch 1 and 16, one thread)" >&2
# Each conv layer of the network alone, fastest iteration; summed per kind (stem/conv, depthwise,
# pointwise) and table: GMAC/s = sum of MACs / sum of best times. ref only at batch 1.
"$KBENCH" --benchmark_filter='^(conv|dw|pw)/' --benchmark_min_time=0.05 --benchmark_format=json \
  >"$TMP/kern.json" 2>/dev/null || true
[ -s "$TMP/kern.json" ] && "$PY" - "$TMP/kern.json" >>"$RES" <<'EOF'
import collections, json, sys
agg = collections.defaultdict(lambda: [0.0, 0.0])
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("error_occurred") or "best_us" not in b:
        continue
    parts = b["name"].split("/")
    kind, batch = parts[0], (16 if "batch16" in parts else 1)
    table = parts[3] if batch == 16 else parts[2]
    us = b["best_us"]
    agg[(kind, table, batch)][0] += b["best_GMAC/s"] * us * 1e3  # MACs
    agg[(kind, table, batch)][1] += us
for (kind, table, batch), (macs, us) in sorted(agg.items()):
    print("kern\t%s\t%s\t%d\t%.1f\t%.3f" % (kind, table, batch, us, macs / us / 1e3))
EOF
grep '^kern' "$RES" | sed 's/^/   /' >&2

echo "== 3. PyTorch quantized ($TORCH_PY)" >&2
if "$TORCH_PY" -c 'import torch, numpy' 2>/dev/null; then
  "$TORCH_PY" "$ROOT/python/bench/torch_quantized.py" --seconds "$TORCH_SECONDS" --check 100 \
    --json "$TMP/torch.json" >"$TMP/torch.out" 2>"$TMP/torch.err" || echo "torch_quantized.py failed: $(tail -1 "$TMP/torch.err")" >&2
  cat "$TMP/torch.out" >&2
  [ -f "$TMP/torch.json" ] && "$PY" - "$TMP/torch.json" >>"$RES" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
for r in j["results"]:
    print("torch\t%s %s\t%d\t%d\t%.3f\t%.3f\t%.6f\t%.6f" % (r["engine"], j["torch"], r["threads"], r["batch"],
          r["img_s_mean"], r["img_s_best"], r["cpu_s_per_img"], r["wall_s_per_img"]))
EOF
  grep -E '^engine .*top-1' "$TMP/torch.out" | head -1 | sed 's/^/torchinfo\t/' >>"$RES" || true
else
  echo "no torch in $TORCH_PY: PyTorch rows skipped" >&2
fi

echo "== 4. ZO training step (configs/paper.json, --max-steps $TRAIN_STEPS)" >&2
# Runs of 1 and $TRAIN_STEPS steps: the difference of their process CPU times is the CPU time of
# the extra steps (setup: corrupting 2,000 images, evaluating the start model, is the same in both).
for tb in 1:1 1:16 2:1 2:16; do
  t="${tb%:*}" eb="${tb#*:}"
  for steps in 1 "$TRAIN_STEPS"; do
    if timed "$TINYZO" train --config "$ROOT/configs/paper.json" --max-steps "$steps" --threads "$t" \
         --engine-batch "$eb" --out "$TMP/train$t-$steps" --overwrite --no-progress >"$TMP/train.out" 2>"$TMP/train.err"; then
      sps="$(sed -nE 's/.*\(([0-9]+) steps, ([0-9.]+) s\/step in this run\).*/\2/p' "$TMP/train.out")"
      macs="$(sed -nE 's/^MACs per step: ([0-9.]+) GMAC.*/\1/p' "$TMP/train.out")"
      printf 'train\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$sps" "$macs" "$steps" "$(cat "$TMP/time")" "$eb" >>"$RES"
      grep -E '^time' "$TMP/train.out" | sed "s/^/   $t thread(s), engine batch $eb, $steps step(s): /" >&2
    else
      echo "train --threads $t --max-steps $steps failed: $(tail -1 "$TMP/train.err")" >&2
    fi
  done
done

T1=$(date +%s)
CPUNAME="$(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo 2>/dev/null | head -1)"
MACHINE="$CPUNAME, $(nproc) CPUs; load average $LOAD0 at the start, $(cut -d" " -f1-3 /proc/loadavg 2>/dev/null) at the end"
"$PY" - "$RES" "$((T1 - T0))" "$MACHINE" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
peaks = [(r[1].replace("/real_time", ""), float(r[2]), float(r[3])) for r in rows if r[0] == "peak"]
mmac = next((float(r[1]) for r in rows if r[0] == "mmac"), 22.455)
pk = max(peaks, key=lambda p: p[1]) if peaks else ("none", float("nan"), float("nan"))
peak = pk[1]
cpu = lambda t: float(t.split()[1]) + float(t.split()[2])  # noqa: E731  user + sys of "wall user sys"
fixed = next((cpu(r[1]) for r in rows if r[0] == "evalfixed"), 0.0)
print("## tinyzo benchmark (bench/bench.sh, %s s)\n" % sys.argv[2])
print("Machine: %s.\n" % sys.argv[3])
print("Wall: images (or steps) over elapsed time, what a user sees on this machine at this load.")
print("CPU: the same work over the CPU seconds the process got (user + sys from /usr/bin/time, minus")
print("the fixed cost of loading), i.e. the speed per core actually used. CPU/wall below the thread")
print("count means other processes had the cores.\n")
print("### 1. int8 peak, one core (register-only loops, fastest iteration)\n")
print("| instruction | best GMAC/s | mean GMAC/s |\n|---|---:|---:|")
for n, b, m in peaks:
    print("| %s%s | %.1f | %.1f |" % (n, " **(peak)**" if n == pk[0] else "", b, m))
print("\n### 2. tinyzo, MCUNet-5fps CIFAR-10 128x128, batch 1 and 16 (`tinyzo eval --batch B`, %.3f MMAC/image)\n" % mmac)
print("Ratio to peak per core: GMAC/s / (threads x %.1f) for wall; GMAC per CPU-second / %.1f for CPU.\n"
      % (peak, peak))
print("| kernels | threads | batch | images | img/s (wall) | GMAC/s (wall) | / peak per core (wall) | GMAC per CPU-s | / peak (CPU) | CPU/wall |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
tz, tz_cpu = {}, {}
for r in rows:
    if r[0] != "eval":
        continue
    k, t, ips, n, b = r[1], int(r[2]), float(r[3]), int(r[5]), int(r[6])
    g = ips * mmac / 1e3
    loop_cpu = max(cpu(r[4]) - fixed, 1e-9)
    gc = n * mmac / 1e3 / loop_cpu
    if b == 1:  # PyTorch's ratios below are against tinyzo at batch 1
        tz[(k, t)] = ips
        tz_cpu[(k, t)] = loop_cpu / n
    print("| %s | %d | %d | %d | %.1f | %.2f | %.1f%% | %.2f | %.1f%% | %.2f |" % (
        k, t, b, n, ips, g, 100 * g / (t * peak), gc, 100 * gc / peak, loop_cpu / (n / ips)))
for r in rows:
    if r[0] == "fwd":
        wall, c = float(r[2]), float(r[3])
        g, gc = mmac / 1e3 / wall, mmac / 1e3 / c
        tz[(r[1] + " (engine only)", 1)] = 1 / wall
        tz_cpu[(r[1] + " (engine only)", 1)] = c
        print("| %s, forward_bench (engine only) | 1 | 1 | - | %.1f | %.2f | %.1f%% | %.2f | %.1f%% | %.2f |" % (
            r[1], 1 / wall, g, 100 * g / peak, gc, 100 * gc / peak, c / wall))
tzb = {}
for r in rows:
    if r[0] == "fwdb":
        k, b, t, ips = r[1], int(r[2]), int(r[3]), float(r[4])
        g = ips * mmac / 1e3
        tzb[(t, b)] = (k, ips)
        print("| %s, forward_bench BM_ForwardBatch (engine only) | %d | %d | - | %.1f | %.2f | %.1f%% | - | - | - |" % (
            k, t, b, ips, g, 100 * g / (t * peak)))
best_t, best_e = {}, {}  # fastest eval table per thread count; fastest engine-only table
for (k, t), v in tz.items():
    d = best_e if k.endswith("(engine only)") else best_t
    if v > d.get(t, ("", 0))[1]:
        d[t] = (k, v)
kern = [r for r in rows if r[0] == "kern"]
if kern:
    print("\n### 2b. Per kernel kind, every MCUNet conv alone (`kernels_bench`), one thread\n")
    print("Sum over the network's layers of one kind: GMAC/s = MACs / best time; batch 16 runs a")
    print("pointwise layer as one 16x taller image and the others per image, as the engine does.\n")
    print("| kind | table | batch | us per image (sum of layers) | GMAC/s | / peak |")
    print("|---|---|---:|---:|---:|---:|")
    names = {"conv": "stem 3x3 s2 conv", "dw": "depthwise", "pw": "pointwise"}
    for r in kern:
        kind, table, batch, us, g = r[1], r[2], int(r[3]), float(r[4]), float(r[5])
        print("| %s | %s | %d | %.1f | %.2f | %.1f%% |" % (names.get(kind, kind), table, batch, us / batch, g,
                                                         100 * g / peak))
info = [r[1] for r in rows if r[0] == "torchinfo"]
print("\n### 3. PyTorch quantized CPU path, same network (python/bench/torch_quantized.py)\n")
if info:
    print(info[0] + ". No fbgemm in this torch build.\n")
print("Ratios: PyTorch img/s / tinyzo img/s, tinyzo's fastest table: batch 1 for tinyzo in the `/ engine` and `/ eval` columns; the last column against tinyzo's engine (`BM_ForwardBatch`) at the same threads and batch.")
print("`/ engine`: against forward_bench (engine only, 1 thread; like PyTorch's, no input preprocessing),")
print("for the 1-thread rows. `/ eval`: against `tinyzo eval` at the same thread count (includes the")
print("per-image resize). (wall) from wall rates, (CPU) from CPU time per image.\n")
print("| engine | threads | batch | img/s (mean wall) | img/s (best rep.) | GMAC/s (wall) | CPU ms/img | CPU/wall | / engine (wall) | / engine (CPU) | / eval (wall) | / eval (CPU) | / tinyzo engine, same threads and batch (wall) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if r[0] != "torch":
        continue
    eng, t, b = r[1], int(r[2]), int(r[3])
    mean, best, cpu_img, wall_img = float(r[4]), float(r[5]), float(r[6]), float(r[7])
    cols = []
    for ref in (best_e.get(t), best_t.get(t)):
        if ref:
            cols += ["%.2fx (%s %.0f img/s)" % (mean / ref[1], ref[0].split()[0], ref[1]),
                     "%.2fx" % (tz_cpu[(ref[0], t)] / cpu_img)]
        else:
            cols += ["-", "-"]
    same = tzb.get((t, b))
    cols.append("%.2fx (%.0f img/s)" % (mean / same[1], same[1]) if same else "-")
    print("| %s | %d | %d | %.1f | %.1f | %.2f | %.2f | %.2f | %s |" % (
        eng, t, b, mean, best, mean * mmac / 1e3, 1e3 * cpu_img, cpu_img / wall_img, " | ".join(cols)))
print("\n### 4. One ZO step, configs/paper.json (B = 100, Q = 25+25 WP / 50 NP, 4 layers)\n")
print("| threads | engine batch | s/step (wall) | CPU s/step | GMAC/step | GMAC/s (wall) | 500-step run, projected (wall) | (CPU) |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for t, eb in ((1, 1), (1, 16), (2, 1), (2, 16)):
    tr = [r for r in rows if r[0] == "train" and int(r[1]) == t and int(r[6]) == eb]
    if not tr:
        continue
    one = next((r for r in tr if int(r[4]) == 1), None)
    big = max(tr, key=lambda r: int(r[4]))
    sps, gm, steps = float(big[2]), float(big[3]), int(big[4])
    cps = (cpu(big[5]) - cpu(one[5])) / (steps - 1) if one is not None and steps > 1 else float("nan")
    print("| %d | %d | %.2f | %.2f | %.2f | %.1f | %.1f min | %.1f CPU-min |" % (
        t, eb, sps, cps, gm, gm / sps, 500 * sps / 60, 500 * cps / 60))
EOF
