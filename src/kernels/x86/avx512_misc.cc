// AVX-512 residual add and global average pool; the float head reuses the AVX2 kernel (it is a
// few thousand MACs per image). Same binary32 operations per element as the reference.
// GCC 12's AVX-512 headers raise a false -Wuninitialized on _mm512_undefined_* inside the
// unmasked intrinsics (GCC bug 105593); it must be off before the header is read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "avx512_common.h"
#include "tinyzo/kernels/x86.h"
#include "x86_common.h"

namespace tinyzo::x86::avx512vnni {

TZ_TARGET_AVX512 void add_s8(const AddParams& p, const int8_t* x1, const int8_t* x2, int8_t* y, size_t n) {
  const Requant16 rq = make_requant16(p.y_scale, p.y_zero, p.act_min, p.act_max,
                                      add_fast_requant_ok(p) ? RequantForm::kClamp : RequantForm::kLong);
  const __m512i z1 = _mm512_set1_epi32(p.x1_zero), z2 = _mm512_set1_epi32(p.x2_zero);
  const __m512 s1 = _mm512_set1_ps(p.x1_scale), s2 = _mm512_set1_ps(p.x2_scale);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : mask16(static_cast<int>(n - i));
    // f32(q - z) * s: int32 subtraction, exact conversion, one rounding each.
    const __m512 a = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, x1 + i)), z1)), s1);
    const __m512 b = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, x2 + i)), z2)), s2);
    const __m512 v = _mm512_div_ps(_mm512_add_ps(a, b), rq.y_scale);
    _mm_mask_storeu_epi8(y + i, m, _mm512_cvtepi32_epi8(round_clamp16(v, rq)));
  }
}

TZ_TARGET_AVX512 void global_avg_pool_s8(int hw, int c, const int8_t* x, int8_t* y) {
  if (hw <= 0) return ref::global_avg_pool_s8(hw, c, x, y);  // 0 / 0: the NaN case
  const __m512 n = _mm512_set1_ps(static_cast<float>(hw));
  const __m512i lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127);
  for (int c0 = 0; c0 < c; c0 += 16) {
    const __mmask16 m = mask16(c - c0);
    __m512i sum = _mm512_setzero_si512();  // exact: |sum| <= 128 * hw
    for (int s = 0; s < hw; ++s)
      sum = _mm512_add_epi32(
          sum, _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, x + static_cast<size_t>(s) * c + c0)));
    // |mean| <= 128: no saturation or NaN case of round_half_even applies.
    const __m512 mean = _mm512_div_ps(_mm512_cvtepi32_ps(sum), n);
    __m512i q = _mm512_cvt_roundps_epi32(mean, kRoundRne);
    q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
    _mm_mask_storeu_epi8(y + c0, m, _mm512_cvtepi32_epi8(q));
  }
}

void max_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y) { portable::max_pool2d_s8(p, x, y); }
void avg_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y) { portable::avg_pool2d_s8(p, x, y); }
void linear_f32(const LinearF32Params& p, const int8_t* x, const float* w, const float* b, float* y) {
  avx2::linear_f32(p, x, w, b, y);
}

}  // namespace tinyzo::x86::avx512vnni
