// Portable kernels: plain C++ written so the compiler vectorizes the inner loops at the baseline
// ISA (x86-64 SSE2): int16 operands, int32 accumulators, unit-stride loops over the dimension that
// is contiguous. They are also the exact fallback of the AVX2 / AVX-512 kernels for shapes their
// fixed buffers cannot hold. Arithmetic per docs/semantics.md; docs/kernels.md has the design.
#include <cstring>

#include "tinyzo/kernels/requant.h"
#include "tinyzo/kernels/x86.h"
#include "x86_common.h"

namespace tinyzo::x86::portable {
namespace {

constexpr int kRows = 4;                          // output pixels per GEMM tile
constexpr int kMaxK = kStageBytes / (2 * kRows);  // int16 staged rows
constexpr int kDwChunk = 64;                      // depthwise channels per chunk
constexpr int kDwMaxTaps = 64;

constexpr float kRoundMagic = 12582912.f;  // 1.5 * 2^23

// rne(v) for |v| <= 2^22 by the classic magic-number addition: v + 1.5*2^23 lies in [2^23, 2^24),
// where the binary32 spacing is 1, so the (round-to-nearest-even) addition rounds v to an integer
// and the subtraction is exact. Vectorizes (no branch, no libm).
inline float rne_small(float v) { return (v + kRoundMagic) - kRoundMagic; }

// Requantizes n accumulators (one pixel, consecutive output channels). `fast` as in
// requant_fast_ok(); the loop then has no branch and vectorizes; otherwise the scalar rule.
// With p.fx_multiplier set: TFLite's fixed-point rule, per channel o0 + i (scalar; 64-bit products).
void requant_row(const ConvParams& p, const int32_t* acc, int n, int o0, const int32_t* bias_all,
                 const float* mult_all, bool fast, int8_t* y) {
  const int32_t* bias = bias_all + o0;
  const int32_t y_zero = p.y_zero, lo = p.act_min, hi = p.act_max;
  if (p.fx_multiplier != nullptr) {
    const int32_t* fm = p.fx_multiplier + o0;
    const int32_t* fs = p.fx_shift + o0;
    for (int i = 0; i < n; ++i) y[i] = requantize_fixed(acc[i], bias[i], fm[i], fs[i], y_zero, lo, hi);
    return;
  }
  const float* mult = mult_all + o0;
  const float y_scale = p.y_scale;
  if (!fast) {
    for (int i = 0; i < n; ++i) y[i] = requantize(acc[i], bias[i], mult[i], y_scale, y_zero, lo, hi);
    return;
  }
  const float lo_f = static_cast<float>(lo - y_zero), hi_f = static_cast<float>(hi - y_zero);
  for (int i = 0; i < n; ++i) {
    float v = (static_cast<float>(acc[i]) + static_cast<float>(bias[i])) * mult[i];
    v = v / y_scale;
    v = v < lo_f ? lo_f : v;
    v = v > hi_f ? hi_f : v;
    y[i] = static_cast<int8_t>(static_cast<int32_t>(rne_small(v)) + y_zero);
  }
}

// Writes row `s` of the im2col matrix of group g as int16 (x - z_x); padding taps give 0.
void stage_row(const ConvParams& p, const int8_t* x, int g, int s, int16_t* dst) {
  const int ci_pg = p.in_c / p.groups;
  const int oy = s / p.out_w, ox = s % p.out_w;
  const int16_t z = static_cast<int16_t>(p.x_zero);
  for (int ky = 0; ky < p.kh; ++ky) {
    const int iy = oy * p.stride_h - p.pad_top + ky;
    for (int kx = 0; kx < p.kw; ++kx, dst += ci_pg) {
      const int ix = ox * p.stride_w - p.pad_left + kx;
      if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) {
        for (int c = 0; c < ci_pg; ++c) dst[c] = 0;
        continue;
      }
      const int8_t* src = x + (static_cast<size_t>(iy) * p.in_w + ix) * p.in_c + g * ci_pg;
      for (int c = 0; c < ci_pg; ++c) dst[c] = static_cast<int16_t>(src[c] - z);
    }
  }
}

// Four dot products of staged rows with one int8 weight row. |(x - z) * w| <= 255 * 128, and the
// int32 sum is exact for every K the reference itself handles without overflow.
inline void dot4(const int16_t* a, int a_stride, const int8_t* w, int k_n, int32_t* out, int rows) {
  const int16_t* a0 = a;
  const int16_t* a1 = a + a_stride;
  const int16_t* a2 = a + 2 * a_stride;
  const int16_t* a3 = a + 3 * a_stride;
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  if (rows == 4) {
    for (int k = 0; k < k_n; ++k) {
      const int32_t wk = w[k];
      s0 += a0[k] * wk;
      s1 += a1[k] * wk;
      s2 += a2[k] * wk;
      s3 += a3[k] * wk;
    }
  } else {
    for (int k = 0; k < k_n; ++k) s0 += a0[k] * int32_t(w[k]);
    if (rows > 1)
      for (int k = 0; k < k_n; ++k) s1 += a1[k] * int32_t(w[k]);
    if (rows > 2)
      for (int k = 0; k < k_n; ++k) s2 += a2[k] * int32_t(w[k]);
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

void conv_gemm(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias, const float* mult,
               int8_t* y) {
  const int ci_pg = p.in_c / p.groups, co_pg = p.out_c / p.groups;
  const int k_n = p.kh * p.kw * ci_pg;
  const bool fast = p.fx_multiplier == nullptr && conv_fast_requant_ok(p, mult);
  alignas(64) int16_t stage[kRows * kMaxK];
  alignas(64) int32_t acc[kRows][kMaxChunkOutputs];
  const int hw = p.out_h * p.out_w;
  for (int g = 0; g < p.groups; ++g) {
    for (int s0 = 0; s0 < hw; s0 += kRows) {
      const int rows = hw - s0 < kRows ? hw - s0 : kRows;
      for (int r = 0; r < rows; ++r) stage_row(p, x, g, s0 + r, stage + r * k_n);
      for (int c0 = 0; c0 < co_pg; c0 += kMaxChunkOutputs) {
        const int nc = co_pg - c0 < kMaxChunkOutputs ? co_pg - c0 : kMaxChunkOutputs;
        const int o0 = g * co_pg + c0;
        for (int o = 0; o < nc; ++o) {
          int32_t d[4];
          dot4(stage, k_n, w + static_cast<size_t>(o0 + o) * k_n, k_n, d, rows);
          for (int r = 0; r < rows; ++r) acc[r][o] = d[r];
        }
        for (int r = 0; r < rows; ++r)
          requant_row(p, acc[r], nc, o0, bias, mult, fast, y + static_cast<size_t>(s0 + r) * p.out_c + o0);
      }
    }
  }
}

}  // namespace

void conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias, const float* mult,
               int8_t* y) {
  const int k_n = p.kh * p.kw * (p.in_c / p.groups);
  // (x - z) must fit int16 for the staged rows.
  if (k_n > kMaxK || p.x_zero < -32000 || p.x_zero > 32000) return ref::conv2d_s8(p, x, w, bias, mult, y);
  conv_gemm(p, x, w, bias, mult, y);
}

void conv2d_1x1_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                   const float* mult, int8_t* y) {
  conv2d_s8(p, x, w, bias, mult, y);  // the im2col row of a 1x1 conv is the pixel itself
}

void depthwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y) {
  const int taps = p.kh * p.kw;
  if (taps > kDwMaxTaps || p.groups != p.in_c || p.in_c != p.out_c || p.x_zero < -32000 || p.x_zero > 32000) {
    return ref::conv2d_s8(p, x, w, bias, mult, y);
  }
  const int c_n = p.out_c;
  const bool fast = p.fx_multiplier == nullptr && conv_fast_requant_ok(p, mult);
  const int16_t z = static_cast<int16_t>(p.x_zero);
  alignas(64) int16_t wt[kDwMaxTaps][kDwChunk];  // weights transposed to [tap][channel]
  alignas(64) int32_t acc[kDwChunk];
  for (int c0 = 0; c0 < c_n; c0 += kDwChunk) {
    const int nc = c_n - c0 < kDwChunk ? c_n - c0 : kDwChunk;
    for (int t = 0; t < taps; ++t)
      for (int c = 0; c < nc; ++c) wt[t][c] = w[(c0 + c) * taps + t];
    for (int oy = 0; oy < p.out_h; ++oy) {
      for (int ox = 0; ox < p.out_w; ++ox) {
        for (int c = 0; c < nc; ++c) acc[c] = 0;
        for (int ky = 0; ky < p.kh; ++ky) {
          const int iy = oy * p.stride_h - p.pad_top + ky;
          if (iy < 0 || iy >= p.in_h) continue;
          for (int kx = 0; kx < p.kw; ++kx) {
            const int ix = ox * p.stride_w - p.pad_left + kx;
            if (ix < 0 || ix >= p.in_w) continue;
            const int8_t* xp = x + (static_cast<size_t>(iy) * p.in_w + ix) * c_n + c0;
            const int16_t* wp = wt[ky * p.kw + kx];
            // |x - z| <= 255 and |w| <= 128: the int16 x int16 -> int32 product is exact.
            for (int c = 0; c < nc; ++c) acc[c] += int32_t(int16_t(xp[c] - z)) * int32_t(wp[c]);
          }
        }
        requant_row(p, acc, nc, c0, bias, mult, fast, y + (static_cast<size_t>(oy) * p.out_w + ox) * c_n + c0);
      }
    }
  }
}

void add_s8(const AddParams& p, const int8_t* x1, const int8_t* x2, int8_t* y, size_t n) {
  if (!add_fast_requant_ok(p)) return ref::add_s8(p, x1, x2, y, n);
  // Locals: the int8 stores could alias p's fields and would block vectorization.
  const int32_t z1 = p.x1_zero, z2 = p.x2_zero, yz = p.y_zero;
  const float s1 = p.x1_scale, s2 = p.x2_scale, ys = p.y_scale;
  const float lo_f = static_cast<float>(p.act_min - yz), hi_f = static_cast<float>(p.act_max - yz);
  for (size_t i = 0; i < n; ++i) {
    const float a = static_cast<float>(int32_t(x1[i]) - z1) * s1;
    const float b = static_cast<float>(int32_t(x2[i]) - z2) * s2;
    float v = (a + b) / ys;
    v = v < lo_f ? lo_f : v;
    v = v > hi_f ? hi_f : v;
    y[i] = static_cast<int8_t>(static_cast<int32_t>(rne_small(v)) + yz);
  }
}

void global_avg_pool_s8(int hw, int c, const int8_t* x, int8_t* y) {
  if (hw <= 0) return ref::global_avg_pool_s8(hw, c, x, y);  // 0 / 0: the NaN case
  constexpr int kChunk = 256;
  int32_t sum[kChunk];
  const float n = static_cast<float>(hw);
  for (int c0 = 0; c0 < c; c0 += kChunk) {
    const int nc = c - c0 < kChunk ? c - c0 : kChunk;
    for (int i = 0; i < nc; ++i) sum[i] = 0;
    for (int s = 0; s < hw; ++s) {
      const int8_t* xs = x + static_cast<size_t>(s) * c + c0;
      for (int i = 0; i < nc; ++i) sum[i] += xs[i];
    }
    // |sum / hw| <= 128: rne_small is exact, and the clamp to int8 is the reference's.
    for (int i = 0; i < nc; ++i) {
      const int32_t q = static_cast<int32_t>(rne_small(static_cast<float>(sum[i]) / n));
      y[c0 + i] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
    }
  }
}

void max_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y) {
  for (int oy = 0; oy < p.out_h; ++oy)
    for (int ox = 0; ox < p.out_w; ++ox) {
      int8_t* yp = y + (static_cast<size_t>(oy) * p.out_w + ox) * p.c;
      for (int c = 0; c < p.c; ++c) yp[c] = -128;
      for (int ky = 0; ky < p.kh; ++ky) {
        const int iy = oy * p.stride_h - p.pad_top + ky;
        if (iy < 0 || iy >= p.in_h) continue;
        for (int kx = 0; kx < p.kw; ++kx) {
          const int ix = ox * p.stride_w - p.pad_left + kx;
          if (ix < 0 || ix >= p.in_w) continue;
          const int8_t* xp = x + (static_cast<size_t>(iy) * p.in_w + ix) * p.c;
          for (int c = 0; c < p.c; ++c) yp[c] = xp[c] > yp[c] ? xp[c] : yp[c];
        }
      }
      for (int c = 0; c < p.c; ++c) yp[c] = static_cast<int8_t>(clamp_i32(yp[c], p.act_min, p.act_max));
    }
}

void avg_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y) {
  ref::avg_pool2d_s8(p, x, y);  // not used by the reference models; the reference is exact
}

void linear_f32(const LinearF32Params& p, const int8_t* x, const float* w, const float* b, float* y) {
  // Eight outputs at a time, each summed strictly in k order (the vectorizer may only work across
  // outputs, which keeps every output's sequence of roundings).
  constexpr int kN = 8;
  const int k_n = p.in_features;
  int n0 = 0;
  for (; n0 + kN <= p.out_features; n0 += kN) {
    float acc[kN] = {};
    for (int k = 0; k < k_n; ++k) {
      const float xk = static_cast<float>(int32_t(x[k]) - p.x_zero) * p.x_scale;
      for (int j = 0; j < kN; ++j) acc[j] = acc[j] + xk * w[static_cast<size_t>(n0 + j) * k_n + k];
    }
    for (int j = 0; j < kN; ++j) y[n0 + j] = acc[j] + b[n0 + j];
  }
  if (n0 < p.out_features) {
    LinearF32Params rest = p;
    rest.out_features = p.out_features - n0;
    ref::linear_f32(rest, x, w + static_cast<size_t>(n0) * k_n, b + n0, y + n0);
  }
}

}  // namespace tinyzo::x86::portable
