#include "tinyzo/train/fmath.h"

#include <cstring>

namespace tinyzo {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Nearest integer of |v| < 2^22 via the 1.5 * 2^23 trick (ties to even).
float round_small(float v) {
  const float magic = 12582912.f;
  return (v + magic) - magic;
}

}  // namespace

float tz_expf(float x) {
  if (x != x) return x;
  if (x > 88.7f) return from_bits(0x7F800000u);
  if (x < -87.3f) return 0.f;
  // x = n ln2 + r, |r| <= ln2 / 2; ln2 split in a short high part (exact
  // product with n) and a low correction.
  const float n = round_small(x * 1.44269504f);
  const float r = (x - n * 0.693145752f) - n * 1.42860677e-6f;
  // Taylor series of e^r to r^7: error < 2e-8 relative on |r| <= 0.347.
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  // Scale by 2^n in two steps so n = -126..128 never overflows the exponent.
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t half = ni / 2;
  return p * from_bits(static_cast<uint32_t>(127 + half) << 23) *
         from_bits(static_cast<uint32_t>(127 + (ni - half)) << 23);
}

float tz_logf(float x) {
  if (x != x || x < 0.f) return from_bits(0x7FC00000u);
  if (x == 0.f) return from_bits(0xFF800000u);
  if (bits(x) >= 0x7F800000u) return x;  // +inf
  int32_t e = 0;
  if (x < 1.17549435e-38f) {  // subnormal: scale into the normal range
    x *= 8388608.f;
    e -= 23;
  }
  uint32_t u = bits(x);
  e += static_cast<int32_t>(u >> 23) - 127;
  float m = from_bits((u & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
  if (m > 1.41421356f) {
    m = m * 0.5f;
    e += 1;
  }
  // ln(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.1716.
  const float s = (m - 1.f) / (m + 1.f);
  const float s2 = s * s;
  float p = 1.f / 11.f;
  p = p * s2 + 1.f / 9.f;
  p = p * s2 + 1.f / 7.f;
  p = p * s2 + 1.f / 5.f;
  p = p * s2 + 1.f / 3.f;
  p = p * s2 + 1.f;
  const float lnm = 2.f * s * p;
  const float fe = static_cast<float>(e);
  return (fe * 1.42860677e-6f + lnm) + fe * 0.693145752f;
}

float tz_cosf(float x) {
  // cos(x) = 1 - 2 sin^2(x / 2), with sin by its Taylor series on |x/2| <= 2.
  const float h = x * 0.5f;
  const float h2 = h * h;
  float p = -1.f / 1307674368000.f;
  p = p * h2 + 1.f / 6227020800.f;
  p = p * h2 - 1.f / 39916800.f;
  p = p * h2 + 1.f / 362880.f;
  p = p * h2 - 1.f / 5040.f;
  p = p * h2 + 1.f / 120.f;
  p = p * h2 - 1.f / 6.f;
  p = p * h2 + 1.f;
  const float s = h * p;
  return 1.f - 2.f * (s * s);
}

float tz_sqrtf(float x) {
  if (!(x > 0.f)) return x == 0.f ? 0.f : from_bits(0x7FC00000u);
  float g = from_bits((bits(x) >> 1) + 0x1FC00000u);  // exponent halved: within 6%
  for (int i = 0; i < 5; ++i) g = 0.5f * (g + x / g);
  return g;
}

float cross_entropy(const float* logits, int n, int label) {
  float m = logits[0];
  for (int i = 1; i < n; ++i)
    if (logits[i] > m) m = logits[i];
  float sum = 0.f;
  for (int i = 0; i < n; ++i) sum = sum + tz_expf(logits[i] - m);
  return (m + tz_logf(sum)) - logits[label];
}

float cosine_lr(float lr0, int step, int total_steps) {
  if (total_steps <= 0) return lr0;
  const float t = static_cast<float>(step) / static_cast<float>(total_steps);
  return lr0 * 0.5f * (1.f + tz_cosf(3.14159265f * t));
}

}  // namespace tinyzo
