// Every x86 kernel table (portable, avx2, avx512vnni) against ref:: bit for bit, on many random
// shapes and parameters with fixed seeds, plus the layer shapes of MCUNet-5fps at 128x128.
// A table the CPU lacks is skipped with a printed reason. Inputs end exactly at a PROT_NONE page,
// so reading one byte past an input faults; outputs have a guard page after and sentinel bytes
// before, so writing outside the output fails.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/x86.h"

namespace tinyzo {
namespace {

// n bytes ending right before an inaccessible page; kSentinel bytes before them are checked.
class Guarded {
 public:
  static constexpr size_t kSentinel = 64;
  explicit Guarded(size_t n) : n_(n) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t body = ((n + kSentinel + page - 1) / page) * page;
    size_ = body + page;
    void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
    base_ = static_cast<uint8_t*>(m);
    if (mprotect(base_ + body, page, PROT_NONE) != 0) std::abort();
    data_ = base_ + body - n;
    std::memset(base_, 0x5A, body);
  }
  ~Guarded() { munmap(base_, size_); }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;

  template <class T>
  T* as() {
    return reinterpret_cast<T*>(data_);
  }
  template <class T>
  void fill(const std::vector<T>& v) {
    std::memcpy(data_, v.data(), v.size() * sizeof(T));
  }
  bool sentinel_intact() const {
    for (size_t i = 1; i <= kSentinel; ++i)
      if (data_[-static_cast<ptrdiff_t>(i)] != 0x5A) return false;
    return true;
  }

 private:
  size_t n_, size_ = 0;
  uint8_t* base_ = nullptr;
  uint8_t* data_ = nullptr;
};

// Copies v into a guarded buffer (for kernel inputs).
template <class T>
struct GuardedInput {
  explicit GuardedInput(const std::vector<T>& v) : g(v.size() * sizeof(T)) { g.fill(v); }
  const T* get() { return g.as<T>(); }
  Guarded g;
};

const std::vector<int> kChannels = {1,  2,  3,  4,  5,   7,   8,   15,  16,  17,  24,  31,  32,  33,  40, 48,
                                    63, 64, 65, 96, 120, 127, 128, 129, 144, 160, 192, 240, 256, 384, 576};

class Rng {
 public:
  explicit Rng(uint32_t seed) : g_(seed) {}
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g_); }
  float uniform_f(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(g_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(g_); }
  template <class T>
  T pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(uniform(0, static_cast<int>(v.size()) - 1))];
  }
  int8_t i8() { return static_cast<int8_t>(uniform(-128, 127)); }

 private:
  std::mt19937 g_;
};

// How the requantization parameters and data are drawn.
enum class Mode { kRealistic, kTies, kExtreme, kLarge, kPathological };
const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kRealistic:
      return "realistic";
    case Mode::kTies:
      return "ties";
    case Mode::kExtreme:
      return "extreme";
    case Mode::kLarge:
      return "large";
    case Mode::kPathological:
      return "pathological";
  }
  return "?";
}
Mode random_mode(Rng& r) {
  const int u = r.uniform(0, 99);
  if (u < 50) return Mode::kRealistic;
  if (u < 70) return Mode::kTies;
  if (u < 85) return Mode::kExtreme;
  if (u < 92) return Mode::kLarge;
  return Mode::kPathological;
}

struct ConvCase {
  ConvParams p;
  Mode mode = Mode::kRealistic;
  std::vector<int8_t> x, w;
  std::vector<int32_t> bias;
  std::vector<float> mult;
  std::string describe() const {
    std::ostringstream s;
    s << "in " << p.in_h << "x" << p.in_w << "x" << p.in_c << " out " << p.out_h << "x" << p.out_w << "x"
      << p.out_c << " k " << p.kh << "x" << p.kw << " s " << p.stride_h << "," << p.stride_w << " pad "
      << p.pad_top << "," << p.pad_left << " g " << p.groups << " zx " << p.x_zero << " ys " << p.y_scale
      << " zy " << p.y_zero << " act [" << p.act_min << "," << p.act_max << "] mode " << mode_name(mode);
    return s.str();
  }
};

// Output size for the given padding at the top and at the bottom (any split is allowed).
int out_size(int in, int k, int s, int pad_a, int pad_b) { return (in + pad_a + pad_b - k) / s + 1; }

// Fills data and requantization parameters of c (shape already set in c.p).
void fill_conv(Rng& r, ConvCase& c) {
  ConvParams& p = c.p;
  const int ci_pg = p.in_c / p.groups;
  const size_t n_x = static_cast<size_t>(p.in_h) * p.in_w * p.in_c;
  const size_t n_w = static_cast<size_t>(p.out_c) * p.kh * p.kw * ci_pg;
  const int k = p.kh * p.kw * ci_pg;
  c.x.resize(n_x);
  c.w.resize(n_w);
  c.bias.resize(static_cast<size_t>(p.out_c));
  c.mult.resize(static_cast<size_t>(p.out_c));
  p.x_zero = r.chance(0.2) ? (r.chance(0.5) ? -128 : 127) : r.uniform(-128, 127);
  p.y_zero = r.chance(0.2) ? (r.chance(0.5) ? -128 : 127) : r.uniform(-128, 127);
  switch (r.uniform(0, 3)) {
    case 0:
      p.act_min = -128, p.act_max = 127;
      break;
    case 1:
      p.act_min = p.y_zero, p.act_max = 127;
      break;  // ReLU
    case 2:
      p.act_min = p.y_zero, p.act_max = std::min(127, p.y_zero + r.uniform(0, 60));
      break;  // ReLU6-like
    default: {
      const int a = r.uniform(-128, 127), b = r.uniform(-128, 127);
      p.act_min = std::min(a, b), p.act_max = std::max(a, b);
    }
  }
  const float acc_typ = std::sqrt(static_cast<float>(k)) * 80.f * 74.f;
  switch (c.mode) {
    case Mode::kRealistic:
      for (auto& v : c.x) v = r.i8();
      for (auto& v : c.w) v = r.i8();
      for (auto& v : c.bias) v = r.uniform(-20000, 20000);
      p.y_scale = r.uniform_f(0.005f, 0.2f);
      for (auto& m : c.mult) m = p.y_scale * 120.f / acc_typ * r.uniform_f(0.3f, 3.f);
      break;
    case Mode::kTies: {
      // Small exact values and power-of-two scales: v is often exactly k + 0.5.
      for (auto& v : c.x) v = static_cast<int8_t>(std::clamp(p.x_zero + r.uniform(-3, 3), -128, 127));
      for (auto& v : c.w) v = static_cast<int8_t>(r.uniform(-3, 3));
      for (auto& v : c.bias) v = r.uniform(-40, 40);
      p.y_scale = std::ldexp(1.f, r.uniform(-1, 2));
      for (auto& m : c.mult) m = std::ldexp(1.f, -r.uniform(0, 3));
      break;
    }
    case Mode::kExtreme:
      for (auto& v : c.x) v = r.chance(0.5) ? -128 : 127;
      for (auto& v : c.w) v = r.chance(0.5) ? -128 : 127;
      for (auto& v : c.bias) {
        const int u = r.uniform(0, 3);
        v = u == 0   ? std::numeric_limits<int32_t>::max()
            : u == 1 ? -std::numeric_limits<int32_t>::max()
                     : r.uniform(-1000000, 1000000);
      }
      p.y_scale = r.uniform_f(0.01f, 0.1f);
      for (auto& m : c.mult)
        m = p.y_scale * 120.f / (static_cast<float>(k) * 32640.f) * r.uniform_f(0.5f, 4.f);
      break;
    case Mode::kLarge:
      for (auto& v : c.x) v = r.i8();
      for (auto& v : c.w) v = r.i8();
      for (auto& v : c.bias)
        v = r.chance(0.3) ? std::numeric_limits<int32_t>::max() : r.uniform(-100000, 100000);
      p.y_scale = r.uniform_f(1e-6f, 1e-3f);
      for (auto& m : c.mult) m = (r.chance(0.5) ? 1.f : -1.f) * std::ldexp(1.f, r.uniform(0, 100));
      break;
    case Mode::kPathological: {
      for (auto& v : c.x) v = r.i8();
      for (auto& v : c.w) v = r.i8();
      for (auto& v : c.bias) v = r.uniform(-20000, 20000);
      const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
      const std::vector<float> odd = {0.f, -0.f, inf, -inf, nan, 1e-40f, -1e-3f, 3e38f, 1e-3f, 1e-4f};
      for (auto& m : c.mult) m = r.pick(odd);
      p.y_scale = r.pick(std::vector<float>{0.f, inf, nan, 1e-40f, -0.05f, 0.05f, 1e30f});
      if (r.chance(0.3)) std::swap(p.act_min, p.act_max);  // lo > hi: clamp_i32's order matters
      if (r.chance(0.2)) p.y_zero = r.pick(std::vector<int32_t>{-1000, 1000, 1 << 21});
      break;
    }
  }
}

// Runs fn on c (inputs and output guarded) and compares with the reference function.
::testing::AssertionResult check_conv(ConvFn fn, ConvFn ref_fn, const ConvCase& c) {
  const ConvParams& p = c.p;
  const size_t n_y = static_cast<size_t>(p.out_h) * p.out_w * p.out_c;
  std::vector<int8_t> want(n_y);
  ref_fn(p, c.x.data(), c.w.data(), c.bias.data(), c.mult.data(), want.data());
  GuardedInput<int8_t> x(c.x), w(c.w);
  GuardedInput<int32_t> bias(c.bias);
  GuardedInput<float> mult(c.mult);
  Guarded y(n_y);
  std::memset(y.as<int8_t>(), 0x33, n_y);
  fn(p, x.get(), w.get(), bias.get(), mult.get(), y.as<int8_t>());
  if (!y.sentinel_intact())
    return ::testing::AssertionFailure() << "wrote before the output: " << c.describe();
  const int8_t* got = y.as<int8_t>();
  for (size_t i = 0; i < n_y; ++i) {
    if (got[i] != want[i]) {
      const size_t o = i % static_cast<size_t>(p.out_c);
      return ::testing::AssertionFailure() << "output " << i << " (pixel " << i / p.out_c << ", channel " << o
                                           << "): got " << int(got[i]) << " want " << int(want[i]) << " bias "
                                           << c.bias[o] << " mult " << c.mult[o] << "; " << c.describe();
    }
  }
  return ::testing::AssertionSuccess();
}

class X86Kernels : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    table_ = x86::find_table(GetParam());
    if (table_ == nullptr)
      GTEST_SKIP() << "kernel table '" << GetParam() << "' is not supported by this CPU: skipped";
  }
  const KernelTable* table_ = nullptr;
};

// Limits the reference's work per case (it is a few hundred MMAC/s).
constexpr double kMaxMacs = 4e6;

TEST_P(X86Kernels, PointwiseRandom) {
  Rng r(1001);
  int done = 0;
  while (done < 600) {
    ConvCase c;
    ConvParams& p = c.p;
    p.in_h = p.out_h = r.uniform(1, 40);
    p.in_w = p.out_w = r.uniform(1, 40);
    if (r.chance(0.3)) p.in_h = p.out_h = 1;
    p.in_c = r.pick(kChannels);
    p.out_c = r.pick(kChannels);
    if (double(p.in_h) * p.in_w * p.in_c * p.out_c > kMaxMacs) continue;
    c.mode = random_mode(r);
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(table_->pointwise_conv2d, ref::pointwise_conv2d_s8, c)) << "case " << done;
    ++done;
  }
}

// Random depthwise shape: square or not, stride 1..3, any padding split.
void random_depthwise(Rng& r, ConvCase& c) {
  ConvParams& p = c.p;
  const std::vector<int> ks = {1, 2, 3, 3, 3, 4, 5, 5, 7, 7};
  p.kh = r.pick(ks);
  p.kw = r.chance(0.8) ? p.kh : r.pick(ks);
  p.stride_h = r.chance(0.45) ? 1 : (r.chance(0.85) ? 2 : 3);
  p.stride_w = r.chance(0.9) ? p.stride_h : r.uniform(1, 3);
  for (;;) {
    p.in_h = r.uniform(1, 40);
    p.in_w = r.uniform(1, 40);
    p.pad_top = r.uniform(0, p.kh - 1);
    p.pad_left = r.uniform(0, p.kw - 1);
    const int pb = r.uniform(0, p.kh - 1), pr = r.uniform(0, p.kw - 1);
    if (p.in_h + p.pad_top + pb < p.kh || p.in_w + p.pad_left + pr < p.kw) continue;
    p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, pb);
    p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, pr);
    break;
  }
  p.in_c = p.out_c = p.groups = r.pick(kChannels);
}

TEST_P(X86Kernels, DepthwiseRandom) {
  Rng r(2002);
  int done = 0;
  while (done < 600) {
    ConvCase c;
    random_depthwise(r, c);
    const ConvParams& p = c.p;
    if (double(p.out_h) * p.out_w * p.out_c * p.kh * p.kw > kMaxMacs) continue;
    c.mode = random_mode(r);
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(table_->depthwise_conv2d, ref::depthwise_conv2d_s8, c)) << "case " << done;
    ++done;
  }
}

TEST_P(X86Kernels, DepthwiseWide) {
  // Wide rows: the AVX kernels split the output columns into strips that fit their ring buffer.
  Rng r(2003);
  for (int i = 0; i < 12; ++i) {
    ConvCase c;
    ConvParams& p = c.p;
    p.kh = p.kw = r.pick(std::vector<int>{3, 5, 7});
    p.stride_h = p.stride_w = r.uniform(1, 2);
    p.in_h = r.uniform(p.kh, 12);
    p.in_w = r.uniform(150, 400);
    p.pad_top = p.pad_left = p.kh / 2;
    p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, p.kh / 2);
    p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, p.kw / 2);
    p.in_c = p.out_c = p.groups = r.pick(std::vector<int>{16, 17, 33, 64});
    c.mode = Mode::kRealistic;
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(table_->depthwise_conv2d, ref::depthwise_conv2d_s8, c)) << "case " << i;
  }
}

TEST_P(X86Kernels, ConvRandom) {
  Rng r(3003);
  int done = 0;
  const std::vector<int> ci_list = {1, 2, 3, 4, 5, 8, 15, 16, 17, 24, 32, 33, 64, 129};
  while (done < 500) {
    ConvCase c;
    ConvParams& p = c.p;
    p.kh = r.uniform(1, 7);
    p.kw = r.chance(0.7) ? p.kh : r.uniform(1, 7);
    p.stride_h = r.uniform(1, 3);
    p.stride_w = r.chance(0.8) ? p.stride_h : r.uniform(1, 3);
    p.in_h = r.uniform(1, 40);
    p.in_w = r.uniform(1, 40);
    p.pad_top = r.uniform(0, p.kh - 1);
    p.pad_left = r.uniform(0, p.kw - 1);
    const int pb = r.uniform(0, p.kh - 1), pr = r.uniform(0, p.kw - 1);
    if (p.in_h + p.pad_top + pb < p.kh || p.in_w + p.pad_left + pr < p.kw) continue;
    p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, pb);
    p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, pr);
    p.in_c = r.pick(ci_list);
    p.out_c = r.pick(kChannels);
    p.groups = 1;
    if (r.chance(0.25)) {  // grouped: a divisor of both channel counts
      std::vector<int> div;
      for (int g = 2; g <= p.in_c; ++g)
        if (p.in_c % g == 0 && p.out_c % g == 0) div.push_back(g);
      if (!div.empty()) p.groups = r.pick(div);
    }
    const double macs = double(p.out_h) * p.out_w * p.out_c * p.kh * p.kw * (p.in_c / p.groups);
    if (macs > kMaxMacs) continue;
    c.mode = random_mode(r);
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(table_->conv2d, ref::conv2d_s8, c)) << "case " << done;
    ++done;
  }
}

TEST_P(X86Kernels, ConvLargeReduction) {
  // K = kh*kw*C_in beyond the AVX kernels' staging buffers: their exact fallback must be taken.
  Rng r(3004);
  for (int i = 0; i < 6; ++i) {
    ConvCase c;
    ConvParams& p = c.p;
    p.kh = p.kw = 3;
    p.in_h = p.in_w = r.uniform(2, 5);
    p.pad_top = p.pad_left = 1;
    p.out_h = p.in_h, p.out_w = p.in_w;
    p.in_c = r.pick(std::vector<int>{1100, 1500, 3000});
    p.out_c = r.uniform(1, 20);
    c.mode = Mode::kRealistic;
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(table_->conv2d, ref::conv2d_s8, c)) << "case " << i;
    ConvCase pw = c;
    pw.p.kh = pw.p.kw = 1;
    pw.p.pad_top = pw.p.pad_left = 0;
    pw.p.in_c = std::vector<int>{800, 1500, 2500, 3100, 7000, 7001}[static_cast<size_t>(i)];
    fill_conv(r, pw);
    ASSERT_TRUE(check_conv(table_->pointwise_conv2d, ref::pointwise_conv2d_s8, pw)) << "case " << i;
  }
}

TEST_P(X86Kernels, DepthwiseLargeKernels) {
  // Kernels beyond the vector paths' packing limits take the exact fallbacks.
  Rng r(2004);
  for (int k : {8, 9, 11, 13}) {
    ConvCase c;
    ConvParams& p = c.p;
    p.kh = k;
    p.kw = r.uniform(1, k);
    p.stride_h = p.stride_w = r.uniform(1, 2);
    p.in_h = r.uniform(k, k + 6);
    p.in_w = r.uniform(p.kw, p.kw + 6);
    p.pad_top = k / 2, p.pad_left = p.kw / 2;
    p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, k / 2);
    p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, p.kw / 2);
    p.in_c = p.out_c = p.groups = r.pick(std::vector<int>{5, 16, 33});
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(table_->depthwise_conv2d, ref::depthwise_conv2d_s8, c)) << "k " << k;
  }
}

TEST_P(X86Kernels, ZeroPointOutsideInt8) {
  // The contract keeps zero points in int8; outside it the kernels must still be exact.
  Rng r(3005);
  for (int32_t z : {-1000, -200, 200, 1000}) {
    ConvCase c;
    ConvParams& p = c.p;
    p.in_h = p.out_h = r.uniform(1, 9);
    p.in_w = p.out_w = r.uniform(1, 9);
    p.in_c = r.pick(kChannels);
    p.out_c = r.pick(kChannels);
    fill_conv(r, c);
    p.x_zero = z;
    ASSERT_TRUE(check_conv(table_->pointwise_conv2d, ref::pointwise_conv2d_s8, c)) << "z " << z;
    ASSERT_TRUE(check_conv(table_->conv2d, ref::conv2d_s8, c)) << "z " << z;
    ConvCase d;
    random_depthwise(r, d);
    fill_conv(r, d);
    d.p.x_zero = z;
    ASSERT_TRUE(check_conv(table_->depthwise_conv2d, ref::depthwise_conv2d_s8, d)) << "z " << z;
  }
}

// The conv layers of MCUNet-5fps at 128x128 (from mcunet-5fps.pkl): first conv, then per block
// pointwise1 (absent in block 0), depthwise, pointwise2. Padding is kernel // 2.
struct Layer {
  int in_hw, in_c, out_hw, out_c, k, stride, groups;
};
const std::vector<Layer> kMcunet = {
    {128, 3, 64, 16, 3, 2, 1},                                                              //
    {64, 16, 64, 16, 3, 1, 16}, {64, 16, 64, 8, 1, 1, 1},                                   // b0
    {64, 8, 64, 32, 1, 1, 1},   {64, 32, 32, 32, 3, 2, 32},    {32, 32, 32, 16, 1, 1, 1},   // b1
    {32, 16, 32, 48, 1, 1, 1},  {32, 48, 32, 48, 3, 1, 48},    {32, 48, 32, 16, 1, 1, 1},   // b2
    {32, 16, 32, 48, 1, 1, 1},  {32, 48, 16, 48, 7, 2, 48},    {16, 48, 16, 24, 1, 1, 1},   // b3
    {16, 24, 16, 120, 1, 1, 1}, {16, 120, 16, 120, 3, 1, 120}, {16, 120, 16, 24, 1, 1, 1},  // b4
    {16, 24, 16, 120, 1, 1, 1}, {16, 120, 8, 120, 3, 2, 120},  {8, 120, 8, 40, 1, 1, 1},    // b5
    {8, 40, 8, 160, 1, 1, 1},   {8, 160, 8, 160, 7, 1, 160},   {8, 160, 8, 40, 1, 1, 1},    // b6
    {8, 40, 8, 160, 1, 1, 1},   {8, 160, 8, 160, 5, 1, 160},   {8, 160, 8, 48, 1, 1, 1},    // b7
    {8, 48, 8, 144, 1, 1, 1},   {8, 144, 8, 144, 3, 1, 144},   {8, 144, 8, 48, 1, 1, 1},    // b8
    {8, 48, 8, 192, 1, 1, 1},   {8, 192, 8, 192, 3, 1, 192},   {8, 192, 8, 48, 1, 1, 1},    // b9
    {8, 48, 8, 240, 1, 1, 1},   {8, 240, 4, 240, 7, 2, 240},   {4, 240, 4, 96, 1, 1, 1},    // b10
    {4, 96, 4, 384, 1, 1, 1},   {4, 384, 4, 384, 5, 1, 384},   {4, 384, 4, 96, 1, 1, 1},    // b11
    {4, 96, 4, 384, 1, 1, 1},   {4, 384, 4, 384, 5, 1, 384},   {4, 384, 4, 96, 1, 1, 1},    // b12
    {4, 96, 4, 576, 1, 1, 1},   {4, 576, 4, 576, 3, 1, 576},   {4, 576, 4, 160, 1, 1, 1},   // b13
};

ConvParams layer_params(const Layer& l) {
  ConvParams p;
  p.in_h = p.in_w = l.in_hw;
  p.in_c = l.in_c;
  p.out_h = p.out_w = l.out_hw;
  p.out_c = l.out_c;
  p.kh = p.kw = l.k;
  p.stride_h = p.stride_w = l.stride;
  p.pad_top = p.pad_left = l.k / 2;
  p.groups = l.groups;
  return p;
}

TEST_P(X86Kernels, McunetLayers) {
  Rng r(4004);
  for (size_t i = 0; i < kMcunet.size(); ++i) {
    for (Mode mode : {Mode::kRealistic, Mode::kTies, Mode::kExtreme}) {
      ConvCase c;
      c.p = layer_params(kMcunet[i]);
      c.mode = mode;
      fill_conv(r, c);
      const ConvParams& p = c.p;
      if (p.groups > 1) {
        ASSERT_TRUE(check_conv(table_->depthwise_conv2d, ref::depthwise_conv2d_s8, c)) << "layer " << i;
      } else if (p.kh == 1) {
        ASSERT_TRUE(check_conv(table_->pointwise_conv2d, ref::pointwise_conv2d_s8, c)) << "layer " << i;
      }
      ASSERT_TRUE(check_conv(table_->conv2d, ref::conv2d_s8, c)) << "layer " << i << " via conv2d";
    }
  }
}

TEST_P(X86Kernels, AddRandom) {
  Rng r(5005);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (int i = 0; i < 400; ++i) {
    const size_t n =
        r.chance(0.5) ? static_cast<size_t>(r.uniform(1, 70)) : static_cast<size_t>(r.uniform(1, 70000));
    AddParams p;
    p.x1_zero = r.uniform(-128, 127);
    p.x2_zero = r.uniform(-128, 127);
    p.y_zero = r.uniform(-128, 127);
    p.act_min = r.chance(0.7) ? -128 : r.uniform(-128, 0);
    p.act_max = r.chance(0.7) ? 127 : r.uniform(0, 127);
    std::vector<int8_t> a(n), b(n);
    const int mode = r.uniform(0, 9);
    if (mode < 6) {
      p.x1_scale = r.uniform_f(0.01f, 0.1f);
      p.x2_scale = r.uniform_f(0.01f, 0.1f);
      p.y_scale = r.uniform_f(0.01f, 0.2f);
      for (auto& v : a) v = r.i8();
      for (auto& v : b) v = r.i8();
    } else if (mode < 8) {  // exact ties: power-of-two scales
      p.x1_scale = std::ldexp(1.f, -r.uniform(0, 2));
      p.x2_scale = std::ldexp(1.f, -r.uniform(0, 2));
      p.y_scale = std::ldexp(1.f, r.uniform(-1, 2));
      for (auto& v : a) v = r.i8();
      for (auto& v : b) v = r.i8();
    } else {  // pathological scales
      const std::vector<float> odd = {0.f, inf, -inf, nan, 1e-40f, 3e38f, -0.05f, 0.05f};
      p.x1_scale = r.pick(odd);
      p.x2_scale = r.pick(odd);
      p.y_scale = r.pick(odd);
      if (r.chance(0.3)) std::swap(p.act_min, p.act_max);
      for (auto& v : a) v = r.i8();
      for (auto& v : b) v = r.i8();
    }
    std::vector<int8_t> want(n);
    ref::add_s8(p, a.data(), b.data(), want.data(), n);
    GuardedInput<int8_t> ga(a), gb(b);
    Guarded y(n);
    table_->add(p, ga.get(), gb.get(), y.as<int8_t>(), n);
    ASSERT_TRUE(y.sentinel_intact()) << "case " << i;
    ASSERT_EQ(0, std::memcmp(y.as<int8_t>(), want.data(), n))
        << "case " << i << " n " << n << " scales " << p.x1_scale << " " << p.x2_scale << " " << p.y_scale;
  }
}

TEST_P(X86Kernels, GlobalAvgPoolRandom) {
  Rng r(6006);
  for (int i = 0; i < 300; ++i) {
    const int hw = r.chance(0.3) ? r.pick(std::vector<int>{1, 2, 16, 64}) : r.uniform(1, 1600);
    const int c = r.pick(kChannels);
    std::vector<int8_t> x(static_cast<size_t>(hw) * c);
    const int mode = r.uniform(0, 2);
    for (auto& v : x)
      v = mode == 0   ? r.i8()
          : mode == 1 ? (r.chance(0.5) ? -128 : 127)
                      : static_cast<int8_t>(r.uniform(-2, 2));
    std::vector<int8_t> want(static_cast<size_t>(c));
    ref::global_avg_pool_s8(hw, c, x.data(), want.data());
    GuardedInput<int8_t> gx(x);
    Guarded y(static_cast<size_t>(c));
    table_->global_avg_pool(hw, c, gx.get(), y.as<int8_t>());
    ASSERT_TRUE(y.sentinel_intact());
    ASSERT_EQ(0, std::memcmp(y.as<int8_t>(), want.data(), static_cast<size_t>(c)))
        << "case " << i << " hw " << hw << " c " << c;
  }
}

TEST_P(X86Kernels, PoolRandom) {
  Rng r(7007);
  for (int i = 0; i < 200; ++i) {
    PoolParams p;
    p.kh = r.uniform(1, 4);
    p.kw = r.uniform(1, 4);
    p.stride_h = r.uniform(1, 3);
    p.stride_w = r.uniform(1, 3);
    p.in_h = r.uniform(p.kh, 20);
    p.in_w = r.uniform(p.kw, 20);
    p.pad_top = r.uniform(0, p.kh - 1);
    p.pad_left = r.uniform(0, p.kw - 1);
    p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, r.uniform(0, p.kh - 1));
    p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, r.uniform(0, p.kw - 1));
    p.c = r.pick(kChannels);
    p.act_min = r.uniform(-128, 0);
    p.act_max = r.uniform(0, 127);
    std::vector<int8_t> x(static_cast<size_t>(p.in_h) * p.in_w * p.c);
    for (auto& v : x) v = r.i8();
    const size_t n_y = static_cast<size_t>(p.out_h) * p.out_w * p.c;
    for (int avg = 0; avg < 2; ++avg) {
      std::vector<int8_t> want(n_y);
      (avg ? ref::avg_pool2d_s8 : ref::max_pool2d_s8)(p, x.data(), want.data());
      GuardedInput<int8_t> gx(x);
      Guarded y(n_y);
      (avg ? table_->avg_pool2d : table_->max_pool2d)(p, gx.get(), y.as<int8_t>());
      ASSERT_TRUE(y.sentinel_intact());
      ASSERT_EQ(0, std::memcmp(y.as<int8_t>(), want.data(), n_y)) << "case " << i << (avg ? " avg" : " max");
    }
  }
}

TEST_P(X86Kernels, LinearF32Random) {
  Rng r(8008);
  for (int i = 0; i < 300; ++i) {
    LinearF32Params p;
    p.in_features = r.chance(0.2) ? 160 : r.uniform(1, 300);
    p.out_features = r.chance(0.2) ? r.pick(std::vector<int>{10, 1000}) : r.uniform(1, 40);
    p.x_zero = r.uniform(-128, 127);
    p.x_scale = r.uniform_f(0.001f, 0.1f);
    std::vector<int8_t> x(static_cast<size_t>(p.in_features));
    for (auto& v : x) v = r.i8();
    std::vector<float> w(static_cast<size_t>(p.in_features) * p.out_features),
        b(static_cast<size_t>(p.out_features));
    std::normal_distribution<float> nd(0.f, 0.3f);
    std::mt19937 g(static_cast<uint32_t>(i));
    for (auto& v : w) v = nd(g);
    for (auto& v : b) v = nd(g);
    std::vector<float> want(b.size());
    ref::linear_f32(p, x.data(), w.data(), b.data(), want.data());
    GuardedInput<int8_t> gx(x);
    GuardedInput<float> gw(w), gb(b);
    Guarded y(b.size() * 4);
    table_->linear_f32(p, gx.get(), gw.get(), gb.get(), y.as<float>());
    ASSERT_TRUE(y.sentinel_intact());
    ASSERT_EQ(0, std::memcmp(y.as<float>(), want.data(), b.size() * 4))
        << "case " << i << " in " << p.in_features << " out " << p.out_features;
  }
}

INSTANTIATE_TEST_SUITE_P(Tables, X86Kernels, ::testing::Values("portable", "avx2", "avx512vnni"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

TEST(X86Dispatch, FindTable) {
  EXPECT_EQ(&ref::table(), x86::find_table("ref"));
  EXPECT_EQ(&x86::portable_table(), x86::find_table("portable"));
  EXPECT_EQ(nullptr, x86::find_table("bogus"));
  EXPECT_EQ(nullptr, x86::find_table(nullptr));
  const x86::CpuFeatures f = x86::cpu_features();
  EXPECT_EQ(f.avx2, x86::find_table("avx2") != nullptr);
  EXPECT_EQ(f.avx512vnni, x86::find_table("avx512vnni") != nullptr);
  std::printf(
      "[ INFO     ] CPU: avx2=%d avx512f=%d avx512bw=%d avx512vl=%d avx512vnni=%d; fastest table: %s\n",
      f.avx2, f.avx512f, f.avx512bw, f.avx512vl, f.avx512vnni, x86::fastest_table().name);
}

TEST(X86Dispatch, BestKernelsIsSupported) {
  const KernelTable& best = best_kernels();
  EXPECT_TRUE(x86::table_supported(best)) << best.name;
  EXPECT_EQ(&best, &best_kernels());  // cached
  const char* env = std::getenv("TINYZO_KERNELS");
  if (env == nullptr || x86::find_table(env) == nullptr) {
    EXPECT_EQ(&x86::fastest_table(), &best);
  } else {
    EXPECT_EQ(x86::find_table(env), &best);
  }
}

}  // namespace
}  // namespace tinyzo
