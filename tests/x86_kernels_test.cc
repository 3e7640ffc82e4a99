// Every x86 kernel table (portable, avx2, avx512vnni) against ref:: bit for bit, on many random
// shapes and parameters with fixed seeds, plus the layer shapes of MCUNet-5fps at 128x128.
// A table the CPU lacks is skipped with a printed reason. Inputs end exactly at a PROT_NONE page,
// so reading one byte past an input faults; outputs have a guard page after and sentinel bytes
// before, so writing outside the output fails (the shared machinery: kernel_test_support.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernel_test_support.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/x86.h"

namespace tinyzo {
namespace {

using namespace kernel_test;  // NOLINT(build/namespaces): the shared test machinery

class X86Kernels : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    table_ = x86::find_table(GetParam());
    if (table_ == nullptr)
      GTEST_SKIP() << "kernel table '" << GetParam() << "' is not supported by this CPU: skipped";
  }
  const KernelTable* table_ = nullptr;
};

// Random shapes up to 40x40, the reference's work limited per case (it is a few hundred MMAC/s).
constexpr RandomShapes kShapes = {40, false, 0, 4e6};

TEST_P(X86Kernels, PointwiseRandom) {
  EXPECT_TRUE(check_random_pointwise(table_->pointwise_conv2d, 1001, 600, kShapes));
}

TEST_P(X86Kernels, DepthwiseRandom) {
  EXPECT_TRUE(check_random_depthwise(table_->depthwise_conv2d, 2002, 600, kShapes));
}

TEST_P(X86Kernels, DepthwiseWide) {
  // Wide rows: the AVX kernels split the output columns into strips that fit their ring buffer.
  Rng r(2003);
  for (int i = 0; i < 12; ++i) {
    ConvCase c;
    ConvParams& p = c.p;
    p.kh = p.kw = r.pick(std::vector<int>{3, 5, 7});
    p.stride_h = p.stride_w = r.uniform(1, 2);
    p.in_h = r.uniform(p.kh, 12);
    p.in_w = r.uniform(150, 400);
    p.pad_top = p.pad_left = p.kh / 2;
    p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, p.kh / 2);
    p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, p.kw / 2);
    p.in_c = p.out_c = p.groups = r.pick(std::vector<int>{16, 17, 33, 64});
    c.mode = Mode::kRealistic;
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(table_->depthwise_conv2d, ref::depthwise_conv2d_s8, c)) << "case " << i;
  }
}

TEST_P(X86Kernels, ConvRandom) { EXPECT_TRUE(check_random_conv(table_->conv2d, 3003, 500, kShapes)); }

// TFLite's fixed-point requantization (ConvParams::fx_multiplier) in every conv entry, every mode
// of fill_fixed (realistic, exact ties, any shift in [-31, 30], wrapping left shifts, the
// saturating INT32_MIN * INT32_MIN, act_min > act_max).
TEST_P(X86Kernels, PointwiseFixedPoint) {
  EXPECT_TRUE(check_random_pointwise(table_->pointwise_conv2d, 1501, 400, kShapes, /*fixed=*/true));
}
TEST_P(X86Kernels, DepthwiseFixedPoint) {
  EXPECT_TRUE(check_random_depthwise(table_->depthwise_conv2d, 2502, 400, kShapes, /*fixed=*/true));
}
TEST_P(X86Kernels, ConvFixedPoint) {
  EXPECT_TRUE(check_random_conv(table_->conv2d, 3503, 350, kShapes, /*fixed=*/true));
}
TEST_P(X86Kernels, McunetLayersFixedPoint) { EXPECT_TRUE(check_mcunet_layers(*table_, 4505, /*fixed=*/true)); }

TEST_P(X86Kernels, ConvLargeReduction) {
  // K = kh*kw*C_in beyond the AVX kernels' staging buffers: their exact fallback must be taken.
  Rng r(3004);
  for (int i = 0; i < 6; ++i) {
    ConvCase c;
    ConvParams& p = c.p;
    p.kh = p.kw = 3;
    p.in_h = p.in_w = r.uniform(2, 5);
    p.pad_top = p.pad_left = 1;
    p.out_h = p.in_h, p.out_w = p.in_w;
    p.in_c = r.pick(std::vector<int>{1100, 1500, 3000});
    p.out_c = r.uniform(1, 20);
    c.mode = Mode::kRealistic;
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(table_->conv2d, ref::conv2d_s8, c)) << "case " << i;
    ConvCase pw = c;
    pw.p.kh = pw.p.kw = 1;
    pw.p.pad_top = pw.p.pad_left = 0;
    pw.p.in_c = std::vector<int>{800, 1500, 2500, 3100, 7000, 7001}[static_cast<size_t>(i)];
    fill_conv(r, pw);
    ASSERT_TRUE(check_conv(table_->pointwise_conv2d, ref::pointwise_conv2d_s8, pw)) << "case " << i;
  }
}

TEST_P(X86Kernels, DepthwiseLargeKernels) {
  // Kernels beyond the vector paths' packing limits take the exact fallbacks.
  Rng r(2004);
  for (int k : {8, 9, 11, 13}) {
    ConvCase c;
    ConvParams& p = c.p;
    p.kh = k;
    p.kw = r.uniform(1, k);
    p.stride_h = p.stride_w = r.uniform(1, 2);
    p.in_h = r.uniform(k, k + 6);
    p.in_w = r.uniform(p.kw, p.kw + 6);
    p.pad_top = k / 2, p.pad_left = p.kw / 2;
    p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, k / 2);
    p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, p.kw / 2);
    p.in_c = p.out_c = p.groups = r.pick(std::vector<int>{5, 16, 33});
    fill_conv(r, c);
    ASSERT_TRUE(check_conv(table_->depthwise_conv2d, ref::depthwise_conv2d_s8, c)) << "k " << k;
  }
}

TEST_P(X86Kernels, ZeroPointOutsideInt8) {
  // The contract keeps zero points in int8; outside it the kernels must still be exact.
  Rng r(3005);
  for (int32_t z : {-1000, -200, 200, 1000}) {
    ConvCase c;
    ConvParams& p = c.p;
    p.in_h = p.out_h = r.uniform(1, 9);
    p.in_w = p.out_w = r.uniform(1, 9);
    p.in_c = r.pick(kChannels);
    p.out_c = r.pick(kChannels);
    fill_conv(r, c);
    p.x_zero = z;
    ASSERT_TRUE(check_conv(table_->pointwise_conv2d, ref::pointwise_conv2d_s8, c)) << "z " << z;
    ASSERT_TRUE(check_conv(table_->conv2d, ref::conv2d_s8, c)) << "z " << z;
    ConvCase d;
    random_depthwise(r, d, 40, false);
    fill_conv(r, d);
    d.p.x_zero = z;
    ASSERT_TRUE(check_conv(table_->depthwise_conv2d, ref::depthwise_conv2d_s8, d)) << "z " << z;
  }
}

TEST_P(X86Kernels, McunetLayers) { EXPECT_TRUE(check_mcunet_layers(*table_, 4004)); }

TEST_P(X86Kernels, AddRandom) {
  Rng r(5005);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (int i = 0; i < 400; ++i) {
    const size_t n =
        r.chance(0.5) ? static_cast<size_t>(r.uniform(1, 70)) : static_cast<size_t>(r.uniform(1, 70000));
    AddParams p;
    p.x1_zero = r.uniform(-128, 127);
    p.x2_zero = r.uniform(-128, 127);
    p.y_zero = r.uniform(-128, 127);
    p.act_min = r.chance(0.7) ? -128 : r.uniform(-128, 0);
    p.act_max = r.chance(0.7) ? 127 : r.uniform(0, 127);
    std::vector<int8_t> a(n), b(n);
    const int mode = r.uniform(0, 9);
    if (mode < 6) {
      p.x1_scale = r.uniform_f(0.01f, 0.1f);
      p.x2_scale = r.uniform_f(0.01f, 0.1f);
      p.y_scale = r.uniform_f(0.01f, 0.2f);
      for (auto& v : a) v = r.i8();
      for (auto& v : b) v = r.i8();
    } else if (mode < 8) {  // exact ties: power-of-two scales
      p.x1_scale = std::ldexp(1.f, -r.uniform(0, 2));
      p.x2_scale = std::ldexp(1.f, -r.uniform(0, 2));
      p.y_scale = std::ldexp(1.f, r.uniform(-1, 2));
      for (auto& v : a) v = r.i8();
      for (auto& v : b) v = r.i8();
    } else {  // pathological scales
      const std::vector<float> odd = {0.f, inf, -inf, nan, 1e-40f, 3e38f, -0.05f, 0.05f};
      p.x1_scale = r.pick(odd);
      p.x2_scale = r.pick(odd);
      p.y_scale = r.pick(odd);
      if (r.chance(0.3)) std::swap(p.act_min, p.act_max);
      for (auto& v : a) v = r.i8();
      for (auto& v : b) v = r.i8();
    }
    std::vector<int8_t> want(n);
    ref::add_s8(p, a.data(), b.data(), want.data(), n);
    GuardedInput<int8_t> ga(a), gb(b);
    Guarded y(n);
    table_->add(p, ga.get(), gb.get(), y.as<int8_t>(), n);
    ASSERT_TRUE(y.sentinel_intact()) << "case " << i;
    ASSERT_EQ(0, std::memcmp(y.as<int8_t>(), want.data(), n))
        << "case " << i << " n " << n << " scales " << p.x1_scale << " " << p.x2_scale << " " << p.y_scale;
  }
}

TEST_P(X86Kernels, GlobalAvgPoolRandom) {
  Rng r(6006);
  for (int i = 0; i < 300; ++i) {
    const int hw = r.chance(0.3) ? r.pick(std::vector<int>{1, 2, 16, 64}) : r.uniform(1, 1600);
    const int c = r.pick(kChannels);
    std::vector<int8_t> x(static_cast<size_t>(hw) * c);
    const int mode = r.uniform(0, 2);
    for (auto& v : x)
      v = mode == 0   ? r.i8()
          : mode == 1 ? (r.chance(0.5) ? -128 : 127)
                      : static_cast<int8_t>(r.uniform(-2, 2));
    std::vector<int8_t> want(static_cast<size_t>(c));
    ref::global_avg_pool_s8(hw, c, x.data(), want.data());
    GuardedInput<int8_t> gx(x);
    Guarded y(static_cast<size_t>(c));
    table_->global_avg_pool(hw, c, gx.get(), y.as<int8_t>());
    ASSERT_TRUE(y.sentinel_intact());
    ASSERT_EQ(0, std::memcmp(y.as<int8_t>(), want.data(), static_cast<size_t>(c)))
        << "case " << i << " hw " << hw << " c " << c;
  }
}

TEST_P(X86Kernels, PoolRandom) {
  Rng r(7007);
  for (int i = 0; i < 200; ++i) {
    PoolParams p;
    p.kh = r.uniform(1, 4);
    p.kw = r.uniform(1, 4);
    p.stride_h = r.uniform(1, 3);
    p.stride_w = r.uniform(1, 3);
    p.in_h = r.uniform(p.kh, 20);
    p.in_w = r.uniform(p.kw, 20);
    p.pad_top = r.uniform(0, p.kh - 1);
    p.pad_left = r.uniform(0, p.kw - 1);
    p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, r.uniform(0, p.kh - 1));
    p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, r.uniform(0, p.kw - 1));
    p.c = r.pick(kChannels);
    p.act_min = r.uniform(-128, 0);
    p.act_max = r.uniform(0, 127);
    std::vector<int8_t> x(static_cast<size_t>(p.in_h) * p.in_w * p.c);
    for (auto& v : x) v = r.i8();
    const size_t n_y = static_cast<size_t>(p.out_h) * p.out_w * p.c;
    for (int avg = 0; avg < 2; ++avg) {
      std::vector<int8_t> want(n_y);
      (avg ? ref::avg_pool2d_s8 : ref::max_pool2d_s8)(p, x.data(), want.data());
      GuardedInput<int8_t> gx(x);
      Guarded y(n_y);
      (avg ? table_->avg_pool2d : table_->max_pool2d)(p, gx.get(), y.as<int8_t>());
      ASSERT_TRUE(y.sentinel_intact());
      ASSERT_EQ(0, std::memcmp(y.as<int8_t>(), want.data(), n_y)) << "case " << i << (avg ? " avg" : " max");
    }
  }
}

TEST_P(X86Kernels, LinearF32Random) {
  Rng r(8008);
  for (int i = 0; i < 300; ++i) {
    LinearF32Params p;
    p.in_features = r.chance(0.2) ? 160 : r.uniform(1, 300);
    p.out_features = r.chance(0.2) ? r.pick(std::vector<int>{10, 1000}) : r.uniform(1, 40);
    p.x_zero = r.uniform(-128, 127);
    p.x_scale = r.uniform_f(0.001f, 0.1f);
    std::vector<int8_t> x(static_cast<size_t>(p.in_features));
    for (auto& v : x) v = r.i8();
    std::vector<float> w(static_cast<size_t>(p.in_features) * p.out_features),
        b(static_cast<size_t>(p.out_features));
    std::normal_distribution<float> nd(0.f, 0.3f);
    std::mt19937 g(static_cast<uint32_t>(i));
    for (auto& v : w) v = nd(g);
    for (auto& v : b) v = nd(g);
    std::vector<float> want(b.size());
    ref::linear_f32(p, x.data(), w.data(), b.data(), want.data());
    GuardedInput<int8_t> gx(x);
    GuardedInput<float> gw(w), gb(b);
    Guarded y(b.size() * 4);
    table_->linear_f32(p, gx.get(), gw.get(), gb.get(), y.as<float>());
    ASSERT_TRUE(y.sentinel_intact());
    ASSERT_EQ(0, std::memcmp(y.as<float>(), want.data(), b.size() * 4))
        << "case " << i << " in " << p.in_features << " out " << p.out_features;
  }
}

INSTANTIATE_TEST_SUITE_P(Tables, X86Kernels, ::testing::Values("portable", "avx2", "avx512vnni"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

TEST(X86Dispatch, FindTable) {
  EXPECT_EQ(&ref::table(), x86::find_table("ref"));
  EXPECT_EQ(&x86::portable_table(), x86::find_table("portable"));
  EXPECT_EQ(nullptr, x86::find_table("bogus"));
  EXPECT_EQ(nullptr, x86::find_table(nullptr));
  const x86::CpuFeatures f = x86::cpu_features();
  EXPECT_EQ(f.avx2, x86::find_table("avx2") != nullptr);
  EXPECT_EQ(f.avx512vnni, x86::find_table("avx512vnni") != nullptr);
  std::printf(
      "[ INFO     ] CPU: avx2=%d avx512f=%d avx512bw=%d avx512vl=%d avx512vnni=%d; fastest table: %s\n",
      f.avx2, f.avx512f, f.avx512bw, f.avx512vl, f.avx512vnni, x86::fastest_table().name);
}

TEST(X86Dispatch, BestKernelsIsSupported) {
  const KernelTable& best = best_kernels();
  EXPECT_TRUE(x86::table_supported(best)) << best.name;
  EXPECT_EQ(&best, &best_kernels());  // cached
  const char* env = std::getenv("TINYZO_KERNELS");
  if (env == nullptr || x86::find_table(env) == nullptr) {
    EXPECT_EQ(&x86::fastest_table(), &best);
  } else {
    EXPECT_EQ(x86::find_table(env), &best);
  }
}

}  // namespace
}  // namespace tinyzo
