// The CIFAR-10-C corruptions (host/corruptions.h): determinism, seed
// dependence, hand-checkable cases, and statistics that must move the right way.
#include "data/corruptions.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "data/corrupt_internal.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "util/rng.h"

namespace tinyzo {
namespace {

namespace cd = corrupt_detail;
using Image = std::vector<uint8_t>;  // 3072 bytes CHW
constexpr int kN = kCorruptSide;
constexpr int kP = kN * kN;

// A synthetic "natural" image: smooth colour gradients, a few edges and some
// texture, values kept inside [lo, hi] so nothing starts saturated.
Image test_image(uint64_t seed, int lo = 30, int hi = 220) {
  HostRng rng(seed);
  const double fx = rng.uniform(0.1, 0.5), fy = rng.uniform(0.1, 0.5);
  const int edge_x = int(rng.randint(8, 24)), edge_y = int(rng.randint(8, 24));
  Image img(kCorruptImageBytes);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < kN; ++y)
      for (int x = 0; x < kN; ++x) {
        double v = 0.5 + 0.2 * std::sin(fx * x + c) * std::cos(fy * y - c) + 0.1 * (x - 16) / 16.0;
        if (x > edge_x) v += 0.15;
        if (y > edge_y) v -= 0.1 * (c + 1);
        v += 0.05 * (rng.uniform() - 0.5);
        img[c * kP + y * kN + x] = uint8_t(std::clamp(lo + v * (hi - lo), double(lo), double(hi)));
      }
  return img;
}

Image constant_image(uint8_t r, uint8_t g, uint8_t b) {
  Image img(kCorruptImageBytes);
  std::fill(img.begin(), img.begin() + kP, r);
  std::fill(img.begin() + kP, img.begin() + 2 * kP, g);
  std::fill(img.begin() + 2 * kP, img.end(), b);
  return img;
}

Image run(Corruption c, int severity, uint64_t seed, const Image& in, const FrostSet* frost = nullptr) {
  Image out(kCorruptImageBytes);
  corrupt(c, severity, seed, in.data(), out.data(), frost);
  return out;
}

double mean(const Image& img) {
  double s = 0;
  for (uint8_t v : img) s += v;
  return s / img.size();
}

// Mean of the per-channel standard deviations.
double stddev(const Image& img) {
  double total = 0;
  for (int c = 0; c < 3; ++c) {
    double s = 0, s2 = 0;
    for (int i = 0; i < kP; ++i) {
      const double v = img[c * kP + i];
      s += v;
      s2 += v * v;
    }
    const double m = s / kP;
    total += std::sqrt(std::max(0.0, s2 / kP - m * m));
  }
  return total / 3;
}

// High-frequency energy: mean squared difference of horizontal and vertical neighbours.
double hf_energy(const Image& img) {
  double s = 0;
  int n = 0;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < kN; ++y)
      for (int x = 0; x < kN; ++x) {
        const double v = img[c * kP + y * kN + x];
        if (x + 1 < kN) {
          const double d = v - img[c * kP + y * kN + x + 1];
          s += d * d;
          ++n;
        }
        if (y + 1 < kN) {
          const double d = v - img[c * kP + (y + 1) * kN + x];
          s += d * d;
          ++n;
        }
      }
  return s / n;
}

// The data directory for tests that need the frost images: $TINYZO_DATA, else
// the shared folder next to the source tree.
std::string test_data_dir() {
  const char* env = std::getenv("TINYZO_DATA");
  if (env != nullptr && *env != '\0') return env;
  return std::string(TINYZO_SOURCE_DIR) + "/../shared/data";
}

const FrostSet& frost_set() {
  static const FrostSet* set = [] {
    const std::string dir = test_data_dir();
    if (!is_regular_file(dir + "/frost/frost1.png")) return static_cast<FrostSet*>(nullptr);
    return new FrostSet(load_frost_set(dir));
  }();
  if (set == nullptr) {
    ADD_FAILURE() << "frost images not found in " << test_data_dir()
                  << "/frost/ (set $TINYZO_DATA to the shared data directory, which holds frost/frost1.png ...)";
    static const FrostSet empty;
    return empty;
  }
  return *set;
}

bool have_frost() { return frost_set().images.size() == 5; }

// ---------------------------------------------------------------- RNG

TEST(HostRngTest, SameSeedSameSequenceDifferentSeedDifferent) {
  HostRng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    differs = differs || x != c.next_u64();
  }
  EXPECT_TRUE(differs);
}

TEST(HostRngTest, GoldenFirstDraws) {
  // Locks the generator: a change here changes every corrupted split.
  HostRng rng(0);
  EXPECT_EQ(rng.next_u64(), 0x99EC5F36CB75F2B4ull);
  EXPECT_EQ(rng.next_u64(), 0xBF6E1F784956452Aull);
  EXPECT_EQ(derive_seed(0, 0), derive_seed(0, 0));
  EXPECT_NE(derive_seed(0, 1), derive_seed(1, 0));
  EXPECT_NE(hash_name64("fog"), hash_name64("frost"));
}

TEST(HostRngTest, UniformAndRandintRanges) {
  HostRng rng(7);
  int seen[3] = {0, 0, 0};
  for (int i = 0; i < 30000; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    const double w = rng.uniform(-45.0, 45.0);
    ASSERT_GE(w, -45.0);
    ASSERT_LT(w, 45.0);
    const int64_t k = rng.randint(-1, 2);
    ASSERT_GE(k, -1);
    ASSERT_LT(k, 2);
    ++seen[k + 1];
  }
  for (int s : seen) EXPECT_NEAR(s, 10000, 400);
}

TEST(HostRngTest, NormalMoments) {
  HostRng rng(1);
  const int n = 200000;
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    const double v = rng.normal(0.3, 2.0);
    s += v;
    s2 += v * v;
  }
  const double m = s / n, var = s2 / n - m * m;
  EXPECT_NEAR(m, 0.3, 0.03);
  EXPECT_NEAR(var, 4.0, 0.06);
}

TEST(HostRngTest, PoissonMomentsBothSamplers) {
  for (const double lambda : {0.7, 4.0, 12.0, 100.0, 500.0}) {
    HostRng rng(uint64_t(lambda * 10));
    const int n = 100000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
      const double v = double(rng.poisson(lambda));
      ASSERT_GE(v, 0.0);
      s += v;
      s2 += v * v;
    }
    const double m = s / n, var = s2 / n - m * m;
    EXPECT_NEAR(m, lambda, 5 * std::sqrt(lambda / n)) << lambda;
    EXPECT_NEAR(var, lambda, 0.03 * lambda + 0.02) << lambda;
  }
  HostRng rng(3);
  EXPECT_EQ(rng.poisson(0.0), 0);
}

// ---------------------------------------------------------------- names

TEST(CorruptionNamesTest, RoundTripAndErrors) {
  EXPECT_EQ(all_corruptions().size(), 19u);
  for (const Corruption c : all_corruptions()) {
    ASSERT_TRUE(find_corruption(corruption_name(c)).has_value());
    EXPECT_EQ(*find_corruption(corruption_name(c)), c);
  }
  EXPECT_EQ(parse_corruption("gaussian_noise"), Corruption::kGaussianNoise);
  EXPECT_EQ(parse_corruption("elastic_transform"), Corruption::kElasticTransform);
  EXPECT_FALSE(find_corruption("Gaussian Noise").has_value());
  try {
    parse_corruption("fogg");
    FAIL() << "no exception";
  } catch (const CliError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown corruption 'fogg'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("spatter"), std::string::npos);
  }
  const Image img = test_image(1);
  Image out(kCorruptImageBytes);
  EXPECT_THROW(corrupt(Corruption::kContrast, 0, 0, img.data(), out.data()), CliError);
  EXPECT_THROW(corrupt(Corruption::kContrast, 6, 0, img.data(), out.data()), CliError);
  EXPECT_THROW(corrupt(Corruption::kFrost, 1, 0, img.data(), out.data(), nullptr), CliError);
  int per_family[4] = {};
  for (const Corruption c : all_corruptions()) ++per_family[int(corruption_family(c))];
  EXPECT_EQ(per_family[int(CorruptionFamily::kNoise)], 4);
  EXPECT_EQ(per_family[int(CorruptionFamily::kBlur)], 5);
  EXPECT_EQ(per_family[int(CorruptionFamily::kWeather)], 4);
  EXPECT_EQ(per_family[int(CorruptionFamily::kDigital)], 6);
}

// ---------------------------------------------------------------- all corruptions

TEST(CorruptionsTest, DeterministicSeedDependentAndChanging) {
  const FrostSet* frost = have_frost() ? &frost_set() : nullptr;
  const Image img = test_image(11);
  for (const Corruption c : all_corruptions()) {
    if (corruption_needs_frost(c) && frost == nullptr) continue;  // reported by frost_set()
    for (int s = kMinSeverity; s <= kMaxSeverity; ++s) {
      SCOPED_TRACE(std::string(corruption_name(c)) + " severity " + std::to_string(s));
      const Image a = run(c, s, 1234, img, frost);
      EXPECT_EQ(a, run(c, s, 1234, img, frost)) << "same seed, different bytes";
      bool seed_changes = false;
      for (uint64_t seed = 1; seed <= 4 && !seed_changes; ++seed) seed_changes = run(c, s, seed, img, frost) != a;
      EXPECT_EQ(seed_changes, corruption_is_random(c));
      // Every severity changes the image for some seed. (Spatter's lightest
      // levels may draw no liquid for a given seed.)
      bool changed = a != img;
      for (uint64_t seed = 1; seed <= 8 && !changed; ++seed) changed = run(c, s, seed, img, frost) != img;
      EXPECT_TRUE(changed) << "identity";
      if (c != Corruption::kSpatter) {
        EXPECT_NE(a, img) << "identity";
      }
      // In place gives the same bytes.
      Image inplace = img;
      corrupt(c, s, 1234, inplace.data(), inplace.data(), frost);
      EXPECT_EQ(inplace, a);
    }
  }
}

TEST(CorruptionsTest, SplitMatchesPerImageSeedsAndIgnoresThreadsAndBatching) {
  const int n = 37;
  Image all(size_t(n) * kCorruptImageBytes);
  for (int i = 0; i < n; ++i) {
    const Image img = test_image(100 + i);
    std::copy(img.begin(), img.end(), all.begin() + size_t(i) * kCorruptImageBytes);
  }
  for (const Corruption c : {Corruption::kGaussianNoise, Corruption::kGlassBlur, Corruption::kFog,
                             Corruption::kContrast, Corruption::kSpatter}) {
    Image one(all.size()), many(all.size()), tail(size_t(n - 10) * kCorruptImageBytes);
    corrupt_split(c, 3, 99, all.data(), n, one.data(), nullptr, 1);
    corrupt_split(c, 3, 99, all.data(), n, many.data(), nullptr, 3);
    EXPECT_EQ(one, many) << corruption_name(c);
    corrupt_split(c, 3, 99, all.data() + 10 * kCorruptImageBytes, n - 10, tail.data(), nullptr, 2, 10);
    EXPECT_TRUE(std::equal(tail.begin(), tail.end(), one.begin() + 10 * kCorruptImageBytes)) << corruption_name(c);
    Image single(kCorruptImageBytes);
    corrupt(c, 3, corruption_image_seed(99, c, 5), all.data() + 5 * kCorruptImageBytes, single.data());
    EXPECT_TRUE(std::equal(single.begin(), single.end(), one.begin() + 5 * kCorruptImageBytes));
  }
  // Different corruptions and different images get different seeds.
  EXPECT_NE(corruption_image_seed(0, Corruption::kGaussianNoise, 0),
            corruption_image_seed(0, Corruption::kSpeckleNoise, 0));
  EXPECT_NE(corruption_image_seed(0, Corruption::kGaussianNoise, 0),
            corruption_image_seed(0, Corruption::kGaussianNoise, 1));
  EXPECT_NE(corruption_image_seed(0, Corruption::kGaussianNoise, 0),
            corruption_image_seed(1, Corruption::kGaussianNoise, 0));
}

// Average of a statistic over a few images and seeds.
template <typename F>
double avg_stat(Corruption c, int s, F stat, int lo = 30, int hi = 220) {
  double total = 0;
  const int n = 6;
  for (int i = 0; i < n; ++i) total += stat(run(c, s, 500 + i, test_image(200 + i, lo, hi)));
  return total / n;
}
template <typename F>
double avg_clean(F stat, int lo = 30, int hi = 220) {
  double total = 0;
  const int n = 6;
  for (int i = 0; i < n; ++i) total += stat(test_image(200 + i, lo, hi));
  return total / n;
}

TEST(CorruptionsTest, NoiseRaisesHighFrequencyEnergy) {
  const double clean = avg_clean(hf_energy);
  for (const Corruption c : {Corruption::kGaussianNoise, Corruption::kShotNoise, Corruption::kImpulseNoise,
                             Corruption::kSpeckleNoise}) {
    double previous = clean;
    for (int s = 1; s <= 5; ++s) {
      const double e = avg_stat(c, s, hf_energy);
      EXPECT_GT(e, 1.5 * clean) << corruption_name(c) << " s" << s;
      EXPECT_GT(e, previous) << corruption_name(c) << " s" << s << " not stronger than s" << s - 1;
      previous = e;
    }
  }
}

TEST(CorruptionsTest, BlursLowerHighFrequencyEnergy) {
  const double clean = avg_clean(hf_energy);
  for (const Corruption c : {Corruption::kGaussianBlur, Corruption::kDefocusBlur, Corruption::kMotionBlur,
                             Corruption::kZoomBlur}) {
    double previous = clean;
    for (int s = 1; s <= 5; ++s) {
      const double e = avg_stat(c, s, hf_energy);
      EXPECT_LT(e, clean) << corruption_name(c) << " s" << s;
      if (c != Corruption::kMotionBlur) {  // motion blur's angle is random per draw
        EXPECT_LE(e, previous * 1.02) << corruption_name(c) << " s" << s;
      }
      previous = e;
    }
  }
  // Glass blur scrambles pixels, then blurs: at its strongest blur it still
  // ends smoother than a pure shuffle (severity 1 has sigma 0.05: no blur).
  EXPECT_LT(avg_stat(Corruption::kGlassBlur, 5, hf_energy), avg_stat(Corruption::kGlassBlur, 1, hf_energy));
}

TEST(CorruptionsTest, ContrastLowersStddevBrightnessRaisesMean) {
  double prev_std = avg_clean(stddev), prev_mean = avg_clean(mean);
  for (int s = 1; s <= 5; ++s) {
    const double sd = avg_stat(Corruption::kContrast, s, stddev);
    EXPECT_LT(sd, prev_std) << "contrast s" << s;
    prev_std = sd;
    EXPECT_NEAR(avg_stat(Corruption::kContrast, s, mean), avg_clean(mean), 1.0) << "contrast keeps the mean";
    const double m = avg_stat(Corruption::kBrightness, s, mean);
    EXPECT_GT(m, prev_mean) << "brightness s" << s;
    prev_mean = m;
  }
}

TEST(CorruptionsTest, WeatherBrightensADarkImage) {
  const FrostSet* frost = have_frost() ? &frost_set() : nullptr;
  for (const Corruption c : {Corruption::kSnow, Corruption::kFrost, Corruption::kFog}) {
    if (c == Corruption::kFrost && frost == nullptr) continue;
    for (int s = 1; s <= 5; ++s) {
      double clean = 0, corrupted = 0;
      for (int i = 0; i < 6; ++i) {
        // Dark, with one white pixel: fog scales by max / (max + strength),
        // so it only brightens images that reach white somewhere (most photos).
        Image img = test_image(300 + i, 10, 110);
        img[5 * kN + 7] = img[kP + 5 * kN + 7] = img[2 * kP + 5 * kN + 7] = 255;
        clean += mean(img);
        corrupted += mean(run(c, s, 700 + i, img, frost));
      }
      EXPECT_GT(corrupted, clean + 3.0 * 6) << corruption_name(c) << " s" << s;
    }
  }
  // Snow only ever adds light: every value is at least the clean one (one
  // step of slack for the truncation to uint8).
  for (int s = 1; s <= 5; ++s) {
    const Image img = test_image(17);
    const Image out = run(Corruption::kSnow, s, 3, img);
    for (size_t i = 0; i < img.size(); ++i) ASSERT_GE(int(out[i]), int(img[i]) - 1) << "snow s" << s;
  }
  // Fog flattens the picture.
  EXPECT_LT(avg_stat(Corruption::kFog, 5, stddev), avg_clean(stddev));
}

// ---------------------------------------------------------------- hand-checkable cases

TEST(CorruptionsTest, ContrastFormula) {
  static constexpr double kC[] = {0.75, 0.5, 0.4, 0.3, 0.15};
  // A constant image is a fixed point.
  const Image flat = constant_image(37, 128, 201);
  for (int s = 1; s <= 5; ++s) EXPECT_EQ(run(Corruption::kContrast, s, 0, flat), flat);
  // Half the pixels 100, half 200: mean 150, values 150 -+ 50 c.
  Image two(kCorruptImageBytes);
  for (int i = 0; i < int(two.size()); ++i) two[i] = (i % 2) ? 200 : 100;
  for (int s = 1; s <= 5; ++s) {
    const Image out = run(Corruption::kContrast, s, 0, two);
    for (int i = 0; i < 4; ++i) {
      const double expected = 150 + ((i % 2) ? 50 : -50) * kC[s - 1];
      EXPECT_LE(out[i], expected + 1e-9);
      EXPECT_GE(out[i], expected - 1.0);
    }
  }
}

TEST(CorruptionsTest, BrightnessFormulaOnGray) {
  static constexpr double kC[] = {0.05, 0.1, 0.15, 0.2, 0.3};
  for (const int v : {0, 90, 250}) {
    const Image gray = constant_image(uint8_t(v), uint8_t(v), uint8_t(v));
    for (int s = 1; s <= 5; ++s) {
      const Image out = run(Corruption::kBrightness, s, 0, gray);
      const double expected = std::min(255.0, v + kC[s - 1] * 255.0);
      for (const uint8_t o : out) {
        ASSERT_LE(o, expected + 1e-9) << v << " s" << s;
        ASSERT_GE(o, expected - 1.0) << v << " s" << s;
      }
    }
  }
  // Hue survives: a pure red stays pure red and only gets brighter.
  const Image red = constant_image(150, 0, 0);
  const Image out = run(Corruption::kBrightness, 5, 0, red);
  EXPECT_NEAR(out[0], 150 + 0.3 * 255, 1.0);
  EXPECT_EQ(out[kP], 0);
  EXPECT_EQ(out[2 * kP], 0);
}

TEST(CorruptionsTest, SaturateOnGrayAndColour) {
  // Gray has no saturation: severities 1-3 (add 0) keep it, 4-5 add some.
  const Image gray = constant_image(120, 120, 120);
  for (int s = 1; s <= 3; ++s) EXPECT_EQ(run(Corruption::kSaturate, s, 0, gray), gray);
  // A colour loses saturation at severities 1-2 and gains it at 3-5.
  const Image c = constant_image(200, 120, 80);
  auto spread = [](const Image& img) { return int(img[0]) - int(img[2 * kP]); };
  EXPECT_LT(spread(run(Corruption::kSaturate, 2, 0, c)), spread(run(Corruption::kSaturate, 1, 0, c)));
  EXPECT_LT(spread(run(Corruption::kSaturate, 1, 0, c)), spread(c));
  EXPECT_GT(spread(run(Corruption::kSaturate, 3, 0, c)), spread(c));
  EXPECT_EQ(run(Corruption::kSaturate, 3, 0, c)[0], 200);  // V (the max) is unchanged
}

TEST(CorruptionsTest, ImpulseNoiseReplacesTheRightFraction) {
  static constexpr double kC[] = {0.01, 0.02, 0.03, 0.05, 0.07};
  const Image gray = constant_image(128, 128, 128);
  for (int s = 1; s <= 5; ++s) {
    int64_t salt = 0, pepper = 0, other = 0;
    const int images = 100;
    for (int i = 0; i < images; ++i) {
      for (const uint8_t v : run(Corruption::kImpulseNoise, s, corruption_image_seed(0, Corruption::kImpulseNoise, i),
                                 gray)) {
        if (v == 255)
          ++salt;
        else if (v == 0)
          ++pepper;
        else if (v != 128)
          ++other;
      }
    }
    const double n = double(images) * kCorruptImageBytes;
    const double p = kC[s - 1];
    EXPECT_EQ(other, 0);
    EXPECT_NEAR((salt + pepper) / n, p, 5 * std::sqrt(p * (1 - p) / n)) << "s" << s;
    EXPECT_NEAR(double(salt) / double(salt + pepper), 0.5, 5 * std::sqrt(0.25 / (salt + pepper))) << "s" << s;
  }
}

TEST(CorruptionsTest, PixelateBlockStructure) {
  // Pillow's BOX filter, 32 -> 24 -> 32: per 4 columns x0..x3 the result is
  // [x0, mean(x1, x2), mean(x1, x2), x3] (rounded). A ramp 8x in x, constant in y:
  Image ramp(kCorruptImageBytes);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < kN; ++y)
      for (int x = 0; x < kN; ++x) ramp[c * kP + y * kN + x] = uint8_t(8 * x + c);
  const Image out = run(Corruption::kPixelate, 4, 0, ramp);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < kN; ++y)
      for (int k = 0; k < 8; ++k) {
        const uint8_t* row = out.data() + c * kP + y * kN + 4 * k;
        const int base = 32 * k + c;
        EXPECT_EQ(row[0], base);
        EXPECT_EQ(row[1], base + 12);
        EXPECT_EQ(row[2], base + 12);
        EXPECT_EQ(row[3], base + 24);
      }
  // Every severity: the output is a nearest-neighbour upsampling of an n x n
  // image (n = 30, 28, 27, 24, 20), so only n distinct rows/columns patterns:
  // exactly 32 - n rows repeat the row above.
  static constexpr int kSmall[] = {30, 28, 27, 24, 20};
  const Image img = test_image(5);
  for (int s = 1; s <= 5; ++s) {
    const Image p = run(Corruption::kPixelate, s, 0, img);
    int repeats = 0;
    for (int y = 1; y < kN; ++y) repeats += std::equal(p.begin() + y * kN, p.begin() + (y + 1) * kN, p.begin() + (y - 1) * kN);
    EXPECT_EQ(repeats, kN - kSmall[s - 1]) << "s" << s;
    EXPECT_EQ(run(Corruption::kPixelate, s, 0, constant_image(9, 99, 199)), constant_image(9, 99, 199));
  }
}

TEST(CorruptionsTest, JpegChangesBlocksMoreAtLowerQuality) {
  auto abs_err = [](const Image& a, const Image& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += std::abs(int(a[i]) - int(b[i]));
    return s / a.size();
  };
  double e1 = 0, e5 = 0;
  for (int i = 0; i < 6; ++i) {
    const Image img = test_image(400 + i);
    e1 += abs_err(img, run(Corruption::kJpegCompression, 1, 0, img));
    e5 += abs_err(img, run(Corruption::kJpegCompression, 5, 0, img));
  }
  EXPECT_GT(e1, 0.0);
  EXPECT_GT(e5, e1);
  // A flat image survives almost unchanged.
  const Image flat = constant_image(100, 150, 200);
  for (int s = 1; s <= 5; ++s) {
    const Image out = run(Corruption::kJpegCompression, s, 0, flat);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], flat[i], 3) << "s" << s;
  }
}

// Per channel, every output value lies in [min - 1, max] of the input
// channel: true for any convex resampling (bilinear, blur, shuffle).
void expect_within_channel_bounds(const Image& in, const Image& out, const std::string& what) {
  for (int c = 0; c < 3; ++c) {
    const auto [lo, hi] = std::minmax_element(in.begin() + c * kP, in.begin() + (c + 1) * kP);
    for (int i = 0; i < kP; ++i) {
      ASSERT_GE(int(out[c * kP + i]), int(*lo) - 1) << what;
      ASSERT_LE(int(out[c * kP + i]), int(*hi)) << what;
    }
  }
}

TEST(CorruptionsTest, GeometricCorruptionsStayWithinBounds) {
  for (int s = 1; s <= 5; ++s)
    for (uint64_t seed = 0; seed < 5; ++seed) {
      const Image img = test_image(600 + seed, 20, 230);
      for (const Corruption c : {Corruption::kElasticTransform, Corruption::kGlassBlur, Corruption::kGaussianBlur,
                                 Corruption::kDefocusBlur, Corruption::kZoomBlur, Corruption::kMotionBlur,
                                 Corruption::kPixelate})
        expect_within_channel_bounds(img, run(c, s, seed, img), std::string(corruption_name(c)) + " s" +
                                                                    std::to_string(s));
    }
  // Glass blur at severity 1 (sigma 0.05: the blur is the identity, one
  // pass): every pixel of rows/columns 2..31 is a copy of itself or of its
  // up, left or up-left neighbour (the original's numpy "swap" copies);
  // rows and columns 0 and 1 keep their pixels.
  const Image img = test_image(8);
  const Image out = run(Corruption::kGlassBlur, 1, 4, img);
  auto pixel = [](const Image& im, int y, int x) {
    return uint32_t(im[y * kN + x]) << 16 | uint32_t(im[kP + y * kN + x]) << 8 | im[2 * kP + y * kN + x];
  };
  int moved = 0;
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x) {
      const uint32_t o = pixel(out, y, x);
      if (y < 2 || x < 2) {
        EXPECT_EQ(o, pixel(img, y, x));
        continue;
      }
      const bool ok = o == pixel(img, y, x) || o == pixel(img, y - 1, x) || o == pixel(img, y, x - 1) ||
                      o == pixel(img, y - 1, x - 1);
      EXPECT_TRUE(ok) << y << "," << x;
      moved += o != pixel(img, y, x);
    }
  EXPECT_GT(moved, 30 * 30 / 2);  // 3 of 4 draws copy a neighbour
}

TEST(CorruptionsTest, BlursKeepAConstantImage) {
  const Image flat = constant_image(60, 130, 210);
  for (const Corruption c : {Corruption::kGaussianBlur, Corruption::kDefocusBlur, Corruption::kMotionBlur,
                             Corruption::kZoomBlur, Corruption::kGlassBlur, Corruption::kElasticTransform})
    for (int s = 1; s <= 5; ++s) {
      // Truncating to uint8 after a blur whose weights sum to 1 only up to
      // rounding can lose one step; glass blur truncates twice.
      const int slack = c == Corruption::kGlassBlur ? 2 : 1;
      const Image out = run(c, s, 1, flat);
      for (size_t i = 0; i < out.size(); ++i)
        ASSERT_NEAR(out[i], flat[i], slack) << corruption_name(c) << " s" << s;
    }
}

// ---------------------------------------------------------------- helpers

TEST(CorruptionHelpersTest, DefocusKernel) {
  static constexpr double kRadius[] = {0.3, 0.4, 0.5, 1.0, 1.5};
  static constexpr double kAlias[] = {0.4, 0.5, 0.6, 0.2, 0.1};
  static constexpr int kHalf[] = {1, 1, 1, 2, 2};  // single pixel or plus/3x3 disk, plus the 3x3 blur
  for (int s = 0; s < 5; ++s) {
    int r = -1;
    const std::vector<double> k = cd::defocus_kernel(kRadius[s], kAlias[s], r);
    EXPECT_EQ(r, kHalf[s]);
    double sum = 0;
    for (double v : k) sum += v;
    EXPECT_NEAR(sum, 1.0, 1e-6);
    const int w = 2 * r + 1;
    for (int y = 0; y < w; ++y)
      for (int x = 0; x < w; ++x) {
        EXPECT_FLOAT_EQ(k[y * w + x], k[x * w + y]);
        EXPECT_FLOAT_EQ(k[y * w + x], k[(w - 1 - y) * w + x]);
      }
  }
}

TEST(CorruptionHelpersTest, ZoomFactorsAndClippedZoom) {
  static constexpr int kCount[] = {7, 12, 16, 21, 26};  // numpy's arange includes 1.06 and 1.11
  for (int s = 1; s <= 5; ++s) {
    const std::vector<double> z = cd::zoom_factors(s);
    ASSERT_EQ(int(z.size()), kCount[s - 1]);
    EXPECT_EQ(z[0], 1.0);
    EXPECT_NEAR(z.back(), 1.0 + 0.01 * (kCount[s - 1] - 1), 1e-12);
  }
  // Zoom 1 is the identity; zooming a constant keeps it.
  double in[kP], out[kP];
  for (int i = 0; i < kP; ++i) in[i] = (i * 37 % 101) / 100.0;
  cd::clipped_zoom(in, 1.0, out);
  for (int i = 0; i < kP; ++i) ASSERT_EQ(out[i], in[i]);
  // Zooming a horizontal ramp by 2 halves its slope around the centre.
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x) in[y * kN + x] = x;
  cd::clipped_zoom(in, 2.0, out);  // crop 16 (8..23), zoomed to 32: corners aligned, slope 15/31
  EXPECT_NEAR(out[0], 8.0, 1e-12);
  EXPECT_NEAR(out[31], 23.0, 1e-12);
  EXPECT_NEAR(out[17] - out[16], 15.0 / 31.0, 1e-12);
}

TEST(CorruptionHelpersTest, PlasmaFractalIsNormalized) {
  HostRng rng(5);
  double map[kP];
  cd::plasma_fractal(2.0, rng, map);
  EXPECT_EQ(*std::min_element(map, map + kP), 0.0);
  EXPECT_EQ(*std::max_element(map, map + kP), 1.0);
}

TEST(CorruptionHelpersTest, HsvRoundTrip) {
  HostRng rng(9);
  for (int i = 0; i < 1000; ++i) {
    const double r = rng.uniform(), g = rng.uniform(), b = rng.uniform();
    double h, s, v, r2, g2, b2;
    cd::rgb_to_hsv(r, g, b, h, s, v);
    ASSERT_GE(h, 0.0);
    ASSERT_LE(h, 1.0);
    cd::hsv_to_rgb(h, s, v, r2, g2, b2);
    ASSERT_NEAR(r, r2, 1e-12);
    ASSERT_NEAR(g, g2, 1e-12);
    ASSERT_NEAR(b, b2, 1e-12);
  }
}

TEST(CorruptionHelpersTest, MotionBlurOfAPointIsALine) {
  uint8_t in[kP] = {}, out[kP];
  in[16 * kN + 16] = 255;
  // Angle 0: ImageMagick samples x + i, so the point smears to the left.
  cd::motion_blur_u8(in, 1, 6, 2, 0.0, out);
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x) {
      const bool on_line = y == 16 && x <= 16 && x >= 16 - 12;
      if (!on_line) {
        ASSERT_EQ(out[y * kN + x], 0) << y << "," << x;
      }
    }
  EXPECT_GT(out[16 * kN + 16], out[16 * kN + 14]);
  EXPECT_GT(out[16 * kN + 14], 0);
  // Angle -90 (snow): samples y - i, so the point smears downwards.
  cd::motion_blur_u8(in, 1, 6, 2, -90.0, out);
  EXPECT_GT(out[18 * kN + 16], 0);
  EXPECT_EQ(out[14 * kN + 16], 0);
}

// ---------------------------------------------------------------- frost

TEST(FrostTest, FrostImagesLoadAndResize) {
  ASSERT_TRUE(have_frost());
  const FrostSet& set = frost_set();
  const int expected[5][2] = {{180, 120}, {112, 63}, {112, 63}, {105, 70}, {132, 99}};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(set.images[i].width, expected[i][0]) << "frost" << i + 1;
    EXPECT_EQ(set.images[i].height, expected[i][1]) << "frost" << i + 1;
    EXPECT_EQ(set.images[i].channels, 3);
  }
  // The 0.2 bilinear resize samples the source at (5i + 2, 5j + 2).
  Image8 src;
  src.width = 50;
  src.height = 40;
  src.channels = 3;
  src.pixels.resize(50 * 40 * 3);
  for (size_t i = 0; i < src.pixels.size(); ++i) src.pixels[i] = uint8_t(i * 7 % 251);
  const Image8 small = resize_frost(src);
  ASSERT_EQ(small.width, 10);
  ASSERT_EQ(small.height, 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 10; ++x)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(small.at(y, x, c), src.at(5 * y + 2, 5 * x + 2, c));
  EXPECT_THROW(load_frost_set("/nonexistent-tinyzo-data"), CliError);
}

TEST(FrostTest, FrostBlendFormula) {
  ASSERT_TRUE(have_frost());
  // On a black image the result is b * frost: at severity 1 (a=1, b=0.2)
  // every value is at most 0.2 * 255 = 51.
  const Image black = constant_image(0, 0, 0);
  const Image out = run(Corruption::kFrost, 1, 3, black, &frost_set());
  EXPECT_LE(*std::max_element(out.begin(), out.end()), 51);
  EXPECT_GT(mean(out), 5.0);
  // On white, severity 1 (a = 1) saturates everything.
  const Image white = constant_image(255, 255, 255);
  EXPECT_EQ(run(Corruption::kFrost, 1, 3, white, &frost_set()), white);
}

}  // namespace
}  // namespace tinyzo

namespace tinyzo {
namespace {

uint64_t fnv1a(const Image& bytes) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (const uint8_t b : bytes) h = (h ^ b) * 0x100000001B3ull;
  return h;
}

// Golden bytes: a hash of every corruption at every severity on one
// synthetic image with seed 7. A change here means a corrupted split is no
// longer the same as before (an algorithm change, or a different libm):
// check docs/corruptions.md and update the table on purpose only.
TEST(CorruptionsGoldenTest, SameBytesAsRecorded) {
  const Image img = test_image(2024);
  const FrostSet* frost = have_frost() ? &frost_set() : nullptr;
  std::string table;
  for (const Corruption c : all_corruptions()) {
    table += corruption_name(c);
    for (int s = 1; s <= 5; ++s) {
      char buf[24];
      const uint64_t h = (corruption_needs_frost(c) && frost == nullptr) ? 0 : fnv1a(run(c, s, 7, img, frost));
      std::snprintf(buf, sizeof buf, " %016llx", static_cast<unsigned long long>(h));
      table += buf;
    }
    table += "\n";
  }
  const char* kExpected =
      "gaussian_noise 43403526e86eb5c7 0eda5aee16548998 4208876ebbf683be fe38f68ab4136cc0 716ed36121e01fdb\n"
      "shot_noise ccd033ee6fa8f876 8ad01c90d500898d d3374ba06928a29e 78797f1bcf71db99 65fbc769b074d11f\n"
      "impulse_noise 39f14d36329828b2 7e2a30d72284c64d db7cc6f212878438 bddad9a407c871b3 f95b2aac99e26875\n"
      "speckle_noise f6c088b9c7f70bd6 2b88cd921d03bf37 85b9b56b7a26147d a6e53357290a8a56 69b37e9eb7697260\n"
      "gaussian_blur cc0cc78b35c7ea07 ca76f62e7233ba5f c84c5d9fc5aedd3b 6a1584f11046f952 a4782c1eb5a20628\n"
      "glass_blur 4e5331cdc8448f9f 26ee1a85bf815d61 3fd06b8d22a46ed7 a7bff2f60dcc562d 786e325b519a0eca\n"
      "defocus_blur 1d13bf26960f6735 1591aad9072ac766 d5efc7cf6d643b8f c78b9253d465f83c f8c8afeb56089100\n"
      "motion_blur af8102f1655e02fa fd1ebcc293735fef 50332fc5c1d67826 50332fc5c1d67826 6752e0a3961f6d81\n"
      "zoom_blur 83c6972e009d5062 0005b9f612015e2a 6c69b13c66280990 62077abc24cf57f0 a5bb963d91ff4bc3\n"
      "snow 44d203c0524a370a 672981bb12f70936 1c23fc4e4fc61ec3 4d2c25936201a7d7 421a7f1835814a44\n"
      "frost 7d01ea68519c516f 56d62002009db79e 1936fb8fe727ae60 9524543508410b9b bfe75a3f2272483d\n"
      "fog 1d99eed4e5068f7c 3c3944282786d020 6d1933b787ca2147 05e1692f623e3b2e 4540a435b988ed0f\n"
      "brightness 713326b71ad843c4 e6131ec44d4e96a4 cef04efeb09ee5f7 b1ee3fb1357f1065 dea4155697362f20\n"
      "contrast 936063ca4af8a1d2 d774c19b6798e188 5c8d3665a4d3c366 6f4899c9158a1541 3a0e0fa8088f97fd\n"
      "saturate ad5dd6d5fbe300b3 5c28b359b9a10d9a e35801e0819182e5 4a9cf6f973be4194 2cbf1cd97094eb1e\n"
      "jpeg_compression 00ac0c6c95fa96ae d98179740cf7e7ef 54e52b47caf088fd 4a640982001bf9eb 9cb337eb33316867\n"
      "pixelate 5b752e692312eee1 c510dd34047215a2 3a766dee31345dbd 9e1e54047e833a8f 92126ce9e38ea1db\n"
      "elastic_transform 3f8cec5861306af1 2a908745602487bb c6d39f88fb5b4e6c 671661a9e61ce14b 3fafb8112f8b91b4\n"
      "spatter 28d3325212e12099 97df97bf0f40e1bd 7859d89ab771be24 1e46b633901961e1 8cbe98c429b07e3e\n";
  EXPECT_EQ(table, kExpected) << "actual table:\n" << table;
}

}  // namespace
}  // namespace tinyzo
