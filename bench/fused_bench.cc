// Fused row-band execution against the unfused engine, in one run: single-
// image forward time and one layer-wise ZO step of the paper's layer set
// (1.4-1.7 conv.0, WP/WP/NP/NP, few queries), each with fusion off (0) and on
// (1), plus the activation arena each plans. The model is `mcunet-cifar10`
// or $TINYZO_BENCH_MODEL; kernels are the CLI's best (or $TINYZO_KERNELS).
// The extra work of fusion is counted per forward: window rows moved up
// (memmove; no row is ever recomputed) and kernel calls.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "models/model_store.h"
#include "tinyzo/engine.h"
#include "tinyzo/fusion.h"
#include "tinyzo/train/zo_trainer.h"
#include "train/train_config.h"

namespace {

using namespace tinyzo;

LoadedModel& model() {
  static std::unique_ptr<LoadedModel> m = [] {
    const char* env = std::getenv("TINYZO_BENCH_MODEL");
    return std::make_unique<LoadedModel>(load_model_arg(env ? env : "mcunet-cifar10"));
  }();
  return *m;
}

struct alignas(16) Block {
  uint8_t b[16];
};

// Kernel calls and moved window bytes of one forward through `blocks`
// (the executor's band loop, counted; unfused ops are one call each).
void fused_work(const ModelView& m, const Engine& e, double* calls, double* moved_bytes) {
  *calls = 0;
  *moved_bytes = 0;
  for (int i = 0; i < m.n_ops();) {
    const int k = e.fused_block_of(i);
    if (k < 0) {
      *calls += 1;
      ++i;
      continue;
    }
    const FusedBlock& b = e.fused_block(k);
    const int n = b.end_op - b.first_op, h = m.tensor(m.op(b.end_op - 1).output).dims[0];
    int lo[kMaxFusedOps + 1] = {}, hi[kMaxFusedOps + 1] = {};
    for (int o0 = 0; o0 < h; o0 += b.band_rows) {
      int nl[kMaxFusedOps + 1], nh[kMaxFusedOps + 1];
      nl[n] = o0;
      nh[n] = o0 + b.band_rows < h ? o0 + b.band_rows : h;
      for (int j = n; j >= 1; --j) conv_input_rows(m, b.first_op + j - 1, nl[j], nh[j], &nl[j - 1], &nh[j - 1]);
      for (int j = 1; j < n; ++j) {
        const TzmTensor& t = m.tensor(m.op(b.first_op + j - 1).output);
        if (nl[j] >= hi[j]) {
          lo[j] = hi[j] = nl[j];
        } else if (nl[j] > lo[j]) {
          *moved_bytes += double(hi[j] - nl[j]) * t.dims[1] * t.dims[2];
          lo[j] = nl[j];
        }
        if (nh[j] > hi[j]) {
          *calls += 1;
          hi[j] = nh[j];
        }
      }
      *calls += 1;
    }
    i = b.end_op;
  }
}

// Times single-image forwards of an initialized engine on a fixed random
// input and reports its arena, blocks and fused work (fused_work).
void time_forwards(benchmark::State& state, const ModelView& v, Engine& e) {
  std::mt19937 rng(1);
  std::vector<int8_t> x(e.input().size());
  for (int8_t& q : x) q = static_cast<int8_t>(rng());
  for (auto _ : state) {
    std::copy(x.begin(), x.end(), e.input().begin());
    if (e.invoke() != Status::kOk) state.SkipWithError("invoke");
    benchmark::ClobberMemory();
  }
  double calls = 0, moved = 0;
  fused_work(v, e, &calls, &moved);
  state.counters["arena_KB"] = double(e.activation_bytes()) / 1024.0;
  state.counters["blocks"] = e.n_fused_blocks();
  state.counters["kernel_calls"] = calls;
  state.counters["moved_KB"] = moved / 1024.0;
  state.SetLabel(e.kernels().name);
}

void BM_Forward(benchmark::State& state) {
  const ModelView& v = model().view();
  std::vector<Block> mem((8u << 20) / 16);
  Arena arena(mem.data(), mem.size() * 16);
  Engine e;
  EngineOptions o;
  o.fuse = state.range(0) != 0;
  if (e.init(v, arena, best_kernels(), 1, o) != Status::kOk) {
    state.SkipWithError("engine init");
    return;
  }
  time_forwards(state, v, e);
}
BENCHMARK(BM_Forward)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// Fused, with state.range(0) KB of band slack (EngineOptions::band_slack_bytes).
void BM_ForwardSlack(benchmark::State& state) {
  const ModelView& v = model().view();
  std::vector<Block> mem((8u << 20) / 16);
  Arena arena(mem.data(), mem.size() * 16);
  Engine e;
  EngineOptions o;
  o.fuse = true;
  o.band_slack_bytes = size_t(state.range(0)) * 1024;
  if (e.init(v, arena, best_kernels(), 1, o) != Status::kOk) {
    state.SkipWithError("engine init");
    return;
  }
  time_forwards(state, v, e);
}
BENCHMARK(BM_ForwardSlack)->Arg(8)->Arg(16)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// The planner's blocks with every band height multiplied by state.range(0):
// the cost of small bands (kernel calls, window moves) against the arena.
void BM_ForwardBands(benchmark::State& state) {
  const ModelView& v = model().view();
  std::vector<Block> mem((8u << 20) / 16);
  Arena arena(mem.data(), mem.size() * 16);
  std::vector<FusedBlock> blocks;
  {
    Engine probe;
    EngineOptions o;
    o.fuse = true;
    if (probe.init(v, arena, best_kernels(), 1, o) != Status::kOk) {
      state.SkipWithError("engine init");
      return;
    }
    for (int k = 0; k < probe.n_fused_blocks(); ++k) {
      FusedBlock b = probe.fused_block(k);
      const int h = v.tensor(v.op(b.end_op - 1).output).dims[0];
      b.band_rows = std::min<int>(h, b.band_rows * int(state.range(0)));
      blocks.push_back(b);
    }
    arena.reset_to(0);
  }
  Engine e;
  EngineOptions o;
  o.blocks = Span<const FusedBlock>(blocks.data(), blocks.size());
  if (e.init(v, arena, best_kernels(), 1, o) != Status::kOk) {
    state.SkipWithError("engine init");
    return;
  }
  time_forwards(state, v, e);
}
BENCHMARK(BM_ForwardBands)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Unit(benchmark::kMillisecond)->MinTime(1.0);

// One ZO step (2 samples; WP 4 + 4 queries, NP 8) of the paper's set.
void BM_ZoStep(benchmark::State& state) {
  const ModelView& v = model().view();
  const std::vector<int> ops = paper_layer_ops(v, "bench");
  std::vector<TrainLayer> layers;
  for (size_t i = 0; i < ops.size(); ++i)
    layers.push_back(TrainLayer{ops[i], i < 2 ? PerturbMode::kWeight : PerturbMode::kNode});
  std::vector<Block> mem((16u << 20) / 16);
  Arena arena(mem.data(), mem.size() * 16);
  Engine e;
  EngineOptions o;
  o.fuse = state.range(0) != 0;
  o.unfused_ops = Span<const int>(ops.data(), ops.size());
  ZoConfig cfg;
  cfg.n_queries_w = cfg.n_queries_b = 4;
  cfg.n_queries_np = 8;
  ZoTrainer t;
  if (e.init(v, arena, best_kernels(), 1, o) != Status::kOk ||
      t.init(e, Span<const TrainLayer>(layers.data(), layers.size()), cfg, arena) != Status::kOk) {
    state.SkipWithError("init");
    return;
  }
  std::mt19937 rng(2);
  std::vector<std::vector<int8_t>> x(2, std::vector<int8_t>(e.input().size()));
  for (auto& s : x)
    for (int8_t& q : s) q = static_cast<int8_t>(rng());
  uint32_t step = 0;
  for (auto _ : state) {
    bool ok = t.begin_step(step++) == Status::kOk;
    for (size_t i = 0; i < x.size(); ++i)
      ok = ok && t.accumulate_sample(Span<const int8_t>(x[i].data(), x[i].size()), int(i)) == Status::kOk;
    ok = ok && t.end_step(0.f) == Status::kOk;  // lr 0: every iteration runs the same weights
    if (!ok) state.SkipWithError("step");
  }
  state.counters["arena_KB"] = double(e.activation_bytes()) / 1024.0;
  state.counters["blocks"] = e.n_fused_blocks();
  state.SetLabel(e.kernels().name);
}
BENCHMARK(BM_ZoStep)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
