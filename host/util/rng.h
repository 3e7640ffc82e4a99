// A deterministic host-side random generator for data generation (the
// CIFAR-10-C corruptions, docs/corruptions.md). Same seed, same sequence, on
// every machine and with every standard library: the bits come from
// xoshiro256** seeded through SplitMix64, and the normal and Poisson samplers
// are written here (std::normal_distribution and std::poisson_distribution are
// implementation-defined and differ between libstdc++ and libc++).
//
// The samplers use std::log, std::exp and std::sqrt. sqrt is exact (IEEE 754);
// log/exp come from the C library, which agrees across x86-64 glibc builds but
// is not required to be correctly rounded elsewhere, so a different libm may,
// very rarely, change a draw.
//
// Not for the device: the device library has its own counter-based bits
// (include/tinyzo/train/rng.h).
#pragma once
#include <cstdint>
#include <string_view>

namespace tinyzo {

// SplitMix64 step: advances `state` and returns 64 well-mixed bits.
uint64_t splitmix64_next(uint64_t& state);

// A 64-bit hash of a string (FNV-1a, then a SplitMix64 finalizer). Stable:
// used to give each corruption a seed stream that does not depend on an enum
// order.
uint64_t hash_name64(std::string_view name);

// Combines a parent seed with one more key into a child seed (order matters).
uint64_t derive_seed(uint64_t parent, uint64_t key);

class HostRng {
 public:
  explicit HostRng(uint64_t seed);

  // 64 random bits (xoshiro256**).
  uint64_t next_u64();
  // Uniform double in [0, 1) with 53 random bits.
  double uniform();
  // Uniform double in [lo, hi): lo + (hi - lo) * uniform().
  double uniform(double lo, double hi);
  // Uniform integer in [lo, hi) (hi exclusive, like numpy's randint); lo < hi.
  // Unbiased (rejection on the top of the 64-bit range).
  int64_t randint(int64_t lo, int64_t hi);
  // True with probability p (uniform() < p).
  bool bernoulli(double p);
  // Standard normal draw, Marsaglia's polar method. Draws come in pairs: the
  // second of a pair is kept and returned by the next call.
  double normal();
  double normal(double mean, double stddev) { return mean + stddev * normal(); }
  // Poisson draw with mean lambda >= 0: the multiplication method for
  // lambda < 10, Hormann's transformed rejection (PTRS, 1993) otherwise, the
  // same split numpy uses. lambda <= 0 gives 0.
  int64_t poisson(double lambda);

 private:
  uint64_t s_[4];
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

}  // namespace tinyzo
