// The one requantization rule of docs/semantics.md, shared by every kernel.
// Inline so fast kernels can use it in their scalar tails.
#pragma once
#include <cstdint>

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
