// Plain parameter structs shared by every kernel implementation (ref, x86,
// armv7em). Kernels are pure functions over these and raw pointers.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tinyzo {

struct ConvParams {
  int in_h = 0, in_w = 0, in_c = 0;
  int out_h = 0, out_w = 0, out_c = 0;
  int kh = 1, kw = 1, stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0;  // bottom/right padding is implied by out_h/out_w
  int groups = 1;
  int32_t x_zero = 0;   // input zero point
  float y_scale = 1.f;  // output scale (the requantization divides by it)
  int32_t y_zero = 0;   // output zero point
  int32_t act_min = -128, act_max = 127;
  // TFLite's fixed-point requantization (docs/semantics.md): when fx_multiplier is non-null, the
  // kernel computes y = requantize_fixed(acc, bias[o], fx_multiplier[o], fx_shift[o], y_zero,
  // act_min, act_max) and ignores `mult` (which may then be null) and y_scale. Both arrays have
  // out_c entries: multipliers 0 or in [2^30, 2^31), shifts in [-31, 30].
  const int32_t* fx_multiplier = nullptr;
  const int32_t* fx_shift = nullptr;
};

struct AddParams {
  int32_t x1_zero = 0, x2_zero = 0, y_zero = 0;
  float x1_scale = 1.f, x2_scale = 1.f, y_scale = 1.f;
  int32_t act_min = -128, act_max = 127;
};

struct PoolParams {
  int in_h = 0, in_w = 0, c = 0, out_h = 0, out_w = 0;
  int kh = 1, kw = 1, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
  int32_t act_min = -128, act_max = 127;
};

struct LinearF32Params {
  int in_features = 0, out_features = 0;
  int32_t x_zero = 0;
  float x_scale = 1.f;
};

}  // namespace tinyzo
