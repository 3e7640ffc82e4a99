// The eval preprocessing of docs/data.md (Pillow bilinear resize, centre crop,
// the float32 pixel table): hand-computed cases on tiny images, the 32 -> 147
// coefficients, the table, and properties. The comparison with real Pillow and
// torchvision is python/tests/test_preprocess.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstdint>
#include <vector>

#include "util/errors.h"
#include "data/preprocess.h"

namespace tinyzo {
namespace {

TEST(PreprocessTest, PaperResizeCoefficients) {
  // 32 -> 147 (Pillow bilinear: scale 32/147 < 1, so support 1 and at most 2
  // taps). Output 10 (the first crop row): centre 10.5 * 32/147 = 2.2857, sources
  // int(1.7857) = 1 .. int(3.7857) - 1 = 2, weights 1 - |x - 2.2857 + 0.5|:
  // 63/294 and 231/294, times 2^22: 898779.4 -> 898779, 3295524.6 -> 3295525.
  const PillowAxis a = pillow_axis(PillowFilter::kBilinear, 32, 147);
  ASSERT_EQ(a.count(), 147);
  EXPECT_EQ(a.start[10], 1);
  ASSERT_EQ(a.taps[10], 2);
  EXPECT_EQ(a.weight(10, 0), 898779);
  EXPECT_EQ(a.weight(10, 1), 3295525);
  // Output 0: centre 0.109, the left neighbour is outside, so one tap of
  // weight 1 (Pillow renormalises instead of clamping the coordinate).
  EXPECT_EQ(a.start[0], 0);
  EXPECT_EQ(a.taps[0], 1);
  EXPECT_EQ(a.weight(0, 0), 1 << 22);
  // Output 146: centre 31.891, one tap on the last pixel.
  EXPECT_EQ(a.start[146], 31);
  EXPECT_EQ(a.taps[146], 1);
  EXPECT_EQ(a.weight(146, 0), 1 << 22);
  // Every output's weights sum to 2^22 within the per-tap rounding.
  for (int o = 0; o < a.count(); ++o) {
    int sum = 0;
    for (int j = 0; j < a.taps[o]; ++j) sum += a.weight(o, j);
    EXPECT_LE(std::abs(sum - (1 << 22)), 1) << o;
  }
}

TEST(PreprocessTest, CentreCropOffsetRoundsHalfToEven) {
  EXPECT_EQ(center_crop_offset(147, 128), 10);  // round(9.5) = 10
  EXPECT_EQ(center_crop_offset(146, 128), 9);
  EXPECT_EQ(center_crop_offset(80, 64), 8);
  EXPECT_EQ(center_crop_offset(75, 64), 6);  // round(5.5) = 6
  EXPECT_EQ(center_crop_offset(73, 64), 4);  // round(4.5) = 4
  EXPECT_EQ(center_crop_offset(128, 128), 0);
  // ceil(crop / 0.875) = ceil(8 crop / 7).
  EXPECT_EQ(default_resize_for_crop(128), 147);  // 146.29
  EXPECT_EQ(default_resize_for_crop(64), 74);    // 73.14
  EXPECT_EQ(default_resize_for_crop(160), 183);  // 182.86
  EXPECT_EQ(default_resize_for_crop(112), 128);  // exactly 128
  EXPECT_EQ(default_resize_for_crop(1), 2);
}

TEST(PreprocessTest, PixelTableAsTorchvisionComputesIt) {
  const std::array<int8_t, 256>& t = pixel_to_input_table();
  // Hand-checked binary32 values: (0/255 - 0.5) / float32(1/255) = -127.49999
  // -> -127; p = 32: -95.5 exactly -> -96 (even); p = 33: -94.5 -> -94 (even);
  // p = 128: 0.50000 (just above the tie) -> 1; p = 255: 127.49999 -> 127.
  EXPECT_EQ(t[0], -127);
  EXPECT_EQ(t[32], -96);
  EXPECT_EQ(t[33], -94);
  EXPECT_EQ(t[128], 1);
  EXPECT_EQ(t[224], 96);
  EXPECT_EQ(t[255], 127);
  // The closed form of docs/data.md for every pixel.
  for (int p = 0; p < 256; ++p) {
    const bool minus128 = (p >= 32 && p <= 62 && p % 2 == 0) || (p >= 176 && p <= 222 && p % 2 == 0) || p >= 224;
    EXPECT_EQ(t[size_t(p)], minus128 ? p - 128 : p - 127) << "p = " << p;
  }
}

TEST(PreprocessTest, HandComputedTwoByTwoImage) {
  // One channel, 2x2 -> 4x4, no crop. Weights per axis: 1 | 3/4, 1/4 |
  // 1/4, 3/4 | 1; each pass rounds half up to uint8.
  const uint8_t img[4] = {0, 0, 0, 8};  // only the bottom-right pixel is 8
  uint8_t out[16];
  resize_center_crop_u8(img, 1, ResizeCropSpec{2, 4, 4}, out);
  // Rows: row 0 stays 0, row 1 -> 0, 2, 6, 8. Columns then: (0, 2) -> 0,
  // 0.5 -> 1 (half up), 1.5 -> 2, 2; (0, 6) -> 0, 2, 4.5 -> 5, 6; (0, 8) -> 0, 2, 6, 8.
  const uint8_t want[16] = {0, 0, 0, 0,  //
                            0, 1, 2, 2,  //
                            0, 2, 5, 6,  //
                            0, 2, 6, 8};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(out[i], want[i]) << "at " << i / 4 << "," << i % 4;
}

TEST(PreprocessTest, RampAndCropAndInterleave) {
  // Two channels 2x2 -> 4x4, crop 2 (offset 1): rows/cols 1..2 of the resize.
  // Channel 0 is a horizontal ramp 0,100; channel 1 a vertical ramp 0,100.
  const uint8_t img[8] = {0, 100, 0, 100,   //
                          0, 0, 100, 100};  //
  uint8_t out[2 * 2 * 2];
  resize_center_crop_u8(img, 2, ResizeCropSpec{2, 4, 2}, out);
  // Along a ramp: 1 -> 3/4 * 0 + 1/4 * 100 = 25, 2 -> 75. Output is [y][x][c].
  const uint8_t want[8] = {25, 25, 75, 25, 25, 75, 75, 75};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i], want[i]) << i;
}

TEST(PreprocessTest, ConstantImageStaysConstant) {
  std::vector<uint8_t> img(3 * 32 * 32);
  for (int c = 0; c < 3; ++c) std::fill(img.begin() + c * 1024, img.begin() + (c + 1) * 1024, uint8_t(40 + 90 * c));
  std::vector<uint8_t> out(128 * 128 * 3);
  resize_center_crop_u8(img.data(), 3, ResizeCropSpec{32, 147, 128}, out.data());
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 40 + 90 * (i % 3)) << i;
}

TEST(PreprocessTest, OutputStaysWithinInputRange) {
  // Bilinear weights are a convex combination: every output lies within the
  // min..max of the input, for any sizes.
  uint32_t x = 12345;
  for (const ResizeCropSpec spec : {ResizeCropSpec{32, 147, 128}, ResizeCropSpec{32, 80, 64},
                                    ResizeCropSpec{32, 37, 32}, ResizeCropSpec{7, 5, 3}}) {
    std::vector<uint8_t> img(3 * size_t(spec.src) * spec.src);
    for (auto& p : img) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      p = static_cast<uint8_t>(60 + x % 101);  // 60..160
    }
    std::vector<uint8_t> out(size_t(spec.crop) * spec.crop * 3);
    resize_center_crop_u8(img.data(), 3, spec, out.data());
    EXPECT_GE(*std::min_element(out.begin(), out.end()), 60);
    EXPECT_LE(*std::max_element(out.begin(), out.end()), 160);
  }
}

TEST(PreprocessTest, RejectsBadGeometry) {
  uint8_t img[4] = {}, out[64];
  EXPECT_THROW(resize_center_crop_u8(img, 1, ResizeCropSpec{2, 4, 5}, out), CliError);
  EXPECT_THROW(resize_center_crop_u8(img, 1, ResizeCropSpec{0, 4, 4}, out), CliError);
  EXPECT_THROW(resize_center_crop_u8(img, 1, ResizeCropSpec{2, 0, 0}, out), CliError);
}

TzmTensor input_tensor(int h, int w, int c, float scale, int zero) {
  TzmTensor t{};
  t.dtype = static_cast<uint8_t>(DType::kInt8);
  t.rank = 3;
  t.dims[0] = h, t.dims[1] = w, t.dims[2] = c, t.dims[3] = 1;
  t.scale = scale;
  t.zero_point = zero;
  return t;
}

TEST(PreprocessTest, InputPreprocessorMapsPixelsThroughTheTable) {
  const InputPreprocessor prep(input_tensor(128, 128, 3, 1.0f / 127.5f, 0));
  EXPECT_EQ(prep.spec().resize, 147);
  EXPECT_EQ(prep.spec().crop, 128);
  std::vector<uint8_t> img(3 * 1024);
  for (int c = 0; c < 3; ++c) std::fill(img.begin() + c * 1024, img.begin() + (c + 1) * 1024, uint8_t(c == 0 ? 0 : c == 1 ? 128 : 255));
  std::vector<int8_t> out(prep.output_elements());
  prep.run(img.data(), out.data());
  // 0 -> -127, 128 -> 1, 255 -> 127 (not p - 128).
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], i % 3 == 0 ? -127 : i % 3 == 1 ? 1 : 127) << i;
}

TEST(PreprocessTest, InputPreprocessorMatchesResizeThenTable) {
  std::vector<uint8_t> img(3 * 1024);
  uint32_t x = 7;
  for (auto& p : img) x = x * 1664525u + 1013904223u, p = static_cast<uint8_t>(x >> 24);
  const InputPreprocessor prep(input_tensor(64, 64, 3, 1.0f / 127.5f, 0));
  std::vector<int8_t> q(prep.output_elements());
  prep.run(img.data(), q.data());
  std::vector<uint8_t> u(64 * 64 * 3);
  resize_center_crop_u8(img.data(), 3, ResizeCropSpec{32, 74, 64}, u.data());
  for (size_t i = 0; i < u.size(); ++i) ASSERT_EQ(q[i], pixel_to_input_table()[u[i]]) << i;
}

TEST(PreprocessTest, InputPreprocessorRejectsOtherInputs) {
  EXPECT_THROW(InputPreprocessor(input_tensor(128, 128, 3, 0.02f, 0)), CliError);        // other scale
  EXPECT_THROW(InputPreprocessor(input_tensor(128, 128, 3, 1.0f / 127.5f, 5)), CliError); // zero point
  EXPECT_THROW(InputPreprocessor(input_tensor(128, 128, 1, 1.0f / 127.5f, 0)), CliError); // grey
  EXPECT_THROW(InputPreprocessor(input_tensor(128, 96, 3, 1.0f / 127.5f, 0)), CliError);  // not square
  try {
    InputPreprocessor p(input_tensor(128, 128, 3, 0.02f, 0));
  } catch (const CliError& e) {
    EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tinyzo
