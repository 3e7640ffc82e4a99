// Throughput of the TFLite-semantics reference kernels (every kernel table points at them) on the
// shapes of the TFLM example models: MobileNetV2 (PyTorch export, 224x224) and person_detect.
//
//   build/release/bench/tflite_ops_bench
//   build/release/bench/tflite_ops_bench --benchmark_filter=softmax
//
// Counter: Melem/s = output elements per second (mean wall time per iteration); best_Melem/s over
// the fastest iteration (the one not descheduled on a shared machine).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "tinyzo/kernels/kernels.h"

namespace tinyzo {
namespace {

std::vector<int8_t> filled(size_t n) {
  std::vector<int8_t> v(n);
  uint32_t s = 12345;
  for (auto& e : v) {
    s = s * 1664525u + 1013904223u;
    e = static_cast<int8_t>(s >> 24);
  }
  return v;
}

// Runs `fn` per iteration and reports elements/s for `n_out` output elements.
template <class Fn>
void run(benchmark::State& state, size_t n_out, Fn fn) {
  double best = 1e30;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["Melem/s"] =
      benchmark::Counter(double(n_out) * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["best_Melem/s"] = double(n_out) * 1e-6 / best;
}

void BM_TransposeNchwToNhwc(benchmark::State& state) {  // MobileNetV2 input [3, 224, 224] -> [224, 224, 3]
  TransposeParams p;
  p.rank = 3;
  p.in_dims[0] = 3;
  p.in_dims[1] = p.in_dims[2] = 224;
  p.perm[0] = 1;
  p.perm[1] = 2;
  p.perm[2] = 0;
  const std::vector<int8_t> x = filled(3 * 224 * 224);
  std::vector<int8_t> y(x.size());
  run(state, y.size(), [&] { ref::transpose_s8(p, x.data(), y.data()); });
}

void BM_Pad(benchmark::State& state) {  // MobileNetV2 [112, 112, 32] padded by 1 -> [114, 114, 32]
  PadParams p;
  p.rank = 3;
  p.in_dims[0] = p.in_dims[1] = 112;
  p.in_dims[2] = 32;
  p.before[0] = p.before[1] = p.after[0] = p.after[1] = 1;
  p.value = -128;
  const std::vector<int8_t> x = filled(112 * 112 * 32);
  std::vector<int8_t> y(114 * 114 * 32);
  run(state, y.size(), [&] { ref::pad_s8(p, x.data(), y.data()); });
}

void BM_AddTfl(benchmark::State& state) {  // MobileNetV2 residual [56, 56, 24]
  TflAddParams p;
  p.x1_offset = 5;
  p.x2_offset = -3;
  p.y_offset = 2;
  p.x1_mult = 1518500250;
  p.x1_shift = 0;
  p.x2_mult = 1073741824;
  p.x2_shift = 0;
  p.y_mult = 1431655765;
  p.y_shift = -19;
  const std::vector<int8_t> a = filled(56 * 56 * 24), b = filled(56 * 56 * 24);
  std::vector<int8_t> y(a.size());
  run(state, y.size(), [&] { ref::add_tfl_s8(p, a.data(), b.data(), y.data(), y.size()); });
}

void BM_MeanTfl(benchmark::State& state) {  // MobileNetV2 [7, 7, 1280] -> [1280]
  TflMeanParams p;
  p.rows = 49;
  p.c = 1280;
  p.x_zero = -128;
  p.mult = 1402438300;
  p.shift = -5;
  const std::vector<int8_t> x = filled(49 * 1280);
  std::vector<int8_t> y(1280);
  run(state, y.size(), [&] { ref::mean_tfl_s8(p, x.data(), y.data()); });
}

void BM_AvgPoolTfl(benchmark::State& state) {  // person_detect [3, 3, 256] 3x3 VALID -> [1, 1, 256]
  PoolParams p;
  p.in_h = p.in_w = 3;
  p.c = 256;
  p.out_h = p.out_w = 1;
  p.kh = p.kw = 3;
  p.stride_h = p.stride_w = 2;
  const std::vector<int8_t> x = filled(9 * 256);
  std::vector<int8_t> y(256);
  run(state, y.size(), [&] { ref::avg_pool2d_tfl_s8(p, x.data(), y.data()); });
}

void BM_SoftmaxTfl(benchmark::State& state) {  // an ImageNet head: 1000 classes
  TflSoftmaxParams p;
  p.outer = 1;
  p.depth = 1000;
  p.input_multiplier = 1717986944;
  p.input_left_shift = 23;
  p.diff_min = -248;
  const std::vector<int8_t> x = filled(1000);
  std::vector<int8_t> y(1000);
  run(state, y.size(), [&] { ref::softmax_tfl_s8(p, x.data(), y.data()); });
}

void BM_Requantize(benchmark::State& state) {  // [56, 56, 24]
  QuantizeParams p;
  p.x_zero = 3;
  p.y_zero = -7;
  p.mult = 1288490189;
  p.shift = 1;
  const std::vector<int8_t> x = filled(56 * 56 * 24);
  std::vector<int8_t> y(x.size());
  run(state, y.size(), [&] { ref::requantize_s8(p, x.data(), y.data(), y.size()); });
}

BENCHMARK(BM_TransposeNchwToNhwc)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Pad)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AddTfl)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MeanTfl)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AvgPoolTfl)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SoftmaxTfl)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Requantize)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tinyzo

BENCHMARK_MAIN();
