// The CIFAR-10-C adaptation protocol of METHOD §6: the class-balanced split of
// the (corrupted) CIFAR-10 test set, the training augmentation, and the order
// of the training batches. Every random choice is a pure function of the seeds
// and indices below, so a run (and a resumed run) sees the same images in the
// same order on every machine. Exact definitions: docs/training.md. The data
// come through a DataSource (host/data/data_source.h): the CIFAR-10 test batch
// by default, or the user's own (--data; docs/data.md, "Your own data").
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "data/data_source.h"

namespace tinyzo {

// ------------------------------------------------------------------ splits

struct SplitSpec {
  int train_per_class = 100;
  int val_per_class = 10;
  int test_per_class = 90;
  uint64_t seed = 0;  // the protocol's "shuffled with seed 0"
};

// Indices into the source set, ascending within each split.
struct SplitIndices {
  std::vector<uint32_t> train, val, test;
};

// Fisher-Yates shuffle driven by SplitMix64 (host/rng.h) from `seed`: for
// i = n-1 down to 1, j = uniform integer in [0, i] (rejection sampling on the
// 64-bit draw, so unbiased), swap(v[i], v[j]).
void shuffle_indices(std::vector<uint32_t>& v, uint64_t seed);

// Per class c (0..n_classes-1): the indices with label c in file order,
// shuffled with shuffle_indices(derive_seed(spec.seed, c)); the first
// train_per_class go to train, the next val_per_class to val, the next
// test_per_class to test. Each split is then sorted ascending. Throws
// CliError when a class has too few images (naming it, as class_names[c]
// when given) or a count is negative.
SplitIndices class_balanced_split(const std::vector<uint8_t>& labels, int n_classes, const SplitSpec& spec,
                                  const std::vector<std::string>& class_names = {});

// The images `indices` of `set`, in that order.
Cifar10Set subset(const Cifar10Set& set, const std::vector<uint32_t>& indices);

// The data name that means the data directory's CIFAR-10 test batch (the
// paper's protocol); any other `data` is a path for open_data_source().
constexpr const char* kDefaultData = "cifar10";

// What the protocol is run on.
struct ProtocolSpec {
  std::string corruption = "gaussian_noise";  // a CORRUPTIONS.md name, or "none" (clean CIFAR-10)
  int severity = 5;
  uint64_t corruption_seed = 0;  // seeds the random corruptions (host/corruptions.h)
  SplitSpec split;
  std::string data = kDefaultData;          // kDefaultData or a --data path
  BadImages bad_images = BadImages::kStop;  // for an image folder
};

struct ProtocolData {
  ImageSet train, val, test;
  SplitIndices indices;  // positions in the source (the CIFAR-10 test batch, a folder's item order)
  std::vector<std::string> class_names;
  std::string description;            // the source's, for messages
  std::vector<std::string> skipped;   // the source's skipped images
  std::string skipped_summary;        // their one line ("" when none)
};

// True when running `spec` reads the data directory: the default CIFAR-10
// data, or the frost corruption's images. Commands resolve the directory
// only then, so own data works without one.
bool protocol_needs_data_dir(const ProtocolSpec& spec);

// Opens the data of `spec`: the CIFAR-10 test batch of `data_dir` when
// spec.data is kDefaultData, open_data_source(spec.data) otherwise.
std::unique_ptr<DataSource> open_protocol_source(const std::string& data_dir, const ProtocolSpec& spec,
                                                 int threads = 0);

// Loads the data of `spec` (open_protocol_source), splits it, and corrupts
// the selected images. Image k of the source is corrupted with
// corruption_image_seed(corruption_seed, c, k), so its bytes equal those of
// corrupting the whole batch with corrupt_split(); only the selected images
// are computed. `threads` (0 = all cores) only changes the speed. Throws
// CliError for an unknown corruption, a bad severity or missing data.
ProtocolData load_protocol_data(const std::string& data_dir, const ProtocolSpec& spec, int threads = 0);

// The same on a source already open: split source.labels() over its
// n_classes(), decode the selected items, corrupt them (corruptions need
// 32x32 RGB images: CliError naming the first other one). `frost_dir` is the
// data directory holding frost/ (only read for the frost corruption).
ProtocolData make_protocol_data(const DataSource& source, const ProtocolSpec& spec, const std::string& frost_dir,
                                int threads = 0);
// The same on a CIFAR-10 set in memory (tests).
ProtocolData make_protocol_data(const Cifar10Set& source, const ProtocolSpec& spec, const std::string& frost_dir,
                                int threads = 0);

// ------------------------------------------------------------ augmentation

// Training augmentation (METHOD §6): torchvision-style RandomResizedCrop to
// out_side x out_side (bilinear), horizontal flip, colour jitter.
struct AugmentSpec {
  bool enabled = true;     // false: the eval preprocessing instead
  float scale_min = 0.08f, scale_max = 1.f;           // crop area / image area
  float ratio_min = 3.f / 4.f, ratio_max = 4.f / 3.f; // crop width / height
  float flip_p = 0.5f;
  float brightness = 0.4f;  // factor drawn from [max(0, 1-x), 1+x]
  float contrast = 0.4f;
  float saturation = 0.4f;
};

// The random draws for one image.
struct AugmentParams {
  int crop_y = 0, crop_x = 0, crop_h = 0, crop_w = 0;  // in source pixels
  bool flip = false;
  float brightness = 1.f, contrast = 1.f, saturation = 1.f;
  int order[3] = {0, 1, 2};  // 0 brightness, 1 contrast, 2 saturation: applied in this order
};

// Seed of the augmentation of training image `image` (its position in the
// train split) in epoch `epoch` of a run seeded `seed`.
uint64_t augment_seed(uint64_t seed, uint32_t epoch, uint32_t image);

// Draws the parameters from `seed` for a src_h x src_w source (torchvision's
// RandomResizedCrop.get_params on that size; square sources draw exactly as
// they always did).
AugmentParams draw_augment(const AugmentSpec& spec, uint64_t seed, int src_h, int src_w);
inline AugmentParams draw_augment(const AugmentSpec& spec, uint64_t seed, int src_side) {
  return draw_augment(spec, seed, src_side, src_side);
}

// Applies `p` to a planar uint8 [3][src_side][src_side] image and writes the
// int8 model input NHWC [out_side][out_side][3]: each value v in [0, 255]
// rounded half up to a pixel, then mapped by pixel_to_input_table()
// (host/preprocess.h), the same pixel -> int8 step as the eval pipeline.
void augment_image(const uint8_t* planar, int src_side, const AugmentParams& p, int out_side, int8_t* out);

// The general form: `p` applied to a planar RGB image (3 channels, any size)
// into interleaved RGB pixels [out_h][out_w][3], each value rounded half up;
// ImagePreprocessor::quantize_rgb maps them to the model input. For a square
// source and out_h = out_w, augment_image above is this followed by
// pixel_to_input_table().
void augment_rgb_pixels(const ImageView& rgb, const AugmentParams& p, int out_h, int out_w, uint8_t* hwc);

// --------------------------------------------------------------- batches

// The order of the n training images in epoch `epoch`: a shuffle_indices
// permutation of 0..n-1 seeded by (seed, epoch).
std::vector<uint32_t> epoch_order(size_t n, uint64_t seed, uint32_t epoch);

// Steps per epoch: ceil(n / batch) (the last batch may be smaller).
int steps_per_epoch(size_t n, int batch);

// --------------------------------------------------------------- threads

// Runs body(t) for t = 0..threads-1: t = 0 on the calling thread, the others
// on new threads. Joins them all, then rethrows the exception of the lowest t
// that threw. Shared by the corruption of the split, the evaluator and select.
void run_workers(int threads, const std::function<void(int)>& body);

}  // namespace tinyzo
