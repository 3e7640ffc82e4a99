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
};

TZ_TARGET_AVX2 inline Requant8 make_requant8(float y_scale, int32_t y_zero, int32_t lo, int32_t hi,
                                             bool fast) {
  Requant8 r;
  r.y_scale = _mm256_set1_ps(y_scale);
  r.lo_f = _mm256_set1_ps(static_cast<float>(lo - y_zero));
  r.hi_f = _mm256_set1_ps(static_cast<float>(hi - y_zero));
  r.y_zero = _mm256_set1_epi32(y_zero);
  r.lo = _mm256_set1_epi32(lo);
  r.hi = _mm256_set1_epi32(hi);
  r.fast = fast;
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
