// The CIFAR-10-C protocol (host/protocol.h): split sizes, class balance and
// determinism; corruption of the selected images only; augmentation bounds
// and determinism; epoch order.
#include "data/protocol.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include "data/corruptions.h"
#include "util/errors.h"
#include "data/preprocess.h"

namespace tinyzo {
namespace {

// n images per class, labels interleaved, pixels from a fixed formula.
Cifar10Set synthetic_set(int per_class) {
  Cifar10Set s;
  const size_t n = size_t(per_class) * kCifar10Classes;
  s.labels.resize(n);
  s.pixels.resize(n * kCifar10ImageBytes);
  uint64_t x = 12345;
  for (size_t i = 0; i < n; ++i) s.labels[i] = static_cast<uint8_t>((i * 7) % kCifar10Classes);
  for (uint8_t& p : s.pixels) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    p = static_cast<uint8_t>(x >> 56);
  }
  return s;
}

bool is_permutation_of_range(const std::vector<uint32_t>& v) {
  std::vector<uint32_t> s = v;
  std::sort(s.begin(), s.end());
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] != i) return false;
  return true;
}

TEST(Protocol, ShuffleIsADeterministicPermutation) {
  std::vector<uint32_t> a(1000), b, c;
  for (uint32_t i = 0; i < a.size(); ++i) a[i] = i;
  b = a;
  c = a;
  shuffle_indices(a, 0);
  shuffle_indices(b, 0);
  shuffle_indices(c, 1);
  EXPECT_TRUE(is_permutation_of_range(a));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Not the identity, and the first element is spread out.
  size_t fixed = 0;
  for (uint32_t i = 0; i < a.size(); ++i) fixed += a[i] == i;
  EXPECT_LT(fixed, 10u);
}

TEST(Protocol, PaperSplitSizesAndBalance) {
  // The CIFAR-10 test set has 1,000 images per class.
  const Cifar10Set set = synthetic_set(1000);
  const SplitIndices s = class_balanced_split(set.labels, kCifar10Classes, SplitSpec{});
  ASSERT_EQ(s.train.size(), 1000u);
  ASSERT_EQ(s.val.size(), 100u);
  ASSERT_EQ(s.test.size(), 900u);
  std::map<int, int> train_c, val_c, test_c;
  for (uint32_t i : s.train) ++train_c[set.labels[i]];
  for (uint32_t i : s.val) ++val_c[set.labels[i]];
  for (uint32_t i : s.test) ++test_c[set.labels[i]];
  for (int c = 0; c < kCifar10Classes; ++c) {
    EXPECT_EQ(train_c[c], 100) << c;
    EXPECT_EQ(val_c[c], 10) << c;
    EXPECT_EQ(test_c[c], 90) << c;
  }
  // Disjoint, ascending, in range.
  std::set<uint32_t> all;
  for (const auto* v : {&s.train, &s.val, &s.test}) {
    EXPECT_TRUE(std::is_sorted(v->begin(), v->end()));
    for (uint32_t i : *v) {
      EXPECT_LT(i, set.size());
      EXPECT_TRUE(all.insert(i).second) << "index " << i << " in two splits";
    }
  }
}

TEST(Protocol, SplitIsDeterministicAndSeeded) {
  const Cifar10Set set = synthetic_set(50);
  SplitSpec spec{10, 2, 5, 0};
  const SplitIndices a = class_balanced_split(set.labels, kCifar10Classes, spec);
  const SplitIndices b = class_balanced_split(set.labels, kCifar10Classes, spec);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.val, b.val);
  EXPECT_EQ(a.test, b.test);
  spec.seed = 1;
  const SplitIndices c = class_balanced_split(set.labels, kCifar10Classes, spec);
  EXPECT_NE(a.train, c.train);
}

TEST(Protocol, SplitRejectsTooFewImages) {
  const Cifar10Set set = synthetic_set(10);
  EXPECT_THROW(class_balanced_split(set.labels, kCifar10Classes, SplitSpec{}), CliError);
  EXPECT_THROW(class_balanced_split(set.labels, kCifar10Classes, SplitSpec{-1, 1, 1, 0}), CliError);
  EXPECT_THROW(class_balanced_split(set.labels, 5, SplitSpec{1, 1, 1, 0}), CliError);  // label 7 out of range
}

TEST(Protocol, SubsetCopiesImagesAndLabels) {
  const Cifar10Set set = synthetic_set(3);
  const Cifar10Set sub = subset(set, {5, 0, 17});
  ASSERT_EQ(sub.size(), 3u);
  EXPECT_EQ(sub.labels[0], set.labels[5]);
  EXPECT_EQ(sub.labels[2], set.labels[17]);
  EXPECT_TRUE(std::equal(sub.image(2), sub.image(2) + kCifar10ImageBytes, set.image(17)));
  EXPECT_THROW(subset(set, {1000}), CliError);
}

TEST(Protocol, CleanDataIsTheSourceImages) {
  const Cifar10Set set = synthetic_set(20);
  ProtocolSpec spec;
  spec.corruption = "none";
  spec.split = SplitSpec{5, 2, 3, 0};
  const ProtocolData d = make_protocol_data(set, spec, "", 2);
  ASSERT_EQ(d.train.size(), 50u);
  ASSERT_EQ(d.val.size(), 20u);
  ASSERT_EQ(d.test.size(), 30u);
  for (size_t k = 0; k < d.val.size(); ++k) {
    EXPECT_EQ(d.val.labels[k], set.labels[d.indices.val[k]]);
    EXPECT_TRUE(std::equal(d.val.image(k), d.val.image(k) + kCifar10ImageBytes, set.image(d.indices.val[k])));
  }
}

TEST(Protocol, CorruptsOnlySelectedImagesLikeTheWholeSet) {
  const Cifar10Set set = synthetic_set(20);
  ProtocolSpec spec;
  spec.corruption = "gaussian_noise";
  spec.severity = 5;
  spec.corruption_seed = 3;
  spec.split = SplitSpec{5, 2, 3, 0};
  const ProtocolData d1 = make_protocol_data(set, spec, "", 1);
  const ProtocolData d2 = make_protocol_data(set, spec, "", 3);  // threads change nothing
  EXPECT_EQ(d1.train.pixels, d2.train.pixels);
  EXPECT_EQ(d1.test.pixels, d2.test.pixels);
  // Corrupting the whole source set gives the same bytes at those indices.
  std::vector<uint8_t> whole(set.pixels.size());
  corrupt_split(Corruption::kGaussianNoise, 5, 3, set.pixels.data(), set.size(), whole.data(), nullptr, 2);
  for (size_t k = 0; k < d1.train.size(); ++k) {
    const uint8_t* ref = whole.data() + size_t(d1.indices.train[k]) * kCifar10ImageBytes;
    ASSERT_TRUE(std::equal(ref, ref + kCifar10ImageBytes, d1.train.image(k))) << k;
  }
  // ...and they differ from the clean ones.
  spec.corruption = "none";
  const ProtocolData clean = make_protocol_data(set, spec, "", 1);
  EXPECT_NE(clean.train.pixels, d1.train.pixels);
  spec.corruption = "no_such_corruption";
  EXPECT_THROW(make_protocol_data(set, spec, "", 1), CliError);
}

TEST(Augment, ParamsAreDeterministicAndInBounds) {
  const AugmentSpec spec;
  int flips = 0, full = 0;
  for (uint32_t img = 0; img < 2000; ++img) {
    const uint64_t seed = augment_seed(7, img % 3, img);
    const AugmentParams p = draw_augment(spec, seed, 32);
    const AugmentParams q = draw_augment(spec, seed, 32);
    ASSERT_EQ(p.crop_y, q.crop_y);
    ASSERT_EQ(p.crop_x, q.crop_x);
    ASSERT_EQ(p.crop_h, q.crop_h);
    ASSERT_EQ(p.crop_w, q.crop_w);
    ASSERT_EQ(p.flip, q.flip);
    ASSERT_EQ(p.brightness, q.brightness);
    ASSERT_GE(p.crop_h, 1);
    ASSERT_GE(p.crop_w, 1);
    ASSERT_GE(p.crop_y, 0);
    ASSERT_GE(p.crop_x, 0);
    ASSERT_LE(p.crop_y + p.crop_h, 32);
    ASSERT_LE(p.crop_x + p.crop_w, 32);
    // Area within the scale range, up to the rounding of each side (+-0.5 px).
    const double area = double(p.crop_h) * p.crop_w / 1024.0;
    EXPECT_GE(area, 0.08 * 0.6) << img;
    for (float f : {p.brightness, p.contrast, p.saturation}) {
      EXPECT_GE(f, 0.6f);
      EXPECT_LE(f, 1.4f);
    }
    int seen[3] = {0, 0, 0};
    for (int o : p.order) ++seen[o];
    EXPECT_TRUE(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    flips += p.flip;
    full += p.crop_h == 32 && p.crop_w == 32;
  }
  EXPECT_GT(flips, 900);
  EXPECT_LT(flips, 1100);
  EXPECT_LT(full, 200);  // the fallback (whole image) is rare
  // Seeds separate epochs and images.
  const AugmentParams a = draw_augment(spec, augment_seed(7, 0, 1), 32);
  const AugmentParams b = draw_augment(spec, augment_seed(7, 1, 1), 32);
  const AugmentParams c = draw_augment(spec, augment_seed(7, 0, 2), 32);
  EXPECT_TRUE(a.crop_y != b.crop_y || a.crop_h != b.crop_h || a.brightness != b.brightness);
  EXPECT_TRUE(a.crop_y != c.crop_y || a.crop_h != c.crop_h || a.brightness != c.brightness);
}

TEST(Augment, IdentityOnAConstantImage) {
  std::vector<uint8_t> img(kCifar10ImageBytes);
  for (int c = 0; c < 3; ++c) std::fill(img.begin() + c * 1024, img.begin() + (c + 1) * 1024, uint8_t(50 + 60 * c));
  AugmentParams p;
  p.crop_h = p.crop_w = 32;
  std::vector<int8_t> out(16 * 16 * 3);
  augment_image(img.data(), 32, p, 16, out.data());
  // Pixels 50, 110, 170 through the eval pipeline's table: -78, -17, 43.
  const std::array<int8_t, 256>& table = pixel_to_input_table();
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], table[size_t(50 + 60 * int(i % 3))]) << i;
  EXPECT_EQ(out[0], -78);
  // Brightness 0 makes everything black (pixel 0: q = -127).
  p.brightness = 0.f;
  augment_image(img.data(), 32, p, 16, out.data());
  for (int8_t v : out) ASSERT_EQ(v, -127);
}

TEST(Augment, FlipMirrorsAndValuesStayInSourceRange) {
  std::vector<uint8_t> img(kCifar10ImageBytes);
  for (size_t i = 0; i < img.size(); ++i) img[i] = uint8_t(40 + (i * 37) % 150);  // values 40..189
  AugmentParams p;
  p.crop_y = 3, p.crop_x = 5, p.crop_h = 20, p.crop_w = 13;
  std::vector<int8_t> a(24 * 24 * 3), b(a.size());
  augment_image(img.data(), 32, p, 24, a.data());
  p.flip = true;
  augment_image(img.data(), 32, p, 24, b.data());
  for (int y = 0; y < 24; ++y)
    for (int x = 0; x < 24; ++x)
      for (int c = 0; c < 3; ++c) {
        const int8_t va = a[(size_t(y) * 24 + x) * 3 + c];
        ASSERT_EQ(va, b[(size_t(y) * 24 + (23 - x)) * 3 + c]);
        ASSERT_GE(va, pixel_to_input_table()[40]);
        ASSERT_LE(va, pixel_to_input_table()[189]);  // bilinear never leaves the source range
      }
}

TEST(Augment, SameSeedSameBytes) {
  std::vector<uint8_t> img(kCifar10ImageBytes);
  for (size_t i = 0; i < img.size(); ++i) img[i] = uint8_t((i * 91) >> 3);
  const AugmentSpec spec;
  std::vector<int8_t> a(128 * 128 * 3), b(a.size()), c(a.size());
  augment_image(img.data(), 32, draw_augment(spec, augment_seed(1, 2, 3), 32), 128, a.data());
  augment_image(img.data(), 32, draw_augment(spec, augment_seed(1, 2, 3), 32), 128, b.data());
  augment_image(img.data(), 32, draw_augment(spec, augment_seed(1, 2, 4), 32), 128, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(Batches, EpochOrderIsSeededPermutation) {
  const auto a = epoch_order(1000, 0, 0), b = epoch_order(1000, 0, 0), c = epoch_order(1000, 0, 1),
             d = epoch_order(1000, 1, 0);
  EXPECT_TRUE(is_permutation_of_range(a));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  EXPECT_EQ(steps_per_epoch(1000, 100), 10);
  EXPECT_EQ(steps_per_epoch(1001, 100), 11);
  EXPECT_EQ(steps_per_epoch(5, 100), 1);
  EXPECT_THROW(steps_per_epoch(10, 0), CliError);
}

}  // namespace
}  // namespace tinyzo
