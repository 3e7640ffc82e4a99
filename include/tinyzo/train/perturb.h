// The element loops of a ZO step that touch every perturbed element: applying
// a node perturbation to a layer's output, and summing the signed query
// coefficients back into the node gradient G. Both draw one random block per
// 64 elements (rng.h), and both have a reference loop and a vector path that
// gives the same bytes (tests/perturb_test.cc); the device runs the reference.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinyzo/kernels/requant.h"
#include "tinyzo/train/rng.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tinyzo {

// f(i, rademacher(key, i)) for i = 0..n-1, one random block per 64 elements.
template <class F>
void for_each_rademacher(uint64_t key, size_t n, F&& f) {
  for (size_t base = 0; base < n; base += 64) {
    const uint64_t bits = random_block(key, base >> 6);
    const size_t len = n - base < 64 ? n - base : 64;
    for (size_t j = 0; j < len; ++j) f(base + j, ((bits >> j) & 1u) ? 1 : -1);
  }
}

// One output of an NP query: v + d clamped to int8 where lo < v < hi (unsaturated), else v.
inline int8_t perturbed_output(int8_t v, int32_t d, int32_t lo, int32_t hi) {
  return v > lo && v < hi ? static_cast<int8_t>(clamp_i32(int32_t(v) + d, -128, 127)) : v;
}

// y[i] += m * rademacher(key, i), clamped to int8, where lo < y[i] < hi (the unsaturated outputs an
// NP query perturbs); the reference loop.
inline void perturb_unsaturated_ref(int8_t* y, size_t n, uint64_t key, int32_t m, int32_t lo, int32_t hi) {
  for_each_rademacher(key, n, [&](size_t i, int u) { y[i] = perturbed_output(y[i], m * u, lo, hi); });
}

// The same bytes, 16 at a time with SSE2 where the host has it: a saturating int8 add is the
// reference's clamp of the exact sum, since |m| <= 127.
inline void perturb_unsaturated(int8_t* y, size_t n, uint64_t key, int32_t m, int32_t lo, int32_t hi) {
#if defined(__SSE2__)
  if (m >= -127 && m <= 127 && lo >= -128 && hi <= 127) {
    const __m128i bit = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
    const __m128i plus = _mm_set1_epi8(static_cast<char>(m)), minus = _mm_set1_epi8(static_cast<char>(-m));
    const __m128i lo8 = _mm_set1_epi8(static_cast<char>(lo)), hi8 = _mm_set1_epi8(static_cast<char>(hi));
    for (size_t base = 0; base < n; base += 64) {
      uint64_t bits = random_block(key, base >> 6);
      const size_t len = n - base < 64 ? n - base : 64;
      int8_t* yb = y + base;
      size_t j = 0;
      for (; j + 16 <= len; j += 16, bits >>= 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(yb + j));
        // Byte k of the 16 gets bit k of the block's next 16 bits.
        const __m128i b = _mm_unpacklo_epi64(_mm_set1_epi8(static_cast<char>(bits & 0xFFu)),
                                             _mm_set1_epi8(static_cast<char>((bits >> 8) & 0xFFu)));
        const __m128i set = _mm_cmpeq_epi8(_mm_and_si128(b, bit), bit);
        const __m128i d = _mm_or_si128(_mm_and_si128(set, plus), _mm_andnot_si128(set, minus));
        const __m128i p = _mm_adds_epi8(v, d);
        const __m128i inside = _mm_and_si128(_mm_cmpgt_epi8(v, lo8), _mm_cmpgt_epi8(hi8, v));
        const __m128i out = _mm_or_si128(_mm_and_si128(inside, p), _mm_andnot_si128(inside, v));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(yb + j), out);
      }
      for (; j < len; ++j, bits >>= 1) yb[j] = perturbed_output(yb[j], (bits & 1u) ? m : -m, lo, hi);
    }
    return;
  }
#endif
  perturb_unsaturated_ref(y, n, key, m, lo, hi);
}

// g[j] = sum over q = 0..n-1, in that order and from +0, of (bit j of bits_of(q) ? c[q] : -c[q]),
// for the 64 j of one random block; the reference loop.
template <class Bits>
void signed_sum_block_ref(int n, const float* c, Bits bits_of, float* g) {
  for (int j = 0; j < 64; ++j) g[j] = 0.f;
  for (int q = 0; q < n; ++q) {
    const uint64_t bits = bits_of(q);
    for (int j = 0; j < 64; ++j) g[j] += ((bits >> j) & 1u) ? c[q] : -c[q];
  }
}

namespace detail {
// Four float lanes (GCC / Clang vector extension: SSE2 on x86-64, scalar code on a Cortex-M).
typedef float F4 __attribute__((vector_size(16)));
// The signs +1 / -1 of a nibble's four bits, lowest bit in lane 0.
constexpr F4 nibble_signs(int n) {
  return F4{(n & 1) ? 1.f : -1.f, (n & 2) ? 1.f : -1.f, (n & 4) ? 1.f : -1.f, (n & 8) ? 1.f : -1.f};
}
constexpr F4 kNibbleSign[16] = {nibble_signs(0),  nibble_signs(1),  nibble_signs(2),  nibble_signs(3),
                                nibble_signs(4),  nibble_signs(5),  nibble_signs(6),  nibble_signs(7),
                                nibble_signs(8),  nibble_signs(9),  nibble_signs(10), nibble_signs(11),
                                nibble_signs(12), nibble_signs(13), nibble_signs(14), nibble_signs(15)};
}  // namespace detail

// The same sums four lanes at a time: lane by lane the reference's additions in the same order
// (c * +-1 is exactly +-c, and -ffp-contract=off keeps the multiply and the add apart).
template <class Bits>
void signed_sum_block(int n, const float* c, Bits bits_of, float* g) {
  using detail::F4;
  F4 acc[16] = {};
  for (int q = 0; q < n; ++q) {
    const uint64_t bits = bits_of(q);
    const F4 cq = F4{c[q], c[q], c[q], c[q]};
    for (int k = 0; k < 16; ++k) acc[k] += detail::kNibbleSign[(bits >> (4 * k)) & 15u] * cq;
  }
  std::memcpy(g, acc, sizeof(acc));
}

}  // namespace tinyzo
