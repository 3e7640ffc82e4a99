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

}  // namespace tinyzo
