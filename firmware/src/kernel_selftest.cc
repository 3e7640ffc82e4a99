// `kernel-test [cases=N] [seed=S]`: the armv7em-dsp kernels against ref:: on the device itself, so
// that the real SXTB16 / SMLAD / SMLAxy / SADD16 / VCVTR instructions (not the host's C models of
// them) are checked bit for bit. First the FPSCR rounding mode (VCVTR needs RN) and the kernels'
// Requantizer against requantize() on random and adversarial inputs (ties and their neighbours,
// |v| around 2^23 / 2^30 / 2^31, saturation, NaN and infinities, lo > hi, huge zero points); then
// random conv shapes (odd channel counts, strides, paddings, zero points, tie-heavy, saturating and
// pathological requantization parameters; a third of them with TFLite's fixed-point
// requantization) and a few MCUNet-5fps layer shapes, all buffers in the arena. Prints one line per failure and "kernel-test PASS ..." or "kernel-test FAIL ...".
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "board.h"
#include "kernels/armv7em/armv7em.h"
#include "kernels/armv7em/requant_dsp.h"
#include "tinyzo/arena.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/requant.h"

namespace {

using tinyzo::ConvFn;
using tinyzo::ConvParams;

struct Rng {  // xorshift32: deterministic, no libc state
  uint32_t s;
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
  int uniform(int lo, int hi) { return lo + int(next() % uint32_t(hi - lo + 1)); }
  bool chance(int percent) { return int(next() % 100) < percent; }
  int8_t i8() { return int8_t(next() >> 24); }
};

int out_size(int in, int k, int s, int pad_a, int pad_b) { return (in + pad_a + pad_b - k) / s + 1; }

// Requantization parameters no real model has: NaN, infinities, zeros, a denormal, huge, negative.
const float kOdd[] = {
    __builtin_nanf(""), __builtin_inff(), -__builtin_inff(), 0.f, -0.f, 1e-40f, 3e38f, 1e-3f, -1e-3f, 1.f};
constexpr int kNumOdd = int(sizeof kOdd / sizeof kOdd[0]);

float pow2(int e) { return __builtin_ldexpf(1.f, e); }

// The FPSCR rounding mode, bits 23:22: 0 = RN (round to nearest even), which VCVTR and the
// reference's float arithmetic need.
uint32_t fpscr_rmode() {
#if defined(__ARM_FP)
  uint32_t v;
  __asm__ volatile("vmrs %0, fpscr" : "=r"(v));
  return (v >> 22) & 3u;
#else
  return 0;
#endif
}

// The kernels' Requantizer (VCVTR) against requantize() on n random inputs drawn like the host's
// Armv7emRequant tests, then every k / 2^e for |k| <= 2^14, e = 1..3 (all ties and neighbours).
// Returns the number of mismatches (the first few are printed).
int check_requant(Rng& r, int n) {
  int failed = 0;
  auto check = [&](int32_t acc, int32_t bias, float mult, float ys, int32_t z, int32_t lo, int32_t hi) {
    const int8_t want = tinyzo::requantize(acc, bias, mult, ys, z, lo, hi);
    const int8_t got = tinyzo::armv7em::Requantizer(ys, z, lo, hi)(acc, bias, mult);
    if (want != got && failed++ < 8)
      board_printf(
          "kernel-test: requant MISMATCH acc %ld bias %ld mult %08lx y_scale %08lx z %ld [%ld,%ld]: %d want "
          "%d\n",
          long(acc), long(bias), (unsigned long)__builtin_bit_cast(uint32_t, mult),
          (unsigned long)__builtin_bit_cast(uint32_t, ys), long(z), long(lo), long(hi), int(got), int(want));
  };
  for (int i = 0; i < n; ++i) {
    int32_t acc = r.uniform(-100000, 100000), bias = r.uniform(-20000, 20000);
    float mult = 1.f, ys = 1.f;
    int32_t z = r.uniform(-128, 127), lo = -128, hi = 127;
    switch (r.uniform(0, 7)) {
      case 0:  // realistic
        ys = float(r.uniform(5, 200)) * 1e-3f, mult = ys * float(r.uniform(1, 1000)) * 1e-5f;
        break;
      case 1:  // exact ties
        acc = r.uniform(-5000, 5000), bias = r.uniform(-40, 40);
        mult = pow2(-r.uniform(0, 4)), ys = pow2(r.uniform(-2, 2));
        break;
      case 2:  // near ties: the neighbours of a tie multiplier
        acc = r.uniform(-5000, 5000), bias = r.uniform(-40, 40);
        mult = __builtin_nextafterf(pow2(-r.uniform(1, 4)), r.chance(50) ? 0.f : 1.f);
        break;
      case 3: {  // |v| around 2^23, 2^30, 2^31
        static const int kExp[] = {22, 23, 24, 29, 30, 31};
        const int64_t m = (int64_t(1) << kExp[r.uniform(0, 5)]) + r.uniform(-300, 300);
        acc = int32_t(m > 2147483647 ? 2147483647 : m) * (r.chance(50) ? 1 : -1);
        bias = r.uniform(-3, 3);
        mult = r.chance(50) ? 1.f : 0.75f * float(r.uniform(1, 2));
        break;
      }
      case 4: {  // saturating
        static const int32_t kAcc[] = {INT32_MIN, INT32_MAX, -INT32_MAX, 1 << 30, -(1 << 30)};
        acc = kAcc[r.uniform(0, 4)];
        bias = r.chance(50) ? INT32_MAX : r.uniform(-1000000, 1000000);
        mult = (r.chance(50) ? 1.f : -1.f) * pow2(r.uniform(-30, 100)), ys = pow2(r.uniform(-100, 30));
        break;
      }
      case 5:  // NaN and infinities from the parameters
        mult = kOdd[r.uniform(0, kNumOdd - 1)], ys = kOdd[r.uniform(0, kNumOdd - 1)];
        break;
      case 6: {  // zero points and bounds beyond the clamp form, lo > hi
        static const int32_t kZ[] = {-(1 << 29),    1 << 29, (1 << 29) + 1, -(1 << 30), 1 << 30,
                                     INT32_MAX / 2, 5};
        static const int32_t kLo[] = {-128, -(1 << 29), -(1 << 29) - 1, INT32_MIN / 2, 100};
        static const int32_t kHi[] = {127, 1 << 29, (1 << 29) + 1, INT32_MAX / 2, -100};
        ys = float(r.uniform(5, 200)) * 1e-3f, mult = pow2(r.uniform(-20, 20));
        z = kZ[r.uniform(0, 6)], lo = kLo[r.uniform(0, 4)], hi = kHi[r.uniform(0, 4)];
        break;
      }
      default:  // random bounds, often lo > hi
        ys = float(r.uniform(5, 200)) * 1e-3f, mult = ys * float(r.uniform(1, 1000)) * 1e-4f;
        lo = r.uniform(-128, 127), hi = r.uniform(-128, 127);
    }
    check(acc, bias, mult, ys, z, lo, hi);
  }
  for (int e = 1; e <= 3; ++e)
    for (int32_t k = -(1 << 14); k <= (1 << 14); ++k) {
      check(k, 0, pow2(-e), 1.f, 0, -128, 127);
      check(k, 0, pow2(-e), 1.f, 3, 127, -128);
    }
  return failed;
}

enum Kind { kPointwise, kDepthwise, kConv };
const char* const kKindName[] = {"pointwise", "depthwise", "conv"};

// Fills data and requantization parameters; the shape is already in p.
void fill(Rng& r, ConvParams& p, int8_t* x, size_t n_x, int8_t* w, size_t n_w, int32_t* bias, float* mult) {
  // 0-5 realistic, 6-7 ties, 8 extreme, 9 saturating, 10 pathological requantization parameters
  const int mode = r.uniform(0, 10);
  p.x_zero = r.chance(20) ? (r.chance(50) ? -128 : 127) : r.uniform(-128, 127);
  p.y_zero = r.uniform(-128, 127);
  p.act_min = r.chance(50) ? -128 : p.y_zero;
  p.act_max = 127;
  if (mode == 10) {
    if (r.chance(50)) p.act_min = 100, p.act_max = -100;               // lo > hi
    if (r.chance(30)) p.y_zero = r.chance(50) ? 1 << 21 : -(1 << 30);  // beyond the clamp form
  }
  for (size_t i = 0; i < n_x; ++i) x[i] = mode == 8 ? (r.chance(50) ? -128 : 127) : r.i8();
  for (size_t i = 0; i < n_w; ++i)
    w[i] = mode == 8 ? (r.chance(50) ? -128 : 127) : mode >= 6 ? int8_t(r.uniform(-3, 3)) : r.i8();
  if (mode >= 6 && mode < 8)
    for (size_t i = 0; i < n_x; ++i) {  // small exact values around the zero point: exact ties
      const int v = int(p.x_zero) + r.uniform(-3, 3);
      x[i] = int8_t(v > 127 ? 127 : v < -128 ? -128 : v);
    }
  p.y_scale = mode >= 6 && mode < 8 ? float(1 << r.uniform(0, 2)) : float(r.uniform(5, 200)) * 1e-3f;
  if (mode == 10 && r.chance(50)) p.y_scale = kOdd[r.uniform(0, kNumOdd - 1)];
  for (int o = 0; o < p.out_c; ++o) {
    bias[o] =
        mode == 8 ? (r.chance(30) ? 2147483647 : r.uniform(-1000000, 1000000)) : r.uniform(-20000, 20000);
    if (mode >= 6 && mode < 8)
      mult[o] = 1.f / float(1 << r.uniform(0, 3));
    else if (mode == 10)
      mult[o] = kOdd[r.uniform(0, kNumOdd - 1)];  // NaN, infinities, zeros, huge, tiny
    else if (mode == 9)
      mult[o] = float(r.uniform(1, 1000)) * 1e3f;  // saturates at +-2^30 and at the clamp
    else
      mult[o] = float(r.uniform(1, 1000)) * 2e-6f;
  }
}

// Switches a filled case to TFLite's fixed-point requantization (ConvParams::fx_*), every third
// case: realistic multipliers and shifts, exact ties (M = 2^30, small right shifts), any shift in
// [-31, 30] (wrapping left shifts, right shifts up to 31), and the saturating INT32_MIN * INT32_MIN
// (bias INT32_MIN with the input at the zero point, M = INT32_MIN).
void fill_fixed(Rng& r, ConvParams& p, int8_t* x, size_t n_x, int32_t* bias, int32_t* fxm, int32_t* fxs) {
  const int mode = r.uniform(0, 3);
  for (int o = 0; o < p.out_c; ++o) {
    const int32_t any_m = int32_t((1u << 30) + (r.next() >> 2));
    switch (mode) {
      case 0:  // realistic
        fxm[o] = any_m, fxs[o] = r.uniform(-14, -6);
        break;
      case 1:  // ties
        fxm[o] = 1 << 30, fxs[o] = r.uniform(-4, 1);
        break;
      case 2:  // any shift
        fxm[o] = any_m, fxs[o] = r.uniform(-31, 30);
        break;
      default: {  // saturating and odd multipliers
        const int32_t odd[] = {0, INT32_MIN, INT32_MAX, 1, -1, any_m};
        fxm[o] = odd[r.uniform(0, 5)], fxs[o] = r.chance(50) ? r.uniform(-31, 30) : 0;
        if (r.chance(50)) bias[o] = INT32_MIN;
      }
    }
  }
  if (mode == 3 && r.chance(50))
    for (size_t i = 0; i < n_x; ++i) x[i] = int8_t(p.x_zero);  // acc = 0: bias reaches SRDHM as is
  p.fx_multiplier = fxm;
  p.fx_shift = fxs;
}

}  // namespace

int run_kernel_test(int argc, char** argv) {
  int cases = 2000;
  uint32_t seed = 12345;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "cases=", 6) == 0)
      cases = std::atoi(argv[i] + 6);
    else if (std::strncmp(argv[i], "seed=", 5) == 0)
      seed = uint32_t(std::strtoul(argv[i] + 5, nullptr, 0));
    else {
      board_printf("usage: kernel-test [cases=N] [seed=S]\n");
      return 1;
    }
  }
  const tinyzo::KernelTable& best = tinyzo::best_kernels();
  const tinyzo::KernelTable& dsp = tinyzo::armv7em::table();
  board_printf("kernel-test: best_kernels() = %s; %d random cases + MCUNet shapes, seed %u\n", best.name,
               cases, unsigned(seed));
  Rng rq_rng{seed ? seed : 1};
  const uint32_t rmode = fpscr_rmode();
  const int rq_cases = 200000;
  const int rq_failed = check_requant(rq_rng, rq_cases);
  board_printf(
      "kernel-test: FPSCR.RMode %u (%s); requantization %d random + 196,614 tie cases, %d mismatches\n",
      unsigned(rmode), rmode == 0 ? "RN" : "NOT RN", rq_cases, rq_failed);
  tinyzo::Arena arena(__arena_start__, size_t(__arena_end__ - __arena_start__));
  // Buffers, reused by every case (sizes bound the shapes drawn below).
  constexpr size_t kMaxX = 40 * 1024, kMaxW = 96 * 1024, kMaxY = 40 * 1024, kMaxC = 640;
  int8_t* x = arena.allocate_array<int8_t>(kMaxX).data();
  int8_t* w = arena.allocate_array<int8_t>(kMaxW).data();
  int8_t* y_ref = arena.allocate_array<int8_t>(kMaxY).data();
  int8_t* y_dsp = arena.allocate_array<int8_t>(kMaxY).data();
  int32_t* bias = arena.allocate_array<int32_t>(kMaxC).data();
  float* mult = arena.allocate_array<float>(kMaxC).data();
  int32_t* fxm = arena.allocate_array<int32_t>(kMaxC).data();
  int32_t* fxs = arena.allocate_array<int32_t>(kMaxC).data();
  if (!x || !w || !y_ref || !y_dsp || !bias || !mult || !fxm || !fxs) {
    board_printf("kernel-test FAIL: arena too small for the test buffers\n");
    return 2;
  }
  // MCUNet-5fps layers (in_hw, in_c, out_hw, out_c, k, stride, groups), padding k / 2.
  static const int16_t kLayers[][7] = {{32, 3, 16, 16, 3, 2, 1},    {16, 16, 16, 16, 3, 1, 16},
                                       {16, 16, 16, 8, 1, 1, 1},    {16, 48, 8, 48, 7, 2, 48},
                                       {8, 160, 8, 160, 7, 1, 160}, {8, 160, 8, 48, 1, 1, 1},
                                       {4, 384, 4, 384, 5, 1, 384}, {4, 96, 4, 576, 1, 1, 1},
                                       {4, 576, 4, 576, 3, 1, 576}, {4, 576, 4, 160, 1, 1, 1}};
  const int n_layers = int(sizeof kLayers / sizeof kLayers[0]);
  Rng r{seed ? seed : 1};
  int failed = rq_failed + (rmode != 0);
  int n_fixed = 0;
  long long macs = 0;
  for (int n = 0; n < cases + n_layers; ++n) {
    ConvParams p;
    Kind kind;
    if (n < n_layers) {
      const int16_t* l = kLayers[n];
      p.in_h = p.in_w = l[0], p.in_c = l[1], p.out_h = p.out_w = l[2], p.out_c = l[3];
      p.kh = p.kw = l[4], p.stride_h = p.stride_w = l[5], p.groups = l[6];
      p.pad_top = p.pad_left = l[4] / 2;
      kind = p.groups > 1 ? kDepthwise : p.kh == 1 ? kPointwise : kConv;
    } else {
      kind = Kind(r.uniform(0, 2));
      const int k_max = kind == kPointwise ? 1 : 7;
      p.kh = r.uniform(1, k_max);
      p.kw = r.chance(70) ? p.kh : r.uniform(1, k_max);
      p.stride_h = kind == kPointwise ? 1 : r.uniform(1, 3);
      p.stride_w = kind == kPointwise ? 1 : (r.chance(80) ? p.stride_h : r.uniform(1, 3));
      p.in_h = r.uniform(1, 20), p.in_w = r.uniform(1, 20);
      int pb = 0, pr = 0;
      if (kind != kPointwise) {
        p.pad_top = r.uniform(0, p.kh - 1), p.pad_left = r.uniform(0, p.kw - 1);
        pb = r.uniform(0, p.kh - 1), pr = r.uniform(0, p.kw - 1);
        if (p.in_h + p.pad_top + pb < p.kh || p.in_w + p.pad_left + pr < p.kw) {
          --n;
          continue;
        }
      }
      p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, pb);
      p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, pr);
      const int c = r.chance(50) ? r.uniform(1, 13) : r.uniform(1, 200);
      if (kind == kDepthwise) {
        p.in_c = p.out_c = p.groups = c;
      } else {
        p.in_c = kind == kConv ? r.uniform(1, 12) : c;
        p.out_c = r.chance(50) ? r.uniform(1, 9) : r.uniform(1, 100);
        if (kind == kConv && r.chance(20) && p.in_c % 2 == 0 && p.out_c % 2 == 0) p.groups = 2;
      }
    }
    const size_t n_x = size_t(p.in_h) * p.in_w * p.in_c;
    const size_t n_w = size_t(p.out_c) * p.kh * p.kw * (p.in_c / p.groups);
    const size_t n_y = size_t(p.out_h) * p.out_w * p.out_c;
    if (n_x > kMaxX || n_w > kMaxW || n_y > kMaxY || size_t(p.out_c) > kMaxC) {
      if (n < n_layers)
        board_printf("kernel-test: layer %d does not fit the buffers\n", n), ++failed;
      else
        --n;
      continue;
    }
    fill(r, p, x, n_x, w, n_w, bias, mult);
    const bool fixed = n % 3 == 2;  // a third of the cases (and of the MCUNet layers): fixed-point
    if (fixed) fill_fixed(r, p, x, n_x, bias, fxm, fxs), ++n_fixed;
    const ConvFn ref_fn = kind == kPointwise   ? tinyzo::ref::pointwise_conv2d_s8
                          : kind == kDepthwise ? tinyzo::ref::depthwise_conv2d_s8
                                               : tinyzo::ref::conv2d_s8;
    const ConvFn dsp_fn = kind == kPointwise   ? dsp.pointwise_conv2d
                          : kind == kDepthwise ? dsp.depthwise_conv2d
                                               : dsp.conv2d;
    ref_fn(p, x, w, bias, mult, y_ref);
    std::memset(y_dsp, 0x5a, n_y);
    dsp_fn(p, x, w, bias, mult, y_dsp);
    // Every shape through the general entry point too (it forwards depthwise and pointwise shapes).
    bool ok = std::memcmp(y_ref, y_dsp, n_y) == 0;
    if (ok) {
      std::memset(y_dsp, 0x5a, n_y);
      dsp.conv2d(p, x, w, bias, mult, y_dsp);
      ok = std::memcmp(y_ref, y_dsp, n_y) == 0;
    }
    macs += (long long)(n_y)*p.kh * p.kw * (p.in_c / p.groups);
    if (!ok) {
      ++failed;
      board_printf(
          "kernel-test: case %d %s%s MISMATCH: in %dx%dx%d out %dx%dx%d k %dx%d s %d,%d pad %d,%d g %d zx %d\n",
          n, kKindName[kind], fixed ? " fixed-point" : "", p.in_h, p.in_w, p.in_c, p.out_h, p.out_w, p.out_c, p.kh,
          p.kw, p.stride_h, p.stride_w, p.pad_top, p.pad_left, p.groups, int(p.x_zero));
    }
  }
  board_printf("kernel-test %s: %d cases (%d fixed-point), %d mismatches, %u MMAC compared (%s vs ref)\n",
               failed ? "FAIL" : "PASS", cases + n_layers, n_fixed, failed, unsigned(macs / 1000000), dsp.name);
  return failed ? 2 : 0;
}
