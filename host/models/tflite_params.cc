#include "models/tflite_params.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "tinyzo/model_format.h"
#include "util/errors.h"

namespace tinyzo {
namespace {

std::vector<int32_t> op_params() { return std::vector<int32_t>(kTzmMaxOpParams, 0); }

void require(bool ok, const std::string& what) {
  if (!ok) throw CliError(what);
}

}  // namespace

QuantizedMultiplier quantize_multiplier(double real) {
  QuantizedMultiplier r;
  if (real == 0.) return r;
  require(std::isfinite(real), "quantized multiplier: value is not finite");
  int shift = 0;
  const double q = std::frexp(real, &shift);
  // TfLiteRound = std::round: half away from zero.
  int64_t q_fixed = static_cast<int64_t>(std::round(q * static_cast<double>(1LL << 31)));
  if (q_fixed == (1LL << 31)) {  // q rounded up to 1.0: carry into the exponent
    q_fixed /= 2;
    ++shift;
  }
  if (shift < -31) {  // below ~2^-31: TFLite flushes to zero
    shift = 0;
    q_fixed = 0;
  }
  r.multiplier = static_cast<int32_t>(q_fixed);
  r.shift = shift;
  return r;
}

QuantizedMultiplier quantize_multiplier_smaller_than_one_exp(double real) {
  require(real > 0. && real < 1., "multiplier " + std::to_string(real) + " must lie in (0, 1)");
  const QuantizedMultiplier r = quantize_multiplier(real);
  require(r.shift <= 0, "multiplier " + std::to_string(real) + " rounds up to 1");
  return r;
}

QuantizedMultiplier quantize_multiplier_greater_than_one(double real) {
  require(real > 1., "multiplier " + std::to_string(real) + " must be greater than 1");
  const QuantizedMultiplier r = quantize_multiplier(real);
  require(r.shift >= 0, "multiplier " + std::to_string(real) + " has a negative shift");
  return r;
}

ActivationRange tflite_activation_range(int activation, float y_scale, int32_t y_zero) {
  require(y_scale > 0.f && std::isfinite(y_scale), "activation range: output scale must be positive and finite");
  // TFLM's Quantize(): a float32 division and std::round on float, then the zero point.
  auto quantize = [&](float f) {
    const float t = std::round(f / y_scale);
    require(t >= static_cast<float>(std::numeric_limits<int32_t>::min()) &&
                t <= static_cast<float>(std::numeric_limits<int32_t>::max()),
            "activation range: quantized bound does not fit int32");
    return static_cast<int32_t>(t) + y_zero;
  };
  ActivationRange r;
  switch (static_cast<TflActivation>(activation)) {
    case TflActivation::kRelu:
      r.min = std::max<int32_t>(-128, quantize(0.f));
      break;
    case TflActivation::kRelu6:
      r.min = std::max<int32_t>(-128, quantize(0.f));
      r.max = std::min<int32_t>(127, quantize(6.f));
      break;
    case TflActivation::kReluN1To1:
      r.min = std::max<int32_t>(-128, quantize(-1.f));
      r.max = std::min<int32_t>(127, quantize(1.f));
      break;
    default:  // NONE, and (as in TFLM) any other value: the full int8 range
      break;
  }
  // A zero point outside int8 (or a scale so small that q(6) < -128) leaves an empty range,
  // which no int8 op can represent.
  require(r.min <= r.max, "activation range is empty for this output quantization");
  return r;
}

WindowAxis tflite_window_axis(bool same, int32_t in, int32_t filter, int32_t stride, int32_t dilation) {
  require(in >= 1 && filter >= 1 && stride >= 1 && dilation >= 1, "window: sizes, stride and dilation must be >= 1");
  const int64_t effective = (int64_t(filter) - 1) * dilation + 1;
  WindowAxis a;
  // TFLite ComputeOutSize and ComputePaddingWithOffset.
  const int64_t out = same ? (int64_t(in) + stride - 1) / stride : (int64_t(in) - effective + stride) / stride;
  require(out >= 1, "window: the filter does not fit the input (VALID padding)");
  a.out = static_cast<int32_t>(out);
  const int64_t total = (out - 1) * stride + effective - in;
  const int64_t before = total > 0 ? total / 2 : 0;
  const int64_t offset = total > 0 ? total % 2 : 0;
  a.pad_before = static_cast<int32_t>(before);
  a.pad_after = static_cast<int32_t>(before + offset);
  return a;
}

std::vector<int32_t> tflite_add_params(float x1_scale, float x2_scale, float y_scale, int32_t y_zero,
                                       int activation) {
  require(x1_scale > 0.f && x2_scale > 0.f && y_scale > 0.f, "ADD: scales must be positive");
  constexpr int kLeftShift = 20;  // int8 (15 is int16's)
  const double twice_max_input_scale = 2 * static_cast<double>(std::max(x1_scale, x2_scale));
  const double real_x1 = static_cast<double>(x1_scale) / twice_max_input_scale;
  const double real_x2 = static_cast<double>(x2_scale) / twice_max_input_scale;
  const double real_y = twice_max_input_scale / ((1 << kLeftShift) * static_cast<double>(y_scale));
  const QuantizedMultiplier m1 = quantize_multiplier_smaller_than_one_exp(real_x1);
  const QuantizedMultiplier m2 = quantize_multiplier_smaller_than_one_exp(real_x2);
  const QuantizedMultiplier my = quantize_multiplier_smaller_than_one_exp(real_y);
  const ActivationRange act = tflite_activation_range(activation, y_scale, y_zero);
  std::vector<int32_t> p = op_params();
  p[kTflAddActMin] = act.min;
  p[kTflAddActMax] = act.max;
  p[kTflAddLeftShift] = kLeftShift;
  p[kTflAddX1Mult] = m1.multiplier;
  p[kTflAddX1Shift] = m1.shift;
  p[kTflAddX2Mult] = m2.multiplier;
  p[kTflAddX2Shift] = m2.shift;
  p[kTflAddYMult] = my.multiplier;
  p[kTflAddYShift] = my.shift;
  return p;
}

std::vector<int32_t> tflite_pool_params(int32_t kh, int32_t kw, int32_t stride_h, int32_t stride_w,
                                        const WindowAxis& h, const WindowAxis& w, int activation, float y_scale,
                                        int32_t y_zero) {
  const ActivationRange act = tflite_activation_range(activation, y_scale, y_zero);
  std::vector<int32_t> p = op_params();
  p[kPoolKh] = kh;
  p[kPoolKw] = kw;
  p[kPoolStrideH] = stride_h;
  p[kPoolStrideW] = stride_w;
  p[kPoolPadTop] = h.pad_before;
  p[kPoolPadLeft] = w.pad_before;
  p[kPoolPadBottom] = h.pad_after;
  p[kPoolPadRight] = w.pad_after;
  p[kPoolActMin] = act.min;
  p[kPoolActMax] = act.max;
  return p;
}

std::vector<int32_t> tflite_mean_params(float x_scale, float y_scale, int64_t n_reduced) {
  require(x_scale > 0.f && y_scale > 0.f, "MEAN: scales must be positive");
  require(n_reduced >= 1, "MEAN: no elements to reduce");
  const QuantizedMultiplier m = quantize_multiplier(static_cast<double>(x_scale) / static_cast<double>(y_scale));
  // MultiplyByQuantizedMultiplier takes shifts up to 30 (beyond, 1 << shift overflows).
  require(m.shift <= 30, "MEAN: input/output scale ratio too large");
  // QuantizedMeanOrSum folds 1/n into the multiplier: k = floor(log2 n), capped at 32 and at
  // 31 + shift so the final shift stays >= -31.
  int k = 63;
  while (k > 0 && !(uint64_t(n_reduced) >> k)) --k;
  k = std::min(k, 32);
  k = std::min(k, 31 + m.shift);
  std::vector<int32_t> p = op_params();
  p[kTflMeanMult] = static_cast<int32_t>((static_cast<int64_t>(m.multiplier) << k) / n_reduced);
  p[kTflMeanShift] = m.shift - k;
  return p;
}

std::vector<int32_t> tflite_softmax_params(float beta, float x_scale, float y_scale, int32_t y_zero) {
  require(y_zero == -128 && y_scale == 1.f / 256, "SOFTMAX: int8 output must have scale 1/256 and zero point -128");
  require(x_scale > 0.f && beta > 0.f, "SOFTMAX: input scale and beta must be positive");
  constexpr int kScaledDiffIntegerBits = 5;
  // PreprocessSoftmaxScaling (double rounding build): cap at 2^31 - 1.
  const double real = std::min<double>(
      static_cast<double>(beta) * static_cast<double>(x_scale) * (1 << (31 - kScaledDiffIntegerBits)),
      (1LL << 31) - 1.0);
  const QuantizedMultiplier m = quantize_multiplier_greater_than_one(real);
  // CalculateInputRadius(5, left_shift, 31).
  const double max_input_rescaled = 1.0 * ((1 << kScaledDiffIntegerBits) - 1) *
                                    static_cast<double>(1LL << (31 - kScaledDiffIntegerBits)) /
                                    static_cast<double>(1LL << m.shift);
  std::vector<int32_t> p = op_params();
  p[kTflSoftmaxMult] = m.multiplier;
  p[kTflSoftmaxLeftShift] = m.shift;
  p[kTflSoftmaxDiffMin] = -static_cast<int32_t>(std::floor(max_input_rescaled));
  return p;
}

std::vector<int32_t> tflite_requantize_params(float x_scale, float y_scale) {
  require(x_scale > 0.f && y_scale > 0.f, "QUANTIZE: scales must be positive");
  const QuantizedMultiplier m = quantize_multiplier(static_cast<double>(x_scale) / static_cast<double>(y_scale));
  require(m.shift <= 30, "QUANTIZE: input/output scale ratio too large");
  std::vector<int32_t> p = op_params();
  p[kQuantizeMult] = m.multiplier;
  p[kQuantizeShift] = m.shift;
  return p;
}

std::vector<int32_t> tflite_pad_params(const std::vector<int32_t>& before, const std::vector<int32_t>& after,
                                       int32_t value) {
  require(before.size() == after.size() && !before.empty() && before.size() <= size_t(kTzmMaxDims),
          "PAD: one (before, after) pair per axis, rank 1..4");
  require(value >= -128 && value <= 127, "PAD: pad value outside int8");
  std::vector<int32_t> p = op_params();
  for (size_t k = 0; k < before.size(); ++k) {
    require(before[k] >= 0 && after[k] >= 0, "PAD: negative padding");
    p[kPadBefore + k] = before[k];
    p[kPadAfter + k] = after[k];
  }
  p[kPadValue] = value;
  return p;
}

std::vector<int32_t> tflite_transpose_params(const std::vector<int32_t>& perm) {
  require(!perm.empty() && perm.size() <= size_t(kTzmMaxDims), "TRANSPOSE: rank must be 1..4");
  std::vector<bool> seen(perm.size(), false);
  std::vector<int32_t> p = op_params();
  for (size_t k = 0; k < perm.size(); ++k) {
    require(perm[k] >= 0 && size_t(perm[k]) < perm.size() && !seen[perm[k]], "TRANSPOSE: not a permutation");
    seen[perm[k]] = true;
    p[k] = perm[k];
  }
  return p;
}

}  // namespace tinyzo
