// Integer arithmetic of TensorFlow Lite Micro's reference kernels (TFLite's
// double-rounding MultiplyByQuantizedMultiplier and the gemmlowp fixed-point
// functions its softmax uses), written from their definitions for the TFLite
// op types (docs/semantics.md, "TFLite operators"). Device-safe: no float, no
// libm, no undefined behaviour for any int32 input (where the originals would
// overflow, the comment says what these do instead).
#pragma once
#include <cstdint>

#include "tinyzo/kernels/requant.h"

namespace tinyzo::tfl {

constexpr int32_t kInt32Min = -2147483647 - 1;
constexpr int32_t kInt32Max = 2147483647;

// The three primitives every fixed-point kernel shares (gemmlowp's
// SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, TFLite's
// MultiplyByQuantizedMultiplier) live in requant.h; these are the same
// functions, not copies.
using ::tinyzo::multiply_by_quantized_multiplier;
using ::tinyzo::rounding_divide_by_pot;
using ::tinyzo::saturating_rounding_doubling_high_mul;

// RoundingDivideByPOT for exponent in [0, 62] (requant.h's covers [0, 31],
// where the two agree; larger exponents give the same rounding rule, i.e. 0
// or +-1). Softmax's final division needs the wider range.
inline int32_t rounding_divide_by_pot_wide(int32_t x, int exponent) {
  const int64_t mask = (int64_t(1) << exponent) - 1;
  const int64_t remainder = int64_t(x) & mask;
  const int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return static_cast<int32_t>((int64_t(x) >> exponent) + (remainder > threshold ? 1 : 0));
}

// TFLite MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0): the
// same rounding as above without a left shift.
inline int32_t multiply_by_quantized_multiplier_smaller_than_one_exp(int32_t x, int32_t multiplier, int shift) {
  return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), -shift);
}

// TFLite MultiplyByQuantizedMultiplierGreaterThanOne (left_shift >= 0):
// srdhm(x * 2^left_shift, m), the product wrapped to int32 as above.
inline int32_t multiply_by_quantized_multiplier_greater_than_one(int32_t x, int32_t multiplier, int left_shift) {
  const int32_t shifted = static_cast<int32_t>(static_cast<uint32_t>(x) << left_shift);
  return saturating_rounding_doubling_high_mul(shifted, multiplier);
}

// gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0: a
// left shift that saturates to INT32_MIN / INT32_MAX beyond +-(2^(31-e) - 1).
inline int32_t saturating_left_shift(int32_t x, int exponent) {
  const int32_t threshold = (int32_t(1) << (31 - exponent)) - 1;
  if (x > threshold) return kInt32Max;
  if (x < -threshold) return kInt32Min;
  return static_cast<int32_t>(static_cast<uint32_t>(x) << exponent);
}

// gemmlowp RoundingHalfSum: (a + b) / 2 rounded half away from zero.
inline int32_t rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = int64_t(a) + int64_t(b);
  return static_cast<int32_t>((sum + (sum >= 0 ? 1 : -1)) / 2);
}

// Raw fixed-point values below: Qi.f means an int32 with i integer bits and
// f = 31 - i fractional bits (gemmlowp FixedPoint<int32_t, i>). Sums are plain
// int32 additions in gemmlowp; their operands stay far from overflow here.

// gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl: exp(a) for
// a (Q0.31) in [-1/4, 0), by a 4th-order Taylor expansion around -1/8.
inline int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
  constexpr int32_t kExpMinusOneEighth = 1895147668;  // exp(-1/8) in Q0.31
  constexpr int32_t kOneThird = 715827883;            // 1/3 in Q0.31
  const int32_t x = a + (int32_t(1) << 28);           // a + 1/8
  const int32_t x2 = saturating_rounding_doubling_high_mul(x, x);
  const int32_t x3 = saturating_rounding_doubling_high_mul(x2, x);
  const int32_t x4 = saturating_rounding_doubling_high_mul(x2, x2);
  const int32_t x4_over_4 = rounding_divide_by_pot(x4, 2);
  const int32_t poly =
      rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x4_over_4 + x3, kOneThird) + x2, 1);
  return kExpMinusOneEighth + saturating_rounding_doubling_high_mul(kExpMinusOneEighth, x + poly);
}

// gemmlowp exp_on_negative_values for a Q5.26 input (softmax's scaled
// difference, <= 0): returns exp(a) in Q0.31 (a == 0 gives INT32_MAX, gemmlowp's
// "one"). The fractional part below 1/4 goes through the Taylor step above;
// each set bit of the rest multiplies by exp(-2^k), k = -2..4.
inline int32_t exp_on_negative_values_q5(int32_t a) {
  constexpr int kFractionalBits = 26;
  constexpr int32_t kOneQuarter = int32_t(1) << (kFractionalBits - 2);
  const int32_t a_mod_quarter_minus_one_quarter = (a & (kOneQuarter - 1)) - kOneQuarter;
  int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
      saturating_left_shift(a_mod_quarter_minus_one_quarter, 5));  // Q5.26 -> Q0.31
  const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
  // exp(-2^k) in Q0.31 for k = -2, -1, 0, 1, 2, 3, 4 (gemmlowp's constants).
  constexpr int32_t kMultipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  for (int k = -2; k <= 4; ++k)
    if (remainder & (int32_t(1) << (kFractionalBits + k)))
      result = saturating_rounding_doubling_high_mul(result, kMultipliers[k + 2]);
  // Five integer bits: gemmlowp's clamp below -32 does not apply.
  return a == 0 ? kInt32Max : result;
}

// gemmlowp one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a) for a (Q0.31) in
// [0, 1), by three Newton-Raphson steps in Q2.29; result in Q0.31.
inline int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a) {
  constexpr int32_t kFortyEightOver17 = 1515870810;       // 48/17 in Q2.29
  constexpr int32_t kMinusThirtyTwoOver17 = -1010580540;  // -32/17 in Q2.29
  constexpr int32_t kOneQ2 = int32_t(1) << 29;
  const int32_t half_denominator = rounding_half_sum(a, kInt32Max);  // (1 + a) / 2 in Q0.31
  int32_t x = kFortyEightOver17 + saturating_rounding_doubling_high_mul(half_denominator, kMinusThirtyTwoOver17);
  for (int i = 0; i < 3; ++i) {
    const int32_t half_denominator_times_x = saturating_rounding_doubling_high_mul(half_denominator, x);  // Q2.29
    const int32_t one_minus = kOneQ2 - half_denominator_times_x;
    x = x + saturating_left_shift(saturating_rounding_doubling_high_mul(x, one_minus), 2);  // Q4.27 -> Q2.29
  }
  return saturating_left_shift(x, 1);  // x / 2 read as Q1.30, rescaled to Q0.31
}

// TFLite GetReciprocal: for x > 0 in Q(x_integer_digits), a Q0.31 value r and
// *num_bits_over_unit with 1/x ~= r * 2^-num_bits_over_unit.
inline int32_t get_reciprocal(int32_t x, int x_integer_digits, int* num_bits_over_unit) {
  int headroom_plus_one = 0;  // leading zeros of x (x > 0, so < 32)
  for (uint32_t v = static_cast<uint32_t>(x); !(v & 0x80000000u) && headroom_plus_one < 32; v <<= 1)
    ++headroom_plus_one;
  *num_bits_over_unit = x_integer_digits - headroom_plus_one;
  const int32_t shifted_sum_minus_one =
      static_cast<int32_t>((static_cast<uint32_t>(x) << headroom_plus_one) - (uint32_t(1) << 31));
  return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
}

}  // namespace tinyzo::tfl
