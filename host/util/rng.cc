#include "util/rng.h"

#include <cmath>

namespace tinyzo {

namespace {

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// ln Gamma(x) for x >= 1 by the Stirling series, shifted up to x >= 8 where
// four correction terms give about 1e-13 absolute accuracy. Written out here
// (instead of std::lgamma) so the Poisson acceptance test uses only log.
double log_gamma(double x) {
  double shift = 0.0;
  while (x < 8.0) {
    shift += std::log(x);
    x += 1.0;
  }
  const double inv = 1.0 / x;
  const double inv2 = inv * inv;
  const double series = inv * (1.0 / 12 - inv2 * (1.0 / 360 - inv2 * (1.0 / 1260 - inv2 * (1.0 / 1680))));
  const double half_log_2pi = 0.91893853320467274178;
  return (x - 0.5) * std::log(x) - x + half_log_2pi + series - shift;
}

}  // namespace

uint64_t splitmix64_next(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t hash_name64(std::string_view name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a offset basis
  for (const char c : name) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001B3ull;  // FNV prime
  }
  return splitmix64_next(h);
}

uint64_t derive_seed(uint64_t parent, uint64_t key) {
  uint64_t state = parent;
  const uint64_t a = splitmix64_next(state);
  state = a ^ (key * 0xD1B54A32D192ED03ull);
  return splitmix64_next(state);
}

HostRng::HostRng(uint64_t seed) {
  uint64_t state = seed;
  for (uint64_t& s : s_) s = splitmix64_next(state);
}

uint64_t HostRng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double HostRng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double HostRng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

int64_t HostRng::randint(int64_t lo, int64_t hi) {
  const uint64_t range = static_cast<uint64_t>(hi - lo);
  // Largest multiple of `range` representable: draws at or above it are
  // rejected so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
  uint64_t r;
  do {
    r = next_u64();
  } while (r >= limit);
  return lo + static_cast<int64_t>(r % range);
}

bool HostRng::bernoulli(double p) { return uniform() < p; }

double HostRng::normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  double u, v, s;
  do {
    u = 2.0 * uniform() - 1.0;
    v = 2.0 * uniform() - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  const double f = std::sqrt(-2.0 * std::log(s) / s);
  spare_normal_ = v * f;
  has_spare_normal_ = true;
  return u * f;
}

int64_t HostRng::poisson(double lambda) {
  if (!(lambda > 0.0)) return 0;
  if (lambda < 10.0) {
    // Multiply uniforms until the product drops to exp(-lambda).
    const double threshold = std::exp(-lambda);
    int64_t k = 0;
    double product = uniform();
    while (product > threshold) {
      ++k;
      product *= uniform();
    }
    return k;
  }
  // PTRS: W. Hormann, "The transformed rejection method for generating Poisson
  // random variables", Insurance: Mathematics and Economics 12 (1993).
  const double sqrt_lambda = std::sqrt(lambda);
  const double log_lambda = std::log(lambda);
  const double b = 0.931 + 2.53 * sqrt_lambda;
  const double a = -0.059 + 0.02483 * b;
  const double inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
  const double v_r = 0.9277 - 3.6224 / (b - 2.0);
  for (;;) {
    const double u = uniform() - 0.5;
    const double v = uniform();
    const double us = 0.5 - std::fabs(u);
    const double k = std::floor((2.0 * a / us + b) * u + lambda + 0.43);
    if (us >= 0.07 && v <= v_r) return static_cast<int64_t>(k);
    if (k < 0.0 || (us < 0.013 && v > us)) continue;
    const double lhs = std::log(v * inv_alpha / (a / (us * us) + b));
    const double rhs = -lambda + k * log_lambda - log_gamma(k + 1.0);
    if (lhs <= rhs) return static_cast<int64_t>(k);
  }
}

}  // namespace tinyzo
