// Reference add, pooling and the float head (docs/semantics.md).
#include "kernels/ref/pool_window.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/requant.h"

namespace tinyzo::ref {

void add_s8(const AddParams& p, const int8_t* x1, const int8_t* x2, int8_t* y, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    // Two binary32 products and one sum, as the simulation's float tensors do.
    const float a = static_cast<float>(int32_t(x1[i]) - p.x1_zero) * p.x1_scale;
    const float b = static_cast<float>(int32_t(x2[i]) - p.x2_zero) * p.x2_scale;
    const float v = (a + b) / p.y_scale;
    y[i] = static_cast<int8_t>(clamp_i32(round_half_even(v) + p.y_zero, p.act_min, p.act_max));
  }
}

void global_avg_pool_s8(int hw, int c, const int8_t* x, int8_t* y) {
  for (int ch = 0; ch < c; ++ch) {
    int32_t sum = 0;  // exact; |sum| <= 128 * hw, far below 2^24 for any MCU feature map
    for (int s = 0; s < hw; ++s) sum += x[static_cast<size_t>(s) * c + ch];
    const float mean = static_cast<float>(sum) / static_cast<float>(hw);
    y[ch] = static_cast<int8_t>(clamp_i32(round_half_even(mean), -128, 127));
  }
}

void max_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y) {
  for (int oy = 0; oy < p.out_h; ++oy)
    for (int ox = 0; ox < p.out_w; ++ox)
      for (int c = 0; c < p.c; ++c) {
        int32_t m = -128;
        for (int ky = 0; ky < p.kh; ++ky) {
          const int iy = oy * p.stride_h - p.pad_top + ky;
          if (iy < 0 || iy >= p.in_h) continue;
          for (int kx = 0; kx < p.kw; ++kx) {
            const int ix = ox * p.stride_w - p.pad_left + kx;
            if (ix < 0 || ix >= p.in_w) continue;
            const int32_t v = x[(static_cast<size_t>(iy) * p.in_w + ix) * p.c + c];
            if (v > m) m = v;
          }
        }
        y[(static_cast<size_t>(oy) * p.out_w + ox) * p.c + c] =
            static_cast<int8_t>(clamp_i32(m, p.act_min, p.act_max));
      }
}

void avg_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y) {
  ref_detail::avg_pool2d_windows(p, x, y, [](int32_t sum, int32_t count) {
    return round_half_even(static_cast<float>(sum) / static_cast<float>(count));
  });
}

void linear_f32(const LinearF32Params& p, const int8_t* x, const float* w, const float* b, float* y) {
  for (int n = 0; n < p.out_features; ++n) {
    const float* wn = w + static_cast<size_t>(n) * p.in_features;
    float acc = 0.f;
    for (int k = 0; k < p.in_features; ++k) {
      const float xk = static_cast<float>(int32_t(x[k]) - p.x_zero) * p.x_scale;
      acc = acc + xk * wn[k];  // strictly in index order; -ffp-contract=off keeps it two roundings
    }
    y[n] = acc + b[n];
  }
}

const KernelTable& table() {
  static const KernelTable kTable = {
      "ref",         conv2d_s8,     depthwise_conv2d_s8, pointwise_conv2d_s8,  add_s8, global_avg_pool_s8,
      max_pool2d_s8, avg_pool2d_s8, linear_f32,          TZ_REF_TFLITE_KERNELS};
  return kTable;
}

}  // namespace tinyzo::ref
