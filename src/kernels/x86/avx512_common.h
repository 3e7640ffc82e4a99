// AVX-512 requantization of 16 int32 accumulators, bit for bit the scalar requantize() of
// tinyzo/kernels/requant.h. Internal to src/kernels/x86.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "x86_common.h"

namespace tinyzo::x86::avx512vnni {

constexpr int kRoundRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

struct Requant16 {
  __m512 y_scale;
  __m512 lo_f, hi_f;  // kClamp: act range minus y_zero, as floats
  __m512i y_zero, lo, hi;
  __m128i lo8, hi8;  // kNarrow: act range as int8
  RequantForm form;
  bool fast;  // form != kLong
};

TZ_TARGET_AVX512 inline Requant16 make_requant16(float y_scale, int32_t y_zero, int32_t lo, int32_t hi,
                                                 RequantForm form) {
  Requant16 r;
  r.y_scale = _mm512_set1_ps(y_scale);
  r.lo_f = _mm512_set1_ps(static_cast<float>(int64_t{lo} - y_zero));
  r.hi_f = _mm512_set1_ps(static_cast<float>(int64_t{hi} - y_zero));
  r.y_zero = _mm512_set1_epi32(y_zero);
  r.lo = _mm512_set1_epi32(lo);
  r.hi = _mm512_set1_epi32(hi);
  r.lo8 = _mm_set1_epi8(static_cast<char>(lo));
  r.hi8 = _mm_set1_epi8(static_cast<char>(hi));
  r.form = form;
  r.fast = form != RequantForm::kLong;
  return r;
}

// rne(v) + z_y clamped to the act range, per requantize() / round_half_even():
//  - fast form (requant_fast_ok): rne(clamp(v, lo - z, hi - z)) + z. The embedded-rounding
//    conversion is round-to-nearest-even whatever MXCSR says.
//  - long form: round_half_even() exactly: NaN -> 0, saturation at +-2^30, then + z and
//    clamp_i32 (including its behaviour for lo > hi).
template <bool kFast>
TZ_TARGET_AVX512 inline __m512i round_clamp16(__m512 v, const Requant16& r) {
  if constexpr (kFast) {
    v = _mm512_min_ps(_mm512_max_ps(v, r.lo_f), r.hi_f);
    return _mm512_add_epi32(_mm512_cvt_roundps_epi32(v, kRoundRne), r.y_zero);
  }
  const __mmask16 ordered = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-1073741824.f)), _mm512_set1_ps(1073741824.f));
  __m512i q = _mm512_maskz_cvt_roundps_epi32(ordered, v, kRoundRne);
  q = _mm512_add_epi32(q, r.y_zero);
  const __mmask16 below = _mm512_cmplt_epi32_mask(q, r.lo);
  return _mm512_mask_mov_epi32(_mm512_min_epi32(q, r.hi), below, r.lo);
}
TZ_TARGET_AVX512 inline __m512i round_clamp16(__m512 v, const Requant16& r) {
  return r.fast ? round_clamp16<true>(v, r) : round_clamp16<false>(v, r);
}

// The 16 int8 outputs of requantize() for 16 accumulators: v = ((f32(acc) + bias_f) * mult) /
// y_scale, each one binary32 operation as in the reference (cvtepi32_ps rounds like
// static_cast<float>; no FMA is formed: -ffp-contract=off and no "fma" target), then the form's
// rounding and clamp (x86_common.h). The int8 result is the low byte (static_cast<int8_t>).
template <RequantForm kForm>
TZ_TARGET_AVX512 inline __m128i requant16_i8(__m512i acc, __m512 bias_f, __m512 mult, const Requant16& r) {
  __m512 v = _mm512_mul_ps(_mm512_add_ps(_mm512_cvtepi32_ps(acc), bias_f), mult);
  v = _mm512_div_ps(v, r.y_scale);
  if constexpr (kForm == RequantForm::kNarrow) {
    const __m512i q = _mm512_add_epi32(_mm512_cvt_roundps_epi32(v, kRoundRne), r.y_zero);
    return _mm_min_epi8(_mm_max_epi8(_mm512_cvtsepi32_epi8(q), r.lo8), r.hi8);
  } else {
    return _mm512_cvtepi32_epi8(round_clamp16<kForm == RequantForm::kClamp>(v, r));
  }
}

// The per-channel constants of TFLite's fixed-point rule for 16 consecutive output channels.
struct Fixed16 {
  __m512i bias, mult, left, right;  // left = max(shift, 0), right = max(-shift, 0)
  __m512i mask, half_mask;          // 2^right - 1 and its half (RoundingDivideByPOT)
};

// Lanes outside m are 0 (never read past the valid channels).
TZ_TARGET_AVX512 inline Fixed16 load_fixed16(const int32_t* bias, const int32_t* mult, const int32_t* shift,
                                             __mmask16 m) {
  Fixed16 f;
  f.bias = _mm512_maskz_loadu_epi32(m, bias);
  f.mult = _mm512_maskz_loadu_epi32(m, mult);
  const __m512i s = _mm512_maskz_loadu_epi32(m, shift);
  const __m512i zero = _mm512_setzero_si512();
  f.left = _mm512_max_epi32(s, zero);
  f.right = _mm512_max_epi32(_mm512_sub_epi32(zero, s), zero);
  const __m512i one = _mm512_set1_epi32(1);
  f.mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, f.right), one);  // right = 31: 0x7FFFFFFF
  f.half_mask = _mm512_srli_epi32(f.mask, 1);
  return f;
}

// requantize_fixed() of 16 accumulators, bit for bit, as int8 (the low byte of the clamped int32,
// static_cast<int8_t>). The steps and their exactness argument are requant_fixed8's
// (avx2_common.h): SaturatingRoundingDoublingHighMul as bits 31..62 of the 64-bit a*b + 2^30 on
// even / odd lanes, the lone overflow value 0x80000000 replaced by INT32_MAX, RoundingDivideByPOT
// with per-lane shifts, then + y_zero (wrapping) and max / min with the act range.
TZ_TARGET_AVX512 inline __m128i requant_fixed16_i8(__m512i acc, const Fixed16& f, const Requant16& r) {
  const __m512i x = _mm512_sllv_epi32(_mm512_add_epi32(acc, f.bias), f.left);
  const __m512i half = _mm512_set1_epi64(int64_t{1} << 30);
  const __m512i even = _mm512_add_epi64(_mm512_mul_epi32(x, f.mult), half);
  const __m512i odd =
      _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(f.mult, 32)), half);
  __m512i h = _mm512_mask_blend_epi32(__mmask16(0xAAAA), _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
  h = _mm512_mask_mov_epi32(h, _mm512_cmpeq_epi32_mask(h, _mm512_set1_epi32(INT32_MIN)),
                            _mm512_set1_epi32(INT32_MAX));
  const __m512i rem = _mm512_and_si512(h, f.mask);
  const __m512i thr = _mm512_add_epi32(f.half_mask, _mm512_srli_epi32(h, 31));
  __m512i q = _mm512_srav_epi32(h, f.right);
  q = _mm512_mask_add_epi32(q, _mm512_cmpgt_epi32_mask(rem, thr), q, _mm512_set1_epi32(1));
  q = _mm512_add_epi32(q, r.y_zero);
  return _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(q, r.lo), r.hi));
}

// vpdpbusd / vpdpwssd as inline asm with the accumulator tied to the destination. GCC 12's
// intrinsics give the accumulator a separate destination register, and in a register-blocked
// tile it then copies every accumulator and keeps the block on the stack (3x slower loops).
// {AT&T|Intel} operand orders: Intel "vpdpbusd acc, a, b" multiplies unsigned bytes of a by
// signed bytes of b.
TZ_TARGET_AVX512 inline __m512i dpbusd(__m512i acc, __m512i a_u8, __m512i b_s8) {
  __asm__("vpdpbusd {%2, %1, %0|%0, %1, %2}" : "+v"(acc) : "v"(a_u8), "v"(b_s8));
  return acc;
}
TZ_TARGET_AVX512 inline __m512i dpwssd(__m512i acc, __m512i a, __m512i b) {
  __asm__("vpdpwssd {%2, %1, %0|%0, %1, %2}" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}
TZ_TARGET_AVX512 inline __m256i dpwssd(__m256i acc, __m256i a, __m256i b) {
  __asm__("vpdpwssd {%2, %1, %0|%0, %1, %2}" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

// acc += pairs of a (register) times the 64 / 32 bytes at p (memory operand, any alignment).
TZ_TARGET_AVX512 inline __m512i dpwssd_mem(__m512i acc, __m512i a, const void* p) {
  __asm__("vpdpwssd {%2, %1, %0|%0, %1, %2}" : "+v"(acc) : "v"(a), "m"(*static_cast<const __m512i_u*>(p)));
  return acc;
}
TZ_TARGET_AVX512 inline __m256i dpwssd_mem(__m256i acc, __m256i a, const void* p) {
  __asm__("vpdpwssd {%2, %1, %0|%0, %1, %2}" : "+v"(acc) : "v"(a), "m"(*static_cast<const __m256i_u*>(p)));
  return acc;
}

inline __mmask16 mask16(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }
inline __mmask32 mask32(int n) { return n >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << n) - 1u); }
inline __mmask64 mask64(int n) { return n >= 64 ? ~__mmask64(0) : __mmask64((uint64_t(1) << n) - 1u); }

}  // namespace tinyzo::x86::avx512vnni
