// Shared by the x86 kernel files: per-function target attributes, the fixed stack budgets, and
// the requantization preconditions under which a vector kernel may use the short (fast) form of
// the requantization. Internal to src/kernels/x86.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/params.h"

// Functions using AVX2 / AVX-512 intrinsics carry these; the rest of the build stays at the
// baseline ISA, and callers reach them only through a table chosen by CPU features. FMA is
// deliberately not enabled: every float operation must stay a separate binary32 rounding.
#define TZ_TARGET_AVX2 __attribute__((target("avx2")))
#define TZ_TARGET_AVX512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace tinyzo::x86 {

// Fixed stack buffers (bytes). Their sum plus small arrays stays below kMaxStackBytes (x86.h).
inline constexpr int kPackBytes = 48 * 1024;   // packed weights of one chunk of output channels
inline constexpr int kStageBytes = 24 * 1024;  // staged (im2col / converted) input rows
inline constexpr int kMaxChunkOutputs = 1024;  // output channels per packed chunk (per-channel arrays)

inline uint32_t load_u32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The requantization y = clamp(rne(((f32(acc) + f32(b)) * m) / s_y) + z_y, lo, hi) can be
// computed as  rne(clamp_f(v, lo - z_y, hi - z_y)) + z_y  (one float clamp, no saturation or NaN
// handling) when
//   - no NaN can occur: every m finite, s_y finite and non-zero (then v is finite or +-inf), and
//   - the clamp commutes with rounding: lo <= hi and lo - z_y, hi - z_y are integers exactly
//     representable with room to spare (|.| <= 2^20), so rne(clamp(v, a, b)) == clamp(rne(v), a, b)
//     and rne's saturation at +-2^30 is never observable.
// Real models always qualify (m, s_y positive and finite, z_y and the act range within int8);
// otherwise kernels use the long form, which emulates round_half_even() exactly.
inline bool finite_f32(float v) { return v - v == 0.f; }  // false for inf and NaN

inline bool requant_fast_ok(const float* mult, int n, float y_scale, int32_t y_zero, int32_t lo, int32_t hi) {
  constexpr int32_t kLim = 1 << 20;
  if (!(finite_f32(y_scale) && y_scale != 0.f)) return false;
  if (lo > hi || y_zero < -kLim || y_zero > kLim || lo < -kLim || hi > kLim) return false;
  bool ok = true;
  for (int i = 0; i < n; ++i) ok &= finite_f32(mult[i]);
  return ok;
}

inline bool conv_fast_requant_ok(const ConvParams& p, const float* mult) {
  return requant_fast_ok(mult, p.out_c, p.y_scale, p.y_zero, p.act_min, p.act_max);
}

// The same for the residual add: with both input scales finite and bounded and both zero points
// small, a and b are finite, so v = (a + b) / s_y has no NaN.
inline bool add_fast_requant_ok(const AddParams& p) {
  constexpr int32_t kLim = 1 << 20;
  constexpr float kScaleLim = 1e30f;  // |q - z| < 2^21, so |a|, |b| < 2^21 * 1e30: finite sums
  if (!(p.x1_scale < kScaleLim && p.x1_scale > -kScaleLim)) return false;
  if (!(p.x2_scale < kScaleLim && p.x2_scale > -kScaleLim)) return false;
  if (p.x1_zero < -kLim || p.x1_zero > kLim || p.x2_zero < -kLim || p.x2_zero > kLim) return false;
  const float none = 1.f;
  return requant_fast_ok(&none, 1, p.y_scale, p.y_zero, p.act_min, p.act_max);
}

// p + i, or null for a null p (the per-channel array of the rule a call does not use).
template <typename T>
inline const T* offset(const T* p, int i) {
  return p != nullptr ? p + i : nullptr;
}

inline bool is_int8(int32_t v) { return v >= -128 && v <= 127; }

// Which form of the requantization a vector kernel uses for a whole call:
//   kLong   round_half_even() emulated exactly (NaN, +-2^30 saturation, clamp_i32 order);
//   kClamp  requant_fast_ok(): rne(clamp_f(v, lo - z, hi - z)) + z (see above);
//   kNarrow additionally |v| < 2^30 for every output of the call, by a bound on |acc|; then
//           q = rne(v) + z fits int32 exactly, and with the act range inside int8,
//           clamp(q, lo, hi) == clamp(saturate_int8(q), lo, hi): a signed-saturating narrow and
//           an int8 clamp replace the two float clamps (fewer wide operations per output).
//   kFixed  TFLite's fixed-point rule (ConvParams::fx_multiplier): integer only, one form.
// Real float-scale models are always kNarrow.
enum class RequantForm { kLong, kClamp, kNarrow, kFixed };

// acc_max bounds |acc| (e.g. K * 128 * (128 + |z_x|) for K products of int8 (x - z_x) and w).
inline RequantForm requant_form(const int32_t* bias, const float* mult, int n, float y_scale, int32_t y_zero,
                                int32_t lo, int32_t hi, double acc_max) {
  if (!requant_fast_ok(mult, n, y_scale, y_zero, lo, hi)) return RequantForm::kLong;
  if (lo < -128 || hi > 127) return RequantForm::kClamp;
  // v = fl(fl(fl(acc) + fl(b)) * m) / s_y: four roundings, each within a factor 1 + 2^-24, so
  // |v| <= (|acc| + |b| + 1) |m| / |s_y| * (1 + 2^-21); the margin below covers that.
  const double inv_scale = 1.0 / (y_scale < 0 ? -static_cast<double>(y_scale) : static_cast<double>(y_scale));
  constexpr double kLimit = 1073741824.0 * (1.0 - 1e-6);
  for (int i = 0; i < n; ++i) {
    const double b = bias[i] < 0 ? -static_cast<double>(bias[i]) : static_cast<double>(bias[i]);
    const double m = mult[i] < 0 ? -static_cast<double>(mult[i]) : static_cast<double>(mult[i]);
    if ((acc_max + b + 1.0) * m * inv_scale >= kLimit) return RequantForm::kClamp;
  }
  return RequantForm::kNarrow;
}

// For a conv with k products per output.
// kFixed whenever p.fx_multiplier is set (mult is then not read and may be null).
inline RequantForm conv_requant_form(const ConvParams& p, const int32_t* bias, const float* mult, int k) {
  if (p.fx_multiplier != nullptr) return RequantForm::kFixed;
  const double zx = p.x_zero < 0 ? -static_cast<double>(p.x_zero) : static_cast<double>(p.x_zero);
  return requant_form(bias, mult, p.out_c, p.y_scale, p.y_zero, p.act_min, p.act_max,
                      static_cast<double>(k) * 128.0 * (128.0 + zx));
}

}  // namespace tinyzo::x86
