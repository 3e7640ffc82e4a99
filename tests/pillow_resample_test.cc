// Pillow's resampling (host/pillow_resample.h): coefficients and pixels
// computed by hand from the arithmetic of libImaging/Resample.c. The
// comparison with Pillow itself on many images and sizes is
// python/tests/test_preprocess.py.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "util/errors.h"
#include "data/pillow_resample.h"

namespace tinyzo {
namespace {

constexpr int32_t kOne = int32_t(1) << 22;

void expect_output(const PillowAxis& a, int k, int start, const std::vector<int32_t>& w) {
  EXPECT_EQ(a.start[size_t(k)], start) << "output " << k;
  ASSERT_EQ(a.taps[size_t(k)], int(w.size())) << "output " << k;
  for (size_t j = 0; j < w.size(); ++j) EXPECT_EQ(a.weight(k, int(j)), w[j]) << "output " << k << " tap " << j;
}

TEST(PillowResampleTest, BilinearUpscaleTwoToFour) {
  // scale 1/2, support 1. Centres 0.25, 0.75, 1.25, 1.75:
  //  0: sources int(-0.25) = 0 .. int(1.75) - 1 = 0: one tap, renormalised to 1;
  //  1: sources 0, 1 with 1 - |x - 0.75 + 0.5| = 0.75, 0.25;
  //  2: 0.25, 0.75;  3: source 1 only (2 is outside).
  const PillowAxis a = pillow_axis(PillowFilter::kBilinear, 2, 4);
  ASSERT_EQ(a.count(), 4);
  EXPECT_EQ(a.max_taps, 3);  // ceil(1) * 2 + 1
  expect_output(a, 0, 0, {kOne});
  expect_output(a, 1, 0, {3 * kOne / 4, kOne / 4});
  expect_output(a, 2, 0, {kOne / 4, 3 * kOne / 4});
  expect_output(a, 3, 1, {kOne});
}

TEST(PillowResampleTest, BilinearDownscaleWidensTheSupport) {
  // 4 -> 2: scale 2, so the triangle is stretched to support 2. Output 0:
  // centre 1, sources 0 .. int(3.5) - 1 = 2, weights 1 - |x - 0.5| / 2 =
  // 0.75, 0.75, 0.25, normalised by 1.75: 3/7, 3/7, 1/7, times 2^22 =
  // 1797558.86 -> 1797559, 599186.29 -> 599186.
  const PillowAxis a = pillow_axis(PillowFilter::kBilinear, 4, 2);
  EXPECT_EQ(a.max_taps, 5);
  expect_output(a, 0, 0, {1797559, 1797559, 599186});
  expect_output(a, 1, 1, {599186, 1797559, 1797559});
}

TEST(PillowResampleTest, SameSizeIsTheIdentity) {
  const PillowAxis a = pillow_axis(PillowFilter::kBilinear, 5, 5, 1, 3);
  ASSERT_EQ(a.count(), 3);
  for (int k = 0; k < 3; ++k) expect_output(a, k, 1 + k, {kOne});
  const uint8_t in[6] = {1, 2, 3, 250, 251, 255};
  EXPECT_EQ(pillow_resize_plane(in, 3, 2, 3, 2, PillowFilter::kBilinear), std::vector<uint8_t>(in, in + 6));
}

TEST(PillowResampleTest, ARangeOfOutputsIsASliceOfTheFullAxis) {
  for (const PillowFilter f : {PillowFilter::kBilinear, PillowFilter::kBox})
    for (const auto& [in, out] : std::vector<std::pair<int, int>>{{32, 147}, {64, 40}, {17, 100}, {30, 32}}) {
      const PillowAxis full = pillow_axis(f, in, out);
      const int first = out / 3, count = out / 2;
      const PillowAxis part = pillow_axis(f, in, out, first, count);
      ASSERT_EQ(part.count(), count);
      for (int k = 0; k < count; ++k) {
        ASSERT_EQ(part.start[size_t(k)], full.start[size_t(first + k)]);
        ASSERT_EQ(part.taps[size_t(k)], full.taps[size_t(first + k)]);
        for (int j = 0; j < part.taps[size_t(k)]; ++j) ASSERT_EQ(part.weight(k, j), full.weight(first + k, j));
      }
    }
}

TEST(PillowResampleTest, OneRowRoundsHalfUp) {
  // 2x1 -> 4x1 (the height is unchanged, so only the horizontal pass runs):
  // 255/4 = 63.75 -> 64, 3 * 255/4 = 191.25 -> 191.
  const uint8_t in[2] = {0, 255};
  EXPECT_EQ(pillow_resize_plane(in, 2, 1, 4, 1, PillowFilter::kBilinear), (std::vector<uint8_t>{0, 64, 191, 255}));
}

TEST(PillowResampleTest, EachPassRoundsToUint8) {
  // 2x2 -> 4x4 of [[0, 2], [2, 0]]. Horizontal pass (weights 3/4, 1/4):
  // row 0 -> 0, 0.5 -> 1, 1.5 -> 2, 2; row 1 -> 2, 2, 1, 0. Vertical pass on
  // those rounded rows, e.g. (1, 2): 3/4 * 2 + 1/4 * 1 = 1.75 -> 2, where one
  // rounding of the exact bilinear value 3/4 * 1.5 + 1/4 * 0.5 = 1.25 gives 1.
  const uint8_t in[4] = {0, 2, 2, 0};
  const std::vector<uint8_t> want = {0, 1, 2, 2,  //
                                     1, 1, 2, 2,  //
                                     2, 2, 1, 1,  //
                                     2, 2, 1, 0};
  EXPECT_EQ(pillow_resize_plane(in, 2, 2, 4, 4, PillowFilter::kBilinear), want);
}

TEST(PillowResampleTest, StridedOutputAndCrop) {
  // Outputs 1..2 of the 2 -> 4 resize on both axes, written with stride 2.
  const uint8_t in[4] = {0, 100, 0, 100};  // horizontal ramp
  const PillowAxis a = pillow_axis(PillowFilter::kBilinear, 2, 4, 1, 2);
  uint8_t out[8] = {9, 9, 9, 9, 9, 9, 9, 9};
  pillow_resample_plane(in, 2, 2, a, a, out, 2);
  EXPECT_EQ(std::vector<uint8_t>(out, out + 8), (std::vector<uint8_t>{25, 9, 75, 9, 25, 9, 75, 9}));
}

TEST(PillowResampleTest, BoxDownscaleByTwoIsRoundedMean) {
  const uint8_t in[4 * 2] = {0, 1, 10, 13, 2, 3, 20, 30};
  const std::vector<uint8_t> out = pillow_resize_plane(in, 4, 2, 2, 1, PillowFilter::kBox);
  ASSERT_EQ(out.size(), 2u);
  // Horizontal pass first (rounded to uint8), then vertical: (0+1)/2 -> 1
  // (round half up), (2+3)/2 -> 3; then (1+3)/2 = 2. (10+13)/2 -> 12, (20+30)/2 = 25 -> 19.
  EXPECT_EQ(out[0], 2);
  EXPECT_EQ(out[1], 19);
}

TEST(PillowResampleTest, BoxUpscaleRepeatsPixels) {
  // 2 -> 5: centres 0.2, 0.6, 1.0, 1.4, 1.8. Output 2 reads sources
  // int(1.0 - 0.5 + 0.5) = 1 .. int(2.0) - 1 = 1, at x - 1.0 + 0.5 = 0.5: inside
  // the box (-0.5, 0.5], so it takes pixel 1 (Pillow before 7.0 used [-0.5,
  // 0.5), leaving output 2 without any tap).
  const uint8_t in[2] = {10, 200};
  EXPECT_EQ(pillow_resize_plane(in, 2, 1, 5, 1, PillowFilter::kBox), (std::vector<uint8_t>{10, 10, 200, 200, 200}));
}

TEST(PillowResampleTest, RejectsBadGeometry) {
  EXPECT_THROW(pillow_axis(PillowFilter::kBilinear, 0, 4), CliError);
  EXPECT_THROW(pillow_axis(PillowFilter::kBilinear, 4, 0), CliError);
  EXPECT_THROW(pillow_axis(PillowFilter::kBilinear, 4, 8, 5, 4), CliError);
  EXPECT_THROW(pillow_axis(PillowFilter::kBilinear, 4, 8, -1, 2), CliError);
  EXPECT_THROW(pillow_axis(PillowFilter::kBox, (1 << 24) + 1, 8), CliError);
}

}  // namespace
}  // namespace tinyzo
