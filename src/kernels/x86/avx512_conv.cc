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
// feeds 16 outputs x 4 k; tiles of P output pixels x V vectors of accumulators stay in registers
// (P*V <= 24). The A rows of a tile are read as segments: one segment of k bytes from the staged
// rows (pointwise: x ^ 0x80; grouped convs: im2col), or, for a dense conv, kh segments of
// kw*C_in bytes read in place from a ring of staged input rows (direct convolution: no im2col;
// each segment of the weights is zero-padded to a multiple of 4 bytes).
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

constexpr int kMaxSeg = 16;

struct Tile {
  const uint8_t* seg[kMaxSeg];  // per segment: the first pixel's bytes
  int n_seg;                    // segments (kh for the direct conv, else 1)
  int seg_groups;               // 4-byte groups per segment
  size_t a_stride;              // bytes between consecutive pixels of the tile
  const int8_t* w;              // packed block: [n_seg][seg_groups][V][64]
  const int32_t* acc0;          // -(128 + z) * sum_k w[o][k] for the block's 16*V outputs
  const int32_t* bias;          // the block's first output
  const float* mult;            // float-scale rule (null for the fixed-point rule)
  const int32_t* fx_mult;       // fixed-point rule: the block's multipliers and shifts
  const int32_t* fx_shift;
  int n_out;        // valid outputs in the block (<= 16 * V)
  int8_t* y;        // output of the first pixel, first output of the block
  size_t y_stride;  // bytes between output pixels
  const Requant16* rq;
};

template <int P, int V, RequantForm kForm>
TZ_TARGET_AVX512 void gemm_tile(const Tile& t) {
  // Accumulators start at the correction, so they end at the reference's exact sum.
  __m512i acc[P][V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    const __m512i a0 = _mm512_loadu_si512(t.acc0 + v * 16);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) acc[p][v] = a0;
  }
  const size_t a_stride = t.a_stride;
  const int seg_groups = t.seg_groups;
  const int8_t* w = t.w;
  for (int s = 0; s < t.n_seg; ++s) {
    const uint8_t* a = t.seg[s];
    for (int g = 0; g < seg_groups; ++g, a += 4, w += V * 64) {
      __m512i wv[V];
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) wv[v] = _mm512_loadu_si512(w + v * 64);
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) {
        const __m512i xb = _mm512_set1_epi32(static_cast<int>(load_u32(a + p * a_stride)));
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[p][v] = dpbusd(acc[p][v], xb, wv[v]);
      }
    }
  }
  // Local copies: the byte stores below may alias anything reached through t.
  const Requant16 rq = *t.rq;
  int8_t* const y = t.y;
  const size_t y_stride = t.y_stride;
  const int n_out = t.n_out;
  const int32_t* const bias_p = t.bias;
  const float* const mult_p = t.mult;
  if constexpr (kForm == RequantForm::kFixed) {
    const int32_t* const fx_mult = t.fx_mult;
    const int32_t* const fx_shift = t.fx_shift;
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const __mmask16 m = mask16(n_out - v * 16);
      const Fixed16 f = load_fixed16(bias_p + v * 16, fx_mult + v * 16, fx_shift + v * 16, m);
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p)
        _mm_mask_storeu_epi8(y + p * y_stride + v * 16, m, requant_fixed16_i8(acc[p][v], f, rq));
    }
    return;
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    const __mmask16 m = mask16(n_out - v * 16);
    const __m512 bias_f = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, bias_p + v * 16));
    const __m512 mult = _mm512_maskz_loadu_ps(m, mult_p + v * 16);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      _mm_mask_storeu_epi8(y + p * y_stride + v * 16, m, requant16_i8<kForm>(acc[p][v], bias_f, mult, rq));
    }
  }
}

using TileFn = void (*)(const Tile&);

template <int V, RequantForm kForm, size_t... I>
constexpr std::array<TileFn, kMaxP + 1> make_tiles(std::index_sequence<I...>) {
  return {{nullptr, &gemm_tile<int(I) + 1, V, kForm>...}};
}
// Largest P per V (registers: P*V accumulators + V weights + 1 broadcast <= 32).
constexpr int kMaxRows[5] = {0, 12, 12, 8, 6};
// [form: kClamp, kNarrow, kFixed][V][P]; the kLong form is left to the portable kernels.
constexpr auto kClampForm = RequantForm::kClamp, kNarrowForm = RequantForm::kNarrow,
               kFixedForm = RequantForm::kFixed;
const std::array<TileFn, kMaxP + 1> kTiles[3][5] = {
    {
        {},
        make_tiles<1, kClampForm>(std::make_index_sequence<12>()),
        make_tiles<2, kClampForm>(std::make_index_sequence<12>()),
        make_tiles<3, kClampForm>(std::make_index_sequence<8>()),
        make_tiles<4, kClampForm>(std::make_index_sequence<6>()),
    },
    {
        {},
        make_tiles<1, kNarrowForm>(std::make_index_sequence<12>()),
        make_tiles<2, kNarrowForm>(std::make_index_sequence<12>()),
        make_tiles<3, kNarrowForm>(std::make_index_sequence<8>()),
        make_tiles<4, kNarrowForm>(std::make_index_sequence<6>()),
    },
    {
        {},
        make_tiles<1, kFixedForm>(std::make_index_sequence<12>()),
        make_tiles<2, kFixedForm>(std::make_index_sequence<12>()),
        make_tiles<3, kFixedForm>(std::make_index_sequence<8>()),
        make_tiles<4, kFixedForm>(std::make_index_sequence<6>()),
    },
};
inline int form_index(RequantForm f) {
  return f == RequantForm::kFixed ? 2 : (f == RequantForm::kNarrow ? 1 : 0);
}

// Runs the tiles of `n_pix` pixels (a_stride / y_stride apart) for every block of a packed
// chunk of nc outputs; t carries the segments of the first pixel and the shared fields.
// mult / fx_mult / fx_shift point at the chunk's first output (the unused rule's are null).
TZ_TARGET_AVX512 void run_chunk(Tile t, int n_pix, int nc, int v_full, const int8_t* pack,
                                const int32_t* acc0, const int32_t* bias, const float* mult,
                                const int32_t* fx_mult, const int32_t* fx_shift, int8_t* y) {
  const int blk_out = v_full * 16;
  const size_t blk_bytes = static_cast<size_t>(t.n_seg) * t.seg_groups * 4 * blk_out;
  const uint8_t* seg0[kMaxSeg];
  for (int s = 0; s < t.n_seg; ++s) seg0[s] = t.seg[s];
  for (int b0 = 0; b0 < nc; b0 += blk_out) {
    const int nb = nc - b0 < blk_out ? nc - b0 : blk_out;
    const int v_n = (nb + 15) / 16;
    t.w = pack + static_cast<size_t>(b0 / blk_out) * blk_bytes;
    t.acc0 = acc0 + b0;
    t.bias = bias + b0;
    t.mult = offset(mult, b0);
    t.fx_mult = offset(fx_mult, b0);
    t.fx_shift = offset(fx_shift, b0);
    t.n_out = nb;
    for (int r = 0; r < n_pix;) {
      const int pr = n_pix - r < kMaxRows[v_n] ? n_pix - r : kMaxRows[v_n];
      for (int s = 0; s < t.n_seg; ++s) t.seg[s] = seg0[s] + r * t.a_stride;
      t.y = y + r * t.y_stride + b0;
      kTiles[form_index(t.rq->form)][v_n][pr](t);
      r += pr;
    }
  }
}

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

// In-register transpose of a 16x16 matrix of dwords (r[i] = row i on entry, column i on exit).
TZ_TARGET_AVX512 inline void transpose16(__m512i r[16]) {
  __m512i a[16], b[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // b[4i + c], 128-bit lane L: rows 4i..4i+3 of column 4L + c.
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    b[4 * i + 0] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
    b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const __m512i s0 = _mm512_shuffle_i32x4(b[c], b[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512i s1 = _mm512_shuffle_i32x4(b[c], b[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512i s2 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512i s3 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
    r[c] = _mm512_shuffle_i32x4(s0, s2, _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + c] = _mm512_shuffle_i32x4(s0, s2, _MM_SHUFFLE(3, 1, 3, 1));
    r[8 + c] = _mm512_shuffle_i32x4(s1, s3, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + c] = _mm512_shuffle_i32x4(s1, s3, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// Packs outputs [0, n) of rows w (k bytes each, made of n_seg segments of seg_len bytes) into
// blocks of 16 * v_full outputs (the last block narrower), each [n_seg][seg4/4][V][16][4] with
// every segment zero-padded to seg4 bytes and zeros beyond n, and writes
// acc0[o] = -(128 + z) * sum_k w[o][k] (mod 2^32) for every packed lane (0 for the padding lanes).
// Per 16 outputs and 64 bytes of a segment: 16 masked row loads (never past the segment), one
// dword transpose, and the row sums from the packed vectors (vpdpbusd with u8 ones).
TZ_TARGET_AVX512 void pack_weights(const int8_t* w, int k, int n_seg, int seg_len, int seg4, int n,
                                   int v_full, int32_t z, int8_t* pack, int32_t* acc0) {
  const int seg_groups = seg4 / 4;
  const int groups = n_seg * seg_groups;
  const int blk_out = v_full * 16;
  const __m512i ones = _mm512_set1_epi8(1);
  const __m512i zc =
      _mm512_set1_epi32(static_cast<int32_t>(0u - static_cast<uint32_t>(128 + z)));  // -(128 + z)
  for (int b0 = 0; b0 < n; b0 += blk_out) {
    const int nb = n - b0 < blk_out ? n - b0 : blk_out;
    const int v_n = (nb + 15) / 16;
    int8_t* blk = pack + static_cast<size_t>(b0 / blk_out) * groups * blk_out * 4;
    const size_t g_stride = static_cast<size_t>(v_n) * 64;
    for (int v = 0; v < v_n; ++v) {
      const int rows = nb - 16 * v < 16 ? nb - 16 * v : 16;
      const int8_t* row0 = w + static_cast<size_t>(b0 + 16 * v) * k;
      __m512i sum = _mm512_setzero_si512();
      for (int sg = 0; sg < n_seg; ++sg) {
        for (int g0 = 0; g0 < seg_groups; g0 += 16) {
          const __mmask64 m = mask64(seg_len - 4 * g0);  // 0 past the segment: its zero padding
          __m512i r[16];
#pragma GCC unroll 16
          for (int i = 0; i < 16; ++i)
            r[i] = i < rows
                       ? _mm512_maskz_loadu_epi8(m, row0 + static_cast<size_t>(i) * k + sg * seg_len + 4 * g0)
                       : _mm512_setzero_si512();
          transpose16(r);
          const int ng = seg_groups - g0 < 16 ? seg_groups - g0 : 16;
          int8_t* d = blk + (static_cast<size_t>(sg) * seg_groups + g0) * g_stride + v * 64;
          for (int g = 0; g < ng; ++g) {
            _mm512_storeu_si512(d + g * g_stride, r[g]);
            sum = dpbusd(sum, ones, r[g]);
          }
        }
      }
      _mm512_storeu_si512(acc0 + b0 + 16 * v, _mm512_mullo_epi32(sum, zc));
    }
  }
}

// Output channels per packed chunk for k4 packed bytes per output, and the block width.
struct ChunkPlan {
  int v_full = 0, chunk = 0;
};
inline ChunkPlan plan_chunks(int k4) {
  ChunkPlan c;
  c.v_full = k4 > 0 ? kPackBytes / (k4 * 16) : 0;
  if (c.v_full > 4) c.v_full = 4;
  if (c.v_full < 1) return c;
  const int blk_out = c.v_full * 16;
  int blocks = static_cast<int>(kPackBytes / (static_cast<size_t>(k4) * blk_out));
  if (blocks > kMaxChunkOutputs / blk_out) blocks = kMaxChunkOutputs / blk_out;
  c.chunk = blocks * blk_out;
  return c;
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

// Staged GEMM: pointwise (rows = pixels) or im2col (any groups). Returns false (nothing
// written) when the shape does not fit the fixed buffers.
// noinline: keeps this function's stack buffers out of its callers' frames (x86.h budget).
__attribute__((noinline)) TZ_TARGET_AVX512 bool conv_staged(const ConvParams& p, const int8_t* x,
                                                            const int8_t* w, const int32_t* bias,
                                                            const float* mult, int8_t* y, bool pointwise) {
  const int ci_pg = p.in_c / p.groups, co_pg = p.out_c / p.groups;
  const int k = pointwise ? p.in_c : p.kh * p.kw * ci_pg;
  const int k4 = (k + 3) & ~3;
  const ChunkPlan plan = plan_chunks(k4);
  int stage_rows = k4 > 0 ? kStageBytes / k4 : 0;
  if (stage_rows > kStageRows) stage_rows = kStageRows;
  if (plan.v_full < 1 || stage_rows < 1) return false;

  const RequantForm form = conv_requant_form(p, bias, mult, k);
  if (form == RequantForm::kLong) return false;
  alignas(64) int8_t pack[kPackBytes];
  alignas(64) uint8_t stage[kStageBytes];
  alignas(64) int32_t acc0[kMaxChunkOutputs];
  const Requant16 rq = make_requant16(p.y_scale, p.y_zero, p.act_min, p.act_max, form);
  Tile t;
  t.n_seg = 1;
  t.seg_groups = k4 / 4;
  t.a_stride = static_cast<size_t>(k4);
  t.y_stride = static_cast<size_t>(p.out_c);
  t.rq = &rq;
  const int hw = p.out_h * p.out_w;
  for (int g = 0; g < p.groups; ++g) {
    for (int c0 = 0; c0 < co_pg; c0 += plan.chunk) {
      const int nc = co_pg - c0 < plan.chunk ? co_pg - c0 : plan.chunk;
      const int o0 = g * co_pg + c0;
      pack_weights(w + static_cast<size_t>(o0) * k, k, 1, k, k4, nc, plan.v_full, p.x_zero, pack, acc0);
      for (int s0 = 0; s0 < hw; s0 += stage_rows) {
        const int rows = hw - s0 < stage_rows ? hw - s0 : stage_rows;
        if (pointwise)
          stage_pointwise(p, x, s0, rows, k4, stage);
        else
          stage_im2col(p, x, g, s0, rows, k4, stage);
        t.seg[0] = stage;
        run_chunk(t, rows, nc, plan.v_full, pack, acc0, bias + o0, offset(mult, o0), offset(p.fx_multiplier, o0),
                  offset(p.fx_shift, o0), y + static_cast<size_t>(s0) * p.out_c + o0);
      }
    }
  }
  return true;
}

// Direct dense conv (groups 1): input rows staged once into a ring of kh rows as u8 with the
// horizontal padding (z + 128) included; vertical padding reads a row of z + 128. Returns false
// when the shape does not fit or the requantization needs its long form.
// noinline: keeps this function's stack buffers out of its callers' frames (x86.h budget).
__attribute__((noinline)) TZ_TARGET_AVX512 bool conv_direct(const ConvParams& p, const int8_t* x,
                                                            const int8_t* w, const int32_t* bias,
                                                            const float* mult, int8_t* y) {
  if (p.groups != 1 || p.kh > kMaxSeg) return false;
  const int ci = p.in_c;
  const int seg_len = p.kw * ci, seg4 = (seg_len + 3) & ~3;
  const int k = p.kh * seg_len, k4 = p.kh * seg4;
  const ChunkPlan plan = plan_chunks(k4);
  if (plan.v_full < 1) return false;
  int pad_right = (p.out_w - 1) * p.stride_w + p.kw - p.pad_left - p.in_w;
  if (pad_right < 0) pad_right = 0;
  const int width = p.pad_left + p.in_w + pad_right;
  const size_t row_bytes =
      (static_cast<size_t>(width) * ci + 4 + 63) & ~size_t(63);  // +4: last group's slack
  if ((p.kh + 1) * row_bytes > static_cast<size_t>(kStageBytes)) return false;

  const RequantForm form = conv_requant_form(p, bias, mult, k);
  if (form == RequantForm::kLong) return false;
  alignas(64) int8_t pack[kPackBytes];
  alignas(64) uint8_t ring[kStageBytes];
  alignas(64) int32_t acc0[kMaxChunkOutputs];
  const uint8_t pad = static_cast<uint8_t>(p.x_zero + 128);
  uint8_t* pad_row = ring + static_cast<size_t>(p.kh) * row_bytes;
  fill(pad_row, pad, static_cast<int>(row_bytes));
  const Requant16 rq = make_requant16(p.y_scale, p.y_zero, p.act_min, p.act_max, form);
  Tile t;
  t.n_seg = p.kh;
  t.seg_groups = seg4 / 4;
  t.a_stride = static_cast<size_t>(p.stride_w) * ci;
  t.y_stride = static_cast<size_t>(p.out_c);
  t.rq = &rq;
  for (int c0 = 0; c0 < p.out_c; c0 += plan.chunk) {
    const int nc = p.out_c - c0 < plan.chunk ? p.out_c - c0 : plan.chunk;
    pack_weights(w + static_cast<size_t>(c0) * k, k, p.kh, seg_len, seg4, nc, plan.v_full, p.x_zero, pack,
                 acc0);
    int tag[kMaxSeg];
    for (int i = 0; i < p.kh; ++i) tag[i] = -1;
    for (int oy = 0; oy < p.out_h; ++oy) {
      for (int ky = 0; ky < p.kh; ++ky) {
        const int iy = oy * p.stride_h - p.pad_top + ky;
        if (iy < 0 || iy >= p.in_h) {
          t.seg[ky] = pad_row;
          continue;
        }
        const int slot = iy % p.kh;  // kh consecutive input rows: distinct slots
        uint8_t* row = ring + static_cast<size_t>(slot) * row_bytes;
        if (tag[slot] != iy) {
          fill(row, pad, p.pad_left * ci);
          copy_xor(row + p.pad_left * ci, x + static_cast<size_t>(iy) * p.in_w * ci, p.in_w * ci);
          fill(row + (p.pad_left + p.in_w) * ci, pad,
               static_cast<int>(row_bytes) - (p.pad_left + p.in_w) * ci);
          tag[slot] = iy;
        }
        t.seg[ky] = row;
      }
      run_chunk(t, p.out_w, nc, plan.v_full, pack, acc0, bias + c0, offset(mult, c0), offset(p.fx_multiplier, c0),
                offset(p.fx_shift, c0), y + static_cast<size_t>(oy) * p.out_w * p.out_c + c0);
    }
  }
  return true;
}

}  // namespace

void conv2d_1x1_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                   const float* mult, int8_t* y) {
  // No padding: the correction is exact for any zero point (mod 2^32).
  if (!conv_staged(p, x, w, bias, mult, y, /*pointwise=*/true))
    portable::conv2d_1x1_s8(p, x, w, bias, mult, y);
}

void conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias, const float* mult,
               int8_t* y) {
  // Padding taps are staged as the byte z + 128, so z must be an int8 value.
  if (!is_int8(p.x_zero)) return portable::conv2d_s8(p, x, w, bias, mult, y);
  if (conv_direct(p, x, w, bias, mult, y)) return;
  if (!conv_staged(p, x, w, bias, mult, y, /*pointwise=*/false)) portable::conv2d_s8(p, x, w, bias, mult, y);
}

}  // namespace tinyzo::x86::avx512vnni
