// AVX-512 VNNI pointwise and general convolution: an int8 GEMM on vpdpbusd.
//
// Both are out[s][o] = sum_k A[s][k] * W[o][k] with A the (im2col) input rows and W the weight
// rows [C_out][kh*kw*C_in/groups], which is exactly the reference's weight layout. vpdpbusd
// multiplies unsigned by signed bytes, so A is staged as u8 = x + 128 (x ^ 0x80), padding taps as
// z_x + 128, and
//     sum_k (x_k - z) w_k  =  sum_k (x_k + 128) w_k  -  (128 + z) * sum_k w_k        (mod 2^32)
// The second term is computed per output channel while packing the weights. Every step is exact
// int32 arithmetic modulo 2^32 (vpdpbusd does not saturate), so the accumulator equals the
// reference's whenever the reference's own int32 sum does not overflow. docs/kernels.md.
//
// Blocking: output channels in blocks of up to 64 (four zmm of 16 int32 lanes); weights of a
// chunk of blocks packed on the stack as [k/4][16 * V outputs][4 bytes], so one 64-byte load
// feeds 16 outputs x 4 k; up to 24 staged input rows; tiles of P rows x V vectors of
// accumulators stay in registers (P*V <= 24).
// GCC 12's AVX-512 headers raise a false -Wuninitialized on _mm512_undefined_* inside the
// unmasked intrinsics (GCC bug 105593); it must be off before the header is read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <array>
#include <cstring>
#include <utility>

#include "avx512_common.h"
#include "tinyzo/kernels/requant.h"
#include "tinyzo/kernels/x86.h"
#include "x86_common.h"

namespace tinyzo::x86::avx512vnni {
namespace {

constexpr int kStageRows = 24;
constexpr int kMaxP = 12;

struct Tile {
  const uint8_t* a;       // first staged row; rows are k4 bytes apart
  int k4;                 // staged row length (K rounded up to 4)
  const int8_t* w;        // packed block: [k4/4][V][64]
  const int32_t* corr;    // (128 + z) * sum_k w[o][k] for the block's 16*V outputs
  const int32_t* bias;    // the block's first output
  const float* mult;
  int n_out;              // valid outputs in the block (<= 16 * V)
  int8_t* y;              // output of the first row, first output of the block
  size_t y_stride;        // bytes between output rows
  const Requant16* rq;
};

template <int P, int V, bool kFast>
TZ_TARGET_AVX512 void gemm_tile(const Tile& t) {
  __m512i acc[P][V];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[p][v] = _mm512_setzero_si512();
  const int k4 = t.k4;
  const int groups = k4 / 4;
  const uint8_t* a = t.a;
  const int8_t* w = t.w;
  for (int g = 0; g < groups; ++g, a += 4, w += V * 64) {
    __m512i wv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) wv[v] = _mm512_loadu_si512(w + v * 64);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      const __m512i xb = _mm512_set1_epi32(static_cast<int>(load_u32(a + p * k4)));
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[p][v] = dpbusd(acc[p][v], xb, wv[v]);
    }
  }
  // Local copies: the byte stores below may alias anything reached through t.
  const Requant16 rq = *t.rq;
  int8_t* const y = t.y;
  const size_t y_stride = t.y_stride;
  const int n_out = t.n_out;
  const int32_t* const corr_p = t.corr;
  const int32_t* const bias_p = t.bias;
  const float* const mult_p = t.mult;
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    const __mmask16 m = mask16(n_out - v * 16);
    const __m512i corr = _mm512_loadu_si512(corr_p + v * 16);
    const __m512 bias_f = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, bias_p + v * 16));
    const __m512 mult = _mm512_maskz_loadu_ps(m, mult_p + v * 16);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      const __m512i q = requant16<kFast>(_mm512_sub_epi32(acc[p][v], corr), bias_f, mult, rq);
      _mm_mask_storeu_epi8(y + p * y_stride + v * 16, m, _mm512_cvtepi32_epi8(q));
    }
  }
}

using TileFn = void (*)(const Tile&);

template <int V, bool kFast, size_t... I>
constexpr std::array<TileFn, kMaxP + 1> make_tiles(std::index_sequence<I...>) {
  return {{nullptr, &gemm_tile<int(I) + 1, V, kFast>...}};
}
// Largest P per V (registers: P*V accumulators + V weights + 1 broadcast <= 32).
constexpr int kMaxRows[5] = {0, 12, 12, 8, 6};
// [fast requantization][V][P]
const std::array<TileFn, kMaxP + 1> kTiles[2][5] = {
    {
        {},
        make_tiles<1, false>(std::make_index_sequence<12>()),
        make_tiles<2, false>(std::make_index_sequence<12>()),
        make_tiles<3, false>(std::make_index_sequence<8>()),
        make_tiles<4, false>(std::make_index_sequence<6>()),
    },
    {
        {},
        make_tiles<1, true>(std::make_index_sequence<12>()),
        make_tiles<2, true>(std::make_index_sequence<12>()),
        make_tiles<3, true>(std::make_index_sequence<8>()),
        make_tiles<4, true>(std::make_index_sequence<6>()),
    },
};

// dst[0, n) = src ^ 0x80 (int8 -> u8 = x + 128); n may be small and unaligned.
TZ_TARGET_AVX512 inline void copy_xor(uint8_t* dst, const int8_t* src, int n) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  int i = 0;
  for (; i + 64 <= n; i += 64)
    _mm512_storeu_si512(dst + i, _mm512_xor_si512(_mm512_loadu_si512(src + i), flip));
  if (i < n) {
    const __mmask64 m = mask64(n - i);
    _mm512_mask_storeu_epi8(dst + i, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src + i), flip));
  }
}

// The padding taps' u8 value, and the zero fill after K.
inline void fill(uint8_t* dst, uint8_t v, int n) { std::memset(dst, v, static_cast<size_t>(n)); }

// Packs outputs [0, n) of rows w (k bytes each) into blocks of 16 * v_full outputs (the last
// block narrower), each [k4/4][V][16][4] with zeros beyond k and n, and writes
// corr[o] = (128 + z) * sum_k w[o][k] (mod 2^32) for every packed lane (0 for the padding lanes).
TZ_TARGET_AVX512 void pack_weights(const int8_t* w, int k, int k4, int n, int v_full, int32_t z,
                                   int8_t* pack, int32_t* corr) {
  const int groups = k4 / 4;
  const int blk_out = v_full * 16;
  const uint32_t zc = static_cast<uint32_t>(128 + z);
  for (int b0 = 0; b0 < n; b0 += blk_out) {
    const int nb = n - b0 < blk_out ? n - b0 : blk_out;
    const int v_n = (nb + 15) / 16;
    int8_t* blk = pack + static_cast<size_t>(b0 / blk_out) * groups * blk_out * 4;
    for (int j = 0; j < v_n * 16; ++j) {
      int8_t* d = blk + j * 4;
      const size_t g_stride = static_cast<size_t>(v_n) * 64;
      if (j >= nb) {
        for (int g = 0; g < groups; ++g) std::memset(d + g * g_stride, 0, 4);
        corr[b0 + j] = 0;
        continue;
      }
      const int8_t* row = w + static_cast<size_t>(b0 + j) * k;
      int g = 0;
      for (; g < k / 4; ++g) std::memcpy(d + g * g_stride, row + 4 * g, 4);
      if (g < groups) {
        int8_t tail[4] = {0, 0, 0, 0};
        for (int i = 0; i < k - 4 * g; ++i) tail[i] = row[4 * g + i];
        std::memcpy(d + g * g_stride, tail, 4);
      }
      int32_t sum = 0;  // |sum| <= 128 * k
      for (int i = 0; i < k; ++i) sum += row[i];
      corr[b0 + j] = static_cast<int32_t>(zc * static_cast<uint32_t>(sum));
    }
  }
}

// Stages im2col rows [s0, s0 + rows) of group g as u8, row stride k4.
TZ_TARGET_AVX512 void stage_im2col(const ConvParams& p, const int8_t* x, int g, int s0, int rows, int k4,
                                   uint8_t* dst) {
  const int ci_pg = p.in_c / p.groups;
  const int k = p.kh * p.kw * ci_pg;
  const int row_taps = p.kw * ci_pg;
  const uint8_t pad = static_cast<uint8_t>(p.x_zero + 128);
  for (int r = 0; r < rows; ++r, dst += k4) {
    const int s = s0 + r;
    const int oy = s / p.out_w, ox = s % p.out_w;
    const int ix0 = ox * p.stride_w - p.pad_left;
    uint8_t* d = dst;
    for (int ky = 0; ky < p.kh; ++ky, d += row_taps) {
      const int iy = oy * p.stride_h - p.pad_top + ky;
      if (iy < 0 || iy >= p.in_h) {
        fill(d, pad, row_taps);
        continue;
      }
      const int8_t* xrow = x + static_cast<size_t>(iy) * p.in_w * p.in_c + g * ci_pg;
      if (p.groups == 1 && ix0 >= 0 && ix0 + p.kw <= p.in_w) {
        copy_xor(d, xrow + static_cast<size_t>(ix0) * p.in_c, row_taps);  // one contiguous run
        continue;
      }
      for (int kx = 0; kx < p.kw; ++kx) {
        const int ix = ix0 + kx;
        if (ix < 0 || ix >= p.in_w)
          fill(d + kx * ci_pg, pad, ci_pg);
        else
          copy_xor(d + kx * ci_pg, xrow + static_cast<size_t>(ix) * p.in_c, ci_pg);
      }
    }
    if (k4 > k) fill(dst + k, 0, k4 - k);
  }
}

TZ_TARGET_AVX512 void stage_pointwise(const ConvParams& p, const int8_t* x, int s0, int rows, int k4,
                                      uint8_t* dst) {
  const int k = p.in_c;
  const int8_t* src = x + static_cast<size_t>(s0) * k;
  if (k4 == k) {
    copy_xor(dst, src, rows * k);
    return;
  }
  for (int r = 0; r < rows; ++r, src += k, dst += k4) {
    copy_xor(dst, src, k);
    fill(dst + k, 0, k4 - k);
  }
}

// Returns false (nothing written) when the shape does not fit the fixed buffers.
TZ_TARGET_AVX512 bool conv_gemm(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                                const float* mult, int8_t* y, bool pointwise) {
  const int ci_pg = p.in_c / p.groups, co_pg = p.out_c / p.groups;
  const int k = pointwise ? p.in_c : p.kh * p.kw * ci_pg;
  const int k4 = (k + 3) & ~3;
  if (k4 == 0) return false;
  int v_full = kPackBytes / (k4 * 16);
  if (v_full > 4) v_full = 4;
  int stage_rows = kStageBytes / k4;
  if (stage_rows > kStageRows) stage_rows = kStageRows;
  if (v_full < 1 || stage_rows < 1) return false;
  const int blk_out = v_full * 16;
  const size_t blk_bytes = static_cast<size_t>(k4) * blk_out;
  int blocks = static_cast<int>(kPackBytes / blk_bytes);
  if (blocks > kMaxChunkOutputs / blk_out) blocks = kMaxChunkOutputs / blk_out;
  const int chunk = blocks * blk_out;

  alignas(64) int8_t pack[kPackBytes];
  alignas(64) uint8_t stage[kStageBytes];
  alignas(64) int32_t corr[kMaxChunkOutputs];
  const Requant16 rq = make_requant16(p.y_scale, p.y_zero, p.act_min, p.act_max, conv_fast_requant_ok(p, mult));
  const int hw = p.out_h * p.out_w;
  for (int g = 0; g < p.groups; ++g) {
    for (int c0 = 0; c0 < co_pg; c0 += chunk) {
      const int nc = co_pg - c0 < chunk ? co_pg - c0 : chunk;
      const int o0 = g * co_pg + c0;
      pack_weights(w + static_cast<size_t>(o0) * k, k, k4, nc, v_full, p.x_zero, pack, corr);
      for (int s0 = 0; s0 < hw; s0 += stage_rows) {
        const int rows = hw - s0 < stage_rows ? hw - s0 : stage_rows;
        if (pointwise)
          stage_pointwise(p, x, s0, rows, k4, stage);
        else
          stage_im2col(p, x, g, s0, rows, k4, stage);
        for (int b0 = 0; b0 < nc; b0 += blk_out) {
          const int nb = nc - b0 < blk_out ? nc - b0 : blk_out;
          const int v_n = (nb + 15) / 16;
          Tile t;
          t.k4 = k4;
          t.w = pack + static_cast<size_t>(b0 / blk_out) * blk_bytes;
          t.corr = corr + b0;
          t.bias = bias + o0 + b0;
          t.mult = mult + o0 + b0;
          t.n_out = nb;
          t.y_stride = static_cast<size_t>(p.out_c);
          t.rq = &rq;
          for (int r = 0; r < rows;) {
            const int pr = rows - r < kMaxRows[v_n] ? rows - r : kMaxRows[v_n];
            t.a = stage + static_cast<size_t>(r) * k4;
            t.y = y + static_cast<size_t>(s0 + r) * p.out_c + o0 + b0;
            kTiles[rq.fast][v_n][pr](t);
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
  // No padding: the correction is exact for any zero point (mod 2^32).
  if (!conv_gemm(p, x, w, bias, mult, y, /*pointwise=*/true)) portable::conv2d_1x1_s8(p, x, w, bias, mult, y);
}

void conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias, const float* mult,
               int8_t* y) {
  // Padding taps are staged as the byte z + 128, so z must be an int8 value.
  if (!is_int8(p.x_zero) || !conv_gemm(p, x, w, bias, mult, y, /*pointwise=*/false))
    portable::conv2d_s8(p, x, w, bias, mult, y);
}

}  // namespace tinyzo::x86::avx512vnni
