// Evaluation preprocessing of METHOD §6: bilinear resize (32 -> 147),
// centre crop (128), then int8 quantization q = p - 128. Defined exactly in
// integers so that the host, the device and the Python reference agree bit
// for bit; the definition is in docs/data.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tinyzo/model_format.h"

namespace tinyzo {

// One output coordinate of a 1-D bilinear resize: value = (w0 * p[x0] + w1 *
// p[x1]), weights summing to 2 * dst.
struct ResizeTap {
  int x0, x1;
  int w0, w1;
};

// Square resize-then-centre-crop geometry: `src` -> `resize` -> `crop`.
struct ResizeCropSpec {
  int src = 32;
  int resize = 147;
  int crop = 128;
};

// Taps of output coordinates [first, first + count) of a src -> dst resize
// (align_corners=False geometry, edge-clamped): s = max(0, (2i+1)*src - dst),
// x0 = s / (2*dst); x0 >= src-1 clamps to the last pixel with weight 2*dst;
// otherwise rem = s - 2*dst*x0, weights (2*dst - rem, rem) on (x0, x0+1).
std::vector<ResizeTap> resize_taps(int src, int dst, int first, int count);

// Top/left offset of a centre crop, as torchvision computes it:
// int(round((resized - crop) / 2)) with Python 3's round-half-to-even
// (147 -> 128: round(9.5) = 10).
int center_crop_offset(int resized, int crop);

// The resize size used for a crop size: 147 for 128 (the paper's protocol),
// otherwise round(crop * 147 / 128) (half up).
int default_resize_for_crop(int crop);

// Resizes a planar [channels][src][src] uint8 image to resize x resize and
// keeps the centre crop x crop, written interleaved [crop][crop][channels].
// Each output = (sum over the 4 neighbours of p * wy * wx + D/2) / D with
// D = (2*resize)^2 (integer, round half up). Throws CliError for a spec with
// non-positive sizes or crop > resize.
void resize_center_crop_u8(const uint8_t* planar, int channels, const ResizeCropSpec& spec, uint8_t* hwc);

// The eval input pipeline for one model: takes the crop size from the model's
// input tensor ([S, S, 3] int8) and checks its quantization. Only the paper's
// input quantization (scale 1/127.5, zero point 0: q = p - 128) is supported;
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
  std::vector<ResizeTap> taps_;  // for the cropped outputs only (same on both axes)
  int64_t denom_ = 1;
};

}  // namespace tinyzo
