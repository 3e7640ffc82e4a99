// Reference kernels: golden cases computed by hand (the arithmetic is in the
// comments), the rounding/requantization edge cases of docs/semantics.md, and
// the specialised depthwise/pointwise kernels against the general conv2d_s8
// on random shapes with fixed seeds, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "test_models.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/requant.h"

namespace tinyzo {
namespace {

using testing::TestRng;
using V8 = std::vector<int8_t>;

// ---- round_half_even / requantize ----

TEST(RefKernelsTest, RoundHalfEvenTies) {
  EXPECT_EQ(round_half_even(0.5f), 0);
  EXPECT_EQ(round_half_even(1.5f), 2);
  EXPECT_EQ(round_half_even(2.5f), 2);
  EXPECT_EQ(round_half_even(3.5f), 4);
  EXPECT_EQ(round_half_even(-0.5f), 0);
  EXPECT_EQ(round_half_even(-1.5f), -2);
  EXPECT_EQ(round_half_even(-2.5f), -2);
  EXPECT_EQ(round_half_even(-3.5f), -4);
  EXPECT_EQ(round_half_even(126.5f), 126);
  EXPECT_EQ(round_half_even(127.5f), 128);
  EXPECT_EQ(round_half_even(-128.5f), -128);
}

TEST(RefKernelsTest, RoundHalfEvenNonTies) {
  EXPECT_EQ(round_half_even(0.f), 0);
  EXPECT_EQ(round_half_even(-0.f), 0);
  EXPECT_EQ(round_half_even(0.49999997f), 0);  // largest float below 0.5
  EXPECT_EQ(round_half_even(0.50000006f), 1);  // smallest float above 0.5
  EXPECT_EQ(round_half_even(-0.50000006f), -1);
  EXPECT_EQ(round_half_even(2.4f), 2);
  EXPECT_EQ(round_half_even(2.6f), 3);
  EXPECT_EQ(round_half_even(-2.6f), -3);
  EXPECT_EQ(round_half_even(1e-30f), 0);
  // 2^23 + 1: floats here are integers, nothing to round.
  EXPECT_EQ(round_half_even(8388609.f), 8388609);
  EXPECT_EQ(round_half_even(-8388609.f), -8388609);
  // 2^22 + 0.5 is a tie with an even integer part (4194304).
  EXPECT_EQ(round_half_even(4194304.5f), 4194304);
  EXPECT_EQ(round_half_even(4194305.5f), 4194306);
}

TEST(RefKernelsTest, RoundHalfEvenSaturatesHugeAndNaN) {
  constexpr int32_t kSat = 1 << 30;
  EXPECT_EQ(round_half_even(1073741760.f), 1073741760);  // largest float below 2^30
  EXPECT_EQ(round_half_even(1073741824.f), kSat);
  EXPECT_EQ(round_half_even(-1073741824.f), -kSat);
  EXPECT_EQ(round_half_even(3e9f), kSat);
  EXPECT_EQ(round_half_even(-3e9f), -kSat);
  EXPECT_EQ(round_half_even(std::numeric_limits<float>::max()), kSat);
  EXPECT_EQ(round_half_even(std::numeric_limits<float>::lowest()), -kSat);
  EXPECT_EQ(round_half_even(std::numeric_limits<float>::infinity()), kSat);
  EXPECT_EQ(round_half_even(-std::numeric_limits<float>::infinity()), -kSat);
  // NaN has no order: the rule maps it to 0 (then the zero point), always.
  EXPECT_EQ(round_half_even(std::numeric_limits<float>::quiet_NaN()), 0);
  EXPECT_EQ(round_half_even(-std::numeric_limits<float>::quiet_NaN()), 0);
}

TEST(RefKernelsTest, RequantizeRule) {
  // (f32(10) + f32(3)) * 0.5 = 6.5; / 1 = 6.5 -> 6 (tie to even); + 2 = 8.
  EXPECT_EQ(requantize(10, 3, 0.5f, 1.f, 2, -128, 127), 8);
  // (-10 + 3) * 0.5 = -3.5 -> -4; - 5 = -9.
  EXPECT_EQ(requantize(-10, 3, 0.5f, 1.f, -5, -128, 127), -9);
  // The product and the division are two binary32 steps, not one multiply by
  // m / s: with m = 5 * 0.01f = 0.049999997 and s = 2 * 0.01f = 0.0199999996,
  // (3 * m) / s = 7.49999952 -> 7, whereas 3 * (m / s) = 7.5 -> 8.
  const float m = 5 * 0.01f, s = 2 * 0.01f;
  EXPECT_EQ(requantize(3, 0, m, s, 0, -128, 127), 7);
  // Act clamps: ReLU (z = -128, lo = -128) and ReLU6-like upper bounds.
  EXPECT_EQ(requantize(-1000, 0, 1.f, 1.f, -128, -128, 127), -128);
  EXPECT_EQ(requantize(50, 0, 1.f, 1.f, 0, -128, 20), 20);
  EXPECT_EQ(requantize(-50, 0, 1.f, 1.f, 0, -10, 20), -10);
  EXPECT_EQ(requantize(5, 0, 1.f, 1.f, 0, 5, 5), 5);
  // |bias| = 2^31 - 1 becomes 2^31 in binary32 (the dead channels of the
  // reference checkpoints): huge, saturates, no overflow.
  EXPECT_EQ(requantize(0, std::numeric_limits<int32_t>::max(), 1.f, 1.f, 0, -128, 127), 127);
  EXPECT_EQ(requantize(0, std::numeric_limits<int32_t>::min(), 1.f, 1.f, 0, -128, 127), -128);
  EXPECT_EQ(requantize(1 << 24, 0, 1e10f, 1e-10f, 127, -128, 127), 127);  // inf, then + z: saturates
  EXPECT_EQ(requantize(-(1 << 24), 0, 1e10f, 1e-10f, -128, -128, 127), -128);
}

TEST(RefKernelsTest, RequantizeNaNIsDeterministic) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // NaN -> 0 -> the output zero point (clamped to the act range).
  EXPECT_EQ(requantize(7, 0, nan, 1.f, 3, -128, 127), 3);
  EXPECT_EQ(requantize(7, 0, 1.f, nan, -4, -128, 127), -4);
  EXPECT_EQ(requantize(0, 0, 1.f, 0.f, -4, -128, 127), -4);  // 0 / 0
  EXPECT_EQ(requantize(0, 0, nan, 1.f, -128, -100, 127), -100);
  EXPECT_EQ(requantize(1, 0, 1.f, 0.f, 0, -128, 127), 127);  // 1 / 0 = +inf
}

TEST(RefKernelsTest, ClampI32) {
  EXPECT_EQ(clamp_i32(5, -3, 3), 3);
  EXPECT_EQ(clamp_i32(-5, -3, 3), -3);
  EXPECT_EQ(clamp_i32(0, -3, 3), 0);
  EXPECT_EQ(clamp_i32(std::numeric_limits<int32_t>::min(), -128, 127), -128);
}

// ---- convolutions, by hand ----

// 3x3, stride 2, padding 1 (top/left) on a 4x4x1 input, 2 output channels.
// x = v + z_x with z_x = 1, where v (the values the arithmetic sees) is
//    0  1  2  3
//    4  5  6  7
//    8  9 10 11
//   12 13 14 15
// Output 2x2 (out = (4 + 1 + 0 - 3) / 2 + 1 = 2); window of (oy, ox) starts at
// input (2oy - 1, 2ox - 1); padding contributes 0.
// Channel 0, w = [[1,2,0],[0,1,0],[0,0,-1]], bias 1, mult 0.5, y_scale 1, z_y -3:
//   (0,0): only w[1][1]*v(0,0) + w[2][2]*v(1,1) = 0 - 5            -> acc -5
//   (0,1): w[1][1]*v(0,2) + w[2][2]*v(1,3) = 2 - 7                  -> acc -5
//   (1,0): w[0][1]*v(1,0) + w[1][1]*v(2,0) + w[2][2]*v(3,1)
//          = 2*4 + 8 - 13                                          -> acc 3
//   (1,1): v(1,1) + 2 v(1,2) + v(2,2) - v(3,3) = 5 + 12 + 10 - 15   -> acc 12
//   v = (acc + 1) * 0.5 = -2, -2, 2, 6.5 -> rne -2, -2, 2, 6 -> + (-3): -5, -5, -1, 3
// Channel 1, all-ones 3x3, bias 0, mult 1, act_max 40 (window sums):
//   (0,0): 0+1+4+5 = 10; (0,1): 1+2+3+5+6+7 = 24; (1,0): 4+5+8+9+12+13 = 51;
//   (1,1): 5+6+7+9+10+11+13+14+15 = 90 -> + (-3): 7, 21, 48, 87 -> clamp 40: 7, 21, 40, 40
TEST(RefKernelsTest, Conv3x3Stride2Padding) {
  V8 x(16);
  for (int i = 0; i < 16; ++i) x[i] = static_cast<int8_t>(i + 1);
  const V8 w = {1, 2, 0, 0, 1, 0, 0, 0, -1,  // [co 0][ky][kx][ci]
                1, 1, 1, 1, 1, 1, 1, 1, 1};
  const int32_t bias[2] = {1, 0};
  const float mult[2] = {0.5f, 1.f};
  ConvParams p;
  p.in_h = p.in_w = 4;
  p.in_c = 1;
  p.out_h = p.out_w = 2;
  p.out_c = 2;
  p.kh = p.kw = 3;
  p.stride_h = p.stride_w = 2;
  p.pad_top = p.pad_left = 1;
  p.x_zero = 1;
  p.y_scale = 1.f;
  p.y_zero = -3;
  p.act_max = 40;
  V8 y(8, 99);
  ref::conv2d_s8(p, x.data(), w.data(), bias, mult, y.data());
  EXPECT_EQ(y, (V8{-5, 7, -5, 21, -1, 40, 3, 40}));
}

// Depthwise 3x3, stride 1, padding 1 on 2x2x2; z_x = 1 (padding must add 0, not -z_x).
// x[h][w][c]: (0,0) = {1,-1}, (0,1) = {2,0}, (1,0) = {3,5}, (1,1) = {4,-2}.
// Channel 0: identity kernel (centre 1), bias 0, mult 1, y_scale 0.5:
//   acc = x - 1 = 0, 1, 2, 3 -> v = acc / 0.5 = 0, 2, 4, 6.
// Channel 1: kernel with only w[0][0] = 1 (reads (oy-1, ox-1)), bias 2, mult 0.25:
//   (0,0), (0,1), (1,0) read padding: acc 0 -> (0 + 2) * 0.25 / 0.5 = 1
//   (1,1) reads x(0,0) - 1 = -2 -> (-2 + 2) * 0.25 / 0.5 = 0
TEST(RefKernelsTest, DepthwiseByHand) {
  const V8 x = {1, -1, 2, 0, 3, 5, 4, -2};
  const V8 w = {0, 0, 0, 0, 1, 0, 0, 0, 0,  // [c 0][ky][kx]
                1, 0, 0, 0, 0, 0, 0, 0, 0};
  const int32_t bias[2] = {0, 2};
  const float mult[2] = {1.f, 0.25f};
  ConvParams p;
  p.in_h = p.in_w = p.out_h = p.out_w = 2;
  p.in_c = p.out_c = p.groups = 2;
  p.kh = p.kw = 3;
  p.pad_top = p.pad_left = 1;
  p.x_zero = 1;
  p.y_scale = 0.5f;
  const V8 expected = {0, 1, 2, 1, 4, 1, 6, 0};
  V8 y(8, 99);
  ref::depthwise_conv2d_s8(p, x.data(), w.data(), bias, mult, y.data());
  EXPECT_EQ(y, expected);
  V8 y_general(8, 99);
  ref::conv2d_s8(p, x.data(), w.data(), bias, mult, y_general.data());
  EXPECT_EQ(y_general, expected);
}

// Pointwise 1x1 on a 1x2 map, Ci 3 -> Co 2, z_x = -1 (x - z = x + 1):
//   pixel 0: x = {1,2,3} -> {2,3,4}; pixel 1: x = {-1,0,4} -> {0,1,5}
//   w co0 = {1,-1,2}, co1 = {0,3,-2}; bias {1,-1}; mult {0.5, 1}; y_scale 2; z_y 10
//   p0 co0: 2-3+8 = 7  -> (7+1)*0.5/2 = 2      -> 12
//   p0 co1: 0+9-8 = 1  -> (1-1)*1/2 = 0        -> 10
//   p1 co0: 0-1+10 = 9 -> (9+1)*0.5/2 = 2.5 -> 2 (tie, even) -> 12
//   p1 co1: 0+3-10 = -7 -> (-7-1)/2 = -4       -> 6
TEST(RefKernelsTest, PointwiseByHand) {
  const V8 x = {1, 2, 3, -1, 0, 4};
  const V8 w = {1, -1, 2, 0, 3, -2};
  const int32_t bias[2] = {1, -1};
  const float mult[2] = {0.5f, 1.f};
  ConvParams p;
  p.in_h = p.out_h = 1;
  p.in_w = p.out_w = 2;
  p.in_c = 3;
  p.out_c = 2;
  p.x_zero = -1;
  p.y_scale = 2.f;
  p.y_zero = 10;
  const V8 expected = {12, 10, 12, 6};
  V8 y(4, 99);
  ref::pointwise_conv2d_s8(p, x.data(), w.data(), bias, mult, y.data());
  EXPECT_EQ(y, expected);
  V8 y_general(4, 99);
  ref::conv2d_s8(p, x.data(), w.data(), bias, mult, y_general.data());
  EXPECT_EQ(y_general, expected);
}

// groups = 2, Ci 4 -> Co 4, kernel 1x2 over a 1x2 map (no padding: one output).
// x (1x2x4): pixel 0 = {1,2,3,4}, pixel 1 = {0,1,-1,2}; z_x = 0.
// Group 0 sees channels 0-1, group 1 channels 2-3; weight [co][kx][ci/g]:
//   co0 = {(1,1), (0,0)}:  1+2           = 3
//   co1 = {(2,0), (0,1)}:  2*1 + 1*1     = 3
//   co2 = {(1,-1), (1,1)}: 3-4 + (-1+2)  = 0
//   co3 = {(0,5), (-2,0)}: 5*4 + (-2)(-1) = 22
// bias {0, 1, -1, 0}, mult 1, y_scale 1, z_y 0 -> {3, 4, -1, 22}
TEST(RefKernelsTest, GroupedConvByHand) {
  const V8 x = {1, 2, 3, 4, 0, 1, -1, 2};
  const V8 w = {1, 1, 0, 0, 2, 0, 0, 1, 1, -1, 1, 1, 0, 5, -2, 0};
  const int32_t bias[4] = {0, 1, -1, 0};
  const float mult[4] = {1.f, 1.f, 1.f, 1.f};
  ConvParams p;
  p.in_h = 1;
  p.in_w = 2;
  p.in_c = 4;
  p.out_h = p.out_w = 1;
  p.out_c = 4;
  p.kh = 1;
  p.kw = 2;
  p.groups = 2;
  V8 y(4, 99);
  ref::conv2d_s8(p, x.data(), w.data(), bias, mult, y.data());
  EXPECT_EQ(y, (V8{3, 4, -1, 22}));
}

// ---- add ----

// x1: z 2, s 0.5; x2: z -4, s 0.25; y: s 1, z -1, act [-128, 80]
//   (10, 4):   (8)(0.5) + (8)(0.25)    = 4 + 2      = 6      -> 6   -> 5
//   (-20, 6):  (-22)(0.5) + (10)(0.25) = -11 + 2.5  = -8.5   -> -8 (tie, even) -> -9
//   (100, 127): (98)(0.5) + (131)(0.25) = 49 + 32.75 = 81.75 -> 82 -> 81 -> clamp 80
//   (3, -4):   (1)(0.5) + 0            = 0.5        -> 0 (tie, even) -> -1
//   (5, -4):   (3)(0.5) + 0            = 1.5        -> 2     -> 1
TEST(RefKernelsTest, AddDifferentScales) {
  const V8 x1 = {10, -20, 100, 3, 5};
  const V8 x2 = {4, 6, 127, -4, -4};
  AddParams p;
  p.x1_zero = 2;
  p.x1_scale = 0.5f;
  p.x2_zero = -4;
  p.x2_scale = 0.25f;
  p.y_zero = -1;
  p.y_scale = 1.f;
  p.act_max = 80;
  V8 y(5, 99);
  ref::add_s8(p, x1.data(), x2.data(), y.data(), y.size());
  EXPECT_EQ(y, (V8{5, -9, 80, -1, 1}));
}

TEST(RefKernelsTest, AddInPlace) {
  // The planner may give y the memory of x1 (element-wise: read i, then write i).
  V8 a = {10, -20, 100, 3, 5};
  const V8 b = {4, 6, 127, -4, -4};
  AddParams p;
  p.x1_zero = 2;
  p.x1_scale = 0.5f;
  p.x2_zero = -4;
  p.x2_scale = 0.25f;
  p.y_zero = -1;
  p.act_max = 80;
  ref::add_s8(p, a.data(), b.data(), a.data(), a.size());
  EXPECT_EQ(a, (V8{5, -9, 80, -1, 1}));
}

// ---- pools ----

// hw = 2, c = 5, the mean of the stored integers, ties to even:
//   {2,3} 2.5 -> 2; {3,4} 3.5 -> 4; {-2,-3} -2.5 -> -2; {-3,-4} -3.5 -> -4; {127,127} -> 127
TEST(RefKernelsTest, GlobalAvgPoolRoundsHalfToEven) {
  const V8 x = {2, 3, -2, -3, 127,  // position 0, channels 0..4
                3, 4, -3, -4, 127};
  V8 y(5, 99);
  ref::global_avg_pool_s8(2, 5, x.data(), y.data());
  EXPECT_EQ(y, (V8{2, 4, -2, -4, 127}));
}

// hw = 3: {1,1,2} 4/3 -> 1; {-128,-128,-127} -383/3 = -127.67 -> -128; {1,2,2} 5/3 -> 2
TEST(RefKernelsTest, GlobalAvgPoolThirds) {
  const V8 x = {1, -128, 1, 1, -128, 2, 2, -127, 2};
  V8 y(3, 99);
  ref::global_avg_pool_s8(3, 3, x.data(), y.data());
  EXPECT_EQ(y, (V8{1, -128, 2}));
}

// 3x3x1 input
//   -9 -5  3
//    4  2 -7
//   -1  0  6
// 2x2 window, stride 2, padding top/left 1 -> 2x2 output; windows start at (2oy-1, 2ox-1):
//   (0,0): {-9}             (0,1): {-5, 3}
//   (1,0): {4, -1}          (1,1): {2, -7, 0, 6}
// max (padding ignored, so an all-negative window stays negative): -9, 3, 4, 6 -> act_max 5: -9, 3, 4, 5
// avg (count excludes padding): -9, -2/2 = -1, 3/2 = 1.5 -> 2, 1/4 = 0.25 -> 0
PoolParams pool_3x3() {
  PoolParams p;
  p.in_h = p.in_w = 3;
  p.c = 1;
  p.out_h = p.out_w = 2;
  p.kh = p.kw = 2;
  p.stride_h = p.stride_w = 2;
  p.pad_top = p.pad_left = 1;
  return p;
}
const V8 kPoolInput = {-9, -5, 3, 4, 2, -7, -1, 0, 6};

TEST(RefKernelsTest, MaxPoolWithPadding) {
  PoolParams p = pool_3x3();
  p.act_max = 5;
  V8 y(4, 99);
  ref::max_pool2d_s8(p, kPoolInput.data(), y.data());
  EXPECT_EQ(y, (V8{-9, 3, 4, 5}));
}

TEST(RefKernelsTest, AvgPoolWithPaddingCountsOnlyRealPositions) {
  V8 y(4, 99);
  ref::avg_pool2d_s8(pool_3x3(), kPoolInput.data(), y.data());
  EXPECT_EQ(y, (V8{-9, -1, 2, 0}));
}

// Two channels, 2x2 window stride 1, no padding, on 2x3x2 -> 1x2x2; act_min -3.
//   channel 0 = [[1,2,3],[4,5,6]], channel 1 = [[-8,-7,-6],[-5,-4,-3]]
//   max c0: 5, 6; c1: -4, -3 (-4 -> clamp -3)
//   avg c0: 12/4 = 3, 16/4 = 4; c1: -24/4 = -6 -> -3, -20/4 = -5 -> -3
TEST(RefKernelsTest, PoolsMultiChannelWithActRange) {
  const V8 x = {1, -8, 2, -7, 3, -6, 4, -5, 5, -4, 6, -3};
  PoolParams p;
  p.in_h = 2;
  p.in_w = 3;
  p.c = 2;
  p.out_h = 1;
  p.out_w = 2;
  p.kh = p.kw = 2;
  p.act_min = -3;
  V8 y(4, 99);
  ref::max_pool2d_s8(p, x.data(), y.data());
  EXPECT_EQ(y, (V8{5, -3, 6, -3}));
  ref::avg_pool2d_s8(p, x.data(), y.data());
  EXPECT_EQ(y, (V8{3, -3, 4, -3}));
}

// ---- float head ----

// x = {3, -1}, z 1, s 0.5 -> {1, -1}; W = [[0.5, 0.25], [2, 3]]; b = {0.125, -1}
//   y0 = (0 + 0.5) + (-0.25) + 0.125 = 0.375;  y1 = (0 + 2) + (-3) + (-1) = -2
TEST(RefKernelsTest, LinearF32ByHand) {
  const V8 x = {3, -1};
  const float w[4] = {0.5f, 0.25f, 2.f, 3.f};
  const float b[2] = {0.125f, -1.f};
  LinearF32Params p;
  p.in_features = 2;
  p.out_features = 2;
  p.x_zero = 1;
  p.x_scale = 0.5f;
  float y[2] = {99.f, 99.f};
  ref::linear_f32(p, x.data(), w, b, y);
  EXPECT_EQ(y[0], 0.375f);
  EXPECT_EQ(y[1], -2.f);
}

// Strict index order: ((0 + 1e8) + 1) - 1e8 = 0 in binary32 (1e8 + 1 rounds back
// to 1e8: the spacing there is 8); any other order could give 1.
TEST(RefKernelsTest, LinearF32SumsInIndexOrder) {
  const V8 x = {1, 1, 1};
  const float w[3] = {1e8f, 1.f, -1e8f};
  const float b[1] = {0.f};
  LinearF32Params p;
  p.in_features = 3;
  p.out_features = 1;
  float y = 99.f;
  ref::linear_f32(p, x.data(), w, b, &y);
  EXPECT_EQ(y, 0.f);
}

TEST(RefKernelsTest, TableIsRef) {
  const KernelTable& t = ref::table();
  EXPECT_STREQ(t.name, "ref");
  EXPECT_EQ(t.conv2d, &ref::conv2d_s8);
  EXPECT_EQ(t.depthwise_conv2d, &ref::depthwise_conv2d_s8);
  EXPECT_EQ(t.pointwise_conv2d, &ref::pointwise_conv2d_s8);
  EXPECT_EQ(t.add, &ref::add_s8);
  EXPECT_EQ(t.global_avg_pool, &ref::global_avg_pool_s8);
  EXPECT_EQ(t.max_pool2d, &ref::max_pool2d_s8);
  EXPECT_EQ(t.avg_pool2d, &ref::avg_pool2d_s8);
  EXPECT_EQ(t.linear_f32, &ref::linear_f32);
}

// ---- specialised kernels == the general one, bit for bit ----

struct RandomConv {
  ConvParams p;
  V8 x, w, y_general, y_special;
  std::vector<int32_t> bias;
  std::vector<float> mult;
};

void fill_random_consts(RandomConv& c, size_t w_elems, TestRng& rng) {
  c.x = rng.s8(size_t(c.p.in_h) * c.p.in_w * c.p.in_c);
  c.w = rng.s8(w_elems);
  c.bias.resize(c.p.out_c);
  c.mult.resize(c.p.out_c);
  for (auto& b : c.bias) b = rng.uniform(-5000, 5000);
  // Multipliers spread over a wide range: from mostly-saturating to tiny, so
  // both the clamps and the rounding ties get exercised.
  for (auto& m : c.mult) m = std::ldexp(rng.uniform_f(0.5f, 1.f), rng.uniform(-16, -6));
  c.p.x_zero = rng.uniform(-128, 127);
  c.p.y_zero = rng.uniform(-128, 127);
  c.p.y_scale = rng.uniform_f(0.5f, 2.f);
  c.p.act_min = rng.uniform(-128, 0);
  c.p.act_max = rng.uniform(c.p.act_min, 127);
  const size_t n = size_t(c.p.out_h) * c.p.out_w * c.p.out_c;
  c.y_general.assign(n, 0x5A);
  c.y_special.assign(n, -0x5A);
}

TEST(RefKernelsTest, DepthwiseEqualsGeneralConvOnRandomShapes) {
  TestRng rng(0xD3);
  for (int iter = 0; iter < 300; ++iter) {
    RandomConv c;
    ConvParams& p = c.p;
    p.in_h = rng.uniform(1, 9);
    p.in_w = rng.uniform(1, 9);
    p.in_c = p.out_c = p.groups = rng.uniform(1, 12);
    p.kh = rng.uniform(1, 5);
    p.kw = rng.uniform(1, 5);
    p.stride_h = rng.uniform(1, 3);
    p.stride_w = rng.uniform(1, 3);
    p.pad_top = rng.uniform(0, p.kh - 1);
    p.pad_left = rng.uniform(0, p.kw - 1);
    const int pad_bottom = rng.uniform(0, p.kh - 1), pad_right = rng.uniform(0, p.kw - 1);
    const int32_t oh = window_output_size(p.in_h, p.kh, p.stride_h, p.pad_top, pad_bottom);
    const int32_t ow = window_output_size(p.in_w, p.kw, p.stride_w, p.pad_left, pad_right);
    if (oh < 1 || ow < 1) continue;
    p.out_h = oh;
    p.out_w = ow;
    fill_random_consts(c, size_t(p.out_c) * p.kh * p.kw, rng);
    ref::conv2d_s8(p, c.x.data(), c.w.data(), c.bias.data(), c.mult.data(), c.y_general.data());
    ref::depthwise_conv2d_s8(p, c.x.data(), c.w.data(), c.bias.data(), c.mult.data(), c.y_special.data());
    ASSERT_EQ(c.y_general, c.y_special) << "iteration " << iter << ": " << p.in_h << "x" << p.in_w << "x" << p.in_c
                                        << " k " << p.kh << "x" << p.kw << " s " << p.stride_h << "," << p.stride_w;
  }
}

TEST(RefKernelsTest, PointwiseEqualsGeneralConvOnRandomShapes) {
  TestRng rng(0x1F);
  for (int iter = 0; iter < 300; ++iter) {
    RandomConv c;
    ConvParams& p = c.p;
    p.in_h = p.out_h = rng.uniform(1, 8);
    p.in_w = p.out_w = rng.uniform(1, 8);
    p.in_c = rng.uniform(1, 40);
    p.out_c = rng.uniform(1, 24);
    fill_random_consts(c, size_t(p.out_c) * p.in_c, rng);
    ref::conv2d_s8(p, c.x.data(), c.w.data(), c.bias.data(), c.mult.data(), c.y_general.data());
    ref::pointwise_conv2d_s8(p, c.x.data(), c.w.data(), c.bias.data(), c.mult.data(), c.y_special.data());
    ASSERT_EQ(c.y_general, c.y_special) << "iteration " << iter;
  }
}

// The engine's kernel table (best_kernels(), possibly vectorized) against ref,
// on the shapes the engine dispatches to each entry.
TEST(RefKernelsTest, BestKernelsMatchRef) {
  const KernelTable& best = best_kernels();
  TestRng rng(0xBE57);
  for (int iter = 0; iter < 200; ++iter) {
    RandomConv c;
    ConvParams& p = c.p;
    p.in_h = rng.uniform(1, 8);
    p.in_w = rng.uniform(1, 8);
    p.in_c = rng.uniform(1, 4) * 4;
    p.groups = (iter % 3 == 0) ? 1 : (iter % 3 == 1 ? 2 : 4);
    p.out_c = p.groups * rng.uniform(1, 6);
    p.kh = rng.uniform(1, 3);
    p.kw = rng.uniform(1, 3);
    p.stride_h = rng.uniform(1, 2);
    p.stride_w = rng.uniform(1, 2);
    p.pad_top = rng.uniform(0, p.kh - 1);
    p.pad_left = rng.uniform(0, p.kw - 1);
    p.out_h = window_output_size(p.in_h, p.kh, p.stride_h, p.pad_top, p.pad_top);
    p.out_w = window_output_size(p.in_w, p.kw, p.stride_w, p.pad_left, p.pad_left);
    if (p.out_h < 1 || p.out_w < 1) continue;
    fill_random_consts(c, size_t(p.out_c) * p.kh * p.kw * (p.in_c / p.groups), rng);
    ref::conv2d_s8(p, c.x.data(), c.w.data(), c.bias.data(), c.mult.data(), c.y_general.data());
    best.conv2d(p, c.x.data(), c.w.data(), c.bias.data(), c.mult.data(), c.y_special.data());
    ASSERT_EQ(c.y_general, c.y_special) << best.name << " conv2d, iteration " << iter;
  }
  for (int iter = 0; iter < 100; ++iter) {
    AddParams p;
    p.x1_zero = rng.uniform(-128, 127);
    p.x2_zero = rng.uniform(-128, 127);
    p.y_zero = rng.uniform(-128, 127);
    p.x1_scale = rng.uniform_f(0.01f, 0.1f);
    p.x2_scale = rng.uniform_f(0.01f, 0.1f);
    p.y_scale = rng.uniform_f(0.01f, 0.1f);
    const size_t n = size_t(rng.uniform(1, 300));
    const V8 a = rng.s8(n), b = rng.s8(n);
    V8 y_ref(n), y_best(n);
    ref::add_s8(p, a.data(), b.data(), y_ref.data(), n);
    best.add(p, a.data(), b.data(), y_best.data(), n);
    ASSERT_EQ(y_ref, y_best) << best.name << " add, iteration " << iter;
  }
}

}  // namespace
}  // namespace tinyzo
