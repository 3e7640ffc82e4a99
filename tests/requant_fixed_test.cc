// TFLite's fixed-point requantization helpers (include/tinyzo/kernels/requant.h) on hand-computed
// goldens: SaturatingRoundingDoublingHighMul, RoundingDivideByPOT, MultiplyByQuantizedMultiplier
// (the double-rounding form) and the conv epilogue, then the reference kernels on a small case
// worked out by hand. Every value below is derived in the comment beside it.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/requant.h"

namespace tinyzo {
namespace {

constexpr int32_t kHalf = 1 << 30;  // M = 2^30 multiplies by one half

TEST(FixedPointRequant, SaturatingRoundingDoublingHighMul) {
  // The only overflow: (-2^31)(-2^31) * 2 / 2^32 = 2^31, saturated.
  EXPECT_EQ(saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN), INT32_MAX);
  // 2^30 * 2^30 * 2 / 2^32 = 2^29 exactly.
  EXPECT_EQ(saturating_rounding_doubling_high_mul(kHalf, kHalf), 1 << 29);
  // (2^31 - 1)^2 / 2^31 = 2^31 - 2 + 1/2^31: 2147483646.
  EXPECT_EQ(saturating_rounding_doubling_high_mul(INT32_MAX, INT32_MAX), 2147483646);
  // Ties: x * 2^30 / 2^31 = x / 2. +0.5 -> 1, +1.5 -> 2 (up); -0.5 -> 0, -1.5 -> -1 (toward +inf:
  // the negative nudge 1 - 2^30 and truncation toward zero).
  EXPECT_EQ(saturating_rounding_doubling_high_mul(1, kHalf), 1);
  EXPECT_EQ(saturating_rounding_doubling_high_mul(3, kHalf), 2);
  EXPECT_EQ(saturating_rounding_doubling_high_mul(-1, kHalf), 0);
  EXPECT_EQ(saturating_rounding_doubling_high_mul(-3, kHalf), -1);
  EXPECT_EQ(saturating_rounding_doubling_high_mul(-5, kHalf), -2);  // -2.5 -> -2
  // Not ties: -2^61 / 2^31... (-2^30)(2^30) = -2^60, / 2^31 = -2^29 exactly.
  EXPECT_EQ(saturating_rounding_doubling_high_mul(-kHalf, kHalf), -(1 << 29));
  // (-2^31)(2^31 - 1) / 2^31 = -2^31 + 1 exactly: the most negative result without overflow.
  EXPECT_EQ(saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MAX), -2147483647);
  EXPECT_EQ(saturating_rounding_doubling_high_mul(0, INT32_MIN), 0);
  EXPECT_EQ(saturating_rounding_doubling_high_mul(7, 0), 0);
}

TEST(FixedPointRequant, RoundingDivideByPot) {
  EXPECT_EQ(rounding_divide_by_pot(5, 1), 3);    // 2.5 -> 3 (away from zero)
  EXPECT_EQ(rounding_divide_by_pot(-5, 1), -3);  // -2.5 -> -3
  EXPECT_EQ(rounding_divide_by_pot(7, 2), 2);    // 1.75
  EXPECT_EQ(rounding_divide_by_pot(-6, 2), -2);  // -1.5 -> -2
  EXPECT_EQ(rounding_divide_by_pot(6, 2), 2);    // 1.5 -> 2
  EXPECT_EQ(rounding_divide_by_pot(-7, 2), -2);  // -1.75
  EXPECT_EQ(rounding_divide_by_pot(-5, 2), -1);  // -1.25
  EXPECT_EQ(rounding_divide_by_pot(123, 0), 123);
  EXPECT_EQ(rounding_divide_by_pot(-123, 0), -123);
  EXPECT_EQ(rounding_divide_by_pot(INT32_MIN, 31), -1);  // exactly -1
  EXPECT_EQ(rounding_divide_by_pot(INT32_MAX, 31), 1);   // 1 - 2^-31
  EXPECT_EQ(rounding_divide_by_pot(kHalf, 31), 1);       // +0.5 -> 1
  EXPECT_EQ(rounding_divide_by_pot(-kHalf, 31), -1);     // -0.5 -> -1
  EXPECT_EQ(rounding_divide_by_pot(kHalf - 1, 31), 0);
  EXPECT_EQ(rounding_divide_by_pot(-kHalf + 1, 31), 0);
  // Every exponent: 3 * 2^(e-1) / 2^e = 1.5 -> 2 and -1.5 -> -2; and 2^e - 1 rounds to 1.
  for (int e = 1; e <= 30; ++e) {
    const int32_t t = static_cast<int32_t>(3 * (int64_t{1} << (e - 1)));
    EXPECT_EQ(rounding_divide_by_pot(t, e), 2) << e;
    EXPECT_EQ(rounding_divide_by_pot(-t, e), -2) << e;
    EXPECT_EQ(rounding_divide_by_pot(static_cast<int32_t>((int64_t{1} << e) - 1), e), 1) << e;
    EXPECT_EQ(rounding_divide_by_pot(static_cast<int32_t>((int64_t{1} << (e - 1)) - 1), e), 0) << e;
  }
}

TEST(FixedPointRequant, MultiplyByQuantizedMultiplier) {
  EXPECT_EQ(multiply_by_quantized_multiplier(100, kHalf, 0), 50);
  EXPECT_EQ(multiply_by_quantized_multiplier(100, kHalf, -1), 25);
  // Double rounding: 101 / 4 = 25.25, but 101 * 0.5 = 50.5 -> 51 first, then 51 / 2 = 25.5 -> 26.
  EXPECT_EQ(multiply_by_quantized_multiplier(101, kHalf, -1), 26);
  // -101 * 0.5 = -50.5 -> -50, then -25.
  EXPECT_EQ(multiply_by_quantized_multiplier(-101, kHalf, -1), -25);
  EXPECT_EQ(multiply_by_quantized_multiplier(3, kHalf, 2), 6);  // (3 * 4) * 0.5
  // Left shifts wrap modulo 2^32: 2^29 * 8 = 2^32 -> 0; 2^30 * 2 = 2^31 -> INT32_MIN, times 0.5.
  EXPECT_EQ(multiply_by_quantized_multiplier(1 << 29, kHalf, 3), 0);
  EXPECT_EQ(multiply_by_quantized_multiplier(kHalf, kHalf, 1), -kHalf);
  // The saturating case, then right shifts up to 31.
  EXPECT_EQ(multiply_by_quantized_multiplier(INT32_MIN, INT32_MIN, 0), INT32_MAX);
  EXPECT_EQ(multiply_by_quantized_multiplier(INT32_MIN, INT32_MIN, -31), 1);
  EXPECT_EQ(multiply_by_quantized_multiplier(INT32_MIN, kHalf, -31), -1);  // -2^30 / 2^31 = -0.5
  EXPECT_EQ(multiply_by_quantized_multiplier(1 << 24, kHalf, -30), 0);     // 2^23 / 2^30
  EXPECT_EQ(multiply_by_quantized_multiplier(1, kHalf, 30), kHalf / 2);    // 2^30 * 0.5
  // M = 0.75 * 2^31 (1610612736): 1000 * 0.75 = 750, / 2^4 = 46.875 -> 47.
  EXPECT_EQ(multiply_by_quantized_multiplier(1000, 1610612736, -4), 47);
}

TEST(FixedPointRequant, Epilogue) {
  // (1000 + 24) * 0.5 / 4 = 128, + (-5) = 123.
  EXPECT_EQ(requantize_fixed(1000, 24, kHalf, -2, -5, -128, 127), 123);
  EXPECT_EQ(requantize_fixed(1000, 24, kHalf, -2, -5, -128, 100), 100);
  EXPECT_EQ(requantize_fixed(-1000, -24, kHalf, -2, -5, -128, 127), -128);  // -133 clamped
  EXPECT_EQ(requantize_fixed(1000, 24, kHalf, -2, -5, 10, 5), 5);           // lo > hi: hi wins
  EXPECT_EQ(requantize_fixed(-1000, 0, kHalf, -2, 0, 10, 5), 5);
  // acc + bias wraps: INT32_MAX + 1 = INT32_MIN; * 0.5 = -2^30; / 2^31 = -0.5 -> -1.
  EXPECT_EQ(requantize_fixed(INT32_MAX, 1, kHalf, -31, 0, -128, 127), -1);
  // y_zero wraps too: INT32_MAX + 1 -> INT32_MIN, clamped to lo.
  EXPECT_EQ(requantize_fixed(2, 0, kHalf, 0, INT32_MAX, -128, 127), -128);
}

// A 2x1x2 input, one 1x1 output channel and a 3x3 depthwise corner, by hand, through the three
// reference kernels.
TEST(FixedPointRequant, ReferenceKernelsByHand) {
  ConvParams p;
  p.in_h = 2, p.in_w = 1, p.in_c = 2;
  p.out_h = 2, p.out_w = 1, p.out_c = 1;
  p.x_zero = 1;
  p.y_zero = 3;
  const int32_t m[1] = {kHalf}, s[1] = {0};
  p.fx_multiplier = m;
  p.fx_shift = s;
  const int8_t x[4] = {3, -2, 1, 9};
  const int8_t w[2] = {2, 5};
  const int32_t bias[1] = {1};
  // pixel 0: (3-1)*2 + (-2-1)*5 = -11, + 1 = -10, * 0.5 = -5, + 3 = -2.
  // pixel 1: (1-1)*2 + (9-1)*5 = 40, + 1 = 41, * 0.5 = 20.5 -> 21, + 3 = 24.
  int8_t y[2] = {0, 0};
  ref::pointwise_conv2d_s8(p, x, w, bias, nullptr, y);
  EXPECT_EQ(y[0], -2);
  EXPECT_EQ(y[1], 24);
  int8_t y2[2] = {0, 0};
  ref::conv2d_s8(p, x, w, bias, nullptr, y2);
  EXPECT_EQ(y2[0], -2);
  EXPECT_EQ(y2[1], 24);

  // Depthwise 3x3, pad 1, on a 1x1x1 input: only the centre tap reads the image.
  ConvParams d;
  d.in_h = d.in_w = d.in_c = 1;
  d.out_h = d.out_w = d.out_c = 1;
  d.groups = 1;
  d.kh = d.kw = 3;
  d.pad_top = d.pad_left = 1;
  d.x_zero = -4;
  d.y_zero = 0;
  const int32_t dm[1] = {1610612736}, ds[1] = {1};  // 0.75 * 2
  d.fx_multiplier = dm;
  d.fx_shift = ds;
  const int8_t dx[1] = {6};
  const int8_t dw[9] = {9, 9, 9, 9, 7, 9, 9, 9, 9};
  const int32_t db[1] = {-3};
  // (6 + 4) * 7 = 70, - 3 = 67, * 2 = 134, * 0.75 = 100.5 -> 101: clamped to act_max 100.
  d.act_max = 100;
  int8_t dy[1] = {0};
  ref::depthwise_conv2d_s8(d, dx, dw, db, nullptr, dy);
  EXPECT_EQ(dy[0], 100);
  d.act_max = 127;
  ref::depthwise_conv2d_s8(d, dx, dw, db, nullptr, dy);
  EXPECT_EQ(dy[0], 101);
}

}  // namespace
}  // namespace tinyzo
