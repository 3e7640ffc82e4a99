// Evaluation preprocessing of METHOD §6, exactly as the authors' code path
// computes it: torchvision Resize(147) on the PIL image (Pillow's bilinear
// resampling), CenterCrop(128), ToTensor, Normalize(0.5, 1/255), and the
// round half to even of their first quantized conv. Bit for bit equal to
// Pillow 9.4 + torchvision (python/tests/test_preprocess.py), to the Python
// reference (tests/reference/reference.py) and, through `tinyzo fw-data`, to
// what the device sees. The definition and the sources are in docs/data.md.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

#include "data/data_source.h"
#include "data/pillow_resample.h"
#include "tinyzo/model_format.h"

namespace tinyzo {

// Square resize-then-centre-crop geometry: `src` -> `resize` -> `crop`.
struct ResizeCropSpec {
  int src = 32;
  int resize = 147;
  int crop = 128;
};

// Top/left offset of a centre crop, as torchvision computes it:
// int(round((resized - crop) / 2)) with Python 3's round-half-to-even
// (147 -> 128: round(9.5) = 10).
int center_crop_offset(int resized, int crop);

// The resize size for a crop size, the authors' int(math.ceil(crop / 0.875))
// (tiny-training's build_val_transform) = ceil(8 * crop / 7): 147 for 128,
// 74 for 64.
int default_resize_for_crop(int crop);

// Pixel value p (0..255) -> the int8 input of the first conv:
// round_half_even(float32(float32(float32(p) / 255) - 0.5f) / float32(1/255)),
// every step a binary32 operation as torchvision's ToTensor and Normalize do
// them. In exact arithmetic every p would be the tie p - 127.5; the float32
// rounding decides: p - 128 for even p in 32..62 and 176..222 and for every
// p >= 224, p - 127 otherwise (range -127..127).
const std::array<int8_t, 256>& pixel_to_input_table();

// Pillow-bilinear resize of a planar [channels][src][src] uint8 image to
// resize x resize, keeping the centre crop x crop, written interleaved
// [crop][crop][channels] as uint8 pixels (before the table). Throws CliError
// for a spec with non-positive sizes or crop > resize.
void resize_center_crop_u8(const uint8_t* planar, int channels, const ResizeCropSpec& spec, uint8_t* hwc);

// The eval input pipeline for one model: takes the crop size from the model's
// input tensor ([S, S, 3] int8) and checks its quantization. Only the paper's
// input quantization is supported (scale 1/127.5, zero point 0: the
// tiny-training models' first conv reads (p/255 - 0.5) * 255 rounded);
// anything else throws CliError, as does a non-square or non-RGB input.
class InputPreprocessor {
 public:
  // `resize` 0 = default_resize_for_crop(S).
  explicit InputPreprocessor(const TzmTensor& input, int src_side = 32, int resize = 0);

  // planar uint8 [3][src][src] -> int8 NHWC [S][S][3] (output_elements()).
  void run(const uint8_t* planar, int8_t* out) const;

  size_t output_elements() const { return size_t(spec_.crop) * spec_.crop * 3; }
  const ResizeCropSpec& spec() const { return spec_; }

 private:
  ResizeCropSpec spec_;
  PillowAxis axis_;  // the cropped outputs (same on both axes)
};

// ------------------------------------------------------ any image, any model

// How pixels map to the model's real input values, read off the input
// tensor's quantization (docs/data.md, "Your own data"): the tensor's
// representable range [s(-128 - z), s(127 - z)] must match one of the usual
// pixel normalizations to within 1.5 s at both ends:
//   kMinusOneToOne  x = p / 127.5 - 1   (range [-1, 1]; the paper's models)
//   kZeroToOne      x = p / 255         (range [0, 1])
//   kPixels         x = p               (range [0, 255])
enum class PixelRange { kMinusOneToOne, kZeroToOne, kPixels };
const char* pixel_range_name(PixelRange r);  // "[-1, 1]", "[0, 1]", "[0, 255]"

// The pixel -> int8 table of an int8 input tensor with scale `scale` and
// zero point `zero_point`: for the paper's quantization (scale 1/127.5 to
// within 1e-4 relative, zero point 0) exactly pixel_to_input_table() (the
// authors' float32 chain); otherwise q = clamp(round_half_even(x / scale) +
// zero_point, -128, 127) in double, x from the matching PixelRange. Throws
// CliError ("... is not supported") when no range matches.
std::array<int8_t, 256> input_quantization_table(float scale, int32_t zero_point, PixelRange* range = nullptr);

// The model-input pipeline for images of any size and channel count, the
// torchvision ImageFolder eval path generalized (docs/data.md):
//  1. channels: to the model's C (3: gray is repeated, alpha dropped; 1:
//     Pillow's convert("L") luma (19595 R + 38470 G + 7471 B + 2^15) >> 16,
//     alpha dropped);
//  2. Resize(r) with r = ceil(max(H, W) / 0.875): the shorter side becomes r,
//     the longer int(r * long / short), Pillow's bilinear resampling;
//  3. CenterCrop(H, W) with torchvision's offsets (center_crop_offset);
//  4. the quantization table above, written NHWC [H][W][C].
// For a 32x32 RGB image and the paper's model these are exactly
// InputPreprocessor's bytes (32 -> 147 -> crop 128, the same table).
class ImagePreprocessor {
 public:
  // Reads H, W, C and the quantization from an int8 [H,W,C] or [1,H,W,C]
  // tensor. Throws CliError for another dtype, rank or shape, C other than 1
  // or 3, or an unsupported quantization.
  explicit ImagePreprocessor(const TzmTensor& input);

  // Any planar image (1..4 channels, at least 1x1) -> int8 NHWC
  // (output_elements()). Thread-safe.
  void run(const ImageView& image, int8_t* out) const;
  // Interleaved RGB pixels [H][W][3] (the augmentation's output) -> the
  // model input: step 1 (to C) and step 4.
  void quantize_rgb(const uint8_t* hwc, int8_t* out) const;

  int height() const { return height_; }
  int width() const { return width_; }
  int channels() const { return channels_; }
  size_t output_elements() const { return size_t(height_) * size_t(width_) * size_t(channels_); }
  PixelRange pixel_range() const { return range_; }
  const std::array<int8_t, 256>& table() const { return table_; }

 private:
  int height_ = 0, width_ = 0, channels_ = 0;
  PixelRange range_ = PixelRange::kMinusOneToOne;
  std::array<int8_t, 256> table_{};
};

// Step 1 alone: `image` converted to `channels` (1 or 3) planes.
PlanarImage convert_channels(const ImageView& image, int channels);

// Step 2's size: the (height, width) of Resize(r) of an in_h x in_w image.
void resize_shorter_side(int in_h, int in_w, int r, int* out_h, int* out_w);

}  // namespace tinyzo
