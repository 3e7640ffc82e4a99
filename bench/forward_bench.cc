// Single-image forward of the paper's MCUNet-5fps (CIFAR-10) with each kernel
// table: time per image and GMAC/s. The model is resolved like the CLI does
// (`mcunet-cifar10` from the data directory, converted into the cache), or
// from $TINYZO_BENCH_MODEL.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "models/model_store.h"

namespace {

tinyzo::LoadedModel& model() {
  static std::unique_ptr<tinyzo::LoadedModel> m = [] {
    const char* env = std::getenv("TINYZO_BENCH_MODEL");
    return std::make_unique<tinyzo::LoadedModel>(tinyzo::load_model_arg(env ? env : "mcunet-cifar10"));
  }();
  return *m;
}

void forward(benchmark::State& state, const char* kernels) {
  const tinyzo::ModelView& view = model().view();
  tinyzo::EngineInstance inst(view, tinyzo::kernels_by_name(kernels));
  tinyzo::Engine& engine = inst.engine();
  std::mt19937 rng(1);
  for (int8_t& v : engine.input()) v = static_cast<int8_t>(rng());
  const uint64_t macs = engine.macs(0, view.n_ops());
  for (auto _ : state) {
    inst.invoke();
    benchmark::ClobberMemory();
  }
  state.counters["MAC/s"] = benchmark::Counter(double(macs) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["MMAC/image"] = double(macs) / 1e6;
  state.SetLabel(engine.kernels().name);
}

void BM_ForwardRef(benchmark::State& state) { forward(state, "ref"); }
void BM_ForwardBest(benchmark::State& state) { forward(state, "best"); }
BENCHMARK(BM_ForwardRef)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_ForwardBest)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// A batch of state.range(0) images through one engine per thread (the best
// kernels, or $TINYZO_KERNELS): ->Threads(T) runs T engines side by side, like
// `tinyzo eval --threads T --batch N` without the preprocessing. items_per_second
// is images per second over all threads (real time); GMAC/s = that x MMAC/image.
void BM_ForwardBatch(benchmark::State& state) {
  const tinyzo::ModelView& view = model().view();
  const int batch = static_cast<int>(state.range(0));
  tinyzo::EngineInstance inst(view, tinyzo::kernels_by_name("best"), batch);
  tinyzo::Engine& engine = inst.engine();
  std::mt19937 rng(1 + state.thread_index());
  for (int k = 0; k < batch; ++k)
    for (int8_t& v : engine.input(k)) v = static_cast<int8_t>(rng());
  for (auto _ : state) {
    inst.invoke();
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * batch);
  state.counters["MMAC/image"] =
      benchmark::Counter(double(engine.macs(0, view.n_ops())) / 1e6, benchmark::Counter::kAvgThreads);
  state.SetLabel(engine.kernels().name);
}
BENCHMARK(BM_ForwardBatch)->Arg(1)->Arg(16)->Arg(32)->Threads(1)->Threads(2)->UseRealTime()
    ->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
