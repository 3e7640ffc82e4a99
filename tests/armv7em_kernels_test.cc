// The armv7em-dsp kernel table (src/kernels/armv7em/) against ref:: bit for bit, on the host: the
// same source as on the Cortex-M, with the DSP instructions replaced by exact C models
// (acle_compat.h; the models themselves are checked against hand-computed values here, and the
// instructions run for real in the firmware's kernel self-test under QEMU, docs/mcu.md). Random
// shapes, strides, paddings, odd channel counts and zero points with fixed seeds, and every conv
// layer of MCUNet-5fps. Inputs end exactly at a PROT_NONE page, so reading one byte past any input
// faults; outputs are guarded on both sides.
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

#include "kernels/armv7em/acle_compat.h"
#include "kernels/armv7em/armv7em.h"
#include "tinyzo/kernels/kernels.h"

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

// Limits the reference's work per case.
constexpr double kMaxMacs = 3e6;

const KernelTable& dsp_table() { return armv7em::table(); }

TEST(Armv7emAcle, ModelsMatchTheInstructions) {
  // SXTB16: bytes 0 and 2, sign-extended; with ROR #8, bytes 1 and 3.
  EXPECT_EQ(0xFF800001u, armv7em::dsp::sxtb16(0x7F80FF01u));
  EXPECT_EQ(0x007FFFFFu, armv7em::dsp::sxtb16_ror8(0x7F80FF01u));
  EXPECT_EQ(0x00000000u, armv7em::dsp::sxtb16(0xFF00FF00u));
  EXPECT_EQ(0xFFFFFFFFu, armv7em::dsp::sxtb16_ror8(0xFF00FF00u));
  // SMLAD: acc + lo*lo + hi*hi, wrapping modulo 2^32 (the instruction only sets Q).
  EXPECT_EQ(10 + 3 * -4 + -5 * 6,
            armv7em::dsp::smlad(armv7em::dsp::pack16(3, -5), armv7em::dsp::pack16(-4, 6), 10));
  EXPECT_EQ(INT32_MIN, armv7em::dsp::smlad(armv7em::dsp::pack16(-32768, -32768),
                                           armv7em::dsp::pack16(-32768, -32768), 0));  // 2^31 wraps
  EXPECT_EQ(INT32_MIN,
            armv7em::dsp::smlad(armv7em::dsp::pack16(1, 0), armv7em::dsp::pack16(1, 0), INT32_MAX));
  // SMLABB / SMLATT: one product of the low or high halves.
  EXPECT_EQ(7 + 3 * -4, armv7em::dsp::smlabb(armv7em::dsp::pack16(3, 100), armv7em::dsp::pack16(-4, 100), 7));
  EXPECT_EQ(7 + -5 * 6, armv7em::dsp::smlatt(armv7em::dsp::pack16(100, -5), armv7em::dsp::pack16(100, 6), 7));
  // SADD16: lane-wise, each lane modulo 2^16.
  EXPECT_EQ(armv7em::dsp::pack16(-32768, 3),
            armv7em::dsp::sadd16(armv7em::dsp::pack16(32767, 1), armv7em::dsp::pack16(1, 2)));
  const int8_t bytes[7] = {1, -2, 3, -4, 5, -6, 7};
  EXPECT_EQ(0x05FC03FEu, armv7em::dsp::load_u32(bytes + 1));  // unaligned, little-endian
}

TEST(Armv7emTable, Entries) {
  const KernelTable& t = dsp_table();
  EXPECT_STREQ("armv7em-dsp", t.name);
  EXPECT_EQ(&armv7em::conv2d_s8, t.conv2d);
  EXPECT_EQ(&armv7em::depthwise_conv2d_s8, t.depthwise_conv2d);
  EXPECT_EQ(&armv7em::pointwise_conv2d_s8, t.pointwise_conv2d);
  EXPECT_EQ(&ref::add_s8, t.add);
  EXPECT_EQ(&ref::global_avg_pool_s8, t.global_avg_pool);
  EXPECT_EQ(&ref::max_pool2d_s8, t.max_pool2d);
  EXPECT_EQ(&ref::avg_pool2d_s8, t.avg_pool2d);
  EXPECT_EQ(&ref::linear_f32, t.linear_f32);
  // The host never picks the DSP table (it is chosen at compile time for DSP targets only).
  EXPECT_NE(&dsp_table(), &best_kernels());
}

TEST(Armv7emKernels, PointwiseRandom) {
  Rng r(1101);
  int done = 0;
  while (done < 800) {
    ConvCase c;
    ConvParams& p = c.p;
    p.in_h = p.out_h = r.uniform(1, 24);
    p.in_w = p.out_w = r.uniform(1, 24);
    if (r.chance(0.3)) p.in_h = p.out_h = 1;
    p.in_c = r.chance(0.3) ? r.uniform(1, 13) : r.pick(kChannels);
    p.out_c = r.chance(0.3) ? r.uniform(1, 9) : r.pick(kChannels);
    if (double(p.in_h) * p.in_w * p.in_c * p.out_c > kMaxMacs) continue;
    c.mode = random_mode(r);
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(dsp_table().pointwise_conv2d, ref::pointwise_conv2d_s8, c)) << "case " << done;
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
    p.in_h = r.uniform(1, 30);
    p.in_w = r.uniform(1, 30);
    p.pad_top = r.uniform(0, p.kh - 1);
    p.pad_left = r.uniform(0, p.kw - 1);
    const int pb = r.uniform(0, p.kh - 1), pr = r.uniform(0, p.kw - 1);
    if (p.in_h + p.pad_top + pb < p.kh || p.in_w + p.pad_left + pr < p.kw) continue;
    p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, pb);
    p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, pr);
    break;
  }
  p.in_c = p.out_c = p.groups = r.chance(0.3) ? r.uniform(1, 13) : r.pick(kChannels);
}

TEST(Armv7emKernels, DepthwiseRandom) {
  Rng r(2102);
  int done = 0;
  while (done < 800) {
    ConvCase c;
    random_depthwise(r, c);
    const ConvParams& p = c.p;
    if (double(p.out_h) * p.out_w * p.out_c * p.kh * p.kw > kMaxMacs) continue;
    c.mode = random_mode(r);
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(dsp_table().depthwise_conv2d, ref::depthwise_conv2d_s8, c)) << "case " << done;
    ++done;
  }
}

TEST(Armv7emKernels, DepthwiseLargeKernels) {
  // 7x7 is the largest packed kernel (49 taps); 1x49 and 49x1 too; beyond: the exact ref fallback.
  Rng r(2104);
  const std::vector<std::pair<int, int>> kernels = {{7, 7}, {1, 49}, {49, 1}, {8, 7},
                                                    {9, 9}, {11, 3}, {13, 13}};
  for (auto [kh, kw] : kernels) {
    ConvCase c;
    ConvParams& p = c.p;
    p.kh = kh, p.kw = kw;
    p.stride_h = p.stride_w = r.uniform(1, 2);
    p.in_h = r.uniform(kh, kh + 6);
    p.in_w = r.uniform(kw, kw + 6);
    p.pad_top = kh / 2, p.pad_left = kw / 2;
    p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, kh / 2);
    p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, kw / 2);
    p.in_c = p.out_c = p.groups = r.pick(std::vector<int>{5, 16, 33});
    c.mode = r.chance(0.5) ? Mode::kExtreme : Mode::kRealistic;
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(dsp_table().depthwise_conv2d, ref::depthwise_conv2d_s8, c))
        << "k " << kh << "x" << kw;
  }
}

TEST(Armv7emKernels, ConvRandom) {
  Rng r(3103);
  int done = 0;
  const std::vector<int> ci_list = {1, 2, 3, 4, 5, 8, 15, 16, 17, 24, 32, 33, 64, 129};
  while (done < 600) {
    ConvCase c;
    ConvParams& p = c.p;
    p.kh = r.uniform(1, 7);
    p.kw = r.chance(0.7) ? p.kh : r.uniform(1, 7);
    p.stride_h = r.uniform(1, 3);
    p.stride_w = r.chance(0.8) ? p.stride_h : r.uniform(1, 3);
    p.in_h = r.uniform(1, 30);
    p.in_w = r.uniform(1, 30);
    p.pad_top = r.uniform(0, p.kh - 1);
    p.pad_left = r.uniform(0, p.kw - 1);
    const int pb = r.uniform(0, p.kh - 1), pr = r.uniform(0, p.kw - 1);
    if (p.in_h + p.pad_top + pb < p.kh || p.in_w + p.pad_left + pr < p.kw) continue;
    p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, pb);
    p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, pr);
    // Mostly reductions the staged path takes (K <= 96), some beyond it (the ref fallback).
    p.in_c = r.chance(0.7) ? r.uniform(1, std::max(1, 96 / (p.kh * p.kw))) : r.pick(ci_list);
    p.out_c = r.chance(0.3) ? r.uniform(1, 9) : r.pick(kChannels);
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
    ASSERT_TRUE(check_conv(dsp_table().conv2d, ref::conv2d_s8, c)) << "case " << done;
    ++done;
  }
}

TEST(Armv7emKernels, ConvReductionLimits) {
  // K = kh*kw*C_in/groups around the staging limit (96): 93..96 staged, 97+ the ref fallback.
  Rng r(3104);
  for (int k_ci : {31, 32, 33, 40, 100}) {
    ConvCase c;
    ConvParams& p = c.p;
    p.kh = 3, p.kw = 1;
    p.in_h = r.uniform(3, 7), p.in_w = r.uniform(1, 7);
    p.pad_top = 1;
    p.out_h = p.in_h, p.out_w = p.in_w;
    p.in_c = k_ci;
    p.out_c = r.uniform(1, 20);
    c.mode = Mode::kRealistic;
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(dsp_table().conv2d, ref::conv2d_s8, c)) << "C_in " << k_ci;
  }
}

TEST(Armv7emKernels, ZeroPointOutsideInt8) {
  // The contract keeps zero points in int8; outside it the kernels must still be exact.
  Rng r(3105);
  for (int32_t z : {-40000, -1000, -200, 200, 1000, 32639, 32640, 40000}) {
    ConvCase c;
    ConvParams& p = c.p;
    p.in_h = p.out_h = r.uniform(1, 9);
    p.in_w = p.out_w = r.uniform(1, 9);
    p.in_c = r.pick(kChannels);
    p.out_c = r.pick(kChannels);
    fill_conv(r, c);
    p.x_zero = z;
    ASSERT_TRUE(check_conv(dsp_table().pointwise_conv2d, ref::pointwise_conv2d_s8, c)) << "z " << z;
    ConvCase g;
    g.p.kh = g.p.kw = 3;
    g.p.in_h = g.p.out_h = r.uniform(1, 9);
    g.p.in_w = g.p.out_w = r.uniform(1, 9);
    g.p.pad_top = g.p.pad_left = 1;
    g.p.in_c = r.uniform(1, 10);
    g.p.out_c = r.uniform(1, 20);
    fill_conv(r, g);
    g.p.x_zero = z;
    ASSERT_TRUE(check_conv(dsp_table().conv2d, ref::conv2d_s8, g)) << "z " << z;
    ConvCase d;
    random_depthwise(r, d);
    fill_conv(r, d);
    d.p.x_zero = z;
    ASSERT_TRUE(check_conv(dsp_table().depthwise_conv2d, ref::depthwise_conv2d_s8, d)) << "z " << z;
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

TEST(Armv7emKernels, McunetLayers) {
  Rng r(4104);
  for (size_t i = 0; i < kMcunet.size(); ++i) {
    for (Mode mode : {Mode::kRealistic, Mode::kTies, Mode::kExtreme}) {
      ConvCase c;
      c.p = layer_params(kMcunet[i]);
      c.mode = mode;
      fill_conv(r, c);
      const ConvParams& p = c.p;
      if (p.groups > 1) {
        ASSERT_TRUE(check_conv(dsp_table().depthwise_conv2d, ref::depthwise_conv2d_s8, c)) << "layer " << i;
      } else if (p.kh == 1) {
        ASSERT_TRUE(check_conv(dsp_table().pointwise_conv2d, ref::pointwise_conv2d_s8, c)) << "layer " << i;
      }
      ASSERT_TRUE(check_conv(dsp_table().conv2d, ref::conv2d_s8, c)) << "layer " << i << " via conv2d";
    }
  }
}

}  // namespace
}  // namespace tinyzo
