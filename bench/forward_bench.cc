// Single-image forward of the paper's MCUNet-5fps (CIFAR-10) with each kernel
// table: time per image and GMAC/s. The model is resolved like the CLI does
// (`mcunet-cifar10` from the data directory, converted into the cache), or
// from $TINYZO_BENCH_MODEL. The *Fixed* benchmarks run the same model converted
// to TFLite's fixed-point requantization (`tinyzo convert --requant fixed`,
// done in memory here), so float-scale and fixed-point compare in one run.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "models/model_store.h"
#include "models/requant_convert.h"
#include "models/tzm_writer.h"
#if defined(__x86_64__)
#include "tinyzo/kernels/x86.h"
#endif

namespace {

tinyzo::LoadedModel& model() {
  static std::unique_ptr<tinyzo::LoadedModel> m = [] {
    const char* env = std::getenv("TINYZO_BENCH_MODEL");
    return std::make_unique<tinyzo::LoadedModel>(tinyzo::load_model_arg(env ? env : "mcunet-cifar10"));
  }();
  return *m;
}

// "ref", "best" (as the CLI), or "portable" (x86's portable table).
const tinyzo::KernelTable& table(const char* name) {
#if defined(__x86_64__)
  if (std::string(name) == "portable") return tinyzo::x86::portable_table();
#endif
  return tinyzo::kernels_by_name(name);
}

// The model converted to fixed-point requantization.
const tinyzo::ModelView& fixed_view() {
  struct Fixed {
    tinyzo::AlignedModelBytes bytes;
    tinyzo::ModelView view;
  };
  static std::unique_ptr<Fixed> f = [] {
    auto p = std::make_unique<Fixed>();
    p->bytes = tinyzo::AlignedModelBytes(tinyzo::convert_to_fixed_point(model().view()).bytes);
    if (p->view.init(p->bytes.data(), p->bytes.size()) != tinyzo::Status::kOk) std::abort();
    return p;
  }();
  return f->view;
}

void forward_view(benchmark::State& state, const tinyzo::ModelView& view, const char* kernels) {
  tinyzo::EngineInstance inst(view, table(kernels));
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

void forward(benchmark::State& state, const char* kernels) { forward_view(state, model().view(), kernels); }
void forward_fixed(benchmark::State& state, const char* kernels) { forward_view(state, fixed_view(), kernels); }

void BM_ForwardRef(benchmark::State& state) { forward(state, "ref"); }
void BM_ForwardBest(benchmark::State& state) { forward(state, "best"); }
void BM_ForwardPortable(benchmark::State& state) { forward(state, "portable"); }
void BM_ForwardFixedRef(benchmark::State& state) { forward_fixed(state, "ref"); }
void BM_ForwardFixedBest(benchmark::State& state) { forward_fixed(state, "best"); }
void BM_ForwardFixedPortable(benchmark::State& state) { forward_fixed(state, "portable"); }
BENCHMARK(BM_ForwardRef)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_ForwardBest)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_ForwardPortable)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_ForwardFixedRef)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_ForwardFixedBest)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_ForwardFixedPortable)->Unit(benchmark::kMillisecond)->MinTime(2.0);

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
