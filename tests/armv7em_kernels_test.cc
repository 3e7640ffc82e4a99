// The armv7em-dsp kernel table (src/kernels/armv7em/) against ref:: bit for bit, on the host: the
// same source as on the Cortex-M, with the DSP instructions replaced by exact C models
// (acle_compat.h; the models themselves are checked against hand-computed values here, and the
// instructions run for real in the firmware's kernel self-test under QEMU, docs/mcu.md). Random
// shapes, strides, paddings, odd channel counts and zero points with fixed seeds, and every conv
// layer of MCUNet-5fps. Inputs end exactly at a PROT_NONE page, so reading one byte past any input
// faults; outputs are guarded on both sides (the shared machinery: kernel_test_support.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kernel_test_support.h"
#include "kernels/armv7em/acle_compat.h"
#include "kernels/armv7em/armv7em.h"
#include "kernels/armv7em/requant_dsp.h"
#include "tinyzo/kernels/kernels.h"

namespace tinyzo {
namespace {

using namespace kernel_test;  // NOLINT(build/namespaces): the shared test machinery

// Random shapes up to 30x30 (pointwise 24x24), with many small channel counts (the 4-channel
// blocks' remainders) and general convs mostly within the staging limit (K <= 96; the rest take
// the ref fallback); the reference's work limited per case.
constexpr RandomShapes kShapes = {30, true, armv7em::kConvMaxReduction, 3e6};
constexpr RandomShapes kPointwiseShapes = {24, true, armv7em::kConvMaxReduction, 3e6};

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

TEST(Armv7emAcle, VcvtrModel) {
  // VCVTR.S32.F32 in the RN mode: ties to even, saturation at the int32 range, NaN -> 0.
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<std::pair<float, int32_t>> cases = {{0.5f, 0},
                                                        {1.5f, 2},
                                                        {2.5f, 2},
                                                        {-0.5f, 0},
                                                        {-1.5f, -2},
                                                        {-2.5f, -2},
                                                        {0.49999997f, 0},
                                                        {-0.50000006f, -1},
                                                        {8388607.5f, 8388608},
                                                        {8388606.5f, 8388606},
                                                        {8388609.f, 8388609},
                                                        {-8388607.5f, -8388608},
                                                        {1073741824.f, 1073741824},
                                                        {2147483520.f, 2147483520},
                                                        {2147483648.f, INT32_MAX},
                                                        {-2147483648.f, INT32_MIN},
                                                        {-2147483904.f, INT32_MIN},
                                                        {inf, INT32_MAX},
                                                        {-inf, INT32_MIN},
                                                        {nan, 0},
                                                        {-nan, 0},
                                                        {1e-40f, 0},
                                                        {-0.f, 0}};
  for (auto [v, want] : cases) EXPECT_EQ(want, armv7em::dsp::vcvtr_s32_f32(v)) << v;
}

// One requantization input: requantize()'s arguments.
struct RequantInput {
  int32_t acc, bias;
  float mult, y_scale;
  int32_t y_zero, lo, hi;
};

// Random and adversarial requantization inputs: realistic, exact ties and their float neighbours,
// values around 2^23, 2^30 and 2^31, saturating accumulators and biases, huge and tiny scales,
// infinities and NaN, zero points and clamp bounds far outside int8, lo > hi.
RequantInput random_requant_input(Rng& r) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  RequantInput in{
      r.uniform(-100000, 100000), r.uniform(-20000, 20000), 1.f, 1.f, r.uniform(-128, 127), -128, 127};
  switch (r.uniform(0, 7)) {
    case 0:  // realistic
      in.y_scale = r.uniform_f(0.005f, 0.2f);
      in.mult = in.y_scale * r.uniform_f(1e-5f, 1e-2f);
      break;
    case 1:  // exact ties: a half-integer times a power of two, over a power of two
      in.acc = r.uniform(-5000, 5000), in.bias = r.uniform(-40, 40);
      in.mult = std::ldexp(1.f, -r.uniform(0, 4));
      in.y_scale = std::ldexp(1.f, r.uniform(-2, 2));
      break;
    case 2: {  // near ties: the float neighbours of a tie multiplier
      in.acc = r.uniform(-5000, 5000), in.bias = r.uniform(-40, 40);
      const float m = std::ldexp(1.f, -r.uniform(1, 4));
      in.mult = r.chance(0.5) ? std::nextafter(m, 0.f) : std::nextafter(m, 1.f);
      break;
    }
    case 3: {  // |v| around 2^23, 2^30, 2^31 and beyond, exactly representable or not
      const int e = r.pick(std::vector<int>{22, 23, 24, 29, 30, 31});
      in.acc = static_cast<int32_t>(std::min(2147483647.0, std::ldexp(1.0, e) + r.uniform(-300, 300))) *
               (r.chance(0.5) ? 1 : -1);
      in.bias = r.uniform(-3, 3);
      in.mult = r.chance(0.5) ? 1.f : r.pick(std::vector<float>{0.5f, 2.f, 1.5f, 0.75f});
      break;
    }
    case 4:  // saturating: extreme accumulators, biases and scales
      in.acc = r.pick(std::vector<int32_t>{INT32_MIN, INT32_MAX, -INT32_MAX, 1 << 30, -(1 << 30)});
      in.bias = r.chance(0.5) ? INT32_MAX : r.uniform(-1000000, 1000000);
      in.mult = (r.chance(0.5) ? 1.f : -1.f) * std::ldexp(1.f, r.uniform(-30, 100));
      in.y_scale = std::ldexp(1.f, r.uniform(-100, 30));
      break;
    case 5: {  // NaN and infinities from the parameters
      const std::vector<float> odd = {0.f, -0.f, inf, -inf, nan, 1e-40f, 3e38f, -1e-3f, 1e-3f};
      in.mult = r.pick(odd);
      in.y_scale = r.pick(odd);
      break;
    }
    case 6:  // zero points and bounds beyond the clamp form's 2^29, and lo > hi
      // requantize() adds y_zero to a rounded value in [-2^30, 2^30] in int32, so its contract
      // (and every model: zero points are int8) keeps y_zero in [-2^30, 2^30 - 1].
      in.y_scale = r.uniform_f(0.005f, 0.2f);
      in.mult = std::ldexp(1.f, r.uniform(-20, 20));
      in.y_zero = r.pick(std::vector<int32_t>{-(1 << 29), 1 << 29, (1 << 29) + 1, -(1 << 30), (1 << 30) - 1,
                                              INT32_MAX / 2, r.uniform(-1000, 1000)});
      in.lo = r.pick(std::vector<int32_t>{-128, -(1 << 29), -(1 << 29) - 1, INT32_MIN / 2, 100});
      in.hi = r.pick(std::vector<int32_t>{127, 1 << 29, (1 << 29) + 1, INT32_MAX / 2, -100});
      break;
    default:  // random bounds, often lo > hi
      in.y_scale = r.uniform_f(0.005f, 0.2f);
      in.mult = in.y_scale * r.uniform_f(1e-4f, 1e-1f);
      in.lo = r.uniform(-128, 127), in.hi = r.uniform(-128, 127);
      break;
  }
  return in;
}

TEST(Armv7emRequant, MatchesRequantize) {
  // The kernels' Requantizer (here with the C model of VCVTR) against the shared requantize().
  Rng r(9109);
  int clamp_form = 0;
  constexpr int kCases = 2000000;
  for (int i = 0; i < kCases; ++i) {
    const RequantInput in = random_requant_input(r);
    const armv7em::Requantizer rq(in.y_scale, in.y_zero, in.lo, in.hi);
    clamp_form += rq.clamp_form();
    const int8_t want = requantize(in.acc, in.bias, in.mult, in.y_scale, in.y_zero, in.lo, in.hi);
    ASSERT_EQ(int(want), int(rq(in.acc, in.bias, in.mult)))
        << "case " << i << ": acc " << in.acc << " bias " << in.bias << " mult " << in.mult << " y_scale "
        << in.y_scale << " y_zero " << in.y_zero << " act [" << in.lo << "," << in.hi << "]";
  }
  EXPECT_GT(clamp_form, kCases / 2);  // both forms are exercised
  EXPECT_LT(clamp_form, kCases);
}

TEST(Armv7emRequant, EveryTieOfSmallValues) {
  // Every v = k / 2^e for |k| <= 2^16, e in 1..3 (all ties and their neighbours), every clamp form.
  for (int e = 1; e <= 3; ++e)
    for (int32_t k = -(1 << 16); k <= (1 << 16); ++k)
      for (auto [z, lo, hi] : {std::tuple{0, -128, 127}, {-5, -5, 127}, {3, 127, -128}}) {
        const float mult = std::ldexp(1.f, -e);
        const armv7em::Requantizer rq(1.f, z, lo, hi);
        ASSERT_EQ(int(requantize(k, 0, mult, 1.f, z, lo, hi)), int(rq(k, 0, mult))) << k << " / 2^" << e;
      }
}

TEST(Armv7emRequant, FixedPointRuleMatchesRequantizeFixed) {
  // The kernels' FixedPointRule (floor form of SRDHM, per-channel mask) against the shared rule:
  // random values of every magnitude, every shift in [-31, 30], multipliers in [2^30, 2^31) and
  // the odd ones (0, INT32_MIN: the saturating case, negative), huge zero points, lo > hi.
  Rng r(9111);
  auto any32 = [&] {
    const int u = r.uniform(0, 5);
    if (u == 0) return static_cast<int32_t>(r.uniform(-1000, 1000));
    if (u == 1) return r.pick(std::vector<int32_t>{INT32_MIN, INT32_MAX, INT32_MIN + 1, -1, 0, 1});
    return static_cast<int32_t>((uint32_t(r.uniform(0, 0xFFFF)) << 16) ^ uint32_t(r.uniform(0, 0xFFFF)));
  };
  for (int i = 0; i < 2000000; ++i) {
    ConvParams p;
    const int32_t m = r.chance(0.8) ? static_cast<int32_t>((1 << 30) + r.uniform(0, (1 << 30) - 1)) : any32();
    const int32_t shift = r.uniform(-31, 30);
    p.fx_multiplier = &m;
    p.fx_shift = &shift;
    p.y_zero = r.chance(0.9) ? r.uniform(-128, 127) : any32();
    p.act_min = r.uniform(-128, 127), p.act_max = r.uniform(-128, 127);
    if (r.chance(0.7) && p.act_min > p.act_max) std::swap(p.act_min, p.act_max);
    const int32_t acc = any32(), bias = r.chance(0.5) ? any32() : 0;
    const armv7em::FixedPointRule rule(p);
    ASSERT_EQ(int(requantize_fixed(acc, bias, m, shift, p.y_zero, p.act_min, p.act_max)),
              int(rule(acc, bias, rule.channel(0))))
        << "case " << i << ": acc " << acc << " bias " << bias << " M " << m << " shift " << shift;
  }
  // Every tie: M = 2^30 (one half) and right shifts 1..4 on |acc| <= 2^14, and INT32_MIN * INT32_MIN.
  for (int32_t shift = -4; shift <= 1; ++shift)
    for (int32_t acc = -(1 << 14); acc <= (1 << 14); ++acc) {
      ConvParams p;
      const int32_t m = 1 << 30;
      p.fx_multiplier = &m;
      p.fx_shift = &shift;
      const armv7em::FixedPointRule rule(p);
      ASSERT_EQ(int(requantize_fixed(acc, 0, m, shift, 0, -128, 127)), int(rule(acc, 0, rule.channel(0))))
          << acc;
    }
  for (int32_t shift : {0, -1, -31}) {
    ConvParams p;
    const int32_t m = INT32_MIN;
    p.fx_multiplier = &m;
    p.fx_shift = &shift;
    const armv7em::FixedPointRule rule(p);
    EXPECT_EQ(int(rule(0, INT32_MIN, rule.channel(0))),
              int(requantize_fixed(0, INT32_MIN, m, shift, 0, -128, 127)));
  }
}

TEST(Armv7emRequant, FixedPointFastRuleMatchesRequantizeFixed) {
  // The fast form within its precondition (right shifts 1..31, |acc + bias| < 2^29) against the
  // shared rule: every multiplier (INT32_MIN, negative, 0 included), values up to the bound, huge
  // zero points and lo > hi; then every tie of small values; then applies() on the bound's edges.
  Rng r(9112);
  constexpr int32_t kBound = (1 << 29) - 1;
  auto any32 = [&] {
    return static_cast<int32_t>((uint32_t(r.uniform(0, 0xFFFF)) << 16) ^ uint32_t(r.uniform(0, 0xFFFF)));
  };
  for (int i = 0; i < 2000000; ++i) {
    ConvParams p;
    const int32_t m = r.chance(0.8) ? static_cast<int32_t>((1 << 30) + r.uniform(0, (1 << 30) - 1))
                                    : r.pick(std::vector<int32_t>{INT32_MIN, INT32_MAX, 0, 1, -1, any32()});
    const int32_t shift = r.chance(0.5) ? r.uniform(-31, -1) : r.uniform(-14, -6);
    p.fx_multiplier = &m;
    p.fx_shift = &shift;
    p.y_zero = r.chance(0.9) ? r.uniform(-128, 127) : any32();
    p.act_min = r.uniform(-128, 127), p.act_max = r.uniform(-128, 127);
    if (r.chance(0.7) && p.act_min > p.act_max) std::swap(p.act_min, p.act_max);
    const int u = r.uniform(0, 2);
    const int32_t x =
        u == 0 ? r.uniform(-kBound, kBound)
               : (u == 1 ? r.uniform(-100000, 100000) : r.pick(std::vector<int32_t>{-kBound, kBound}));
    const int32_t bias = r.chance(0.5) ? r.uniform(-(1 << 20), 1 << 20) : 0;
    const int32_t acc = x - bias;  // |acc + bias| = |x| < 2^29 (bias may push acc past it)
    const armv7em::FixedPointFastRule rule(p, nullptr);
    ASSERT_EQ(int(requantize_fixed(acc, bias, m, shift, p.y_zero, p.act_min, p.act_max)),
              int(rule(acc, bias, rule.channel(0))))
        << "case " << i << ": acc " << acc << " bias " << bias << " M " << m << " shift " << shift;
  }
  for (int32_t shift = -5; shift <= -1; ++shift)
    for (int32_t m : {1 << 30, INT32_MIN, -(1 << 30)})
      for (int32_t acc = -(1 << 14); acc <= (1 << 14); ++acc) {
        ConvParams p;
        p.fx_multiplier = &m;
        p.fx_shift = &shift;
        const armv7em::FixedPointFastRule rule(p, nullptr);
        ASSERT_EQ(int(requantize_fixed(acc, 3, m, shift, 0, -128, 127)), int(rule(acc, 3, rule.channel(0))))
            << acc;
      }
  // applies(): k (128 + |z|) 128 + |bias| < 2^29 for every channel, and every shift in [-31, -1].
  ConvParams p;
  p.out_c = 2;
  int32_t shifts[2] = {-1, -31};
  int32_t bias[2] = {0, 0};
  p.fx_shift = shifts;
  p.x_zero = -128;
  const int k = ((1 << 29) - 1) / (128 * 256);  // 16383: the largest k at z = -128
  EXPECT_TRUE(armv7em::FixedPointFastRule::applies(p, bias, k));
  EXPECT_FALSE(armv7em::FixedPointFastRule::applies(p, bias, k + 1));
  bias[1] = (1 << 29) - 1 - k * 128 * 256;
  EXPECT_TRUE(armv7em::FixedPointFastRule::applies(p, bias, k));
  bias[1] = -bias[1] - 1;
  EXPECT_FALSE(armv7em::FixedPointFastRule::applies(p, bias, k));
  bias[1] = 0;
  shifts[0] = 0;
  EXPECT_FALSE(armv7em::FixedPointFastRule::applies(p, bias, 1));
  shifts[0] = -32;
  EXPECT_FALSE(armv7em::FixedPointFastRule::applies(p, bias, 1));
  shifts[0] = -5;
  p.x_zero = INT32_MIN;
  EXPECT_FALSE(armv7em::FixedPointFastRule::applies(p, bias, 1));
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
  EXPECT_TRUE(check_random_pointwise(dsp_table().pointwise_conv2d, 1101, 800, kPointwiseShapes));
}

TEST(Armv7emKernels, DepthwiseRandom) {
  EXPECT_TRUE(check_random_depthwise(dsp_table().depthwise_conv2d, 2102, 800, kShapes));
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

TEST(Armv7emKernels, ConvRandom) { EXPECT_TRUE(check_random_conv(dsp_table().conv2d, 3103, 600, kShapes)); }

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
    random_depthwise(r, d, 30, true);
    fill_conv(r, d);
    d.p.x_zero = z;
    ASSERT_TRUE(check_conv(dsp_table().depthwise_conv2d, ref::depthwise_conv2d_s8, d)) << "z " << z;
  }
}

TEST(Armv7emKernels, McunetLayers) { EXPECT_TRUE(check_mcunet_layers(dsp_table(), 4104)); }

// TFLite's fixed-point requantization (ConvParams::fx_multiplier) through every entry, every mode
// of fill_fixed (kernel_test_support.h).
TEST(Armv7emKernels, PointwiseFixedPoint) {
  EXPECT_TRUE(
      check_random_pointwise(dsp_table().pointwise_conv2d, 1601, 500, kPointwiseShapes, /*fixed=*/true));
}
TEST(Armv7emKernels, DepthwiseFixedPoint) {
  EXPECT_TRUE(check_random_depthwise(dsp_table().depthwise_conv2d, 2602, 500, kShapes, /*fixed=*/true));
}
TEST(Armv7emKernels, ConvFixedPoint) {
  EXPECT_TRUE(check_random_conv(dsp_table().conv2d, 3603, 400, kShapes, /*fixed=*/true));
}
TEST(Armv7emKernels, McunetLayersFixedPoint) {
  EXPECT_TRUE(check_mcunet_layers(dsp_table(), 4605, /*fixed=*/true));
}

}  // namespace
}  // namespace tinyzo
