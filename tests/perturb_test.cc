// The vector paths of the perturbation loops (include/tinyzo/train/perturb.h) give the bytes of
// their reference loops, which the device runs.
#include "tinyzo/train/perturb.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace tinyzo {
namespace {

TEST(Perturb, UnsaturatedOutputsGetTheReferenceBytes) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(-128, 127);
  // Lengths around the 16-lane and 64-element blocks; clamp ranges of no activation, ReLU, ReLU6-like
  // and a narrow one; perturbation sizes up to the largest int8 step.
  const size_t lengths[] = {0, 1, 15, 16, 17, 63, 64, 65, 100, 128, 1000, 4099};
  const int32_t ranges[][2] = {{-128, 127}, {-128 + 1, 127}, {0, 127}, {-20, 90}, {-128, -100}};
  const int32_t steps[] = {1, 5, 64, 127, -3};
  int changed = 0;
  for (size_t n : lengths)
    for (const auto& r : ranges)
      for (int32_t m : steps) {
        std::vector<int8_t> y(n);
        for (int8_t& v : y) v = static_cast<int8_t>(byte(rng));
        const uint64_t key = mix64(n * 131 + uint64_t(m + 1000) * 7 + uint64_t(r[0] + 500));
        std::vector<int8_t> want = y, got = y;
        perturb_unsaturated_ref(want.data(), n, key, m, r[0], r[1]);
        perturb_unsaturated(got.data(), n, key, m, r[0], r[1]);
        ASSERT_EQ(got, want) << "n " << n << " m " << m << " range " << r[0] << ".." << r[1];
        for (size_t i = 0; i < n; ++i) changed += want[i] != y[i];
      }
  EXPECT_GT(changed, 10000);  // the loops did perturb (and saturate) a lot of bytes
  // Saturation at both ends: 127 + 5 and -128 - 5 stay in range wherever they are inside (lo, hi).
  std::vector<int8_t> edge(64);
  for (size_t i = 0; i < edge.size(); ++i) edge[i] = i % 2 ? 126 : -127;
  std::vector<int8_t> want = edge;
  perturb_unsaturated_ref(want.data(), edge.size(), 99, 5, -128, 127);
  perturb_unsaturated(edge.data(), edge.size(), 99, 5, -128, 127);
  EXPECT_EQ(edge, want);
  EXPECT_NE(std::count(want.begin(), want.end(), int8_t(127)) + std::count(want.begin(), want.end(), int8_t(-128)), 0);
}

TEST(Perturb, SignedSumsAreTheReferenceFloats) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (int n : {0, 1, 2, 7, 50, 101}) {
    std::vector<float> c(size_t(n) + 1);
    for (float& v : c) v = nd(rng);
    if (n > 2) {
      c[1] = 0.f;  // +-0 and a tiny value: the signs of zeros must match too
      c[2] = 1e-40f;
    }
    auto bits = [&](int q) { return random_block(mix64(uint64_t(n) * 977), uint64_t(q)); };
    float want[64], got[64];
    signed_sum_block_ref(n, c.data(), bits, want);
    signed_sum_block(n, c.data(), bits, got);
    for (int j = 0; j < 64; ++j) {
      uint32_t a, b;
      std::memcpy(&a, &want[j], 4);
      std::memcpy(&b, &got[j], 4);
      ASSERT_EQ(a, b) << "n " << n << " j " << j << ": " << want[j] << " vs " << got[j];
    }
  }
}

}  // namespace
}  // namespace tinyzo
