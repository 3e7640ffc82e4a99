// AVX2 pointwise and general convolution: an int16 GEMM on vpmaddwd.
//
// out[s][o] = sum_k A[s][k] * W[o][k] with A the (im2col) rows staged as int16 (x - z_x), padding
// taps 0, and W the weight rows [C_out][kh*kw*C_in/groups] packed on the stack as int16 pairs
// [k/2][8 * V outputs][2]. One vpmaddwd multiplies a broadcast pair (A[s][k], A[s][k+1]) by 8
// outputs' pairs and adds each pair: |(x - z) * w| <= 255 * 128, so the pair sum (<= 65280) is
// exact in int32, and vpaddd accumulates modulo 2^32: the accumulator equals the reference's.
// (vpmaddubsw is not used: its int16 saturation would break exactness for u8 x s8.)
// Tiles of P rows x V vectors of 8 outputs (P*V <= 12) stay in the 16 ymm registers.
// docs/kernels.md.
#include <immintrin.h>

#include <array>
#include <cstring>
#include <utility>

#include "avx2_common.h"
#include "tinyzo/kernels/x86.h"
#include "x86_common.h"

namespace tinyzo::x86::avx2 {
namespace {

constexpr int kStageRows = 24;
constexpr int kMaxP = 12;
constexpr int kMaxV = 2;  // P*V accumulators + V weights + broadcast + product <= 16 ymm

struct Tile {
  const int16_t* a;       // first staged row; rows are k2 int16 apart
  int k2;                 // staged row length (K rounded up to 2)
  const int16_t* w;       // packed block: [k2/2][V][8][2]
  const int32_t* bias;    // the block's first output
  const float* mult;
  int n_out;              // valid outputs in the block (<= 8 * V)
  int8_t* y;              // output of the first row, first output of the block
  size_t y_stride;
  const Requant8* rq;
};

template <int P, int V>
TZ_TARGET_AVX2 void gemm_tile(const Tile& t) {
  __m256i acc[P][V];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[p][v] = _mm256_setzero_si256();
  const int pairs = t.k2 / 2;
  const int16_t* a = t.a;
  const int16_t* w = t.w;
  for (int g = 0; g < pairs; ++g, a += 2, w += V * 16) {
    __m256i wv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) wv[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + v * 16));
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      const __m256i xb = _mm256_set1_epi32(static_cast<int>(load_u32(a + p * t.k2)));
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[p][v] = madd_acc(acc[p][v], xb, wv[v]);
    }
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    const int n = t.n_out - v * 8;
    const __m256 bias_f = _mm256_cvtepi32_ps(load_n_i32(t.bias + v * 8, n));
    const __m256 mult = load_n_f32(t.mult + v * 8, n);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p)
      store_n8(t.y + p * t.y_stride + v * 8, narrow8(requant8(acc[p][v], bias_f, mult, *t.rq)), n);
  }
}

using TileFn = void (*)(const Tile&);

template <int V, size_t... I>
constexpr std::array<TileFn, kMaxP + 1> make_tiles(std::index_sequence<I...>) {
  return {{nullptr, &gemm_tile<int(I) + 1, V>...}};
}
// Largest P per V: P*V accumulators + V weights + broadcast + product within 16 registers.
constexpr int kMaxRows[kMaxV + 1] = {0, 12, 6};
const std::array<TileFn, kMaxP + 1> kTiles[kMaxV + 1] = {
    {},
    make_tiles<1>(std::make_index_sequence<12>()),
    make_tiles<2>(std::make_index_sequence<6>()),
};

// dst[0, n) = int16(src - z); no read past src + n.
TZ_TARGET_AVX2 inline void convert(int16_t* dst, const int8_t* src, int n, int16_t z) {
  const __m256i zv = _mm256_set1_epi16(z);
  int i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))), zv));
  for (; i < n; ++i) dst[i] = static_cast<int16_t>(src[i] - z);
}

inline void zero16(int16_t* dst, int n) { std::memset(dst, 0, static_cast<size_t>(n) * 2); }

TZ_TARGET_AVX2 void pack_weights(const int8_t* w, int k, int k2, int n, int v_full, int16_t* pack) {
  const int pairs = k2 / 2;
  const int blk_out = v_full * 8;
  for (int b0 = 0; b0 < n; b0 += blk_out) {
    const int nb = n - b0 < blk_out ? n - b0 : blk_out;
    const int v_n = (nb + 7) / 8;
    int16_t* blk = pack + static_cast<size_t>(b0 / blk_out) * pairs * blk_out * 2;
    const size_t g_stride = static_cast<size_t>(v_n) * 16;
    for (int j = 0; j < v_n * 8; ++j) {
      int16_t* d = blk + j * 2;
      if (j >= nb) {
        for (int g = 0; g < pairs; ++g) d[g * g_stride] = d[g * g_stride + 1] = 0;
        continue;
      }
      const int8_t* row = w + static_cast<size_t>(b0 + j) * k;
      for (int g = 0; g < pairs; ++g) {
        d[g * g_stride] = row[2 * g];
        d[g * g_stride + 1] = 2 * g + 1 < k ? row[2 * g + 1] : 0;
      }
    }
  }
}

TZ_TARGET_AVX2 void stage_im2col(const ConvParams& p, const int8_t* x, int g, int s0, int rows, int k2,
                                 int16_t* dst) {
  const int ci_pg = p.in_c / p.groups;
  const int k = p.kh * p.kw * ci_pg;
  const int row_taps = p.kw * ci_pg;
  const int16_t z = static_cast<int16_t>(p.x_zero);
  for (int r = 0; r < rows; ++r, dst += k2) {
    const int s = s0 + r;
    const int oy = s / p.out_w, ox = s % p.out_w;
    const int ix0 = ox * p.stride_w - p.pad_left;
    int16_t* d = dst;
    for (int ky = 0; ky < p.kh; ++ky, d += row_taps) {
      const int iy = oy * p.stride_h - p.pad_top + ky;
      if (iy < 0 || iy >= p.in_h) {
        zero16(d, row_taps);
        continue;
      }
      const int8_t* xrow = x + static_cast<size_t>(iy) * p.in_w * p.in_c + g * ci_pg;
      if (p.groups == 1 && ix0 >= 0 && ix0 + p.kw <= p.in_w) {
        convert(d, xrow + static_cast<size_t>(ix0) * p.in_c, row_taps, z);
        continue;
      }
      for (int kx = 0; kx < p.kw; ++kx) {
        const int ix = ix0 + kx;
        if (ix < 0 || ix >= p.in_w)
          zero16(d + kx * ci_pg, ci_pg);
        else
          convert(d + kx * ci_pg, xrow + static_cast<size_t>(ix) * p.in_c, ci_pg, z);
      }
    }
    if (k2 > k) dst[k] = 0;
  }
}

TZ_TARGET_AVX2 void stage_pointwise(const ConvParams& p, const int8_t* x, int s0, int rows, int k2, int16_t* dst) {
  const int k = p.in_c;
  const int16_t z = static_cast<int16_t>(p.x_zero);
  const int8_t* src = x + static_cast<size_t>(s0) * k;
  if (k2 == k) {
    convert(dst, src, rows * k, z);
    return;
  }
  for (int r = 0; r < rows; ++r, src += k, dst += k2) {
    convert(dst, src, k, z);
    dst[k] = 0;
  }
}

TZ_TARGET_AVX2 bool conv_gemm(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                              const float* mult, int8_t* y, bool pointwise) {
  const int ci_pg = p.in_c / p.groups, co_pg = p.out_c / p.groups;
  const int k = pointwise ? p.in_c : p.kh * p.kw * ci_pg;
  const int k2 = (k + 1) & ~1;
  if (k2 == 0) return false;
  int v_full = kPackBytes / (k2 * 2 * 8);
  if (v_full > kMaxV) v_full = kMaxV;
  int stage_rows = kStageBytes / (k2 * 2);
  if (stage_rows > kStageRows) stage_rows = kStageRows;
  if (v_full < 1 || stage_rows < 1) return false;
  const int blk_out = v_full * 8;
  const size_t blk_elems = static_cast<size_t>(k2) * blk_out;
  int blocks = static_cast<int>(kPackBytes / (blk_elems * 2));
  if (blocks > kMaxChunkOutputs / blk_out) blocks = kMaxChunkOutputs / blk_out;
  const int chunk = blocks * blk_out;

  alignas(64) int16_t pack[kPackBytes / 2];
  alignas(64) int16_t stage[kStageBytes / 2];
  const Requant8 rq = make_requant8(p.y_scale, p.y_zero, p.act_min, p.act_max, conv_fast_requant_ok(p, mult));
  const int hw = p.out_h * p.out_w;
  for (int g = 0; g < p.groups; ++g) {
    for (int c0 = 0; c0 < co_pg; c0 += chunk) {
      const int nc = co_pg - c0 < chunk ? co_pg - c0 : chunk;
      const int o0 = g * co_pg + c0;
      pack_weights(w + static_cast<size_t>(o0) * k, k, k2, nc, v_full, pack);
      for (int s0 = 0; s0 < hw; s0 += stage_rows) {
        const int rows = hw - s0 < stage_rows ? hw - s0 : stage_rows;
        if (pointwise)
          stage_pointwise(p, x, s0, rows, k2, stage);
        else
          stage_im2col(p, x, g, s0, rows, k2, stage);
        for (int b0 = 0; b0 < nc; b0 += blk_out) {
          const int nb = nc - b0 < blk_out ? nc - b0 : blk_out;
          const int v_n = (nb + 7) / 8;
          Tile t;
          t.k2 = k2;
          t.w = pack + static_cast<size_t>(b0 / blk_out) * blk_elems;
          t.bias = bias + o0 + b0;
          t.mult = mult + o0 + b0;
          t.n_out = nb;
          t.y_stride = static_cast<size_t>(p.out_c);
          t.rq = &rq;
          for (int r = 0; r < rows;) {
            const int pr = rows - r < kMaxRows[v_n] ? rows - r : kMaxRows[v_n];
            t.a = stage + static_cast<size_t>(r) * k2;
            t.y = y + static_cast<size_t>(s0 + r) * p.out_c + o0 + b0;
            kTiles[v_n][pr](t);
            r += pr;
          }
        }
      }
    }
  }
  return true;
}

}  // namespace

void conv2d_1x1_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                   const float* mult, int8_t* y) {
  if (!is_int8(p.x_zero) || !conv_gemm(p, x, w, bias, mult, y, /*pointwise=*/true))
    portable::conv2d_1x1_s8(p, x, w, bias, mult, y);
}

void conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias, const float* mult,
               int8_t* y) {
  if (!is_int8(p.x_zero) || !conv_gemm(p, x, w, bias, mult, y, /*pointwise=*/false))
    portable::conv2d_s8(p, x, w, bias, mult, y);
}

}  // namespace tinyzo::x86::avx2
