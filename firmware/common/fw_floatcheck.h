// The float check (docs/mcu.md, Cortex-M3): the binary32 arithmetic the engine and the trainer
// rely on, run on the device (hardware FPU, or libgcc soft-float on the Cortex-M3) and on the host
// (SSE) over the same pseudo-random and adversarial inputs, digested into one CRC-32 per class of
// operation. Device and host compile this same header, so equal digests mean equal bits for every
// input: `+ - * /`, conversions and comparisons on random bit patterns (every exponent, zeros,
// subnormals, infinities, NaNs), round_half_even() and requantize() (the float-scale rule of
// docs/semantics.md) on random and tie inputs, and the trainer's own tz_expf / tz_logf /
// tz_sqrtf / cross_entropy.
//
// NaN results are digested as one canonical NaN: IEEE 754 leaves the sign and payload of a NaN
// made by an invalid operation to the implementation (x86 gives 0xffc00000, libgcc and the Arm
// FPU 0x7fc00000), and no result of the engine or the trainer depends on them (the requantization
// maps NaN to 0, and the trainer treats a non-finite loss as one). Out-of-range float-to-integer
// conversions are undefined in C++ and are not made.
//
// Device library rules apply: no heap, no stdio.
#pragma once
#include <cstdint>
#include <cstring>

#include "tinyzo/kernels/requant.h"
#include "tinyzo/model.h"
#include "tinyzo/train/fmath.h"

namespace tinyzo::fw {

enum FloatCheckClass : int {
  kFcArith,      // a + b, a - b, a * b, a / b
  kFcConvert,    // int32/uint32/int64/uint64 -> float, float -> int32/int64 (in range)
  kFcCompare,    // <, <=, ==, >, unordered
  kFcRound,      // round_half_even
  kFcRequant,    // requantize
  kFcTrainMath,  // tz_expf, tz_logf, tz_sqrtf, cross_entropy
  kFcClasses
};

// Names of the classes, in FloatCheckClass order (the printed report's keys).
inline const char* float_check_class_name(int c) {
  static const char* const kNames[kFcClasses] = {"arith", "convert", "compare", "round", "requant", "trainmath"};
  return c >= 0 && c < kFcClasses ? kNames[c] : "?";
}

struct FloatCheckResult {
  uint32_t crc[kFcClasses];
  uint32_t values[kFcClasses];  // results digested per class
};

namespace float_check_detail {

struct Rng {  // xorshift32: the same sequence everywhere
  uint32_t s;
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
};

inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint32_t canonical_bits(float f) {
  if (f != f) return 0x7fc00000u;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// A float drawn three ways: any bit pattern; a "moderate" value (exponent -40..40, any sign,
// random mantissa); or one of the edge values.
inline float draw(Rng& r) {
  static const uint32_t kEdges[] = {
      0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x007fffffu, 0x00800000u, 0x7f7fffffu,
      0xff7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x3f000000u, 0xbf000000u, 0x3f800000u,
      0x4b000000u, 0x4b000001u, 0x4e800000u, 0xce800000u, 0x4effffffu, 0x4f000000u, 0x34000000u};
  const uint32_t kind = r.next() % 8u;
  if (kind == 0) return from_bits(r.next());
  if (kind == 1) return from_bits(kEdges[r.next() % (sizeof kEdges / sizeof kEdges[0])]);
  const uint32_t exponent = 127u - 40u + r.next() % 81u;
  return from_bits((r.next() & 0x80000000u) | exponent << 23 | (r.next() & 0x7fffffu));
}

inline void digest(FloatCheckResult& out, int cls, uint32_t v) {
  uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  out.crc[cls] = crc32_update(out.crc[cls], b, 4);
  ++out.values[cls];
}
inline void digest_float(FloatCheckResult& out, int cls, float f) { digest(out, cls, canonical_bits(f)); }

}  // namespace float_check_detail

// Runs n rounds from `seed` (each round digests a few dozen results). Deterministic; no heap.
inline FloatCheckResult float_check(uint32_t n, uint32_t seed) {
  using namespace float_check_detail;
  FloatCheckResult out{};
  Rng r{seed ? seed : 1u};
  for (uint32_t i = 0; i < n; ++i) {
    const float a = draw(r), b = draw(r);
    digest_float(out, kFcArith, a + b);
    digest_float(out, kFcArith, a - b);
    digest_float(out, kFcArith, a * b);
    digest_float(out, kFcArith, a / b);

    const uint32_t u = r.next();
    const uint64_t u64 = uint64_t(r.next()) << 32 | r.next();
    digest_float(out, kFcConvert, float(int32_t(u)));
    digest_float(out, kFcConvert, float(u));
    digest_float(out, kFcConvert, float(int64_t(u64)));
    digest_float(out, kFcConvert, float(u64 >> (u % 64u)));
    if (a > -2147483648.f && a < 2147483648.f) digest(out, kFcConvert, uint32_t(int32_t(a)));
    if (a > -9.2233720e18f && a < 9.2233720e18f) {
      const int64_t l = int64_t(a);
      digest(out, kFcConvert, uint32_t(uint64_t(l)));
      digest(out, kFcConvert, uint32_t(uint64_t(l) >> 32));
    }

    digest(out, kFcCompare, uint32_t(a < b) | uint32_t(a <= b) << 1 | uint32_t(a == b) << 2 |
                                uint32_t(a > b) << 3 | uint32_t(a >= b) << 4 | uint32_t(a != a || b != b) << 5);

    // round_half_even: a random value, an exact tie k + 0.5 and its float neighbours.
    digest(out, kFcRound, uint32_t(round_half_even(a)));
    const float tie = float(int32_t(u % 2000001u) - 1000000) + 0.5f;
    digest(out, kFcRound, uint32_t(round_half_even(tie)));
    digest(out, kFcRound, uint32_t(round_half_even(from_bits(canonical_bits(tie) + 1u))));
    digest(out, kFcRound, uint32_t(round_half_even(from_bits(canonical_bits(tie) - 1u))));

    // requantize: accumulators of every size, model-like multipliers and scales, and wild ones.
    const int32_t acc = (u & 1u) ? int32_t(r.next()) : int32_t(r.next() % 200001u) - 100000;
    const int32_t bias = int32_t(r.next() % 20001u) - 10000;
    const float mult = (u & 2u) ? from_bits(0x38000000u + r.next() % 0x05000000u) : b;  // ~3e-5..0.5, or any
    const float y_scale = (u & 4u) ? from_bits(0x3b000000u + r.next() % 0x04000000u) : draw(r);
    const int32_t zero = int32_t(r.next() % 256u) - 128;
    digest(out, kFcRequant, uint32_t(uint8_t(requantize(acc, bias, mult, y_scale, zero, -128, 127))));
    digest(out, kFcRequant, uint32_t(uint8_t(requantize(acc, 0, 0.5f, 1.f, 0, -128, 127))));  // ties

    // The trainer's own math: exp over its whole range, log of positive values, sqrt, a softmax loss.
    const float e_in = from_bits((r.next() & 0x80000000u) | (127u - 30u + r.next() % 37u) << 23 | (r.next() & 0x7fffffu));
    digest_float(out, kFcTrainMath, tz_expf(e_in));
    digest_float(out, kFcTrainMath, tz_expf(a));
    const float l_in = a < 0 ? -a : a;
    digest_float(out, kFcTrainMath, tz_logf(l_in));
    digest_float(out, kFcTrainMath, tz_sqrtf(l_in));
    float logits[10];
    for (float& x : logits) x = float(int32_t(r.next() % 4001u) - 2000) * 0.0125f;
    digest_float(out, kFcTrainMath, cross_entropy(logits, 10, int(u % 10u)));
  }
  return out;
}

}  // namespace tinyzo::fw
