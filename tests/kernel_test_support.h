// Test machinery shared by the optimized-kernel tests (x86_kernels_test.cc, armv7em_kernels_test.cc):
// guarded buffers, a seeded random source, random conv cases with their requantization modes, the
// bit-for-bit comparison with ref::, and the conv layers of MCUNet-5fps.
//
// Guarded memory: inputs end exactly at a PROT_NONE page, so reading one byte past an input
// faults; outputs have a guard page after and sentinel bytes before, so writing outside the output
// fails. Host only (mmap).
#pragma once
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tinyzo/kernels/kernels.h"

namespace tinyzo::kernel_test {

// n bytes ending right before an inaccessible page; kSentinel bytes before them are checked.
class Guarded {
 public:
  static constexpr size_t kSentinel = 64;
  explicit Guarded(size_t n) {
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
    if (!v.empty()) std::memcpy(data_, v.data(), v.size() * sizeof(T));  // data() may be null when empty
  }
  bool sentinel_intact() const {
    for (size_t i = 1; i <= kSentinel; ++i)
      if (data_[-static_cast<ptrdiff_t>(i)] != 0x5A) return false;
    return true;
  }

 private:
  size_t size_ = 0;
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

// Channel counts drawn by the random tests: every remainder modulo 4/16/32/64 and MCUNet's.
inline const std::vector<int> kChannels = {1,   2,   3,   4,   5,   7,   8,   15,  16, 17,  24,
                                           31,  32,  33,  40,  48,  63,  64,  65,  96, 120, 127,
                                           128, 129, 144, 160, 192, 240, 256, 384, 576};

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
inline const char* mode_name(Mode m) {
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
inline Mode random_mode(Rng& r) {
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
  bool fixed = false;  // TFLite's fixed-point rule: p.fx_* point at fx_mult / fx_shift, mult unused
  std::vector<int32_t> fx_mult, fx_shift;
  std::string describe() const {
    std::ostringstream s;
    s << "in " << p.in_h << "x" << p.in_w << "x" << p.in_c << " out " << p.out_h << "x" << p.out_w << "x"
      << p.out_c << " k " << p.kh << "x" << p.kw << " s " << p.stride_h << "," << p.stride_w << " pad "
      << p.pad_top << "," << p.pad_left << " g " << p.groups << " zx " << p.x_zero << " ys " << p.y_scale
      << " zy " << p.y_zero << " act [" << p.act_min << "," << p.act_max << "] mode " << mode_name(mode)
      << (fixed ? " fixed-point" : "");
    return s.str();
  }
};

// Output size for the given padding at the top and at the bottom (any split is allowed).
inline int out_size(int in, int k, int s, int pad_a, int pad_b) { return (in + pad_a + pad_b - k) / s + 1; }

// Draws the input size (1..max_hw each way) and a padding split (each side below the kernel) for
// the kernel and strides already in p, and sets the output size. False (p half set) when the
// padded input is smaller than the kernel: the caller draws again.
inline bool random_spatial(Rng& r, ConvParams& p, int max_hw) {
  p.in_h = r.uniform(1, max_hw);
  p.in_w = r.uniform(1, max_hw);
  p.pad_top = r.uniform(0, p.kh - 1);
  p.pad_left = r.uniform(0, p.kw - 1);
  const int pb = r.uniform(0, p.kh - 1), pr = r.uniform(0, p.kw - 1);
  if (p.in_h + p.pad_top + pb < p.kh || p.in_w + p.pad_left + pr < p.kw) return false;
  p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, pb);
  p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, pr);
  return true;
}

// Random depthwise shape: square or not, stride 1..3, any padding split, inputs up to max_hw;
// with small_channels, 30 % of the channel counts are 1..13 (every remainder of a 4-channel block).
inline void random_depthwise(Rng& r, ConvCase& c, int max_hw, bool small_channels) {
  ConvParams& p = c.p;
  const std::vector<int> ks = {1, 2, 3, 3, 3, 4, 5, 5, 7, 7};
  p.kh = r.pick(ks);
  p.kw = r.chance(0.8) ? p.kh : r.pick(ks);
  p.stride_h = r.chance(0.45) ? 1 : (r.chance(0.85) ? 2 : 3);
  p.stride_w = r.chance(0.9) ? p.stride_h : r.uniform(1, 3);
  while (!random_spatial(r, p, max_hw)) {
  }
  p.in_c = p.out_c = p.groups = small_channels && r.chance(0.3) ? r.uniform(1, 13) : r.pick(kChannels);
}

// Picks a group count for a conv whose channel counts are set: 1, or with probability 25 % a
// random common divisor of both (when there is one besides 1).
inline void random_groups(Rng& r, ConvParams& p) {
  p.groups = 1;
  if (r.chance(0.25)) {
    std::vector<int> div;
    for (int g = 2; g <= p.in_c; ++g)
      if (p.in_c % g == 0 && p.out_c % g == 0) div.push_back(g);
    if (!div.empty()) p.groups = r.pick(div);
  }
}

// Fills data and requantization parameters of c (shape already set in c.p).
inline void fill_conv(Rng& r, ConvCase& c) {
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

// TFLite's QuantizeMultiplier (frexp, round half away from zero, the 2^31 carry, tiny values to 0),
// for drawing realistic fixed-point parameters.
inline void quantize_multiplier(double m, int32_t* q, int32_t* shift) {
  if (m == 0.0) {
    *q = 0, *shift = 0;
    return;
  }
  int e = 0;
  int64_t f = static_cast<int64_t>(std::round(std::frexp(m, &e) * 2147483648.0));
  if (f == (int64_t{1} << 31)) f /= 2, ++e;
  if (e < -31) f = 0, e = 0;
  *q = static_cast<int32_t>(f), *shift = e;
}

// Switches c (filled by fill_conv) to TFLite's fixed-point rule: per-channel multipliers and
// shifts drawn by c.mode, and for some modes data or biases that reach the rule's edge cases:
//   realistic  QuantizeMultiplier of the scales a real layer has (outputs spread over int8);
//   ties       M = 2^30 (one half) and small right shifts on small exact sums: many exact halves
//              in both roundings, of either sign;
//   extreme    extreme data and biases (INT32_MAX, -INT32_MAX), any M in [2^30, 2^31), any shift
//              in [-31, 30] (left shifts wrap, right shifts up to 31);
//   large      left shifts 1..30 on large sums: the wrap of x * 2^shift;
//   pathological  M in {0, INT32_MIN, INT32_MAX, 1, -1, random}, biases INT32_MIN with x = z (the
//              saturating INT32_MIN * INT32_MIN), huge y_zero, act_min > act_max.
inline void fill_fixed(Rng& r, ConvCase& c) {
  ConvParams& p = c.p;
  c.fixed = true;
  const size_t n = static_cast<size_t>(p.out_c);
  c.fx_mult.assign(n, 0);
  c.fx_shift.assign(n, 0);
  const int k = p.kh * p.kw * (p.in_c / p.groups);
  const double acc_typ = std::sqrt(static_cast<double>(k)) * 80.0 * 74.0;
  auto any_m = [&] { return static_cast<int32_t>((int64_t{1} << 30) + r.uniform(0, (1 << 30) - 1)); };
  for (size_t o = 0; o < n; ++o) {
    int32_t& m = c.fx_mult[o];
    int32_t& sh = c.fx_shift[o];
    switch (c.mode) {
      case Mode::kRealistic:
        quantize_multiplier(120.0 / acc_typ * r.uniform_f(0.3f, 3.f), &m, &sh);
        break;
      case Mode::kTies:
        m = 1 << 30;
        sh = r.uniform(-4, 1);
        break;
      case Mode::kExtreme:
        m = any_m();
        sh = r.uniform(-31, 30);
        break;
      case Mode::kLarge:
        m = any_m();
        sh = r.uniform(1, 30);
        break;
      case Mode::kPathological:
        m = r.pick(std::vector<int32_t>{0, INT32_MIN, INT32_MAX, 1, -1, any_m(), -any_m()});
        sh = r.pick(std::vector<int32_t>{-31, -30, -1, 0, 1, 30, r.uniform(-31, 30)});
        if (r.chance(0.5)) c.bias[o] = INT32_MIN;
        break;
    }
  }
  if (c.mode == Mode::kPathological) {
    if (r.chance(0.5))  // acc = 0: bias INT32_MIN reaches SaturatingRoundingDoublingHighMul as is
      for (auto& v : c.x) v = static_cast<int8_t>(std::clamp<int32_t>(p.x_zero, -128, 127));
    if (r.chance(0.2)) p.y_zero = r.pick(std::vector<int32_t>{INT32_MIN, INT32_MAX, -1000, 1 << 21});
  }
}

// Runs fn on c (inputs and output guarded) and compares with the reference function.
inline ::testing::AssertionResult check_conv(ConvFn fn, ConvFn ref_fn, const ConvCase& c) {
  ConvParams p = c.p;
  const size_t n_y = static_cast<size_t>(p.out_h) * p.out_w * p.out_c;
  std::vector<int8_t> want(n_y);
  // The fixed-point rule must not read mult: both calls get nullptr.
  const float* ref_mult = c.fixed ? nullptr : c.mult.data();
  if (c.fixed) p.fx_multiplier = c.fx_mult.data(), p.fx_shift = c.fx_shift.data();
  ref_fn(p, c.x.data(), c.w.data(), c.bias.data(), ref_mult, want.data());
  GuardedInput<int8_t> x(c.x), w(c.w);
  GuardedInput<int32_t> bias(c.bias), fx_mult(c.fx_mult), fx_shift(c.fx_shift);
  GuardedInput<float> mult(c.mult);
  if (c.fixed) p.fx_multiplier = fx_mult.get(), p.fx_shift = fx_shift.get();
  Guarded y(n_y);
  std::memset(y.as<int8_t>(), 0x33, n_y);
  fn(p, x.get(), w.get(), bias.get(), c.fixed ? nullptr : mult.get(), y.as<int8_t>());
  if (!y.sentinel_intact())
    return ::testing::AssertionFailure() << "wrote before the output: " << c.describe();
  const int8_t* got = y.as<int8_t>();
  for (size_t i = 0; i < n_y; ++i) {
    if (got[i] != want[i]) {
      const size_t o = i % static_cast<size_t>(p.out_c);
      return ::testing::AssertionFailure() << "output " << i << " (pixel " << i / p.out_c << ", channel " << o
                                           << "): got " << int(got[i]) << " want " << int(want[i]) << " bias "
                                           << c.bias[o] << " mult " << c.mult[o]
                                           << (c.fixed ? " M " + std::to_string(c.fx_mult[o]) + " shift " +
                                                             std::to_string(c.fx_shift[o])
                                                       : std::string())
                                           << "; " << c.describe();
    }
  }
  return ::testing::AssertionSuccess();
}

// What the random shape tests draw.
struct RandomShapes {
  int max_hw;            // input height and width 1..max_hw (pointwise: also output)
  bool small_channels;   // 30 % of the channel counts 1..13 (depthwise, pointwise input), 1..9 (outputs)
  int staged_reduction;  // > 0: 70 % of the general convs have kh * kw * C_in <= this
  double max_macs;       // shapes with more MACs are drawn again (the reference is slow)
};

// n_cases random pointwise convs (modes from random_mode) through fn, against ref::. With `fixed`,
// every case uses TFLite's fixed-point rule (fill_fixed) instead of the float-scale one.
inline ::testing::AssertionResult check_random_pointwise(ConvFn fn, uint32_t seed, int n_cases,
                                                         const RandomShapes& s, bool fixed = false) {
  Rng r(seed);
  for (int done = 0; done < n_cases;) {
    ConvCase c;
    ConvParams& p = c.p;
    p.in_h = p.out_h = r.uniform(1, s.max_hw);
    p.in_w = p.out_w = r.uniform(1, s.max_hw);
    if (r.chance(0.3)) p.in_h = p.out_h = 1;
    p.in_c = s.small_channels && r.chance(0.3) ? r.uniform(1, 13) : r.pick(kChannels);
    p.out_c = s.small_channels && r.chance(0.3) ? r.uniform(1, 9) : r.pick(kChannels);
    if (double(p.in_h) * p.in_w * p.in_c * p.out_c > s.max_macs) continue;
    c.mode = random_mode(r);
    fill_conv(r, c);
    if (fixed) fill_fixed(r, c);
    ::testing::AssertionResult ok = check_conv(fn, ref::pointwise_conv2d_s8, c);
    if (!ok) return ok << " (case " << done << ")";
    ++done;
  }
  return ::testing::AssertionSuccess();
}

// n_cases random depthwise convs (random_depthwise) through fn, against ref::.
inline ::testing::AssertionResult check_random_depthwise(ConvFn fn, uint32_t seed, int n_cases,
                                                         const RandomShapes& s, bool fixed = false) {
  Rng r(seed);
  for (int done = 0; done < n_cases;) {
    ConvCase c;
    random_depthwise(r, c, s.max_hw, s.small_channels);
    const ConvParams& p = c.p;
    if (double(p.out_h) * p.out_w * p.out_c * p.kh * p.kw > s.max_macs) continue;
    c.mode = random_mode(r);
    fill_conv(r, c);
    if (fixed) fill_fixed(r, c);
    ::testing::AssertionResult ok = check_conv(fn, ref::depthwise_conv2d_s8, c);
    if (!ok) return ok << " (case " << done << ")";
    ++done;
  }
  return ::testing::AssertionSuccess();
}

// n_cases random general convs (kernels 1..7 each way, strides 1..3, any padding split, 25 %
// grouped) through fn, against ref::conv2d_s8.
inline ::testing::AssertionResult check_random_conv(ConvFn fn, uint32_t seed, int n_cases,
                                                    const RandomShapes& s, bool fixed = false) {
  Rng r(seed);
  const std::vector<int> ci_list = {1, 2, 3, 4, 5, 8, 15, 16, 17, 24, 32, 33, 64, 129};
  for (int done = 0; done < n_cases;) {
    ConvCase c;
    ConvParams& p = c.p;
    p.kh = r.uniform(1, 7);
    p.kw = r.chance(0.7) ? p.kh : r.uniform(1, 7);
    p.stride_h = r.uniform(1, 3);
    p.stride_w = r.chance(0.8) ? p.stride_h : r.uniform(1, 3);
    if (!random_spatial(r, p, s.max_hw)) continue;
    p.in_c = s.staged_reduction > 0 && r.chance(0.7)
                 ? r.uniform(1, std::max(1, s.staged_reduction / (p.kh * p.kw)))
                 : r.pick(ci_list);
    p.out_c = s.small_channels && r.chance(0.3) ? r.uniform(1, 9) : r.pick(kChannels);
    random_groups(r, p);
    const double macs = double(p.out_h) * p.out_w * p.out_c * p.kh * p.kw * (p.in_c / p.groups);
    if (macs > s.max_macs) continue;
    c.mode = random_mode(r);
    fill_conv(r, c);
    if (fixed) fill_fixed(r, c);
    ::testing::AssertionResult ok = check_conv(fn, ref::conv2d_s8, c);
    if (!ok) return ok << " (case " << done << ")";
    ++done;
  }
  return ::testing::AssertionSuccess();
}

// The conv layers of MCUNet-5fps at 128x128 (from mcunet-5fps.pkl): first conv, then per block
// pointwise1 (absent in block 0), depthwise, pointwise2. Padding is kernel // 2.
struct Layer {
  int in_hw, in_c, out_hw, out_c, k, stride, groups;
};
inline const std::vector<Layer> kMcunet = {
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

inline ConvParams layer_params(const Layer& l) {
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

// Every MCUNet-5fps conv layer, with realistic, tie-heavy and extreme data, through the table's
// specialised entry (depthwise or pointwise) and through its general conv2d.
// With `fixed`, through TFLite's fixed-point rule (fill_fixed).
inline ::testing::AssertionResult check_mcunet_layers(const KernelTable& t, uint32_t seed, bool fixed = false) {
  Rng r(seed);
  for (size_t i = 0; i < kMcunet.size(); ++i) {
    for (Mode mode : {Mode::kRealistic, Mode::kTies, Mode::kExtreme}) {
      ConvCase c;
      c.p = layer_params(kMcunet[i]);
      c.mode = mode;
      fill_conv(r, c);
      if (fixed) fill_fixed(r, c);
      const ConvParams& p = c.p;
      ::testing::AssertionResult ok = ::testing::AssertionSuccess();
      if (p.groups > 1) {
        ok = check_conv(t.depthwise_conv2d, ref::depthwise_conv2d_s8, c);
      } else if (p.kh == 1) {
        ok = check_conv(t.pointwise_conv2d, ref::pointwise_conv2d_s8, c);
      }
      if (!ok) return ok << " (layer " << i << ")";
      ok = check_conv(t.conv2d, ref::conv2d_s8, c);
      if (!ok) return ok << " (layer " << i << " via conv2d)";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace tinyzo::kernel_test
