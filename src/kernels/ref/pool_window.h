// The window walk both average pools share (the paper's avg_pool2d_s8 and TFLite's
// avg_pool2d_tfl_s8): they differ only in how the window sum is divided by its element count.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/kernels/params.h"
#include "tinyzo/kernels/requant.h"

namespace tinyzo::ref_detail {

// y[oy, ox, c] = clamp(divide(sum, count)) over the part of each window inside the input
// (padding is skipped, not counted). `divide(sum, count)` is called with count >= 1; an empty
// window (impossible for a validated model) gives 0.
template <class Divide>
void avg_pool2d_windows(const PoolParams& p, const int8_t* x, int8_t* y, Divide divide) {
  for (int oy = 0; oy < p.out_h; ++oy)
    for (int ox = 0; ox < p.out_w; ++ox)
      for (int c = 0; c < p.c; ++c) {
        int32_t sum = 0, count = 0;
        for (int ky = 0; ky < p.kh; ++ky) {
          const int iy = oy * p.stride_h - p.pad_top + ky;
          if (iy < 0 || iy >= p.in_h) continue;
          for (int kx = 0; kx < p.kw; ++kx) {
            const int ix = ox * p.stride_w - p.pad_left + kx;
            if (ix < 0 || ix >= p.in_w) continue;
            sum += x[(static_cast<size_t>(iy) * p.in_w + ix) * p.c + c];
            ++count;
          }
        }
        const int32_t q = count ? divide(sum, count) : 0;
        y[(static_cast<size_t>(oy) * p.out_w + ox) * p.c + c] =
            static_cast<int8_t>(clamp_i32(q, p.act_min, p.act_max));
      }
}

}  // namespace tinyzo::ref_detail
