// Data sources (host/data/data_source.h, image_folder.h) and the model-input
// pipeline for any image (ImagePreprocessor, host/data/preprocess.h): CIFAR-10
// through the interface gives the bytes it always gave; image folders written
// here (real PNG, JPEG and BMP files, encoded with stb) are scanned, decoded
// and split as docs/data.md says; bad images are stopped at or skipped.
#include "data/data_source.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "data/image_folder.h"
#include "data/image_io.h"
#include "data/pillow_resample.h"
#include "data/preprocess.h"
#include "data/protocol.h"
#include "temp_dir.h"
#include "test_models.h"
#include "util/errors.h"

namespace tinyzo {
namespace {

namespace fs = std::filesystem;

using TempFolder = test::TempDir;

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// A w x h image with `channels` channels whose values depend on (x, y, c, seed).
Image8 pattern(int w, int h, int channels, int seed) {
  Image8 im;
  im.width = w;
  im.height = h;
  im.channels = channels;
  im.pixels.resize(size_t(w) * h * channels);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c)
        im.at(y, x, c) = uint8_t((seed * 37 + x * 11 + y * 23 + c * 71) % 256);
  return im;
}

PlanarImage planar(const Image8& im) {
  PlanarImage p;
  p.channels = im.channels;
  p.height = im.height;
  p.width = im.width;
  p.pixels.resize(im.pixels.size());
  const size_t plane = size_t(im.width) * im.height;
  for (size_t i = 0; i < plane; ++i)
    for (int c = 0; c < im.channels; ++c) p.pixels[size_t(c) * plane + i] = im.pixels[i * im.channels + c];
  return p;
}

TzmTensor input_tensor(int h, int w, int c, float scale, int32_t zero_point) {
  TzmTensor t{};
  t.dtype = static_cast<uint8_t>(DType::kInt8);
  t.rank = 3;
  t.dims[0] = h;
  t.dims[1] = w;
  t.dims[2] = c;
  t.dims[3] = 1;
  t.scale = scale;
  t.zero_point = zero_point;
  return t;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// ------------------------------------------------------- CIFAR-10 as a source

TEST(Cifar10Source, GivesTheRecordsBytesAndNames) {
  const Cifar10Set set = testing::coloured_cifar_images(3, 4);
  const Cifar10Source src(set, {{"a.bin", 20}, {"b.bin", 10}});
  ASSERT_EQ(src.size(), set.size());
  ASSERT_EQ(src.n_classes(), 10);
  EXPECT_EQ(src.class_names()[0], "airplane");
  EXPECT_EQ(src.class_names()[9], "truck");
  EXPECT_EQ(src.labels(), set.labels);
  for (size_t i = 0; i < set.size(); ++i) {
    const PlanarImage im = src.image(i);
    ASSERT_EQ(im.channels, 3);
    ASSERT_EQ(im.height, 32);
    ASSERT_EQ(im.width, 32);
    ASSERT_TRUE(std::equal(im.pixels.begin(), im.pixels.end(), set.image(i))) << i;
  }
  EXPECT_EQ(src.item_name(3), "a.bin record 3");
  EXPECT_EQ(src.item_name(25), "b.bin record 5");
  EXPECT_TRUE(src.skipped().empty());
  // As an ImageSet: the same bytes back to back.
  const ImageSet s = to_image_set(set);
  EXPECT_EQ(s.pixels, set.pixels);
  EXPECT_EQ(s.labels, set.labels);
}

// The protocol through the interface selects and corrupts exactly the
// images the CIFAR-10 subset() of the same indices holds.
TEST(Cifar10Source, ProtocolThroughTheInterfaceEqualsTheRecords) {
  const Cifar10Set set = testing::coloured_cifar_images(12, 9);
  ProtocolSpec spec;
  spec.corruption = "none";
  spec.split = SplitSpec{5, 2, 4, 3};
  const ProtocolData d = make_protocol_data(Cifar10Source(set), spec, "", 2);
  EXPECT_EQ(d.train.pixels, subset(set, d.indices.train).pixels);
  EXPECT_EQ(d.val.pixels, subset(set, d.indices.val).pixels);
  EXPECT_EQ(d.test.pixels, subset(set, d.indices.test).pixels);
  EXPECT_EQ(d.indices.train, class_balanced_split(set.labels, 10, spec.split).train);
  ASSERT_EQ(d.class_names.size(), 10u);
  EXPECT_EQ(d.class_names[3], "cat");
}

// ImagePreprocessor on 32x32 RGB images and the paper's input tensor is
// InputPreprocessor (the authors' eval pipeline), byte for byte.
TEST(ImagePreprocessor, EqualsThePaperPipelineOnCifarImages) {
  const Cifar10Set set = testing::coloured_cifar_images(2, 11);
  for (int side : {128, 64, 8}) {
    const TzmTensor t = input_tensor(side, side, 3, float(1.0 / 127.5), 0);
    const InputPreprocessor paper(t);
    const ImagePreprocessor any(t);
    ASSERT_EQ(paper.output_elements(), any.output_elements());
    std::vector<int8_t> a(paper.output_elements()), b(any.output_elements());
    for (size_t i = 0; i < set.size(); ++i) {
      paper.run(set.image(i), a.data());
      any.run(ImageView{set.image(i), 3, 32, 32}, b.data());
      ASSERT_EQ(a, b) << "side " << side << " image " << i;
    }
  }
}

// A non-square image: the shorter side is resized to ceil(S / 0.875), the
// longer in proportion, then centre-cropped (docs/data.md), with Pillow's
// bilinear resampling.
TEST(ImagePreprocessor, ResizesTheShorterSideThenCropsTheCentre) {
  const Image8 im = pattern(40, 20, 3, 1);  // w 40, h 20
  const PlanarImage p = planar(im);
  const ImagePreprocessor prep(input_tensor(8, 8, 3, 1.f / 255.f, -128));
  std::vector<int8_t> out(prep.output_elements());
  prep.run(view_of(p), out.data());
  // r = ceil(8 / 0.875) = 10: 20 -> 10 rows, 40 -> int(10 * 40 / 20) = 20 columns;
  // crop offsets round((10 - 8) / 2) = 1 and round((20 - 8) / 2) = 6.
  int rh = 0, rw = 0;
  resize_shorter_side(20, 40, 10, &rh, &rw);
  EXPECT_EQ(rh, 10);
  EXPECT_EQ(rw, 20);
  for (int c = 0; c < 3; ++c) {
    const std::vector<uint8_t> full =
        pillow_resize_plane(p.pixels.data() + size_t(c) * 800, 40, 20, 20, 10, PillowFilter::kBilinear);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x)  // [0, 1] range, scale 1/255, zero point -128: q = p - 128
        ASSERT_EQ(int(out[(size_t(y) * 8 + x) * 3 + c]), int(full[size_t(y + 1) * 20 + x + 6]) - 128)
            << y << x << c;
  }
  // Portrait images the other way round.
  resize_shorter_side(45, 30, 10, &rh, &rw);
  EXPECT_EQ(rw, 10);
  EXPECT_EQ(rh, 15);
}

TEST(ImagePreprocessor, ConvertsChannelsToTheModels) {
  // RGBA -> RGB drops alpha; gray -> RGB repeats; RGB -> L is Pillow's luma.
  const PlanarImage rgba = planar(pattern(32, 32, 4, 2));
  const PlanarImage rgb = convert_channels(view_of(rgba), 3);
  EXPECT_TRUE(std::equal(rgb.pixels.begin(), rgb.pixels.end(), rgba.pixels.begin()));
  const PlanarImage gray = planar(pattern(5, 4, 1, 3));
  const PlanarImage g3 = convert_channels(view_of(gray), 3);
  for (int c = 0; c < 3; ++c)
    EXPECT_TRUE(std::equal(gray.pixels.begin(), gray.pixels.end(), g3.pixels.begin() + c * 20));
  const PlanarImage l = convert_channels(view_of(rgb), 1);
  const size_t i = 77;
  EXPECT_EQ(
      l.pixels[i],
      (19595u * rgb.pixels[i] + 38470u * rgb.pixels[1024 + i] + 7471u * rgb.pixels[2048 + i] + 32768u) >> 16);
  EXPECT_EQ(convert_channels(ImageView{std::vector<uint8_t>(3, 255).data(), 3, 1, 1}, 1).pixels[0], 255);
  // A gray model reads the luma of RGB images.
  const ImagePreprocessor prep(input_tensor(8, 8, 1, 1.f / 255.f, -128));
  EXPECT_EQ(prep.output_elements(), 64u);
  std::vector<int8_t> a(64), b(64);
  const PlanarImage big = planar(pattern(16, 16, 3, 4));
  prep.run(view_of(big), a.data());
  prep.run(view_of(convert_channels(view_of(big), 1)), b.data());
  EXPECT_EQ(a, b);
}

TEST(ImagePreprocessor, QuantizationFollowsTheInputTensor) {
  PixelRange r;
  // The paper's: the authors' float32 table.
  EXPECT_EQ(input_quantization_table(float(1.0 / 127.5), 0, &r), pixel_to_input_table());
  EXPECT_EQ(r, PixelRange::kMinusOneToOne);
  // [0, 1] with scale 1/255, zero point -128, and raw pixels with scale 1: q = p - 128.
  for (auto [s, z] : {std::pair{1.f / 255.f, -128}, std::pair{1.f, -128}}) {
    const std::array<int8_t, 256> t = input_quantization_table(s, z, &r);
    for (int p = 0; p < 256; ++p) ASSERT_EQ(int(t[size_t(p)]), p - 128) << s;
  }
  // [-1, 1] with scale 1/128, zero point 0 (a common TFLite input).
  const std::array<int8_t, 256> t = input_quantization_table(1.f / 128.f, 0, &r);
  EXPECT_EQ(r, PixelRange::kMinusOneToOne);
  for (int p = 0; p < 256; ++p)
    ASSERT_EQ(int(t[size_t(p)]), std::clamp(int(std::nearbyint((p / 127.5 - 1.0) * 128.0)), -128, 127)) << p;
  EXPECT_EQ(t[0], -128);
  EXPECT_EQ(t[255], 127);
  // A range that is none of the three is refused, not guessed.
  EXPECT_NE(error_of([] { input_quantization_table(0.02f, 0); }).find("not supported"), std::string::npos);
  EXPECT_NE(error_of([] { ImagePreprocessor(input_tensor(8, 8, 4, 1.f / 255.f, -128)); }).find("C = 1 or 3"),
            std::string::npos);
}

// ------------------------------------------------------------- image folders

// classes b_dogs, a_cats (sorted: a_cats = 0), a hidden folder, a stray file.
struct Folder {
  TempFolder dir;
  std::vector<Image8> cats, dogs;
  Folder() {
    cats = {pattern(12, 10, 3, 1), pattern(9, 9, 1, 2), pattern(7, 11, 4, 3)};
    dogs = {pattern(16, 16, 3, 4), pattern(10, 6, 3, 5)};
    write_file(dir.file("a_cats/01.png"), encode_png(cats[0]));
    write_file(dir.file("a_cats/02.BMP"), encode_bmp(cats[1]));
    write_file(dir.file("a_cats/sub/03.png"), encode_png(cats[2]));
    write_file(dir.file("a_cats/notes.txt"), {'h', 'i'});
    write_file(dir.file("b_dogs/x.jpg"), encode_jpeg(dogs[0], 95));
    write_file(dir.file("b_dogs/y.bmp"), encode_bmp(dogs[1]));
    write_file(dir.file(".cache/z.png"), encode_png(dogs[1]));
    write_file(dir.file("README.png"), encode_png(dogs[1]));  // not in a class folder: ignored
  }
};

TEST(ImageFolder, ScansClassesFilesAndDecodes) {
  Folder f;
  const std::unique_ptr<DataSource> src = open_data_source(f.dir.path(), BadImages::kStop, 2);
  ASSERT_EQ(src->n_classes(), 2);
  EXPECT_EQ(src->class_names(), (std::vector<std::string>{"a_cats", "b_dogs"}));
  ASSERT_EQ(src->size(), 5u);
  EXPECT_EQ(src->labels(), (std::vector<uint8_t>{0, 0, 0, 1, 1}));
  EXPECT_EQ(src->item_name(0), f.dir.file("a_cats/01.png"));
  EXPECT_EQ(src->item_name(1), f.dir.file("a_cats/02.BMP"));
  EXPECT_EQ(src->item_name(2), f.dir.file("a_cats/sub/03.png"));
  EXPECT_EQ(src->item_name(4), f.dir.file("b_dogs/y.bmp"));
  // PNG and BMP are lossless; BMP stores gray as RGB.
  EXPECT_EQ(src->image(0), planar(f.cats[0]));
  const PlanarImage bmp_gray = src->image(1);
  EXPECT_EQ(bmp_gray.height, 9);
  EXPECT_EQ(convert_channels(view_of(bmp_gray), 1).pixels, planar(f.cats[1]).pixels);
  EXPECT_EQ(src->image(2), planar(f.cats[2]));  // RGBA kept as decoded
  EXPECT_EQ(src->image(4), planar(f.dogs[1]));
  // JPEG: its size and channels; values close to the original at quality 95.
  const PlanarImage jpg = src->image(3);
  ASSERT_EQ(jpg.width, 16);
  ASSERT_EQ(jpg.height, 16);
  ASSERT_EQ(jpg.channels, 3);
  double err = 0;
  const PlanarImage orig = planar(f.dogs[0]);
  for (size_t i = 0; i < jpg.pixels.size(); ++i) err += std::abs(int(jpg.pixels[i]) - int(orig.pixels[i]));
  EXPECT_LT(err / double(jpg.pixels.size()), 12.0);
  EXPECT_TRUE(src->skipped().empty());
  EXPECT_NE(src->description().find("2 classes, 5 images"), std::string::npos);
}

TEST(ImageFolder, BadImagesStopOrAreSkipped) {
  Folder f;
  std::vector<uint8_t> truncated = encode_png(f.cats[0]);
  truncated.resize(truncated.size() / 2);
  write_file(f.dir.file("a_cats/04.png"), truncated);
  write_file(f.dir.file("b_dogs/bad.jpg"), {0xFF, 0xD8, 0xFF, 0x00, 1, 2, 3});
  // stop (the default): one message naming the first bad file.
  const std::string e = error_of([&] { open_data_source(f.dir.path(), BadImages::kStop, 3); });
  EXPECT_NE(e.find(f.dir.file("a_cats/04.png")), std::string::npos) << e;
  EXPECT_NE(e.find("--bad-images skip"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
  // skip: both listed, in scanning order, the five good ones kept.
  const std::unique_ptr<DataSource> src = open_data_source(f.dir.path(), BadImages::kSkip, 1);
  ASSERT_EQ(src->size(), 5u);
  ASSERT_EQ(src->skipped().size(), 2u);
  EXPECT_EQ(src->skipped()[0].rfind(f.dir.file("a_cats/04.png") + " (", 0), 0u) << src->skipped()[0];
  EXPECT_EQ(src->skipped()[1].rfind(f.dir.file("b_dogs/bad.jpg") + " (", 0), 0u) << src->skipped()[1];
  const std::string line = skipped_summary(*src);
  EXPECT_EQ(line.rfind("skipped 2 unreadable images", 0), 0u) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(src->image(4), planar(f.dogs[1]));
  // Only bad files: nothing to use.
  TempFolder g;
  write_file(g.file("c/1.png"), {1, 2, 3});
  EXPECT_NE(error_of([&] { open_data_source(g.path(), BadImages::kSkip); }).find("none of its 1 image files"),
            std::string::npos);
}

TEST(ImageFolder, RefusesWhatIsNotData) {
  TempFolder d;
  EXPECT_NE(error_of([&] { open_data_source(d.file("missing"), BadImages::kStop); }).find("no such file"),
            std::string::npos);
  EXPECT_NE(error_of([&] { open_data_source(d.path(), BadImages::kStop); }).find("neither class folders"),
            std::string::npos);
  fs::create_directories(d.file("empty_class"));
  EXPECT_NE(error_of([&] { open_data_source(d.path(), BadImages::kStop); }).find("no images"),
            std::string::npos);
}

TEST(DataSource, ADirectoryOfCifarFilesIsOneSet) {
  TempFolder d;
  const Cifar10Set a = testing::coloured_cifar_images(2, 1), b = testing::coloured_cifar_images(1, 2);
  write_file(d.file("b.bin"), testing::cifar_file_bytes(b));
  write_file(d.file("a.bin"), testing::cifar_file_bytes(a));
  const std::unique_ptr<DataSource> src = open_data_source(d.path(), BadImages::kStop);
  ASSERT_EQ(src->size(), 30u);
  EXPECT_EQ(src->image(0).pixels, std::vector<uint8_t>(a.image(0), a.image(0) + kCifar10ImageBytes));
  EXPECT_EQ(src->image(20).pixels, std::vector<uint8_t>(b.image(0), b.image(0) + kCifar10ImageBytes));
  EXPECT_EQ(src->item_name(21), d.file("b.bin") + " record 1");
  // A single file too.
  EXPECT_EQ(open_data_source(d.file("a.bin"), BadImages::kStop)->size(), 20u);
}

TEST(DataSource, ClassCountMustMatchTheModel) {
  Folder f;
  const std::unique_ptr<DataSource> src = open_data_source(f.dir.path(), BadImages::kStop);
  check_class_count(*src, 2, "m.tzm");
  const std::string e = error_of([&] { check_class_count(*src, 10, "m.tzm"); });
  EXPECT_NE(e.find("2 classes (a_cats, b_dogs)"), std::string::npos) << e;
  EXPECT_NE(e.find("m.tzm has 10 outputs"), std::string::npos) << e;
}

// A folder holding the same 32x32 images as CIFAR-10 records splits into the
// same images, and its model inputs are the same bytes.
TEST(ImageFolder, SplitsLikeTheSameImagesAsRecords) {
  const Cifar10Set set = testing::coloured_cifar_images(6, 3);
  TempFolder d;
  for (size_t i = 0; i < set.size(); ++i) {
    Image8 im;
    im.width = im.height = 32;
    im.channels = 3;
    im.pixels.resize(kCifar10ImageBytes);
    for (size_t p = 0; p < 1024; ++p)
      for (size_t c = 0; c < 3; ++c) im.pixels[p * 3 + c] = set.image(i)[c * 1024 + p];
    char name[64];
    std::snprintf(name, sizeof name, "%s/%05zu.png", cifar10_class_name(set.labels[i]), i);
    write_file(d.file(name), encode_png(im));
  }
  ProtocolSpec spec;
  spec.corruption = "none";
  spec.split = SplitSpec{3, 1, 2, 7};
  spec.data = d.path();
  const ProtocolData fd = load_protocol_data("", spec, 2);
  const ProtocolData cd = make_protocol_data(set, spec, "", 2);
  // Folder classes are the sorted names (airplane, automobile, bird, cat, ...):
  // CIFAR-10's order already.
  EXPECT_EQ(fd.class_names, cd.class_names);
  // The same images per class, in a different item order (class-major).
  auto sorted_images = [](const ImageSet& s) {
    std::vector<std::vector<uint8_t>> v;
    for (size_t i = 0; i < s.size(); ++i) v.emplace_back(s.image(i), s.image(i) + kCifar10ImageBytes);
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted_images(fd.train), sorted_images(cd.train));
  EXPECT_EQ(sorted_images(fd.test), sorted_images(cd.test));
  // Too few images in a class: the error names it and the flags.
  spec.split = SplitSpec{3, 1, 3, 7};
  const std::string e = error_of([&] { load_protocol_data("", spec, 1); });
  EXPECT_NE(e.find("class 0 (airplane) has 6 images, the split needs 7"), std::string::npos) << e;
  EXPECT_NE(e.find("--train-per-class"), std::string::npos) << e;
  // Corruptions need 32x32 RGB: a folder of other sizes is refused, naming an image.
  TempFolder big;
  write_file(big.file("a/1.png"), encode_png(pattern(40, 40, 3, 1)));
  write_file(big.file("a/2.png"), encode_png(pattern(40, 40, 3, 2)));
  ProtocolSpec bs;
  bs.corruption = "gaussian_noise";
  bs.split = SplitSpec{1, 0, 1, 0};
  bs.data = big.path();
  EXPECT_NE(error_of([&] { load_protocol_data("", bs, 1); }).find("32x32 RGB images only"),
            std::string::npos);
  bs.corruption = "none";
  EXPECT_EQ(load_protocol_data("", bs, 1).train.dims[0].width, 40);
}

// The augmentation on a non-square source: torchvision's crop rule on H x W,
// crops inside the image, and a constant image stays constant.
TEST(Augment, NonSquareSourcesCropInsideTheImage) {
  const AugmentSpec spec;
  for (uint32_t i = 0; i < 500; ++i) {
    const AugmentParams p = draw_augment(spec, augment_seed(3, 0, i), 20, 50);
    ASSERT_GE(p.crop_y, 0);
    ASSERT_GE(p.crop_x, 0);
    ASSERT_LE(p.crop_y + p.crop_h, 20) << i;
    ASSERT_LE(p.crop_x + p.crop_w, 50) << i;
    const AugmentParams q = draw_augment(spec, augment_seed(3, 0, i), 20, 50);
    ASSERT_EQ(p.crop_x, q.crop_x);
    ASSERT_EQ(p.crop_w, q.crop_w);
  }
  // Square sources draw exactly as the square overload.
  const AugmentParams a = draw_augment(spec, 77, 32), b = draw_augment(spec, 77, 32, 32);
  EXPECT_EQ(a.crop_y, b.crop_y);
  EXPECT_EQ(a.crop_w, b.crop_w);
  EXPECT_EQ(a.brightness, b.brightness);
  // A very wide image falls back to the whole height with the ratio clipped to 4/3.
  AugmentSpec narrow = spec;
  narrow.scale_min = narrow.scale_max = 1.f;
  const AugmentParams w = draw_augment(narrow, 5, 10, 100);
  EXPECT_EQ(w.crop_h, 10);
  EXPECT_EQ(w.crop_w, 13);  // round(10 * 4/3)
  EXPECT_EQ(w.crop_x, (100 - 13) / 2);
  PlanarImage flat;
  flat.channels = 3;
  flat.height = 20;
  flat.width = 50;
  flat.pixels.assign(3000, 90);
  AugmentParams p = draw_augment(spec, 9, 20, 50);
  p.brightness = p.contrast = p.saturation = 1.f;
  std::vector<uint8_t> px(8 * 6 * 3);
  augment_rgb_pixels(view_of(flat), p, 8, 6, px.data());
  for (uint8_t v : px) ASSERT_EQ(v, 90);
}

}  // namespace
}  // namespace tinyzo
