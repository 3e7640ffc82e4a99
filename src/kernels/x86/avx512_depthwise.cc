// AVX-512 VNNI depthwise convolution, vectorized across channels (NHWC: channels contiguous).
//
// vpdpbusd adds four u8 x s8 products per int32 lane; a lane here is one channel and the four
// products are four horizontally adjacent taps (kx = 4g .. 4g + 3) of one kernel row. So, per
// block of 16 channels:
//  - each input row the block needs is staged once into a ring of kh rows; position j holds, per
//    channel, the bytes u[j], u[j+1], u[j+2], u[j+3] with u = x + 128 (x ^ 0x80) and u = z + 128
//    outside the image (so padding contributes exactly like x = z);
//  - the weights of row ky, taps 4g .. 4g + 3 (0 past kw) are packed as one zmm;
//  - output pixel ox accumulates vpdpbusd(ring[ky][ox * stride + 4g], w[ky][g]) over ky and g,
//    starting from -(128 + z) * sum_t w[c][t], so it ends at sum_t (x - z) w, exactly the
//    reference's int32 accumulator (all arithmetic is modulo 2^32 and vpdpbusd does not saturate).
// Channels stay in natural order, so requantization and stores need no permute.
// GCC 12's AVX-512 headers raise a false -Wuninitialized on _mm512_undefined_* inside the
// unmasked intrinsics (GCC bug 105593); it must be off before the header is read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "avx512_common.h"
#include "tinyzo/kernels/x86.h"
#include "x86_common.h"

namespace tinyzo::x86::avx512vnni {
namespace {

constexpr int kC = 16;    // channels per block (one zmm of int32 lanes)
constexpr int kPos = 64;  // bytes per ring position: 16 channels x 4 taps
constexpr int kRingBytes = 48 * 1024;
constexpr int kMaxKh = 16;
constexpr int kMaxGroups = 64;  // kh * ceil(kw / 4) packed weight vectors
constexpr int kMaxR = 8;        // output pixels per register tile

struct Dw {
  const ConvParams* p;
  const int8_t* x;
  int c0, nc;                   // channel block
  int groups;                   // ceil(kw / 4): weight vectors per kernel row
  int ix_base;                  // input column of ring column 0
  const __m512i* wpack;         // [kh][groups]
  const uint8_t* rows[kMaxKh];  // ring row of each ky for the current output row
  __m512i acc0;                 // -(128 + z) * sum_t w[c][t]
  __m512 bias_f, mult;
  Fixed16 fx;  // the fixed-point rule's constants (rq->form == kFixed)
  const Requant16* rq;
};

// Packs the block's weights: wpack[ky * groups + g] lane c = bytes w[c][ky][4g .. 4g + 3] (0 past
// kw and past nc), and returns acc0. Vectorized with masked dword gathers: lane c reads 4 bytes of
// its own channel's weight row at offset o = min(t, taps - 4), so never past the row (hence never
// past w), and the wanted bytes start at t - o. Needs taps >= 4 (else scalar).
TZ_TARGET_AVX512 __m512i pack_dw_weights(const ConvParams& p, const int8_t* w, int c0, int nc, int groups,
                                         __m512i* dst) {
  const int taps = p.kh * p.kw;
  const __mmask16 cm = mask16(nc);
  __m512i sum = _mm512_setzero_si512();
  const __m512i ones = _mm512_set1_epi8(1);
  if (taps >= 4) {
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(taps));
    const int8_t* wb = w + static_cast<size_t>(c0) * taps;
    for (int ky = 0; ky < p.kh; ++ky)
      for (int g = 0; g < groups; ++g) {
        const int t = ky * p.kw + 4 * g;
        const int o = t < taps - 4 ? t : taps - 4;
        const int valid = p.kw - 4 * g < 4 ? p.kw - 4 * g : 4;  // bytes of this row in the group
        __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), cm, idx, wb + o, 1);
        v = _mm512_srl_epi32(v, _mm_cvtsi32_si128(8 * (t - o)));
        if (valid < 4)
          v = _mm512_and_si512(v, _mm512_set1_epi32(static_cast<int32_t>((1u << (8 * valid)) - 1u)));
        dst[ky * groups + g] = v;
        sum = dpbusd(sum, ones, v);
      }
  } else {
    alignas(64) int8_t b[kPos];
    for (int ky = 0; ky < p.kh; ++ky)
      for (int g = 0; g < groups; ++g) {
        std::memset(b, 0, sizeof b);
        for (int c = 0; c < nc; ++c)
          for (int i = 0; i < 4 && 4 * g + i < p.kw; ++i)
            b[4 * c + i] = w[(c0 + c) * taps + ky * p.kw + 4 * g + i];
        const __m512i v = _mm512_load_si512(b);
        dst[ky * groups + g] = v;
        sum = dpbusd(sum, ones, v);
      }
  }
  const int32_t neg_zc = static_cast<int32_t>(0u - static_cast<uint32_t>(128 + p.x_zero));
  return _mm512_mullo_epi32(sum, _mm512_set1_epi32(neg_zc));
}

// Interleaves four u8 pixels per channel into ring position q: a[c] b[c] c[c] e[c].
TZ_TARGET_AVX512 inline void put_position(uint8_t* q, __m128i a, __m128i b, __m128i c, __m128i e) {
  const __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
  const __m128i ce_lo = _mm_unpacklo_epi8(c, e), ce_hi = _mm_unpackhi_epi8(c, e);
  const __m256i lo = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(ab_lo, ce_lo)),
                                             _mm_unpackhi_epi16(ab_lo, ce_lo), 1);  // channels 0-7
  const __m256i hi = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(ab_hi, ce_hi)),
                                             _mm_unpackhi_epi16(ab_hi, ce_hi), 1);  // 8-15
  _mm512_storeu_si512(q, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
}

// Stages ring row `dst` for input row iy: positions [0, width) (only even ones if even_only).
// Columns are read through ring_pixel() only near the image borders; inside, unchecked loads.
TZ_TARGET_AVX512 void build_row(const Dw& d, int iy, int width, bool even_only, uint8_t* dst) {
  const ConvParams& p = *d.p;
  const __m128i pad = _mm_set1_epi8(static_cast<char>(p.x_zero + 128));
  const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));
  const __mmask16 cm = mask16(d.nc);
  const int8_t* xrow = d.x + static_cast<size_t>(iy) * p.in_w * p.in_c + d.c0;
  const size_t cstride = static_cast<size_t>(p.in_c);
  // Columns col with 0 <= ix_base + col < in_w are inside the image.
  const int in_lo = -d.ix_base, in_hi = p.in_w - d.ix_base;  // [in_lo, in_hi)
  const int8_t* col0 = xrow + static_cast<ptrdiff_t>(d.ix_base) * static_cast<ptrdiff_t>(cstride);
  auto column = [&](int col) TZ_TARGET_AVX512 -> __m128i {
    if (col < in_lo || col >= in_hi) return pad;
    return _mm_xor_si128(
        _mm_maskz_loadu_epi8(cm, col0 + static_cast<ptrdiff_t>(col) * static_cast<ptrdiff_t>(cstride)), flip);
  };
  const int step = even_only ? 2 : 1;
  __m128i a = column(0), b = column(1), c = column(2);
  for (int j = 0; j < width; j += step) {
    const __m128i e = column(j + 3);
    put_position(dst + static_cast<size_t>(j) * kPos, a, b, c, e);
    if (even_only) {
      const __m128i f = column(j + 4);
      a = c;
      b = e;
      c = f;
    } else {
      a = b;
      b = c;
      c = e;
    }
  }
}

// R consecutive output pixels starting at strip column `o` of the current output row.
template <int R, RequantForm kForm>
TZ_TARGET_AVX512 void dw_tile(const Dw& d, int o, int8_t* y) {
  const ConvParams& p = *d.p;
  const size_t step = static_cast<size_t>(p.stride_w) * kPos;
  __m512i acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = d.acc0;
  for (int ky = 0; ky < p.kh; ++ky) {
    const uint8_t* row = d.rows[ky] + o * step;
    const __m512i* wr = d.wpack + ky * d.groups;
    for (int g = 0; g < d.groups; ++g) {
      const __m512i wv = wr[g];
      const uint8_t* base = row + static_cast<size_t>(g) * 4 * kPos;
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r] = dpbusd(acc[r], _mm512_loadu_si512(base + r * step), wv);
    }
  }
  // Local copies: the byte stores below may alias anything reached through d.
  const Requant16 rq = *d.rq;
  const __m512 bias_f = d.bias_f, mult = d.mult;
  const __mmask16 m = mask16(d.nc);
  const size_t y_stride = static_cast<size_t>(p.out_c);
  if constexpr (kForm == RequantForm::kFixed) {
    const Fixed16 fx = d.fx;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) _mm_mask_storeu_epi8(y + r * y_stride, m, requant_fixed16_i8(acc[r], fx, rq));
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      _mm_mask_storeu_epi8(y + r * y_stride, m, requant16_i8<kForm>(acc[r], bias_f, mult, rq));
  }
}

template <RequantForm kForm>
TZ_TARGET_AVX512 void run_tile(const Dw& d, int o, int n, int8_t* y) {
  switch (n) {
    case 1:
      return dw_tile<1, kForm>(d, o, y);
    case 2:
      return dw_tile<2, kForm>(d, o, y);
    case 3:
      return dw_tile<3, kForm>(d, o, y);
    case 4:
      return dw_tile<4, kForm>(d, o, y);
    case 5:
      return dw_tile<5, kForm>(d, o, y);
    case 6:
      return dw_tile<6, kForm>(d, o, y);
    case 7:
      return dw_tile<7, kForm>(d, o, y);
    default:
      return dw_tile<8, kForm>(d, o, y);
  }
}

// Ring positions one output row needs beyond its first pixel's, for `groups` weight vectors.
inline int span(int groups) { return 4 * (groups - 1) + 1; }

// One block of 16 channels (nc valid) over the whole output.
TZ_TARGET_AVX512 void dw_block(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                               const float* mult, int8_t* y, int c0, int nc, const Requant16& rq,
                               uint8_t* ring, __m512i* wpack) {
  Dw d;
  d.p = &p;
  d.x = x;
  d.c0 = c0;
  d.nc = nc;
  d.groups = (p.kw + 3) / 4;
  d.wpack = wpack;
  d.rq = &rq;
  d.acc0 = pack_dw_weights(p, w, c0, nc, d.groups, wpack);
  const __mmask16 m = mask16(nc);
  d.bias_f = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, bias + c0));
  if (rq.form == RequantForm::kFixed) {
    d.mult = _mm512_setzero_ps();
    d.fx = load_fixed16(bias + c0, p.fx_multiplier + c0, p.fx_shift + c0, m);
  } else {
    d.mult = _mm512_maskz_loadu_ps(m, mult + c0);
    d.fx = Fixed16{};
  }
  // Strip of output columns whose kh ring rows plus one padding row fit kRingBytes.
  const int max_width = kRingBytes / ((p.kh + 1) * kPos);
  int strip = (max_width - span(d.groups)) / p.stride_w + 1;
  if (strip > p.out_w) strip = p.out_w;
  const bool even_only = p.stride_w % 2 == 0;  // then every position read is even
  // Rows outside the image read z + 128 everywhere: their products cancel against acc0 like
  // any padding tap.
  uint8_t* const pad_row = ring + static_cast<size_t>(p.kh) * max_width * kPos;
  int pad_width = 0;  // positions of pad_row filled so far
  for (int ox0 = 0; ox0 < p.out_w; ox0 += strip) {
    const int n_ox = p.out_w - ox0 < strip ? p.out_w - ox0 : strip;
    const int width = (n_ox - 1) * p.stride_w + span(d.groups);
    d.ix_base = ox0 * p.stride_w - p.pad_left;
    int tag[kMaxKh];
    for (int i = 0; i < p.kh; ++i) tag[i] = -1;
    for (int oy = 0; oy < p.out_h; ++oy) {
      for (int ky = 0; ky < p.kh; ++ky) {
        const int iy = oy * p.stride_h - p.pad_top + ky;
        if (iy < 0 || iy >= p.in_h) {
          if (pad_width < width) {
            std::memset(pad_row, p.x_zero + 128, static_cast<size_t>(width) * kPos);
            pad_width = width;
          }
          d.rows[ky] = pad_row;
          continue;
        }
        const int slot = iy % p.kh;  // kh consecutive input rows: distinct slots
        uint8_t* row = ring + static_cast<size_t>(slot) * max_width * kPos;
        if (tag[slot] != iy) {
          build_row(d, iy, width, even_only, row);
          tag[slot] = iy;
        }
        d.rows[ky] = row;
      }
      int8_t* yrow = y + (static_cast<size_t>(oy) * p.out_w + ox0) * p.out_c + c0;
      for (int o = 0; o < n_ox; o += kMaxR) {
        const int n = n_ox - o < kMaxR ? n_ox - o : kMaxR;
        if (rq.form == RequantForm::kFixed)
          run_tile<RequantForm::kFixed>(d, o, n, yrow + static_cast<size_t>(o) * p.out_c);
        else if (rq.form == RequantForm::kNarrow)
          run_tile<RequantForm::kNarrow>(d, o, n, yrow + static_cast<size_t>(o) * p.out_c);
        else
          run_tile<RequantForm::kClamp>(d, o, n, yrow + static_cast<size_t>(o) * p.out_c);
      }
    }
  }
}

}  // namespace

void depthwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y) {
  const int groups = (p.kw + 3) / 4;
  const bool fits =
      p.kh <= kMaxKh && p.kh * groups <= kMaxGroups && kRingBytes / ((p.kh + 1) * kPos) >= span(groups);
  const RequantForm form = conv_requant_form(p, bias, mult, p.kh * p.kw);
  if (!fits || p.groups != p.in_c || p.in_c != p.out_c || !is_int8(p.x_zero) || form == RequantForm::kLong)
    return portable::depthwise_conv2d_s8(p, x, w, bias, mult, y);
  alignas(64) uint8_t ring[kRingBytes];
  __m512i wpack[kMaxGroups];
  const Requant16 rq = make_requant16(p.y_scale, p.y_zero, p.act_min, p.act_max, form);
  for (int c0 = 0; c0 < p.out_c; c0 += kC) {
    const int nc = p.out_c - c0 < kC ? p.out_c - c0 : kC;
    dw_block(p, x, w, bias, mult, y, c0, nc, rq, ring, wpack);
  }
}

}  // namespace tinyzo::x86::avx512vnni
