// The exact integer resize/crop of docs/data.md: hand-computed cases on tiny
// images, the 32 -> 147 -> 128 taps, and properties.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "errors.h"
#include "preprocess.h"

namespace tinyzo {
namespace {

void expect_tap(const ResizeTap& t, int x0, int x1, int w0, int w1) {
  EXPECT_EQ(t.x0, x0);
  EXPECT_EQ(t.x1, x1);
  EXPECT_EQ(t.w0, w0);
  EXPECT_EQ(t.w1, w1);
}

TEST(PreprocessTest, TapsOfATwoToFourResize) {
  // den = 2*4 = 8; s = max(0, (2i+1)*2 - 4) = 0, 2, 6, 10.
  const std::vector<ResizeTap> t = resize_taps(2, 4, 0, 4);
  ASSERT_EQ(t.size(), 4u);
  expect_tap(t[0], 0, 1, 8, 0);
  expect_tap(t[1], 0, 1, 6, 2);
  expect_tap(t[2], 0, 1, 2, 6);
  // s = 10: x0 = 1 = src - 1, so both taps clamp to the last pixel.
  expect_tap(t[3], 1, 1, 8, 0);
}

TEST(PreprocessTest, TapsOfThePaperResize) {
  // 32 -> 147, den 294.
  const std::vector<ResizeTap> t = resize_taps(32, 147, 0, 147);
  // i = 0: s = 32 - 147 < 0 -> 0.
  expect_tap(t[0], 0, 1, 294, 0);
  // i = 10 (first crop row): s = 21*32 - 147 = 525 = 294 + 231.
  expect_tap(t[10], 1, 2, 63, 231);
  // i = 137 (last crop row): s = 275*32 - 147 = 8653 = 29*294 + 127.
  expect_tap(t[137], 29, 30, 167, 127);
  // i = 143: s = 287*32 - 147 = 9037 = 30*294 + 217.
  expect_tap(t[143], 30, 31, 77, 217);
  // i = 145: s = 9165, x0 = 31: clamped.
  expect_tap(t[145], 31, 31, 294, 0);
  for (const ResizeTap& tap : t) {
    EXPECT_EQ(tap.w0 + tap.w1, 294);
    EXPECT_GE(tap.w0, 1);  // w1 < den, so the near pixel always contributes
  }
  // A sub-range gives the same taps.
  const std::vector<ResizeTap> crop = resize_taps(32, 147, 10, 128);
  ASSERT_EQ(crop.size(), 128u);
  EXPECT_EQ(crop[0].w1, t[10].w1);
  EXPECT_EQ(crop[127].x0, t[137].x0);
}

TEST(PreprocessTest, CentreCropOffsetRoundsHalfToEven) {
  EXPECT_EQ(center_crop_offset(147, 128), 10);  // round(9.5) = 10
  EXPECT_EQ(center_crop_offset(146, 128), 9);
  EXPECT_EQ(center_crop_offset(80, 64), 8);
  EXPECT_EQ(center_crop_offset(75, 64), 6);  // round(5.5) = 6
  EXPECT_EQ(center_crop_offset(73, 64), 4);  // round(4.5) = 4
  EXPECT_EQ(center_crop_offset(128, 128), 0);
  EXPECT_EQ(default_resize_for_crop(128), 147);
  EXPECT_EQ(default_resize_for_crop(64), 74);  // 73.5 rounded up
}

TEST(PreprocessTest, HandComputedTwoByTwoImage) {
  // One channel, 2x2 -> 4x4, no crop. Taps per axis (see above): (8,0),
  // (6,2), (2,6), last pixel. D = 64, rounding half up.
  const uint8_t img[4] = {0, 0, 0, 8};  // only the bottom-right pixel is 8
  uint8_t out[16];
  resize_center_crop_u8(img, 1, ResizeCropSpec{2, 4, 4}, out);
  // (1,1): 4*8/64 = 0.5 -> 1 (half up); (2,2): 36*8/64 = 4.5 -> 5;
  // (1,2): 12*8/64 = 1.5 -> 2; (1,3): 2*8*8/64 = 2; (3,3): 8.
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
  // Along a ramp: 1 -> (6*0 + 2*100)/8 = 25, 2 -> 75. Output is [y][x][c].
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
  EXPECT_THROW(resize_taps(2, 4, 3, 2), CliError);
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

TEST(PreprocessTest, InputPreprocessorQuantizesAsPMinus128) {
  const InputPreprocessor prep(input_tensor(128, 128, 3, 1.0f / 127.5f, 0));
  EXPECT_EQ(prep.spec().resize, 147);
  EXPECT_EQ(prep.spec().crop, 128);
  std::vector<uint8_t> img(3 * 1024);
  for (int c = 0; c < 3; ++c) std::fill(img.begin() + c * 1024, img.begin() + (c + 1) * 1024, uint8_t(c == 0 ? 0 : c == 1 ? 128 : 255));
  std::vector<int8_t> out(prep.output_elements());
  prep.run(img.data(), out.data());
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], i % 3 == 0 ? -128 : i % 3 == 1 ? 0 : 127) << i;
}

TEST(PreprocessTest, InputPreprocessorMatchesResizeThenShift) {
  std::vector<uint8_t> img(3 * 1024);
  uint32_t x = 7;
  for (auto& p : img) x = x * 1664525u + 1013904223u, p = static_cast<uint8_t>(x >> 24);
  const InputPreprocessor prep(input_tensor(64, 64, 3, 1.0f / 127.5f, 0));
  std::vector<int8_t> q(prep.output_elements());
  prep.run(img.data(), q.data());
  std::vector<uint8_t> u(64 * 64 * 3);
  resize_center_crop_u8(img.data(), 3, ResizeCropSpec{32, 74, 64}, u.data());
  for (size_t i = 0; i < u.size(); ++i) ASSERT_EQ(q[i], int(u[i]) - 128) << i;
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
