// AVX2 pointwise and general convolution: an int16 GEMM on vpmaddwd.
//
// out[s][o] = sum_k A[s][k] * W[o][k] with A the (im2col) rows staged as int16 (x - z_x), padding
// taps 0, and W the weight rows [C_out][kh*kw*C_in/groups] packed on the stack as int16 pairs
// [k/2][8 * V outputs][2]. One vpmaddwd multiplies a broadcast pair (A[s][k], A[s][k+1]) by 8
// outputs' pairs and adds each pair: |(x - z) * w| <= 255 * 128, so the pair sum (<= 65280) is
// exact in int32, and vpaddd accumulates modulo 2^32: the accumulator equals the reference's.
// (vpmaddubsw is not used: its int16 saturation would break exactness for u8 x s8.)
// Tiles of P pixels x V vectors of 8 outputs (P*V <= 12) stay in the 16 ymm registers. As in
// the AVX-512 kernel, A is read as segments: staged rows (pointwise; im2col for grouped convs) or,
// for dense convs, kh segments of kw*C_in values read in place from a ring of converted input
// rows (direct convolution; padding is simply 0 in the (x - z) domain). docs/kernels.md.
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
constexpr int kMaxSeg = 16;

struct Tile {
  const int16_t* seg[kMaxSeg];  // per segment: the first pixel's values
  int n_seg;                    // segments (kh for the direct conv, else 1)
  int seg_pairs;                // int16 pairs per segment
  size_t a_stride;              // int16 values between consecutive pixels
  const int16_t* w;             // packed block: [n_seg][seg_pairs][V][8][2]
  const int32_t* bias;          // the block's first output
  const float* mult;            // float-scale rule (null for the fixed-point rule)
  const int32_t* fx_mult;       // fixed-point rule: the block's multipliers and shifts
  const int32_t* fx_shift;
  int n_out;  // valid outputs in the block (<= 8 * V)
  int8_t* y;  // output of the first pixel, first output of the block
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
  const size_t a_stride = t.a_stride;
  const int seg_pairs = t.seg_pairs;
  const int16_t* w = t.w;
  for (int s = 0; s < t.n_seg; ++s) {
    const int16_t* a = t.seg[s];
    for (int g = 0; g < seg_pairs; ++g, a += 2, w += V * 16) {
      __m256i wv[V];
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) wv[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + v * 16));
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) {
        const __m256i xb = _mm256_set1_epi32(static_cast<int>(load_u32(a + p * a_stride)));
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[p][v] = madd_acc(acc[p][v], xb, wv[v]);
      }
    }
  }
  // Local copies: the byte stores below may alias anything reached through t.
  const Requant8 rq = *t.rq;
  int8_t* const y = t.y;
  const size_t y_stride = t.y_stride;
  const int n_out = t.n_out;
  if (rq.fixed) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const int n = n_out - v * 8;
      const Fixed8 f = load_fixed8(t.bias + v * 8, t.fx_mult + v * 8, t.fx_shift + v * 8, n);
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p)
        store_n8(y + p * y_stride + v * 8, narrow8(requant_fixed8(acc[p][v], f, rq)), n);
    }
    return;
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    const int n = n_out - v * 8;
    const __m256 bias_f = _mm256_cvtepi32_ps(load_n_i32(t.bias + v * 8, n));
    const __m256 mult = load_n_f32(t.mult + v * 8, n);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p)
      store_n8(y + p * y_stride + v * 8, narrow8(requant8(acc[p][v], bias_f, mult, rq)), n);
  }
}

using TileFn = void (*)(const Tile&);

template <int V, size_t... I>
constexpr std::array<TileFn, kMaxP + 1> make_tiles(std::index_sequence<I...>) {
  return {{nullptr, &gemm_tile<int(I) + 1, V>...}};
}
constexpr int kMaxRows[kMaxV + 1] = {0, 12, 6};
const std::array<TileFn, kMaxP + 1> kTiles[kMaxV + 1] = {
    {},
    make_tiles<1>(std::make_index_sequence<12>()),
    make_tiles<2>(std::make_index_sequence<6>()),
};

// Runs the tiles of n_pix pixels for every block of a packed chunk of nc outputs.
// mult / fx_mult / fx_shift point at the chunk's first output (the unused rule's are null).
TZ_TARGET_AVX2 void run_chunk(Tile t, int n_pix, int nc, int v_full, const int16_t* pack, const int32_t* bias,
                              const float* mult, const int32_t* fx_mult, const int32_t* fx_shift, int8_t* y) {
  const int blk_out = v_full * 8;
  const size_t blk_elems = static_cast<size_t>(t.n_seg) * t.seg_pairs * 2 * blk_out;
  const int16_t* seg0[kMaxSeg];
  for (int s = 0; s < t.n_seg; ++s) seg0[s] = t.seg[s];
  for (int b0 = 0; b0 < nc; b0 += blk_out) {
    const int nb = nc - b0 < blk_out ? nc - b0 : blk_out;
    const int v_n = (nb + 7) / 8;
    t.w = pack + static_cast<size_t>(b0 / blk_out) * blk_elems;
    t.bias = bias + b0;
    t.mult = mult != nullptr ? mult + b0 : nullptr;
    t.fx_mult = fx_mult != nullptr ? fx_mult + b0 : nullptr;
    t.fx_shift = fx_shift != nullptr ? fx_shift + b0 : nullptr;
    t.n_out = nb;
    for (int r = 0; r < n_pix;) {
      const int pr = n_pix - r < kMaxRows[v_n] ? n_pix - r : kMaxRows[v_n];
      for (int s = 0; s < t.n_seg; ++s) t.seg[s] = seg0[s] + r * t.a_stride;
      t.y = y + r * t.y_stride + b0;
      kTiles[v_n][pr](t);
      r += pr;
    }
  }
}

// dst[0, n) = int16(src - z); no read past src + n.
TZ_TARGET_AVX2 inline void convert(int16_t* dst, const int8_t* src, int n, int16_t z) {
  const __m256i zv = _mm256_set1_epi16(z);
  int i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(
        reinterpret_cast<__m256i*>(dst + i),
        _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))),
                         zv));
  for (; i < n; ++i) dst[i] = static_cast<int16_t>(src[i] - z);
}

inline void zero16(int16_t* dst, int n) { std::memset(dst, 0, static_cast<size_t>(n) * 2); }

// In-register transpose of an 8x8 matrix of dwords (r[i] = row i on entry, column i on exit).
TZ_TARGET_AVX2 inline void transpose8(__m256i r[8]) {
  __m256 t[8], u[8];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(_mm256_castsi256_ps(r[2 * i]), _mm256_castsi256_ps(r[2 * i + 1]));
    t[2 * i + 1] = _mm256_unpackhi_ps(_mm256_castsi256_ps(r[2 * i]), _mm256_castsi256_ps(r[2 * i + 1]));
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_castps_si256(_mm256_permute2f128_ps(u[c], u[4 + c], 0x20));
    r[4 + c] = _mm256_castps_si256(_mm256_permute2f128_ps(u[c], u[4 + c], 0x31));
  }
}

// Packs outputs [0, n) of rows w (k bytes, n_seg segments of seg_len bytes) into blocks of
// 8 * v_full outputs, each [n_seg][seg2/2][V][8][2] int16, every segment zero-padded to seg2
// values. Per 8 outputs and 8 pairs: 8 row loads (bytes past the segment read as 0, never past
// it), sign extension, one dword transpose.
TZ_TARGET_AVX2 void pack_weights(const int8_t* w, int k, int n_seg, int seg_len, int seg2, int n, int v_full,
                                 int16_t* pack) {
  const int seg_pairs = seg2 / 2;
  const int pairs = n_seg * seg_pairs;
  const int blk_out = v_full * 8;
  for (int b0 = 0; b0 < n; b0 += blk_out) {
    const int nb = n - b0 < blk_out ? n - b0 : blk_out;
    const int v_n = (nb + 7) / 8;
    int16_t* blk = pack + static_cast<size_t>(b0 / blk_out) * pairs * blk_out * 2;
    const size_t g_stride = static_cast<size_t>(v_n) * 16;
    for (int v = 0; v < v_n; ++v) {
      const int rows = nb - 8 * v < 8 ? nb - 8 * v : 8;
      const int8_t* row0 = w + static_cast<size_t>(b0 + 8 * v) * k;
      for (int sg = 0; sg < n_seg; ++sg) {
        for (int g0 = 0; g0 < seg_pairs; g0 += 8) {
          const int avail = seg_len - 2 * g0;  // bytes of the segment from this chunk on
          __m256i r[8];
#pragma GCC unroll 8
          for (int i = 0; i < 8; ++i) {
            __m128i b = _mm_setzero_si128();
            if (i < rows) {
              const int8_t* src = row0 + static_cast<size_t>(i) * k + sg * seg_len + 2 * g0;
              if (avail >= 16) {
                b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
              } else {
                alignas(16) int8_t tmp[16] = {};
                std::memcpy(tmp, src, static_cast<size_t>(avail));
                b = _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
              }
            }
            r[i] = _mm256_cvtepi8_epi16(b);
          }
          transpose8(r);
          const int ng = seg_pairs - g0 < 8 ? seg_pairs - g0 : 8;
          int16_t* d = blk + (static_cast<size_t>(sg) * seg_pairs + g0) * g_stride + v * 16;
          for (int g = 0; g < ng; ++g)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + g * g_stride), r[g]);
        }
      }
    }
  }
}

struct ChunkPlan {
  int v_full = 0, chunk = 0;
};
inline ChunkPlan plan_chunks(int k2) {
  ChunkPlan c;
  c.v_full = k2 > 0 ? kPackBytes / (k2 * 2 * 8) : 0;
  if (c.v_full > kMaxV) c.v_full = kMaxV;
  if (c.v_full < 1) return c;
  const int blk_out = c.v_full * 8;
  int blocks = static_cast<int>(kPackBytes / (static_cast<size_t>(k2) * 2 * blk_out));
  if (blocks > kMaxChunkOutputs / blk_out) blocks = kMaxChunkOutputs / blk_out;
  c.chunk = blocks * blk_out;
  return c;
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

TZ_TARGET_AVX2 void stage_pointwise(const ConvParams& p, const int8_t* x, int s0, int rows, int k2,
                                    int16_t* dst) {
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

// Staged GEMM (pointwise, or im2col for any groups). False when the shape does not fit.
// noinline: keeps this function's stack buffers out of its callers' frames (x86.h budget).
__attribute__((noinline)) TZ_TARGET_AVX2 bool conv_staged(const ConvParams& p, const int8_t* x,
                                                          const int8_t* w, const int32_t* bias,
                                                          const float* mult, int8_t* y, bool pointwise) {
  const int ci_pg = p.in_c / p.groups, co_pg = p.out_c / p.groups;
  const int k = pointwise ? p.in_c : p.kh * p.kw * ci_pg;
  const int k2 = (k + 1) & ~1;
  const ChunkPlan plan = plan_chunks(k2);
  int stage_rows = k2 > 0 ? kStageBytes / (k2 * 2) : 0;
  if (stage_rows > kStageRows) stage_rows = kStageRows;
  if (plan.v_full < 1 || stage_rows < 1) return false;

  alignas(64) int16_t pack[kPackBytes / 2];
  alignas(64) int16_t stage[kStageBytes / 2];
  const Requant8 rq = make_requant8(p, mult);
  Tile t;
  t.n_seg = 1;
  t.seg_pairs = k2 / 2;
  t.a_stride = static_cast<size_t>(k2);
  t.y_stride = static_cast<size_t>(p.out_c);
  t.rq = &rq;
  const int hw = p.out_h * p.out_w;
  for (int g = 0; g < p.groups; ++g) {
    for (int c0 = 0; c0 < co_pg; c0 += plan.chunk) {
      const int nc = co_pg - c0 < plan.chunk ? co_pg - c0 : plan.chunk;
      const int o0 = g * co_pg + c0;
      pack_weights(w + static_cast<size_t>(o0) * k, k, 1, k, k2, nc, plan.v_full, pack);
      for (int s0 = 0; s0 < hw; s0 += stage_rows) {
        const int rows = hw - s0 < stage_rows ? hw - s0 : stage_rows;
        if (pointwise)
          stage_pointwise(p, x, s0, rows, k2, stage);
        else
          stage_im2col(p, x, g, s0, rows, k2, stage);
        t.seg[0] = stage;
        run_chunk(t, rows, nc, plan.v_full, pack, bias + o0, offset(mult, o0), offset(p.fx_multiplier, o0),
                  offset(p.fx_shift, o0), y + static_cast<size_t>(s0) * p.out_c + o0);
      }
    }
  }
  return true;
}

// Direct dense conv (groups 1): input rows converted once into a ring of kh rows of int16
// (x - z), zeros for the horizontal padding; rows outside the image read a zero row.
// noinline: keeps this function's stack buffers out of its callers' frames (x86.h budget).
__attribute__((noinline)) TZ_TARGET_AVX2 bool conv_direct(const ConvParams& p, const int8_t* x,
                                                          const int8_t* w, const int32_t* bias,
                                                          const float* mult, int8_t* y) {
  if (p.groups != 1 || p.kh > kMaxSeg) return false;
  const int ci = p.in_c;
  const int seg_len = p.kw * ci, seg2 = (seg_len + 1) & ~1;
  const int k = p.kh * seg_len, k2 = p.kh * seg2;
  const ChunkPlan plan = plan_chunks(k2);
  if (plan.v_full < 1) return false;
  int pad_right = (p.out_w - 1) * p.stride_w + p.kw - p.pad_left - p.in_w;
  if (pad_right < 0) pad_right = 0;
  const int width = p.pad_left + p.in_w + pad_right;
  const size_t row_elems = (static_cast<size_t>(width) * ci + 2 + 31) & ~size_t(31);  // +2: last pair's slack
  if ((p.kh + 1) * row_elems * 2 > static_cast<size_t>(kStageBytes)) return false;

  alignas(64) int16_t pack[kPackBytes / 2];
  alignas(64) int16_t ring[kStageBytes / 2];
  int16_t* zero_row = ring + static_cast<size_t>(p.kh) * row_elems;
  zero16(zero_row, static_cast<int>(row_elems));
  const int16_t z = static_cast<int16_t>(p.x_zero);
  const Requant8 rq = make_requant8(p, mult);
  Tile t;
  t.n_seg = p.kh;
  t.seg_pairs = seg2 / 2;
  t.a_stride = static_cast<size_t>(p.stride_w) * ci;
  t.y_stride = static_cast<size_t>(p.out_c);
  t.rq = &rq;
  for (int c0 = 0; c0 < p.out_c; c0 += plan.chunk) {
    const int nc = p.out_c - c0 < plan.chunk ? p.out_c - c0 : plan.chunk;
    pack_weights(w + static_cast<size_t>(c0) * k, k, p.kh, seg_len, seg2, nc, plan.v_full, pack);
    int tag[kMaxSeg];
    for (int i = 0; i < p.kh; ++i) tag[i] = -1;
    for (int oy = 0; oy < p.out_h; ++oy) {
      for (int ky = 0; ky < p.kh; ++ky) {
        const int iy = oy * p.stride_h - p.pad_top + ky;
        if (iy < 0 || iy >= p.in_h) {
          t.seg[ky] = zero_row;
          continue;
        }
        const int slot = iy % p.kh;  // kh consecutive input rows: distinct slots
        int16_t* row = ring + static_cast<size_t>(slot) * row_elems;
        if (tag[slot] != iy) {
          zero16(row, p.pad_left * ci);
          convert(row + p.pad_left * ci, x + static_cast<size_t>(iy) * p.in_w * ci, p.in_w * ci, z);
          zero16(row + (p.pad_left + p.in_w) * ci, static_cast<int>(row_elems) - (p.pad_left + p.in_w) * ci);
          tag[slot] = iy;
        }
        t.seg[ky] = row;
      }
      run_chunk(t, p.out_w, nc, plan.v_full, pack, bias + c0, offset(mult, c0), offset(p.fx_multiplier, c0),
                offset(p.fx_shift, c0), y + static_cast<size_t>(oy) * p.out_w * p.out_c + c0);
    }
  }
  return true;
}

}  // namespace

void conv2d_1x1_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                   const float* mult, int8_t* y) {
  if (!is_int8(p.x_zero) || !conv_staged(p, x, w, bias, mult, y, /*pointwise=*/true))
    portable::conv2d_1x1_s8(p, x, w, bias, mult, y);
}

void conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias, const float* mult,
               int8_t* y) {
  if (!is_int8(p.x_zero)) return portable::conv2d_s8(p, x, w, bias, mult, y);
  if (conv_direct(p, x, w, bias, mult, y)) return;
  if (!conv_staged(p, x, w, bias, mult, y, /*pointwise=*/false)) portable::conv2d_s8(p, x, w, bias, mult, y);
}

}  // namespace tinyzo::x86::avx2
