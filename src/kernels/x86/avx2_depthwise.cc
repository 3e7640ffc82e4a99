// AVX2 depthwise convolution, vectorized across channels: the scheme of avx512_depthwise.cc
// with 16 channels per ymm and vpmaddwd + vpaddd in place of vpdpwssd. Input rows are converted
// once into a ring of kh rows of int16 (x - z_x) (zero outside the image), stored as pairs of
// horizontally adjacent pixels interleaved per channel; taps (ky, 2q), (ky, 2q + 1) are
// interleaved the same way, so one vpmaddwd adds two taps per channel. Each int16 product is at
// most 255 * 128 and each pair sum at most 65280: exact; the int32 sums are exact modulo 2^32.
#include <immintrin.h>

#include <cstring>

#include "avx2_common.h"
#include "tinyzo/kernels/x86.h"
#include "x86_common.h"

namespace tinyzo::x86::avx2 {
namespace {

constexpr int kC = 16;        // channels per block
constexpr int kPos = 4 * kC;  // bytes per ring position: lo and hi, 16 int16 each
constexpr int kRingBytes = 48 * 1024;
constexpr int kWPackBytes = 16 * 1024;
constexpr int kMaxKh = 16;
constexpr int kMaxR = 4;  // output pixels per register tile (2 accumulators each)

struct Dw {
  const ConvParams* p;
  const int8_t* x;
  int c0, nc;
  int npr;
  int ix_base;
  const uint8_t* wpack;
  const uint8_t* rows[kMaxKh];
  __m256 bias_f[2], mult[2];
  Fixed8 fx[2];  // the fixed-point rule's constants (rq->fixed)
  const Requant8* rq;
};

TZ_TARGET_AVX2 inline __m256i load_x16(const int8_t* p, int n, __m256i z) {
  __m128i b;
  if (n >= kC) {
    b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  } else {
    alignas(16) int8_t tmp[16];
    std::memcpy(tmp, p, static_cast<size_t>(n));
    // Lanes beyond n: any value works (their weights are 0 and their outputs are not stored).
    std::memset(tmp + n, 0, static_cast<size_t>(16 - n));
    b = _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
  }
  return _mm256_sub_epi16(_mm256_cvtepi8_epi16(b), z);
}

// [ky][q][lo, hi] int16 pairs (w[c][ky][2q], w[c][ky][2q+1]) at the dword lane unpacklo/hi_epi16
// gives channel c (channels 8L..8L+3 of 128-bit lane L in lo, 8L+4..8L+7 in hi).
// Vectorized with masked dword gathers in that lane order: lane j reads 4 bytes of its own
// channel's weight row at offset o = min(t, taps - 4) (never past the row, hence never past w);
// the pair (t, t + 1) sits at bytes t - o, t - o + 1. taps < 4: scalar dword writes.
TZ_TARGET_AVX2 void pack_dw_weights(const ConvParams& p, const int8_t* w, int c0, int nc, int npr,
                                    uint8_t* dst) {
  const int taps = p.kh * p.kw;
  if (taps >= 4) {
    __m256i idx[2], msk[2];
    for (int h = 0; h < 2; ++h) {
      alignas(32) int32_t ix[8], mk[8];
      for (int j = 0; j < 8; ++j) {
        const int c = (j / 4) * 8 + 4 * h + j % 4;
        ix[j] = c * taps;
        mk[j] = c < nc ? -1 : 0;
      }
      idx[h] = _mm256_load_si256(reinterpret_cast<const __m256i*>(ix));
      msk[h] = _mm256_load_si256(reinterpret_cast<const __m256i*>(mk));
    }
    const int8_t* wb = w + static_cast<size_t>(c0) * taps;
    const __m256i lo16 = _mm256_set1_epi32(0xFFFF);
    for (int ky = 0; ky < p.kh; ++ky)
      for (int q = 0; q < npr; ++q, dst += kPos) {
        const int t = ky * p.kw + 2 * q;
        const int o = t < taps - 4 ? t : taps - 4;
        const bool lone = 2 * q + 1 >= p.kw;
        const __m128i shift = _mm_cvtsi32_si128(8 * (t - o));
        for (int h = 0; h < 2; ++h) {
          __m256i d = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(),
                                                  reinterpret_cast<const int*>(wb + o), idx[h], msk[h], 1);
          d = _mm256_srl_epi32(d, shift);
          __m256i v = _mm256_and_si256(_mm256_srai_epi32(_mm256_slli_epi32(d, 24), 24), lo16);
          if (!lone)
            v = _mm256_or_si256(v, _mm256_slli_epi32(_mm256_srai_epi32(_mm256_slli_epi32(d, 16), 24), 16));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + h * 2 * kC), v);
        }
      }
    return;
  }
  std::memset(dst, 0, static_cast<size_t>(p.kh) * npr * kPos);
  for (int c = 0; c < nc; ++c) {
    const int8_t* wc = w + static_cast<size_t>(c0 + c) * taps;
    const int within = c % 8;
    const size_t lane_off = (within < 4 ? 0 : 2 * kC) + static_cast<size_t>((c / 8) * 4 + within % 4) * 4;
    for (int ky = 0; ky < p.kh; ++ky)
      for (int q = 0; q < npr; ++q) {
        const int kx = 2 * q;
        const uint32_t w0 = static_cast<uint16_t>(static_cast<int16_t>(wc[ky * p.kw + kx]));
        const uint32_t w1 =
            kx + 1 < p.kw ? static_cast<uint16_t>(static_cast<int16_t>(wc[ky * p.kw + kx + 1])) : 0u;
        const uint32_t v = w0 | (w1 << 16);
        std::memcpy(dst + (static_cast<size_t>(ky) * npr + q) * kPos + lane_off, &v, 4);
      }
  }
}

TZ_TARGET_AVX2 inline __m256i ring_x16(const Dw& d, const int8_t* xrow, int j, __m256i z) {
  const int ix = d.ix_base + j;
  if (ix < 0 || ix >= d.p->in_w) return _mm256_setzero_si256();
  return load_x16(xrow + static_cast<size_t>(ix) * d.p->in_c, d.nc, z);
}

TZ_TARGET_AVX2 void build_row(const Dw& d, int iy, int width, bool even_only, uint8_t* dst) {
  const ConvParams& p = *d.p;
  const __m256i z = _mm256_set1_epi16(static_cast<int16_t>(p.x_zero));
  const int8_t* xrow = d.x + static_cast<size_t>(iy) * p.in_w * p.in_c + d.c0;
  __m256i prev = ring_x16(d, xrow, 0, z);
  for (int j = 0; j < width; ++j) {
    const __m256i next = ring_x16(d, xrow, j + 1, z);
    if (!even_only || (j & 1) == 0) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + static_cast<size_t>(j) * kPos),
                          _mm256_unpacklo_epi16(prev, next));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + static_cast<size_t>(j) * kPos + 2 * kC),
                          _mm256_unpackhi_epi16(prev, next));
    }
    prev = next;
  }
}

template <int R>
TZ_TARGET_AVX2 void dw_tile(const Dw& d, int o, int8_t* y) {
  const ConvParams& p = *d.p;
  __m256i lo[R], hi[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_si256();
  for (int ky = 0; ky < p.kh; ++ky) {
    const uint8_t* row = d.rows[ky];
    if (row == nullptr) continue;
    const uint8_t* wr = d.wpack + static_cast<size_t>(ky) * d.npr * kPos;
    for (int q = 0; q < d.npr; ++q) {
      const __m256i wl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + q * kPos));
      const __m256i wh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + q * kPos + 2 * kC));
      const uint8_t* base = row + static_cast<size_t>(o * p.stride_w + 2 * q) * kPos;
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const uint8_t* pr = base + static_cast<size_t>(r) * p.stride_w * kPos;
        lo[r] = madd_acc(lo[r], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pr)), wl);
        hi[r] = madd_acc(hi[r], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pr + 2 * kC)), wh);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    // lo holds channels {0-3, 8-11}, hi {4-7, 12-15}.
    const __m256i a = _mm256_permute2x128_si256(lo[r], hi[r], 0x20);
    const __m256i b = _mm256_permute2x128_si256(lo[r], hi[r], 0x31);
    __m128i qa, qb;
    if (d.rq->fixed) {
      qa = narrow8(requant_fixed8(a, d.fx[0], *d.rq));
      qb = narrow8(requant_fixed8(b, d.fx[1], *d.rq));
    } else {
      qa = narrow8(requant8(a, d.bias_f[0], d.mult[0], *d.rq));
      qb = narrow8(requant8(b, d.bias_f[1], d.mult[1], *d.rq));
    }
    int8_t* yp = y + static_cast<size_t>(r) * p.out_c;
    if (d.nc >= 16) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(yp), _mm_unpacklo_epi64(qa, qb));
    } else {
      store_n8(yp, qa, d.nc);
      if (d.nc > 8) store_n8(yp + 8, qb, d.nc - 8);
    }
  }
}

TZ_TARGET_AVX2 void run_tile(const Dw& d, int o, int n, int8_t* y) {
  switch (n) {
    case 1:
      return dw_tile<1>(d, o, y);
    case 2:
      return dw_tile<2>(d, o, y);
    case 3:
      return dw_tile<3>(d, o, y);
    default:
      return dw_tile<4>(d, o, y);
  }
}

TZ_TARGET_AVX2 void dw_block(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                             const float* mult, int8_t* y, int c0, int nc, const Requant8& rq, uint8_t* ring,
                             uint8_t* wpack) {
  Dw d;
  d.p = &p;
  d.x = x;
  d.c0 = c0;
  d.nc = nc;
  d.npr = (p.kw + 1) / 2;
  d.wpack = wpack;
  d.rq = &rq;
  pack_dw_weights(p, w, c0, nc, d.npr, wpack);
  for (int h = 0; h < 2; ++h) {
    const int n = nc - 8 * h;
    d.bias_f[h] = _mm256_cvtepi32_ps(n > 0 ? load_n_i32(bias + c0 + 8 * h, n) : _mm256_setzero_si256());
    if (rq.fixed) {
      d.mult[h] = _mm256_setzero_ps();
      d.fx[h] = n > 0 ? load_fixed8(bias + c0 + 8 * h, p.fx_multiplier + c0 + 8 * h, p.fx_shift + c0 + 8 * h, n)
                      : Fixed8{};
    } else {
      d.mult[h] = n > 0 ? load_n_f32(mult + c0 + 8 * h, n) : _mm256_setzero_ps();
      d.fx[h] = Fixed8{};
    }
  }
  const int span = 2 * d.npr - 1;
  const int max_width = kRingBytes / (p.kh * kPos);
  int strip = (max_width - span - 1) / p.stride_w + 1;
  if (strip > p.out_w) strip = p.out_w;
  const bool even_only = p.stride_w % 2 == 0;
  for (int ox0 = 0; ox0 < p.out_w; ox0 += strip) {
    const int n_ox = p.out_w - ox0 < strip ? p.out_w - ox0 : strip;
    const int width = (n_ox - 1) * p.stride_w + span;
    d.ix_base = ox0 * p.stride_w - p.pad_left;
    int tag[kMaxKh];
    for (int i = 0; i < p.kh; ++i) tag[i] = -1;
    for (int oy = 0; oy < p.out_h; ++oy) {
      for (int ky = 0; ky < p.kh; ++ky) {
        const int iy = oy * p.stride_h - p.pad_top + ky;
        if (iy < 0 || iy >= p.in_h) {
          d.rows[ky] = nullptr;
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
        run_tile(d, o, n, yrow + static_cast<size_t>(o) * p.out_c);
      }
    }
  }
}

}  // namespace

void depthwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y) {
  const int npr = (p.kw + 1) / 2;
  const int span = 2 * npr - 1;
  const bool fits =
      p.kh <= kMaxKh && p.kh * npr * kPos <= kWPackBytes && kRingBytes / (p.kh * kPos) >= span + 1;
  if (!fits || p.groups != p.in_c || p.in_c != p.out_c || !is_int8(p.x_zero))
    return portable::depthwise_conv2d_s8(p, x, w, bias, mult, y);
  alignas(64) uint8_t ring[kRingBytes];
  alignas(64) uint8_t wpack[kWPackBytes];
  const Requant8 rq = make_requant8(p, mult);
  for (int c0 = 0; c0 < p.out_c; c0 += kC) {
    const int nc = p.out_c - c0 < kC ? p.out_c - c0 : kC;
    dw_block(p, x, w, bias, mult, y, c0, nc, rq, ring, wpack);
  }
}

}  // namespace tinyzo::x86::avx2
