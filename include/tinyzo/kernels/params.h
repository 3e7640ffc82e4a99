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

// TFLite ADD (TFLM reference semantics): offsets are minus the input zero
// points and plus the output zero point; multipliers are Q31, shifts <= 0.
struct TflAddParams {
  int32_t x1_offset = 0, x2_offset = 0, y_offset = 0;
  int left_shift = 20;
  int32_t x1_mult = 0, x2_mult = 0, y_mult = 0;
  int x1_shift = 0, x2_shift = 0, y_shift = 0;
  int32_t act_min = -128, act_max = 127;
};

// TFLite MEAN over the rows of x [rows][c] -> y [c] (rows = H * W); mult/shift
// already hold the 1/rows fold.
struct TflMeanParams {
  int rows = 0, c = 0;
  int32_t x_zero = 0, y_zero = 0;
  int32_t mult = 0;
  int shift = 0;
};

// TFLite SOFTMAX over the last axis of x [outer][depth]; output quantization
// (1/256, -128) is implied.
struct TflSoftmaxParams {
  int outer = 0, depth = 0;
  int32_t input_multiplier = 0;
  int input_left_shift = 0;
  int32_t diff_min = 0;
};

// TFLite QUANTIZE int8 -> int8 (Requantize) or float32 -> int8.
struct QuantizeParams {
  int32_t x_zero = 0, y_zero = 0;
  int32_t mult = 0;
  int shift = 0;
  float y_scale = 1.f;  // float32 input only
};

// Shapes of the data-movement ops (rank <= 4; unused axes have size 1, no
// padding, identity permutation).
struct PadParams {
  int rank = 1;
  int in_dims[4] = {1, 1, 1, 1};
  int before[4] = {0, 0, 0, 0};
  int after[4] = {0, 0, 0, 0};
  int8_t value = 0;
};

struct TransposeParams {
  int rank = 1;
  int in_dims[4] = {1, 1, 1, 1};
  int perm[4] = {0, 1, 2, 3};  // output axis k reads input axis perm[k]
};

}  // namespace tinyzo
