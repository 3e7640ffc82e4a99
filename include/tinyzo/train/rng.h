// Counter-based random bits for perturbations (METHOD §3.7). A perturbation is
// never stored: element i of u_q is a pure function of (key, i), where the key
// hashes (run seed, step, layer, tensor, query, sample). Any element can be
// generated without the ones before it (tiling, regeneration at update time),
// and host and device produce the same bits.
#pragma once
#include <cstdint>

namespace tinyzo {

// SplitMix64's finalizer: a bijective 64-bit mixer with full avalanche.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Stream namespaces, so different uses of one (step, layer, ...) never share bits.
enum class RngStream : uint32_t { kWeightPerturb = 1, kBiasPerturb = 2, kNodePerturb = 3, kRounding = 4, kSelect = 5,
                              kBiasSample = 6 };

struct PerturbKey {
  uint64_t seed = 0;
  uint32_t step = 0;
  uint32_t layer = 0;
  RngStream stream = RngStream::kWeightPerturb;
  uint32_t query = 0;
  uint32_t sample = 0;
};

inline uint64_t key_hash(const PerturbKey& k) {
  uint64_t h = mix64(k.seed ^ 0x9E3779B97F4A7C15ull);
  h = mix64(h ^ (uint64_t(k.step) << 32 | k.layer));
  h = mix64(h ^ (uint64_t(static_cast<uint32_t>(k.stream)) << 32 | k.query));
  return mix64(h ^ uint64_t(k.sample) * 0xD1B54A32D192ED03ull);
}

// 64 random bits number `block` of the stream `key`.
inline uint64_t random_block(uint64_t key, uint64_t block) {
  return mix64(key + (block + 1) * 0x9E3779B97F4A7C15ull);
}

// Rademacher sign (+1 or -1) of element i.
inline int rademacher(uint64_t key, uint64_t i) {
  return ((random_block(key, i >> 6) >> (i & 63)) & 1u) ? 1 : -1;
}

// A uniform float in [0, 1) for element i (24 random bits), e.g. stochastic rounding.
inline float uniform01(uint64_t key, uint64_t i) {
  return static_cast<float>(random_block(key, i) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace tinyzo
