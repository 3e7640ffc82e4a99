// The TFLite op types (docs/semantics.md, "TFLite operators"): TFLM's Prepare
// derivations (host/models/tflite_params.h) against values worked out by hand
// from TFLM's formulas, the fixed-point helpers (tfl_math.h), each reference
// kernel on hand-computed cases (ties, negatives, saturation), the engine
// wiring (a chain of every new op, batches, a float32 input) and the model
// validation of every new op.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include "models/tflite_params.h"
#include "models/tzm_writer.h"
#include "test_models.h"
#include "tinyzo/engine.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/tfl_math.h"
#include "tinyzo/kernels/x86.h"
#include "util/errors.h"
#include "kernels/armv7em/armv7em.h"

namespace tinyzo {
namespace {

using testing::TestRng;
using V8 = std::vector<int8_t>;
constexpr int32_t k2p30 = int32_t(1) << 30;

// ---- host: TFLM Prepare derivations ----

TEST(TflParamsTest, QuantizeMultiplierByHand) {
  // frexp(0.5) = 0.5 * 2^0 -> round(0.5 * 2^31) = 2^30, shift 0.
  QuantizedMultiplier m = quantize_multiplier(0.5);
  EXPECT_EQ(m.multiplier, k2p30);
  EXPECT_EQ(m.shift, 0);
  m = quantize_multiplier(1.0);  // 0.5 * 2^1
  EXPECT_EQ(m.multiplier, k2p30);
  EXPECT_EQ(m.shift, 1);
  m = quantize_multiplier(0.75);  // 0.75 * 2^31 = 1610612736
  EXPECT_EQ(m.multiplier, 1610612736);
  EXPECT_EQ(m.shift, 0);
  m = quantize_multiplier(0.0);
  EXPECT_EQ(m.multiplier, 0);
  EXPECT_EQ(m.shift, 0);
  // q * 2^31 = 2^30 + 0.5 exactly: TfLiteRound rounds half away from zero.
  m = quantize_multiplier(0.5 + std::ldexp(1.0, -32));
  EXPECT_EQ(m.multiplier, k2p30 + 1);
  EXPECT_EQ(m.shift, 0);
  // q = 1 - 2^-33 rounds to 2^31: the carry halves it and bumps the exponent (-3 -> -2).
  m = quantize_multiplier((1.0 - std::ldexp(1.0, -33)) * 0.125);
  EXPECT_EQ(m.multiplier, k2p30);
  EXPECT_EQ(m.shift, -2);
  // 2^-32 = 0.5 * 2^-31 keeps shift -31; 2^-33 (shift -32) flushes to zero.
  m = quantize_multiplier(std::ldexp(1.0, -32));
  EXPECT_EQ(m.multiplier, k2p30);
  EXPECT_EQ(m.shift, -31);
  m = quantize_multiplier(std::ldexp(1.0, -33));
  EXPECT_EQ(m.multiplier, 0);
  EXPECT_EQ(m.shift, 0);
  EXPECT_THROW(quantize_multiplier(std::nan("")), CliError);
  // Large values keep their exponent (TFLite does not check it); the ops that shift by it do.
  m = quantize_multiplier(std::ldexp(1.0, 40));
  EXPECT_EQ(m.multiplier, k2p30);
  EXPECT_EQ(m.shift, 41);
  EXPECT_THROW(tflite_requantize_params(1e12f, 1e-3f), CliError);
}

TEST(TflParamsTest, SmallerThanOneAndGreaterThanOneChecks) {
  const QuantizedMultiplier m = quantize_multiplier_smaller_than_one_exp(0.25);
  EXPECT_EQ(m.multiplier, k2p30);
  EXPECT_EQ(m.shift, -1);
  EXPECT_THROW(quantize_multiplier_smaller_than_one_exp(1.0), CliError);
  EXPECT_THROW(quantize_multiplier_smaller_than_one_exp(0.0), CliError);
  // Below 1 but rounds up to 2^31 -> shift 1 > 0: TFLM's CHECK fails.
  EXPECT_THROW(quantize_multiplier_smaller_than_one_exp(1.0 - std::ldexp(1.0, -40)), CliError);
  const QuantizedMultiplier g = quantize_multiplier_greater_than_one(3.0);  // 0.75 * 2^2
  EXPECT_EQ(g.multiplier, 1610612736);
  EXPECT_EQ(g.shift, 2);
  EXPECT_THROW(quantize_multiplier_greater_than_one(1.0), CliError);
}

TEST(TflParamsTest, ActivationRangesByHand) {
  ActivationRange r = tflite_activation_range(int(TflActivation::kNone), 0.1f, -100);
  EXPECT_EQ(r.min, -128);
  EXPECT_EQ(r.max, 127);
  r = tflite_activation_range(int(TflActivation::kRelu), 0.1f, -100);  // q(0) = zero point
  EXPECT_EQ(r.min, -100);
  EXPECT_EQ(r.max, 127);
  // 6 / 0.1f = 59.9999991 in float32 arithmetic, rounded to the float 60 -> -100 + 60.
  r = tflite_activation_range(int(TflActivation::kRelu6), 0.1f, -100);
  EXPECT_EQ(r.min, -100);
  EXPECT_EQ(r.max, -40);
  r = tflite_activation_range(int(TflActivation::kReluN1To1), 0.1f, -100);  // +-1 / 0.1 = +-10
  EXPECT_EQ(r.min, -110);
  EXPECT_EQ(r.max, -90);
  // Ties round away from zero: 6 / 12 = 0.5 -> 1; -1 / 2 = -0.5 -> -1, 1 / 2 -> 1.
  r = tflite_activation_range(int(TflActivation::kRelu6), 12.f, 0);
  EXPECT_EQ(r.min, 0);
  EXPECT_EQ(r.max, 1);
  r = tflite_activation_range(int(TflActivation::kReluN1To1), 2.f, 0);
  EXPECT_EQ(r.min, -1);
  EXPECT_EQ(r.max, 1);
  // RELU6 clipped by int8: q(6) = 6 / 0.01 = 600 -> 127.
  r = tflite_activation_range(int(TflActivation::kRelu6), 0.01f, -128);
  EXPECT_EQ(r.min, -128);
  EXPECT_EQ(r.max, 127);
  // TANH (not fusable) falls back to the full range, as in TFLM.
  r = tflite_activation_range(int(TflActivation::kTanh), 0.1f, 3);
  EXPECT_EQ(r.min, -128);
  EXPECT_EQ(r.max, 127);
  EXPECT_THROW(tflite_activation_range(int(TflActivation::kRelu), 0.f, 0), CliError);
}

TEST(TflParamsTest, WindowAxisSameAndValid) {
  // SAME, in 7, k 3, s 2: out ceil(7/2) = 4, total pad (4-1)*2 + 3 - 7 = 2 -> 1 / 1.
  WindowAxis a = tflite_window_axis(true, 7, 3, 2);
  EXPECT_EQ(a.out, 4);
  EXPECT_EQ(a.pad_before, 1);
  EXPECT_EQ(a.pad_after, 1);
  // SAME, in 96, k 3, s 2: out 48, total 47*2 + 3 - 96 = 1 -> 0 before, 1 after.
  a = tflite_window_axis(true, 96, 3, 2);
  EXPECT_EQ(a.out, 48);
  EXPECT_EQ(a.pad_before, 0);
  EXPECT_EQ(a.pad_after, 1);
  // VALID, in 7, k 3, s 2: out (7 - 3 + 2) / 2 = 3, no padding.
  a = tflite_window_axis(false, 7, 3, 2);
  EXPECT_EQ(a.out, 3);
  EXPECT_EQ(a.pad_before + a.pad_after, 0);
  // Dilation 2 makes a 3-tap filter span 5: VALID in 7 -> 3.
  EXPECT_EQ(tflite_window_axis(false, 7, 3, 1, 2).out, 3);
  EXPECT_THROW(tflite_window_axis(false, 2, 3, 1), CliError);
}

TEST(TflParamsTest, AddParamsByHand) {
  // s1 0.5, s2 0.25, sy 1: twice_max = 1; x1 0.5 -> (2^30, 0); x2 0.25 -> (2^30, -1);
  // y = 1 / (2^20 * 1) = 0.5 * 2^-19 -> (2^30, -19).
  const std::vector<int32_t> p = tflite_add_params(0.5f, 0.25f, 1.f, 0, int(TflActivation::kRelu));
  ASSERT_EQ(p.size(), size_t(kTzmMaxOpParams));
  EXPECT_EQ(p[kTflAddActMin], 0);
  EXPECT_EQ(p[kTflAddActMax], 127);
  EXPECT_EQ(p[kTflAddLeftShift], 20);
  EXPECT_EQ(p[kTflAddX1Mult], k2p30);
  EXPECT_EQ(p[kTflAddX1Shift], 0);
  EXPECT_EQ(p[kTflAddX2Mult], k2p30);
  EXPECT_EQ(p[kTflAddX2Shift], -1);
  EXPECT_EQ(p[kTflAddYMult], k2p30);
  EXPECT_EQ(p[kTflAddYShift], -19);
}

TEST(TflParamsTest, MeanParamsFoldTheCount) {
  // s_x = s_y: (2^30, 1). n = 49: k = floor(log2 49) = 5; M' = 2^35 / 49 = 701219150.37 -> 701219150;
  // shift 1 - 5 = -4.
  std::vector<int32_t> p = tflite_mean_params(0.02f, 0.02f, 49);
  EXPECT_EQ(p[kTflMeanMult], 701219150);
  EXPECT_EQ(p[kTflMeanShift], -4);
  // n = 4: k = 2, M' = 2^32 / 4 = 2^30, shift -1.
  p = tflite_mean_params(0.02f, 0.02f, 4);
  EXPECT_EQ(p[kTflMeanMult], k2p30);
  EXPECT_EQ(p[kTflMeanShift], -1);
  // A tiny ratio: shift -30 caps k at 31 + shift = 1 (n = 4 would give 2): M' = 2^31 / 4.
  const double ratio = std::ldexp(1.0, -31);  // 0.5 * 2^-30
  p = tflite_mean_params(float(ratio), 1.f, 4);
  EXPECT_EQ(p[kTflMeanMult], int32_t((int64_t(k2p30) << 1) / 4));
  EXPECT_EQ(p[kTflMeanShift], -31);
  EXPECT_THROW(tflite_mean_params(1.f, 1.f, 0), CliError);
}

TEST(TflParamsTest, SoftmaxParamsByHand) {
  // beta 1, s_x 1/16: 2^-4 * 2^26 = 2^22 = 0.5 * 2^23 -> (2^30, 23); diff_min = -floor(31 * 2^26 / 2^23) = -248.
  std::vector<int32_t> p = tflite_softmax_params(1.f, 0.0625f, 1.f / 256, -128);
  EXPECT_EQ(p[kTflSoftmaxMult], k2p30);
  EXPECT_EQ(p[kTflSoftmaxLeftShift], 23);
  EXPECT_EQ(p[kTflSoftmaxDiffMin], -248);
  // s_x = 0.1f = 0.100000001490116...: * 2^26 = 6710886.5 exactly; / 2^23 = 0.80000001...;
  // * 2^31 = 1717986944 exactly (= 6710886.5 * 2^8).
  p = tflite_softmax_params(1.f, 0.1f, 1.f / 256, -128);
  EXPECT_EQ(p[kTflSoftmaxMult], 1717986944);
  EXPECT_EQ(p[kTflSoftmaxLeftShift], 23);
  EXPECT_EQ(p[kTflSoftmaxDiffMin], -248);
  // A huge scale caps the real multiplier at 2^31 - 1: frexp exponent 31, q * 2^31 = 2^31 - 1 exactly.
  p = tflite_softmax_params(1.f, 1000.f, 1.f / 256, -128);
  EXPECT_EQ(p[kTflSoftmaxMult], std::numeric_limits<int32_t>::max());
  EXPECT_EQ(p[kTflSoftmaxLeftShift], 31);
  EXPECT_EQ(p[kTflSoftmaxDiffMin], 0);  // floor(31 * 2^26 / 2^31) = floor(0.97)
  EXPECT_THROW(tflite_softmax_params(1.f, 0.1f, 1.f / 128, -128), CliError);
  EXPECT_THROW(tflite_softmax_params(1.f, 0.1f, 1.f / 256, 0), CliError);
  // beta * s_x * 2^26 <= 1: QuantizeMultiplierGreaterThanOne's CHECK fails.
  EXPECT_THROW(tflite_softmax_params(1.f, 1e-9f, 1.f / 256, -128), CliError);
}

TEST(TflParamsTest, RequantizePadTransposeParams) {
  std::vector<int32_t> p = tflite_requantize_params(0.5f, 0.25f);  // 2 = 0.5 * 2^2
  EXPECT_EQ(p[kQuantizeMult], k2p30);
  EXPECT_EQ(p[kQuantizeShift], 2);
  p = tflite_pad_params({1, 0, 2}, {0, 3, 0}, -7);
  EXPECT_EQ(p[kPadBefore + 0], 1);
  EXPECT_EQ(p[kPadBefore + 2], 2);
  EXPECT_EQ(p[kPadAfter + 1], 3);
  EXPECT_EQ(p[kPadBefore + 3], 0);
  EXPECT_EQ(p[kPadValue], -7);
  EXPECT_THROW(tflite_pad_params({-1}, {0}, 0), CliError);
  EXPECT_THROW(tflite_pad_params({0}, {0}, 128), CliError);
  EXPECT_THROW(tflite_pad_params({0, 0}, {0}, 0), CliError);
  p = tflite_transpose_params({1, 2, 0});
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[1], 2);
  EXPECT_EQ(p[2], 0);
  EXPECT_EQ(p[3], 0);
  EXPECT_THROW(tflite_transpose_params({0, 0, 1}), CliError);
  EXPECT_THROW(tflite_transpose_params({0, 3}), CliError);
  EXPECT_THROW(tflite_transpose_params({0, 1, 2, 3, 4}), CliError);
}

// ---- device: fixed-point helpers ----

TEST(TflMathTest, DoublingHighMulRoundsHalfUp) {
  using tfl::saturating_rounding_doubling_high_mul;
  EXPECT_EQ(saturating_rounding_doubling_high_mul(3, k2p30), 2);    // 1.5 -> 2
  EXPECT_EQ(saturating_rounding_doubling_high_mul(-3, k2p30), -1);  // -1.5 -> -1 (VQRDMULH rounds ties up)
  EXPECT_EQ(saturating_rounding_doubling_high_mul(-5, k2p30), -2);  // -2.5 -> -2
  EXPECT_EQ(saturating_rounding_doubling_high_mul(7, k2p30), 4);    // 3.5 -> 4
  EXPECT_EQ(saturating_rounding_doubling_high_mul(tfl::kInt32Min, tfl::kInt32Min), tfl::kInt32Max);
  EXPECT_EQ(saturating_rounding_doubling_high_mul(tfl::kInt32Max, tfl::kInt32Max), tfl::kInt32Max - 1);
}

TEST(TflMathTest, RoundingDivideByPotTiesAwayFromZero) {
  using tfl::rounding_divide_by_pot;
  EXPECT_EQ(rounding_divide_by_pot(5, 1), 3);    // 2.5
  EXPECT_EQ(rounding_divide_by_pot(-5, 1), -3);  // -2.5
  EXPECT_EQ(rounding_divide_by_pot(-3, 1), -2);  // -1.5
  EXPECT_EQ(rounding_divide_by_pot(7, 2), 2);    // 1.75
  EXPECT_EQ(rounding_divide_by_pot(6, 2), 2);    // 1.5
  EXPECT_EQ(rounding_divide_by_pot(-6, 2), -2);  // -1.5
  EXPECT_EQ(rounding_divide_by_pot(-5, 2), -1);  // -1.25
  EXPECT_EQ(rounding_divide_by_pot(9, 0), 9);
  EXPECT_EQ(rounding_divide_by_pot(tfl::kInt32Max, 31), 1);
  EXPECT_EQ(rounding_divide_by_pot(tfl::kInt32Min, 31), -1);
  // The wide variant (softmax's final division) agrees up to 31 and goes on to 62.
  for (int e = 0; e <= 31; ++e)
    for (int32_t v : {tfl::kInt32Min, -12345679, -3, -1, 0, 1, 5, 1 << 20, tfl::kInt32Max})
      EXPECT_EQ(tfl::rounding_divide_by_pot_wide(v, e), rounding_divide_by_pot(v, e)) << v << " " << e;
  EXPECT_EQ(tfl::rounding_divide_by_pot_wide(tfl::kInt32Max, 40), 0);
  EXPECT_EQ(tfl::rounding_divide_by_pot_wide(tfl::kInt32Min, 32), -1);  // -0.5 -> -1
  EXPECT_EQ(tfl::rounding_divide_by_pot_wide(tfl::kInt32Min, 33), 0);   // -0.25
}

TEST(TflMathTest, MultiplyByQuantizedMultiplierDoubleRounding) {
  using tfl::multiply_by_quantized_multiplier;
  // 5 * 0.25: srdhm(5, 2^30) = round_up(2.5) = 3, then 3 / 2 = 1.5 -> 2 (one rounding would give 1).
  EXPECT_EQ(multiply_by_quantized_multiplier(5, k2p30, -1), 2);
  EXPECT_EQ(multiply_by_quantized_multiplier(-5, k2p30, -1), -1);  // srdhm -> -2, -2 / 2 = -1
  EXPECT_EQ(multiply_by_quantized_multiplier(3, k2p30, 2), 6);     // 3 * 4 * 0.5
  EXPECT_EQ(multiply_by_quantized_multiplier(-7, 1610612736, 0), -5);  // -5.25 -> -5
}

TEST(TflMathTest, ExpOnNegativeValuesTracksExp) {
  // Q5.26 inputs over [-31, 0]: within 2e-6 absolute of exp (gemmlowp's accuracy).
  EXPECT_EQ(tfl::exp_on_negative_values_q5(0), tfl::kInt32Max);
  for (int32_t raw = 0; raw > -31 * (1 << 26); raw -= 1234567) {
    const double got = tfl::exp_on_negative_values_q5(raw) / 2147483648.0;
    EXPECT_NEAR(got, std::exp(raw / 67108864.0), 2e-6) << raw;
  }
  for (int32_t raw = 0; raw < tfl::kInt32Max - 9999999; raw += 9999999) {
    const double x = raw / 2147483648.0;
    EXPECT_NEAR(tfl::one_over_one_plus_x_for_x_in_0_1(raw) / 2147483648.0, 1.0 / (1.0 + x), 5e-8) << raw;
  }
  int nbou = 0;
  // 3.0 in Q12.19 = 1.5 * 2^1: 1/3 = (1 / 1.5) * 2^-1.
  const int32_t r = tfl::get_reciprocal(3 << 19, 12, &nbou);
  EXPECT_EQ(nbou, 1);
  EXPECT_NEAR(r / 2147483648.0 / 2.0, 1.0 / 3.0, 1e-8);
}

// ---- reference kernels, by hand ----

TEST(TflRefKernelsTest, AddRescalesAndRoundsLikeTflm) {
  // All scales 1, y scale 2: x1, x2 -> (2^30, 0); y = 2 / (2^20 * 2) = 2^-20 -> (2^30, -19).
  const std::vector<int32_t> q = tflite_add_params(1.f, 1.f, 2.f, 0, 0);
  TflAddParams p;
  p.x1_mult = q[kTflAddX1Mult];
  p.x1_shift = q[kTflAddX1Shift];
  p.x2_mult = q[kTflAddX2Mult];
  p.x2_shift = q[kTflAddX2Shift];
  p.y_mult = q[kTflAddYMult];
  p.y_shift = q[kTflAddYShift];
  p.x1_offset = -10;  // x1 zero point 10
  // (x1 - 10 + x2) / 2: 5 / 2 = 2.5 -> 3; -5 / 2 -> -3; 3 / 2 -> 2; 254 / 2 = 127; -256 / 2 -> -128.
  const V8 x1 = {15, 5, 13, 127, -128, 10};
  const V8 x2 = {0, 0, 0, 127, -118, 0};
  V8 y(x1.size());
  ref::add_tfl_s8(p, x1.data(), x2.data(), y.data(), x1.size());
  EXPECT_EQ(y, (V8{3, -3, 2, 122, -128, 0}));  // 117 + 127 = 244 -> 122
  // Saturation and the act range: y scale 1 (y mult 2^-19 * 2 = (2^30, -18)), act [0, 100].
  const std::vector<int32_t> q1 = tflite_add_params(1.f, 1.f, 1.f, 0, 0);
  p.y_mult = q1[kTflAddYMult];
  p.y_shift = q1[kTflAddYShift];
  p.x1_offset = 0;
  p.y_offset = 5;
  p.act_min = 0;
  p.act_max = 100;
  const V8 a = {100, -20, 1};
  const V8 b = {100, 10, 2};
  V8 out(3);
  ref::add_tfl_s8(p, a.data(), b.data(), out.data(), 3);
  EXPECT_EQ(out, (V8{100, 0, 8}));  // 205 -> 100, -5 -> 0, 3 + 5
}

TEST(TflRefKernelsTest, AvgPoolRoundsHalfAwayFromZero) {
  PoolParams p;
  p.in_h = 2;
  p.in_w = 4;
  p.c = 1;
  p.out_h = 1;
  p.out_w = 2;
  p.kh = p.kw = p.stride_h = p.stride_w = 2;
  // Windows {1, 2, 3, 4} (10 / 4 = 2.5 -> 3; half-even would give 2) and {-1, -2, -3, -4} -> -3.
  const V8 x = {1, 2, -1, -2, 3, 4, -3, -4};
  V8 y(2);
  ref::avg_pool2d_tfl_s8(p, x.data(), y.data());
  EXPECT_EQ(y, (V8{3, -3}));
  // 3x3 window, padding 1 on a [3, 3] map: the corner window averages 4 values, the centre 9.
  PoolParams q;
  q.in_h = q.in_w = 3;
  q.c = 1;
  q.out_h = q.out_w = 3;
  q.kh = q.kw = 3;
  q.pad_top = q.pad_left = 1;
  q.act_min = -5;
  q.act_max = 50;
  const V8 m = {10, 20, 30, 40, 50, 60, 70, 80, 90};
  V8 z(9);
  ref::avg_pool2d_tfl_s8(q, m.data(), z.data());
  // corner (0,0): 10 20 40 50 -> 120 / 4 = 30; centre: 450 / 9 = 50; (2,2): 50 60 80 90 -> 70 -> clamp 50;
  // (0,1): 10 20 30 40 50 60 -> 210 / 6 = 35.
  EXPECT_EQ(z[0], 30);
  EXPECT_EQ(z[1], 35);
  EXPECT_EQ(z[4], 50);
  EXPECT_EQ(z[8], 50);
}

TEST(TflRefKernelsTest, MeanDoubleRoundsLikeTflm) {
  // 2x2 map, s_x = s_y, n = 4: (2^30, -1) (see MeanParamsFoldTheCount), x zero point 1.
  TflMeanParams p;
  p.rows = 4;
  p.c = 3;
  p.x_zero = 1;
  p.y_zero = -3;
  p.mult = k2p30;
  p.shift = -1;
  // channel 0: {1, 1, 2, 5} - 1 = 5 -> srdhm 3 -> 3 / 2 = 1.5 -> 2 (the true mean 1.25 rounds to 1);
  // channel 1: -7 -> srdhm -3 (-3.5 rounds up) -> -1.5 -> -2; channel 2: 127 * 4 - 4 = 504 -> 126 -> 123.
  const V8 x = {1, -6, 127, 1, 1, 127, 2, 1, 127, 5, 1, 127};
  V8 y(3);
  ref::mean_tfl_s8(p, x.data(), y.data());
  EXPECT_EQ(y, (V8{2 - 3, -2 - 3, 126 - 3}));
  // Saturation: a 4x larger output multiplier pushes 126 * 4 past 127.
  p.shift = 1;
  ref::mean_tfl_s8(p, x.data(), y.data());
  EXPECT_EQ(y[2], 127);
}

TEST(TflRefKernelsTest, SoftmaxHandCases) {
  const std::vector<int32_t> q = tflite_softmax_params(1.f, 0.0625f, 1.f / 256, -128);
  TflSoftmaxParams p;
  p.input_multiplier = q[kTflSoftmaxMult];
  p.input_left_shift = q[kTflSoftmaxLeftShift];
  p.diff_min = q[kTflSoftmaxDiffMin];  // -248
  // Row 0: two equal values: each exp(0) = "one" (2^31 - 1); sum 2 * 2^19 = 2^20 in Q12.19;
  // reciprocal: 11 leading zeros -> 1 bit over unit, 1 / (1 + 0) ~ 2^31 - 1; exponent 1 + 23 = 24:
  // (2^31 - 2) / 2^24 = 127.99... -> 128 -> 128 - 128 = 0 (probability 1/2).
  // Row 1: one element: 2^31 / 2^23 = 256 -> 128 saturates to 127.
  // Row 2: {100, -100}: diff -200 >= -248 but exp(-200/16) ~ 3.7e-6 -> 0 after rescale; the max gets 127.
  // Row 3: {127, -128}: diff -255 < diff_min: -128 without computing.
  p.outer = 1;
  p.depth = 2;
  V8 y(2);
  const V8 r0 = {7, 7};
  ref::softmax_tfl_s8(p, r0.data(), y.data());
  EXPECT_EQ(y, (V8{0, 0}));
  p.depth = 1;
  const V8 r1 = {-50};
  ref::softmax_tfl_s8(p, r1.data(), y.data());
  EXPECT_EQ(y[0], 127);
  p.depth = 2;
  p.outer = 2;
  const V8 r23 = {100, -100, 127, -128};
  V8 y4(4);
  ref::softmax_tfl_s8(p, r23.data(), y4.data());
  EXPECT_EQ(y4, (V8{127, -128, 127, -128}));
}

TEST(TflRefKernelsTest, SoftmaxWithinOneStepOfTheRealSoftmax) {
  const float scale = 0.1f;
  const std::vector<int32_t> q = tflite_softmax_params(1.f, scale, 1.f / 256, -128);
  TflSoftmaxParams p;
  p.input_multiplier = q[kTflSoftmaxMult];
  p.input_left_shift = q[kTflSoftmaxLeftShift];
  p.diff_min = q[kTflSoftmaxDiffMin];
  p.outer = 50;
  p.depth = 10;
  TestRng rng(7);
  V8 x(500), y(500);
  for (auto& v : x) v = static_cast<int8_t>(rng.uniform(-128, 127));
  ref::softmax_tfl_s8(p, x.data(), y.data());
  for (int r = 0; r < p.outer; ++r) {
    double sum = 0;
    for (int c = 0; c < p.depth; ++c) sum += std::exp(scale * x[r * 10 + c]);
    for (int c = 0; c < p.depth; ++c) {
      const double want = std::exp(scale * x[r * 10 + c]) / sum * 256.0 - 128.0;
      EXPECT_NEAR(y[r * 10 + c], std::min(127.0, want), 1.0) << r << " " << c;
    }
  }
}

TEST(TflRefKernelsTest, RequantizeAndQuantize) {
  QuantizeParams p;
  p.mult = k2p30;  // 0.5
  p.shift = 0;
  p.x_zero = 1;
  p.y_zero = -2;
  // (x - 1) * 0.5 by srdhm: 3 -> 1.5 -> 2; -3 -> -1.5 -> -1 (ties up); 126 -> 63; -129 -> -64 (-64.5 up).
  const V8 x = {4, -2, 127, -128};
  V8 y(4);
  ref::requantize_s8(p, x.data(), y.data(), 4);
  EXPECT_EQ(y, (V8{0, -3, 61, -66}));
  p.mult = k2p30;
  p.shift = 2;  // x 2: saturates
  p.y_zero = 0;
  ref::requantize_s8(p, x.data(), y.data(), 4);
  EXPECT_EQ(y, (V8{6, -6, 127, -128}));
  // float -> int8: round(x / 0.5) half away from zero, + zero point 3, clamped; NaN -> zero point.
  QuantizeParams f;
  f.y_scale = 0.5f;
  f.y_zero = 3;
  const std::vector<float> xf = {0.25f, -0.25f, 0.74f, -0.76f, 100.f, -1e30f, std::nanf("")};
  V8 yf(xf.size());
  ref::quantize_f32_s8(f, xf.data(), yf.data(), xf.size());
  EXPECT_EQ(yf, (V8{4, 2, 4, 1, 127, -128, 3}));
}

TEST(TflRefKernelsTest, PadAndTranspose) {
  // [2, 2, 1] padded by 1 row before (axis 0) and 1 column after (axis 1) with -5.
  PadParams p;
  p.rank = 3;
  p.in_dims[0] = 2;
  p.in_dims[1] = 2;
  p.in_dims[2] = 1;
  p.before[0] = 1;
  p.after[1] = 1;
  p.value = -5;
  const V8 x = {1, 2, 3, 4};
  V8 y(9);
  ref::pad_s8(p, x.data(), y.data());
  EXPECT_EQ(y, (V8{-5, -5, -5, 1, 2, -5, 3, 4, -5}));
  // Channel padding (the last axis), rank 1.
  PadParams c;
  c.rank = 1;
  c.in_dims[0] = 2;
  c.before[0] = 2;
  c.after[0] = 1;
  c.value = 9;
  V8 yc(5);
  ref::pad_s8(c, x.data(), yc.data());
  EXPECT_EQ(yc, (V8{9, 9, 1, 2, 9}));

  // [2, 3, 4] with perm (1, 2, 0): y[a][b][c] = x[c][a][b], dims [3, 4, 2].
  TransposeParams t;
  t.rank = 3;
  t.in_dims[0] = 2;
  t.in_dims[1] = 3;
  t.in_dims[2] = 4;
  t.perm[0] = 1;
  t.perm[1] = 2;
  t.perm[2] = 0;
  V8 xt(24), yt(24);
  for (int i = 0; i < 24; ++i) xt[i] = static_cast<int8_t>(i - 12);
  ref::transpose_s8(t, xt.data(), yt.data());
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 4; ++b)
      for (int cc = 0; cc < 2; ++cc) EXPECT_EQ(yt[(a * 4 + b) * 2 + cc], xt[(cc * 3 + a) * 4 + b]);
  // Rank 4 NCHW -> NHWC style (0, 2, 3, 1) on [1, 2, 2, 3].
  TransposeParams n;
  n.rank = 4;
  n.in_dims[0] = 1;
  n.in_dims[1] = 2;
  n.in_dims[2] = 2;
  n.in_dims[3] = 3;
  n.perm[0] = 0;
  n.perm[1] = 2;
  n.perm[2] = 3;
  n.perm[3] = 1;
  V8 yn(12);
  ref::transpose_s8(n, xt.data(), yn.data());
  for (int h = 0; h < 2; ++h)
    for (int w = 0; w < 3; ++w)
      for (int ch = 0; ch < 2; ++ch) EXPECT_EQ(yn[(h * 3 + w) * 2 + ch], xt[(ch * 2 + h) * 3 + w]);
}

// ---- engine wiring and validation ----

// 16-byte-aligned arena storage.
struct ArenaBlock {
  struct alignas(16) B {
    uint8_t b[16];
  };
  std::vector<B> v;
  explicit ArenaBlock(size_t bytes) : v(bytes / 16 + 1) {}
  uint8_t* data() { return reinterpret_cast<uint8_t*>(v.data()); }
};

// The chain of testing::make_tflite_ops_model() (every new op type).
struct ChainModel {
  TzmBuilder b = testing::make_tflite_ops_model();
};

// The chain computed by calling the ref kernels directly.
V8 chain_by_hand(ChainModel& m, const V8& x) {
  auto params = [&](int tensor) { return m.b.op(tensor).params; };
  TransposeParams t;
  t.rank = 3;
  t.in_dims[0] = 2;
  t.in_dims[1] = 4;
  t.in_dims[2] = 4;
  t.perm[0] = 1;
  t.perm[1] = 2;
  t.perm[2] = 0;
  V8 tr(32);
  ref::transpose_s8(t, x.data(), tr.data());
  PadParams pp;
  pp.rank = 3;
  pp.in_dims[0] = 4;
  pp.in_dims[1] = 4;
  pp.in_dims[2] = 2;
  pp.before[0] = pp.before[1] = pp.after[0] = pp.after[1] = 1;
  pp.value = 3;
  V8 pad(72);
  ref::pad_s8(pp, tr.data(), pad.data());
  PoolParams pl;
  pl.in_h = pl.in_w = 6;
  pl.c = 2;
  pl.out_h = pl.out_w = 3;
  pl.kh = pl.kw = pl.stride_h = pl.stride_w = 2;
  V8 pool(18);
  ref::avg_pool2d_tfl_s8(pl, pad.data(), pool.data());
  const int32_t* a = params(3);
  TflAddParams ap;
  ap.x1_offset = ap.x2_offset = -3;
  ap.y_offset = -7;
  ap.left_shift = a[kTflAddLeftShift];
  ap.x1_mult = a[kTflAddX1Mult];
  ap.x1_shift = a[kTflAddX1Shift];
  ap.x2_mult = a[kTflAddX2Mult];
  ap.x2_shift = a[kTflAddX2Shift];
  ap.y_mult = a[kTflAddYMult];
  ap.y_shift = a[kTflAddYShift];
  ap.act_min = a[kTflAddActMin];
  ap.act_max = a[kTflAddActMax];
  V8 add(18);
  ref::add_tfl_s8(ap, pool.data(), pool.data(), add.data(), 18);
  TflMeanParams mp;
  mp.rows = 9;
  mp.c = 2;
  mp.x_zero = -7;
  mp.y_zero = 2;
  mp.mult = params(4)[kTflMeanMult];
  mp.shift = params(4)[kTflMeanShift];
  V8 mean(2);
  ref::mean_tfl_s8(mp, add.data(), mean.data());
  TflSoftmaxParams sp;
  sp.outer = 1;
  sp.depth = 2;
  sp.input_multiplier = params(6)[kTflSoftmaxMult];
  sp.input_left_shift = params(6)[kTflSoftmaxLeftShift];
  sp.diff_min = params(6)[kTflSoftmaxDiffMin];
  V8 sm(2);
  ref::softmax_tfl_s8(sp, mean.data(), sm.data());
  QuantizeParams qp;
  qp.x_zero = -128;
  qp.y_zero = 0;
  qp.mult = params(7)[kQuantizeMult];
  qp.shift = params(7)[kQuantizeShift];
  V8 out(2);
  ref::requantize_s8(qp, sm.data(), out.data(), 2);
  return out;
}

TEST(TflEngineTest, ChainOfEveryNewOpMatchesTheKernelsCalledByHand) {
  ChainModel m;
  AlignedModelBytes bytes(m.b.serialize());
  ModelView view;
  ASSERT_EQ(view.init(bytes.data(), bytes.size()), Status::kOk) << view.error();
  TestRng rng(11);
  ArenaBlock mem(1 << 16);
  // Every table this machine runs (the TFLite entries are the ref kernels in each; this checks
  // the wiring), including the Cortex-M table's host build.
  std::vector<const KernelTable*> tables = {&ref::table(), &x86::portable_table(), &armv7em::table()};
  for (const char* name : {"avx2", "avx512vnni"})
    if (const KernelTable* t = x86::find_table(name)) tables.push_back(t);
  for (int sample = 0; sample < 20; ++sample) {
    V8 x(32);
    for (auto& v : x) v = static_cast<int8_t>(rng.uniform(-128, 127));
    const V8 want = chain_by_hand(m, x);
    for (const KernelTable* table : tables) {
      Arena arena(mem.data(), 1 << 16);
      Engine e;
      ASSERT_EQ(e.init(view, arena, *table), Status::kOk);
      std::memcpy(e.input().data(), x.data(), x.size());
      ASSERT_EQ(e.invoke(), Status::kOk);
      const Span<const int8_t> y = e.output_s8();
      ASSERT_EQ(y.size(), 2u);
      EXPECT_EQ(V8(y.data(), y.data() + 2), want) << table->name << " sample " << sample;
    }
  }
}

TEST(TflEngineTest, BatchEqualsOneItemAtATime) {
  ChainModel m;
  AlignedModelBytes bytes(m.b.serialize());
  ModelView view;
  ASSERT_EQ(view.init(bytes.data(), bytes.size()), Status::kOk);
  TestRng rng(12);
  std::vector<V8> xs(4, V8(32));
  for (auto& x : xs)
    for (auto& v : x) v = static_cast<int8_t>(rng.uniform(-128, 127));
  ArenaBlock mem(1 << 17);
  Arena arena(mem.data(), 1 << 17);
  Engine e;
  ASSERT_EQ(e.init(view, arena, ref::table(), 4), Status::kOk);
  for (int i = 0; i < 4; ++i) std::memcpy(e.input(i).data(), xs[i].data(), 32);
  ASSERT_EQ(e.invoke(), Status::kOk);
  for (int i = 0; i < 4; ++i) {
    const Span<const int8_t> y = e.output_s8(i);
    EXPECT_EQ(V8(y.data(), y.data() + 2), chain_by_hand(m, xs[i])) << i;
  }
}

TEST(TflEngineTest, Float32InputThroughQuantize) {
  TzmBuilder b;
  const int in = b.add_tensor("in", DType::kFloat32, {5});
  b.set_input(in);
  const int q = b.add_tensor("q", DType::kInt8, {5}, 0, 0.5f, 3);
  b.add_op("quantize", OpType::kQuantize, {in}, q, {});
  b.set_output(q);
  AlignedModelBytes bytes(b.serialize());
  ModelView view;
  ASSERT_EQ(view.init(bytes.data(), bytes.size()), Status::kOk) << view.error();
  ArenaBlock mem(1 << 12);
  Arena arena(mem.data(), 1 << 12);
  Engine e;
  ASSERT_EQ(e.init(view, arena), Status::kOk);
  EXPECT_EQ(e.input().size(), 0u);  // not an int8 input
  ASSERT_EQ(e.input_f32().size(), 5u);
  const float x[5] = {0.25f, -0.25f, 1.f, 70.f, -0.76f};
  std::memcpy(e.input_f32().data(), x, sizeof x);
  ASSERT_EQ(e.invoke(), Status::kOk);
  const Span<const int8_t> y = e.output_s8();
  EXPECT_EQ(V8(y.data(), y.data() + 5), (V8{4, 2, 5, 127, 1}));
}

// Validation: each mutation of a valid one-op model must be rejected with kCorruptModel.
struct OneOp {
  TzmBuilder b;
  int x = -1, y = -1;
};

Status check(const TzmBuilder& b, std::string* why = nullptr) {
  AlignedModelBytes bytes(b.serialize_unchecked());
  ModelView view;
  const Status s = view.init(bytes.data(), bytes.size());
  if (why) *why = view.error();
  return s;
}

OneOp one_op(OpType type, const std::vector<int32_t>& x_dims, const std::vector<int32_t>& y_dims,
             const std::vector<int32_t>& params, float y_scale = 0.05f, int32_t y_zero = 0, int n_inputs = 1) {
  OneOp m;
  m.x = m.b.add_tensor("x", DType::kInt8, x_dims, 0, 0.05f, 0);
  m.b.set_input(m.x);
  m.y = m.b.add_tensor("y", DType::kInt8, y_dims, 0, y_scale, y_zero);
  std::vector<int> inputs(n_inputs, m.x);
  m.b.add_op("op", type, inputs, m.y, params);
  m.b.set_output(m.y);
  return m;
}

TEST(TflValidationTest, ValidOpsPass) {
  std::string why;
  EXPECT_EQ(check(one_op(OpType::kAddTfl, {2, 2, 3}, {2, 2, 3}, tflite_add_params(0.05f, 0.05f, 0.05f, 0, 0),
                         0.05f, 0, 2).b, &why), Status::kOk) << why;
  EXPECT_EQ(check(one_op(OpType::kMeanTfl, {2, 2, 3}, {1, 1, 3}, tflite_mean_params(0.05f, 0.05f, 4)).b, &why),
            Status::kOk) << why;
  EXPECT_EQ(check(one_op(OpType::kMeanTfl, {2, 2, 3}, {3}, tflite_mean_params(0.05f, 0.05f, 4)).b, &why), Status::kOk)
      << why;
  EXPECT_EQ(check(one_op(OpType::kPad, {2, 2, 3}, {3, 2, 5}, tflite_pad_params({1, 0, 1}, {0, 0, 1}, 0)).b, &why),
            Status::kOk) << why;
  EXPECT_EQ(check(one_op(OpType::kReshape, {2, 2, 3}, {12}, {}).b, &why), Status::kOk) << why;
  EXPECT_EQ(check(one_op(OpType::kTranspose, {2, 4, 3}, {4, 3, 2}, tflite_transpose_params({1, 2, 0})).b, &why),
            Status::kOk) << why;
  EXPECT_EQ(check(one_op(OpType::kSoftmaxTfl, {10}, {10}, tflite_softmax_params(1.f, 0.05f, 1.f / 256, -128),
                         1.f / 256, -128).b, &why), Status::kOk) << why;
  EXPECT_EQ(check(one_op(OpType::kQuantize, {10}, {2, 5}, tflite_requantize_params(0.05f, 0.1f)).b, &why),
            Status::kOk) << why;
  EXPECT_EQ(check(one_op(OpType::kAvgPool2dTfl, {4, 4, 2}, {2, 2, 2},
                         tflite_pool_params(2, 2, 2, 2, {2, 0, 0}, {2, 0, 0}, 0, 0.05f, 0)).b, &why),
            Status::kOk) << why;
}

TEST(TflValidationTest, CorruptParamsAndShapesAreRejected) {
  struct Case {
    const char* what;
    OneOp m;
  };
  std::vector<Case> cases;
  auto add_case = [&](const char* what, OneOp m) { cases.push_back({what, std::move(m)}); };
  {
    OneOp m = one_op(OpType::kAddTfl, {2, 2, 3}, {2, 2, 3}, tflite_add_params(0.05f, 0.05f, 0.05f, 0, 0), 0.05f, 0, 2);
    m.b.op(0).params[kTflAddLeftShift] = 21;
    add_case("add left shift 21", std::move(m));
  }
  {
    OneOp m = one_op(OpType::kAddTfl, {2, 2, 3}, {2, 2, 3}, tflite_add_params(0.05f, 0.05f, 0.05f, 0, 0), 0.05f, 0, 2);
    m.b.op(0).params[kTflAddYShift] = 1;
    add_case("add positive shift", std::move(m));
  }
  {
    OneOp m = one_op(OpType::kAddTfl, {2, 2, 3}, {2, 2, 3}, tflite_add_params(0.05f, 0.05f, 0.05f, 0, 0), 0.05f, 0, 2);
    m.b.op(0).params[kTflAddX1Mult] = -1;
    add_case("add negative multiplier", std::move(m));
  }
  add_case("add shape", one_op(OpType::kAddTfl, {2, 2, 3}, {2, 3, 2}, tflite_add_params(0.05f, 0.05f, 0.05f, 0, 0),
                                 0.05f, 0, 2));
  add_case("add one input", one_op(OpType::kAddTfl, {2, 2, 3}, {2, 2, 3}, tflite_add_params(0.05f, 0.05f, 0.05f, 0, 0)));
  add_case("mean output", one_op(OpType::kMeanTfl, {2, 2, 3}, {1, 3}, tflite_mean_params(0.05f, 0.05f, 4)));
  add_case("mean rank", one_op(OpType::kMeanTfl, {12}, {12}, tflite_mean_params(0.05f, 0.05f, 1)));
  {
    OneOp m = one_op(OpType::kMeanTfl, {64, 64, 3}, {3}, {k2p30, 20});  // 255 * 4096 << 20 overflows
    add_case("mean overflow", std::move(m));
  }
  // 255 * 2^28 << 30 would overflow even int64: the check must not compute it.
  add_case("mean huge", one_op(OpType::kMeanTfl, {16384, 16384, 1}, {1}, {k2p30, 30}));
  add_case("pad shape", one_op(OpType::kPad, {2, 2, 3}, {3, 2, 3}, tflite_pad_params({1, 0, 1}, {0, 0, 0}, 0)));
  add_case("pad negative", one_op(OpType::kPad, {2, 2, 3}, {1, 2, 3}, {-1, 0, 0, 0, 0, 0, 0, 0, 0}));
  add_case("pad beyond rank", one_op(OpType::kPad, {2, 2}, {2, 2}, {0, 0, 0, 1, 0, 0, 0, 0, 0}));
  add_case("pad value", one_op(OpType::kPad, {2, 2}, {2, 2}, {0, 0, 0, 0, 0, 0, 0, 0, 200}));
  add_case("reshape count", one_op(OpType::kReshape, {2, 2, 3}, {11}, {}));
  add_case("transpose repeat", one_op(OpType::kTranspose, {2, 4, 3}, {2, 2, 3}, {0, 0, 2, 0}));
  add_case("transpose range", one_op(OpType::kTranspose, {2, 4, 3}, {4, 3, 2}, {1, 2, 3, 0}));
  add_case("transpose dims", one_op(OpType::kTranspose, {2, 4, 3}, {4, 2, 3}, tflite_transpose_params({1, 2, 0})));
  add_case("transpose beyond rank", one_op(OpType::kTranspose, {2, 4}, {4, 2}, {1, 0, 0, 2}));
  add_case("softmax quantization", one_op(OpType::kSoftmaxTfl, {10}, {10},
                                          tflite_softmax_params(1.f, 0.05f, 1.f / 256, -128), 1.f / 256, -127));
  {
    OneOp m = one_op(OpType::kSoftmaxTfl, {10}, {10}, tflite_softmax_params(1.f, 0.05f, 1.f / 256, -128), 1.f / 256,
                     -128);
    m.b.op(0).params[kTflSoftmaxDiffMin] = -100000;  // -diff_min << left_shift overflows
    add_case("softmax diff_min", std::move(m));
  }
  {
    OneOp m = one_op(OpType::kSoftmaxTfl, {10}, {10}, tflite_softmax_params(1.f, 0.05f, 1.f / 256, -128), 1.f / 256,
                     -128);
    m.b.op(0).params[kTflSoftmaxLeftShift] = 32;
    add_case("softmax shift", std::move(m));
  }
  add_case("softmax depth", one_op(OpType::kSoftmaxTfl, {4096}, {4096},
                                   tflite_softmax_params(1.f, 0.05f, 1.f / 256, -128), 1.f / 256, -128));
  add_case("quantize shift", one_op(OpType::kQuantize, {10}, {10}, {k2p30, 24}));
  add_case("quantize count", one_op(OpType::kQuantize, {10}, {9}, tflite_requantize_params(0.05f, 0.1f)));
  add_case("avg pool window", one_op(OpType::kAvgPool2dTfl, {4, 4, 2}, {2, 2, 2},
                                     {2, 2, 2, 2, 2, 0, 0, 0, -128, 127}));
  add_case("avg pool act", one_op(OpType::kAvgPool2dTfl, {4, 4, 2}, {2, 2, 2}, {2, 2, 2, 2, 0, 0, 0, 0, 10, 5}));
  for (const Case& c : cases) {
    std::string why;
    EXPECT_EQ(check(c.m.b, &why), Status::kCorruptModel) << c.what;
    EXPECT_FALSE(why.empty()) << c.what;
  }
}

// A small in-test fuzzer: random params / dims / bytes of the chain model, CRC repaired. Every
// model is either rejected with a message or runs, with the same output bits on every table.
TEST(TflValidationTest, MutatedModelsAreRejectedOrRunIdenticallyOnEveryTable) {
  const std::vector<uint8_t> base = testing::make_tflite_ops_model().serialize();
  TzmHeader h;
  std::memcpy(&h, base.data(), sizeof h);
  TestRng rng(99);
  const int32_t interesting[] = {-1, 0, 1, 2, 3, 20, 21, 30, 31, 32, -31, -32, 127, 128, -128, -129, 4095, 4096,
                                 k2p30, tfl::kInt32Max, tfl::kInt32Min, -248, -100000};
  int accepted = 0, rejected = 0;
  ArenaBlock mem(1 << 20);
  for (int it = 0; it < 4000; ++it) {
    std::vector<uint8_t> bytes = base;
    for (int k = rng.uniform(1, 3); k > 0; --k) {
      int32_t v = rng.uniform(0, 3) == 0 ? rng.uniform(-300, 300) : interesting[rng.uniform(0, 22)];
      size_t at = 0;
      switch (rng.uniform(0, 2)) {
        case 0:  // an op param
          at = h.op_table_offset + size_t(rng.uniform(0, int32_t(h.n_ops) - 1)) * sizeof(TzmOp) +
               offsetof(TzmOp, params) + 4 * size_t(rng.uniform(0, kTzmMaxOpParams - 1));
          break;
        case 1:  // a tensor dim
          at = h.tensor_table_offset + size_t(rng.uniform(0, int32_t(h.n_tensors) - 1)) * sizeof(TzmTensor) +
               offsetof(TzmTensor, dims) + 4 * size_t(rng.uniform(0, kTzmMaxDims - 1));
          v = rng.uniform(0, 1) ? rng.uniform(0, 9) : v;
          break;
        default:  // any byte of the tables
          at = h.tensor_table_offset + size_t(rng.uniform(0, int32_t(h.data_offset - h.tensor_table_offset) - 4));
          v = (v & ~0xFF) | (bytes[at] ^ (1 << rng.uniform(0, 7)));
          break;
      }
      std::memcpy(&bytes[at], &v, 4);
    }
    update_tzm_crc(bytes);
    AlignedModelBytes model(bytes);
    ModelView view;
    if (view.init(model.data(), model.size()) != Status::kOk) {
      ++rejected;
      EXPECT_STRNE(view.error(), "");
      continue;
    }
    ++accepted;
    std::vector<std::vector<uint8_t>> outs;
    for (const KernelTable* table : {&ref::table(), &x86::portable_table(), &best_kernels()}) {
      Arena arena(mem.data(), 1 << 20);
      Engine e;
      if (e.init(view, arena, *table) != Status::kOk) break;  // too large for the arena
      const Span<int8_t> in = e.input();
      for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int8_t>(i * 37 + it);
      ASSERT_EQ(e.invoke(), Status::kOk);
      const TzmTensor& out = e.output_info();
      const auto* y = static_cast<const uint8_t*>(e.tensor_data(view.output_tensor()));
      outs.emplace_back(y, y + tensor_elements(out) * dtype_size(DType(out.dtype)));
    }
    for (size_t k = 1; k < outs.size(); ++k) EXPECT_EQ(outs[k], outs[0]) << "mutation " << it;
  }
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 100);
}

TEST(TflValidationTest, Float32InputOnlyFeedsQuantize) {
  TzmBuilder b;
  const int in = b.add_tensor("in", DType::kFloat32, {4});
  b.set_input(in);
  const int y = b.add_tensor("y", DType::kFloat32, {4});
  b.add_op("reshape", OpType::kReshape, {in}, y, {});
  b.set_output(y);
  EXPECT_EQ(check(b), Status::kCorruptModel);
}

}  // namespace
}  // namespace tinyzo
