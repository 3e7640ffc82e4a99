// The requantization rules of docs/semantics.md, shared by every kernel: the paper's float-scale
// rule (requantize) and TFLite's fixed-point rule (requantize_fixed). Inline so fast kernels can
// use them in their scalar tails.
#pragma once
#include <cstdint>

#include "tinyzo/kernels/params.h"

namespace tinyzo {

// Rounds a binary32 value to the nearest integer, ties to even (torch.round),
// saturating to [-2^30, 2^30] so the result always fits int32. Pure integer/
// float arithmetic, independent of the FPU rounding mode and of libm.
inline int32_t round_half_even(float v) {
  if (!(v < 1073741824.f)) return v != v ? 0 : 1073741824;  // +big or NaN
  if (!(v > -1073741824.f)) return -1073741824;
  int32_t i = static_cast<int32_t>(v);  // truncates toward zero, exact here
  float frac = v - static_cast<float>(i);  // exact: v and i share the exponent range
  if (frac > 0.5f || (frac == 0.5f && (i & 1))) return i + 1;
  if (frac < -0.5f || (frac == -0.5f && (i & 1))) return i - 1;
  return i;
}

inline int32_t clamp_i32(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// y = clamp(rne(((f32(acc) + f32(bias)) * mult) / y_scale) + y_zero, lo, hi)
// rne saturates at +-2^30, so y_zero must lie in [-2^30, 2^30 - 1] (model zero points are int8).
inline int8_t requantize(int32_t acc, int32_t bias, float mult, float y_scale, int32_t y_zero,
                         int32_t lo, int32_t hi) {
  float v = (static_cast<float>(acc) + static_cast<float>(bias)) * mult;
  v = v / y_scale;
  return static_cast<int8_t>(clamp_i32(round_half_even(v) + y_zero, lo, hi));
}

}  // namespace tinyzo

// ---------------------------------------------------------------------------------------------
// TFLite's fixed-point requantization (docs/semantics.md, "Fixed-point requantization (TFLite)"):
// the integer arithmetic of TensorFlow Lite Micro's reference kernels (gemmlowp's fixedpoint.h and
// TFLite's MultiplyByQuantizedMultiplier, the default double-rounding form), with every int32
// wrap that TFLite leaves to the hardware made explicit (two's complement, modulo 2^32). No float.

namespace tinyzo {

inline int32_t wrap_add_i32(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}

// gemmlowp's SaturatingRoundingDoublingHighMul: the high 32 bits of 2*a*b, rounded (the nudge
// 2^30 for a non-negative product, 1 - 2^30 for a negative one, then division by 2^31 truncating
// toward zero), saturated: a == b == INT32_MIN (the only overflowing case) gives INT32_MAX.
inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  const int64_t ab = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int64_t nudge = ab >= 0 ? (int64_t{1} << 30) : (1 - (int64_t{1} << 30));
  return static_cast<int32_t>((ab + nudge) / (int64_t{1} << 31));  // |result| < 2^31 here
}

// gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero.
// exponent in [0, 31]. >> of a negative int32 is arithmetic (C++20, and every compiler tinyzo
// supports before it).
inline int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((int64_t{1} << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// TFLite's MultiplyByQuantizedMultiplier(x, M, shift), double rounding:
//   rounding_divide_by_pot(srdhm(x * 2^max(shift, 0), M), max(-shift, 0))
// The left shift wraps modulo 2^32 (TFLite's `x * (1 << left_shift)`). shift in [-31, 30]; M is
// any int32 (QuantizeMultiplier gives 0 or [2^30, 2^31)).
inline int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  const int32_t shifted = static_cast<int32_t>(static_cast<uint32_t>(x) << left);
  return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right);
}

// The TFLM epilogue of a per-channel int8 conv / depthwise / fully-connected output:
//   acc' = mbqm(acc + bias, M, shift) + y_zero   (both additions wrap modulo 2^32)
//   y    = min(max(acc', lo), hi)                 (TFLite's order: hi wins when lo > hi)
inline int8_t requantize_fixed(int32_t acc, int32_t bias, int32_t multiplier, int32_t shift, int32_t y_zero,
                               int32_t lo, int32_t hi) {
  int32_t v = multiply_by_quantized_multiplier(wrap_add_i32(acc, bias), multiplier, shift);
  v = wrap_add_i32(v, y_zero);
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  return static_cast<int8_t>(v);
}

}  // namespace tinyzo

namespace tinyzo {

// Output channel o of a conv: the rule ConvParams selects (fixed-point when p.fx_multiplier).
inline int8_t requantize_conv(const ConvParams& p, int32_t acc, const int32_t* bias, const float* mult, int o) {
  if (p.fx_multiplier != nullptr)
    return requantize_fixed(acc, bias[o], p.fx_multiplier[o], p.fx_shift[o], p.y_zero, p.act_min, p.act_max);
  return requantize(acc, bias[o], mult[o], p.y_scale, p.y_zero, p.act_min, p.act_max);
}

}  // namespace tinyzo
