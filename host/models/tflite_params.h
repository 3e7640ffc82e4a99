// Host-side derivation of the integer parameters that TensorFlow Lite Micro's
// Prepare functions compute from a TFLite model's float scales, zero points and
// builtin options, for the TFLite op types of docs/format.md (kAddTfl ...
// kQuantize) and for the activation ranges of every op. The importer stores the
// results in the .tzm, so the device runs int8 ops without float.
//
// Every function computes exactly what TFLM's reference Prepare computes (same
// double arithmetic, same rounding, same checks); where TFLM would abort or
// fail Prepare, these throw CliError naming the rule (the model is rejected).
// Host code: uses the STL and exceptions.
#pragma once
#include <cstdint>
#include <vector>

namespace tinyzo {

// A TFLite fixed-point multiplier: real ~= multiplier * 2^(shift - 31), with
// multiplier 0 or in [2^30, 2^31) and shift > 0 meaning a left shift.
struct QuantizedMultiplier {
  int32_t multiplier = 0;
  int shift = 0;
};

// TFLite's QuantizeMultiplier: frexp, round half away from zero of q * 2^31, the
// 2^31 carry into the exponent, 0 for a zero input and for |real| < ~2^-31
// (shift < -31 flushes to multiplier 0, shift 0). Throws for a non-finite
// value; any shift is returned (as TFLite does; callers bound it).
QuantizedMultiplier quantize_multiplier(double real);
// TFLite's QuantizeMultiplierSmallerThanOneExp: requires 0 < real < 1 (throws
// otherwise); the shift is <= 0.
QuantizedMultiplier quantize_multiplier_smaller_than_one_exp(double real);
// TFLite's QuantizeMultiplierGreaterThanOne: requires real > 1 (throws
// otherwise); the shift is >= 0.
QuantizedMultiplier quantize_multiplier_greater_than_one(double real);

// TFLite's ActivationFunctionType values (schema.fbs).
enum class TflActivation : int { kNone = 0, kRelu = 1, kReluN1To1 = 2, kRelu6 = 3, kTanh = 4, kSignBit = 5 };

struct ActivationRange {
  int32_t min = -128;
  int32_t max = 127;
};
// TFLM's CalculateActivationRangeQuantized for an int8 output (y_scale, y_zero):
// NONE -> [-128, 127]; RELU -> [max(-128, q(0)), 127]; RELU6 -> [max(-128, q(0)),
// min(127, q(6))]; RELU_N1_TO_1 -> [max(-128, q(-1)), min(127, q(1))], where
// q(f) = int32(round_half_away(float(f) / y_scale)) + y_zero in float32. Any
// other value (TANH, SIGN_BIT, unknown) gives [-128, 127], as in TFLM. Throws
// when q(f) does not fit int32 (TFLM's Prepare fails there).
ActivationRange tflite_activation_range(int activation, float y_scale, int32_t y_zero);

// One axis of a TFLite window op (conv, depthwise, pool): output size and the
// padding before/after, as TFLite's ComputePaddingHeightWidth / ComputeOutSize
// compute them. `same` = Padding SAME (else VALID); dilation >= 1.
struct WindowAxis {
  int32_t out = 0;
  int32_t pad_before = 0;
  int32_t pad_after = 0;
};
// Throws when the window does not fit (VALID with in < effective filter) or
// a size/stride is < 1.
WindowAxis tflite_window_axis(bool same, int32_t in, int32_t filter, int32_t stride, int32_t dilation = 1);

// Op params in the layouts of include/tinyzo/model_format.h, ready for
// TzmBuilder::add_op (12 entries, unused ones 0).

// kAddTfl (TFLM CalculateOpDataAdd, int8): left shift 20; twice_max =
// 2 * double(max(s1, s2)); x1 = s1 / twice_max, x2 = s2 / twice_max, y =
// twice_max / (2^20 * s_y), each through quantize_multiplier_smaller_than_one_exp;
// act range from `activation` and (y_scale, y_zero).
std::vector<int32_t> tflite_add_params(float x1_scale, float x2_scale, float y_scale, int32_t y_zero,
                                       int activation);
// kAvgPool2dTfl and kMaxPool2d: the window (kh, kw, strides, paddings) and the
// act range of `activation` for the output (y_scale, y_zero).
std::vector<int32_t> tflite_pool_params(int32_t kh, int32_t kw, int32_t stride_h, int32_t stride_w,
                                        const WindowAxis& h, const WindowAxis& w, int activation, float y_scale,
                                        int32_t y_zero);
// kMeanTfl (TFLM PrepareMeanOrSum + QuantizedMeanOrSum's fold of 1/n, n = the
// number of reduced elements H*W): (M, s) = quantize_multiplier(double(s_x) /
// double(s_y)); k = min(floor(log2 n), 32, 31 + s); M' = int32((int64(M) << k) / n);
// stored [M', s - k]. Throws for n < 1.
std::vector<int32_t> tflite_mean_params(float x_scale, float y_scale, int64_t n_reduced);
// kSoftmaxTfl (TFLM CalculateSoftmaxParams, int8 in): PreprocessSoftmaxScaling
// with 5 integer bits: (mult, left_shift) = quantize_multiplier_greater_than_one(
// min(double(beta) * double(s_x) * 2^26, 2^31 - 1)); diff_min =
// -floor(31 * 2^26 / 2^left_shift) (CalculateInputRadius). Throws when the
// output quantization is not (1/256, -128), as TFLM's Prepare does.
std::vector<int32_t> tflite_softmax_params(float beta, float x_scale, float y_scale, int32_t y_zero);
// kQuantize, int8 -> int8 (TFLM PrepareQuantizeReference): quantize_multiplier(
// double(s_x) / double(s_y)). For float32 -> int8 the params are all 0.
std::vector<int32_t> tflite_requantize_params(float x_scale, float y_scale);
// kPad: paddings per axis of the stored tensor (rank = before.size() =
// after.size() <= 4, each >= 0) and the pad value (TFLite PAD: the output
// zero point; PADV2: the constant, which must share the output quantization).
std::vector<int32_t> tflite_pad_params(const std::vector<int32_t>& before, const std::vector<int32_t>& after,
                                       int32_t value);
// kTranspose: a permutation of 0..rank-1 (rank <= 4), checked.
std::vector<int32_t> tflite_transpose_params(const std::vector<int32_t>& perm);

}  // namespace tinyzo
