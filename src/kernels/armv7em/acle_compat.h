// The few Armv7E-M DSP-extension (ACLE) operations the armv7em kernels use, and the FPU's VCVTR,
// under portable names. On a core with the DSP extension (__ARM_FEATURE_DSP: Cortex-M4/M7) each is
// the instruction, through GCC's <arm_acle.h> or a one-instruction asm where <arm_acle.h> lacks the
// form (VCVTR: on a core with a single-precision FPU). Elsewhere
// (the x86 host, for tests) each is an exact C model of the instruction, so the same kernel source
// runs, and is tested bit for bit, on the host.
//
// Lanes: a "pair" is a uint32_t holding two int16 halfwords, lo = bits 0-15, hi = bits 16-31.
// All arithmetic wraps modulo 2^32 (2^16 per halfword lane), like the instructions (SMLAD and
// SMLAxy set the Q flag on overflow but still return the wrapped sum; nothing here reads Q).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

#include "tinyzo/kernels/requant.h"  // round_half_even, the C model of VCVTR below

// A single-precision FPU (FPv4-SP on the M4F, FPv5 on the M7): VCVTR.S32.F32 is available.
#if defined(__ARM_FP) && (__ARM_FP & 4)
#define TZ_ARMV7EM_HAS_VCVTR 1
#else
#define TZ_ARMV7EM_HAS_VCVTR 0
#endif

namespace tinyzo::armv7em::dsp {

// 4 bytes from any address. memcpy is one LDR on Cortex-M4/M7 (unaligned LDR is allowed there;
// GCC never merges it into LDRD/LDM, which would fault on an unaligned address).
inline uint32_t load_u32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// 4 bytes to any address: one STR (unaligned STR is allowed too).
inline void store_u32(void* p, uint32_t v) { std::memcpy(p, &v, sizeof v); }

#if defined(__ARM_FEATURE_DSP)

// SXTB16: bytes 0 and 2 sign-extended to the pair (b0, b2).
inline uint32_t sxtb16(uint32_t v) { return static_cast<uint32_t>(__sxtb16(static_cast<int32_t>(v))); }
// SXTB16 with ROR #8: bytes 1 and 3 sign-extended to the pair (b1, b3). GCC 12's <arm_acle.h> has
// no __ror and does not fold a rotate into __sxtb16, so this is the one-instruction form in asm.
inline uint32_t sxtb16_ror8(uint32_t v) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}
// SMLAD: acc + lo(a)*lo(b) + hi(a)*hi(b).
inline int32_t smlad(uint32_t a, uint32_t b, int32_t acc) {
  return __smlad(static_cast<int32_t>(a), static_cast<int32_t>(b), acc);
}
// SMLABB / SMLATT: acc + lo(a)*lo(b), acc + hi(a)*hi(b).
inline int32_t smlabb(uint32_t a, uint32_t b, int32_t acc) {
  return __smlabb(static_cast<int32_t>(a), static_cast<int32_t>(b), acc);
}
inline int32_t smlatt(uint32_t a, uint32_t b, int32_t acc) {
  return __smlatt(static_cast<int32_t>(a), static_cast<int32_t>(b), acc);
}
// SADD16 / SSUB16: lane-wise (lo(a) +- lo(b), hi(a) +- hi(b)) modulo 2^16.
inline uint32_t sadd16(uint32_t a, uint32_t b) {
  return static_cast<uint32_t>(__sadd16(static_cast<int32_t>(a), static_cast<int32_t>(b)));
}
inline uint32_t ssub16(uint32_t a, uint32_t b) {
  return static_cast<uint32_t>(__ssub16(static_cast<int32_t>(a), static_cast<int32_t>(b)));
}
// SMMULR: the high word of a * b, rounded: (a * b + 2^31) >> 32 (<arm_acle.h> has no intrinsic).
inline int32_t smmulr(int32_t a, int32_t b) {
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

#else  // exact C models of the same instructions

namespace detail {
inline int32_t lo16(uint32_t v) { return static_cast<int16_t>(static_cast<uint16_t>(v)); }
inline int32_t hi16(uint32_t v) { return static_cast<int16_t>(static_cast<uint16_t>(v >> 16)); }
inline uint32_t pair(int32_t lo, int32_t hi) {
  return (static_cast<uint32_t>(lo) & 0xFFFFu) | (static_cast<uint32_t>(hi) << 16);
}
inline int32_t wrap(uint32_t v) {
  return static_cast<int32_t>(v);
}  // modulo 2^32 (C++17: impl.-defined, GCC wraps)
}  // namespace detail

inline uint32_t sxtb16(uint32_t v) {
  return detail::pair(static_cast<int8_t>(v & 0xFF), static_cast<int8_t>((v >> 16) & 0xFF));
}
inline uint32_t sxtb16_ror8(uint32_t v) { return sxtb16((v >> 8) | (v << 24)); }
// The two products are exact in int32 (|p| <= 2^30); the sums wrap, as SMLAD's do.
inline int32_t smlad(uint32_t a, uint32_t b, int32_t acc) {
  const uint32_t p0 = static_cast<uint32_t>(detail::lo16(a) * detail::lo16(b));
  const uint32_t p1 = static_cast<uint32_t>(detail::hi16(a) * detail::hi16(b));
  return detail::wrap(static_cast<uint32_t>(acc) + p0 + p1);
}
inline int32_t smlabb(uint32_t a, uint32_t b, int32_t acc) {
  return detail::wrap(static_cast<uint32_t>(acc) + static_cast<uint32_t>(detail::lo16(a) * detail::lo16(b)));
}
inline int32_t smlatt(uint32_t a, uint32_t b, int32_t acc) {
  return detail::wrap(static_cast<uint32_t>(acc) + static_cast<uint32_t>(detail::hi16(a) * detail::hi16(b)));
}
inline uint32_t sadd16(uint32_t a, uint32_t b) {
  return detail::pair(detail::lo16(a) + detail::lo16(b), detail::hi16(a) + detail::hi16(b));
}
inline uint32_t ssub16(uint32_t a, uint32_t b) {
  return detail::pair(detail::lo16(a) - detail::lo16(b), detail::hi16(a) - detail::hi16(b));
}
inline int32_t smmulr(int32_t a, int32_t b) {  // |a * b| <= 2^62: no overflow
  return static_cast<int32_t>((static_cast<int64_t>(a) * b + (int64_t{1} << 31)) >> 32);
}

#endif

// VCVTR.S32.F32: v rounded to int32 in the FPSCR rounding mode, which must be round to nearest
// even (RN, the reset value; docs/kernels.md "armv7em-dsp", Exactness). By the Arm ARM's FPToFixed,
// NaN gives 0 and values outside int32 (infinities included) saturate to INT32_MIN / INT32_MAX
// (the instruction only sets FPSCR's cumulative IOC/IXC flags; M-profile FPUs never trap).
#if TZ_ARMV7EM_HAS_VCVTR
inline int32_t vcvtr_s32_f32(float v) {
  float r;  // the integer's bits, in an S register
  __asm__("vcvtr.s32.f32 %0, %1" : "=t"(r) : "t"(v));
  int32_t i;
  std::memcpy(&i, &r, sizeof i);  // VMOV to a core register
  return i;
}
#else
// The exact C model: |v| >= 2^23 is already an integer, so the truncating cast is exact below 2^31;
// smaller values round half to even with requant.h's round_half_even (exact for |v| < 2^30).
inline int32_t vcvtr_s32_f32(float v) {
  if (v != v) return 0;
  if (v >= 2147483648.f) return INT32_MAX;
  if (v < -2147483648.f) return INT32_MIN;
  if (v >= 8388608.f || v <= -8388608.f) return static_cast<int32_t>(v);
  return round_half_even(v);
}
#endif

// The pair (lo, hi) from two int16 values (PKHBT when both are registers).
inline uint32_t pack16(int32_t lo, int32_t hi) {
  return (static_cast<uint32_t>(lo) & 0xFFFFu) | (static_cast<uint32_t>(hi) << 16);
}
inline int32_t pair_lo(uint32_t v) { return static_cast<int16_t>(static_cast<uint16_t>(v)); }
inline int32_t pair_hi(uint32_t v) { return static_cast<int16_t>(static_cast<uint16_t>(v >> 16)); }

}  // namespace tinyzo::armv7em::dsp
