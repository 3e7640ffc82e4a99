// AVX2 residual add, global average pool and float head. Same binary32 operations per element
// as the reference; the head is vectorized across outputs only, so each output's sum keeps the
// reference's order (k = 0, 1, ...).
#include <immintrin.h>

#include <cstring>

#include "avx2_common.h"
#include "tinyzo/kernels/x86.h"
#include "x86_common.h"

namespace tinyzo::x86::avx2 {
namespace {

// Sign-extends n (<= 8) int8 to int32 lanes, 0 beyond, without reading past n.
TZ_TARGET_AVX2 inline __m256i load8_i8(const int8_t* p, size_t n) {
  if (n >= 8) return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  alignas(16) int8_t tmp[16] = {};
  std::memcpy(tmp, p, n);
  return _mm256_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
}

}  // namespace

TZ_TARGET_AVX2 void add_s8(const AddParams& p, const int8_t* x1, const int8_t* x2, int8_t* y, size_t n) {
  const Requant8 rq = make_requant8(p.y_scale, p.y_zero, p.act_min, p.act_max, add_fast_requant_ok(p));
  const __m256i z1 = _mm256_set1_epi32(p.x1_zero), z2 = _mm256_set1_epi32(p.x2_zero);
  const __m256 s1 = _mm256_set1_ps(p.x1_scale), s2 = _mm256_set1_ps(p.x2_scale);
  for (size_t i = 0; i < n; i += 8) {
    const size_t m = n - i;
    const __m256 a = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(load8_i8(x1 + i, m), z1)), s1);
    const __m256 b = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(load8_i8(x2 + i, m), z2)), s2);
    const __m256 v = _mm256_div_ps(_mm256_add_ps(a, b), rq.y_scale);
    store_n8(y + i, narrow8(round_clamp8(v, rq)), m >= 8 ? 8 : static_cast<int>(m));
  }
}

TZ_TARGET_AVX2 void global_avg_pool_s8(int hw, int c, const int8_t* x, int8_t* y) {
  if (hw <= 0) return ref::global_avg_pool_s8(hw, c, x, y);  // 0 / 0: the NaN case
  const __m256 n = _mm256_set1_ps(static_cast<float>(hw));
  const __m256i lo = _mm256_set1_epi32(-128), hi = _mm256_set1_epi32(127);
  for (int c0 = 0; c0 < c; c0 += 8) {
    const size_t nc = static_cast<size_t>(c - c0);
    __m256i sum = _mm256_setzero_si256();  // exact: |sum| <= 128 * hw
    for (int s = 0; s < hw; ++s)
      sum = _mm256_add_epi32(sum, load8_i8(x + static_cast<size_t>(s) * c + c0, nc));
    // |mean| <= 128: none of round_half_even's saturation or NaN cases applies.
    const __m256 mean = _mm256_div_ps(_mm256_cvtepi32_ps(sum), n);
    const __m256i q = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(mean), lo), hi);
    store_n8(y + c0, narrow8(q), nc >= 8 ? 8 : static_cast<int>(nc));
  }
}

TZ_TARGET_AVX2 void linear_f32(const LinearF32Params& p, const int8_t* x, const float* w, const float* b,
                               float* y) {
  const int k_n = p.in_features, n_n = p.out_features;
  const __m256i z = _mm256_set1_epi32(p.x_zero);
  const __m256 s = _mm256_set1_ps(p.x_scale);
  for (int n0 = 0; n0 < n_n; n0 += 8) {
    const int nn = n_n - n0 < 8 ? n_n - n0 : 8;
    const float* r[8];
    for (int j = 0; j < 8; ++j)
      r[j] = w + static_cast<size_t>(j < nn ? n0 + j : n0) * k_n;  // spare lanes reread a row
    __m256 acc = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= k_n; k += 8) {
      // xk = f32(q - z) * s, as the reference computes it.
      const __m256 xv = _mm256_mul_ps(
          _mm256_cvtepi32_ps(_mm256_sub_epi32(
              _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + k))), z)),
          s);
      // Transpose the 8x8 block W[n0 + j][k + i] so column i holds W[n0..n0+7][k + i].
      const __m256 t0 = _mm256_unpacklo_ps(_mm256_loadu_ps(r[0] + k), _mm256_loadu_ps(r[1] + k));
      const __m256 t1 = _mm256_unpackhi_ps(_mm256_loadu_ps(r[0] + k), _mm256_loadu_ps(r[1] + k));
      const __m256 t2 = _mm256_unpacklo_ps(_mm256_loadu_ps(r[2] + k), _mm256_loadu_ps(r[3] + k));
      const __m256 t3 = _mm256_unpackhi_ps(_mm256_loadu_ps(r[2] + k), _mm256_loadu_ps(r[3] + k));
      const __m256 t4 = _mm256_unpacklo_ps(_mm256_loadu_ps(r[4] + k), _mm256_loadu_ps(r[5] + k));
      const __m256 t5 = _mm256_unpackhi_ps(_mm256_loadu_ps(r[4] + k), _mm256_loadu_ps(r[5] + k));
      const __m256 t6 = _mm256_unpacklo_ps(_mm256_loadu_ps(r[6] + k), _mm256_loadu_ps(r[7] + k));
      const __m256 t7 = _mm256_unpackhi_ps(_mm256_loadu_ps(r[6] + k), _mm256_loadu_ps(r[7] + k));
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      const __m256 col[8] = {_mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                             _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                             _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                             _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const __m256 xk = _mm256_permutevar8x32_ps(xv, _mm256_set1_epi32(i));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(xk, col[i]));  // two roundings, in k order
      }
    }
    for (; k < k_n; ++k) {
      const __m256 xk = _mm256_set1_ps(static_cast<float>(int32_t(x[k]) - p.x_zero) * p.x_scale);
      const __m256 col =
          _mm256_setr_ps(r[0][k], r[1][k], r[2][k], r[3][k], r[4][k], r[5][k], r[6][k], r[7][k]);
      acc = _mm256_add_ps(acc, _mm256_mul_ps(xk, col));
    }
    alignas(32) float out[8];
    _mm256_store_ps(out, _mm256_add_ps(acc, load_n_f32(b + n0, nn)));
    std::memcpy(y + n0, out, static_cast<size_t>(nn) * 4);
  }
}

void max_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y) { portable::max_pool2d_s8(p, x, y); }
void avg_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y) { portable::avg_pool2d_s8(p, x, y); }

}  // namespace tinyzo::x86::avx2
