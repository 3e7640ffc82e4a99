// AVX-512 VNNI depthwise convolution, vectorized across channels (NHWC: channels contiguous).
//
// Per block of 32 channels (zmm) or 16 channels (ymm, for C <= 16 and the last block):
//  - each input row the block needs is converted once into a ring of kh rows: int16 (x - z_x),
//    zero outside the image (so horizontal padding needs no branches), and stored as *pairs* of
//    horizontally adjacent pixels interleaved per channel: position j holds
//    unpacklo/hi_epi16(x16[j], x16[j + 1]);
//  - the weights of taps (ky, 2q) and (ky, 2q + 1) are interleaved the same way (a lone last tap
//    is paired with a zero weight);
//  - one vpdpwssd then adds (x[j] - z) * w[ky][2q] + (x[j+1] - z) * w[ky][2q+1] per channel.
// |x - z| <= 255 and |w| <= 128, so each int16 product and each pair sum is exact, and the int32
// accumulation is exact modulo 2^32 (vpdpwssd does not saturate): the accumulator equals the
// reference's. unpack works within 128-bit lanes, so the accumulators hold the channels
// permuted; one permute per 16 channels restores the order before requantization.
// GCC 12's AVX-512 headers raise a false -Wuninitialized on _mm512_undefined_* inside the
// unmasked intrinsics (GCC bug 105593); it must be off before the header is read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "avx512_common.h"
#include "tinyzo/kernels/x86.h"
#include "x86_common.h"

namespace tinyzo::x86::avx512vnni {
namespace {

constexpr int kRingBytes = 48 * 1024;
constexpr int kWPackBytes = 16 * 1024;
constexpr int kMaxKh = 16;
constexpr int kMaxR = 8;  // output pixels per register tile

// 32 channels in zmm.
struct Zmm {
  using V = __m512i;
  static constexpr int kC = 32;
  TZ_TARGET_AVX512 static V zero() { return _mm512_setzero_si512(); }
  TZ_TARGET_AVX512 static V load(const void* p) { return _mm512_loadu_si512(p); }
  TZ_TARGET_AVX512 static void store(void* p, V v) { _mm512_storeu_si512(p, v); }
  // int16 (x - z) of channels [0, n) (n <= 32), 0 beyond.
  TZ_TARGET_AVX512 static V x16(const int8_t* p, int n, V z) {
    if (n >= kC) return _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), z);
    const __mmask32 m = mask32(n);
    return _mm512_maskz_sub_epi16(m, _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, p)), z);
  }
  TZ_TARGET_AVX512 static V set16(int16_t v) { return _mm512_set1_epi16(v); }
  TZ_TARGET_AVX512 static V lo(V a, V b) { return _mm512_unpacklo_epi16(a, b); }
  TZ_TARGET_AVX512 static V hi(V a, V b) { return _mm512_unpackhi_epi16(a, b); }
  TZ_TARGET_AVX512 static V dp(V acc, V a, V b) { return dpwssd(acc, a, b); }
  TZ_TARGET_AVX512 static V dp_mem(V acc, V a, const void* p) { return dpwssd_mem(acc, a, p); }
  // Channels in order: out[0] = 0..15, out[1] = 16..31. lo holds {0-3, 8-11, 16-19, 24-27},
  // hi holds {4-7, 12-15, 20-23, 28-31} (dword lanes of 128-bit lanes 0..3).
  TZ_TARGET_AVX512 static void finish(V acc_lo, V acc_hi, __m512i out[2]) {
    const __m512i i0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i i1 = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    out[0] = _mm512_permutex2var_epi32(acc_lo, i0, acc_hi);
    out[1] = _mm512_permutex2var_epi32(acc_lo, i1, acc_hi);
  }
};

// 16 channels in ymm (AVX-512 VL + VNNI).
struct Ymm {
  using V = __m256i;
  static constexpr int kC = 16;
  TZ_TARGET_AVX512 static V zero() { return _mm256_setzero_si256(); }
  TZ_TARGET_AVX512 static V load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  TZ_TARGET_AVX512 static void store(void* p, V v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
  TZ_TARGET_AVX512 static V x16(const int8_t* p, int n, V z) {
    if (n >= kC) return _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), z);
    const __mmask16 m = mask16(n);
    return _mm256_maskz_sub_epi16(m, _mm256_cvtepi8_epi16(_mm_maskz_loadu_epi8(m, p)), z);
  }
  TZ_TARGET_AVX512 static V set16(int16_t v) { return _mm256_set1_epi16(v); }
  TZ_TARGET_AVX512 static V lo(V a, V b) { return _mm256_unpacklo_epi16(a, b); }
  TZ_TARGET_AVX512 static V hi(V a, V b) { return _mm256_unpackhi_epi16(a, b); }
  TZ_TARGET_AVX512 static V dp(V acc, V a, V b) { return dpwssd(acc, a, b); }
  TZ_TARGET_AVX512 static V dp_mem(V acc, V a, const void* p) { return dpwssd_mem(acc, a, p); }
  // lo holds {0-3, 8-11}, hi {4-7, 12-15}.
  TZ_TARGET_AVX512 static void finish(V acc_lo, V acc_hi, __m512i out[2]) {
    const __m256i a = _mm256_permute2x128_si256(acc_lo, acc_hi, 0x20);
    const __m256i b = _mm256_permute2x128_si256(acc_lo, acc_hi, 0x31);
    out[0] = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
  }
};

struct Dw {
  const ConvParams* p;
  const int8_t* x;
  int c0, nc;          // channel block
  int npr;             // tap pairs per kernel row
  int ox0;             // first output column of the strip
  int ix_base;         // input column of ring position 0
  const uint8_t* wpack;  // [kh][npr][lo, hi]
  const uint8_t* rows[kMaxKh];  // ring row of each ky for the current output row (or nullptr)
  __m512 bias_f[2], mult[2];
  const Requant16* rq;
};

// Packs the block's weights as [ky][q][lo, hi]: the int16 pairs (w[c][ky][2q], w[c][ky][2q+1])
// (0 for a missing tap or channel) at the dword lane unpacklo/hi_epi16 gives channel c: channels
// 8L..8L+3 of 128-bit lane L go to lo, 8L+4..8L+7 to hi.
//
// Vectorized with masked dword gathers in that lane order: lane j of lo reads 4 bytes of its own
// channel's weight row at offset o = min(t, taps - 4) (so never past the row, hence never past w),
// and the pair (t, t + 1) sits at bytes t - o, t - o + 1. Needs taps >= 4 (else scalar).
struct Gather32 {  // zmm: 32 channels, 16 per gather
  using G = __m512i;
  static constexpr int kC = 32;
  TZ_TARGET_AVX512 static G index(int half, int taps) {
    const int base = 4 * half;
    return _mm512_mullo_epi32(_mm512_setr_epi32(base + 0, base + 1, base + 2, base + 3, base + 8, base + 9, base + 10,
                                                base + 11, base + 16, base + 17, base + 18, base + 19, base + 24,
                                                base + 25, base + 26, base + 27),
                              _mm512_set1_epi32(taps));
  }
  TZ_TARGET_AVX512 static __mmask16 mask(int half, int nc) {
    __mmask16 m = 0;
    for (int j = 0; j < 16; ++j) m |= static_cast<__mmask16>(((j / 4) * 8 + 4 * half + j % 4 < nc) << j);
    return m;
  }
  TZ_TARGET_AVX512 static G gather(G idx, __mmask16 m, const int8_t* base) {
    return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, base, 1);
  }
  // dword -> (int16(byte k), lone ? 0 : int16(byte k + 1))
  TZ_TARGET_AVX512 static G pair(G d, int k, bool lone) {
    d = _mm512_srl_epi32(d, _mm_cvtsi32_si128(8 * k));
    const G w0 = _mm512_and_si512(_mm512_srai_epi32(_mm512_slli_epi32(d, 24), 24), _mm512_set1_epi32(0xFFFF));
    if (lone) return w0;
    return _mm512_or_si512(w0, _mm512_slli_epi32(_mm512_srai_epi32(_mm512_slli_epi32(d, 16), 24), 16));
  }
  TZ_TARGET_AVX512 static void store(uint8_t* p, G v) { _mm512_storeu_si512(p, v); }
};
struct Gather16 {  // ymm: 16 channels, 8 per gather
  using G = __m256i;
  static constexpr int kC = 16;
  TZ_TARGET_AVX512 static G index(int half, int taps) {
    const int base = 4 * half;
    return _mm256_mullo_epi32(_mm256_setr_epi32(base + 0, base + 1, base + 2, base + 3, base + 8, base + 9, base + 10, base + 11),
                              _mm256_set1_epi32(taps));
  }
  TZ_TARGET_AVX512 static __mmask8 mask(int half, int nc) {
    __mmask8 m = 0;
    for (int j = 0; j < 8; ++j) m |= static_cast<__mmask8>(((j / 4) * 8 + 4 * half + j % 4 < nc) << j);
    return m;
  }
  TZ_TARGET_AVX512 static G gather(G idx, __mmask8 m, const int8_t* base) {
    return _mm256_mmask_i32gather_epi32(_mm256_setzero_si256(), m, idx, base, 1);
  }
  TZ_TARGET_AVX512 static G pair(G d, int k, bool lone) {
    d = _mm256_srl_epi32(d, _mm_cvtsi32_si128(8 * k));
    const G w0 = _mm256_and_si256(_mm256_srai_epi32(_mm256_slli_epi32(d, 24), 24), _mm256_set1_epi32(0xFFFF));
    if (lone) return w0;
    return _mm256_or_si256(w0, _mm256_slli_epi32(_mm256_srai_epi32(_mm256_slli_epi32(d, 16), 24), 16));
  }
  TZ_TARGET_AVX512 static void store(uint8_t* p, G v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
};

template <class T>
TZ_TARGET_AVX512 void pack_dw_weights(const ConvParams& p, const int8_t* w, int c0, int nc, int npr,
                                      uint8_t* dst) {
  constexpr int kC = T::kC;
  using Gt = typename std::conditional<kC == 32, Gather32, Gather16>::type;
  const int taps = p.kh * p.kw;
  const size_t pair_bytes = 4 * kC;
  if (taps >= 4) {
    const typename Gt::G idx[2] = {Gt::index(0, taps), Gt::index(1, taps)};
    const auto m0 = Gt::mask(0, nc), m1 = Gt::mask(1, nc);
    const int8_t* wb = w + static_cast<size_t>(c0) * taps;
    for (int ky = 0; ky < p.kh; ++ky)
      for (int q = 0; q < npr; ++q, dst += pair_bytes) {
        const int t = ky * p.kw + 2 * q;
        const int o = t < taps - 4 ? t : taps - 4;
        const bool lone = 2 * q + 1 >= p.kw;
        Gt::store(dst, Gt::pair(Gt::gather(idx[0], m0, wb + o), t - o, lone));
        Gt::store(dst + 2 * kC, Gt::pair(Gt::gather(idx[1], m1, wb + o), t - o, lone));
      }
    return;
  }
  std::memset(dst, 0, static_cast<size_t>(p.kh) * npr * pair_bytes);
  for (int c = 0; c < nc; ++c) {
    const int8_t* wc = w + static_cast<size_t>(c0 + c) * taps;
    const int within = c % 8;
    const size_t lane_off = (within < 4 ? 0 : 2 * kC) + static_cast<size_t>((c / 8) * 4 + within % 4) * 4;
    for (int ky = 0; ky < p.kh; ++ky)
      for (int q = 0; q < npr; ++q) {
        const int kx = 2 * q;
        const uint32_t w0 = static_cast<uint16_t>(static_cast<int16_t>(wc[ky * p.kw + kx]));
        const uint32_t w1 = kx + 1 < p.kw ? static_cast<uint16_t>(static_cast<int16_t>(wc[ky * p.kw + kx + 1])) : 0u;
        const uint32_t v = w0 | (w1 << 16);
        std::memcpy(dst + (static_cast<size_t>(ky) * npr + q) * pair_bytes + lane_off, &v, 4);
      }
  }
}

// int16 (x - z) at ring position j of input row xrow; 0 outside the image.
template <class T>
TZ_TARGET_AVX512 inline typename T::V ring_x16(const Dw& d, const int8_t* xrow, int j, typename T::V z) {
  const int ix = d.ix_base + j;
  if (ix < 0 || ix >= d.p->in_w) return T::zero();
  return T::x16(xrow + static_cast<size_t>(ix) * d.p->in_c, d.nc, z);
}

// Fills ring row `dst` for input row iy: positions [0, width) of interleaved pairs.
template <class T>
TZ_TARGET_AVX512 void build_row(const Dw& d, int iy, int width, bool even_only, uint8_t* dst) {
  constexpr int kC = T::kC;
  const ConvParams& p = *d.p;
  const typename T::V z = T::set16(static_cast<int16_t>(p.x_zero));
  const int8_t* xrow = d.x + static_cast<size_t>(iy) * p.in_w * p.in_c + d.c0;
  typename T::V prev = ring_x16<T>(d, xrow, 0, z);
  for (int j = 0; j < width; ++j) {
    const typename T::V next = ring_x16<T>(d, xrow, j + 1, z);
    if (!even_only || (j & 1) == 0) {
      T::store(dst + static_cast<size_t>(j) * 4 * kC, T::lo(prev, next));
      T::store(dst + static_cast<size_t>(j) * 4 * kC + 2 * kC, T::hi(prev, next));
    }
    prev = next;
  }
}

// R consecutive output pixels starting at strip column `o` of the current output row.
template <class T, int R, RequantForm kForm>
TZ_TARGET_AVX512 void dw_tile(const Dw& d, int o, int8_t* y) {
  constexpr int kC = T::kC;
  const ConvParams& p = *d.p;
  typename T::V lo[R], hi[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = T::zero();
  const size_t pos_bytes = 4 * kC;
  for (int ky = 0; ky < p.kh; ++ky) {
    const uint8_t* row = d.rows[ky];
    if (row == nullptr) continue;  // outside the image: contributes 0
    const uint8_t* wr = d.wpack + static_cast<size_t>(ky) * d.npr * pos_bytes;
    for (int q = 0; q < d.npr; ++q) {
      const typename T::V wl = T::load(wr + q * pos_bytes), wh = T::load(wr + q * pos_bytes + 2 * kC);
      const uint8_t* base = row + static_cast<size_t>(o * p.stride_w + 2 * q) * pos_bytes;
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const uint8_t* pr = base + static_cast<size_t>(r) * p.stride_w * pos_bytes;
        lo[r] = T::dp_mem(lo[r], wl, pr);  // the product is symmetric: weights x ring pair
        hi[r] = T::dp_mem(hi[r], wh, pr + 2 * kC);
      }
    }
  }
  // Local copies: the byte stores below may alias anything reached through d.
  const Requant16 rq = *d.rq;
  const __m512 bias0 = d.bias_f[0], bias1 = d.bias_f[1], mult0 = d.mult[0], mult1 = d.mult[1];
  const __mmask32 m = mask32(d.nc);
  const size_t y_stride = static_cast<size_t>(p.out_c);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    __m512i acc[2];
    T::finish(lo[r], hi[r], acc);
    const __m128i b0 = requant16_i8<kForm>(acc[0], bias0, mult0, rq);
    int8_t* yp = y + r * y_stride;
    if constexpr (kC == 32) {
      const __m128i b1 = requant16_i8<kForm>(acc[1], bias1, mult1, rq);
      _mm256_mask_storeu_epi8(yp, m, _mm256_inserti128_si256(_mm256_castsi128_si256(b0), b1, 1));
    } else {
      _mm_mask_storeu_epi8(yp, static_cast<__mmask16>(m), b0);
    }
  }
}

template <class T, RequantForm kForm>
TZ_TARGET_AVX512 void run_tile(const Dw& d, int o, int n, int8_t* y) {
  switch (n) {
    case 1: return dw_tile<T, 1, kForm>(d, o, y);
    case 2: return dw_tile<T, 2, kForm>(d, o, y);
    case 3: return dw_tile<T, 3, kForm>(d, o, y);
    case 4: return dw_tile<T, 4, kForm>(d, o, y);
    case 5: return dw_tile<T, 5, kForm>(d, o, y);
    case 6: return dw_tile<T, 6, kForm>(d, o, y);
    case 7: return dw_tile<T, 7, kForm>(d, o, y);
    default: return dw_tile<T, 8, kForm>(d, o, y);
  }
}

// One channel block (T::kC wide, nc valid) over the whole output.
template <class T>
TZ_TARGET_AVX512 void dw_block(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                               const float* mult, int8_t* y, int c0, int nc, const Requant16& rq, uint8_t* ring,
                               uint8_t* wpack) {
  constexpr int kC = T::kC;
  const size_t pos_bytes = 4 * kC;
  Dw d;
  d.p = &p;
  d.x = x;
  d.c0 = c0;
  d.nc = nc;
  d.npr = (p.kw + 1) / 2;
  d.wpack = wpack;
  d.rq = &rq;
  pack_dw_weights<T>(p, w, c0, nc, d.npr, wpack);
  for (int h = 0; h < 2; ++h) {
    const int n = nc - 16 * h;
    const __mmask16 m = n > 0 ? mask16(n) : __mmask16(0);
    d.bias_f[h] = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, bias + c0 + 16 * h));
    d.mult[h] = _mm512_maskz_loadu_ps(m, mult + c0 + 16 * h);
  }
  // Strip of output columns whose kh ring rows fit kRingBytes.
  const int span = 2 * d.npr - 1;  // ring positions one output needs beyond its first
  const int max_width = kRingBytes / (p.kh * static_cast<int>(pos_bytes));
  int strip = (max_width - span - 1) / p.stride_w + 1;
  if (strip > p.out_w) strip = p.out_w;
  const bool even_only = p.stride_w % 2 == 0;
  for (int ox0 = 0; ox0 < p.out_w; ox0 += strip) {
    const int n_ox = p.out_w - ox0 < strip ? p.out_w - ox0 : strip;
    const int width = (n_ox - 1) * p.stride_w + span;
    d.ox0 = ox0;
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
        // kh consecutive input rows map to distinct ring slots.
        const int slot = iy % p.kh;
        uint8_t* row = ring + static_cast<size_t>(slot) * max_width * pos_bytes;
        if (tag[slot] != iy) {
          build_row<T>(d, iy, width, even_only, row);
          tag[slot] = iy;
        }
        d.rows[ky] = row;
      }
      int8_t* yrow = y + (static_cast<size_t>(oy) * p.out_w + ox0) * p.out_c + c0;
      for (int o = 0; o < n_ox; o += kMaxR) {
        const int n = n_ox - o < kMaxR ? n_ox - o : kMaxR;
        if (rq.form == RequantForm::kNarrow)
          run_tile<T, RequantForm::kNarrow>(d, o, n, yrow + static_cast<size_t>(o) * p.out_c);
        else
          run_tile<T, RequantForm::kClamp>(d, o, n, yrow + static_cast<size_t>(o) * p.out_c);
      }
    }
  }
}

}  // namespace

void depthwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y) {
  const int npr = (p.kw + 1) / 2;
  const int span = 2 * npr - 1;
  const bool fits = p.kh <= kMaxKh && p.kh * npr * 4 * Zmm::kC <= kWPackBytes &&
                    kRingBytes / (p.kh * 4 * Zmm::kC) >= span + 1;
  const RequantForm form = conv_requant_form(p, bias, mult, p.kh * p.kw);
  if (!fits || p.groups != p.in_c || p.in_c != p.out_c || !is_int8(p.x_zero) || form == RequantForm::kLong)
    return portable::depthwise_conv2d_s8(p, x, w, bias, mult, y);
  alignas(64) uint8_t ring[kRingBytes];
  alignas(64) uint8_t wpack[kWPackBytes];
  const Requant16 rq = make_requant16(p.y_scale, p.y_zero, p.act_min, p.act_max, form);
  int c0 = 0;
  for (; p.out_c - c0 > 16; c0 += 32) {
    const int nc = p.out_c - c0 < 32 ? p.out_c - c0 : 32;
    dw_block<Zmm>(p, x, w, bias, mult, y, c0, nc, rq, ring, wpack);
  }
  if (c0 < p.out_c) dw_block<Ymm>(p, x, w, bias, mult, y, c0, p.out_c - c0, rq, ring, wpack);
}

}  // namespace tinyzo::x86::avx512vnni
