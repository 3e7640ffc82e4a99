// Kernel throughput (GMAC/s) of every kernel table on the layer shapes of MCUNet-5fps at 128x128,
// a whole forward pass of those layers per table, and the machine's int8 peak (register-only
// loops of vpdpbusd / vpdpwssd / vpmaddwd on one core).
//
//   build-x86/bench/kernels_bench                                  # everything
//   build-x86/bench/kernels_bench --benchmark_filter='b2.pw1'      # one layer, all tables
//   build-x86/bench/kernels_bench --benchmark_filter='forward'     # whole model per table
//   build-x86/bench/kernels_bench --benchmark_filter='peak'
//
// Counters: GMAC/s (multiply-accumulates of the layer as the reference counts them: out pixels x
// C_out x kh*kw*C_in/groups; adds, pools and the head count one MAC per element / product) over
// the mean wall time per iteration, and best_GMAC/s over the fastest single iteration. On a
// shared machine the best iteration is the one that ran without being descheduled, which is the
// number to compare; the mean includes time other processes had the core.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/x86.h"

namespace tinyzo {
namespace {

// ---- MCUNet-5fps at 128x128 (mcunet-5fps.pkl; padding kernel // 2) ----
struct ConvLayer {
  const char* name;
  int in_hw, in_c, out_hw, out_c, k, stride, groups;
};
const ConvLayer kConvLayers[] = {
    {"conv0", 128, 3, 64, 16, 3, 2, 1},    {"b0.dw", 64, 16, 64, 16, 3, 1, 16},
    {"b0.pw2", 64, 16, 64, 8, 1, 1, 1},    {"b1.pw1", 64, 8, 64, 32, 1, 1, 1},
    {"b1.dw", 64, 32, 32, 32, 3, 2, 32},   {"b1.pw2", 32, 32, 32, 16, 1, 1, 1},
    {"b2.pw1", 32, 16, 32, 48, 1, 1, 1},   {"b2.dw", 32, 48, 32, 48, 3, 1, 48},
    {"b2.pw2", 32, 48, 32, 16, 1, 1, 1},   {"b3.pw1", 32, 16, 32, 48, 1, 1, 1},
    {"b3.dw", 32, 48, 16, 48, 7, 2, 48},   {"b3.pw2", 16, 48, 16, 24, 1, 1, 1},
    {"b4.pw1", 16, 24, 16, 120, 1, 1, 1},  {"b4.dw", 16, 120, 16, 120, 3, 1, 120},
    {"b4.pw2", 16, 120, 16, 24, 1, 1, 1},  {"b5.pw1", 16, 24, 16, 120, 1, 1, 1},
    {"b5.dw", 16, 120, 8, 120, 3, 2, 120}, {"b5.pw2", 8, 120, 8, 40, 1, 1, 1},
    {"b6.pw1", 8, 40, 8, 160, 1, 1, 1},    {"b6.dw", 8, 160, 8, 160, 7, 1, 160},
    {"b6.pw2", 8, 160, 8, 40, 1, 1, 1},    {"b7.pw1", 8, 40, 8, 160, 1, 1, 1},
    {"b7.dw", 8, 160, 8, 160, 5, 1, 160},  {"b7.pw2", 8, 160, 8, 48, 1, 1, 1},
    {"b8.pw1", 8, 48, 8, 144, 1, 1, 1},    {"b8.dw", 8, 144, 8, 144, 3, 1, 144},
    {"b8.pw2", 8, 144, 8, 48, 1, 1, 1},    {"b9.pw1", 8, 48, 8, 192, 1, 1, 1},
    {"b9.dw", 8, 192, 8, 192, 3, 1, 192},  {"b9.pw2", 8, 192, 8, 48, 1, 1, 1},
    {"b10.pw1", 8, 48, 8, 240, 1, 1, 1},   {"b10.dw", 8, 240, 4, 240, 7, 2, 240},
    {"b10.pw2", 4, 240, 4, 96, 1, 1, 1},   {"b11.pw1", 4, 96, 4, 384, 1, 1, 1},
    {"b11.dw", 4, 384, 4, 384, 5, 1, 384}, {"b11.pw2", 4, 384, 4, 96, 1, 1, 1},
    {"b12.pw1", 4, 96, 4, 384, 1, 1, 1},   {"b12.dw", 4, 384, 4, 384, 5, 1, 384},
    {"b12.pw2", 4, 384, 4, 96, 1, 1, 1},   {"b13.pw1", 4, 96, 4, 576, 1, 1, 1},
    {"b13.dw", 4, 576, 4, 576, 3, 1, 576}, {"b13.pw2", 4, 576, 4, 160, 1, 1, 1},
};
// Residual adds (blocks 2, 4, 6, 8, 9, 11, 12): elements of the block output.
struct AddLayer {
  const char* name;
  int n;
};
const AddLayer kAddLayers[] = {{"b2.add", 32 * 32 * 16}, {"b4.add", 16 * 16 * 24}, {"b6.add", 8 * 8 * 40},
                               {"b8.add", 8 * 8 * 48},   {"b9.add", 8 * 8 * 48},   {"b11.add", 4 * 4 * 96},
                               {"b12.add", 4 * 4 * 96}};

ConvParams conv_params(const ConvLayer& l) {
  ConvParams p;
  p.in_h = p.in_w = l.in_hw;
  p.in_c = l.in_c;
  p.out_h = p.out_w = l.out_hw;
  p.out_c = l.out_c;
  p.kh = p.kw = l.k;
  p.stride_h = p.stride_w = l.stride;
  p.pad_top = p.pad_left = l.k / 2;
  p.groups = l.groups;
  p.x_zero = -128;  // post-ReLU6 activations
  p.y_scale = 0.05f;
  p.y_zero = -10;
  return p;
}

double conv_macs(const ConvLayer& l) {
  return double(l.out_hw) * l.out_hw * l.out_c * l.k * l.k * (l.in_c / l.groups);
}

ConvFn conv_fn(const KernelTable& t, const ConvLayer& l) {
  if (l.groups > 1) return t.depthwise_conv2d;
  if (l.k == 1) return t.pointwise_conv2d;
  return t.conv2d;
}

// Random tensors of one layer, realistic scales.
struct ConvData {
  // `batch` images back to back, run the way the engine runs a batch: a
  // pointwise conv as one image `batch` times taller, any other conv per image.
  explicit ConvData(const ConvLayer& l, uint32_t seed, int batch_ = 1) : p(conv_params(l)), batch(batch_) {
    std::mt19937 g(seed);
    std::uniform_int_distribution<int> i8(-128, 127);
    x.resize(size_t(p.in_h) * p.in_w * p.in_c * size_t(batch));
    w.resize(size_t(p.out_c) * p.kh * p.kw * (p.in_c / p.groups));
    y.resize(size_t(p.out_h) * p.out_w * p.out_c * size_t(batch));
    bias.resize(size_t(p.out_c));
    mult.resize(size_t(p.out_c));
    for (auto& v : x) v = static_cast<int8_t>(i8(g));
    for (auto& v : w) v = static_cast<int8_t>(i8(g));
    const float k = float(p.kh * p.kw * (p.in_c / p.groups));
    for (size_t o = 0; o < bias.size(); ++o) {
      bias[o] = i8(g) * 50;
      mult[o] = p.y_scale * 100.f / (std::sqrt(k) * 6000.f);
    }
  }
  void run(ConvFn fn) {
    if (batch > 1 && p.kh == 1 && p.kw == 1 && p.groups == 1 && p.stride_h == 1) {
      ConvParams tall = p;
      tall.in_h *= batch;
      tall.out_h *= batch;
      fn(tall, x.data(), w.data(), bias.data(), mult.data(), y.data());
      return;
    }
    const size_t xs = size_t(p.in_h) * p.in_w * p.in_c, ys = size_t(p.out_h) * p.out_w * p.out_c;
    for (int k = 0; k < batch; ++k) fn(p, x.data() + k * xs, w.data(), bias.data(), mult.data(), y.data() + k * ys);
  }
  ConvParams p;
  int batch = 1;
  std::vector<int8_t> x, w, y;
  std::vector<int32_t> bias;
  std::vector<float> mult;
};

const KernelTable* table_or_skip(benchmark::State& state, const char* name) {
  const KernelTable* t = x86::find_table(name);
  if (t == nullptr) state.SkipWithError("kernel table not supported by this CPU");
  return t;
}

// Wall time of the fastest iteration.
class BestTime {
 public:
  void start() { t0_ = std::chrono::steady_clock::now(); }
  void stop() {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    if (s < best_) best_ = s;
  }
  double seconds() const { return best_; }

 private:
  std::chrono::steady_clock::time_point t0_;
  double best_ = 1e30;
};

void set_rate(benchmark::State& state, double macs, const BestTime& best) {
  state.counters["GMAC/s"] =
      benchmark::Counter(macs * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["best_GMAC/s"] = macs * 1e-9 / best.seconds();
  state.counters["best_us"] = best.seconds() * 1e6;
}

void bm_conv(benchmark::State& state, const char* table, const ConvLayer* l, int batch) {
  const KernelTable* t = table_or_skip(state, table);
  if (t == nullptr) return;
  ConvData d(*l, 1, batch);
  const ConvFn fn = conv_fn(*t, *l);
  BestTime best;
  for (auto _ : state) {
    best.start();
    d.run(fn);
    benchmark::DoNotOptimize(d.y.data());
    benchmark::ClobberMemory();
    best.stop();
  }
  set_rate(state, conv_macs(*l) * batch, best);
}

AddParams add_params() {
  AddParams p;
  p.x1_zero = 3, p.x2_zero = -7, p.y_zero = 1;
  p.x1_scale = 0.031f, p.x2_scale = 0.027f, p.y_scale = 0.04f;
  return p;
}

void bm_add(benchmark::State& state, const char* table, const AddLayer* l) {
  const KernelTable* t = table_or_skip(state, table);
  if (t == nullptr) return;
  std::vector<int8_t> a(size_t(l->n), 5), b(size_t(l->n), -9), y(size_t(l->n));
  const AddParams p = add_params();
  BestTime best;
  for (auto _ : state) {
    best.start();
    t->add(p, a.data(), b.data(), y.data(), y.size());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    best.stop();
  }
  set_rate(state, l->n, best);
}

void bm_head(benchmark::State& state, const char* table, int classes) {
  const KernelTable* t = table_or_skip(state, table);
  if (t == nullptr) return;
  constexpr int kC = 160, kHw = 16;
  std::vector<int8_t> x(kHw * kC, 3), pooled(kC);
  std::vector<float> w(size_t(kC) * classes, 0.01f), b(size_t(classes), 0.f), y(static_cast<size_t>(classes));
  LinearF32Params p;
  p.in_features = kC, p.out_features = classes, p.x_zero = -128, p.x_scale = 0.02f;
  BestTime best;
  for (auto _ : state) {
    best.start();
    t->global_avg_pool(kHw, kC, x.data(), pooled.data());
    t->linear_f32(p, pooled.data(), w.data(), b.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    best.stop();
  }
  set_rate(state, double(kHw) * kC + double(kC) * classes, best);
}

// Every layer of one forward pass (convs, adds, pool, 10-class head), in model order; the data is
// random, so this measures kernel time only (no engine, no arena).
void bm_forward(benchmark::State& state, const char* table) {
  const KernelTable* t = table_or_skip(state, table);
  if (t == nullptr) return;
  std::vector<ConvData> layers;
  double macs = 0;
  for (const ConvLayer& l : kConvLayers) {
    layers.emplace_back(l, 7);
    macs += conv_macs(l);
  }
  std::vector<int8_t> a(32 * 32 * 16, 1), b(32 * 32 * 16, 2), y(32 * 32 * 16);
  for (const AddLayer& l : kAddLayers) macs += l.n;
  const AddParams ap = add_params();
  std::vector<float> hw(160 * 10, 0.01f), hb(10), logits(10);
  LinearF32Params hp;
  hp.in_features = 160, hp.out_features = 10;
  std::vector<int8_t> pooled(160);
  BestTime best;
  for (auto _ : state) {
    best.start();
    for (size_t i = 0; i < layers.size(); ++i) layers[i].run(conv_fn(*t, kConvLayers[i]));
    for (const AddLayer& l : kAddLayers) t->add(ap, a.data(), b.data(), y.data(), size_t(l.n));
    t->global_avg_pool(16, 160, layers.back().y.data(), pooled.data());
    t->linear_f32(hp, pooled.data(), hw.data(), hb.data(), logits.data());
    benchmark::DoNotOptimize(logits.data());
    benchmark::ClobberMemory();
    best.stop();
  }
  set_rate(state, macs, best);
  state.counters["MMAC"] = macs * 1e-6;
}

// ---- int8 peak: independent accumulator chains, operands in registers only ----
#define TZ_AVX512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))

// The empty asm after each step makes every accumulator opaque, so the compiler can neither merge
// the identical chains nor drop them; it emits no instruction.
#define KEEP_AB __asm__ volatile("" : "+x"(a), "+x"(b));  // no hoisting of a product of a and b
#define TZ_REPEAT12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

TZ_AVX512 __attribute__((noinline)) void peak_vpdpbusd_zmm(int64_t n) {
  __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
#define DECL(i) __m512i c##i = _mm512_setzero_si512();
#define STEP(i) c##i = _mm512_dpbusd_epi32(c##i, a, b);
#define KEEP(i) __asm__ volatile("" : "+v"(c##i));
  TZ_REPEAT12(DECL)
  for (int64_t i = 0; i < n; ++i) {
    TZ_REPEAT12(STEP)
    TZ_REPEAT12(KEEP)
    KEEP_AB
  }
#undef DECL
#undef STEP
#undef KEEP
}

TZ_AVX512 __attribute__((noinline)) void peak_vpdpbusd_ymm(int64_t n) {
  __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-5);
#define DECL(i) __m256i c##i = _mm256_setzero_si256();
#define STEP(i) c##i = _mm256_dpbusd_epi32(c##i, a, b);
#define KEEP(i) __asm__ volatile("" : "+v"(c##i));
  TZ_REPEAT12(DECL)
  for (int64_t i = 0; i < n; ++i) {
    TZ_REPEAT12(STEP)
    TZ_REPEAT12(KEEP)
    KEEP_AB
  }
#undef DECL
#undef STEP
#undef KEEP
}

TZ_AVX512 __attribute__((noinline)) void peak_vpdpwssd_zmm(int64_t n) {
  __m512i a = _mm512_set1_epi16(3), b = _mm512_set1_epi16(-5);
#define DECL(i) __m512i c##i = _mm512_setzero_si512();
#define STEP(i) c##i = _mm512_dpwssd_epi32(c##i, a, b);
#define KEEP(i) __asm__ volatile("" : "+v"(c##i));
  TZ_REPEAT12(DECL)
  for (int64_t i = 0; i < n; ++i) {
    TZ_REPEAT12(STEP)
    TZ_REPEAT12(KEEP)
    KEEP_AB
  }
#undef DECL
#undef STEP
#undef KEEP
}

// AVX2 int16: vpmaddwd + vpaddd (16 MACs per pair). Each chain multiplies its own accumulator, so
// no product is shared between chains (the values are meaningless; the throughput is the point).
__attribute__((target("avx2"), noinline)) void peak_vpmaddwd_ymm(int64_t n) {
  __m256i a = _mm256_set1_epi16(3), b = _mm256_set1_epi16(-5);
#define DECL(i) __m256i c##i = _mm256_setzero_si256();
#define STEP(i) c##i = _mm256_add_epi32(c##i, _mm256_madd_epi16(c##i, b));  // distinct products per chain
#define KEEP(i) __asm__ volatile("" : "+x"(c##i));
  TZ_REPEAT12(DECL)
  for (int64_t i = 0; i < n; ++i) {
    TZ_REPEAT12(STEP)
    TZ_REPEAT12(KEEP)
    KEEP_AB
  }
#undef DECL
#undef STEP
#undef KEEP
}

struct Peak {
  const char* name;
  void (*fn)(int64_t);
  int macs_per_instr;
  bool avx512;
};

void bm_peak(benchmark::State& state, const Peak* pk) {
  const x86::CpuFeatures f = x86::cpu_features();
  if (pk->avx512 ? !f.avx512vnni : !f.avx2) {
    state.SkipWithError("instruction set not supported by this CPU");
    return;
  }
  constexpr int64_t kIters = 1 << 14;  // x 12 instructions: short, so some iterations run undisturbed
  BestTime best;
  for (auto _ : state) {
    best.start();
    pk->fn(kIters);
    best.stop();
  }
  const double instr = 12.0 * kIters;
  set_rate(state, instr * pk->macs_per_instr, best);
  state.counters["best_Ginstr/s"] = instr * 1e-9 / best.seconds();
}

const Peak kPeaks[] = {
    {"vpdpbusd_zmm", peak_vpdpbusd_zmm, 64, true},
    {"vpdpbusd_ymm", peak_vpdpbusd_ymm, 32, true},
    {"vpdpwssd_zmm", peak_vpdpwssd_zmm, 32, true},
    {"vpmaddwd+vpaddd_ymm", peak_vpmaddwd_ymm, 16, false},
};

const char* const kTables[] = {"ref", "portable", "avx2", "avx512vnni"};

void register_all() {
  for (const Peak& pk : kPeaks)
    benchmark::RegisterBenchmark((std::string("peak/") + pk.name).c_str(), bm_peak, &pk)->UseRealTime();
  for (const char* t : kTables)
    benchmark::RegisterBenchmark((std::string("forward/mcunet5fps_128/") + t).c_str(), bm_forward, t)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  for (const ConvLayer& l : kConvLayers) {
    const char* kind = l.groups > 1 ? "dw" : (l.k == 1 ? "pw" : "conv");
    char name[128];
    std::snprintf(name, sizeof name, "%s/%s_%dx%dx%d-%dx%dx%d_k%ds%d", kind, l.name, l.in_hw, l.in_hw, l.in_c,
                  l.out_hw, l.out_hw, l.out_c, l.k, l.stride);
    for (const char* t : kTables)
      benchmark::RegisterBenchmark((std::string(name) + "/" + t).c_str(), bm_conv, t, &l, 1)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    // The same layer over a batch of 16 images (as the engine runs it), the fast tables only.
    for (const char* t : kTables)
      if (std::string(t) != "ref")
        benchmark::RegisterBenchmark((std::string(name) + "/batch16/" + t).c_str(), bm_conv, t, &l, 16)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
  }
  for (const AddLayer& l : kAddLayers)
    for (const char* t : kTables)
      benchmark::RegisterBenchmark(
          (std::string("add/") + l.name + "_" + std::to_string(l.n) + "/" + t).c_str(), bm_add, t, &l)
          ->UseRealTime();
  for (int classes : {10, 1000})
    for (const char* t : kTables)
      benchmark::RegisterBenchmark(("head/gap4x4x160+linear160-" + std::to_string(classes) + "/" + t).c_str(),
                                   bm_head, t, classes)
          ->UseRealTime();
}

}  // namespace
}  // namespace tinyzo

int main(int argc, char** argv) {
  tinyzo::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
