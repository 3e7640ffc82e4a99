// AVX2 requantization of 8 int32 accumulators, bit for bit the scalar requantize() of
// tinyzo/kernels/requant.h. Internal to src/kernels/x86.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "x86_common.h"

namespace tinyzo::x86::avx2 {

struct Requant8 {
  __m256 y_scale;
  __m256 lo_f, hi_f;  // fast form: act range minus y_zero, as floats
  __m256i y_zero, lo, hi;
  bool fast;
  bool fixed;  // TFLite's fixed-point rule (ConvParams::fx_multiplier): requant_fixed8
};

TZ_TARGET_AVX2 inline Requant8 make_requant8(float y_scale, int32_t y_zero, int32_t lo, int32_t hi,
                                             bool fast) {
  Requant8 r;
  r.y_scale = _mm256_set1_ps(y_scale);
  r.lo_f = _mm256_set1_ps(static_cast<float>(int64_t{lo} - y_zero));
  r.hi_f = _mm256_set1_ps(static_cast<float>(int64_t{hi} - y_zero));
  r.y_zero = _mm256_set1_epi32(y_zero);
  r.lo = _mm256_set1_epi32(lo);
  r.hi = _mm256_set1_epi32(hi);
  r.fast = fast;
  r.fixed = false;
  return r;
}

TZ_TARGET_AVX2 inline Requant8 make_requant8(const ConvParams& p, const float* mult) {
  Requant8 r = make_requant8(p.y_scale, p.y_zero, p.act_min, p.act_max,
                             p.fx_multiplier == nullptr && conv_fast_requant_ok(p, mult));
  r.fixed = p.fx_multiplier != nullptr;
  return r;
}

// rne(v) + z_y clamped to the act range (see avx512_common.h for the two forms). cvtps_epi32
// rounds to nearest even in the default MXCSR mode, which every path (and the reference's own
// float arithmetic) assumes.
TZ_TARGET_AVX2 inline __m256i round_clamp8(__m256 v, const Requant8& r) {
  if (r.fast) {
    v = _mm256_min_ps(_mm256_max_ps(v, r.lo_f), r.hi_f);
    return _mm256_add_epi32(_mm256_cvtps_epi32(v), r.y_zero);
  }
  const __m256 ordered = _mm256_cmp_ps(v, v, _CMP_ORD_Q);
  // max_ps returns its second operand when v is NaN; the ordered mask then makes it 0.
  v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-1073741824.f)), _mm256_set1_ps(1073741824.f));
  __m256i q = _mm256_and_si256(_mm256_cvtps_epi32(v), _mm256_castps_si256(ordered));
  q = _mm256_add_epi32(q, r.y_zero);
  const __m256i below = _mm256_cmpgt_epi32(r.lo, q);
  return _mm256_blendv_epi8(_mm256_min_epi32(q, r.hi), r.lo, below);
}

// v = ((f32(acc) + bias_f) * mult) / y_scale (one binary32 rounding each), then round_clamp8.
TZ_TARGET_AVX2 inline __m256i requant8(__m256i acc, __m256 bias_f, __m256 mult, const Requant8& r) {
  const __m256 v = _mm256_mul_ps(_mm256_add_ps(_mm256_cvtepi32_ps(acc), bias_f), mult);
  return round_clamp8(_mm256_div_ps(v, r.y_scale), r);
}

// Loads n (<= 8) int32 / float, zero beyond, without reading past n.
TZ_TARGET_AVX2 inline __m256i load_n_i32(const int32_t* p, int n);

// The per-channel constants of TFLite's fixed-point rule for 8 consecutive output channels.
struct Fixed8 {
  __m256i bias, mult, left, right;  // left = max(shift, 0), right = max(-shift, 0)
  __m256i mask, half_mask;          // 2^right - 1 and its half (RoundingDivideByPOT)
};

TZ_TARGET_AVX2 inline Fixed8 load_fixed8(const int32_t* bias, const int32_t* mult, const int32_t* shift, int n) {
  Fixed8 f;
  f.bias = load_n_i32(bias, n);
  f.mult = load_n_i32(mult, n);
  const __m256i s = load_n_i32(shift, n);
  const __m256i zero = _mm256_setzero_si256();
  f.left = _mm256_max_epi32(s, zero);
  f.right = _mm256_max_epi32(_mm256_sub_epi32(zero, s), zero);
  // 1 << 31 is 0x80000000 and minus 1 gives 0x7FFFFFFF, as gemmlowp's (1ll << 31) - 1.
  f.mask = _mm256_sub_epi32(_mm256_sllv_epi32(_mm256_set1_epi32(1), f.right), _mm256_set1_epi32(1));
  f.half_mask = _mm256_srli_epi32(f.mask, 1);
  return f;
}

// requantize_fixed() of 8 accumulators, bit for bit (int32 result before the int8 narrowing).
//  - acc + bias and the left shift wrap modulo 2^32 (vpaddd, vpsllvd), as the scalar rule.
//  - SaturatingRoundingDoublingHighMul: trunc((ab + nudge) / 2^31) with nudge 2^30 (ab >= 0) or
//    1 - 2^30 (ab < 0) equals floor((ab + 2^30) / 2^31) in both cases (for ab < 0 the truncation
//    of a negative quotient is floor((ab + 1 - 2^30 + 2^31 - 1) / 2^31)). That is bits 31..62 of
//    the 64-bit ab + 2^30 (vpmuldq on even / odd lanes, a logical 64-bit shift). The result is
//    0x80000000 only for the overflow a = b = INT32_MIN (otherwise it lies in [-2^31 + 1,
//    2^31 - 1]), so xor with the equality mask turns exactly that case into INT32_MAX.
//  - RoundingDivideByPOT: (x >> right) + (remainder > (mask >> 1) + (x < 0)).
TZ_TARGET_AVX2 inline __m256i requant_fixed8(__m256i acc, const Fixed8& f, const Requant8& r) {
  const __m256i x = _mm256_sllv_epi32(_mm256_add_epi32(acc, f.bias), f.left);
  const __m256i half = _mm256_set1_epi64x(int64_t{1} << 30);
  const __m256i even = _mm256_add_epi64(_mm256_mul_epi32(x, f.mult), half);
  const __m256i odd =
      _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(f.mult, 32)), half);
  __m256i h = _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
  h = _mm256_xor_si256(h, _mm256_cmpeq_epi32(h, _mm256_set1_epi32(INT32_MIN)));
  const __m256i rem = _mm256_and_si256(h, f.mask);
  const __m256i thr = _mm256_add_epi32(f.half_mask, _mm256_srli_epi32(h, 31));
  __m256i q = _mm256_sub_epi32(_mm256_srav_epi32(h, f.right), _mm256_cmpgt_epi32(rem, thr));
  q = _mm256_add_epi32(q, r.y_zero);
  return _mm256_min_epi32(_mm256_max_epi32(q, r.lo), r.hi);
}

// acc += vpmaddwd(a, b) as inline asm with one explicit scratch register: with the intrinsics,
// GCC 12 spills accumulators of register-blocked tiles to the stack.
TZ_TARGET_AVX2 inline __m256i madd_acc(__m256i acc, __m256i a, __m256i b) {
  __m256i t;
  __asm__("vpmaddwd {%3, %2, %1|%1, %2, %3}\n\tvpaddd {%1, %0, %0|%0, %0, %1}"
          : "+x"(acc), "=&x"(t)
          : "x"(a), "x"(b));
  return acc;
}

// Low byte of each int32 lane (static_cast<int8_t>), in the low 8 bytes.
TZ_TARGET_AVX2 inline __m128i narrow8(__m256i q) {
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i b = _mm256_shuffle_epi8(q, pick);
  return _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
}

// Stores the low n (<= 8) bytes of v.
TZ_TARGET_AVX2 inline void store_n8(int8_t* dst, __m128i v, int n) {
  if (n >= 8) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), v);
    return;
  }
  alignas(16) int8_t tmp[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(tmp), v);
  std::memcpy(dst, tmp, static_cast<size_t>(n));
}

// Loads n (<= 8) int32 / float, zero beyond, without reading past n.
TZ_TARGET_AVX2 inline __m256i load_n_i32(const int32_t* p, int n) {
  if (n >= 8) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  alignas(32) int32_t tmp[8] = {};
  std::memcpy(tmp, p, static_cast<size_t>(n) * 4);
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(tmp));
}
TZ_TARGET_AVX2 inline __m256 load_n_f32(const float* p, int n) {
  if (n >= 8) return _mm256_loadu_ps(p);
  alignas(32) float tmp[8] = {};
  std::memcpy(tmp, p, static_cast<size_t>(n) * 4);
  return _mm256_load_ps(tmp);
}

}  // namespace tinyzo::x86::avx2
