// Reference kernels of the TFLite op types: what TensorFlow Lite Micro's
// reference kernels compute, bit for bit (docs/semantics.md, "TFLite
// operators"). Every table points at these: the ops are cheap and memory-bound.
#include "kernels/ref/pool_window.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/requant.h"
#include "tinyzo/kernels/tfl_math.h"

namespace tinyzo::ref {
namespace {

int8_t saturate_s8(int32_t v) { return static_cast<int8_t>(clamp_i32(v, -128, 127)); }

// C++ integer division rounding half away from zero (TFLM's pooling rule):
// (acc +- count/2) / count, truncating.
int32_t divide_round_away(int32_t acc, int32_t count) {
  return acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
}

// std::round on a binary32 value (half away from zero), saturated to
// [-2^30, 2^30]; NaN gives 0. Exact without libm: below 2^23 the truncated
// integer and the fraction are exact, above it every float is an integer.
int32_t round_half_away(float v) {
  if (v != v) return 0;
  if (v >= 1073741824.f) return 1073741824;
  if (v <= -1073741824.f) return -1073741824;
  const int32_t i = static_cast<int32_t>(v);
  const float frac = v - static_cast<float>(i);
  if (frac >= 0.5f) return i + 1;
  if (frac <= -0.5f) return i - 1;
  return i;
}

// Pads a shape of rank r to 4 axes by prepending axes of size 1.
void to_4d(int rank, const int* dims, int* out) {
  const int lead = 4 - rank;
  for (int k = 0; k < 4; ++k) out[k] = k < lead ? 1 : dims[k - lead];
}

}  // namespace

void add_tfl_s8(const TflAddParams& p, const int8_t* x1, const int8_t* x2, int8_t* y, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    // |x - z| <= 255, so the shifted values stay below 2^28 (left_shift <= 20).
    const int32_t a = (int32_t(x1[i]) + p.x1_offset) * (int32_t(1) << p.left_shift);
    const int32_t b = (int32_t(x2[i]) + p.x2_offset) * (int32_t(1) << p.left_shift);
    const int32_t sa = tfl::multiply_by_quantized_multiplier_smaller_than_one_exp(a, p.x1_mult, p.x1_shift);
    const int32_t sb = tfl::multiply_by_quantized_multiplier_smaller_than_one_exp(b, p.x2_mult, p.x2_shift);
    const int32_t raw =
        tfl::multiply_by_quantized_multiplier_smaller_than_one_exp(sa + sb, p.y_mult, p.y_shift) + p.y_offset;
    y[i] = static_cast<int8_t>(clamp_i32(raw, p.act_min, p.act_max));
  }
}

void avg_pool2d_tfl_s8(const PoolParams& p, const int8_t* x, int8_t* y) {
  // Validation keeps every window overlapping the input (padding < kernel), so count >= 1.
  ref_detail::avg_pool2d_windows(p, x, y, divide_round_away);
}

void mean_tfl_s8(const TflMeanParams& p, const int8_t* x, int8_t* y) {
  for (int ch = 0; ch < p.c; ++ch) {
    int32_t sum = 0;  // raw values; |sum| <= 128 * rows (validation bounds rows)
    for (int r = 0; r < p.rows; ++r) sum += x[static_cast<size_t>(r) * p.c + ch];
    const int32_t shifted = sum - p.x_zero * p.rows;
    y[ch] = saturate_s8(tfl::multiply_by_quantized_multiplier(shifted, p.mult, p.shift) + p.y_zero);
  }
}

void softmax_tfl_s8(const TflSoftmaxParams& p, const int8_t* x, int8_t* y) {
  constexpr int kAccumulationIntegerBits = 12;
  for (int i = 0; i < p.outer; ++i) {
    const int8_t* row = x + static_cast<size_t>(i) * p.depth;
    int8_t* out = y + static_cast<size_t>(i) * p.depth;
    int32_t max_in_row = -128;
    for (int c = 0; c < p.depth; ++c)
      if (row[c] > max_in_row) max_in_row = row[c];
    // Sum of exp(diff) in Q12.19: each term is at most 2^19, depth < 4096 keeps it in int32.
    int32_t sum_of_exps = 0;
    for (int c = 0; c < p.depth; ++c) {
      const int32_t diff = int32_t(row[c]) - max_in_row;
      if (diff < p.diff_min) continue;
      const int32_t scaled = tfl::multiply_by_quantized_multiplier_greater_than_one(diff, p.input_multiplier,
                                                                                    p.input_left_shift);
      sum_of_exps +=
          tfl::rounding_divide_by_pot(tfl::exp_on_negative_values_q5(scaled), kAccumulationIntegerBits);
    }
    int num_bits_over_unit = 0;
    const int32_t shifted_scale =
        tfl::get_reciprocal(sum_of_exps, kAccumulationIntegerBits, &num_bits_over_unit);
    // TFLM checks 0 <= exponent <= 31 (it aborts beyond, when the sum reaches 2^28, i.e. only with
    // hundreds of near-equal classes); the rounding division is defined up to 62 here.
    const int exponent = num_bits_over_unit + 31 - 8;
    for (int c = 0; c < p.depth; ++c) {
      const int32_t diff = int32_t(row[c]) - max_in_row;
      if (diff < p.diff_min) {
        out[c] = -128;
        continue;
      }
      const int32_t scaled = tfl::multiply_by_quantized_multiplier_greater_than_one(diff, p.input_multiplier,
                                                                                    p.input_left_shift);
      const int32_t e = tfl::exp_on_negative_values_q5(scaled);
      const int32_t unsat = tfl::rounding_divide_by_pot_wide(
          tfl::saturating_rounding_doubling_high_mul(shifted_scale, e), exponent);
      out[c] = saturate_s8(unsat - 128);
    }
  }
}

void requantize_s8(const QuantizeParams& p, const int8_t* x, int8_t* y, size_t n) {
  for (size_t i = 0; i < n; ++i)
    y[i] = saturate_s8(tfl::multiply_by_quantized_multiplier(int32_t(x[i]) - p.x_zero, p.mult, p.shift) +
                       p.y_zero);
}

void quantize_f32_s8(const QuantizeParams& p, const float* x, int8_t* y, size_t n) {
  // TFLM AffineQuantize: int32(std::round(x / float(scale))) + zero point, clamped; a float32
  // division, as TFLM casts its double scale back to the tensor's float.
  for (size_t i = 0; i < n; ++i) y[i] = saturate_s8(round_half_away(x[i] / p.y_scale) + p.y_zero);
}

void pad_s8(const PadParams& p, const int8_t* x, int8_t* y) {
  int in[4], before[4], after[4];
  to_4d(p.rank, p.in_dims, in);
  to_4d(p.rank, p.before, before);
  to_4d(p.rank, p.after, after);
  for (int k = 0; k < 4 - p.rank; ++k) before[k] = after[k] = 0;  // prepended axes: size 1, no padding
  int out[4];
  for (int k = 0; k < 4; ++k) out[k] = before[k] + in[k] + after[k];
  size_t at = 0;
  for (int a = 0; a < out[0]; ++a)
    for (int b = 0; b < out[1]; ++b)
      for (int c = 0; c < out[2]; ++c)
        for (int d = 0; d < out[3]; ++d, ++at) {
          const int ia = a - before[0], ib = b - before[1], ic = c - before[2], id = d - before[3];
          const bool inside = ia >= 0 && ia < in[0] && ib >= 0 && ib < in[1] && ic >= 0 && ic < in[2] &&
                              id >= 0 && id < in[3];
          y[at] = inside ? x[((static_cast<size_t>(ia) * in[1] + ib) * in[2] + ic) * in[3] + id] : p.value;
        }
}

void transpose_s8(const TransposeParams& p, const int8_t* x, int8_t* y) {
  int in[4];
  to_4d(p.rank, p.in_dims, in);
  const int lead = 4 - p.rank;
  int perm[4];
  for (int k = 0; k < 4; ++k) perm[k] = k < lead ? k : p.perm[k - lead] + lead;
  size_t in_stride[4];
  in_stride[3] = 1;
  for (int k = 2; k >= 0; --k) in_stride[k] = in_stride[k + 1] * static_cast<size_t>(in[k + 1]);
  int out[4];
  size_t step[4];  // input stride of each output axis
  for (int k = 0; k < 4; ++k) {
    out[k] = in[perm[k]];
    step[k] = in_stride[perm[k]];
  }
  size_t at = 0;
  for (int a = 0; a < out[0]; ++a)
    for (int b = 0; b < out[1]; ++b)
      for (int c = 0; c < out[2]; ++c)
        for (int d = 0; d < out[3]; ++d) y[at++] = x[a * step[0] + b * step[1] + c * step[2] + d * step[3]];
}

}  // namespace tinyzo::ref
