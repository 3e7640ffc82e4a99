// Reference int8 convolutions: the oracle for every faster kernel. Plain loops
// in the order of docs/semantics.md; clarity over speed.
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/requant.h"

namespace tinyzo::ref {

void conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias, const float* mult,
               int8_t* y) {
  const int ci_per_group = p.in_c / p.groups;
  const int co_per_group = p.out_c / p.groups;
  for (int oy = 0; oy < p.out_h; ++oy) {
    for (int ox = 0; ox < p.out_w; ++ox) {
      for (int o = 0; o < p.out_c; ++o) {
        const int g = o / co_per_group;
        const int8_t* wo = w + static_cast<size_t>(o) * p.kh * p.kw * ci_per_group;
        int32_t acc = 0;
        for (int ky = 0; ky < p.kh; ++ky) {
          const int iy = oy * p.stride_h - p.pad_top + ky;
          if (iy < 0 || iy >= p.in_h) continue;  // padding reads the zero point: contributes 0
          for (int kx = 0; kx < p.kw; ++kx) {
            const int ix = ox * p.stride_w - p.pad_left + kx;
            if (ix < 0 || ix >= p.in_w) continue;
            const int8_t* xp = x + (static_cast<size_t>(iy) * p.in_w + ix) * p.in_c + g * ci_per_group;
            const int8_t* wp = wo + (ky * p.kw + kx) * ci_per_group;
            for (int c = 0; c < ci_per_group; ++c) acc += (int32_t(xp[c]) - p.x_zero) * int32_t(wp[c]);
          }
        }
        y[(static_cast<size_t>(oy) * p.out_w + ox) * p.out_c + o] =
            requantize_conv(p, acc, bias, mult, o);
      }
    }
  }
}

void depthwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y) {
  // Weight layout [C][kh][kw][1].
  const int c_n = p.out_c;
  for (int oy = 0; oy < p.out_h; ++oy) {
    for (int ox = 0; ox < p.out_w; ++ox) {
      for (int c = 0; c < c_n; ++c) {
        int32_t acc = 0;
        for (int ky = 0; ky < p.kh; ++ky) {
          const int iy = oy * p.stride_h - p.pad_top + ky;
          if (iy < 0 || iy >= p.in_h) continue;
          for (int kx = 0; kx < p.kw; ++kx) {
            const int ix = ox * p.stride_w - p.pad_left + kx;
            if (ix < 0 || ix >= p.in_w) continue;
            acc += (int32_t(x[(static_cast<size_t>(iy) * p.in_w + ix) * c_n + c]) - p.x_zero) *
                   int32_t(w[(c * p.kh + ky) * p.kw + kx]);
          }
        }
        y[(static_cast<size_t>(oy) * p.out_w + ox) * c_n + c] =
            requantize_conv(p, acc, bias, mult, c);
      }
    }
  }
}

void pointwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y) {
  // 1x1, stride 1, no padding, groups 1: a [HW x Ci] by [Co x Ci]^T product.
  const size_t hw = static_cast<size_t>(p.out_h) * p.out_w;
  for (size_t s = 0; s < hw; ++s) {
    const int8_t* xs = x + s * p.in_c;
    for (int o = 0; o < p.out_c; ++o) {
      const int8_t* wo = w + static_cast<size_t>(o) * p.in_c;
      int32_t acc = 0;
      for (int c = 0; c < p.in_c; ++c) acc += (int32_t(xs[c]) - p.x_zero) * int32_t(wo[c]);
      y[s * p.out_c + o] = requantize_conv(p, acc, bias, mult, o);
    }
  }
}

}  // namespace tinyzo::ref
