// Pillow's 8-bit resampling (Image.resize with the BOX or BILINEAR filter),
// reimplemented from the arithmetic of libImaging/Resample.c so that the
// bytes equal Pillow's: the CIFAR-10-C generator's pixelate (BOX) and the
// authors' evaluation transform, torchvision's Resize on a PIL image
// (BILINEAR). Checked against Debian's python3-pil (9.4) by
// python/tests/test_preprocess.py; the arithmetic is in docs/data.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tinyzo {

enum class PillowFilter {
  kBox,       // support 0.5: 1 on (-0.5, 0.5] (box_filter since Pillow 7.0)
  kBilinear,  // support 1: the triangle 1 - |x| on (-1, 1)
};

// Coefficients are fixed point with this many fractional bits (Pillow's
// PRECISION_BITS = 32 - 8 - 2).
constexpr int kPillowPrecisionBits = 22;

// The coefficients of one axis of a resize in_size -> out_size, for the
// outputs [first, first + count) only (an output depends on its own
// coefficients alone, so a crop of the resize is the resize of the crop's
// outputs). Output k (= first + k of the full resize) is
//   clip8((2^21 + sum_j p[start[k] + j] * weight(k, j)) >> 22),  j < taps[k].
// When in_size == out_size Pillow skips the pass: the axis is the identity
// (one tap of weight 2^22).
struct PillowAxis {
  int max_taps = 0;                // row length of `weights`
  std::vector<int> start, taps;    // per output: first source index, tap count
  std::vector<int32_t> weights;    // count() x max_taps, unused taps 0
  int count() const { return static_cast<int>(start.size()); }
  int32_t weight(int k, int j) const { return weights[size_t(k) * size_t(max_taps) + size_t(j)]; }
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc, in double as Pillow
// computes them: scale = in/out, filterscale = max(scale, 1), support =
// filter support * filterscale; output o's centre c = (o + 0.5) * scale reads
// sources xmin = max(0, int(c - support + 0.5)) .. min(in, int(c + support +
// 0.5)) - 1 with weights filter((x - c + 0.5) / filterscale) (multiplied by the
// reciprocal, as Pillow does), divided by their sum, then int(0.5 + w * 2^22)
// (w < 0: int(-0.5 + w * 2^22)). Throws CliError for sizes < 1, sizes above
// 2^24 (Pillow's float box), or a range outside [0, out_size).
PillowAxis pillow_axis(PillowFilter filter, int in_size, int out_size, int first, int count);
inline PillowAxis pillow_axis(PillowFilter filter, int in_size, int out_size) {
  return pillow_axis(filter, in_size, out_size, 0, out_size);
}

// Resamples one uint8 plane (in_w x in_h, row-major) as Pillow does: the
// horizontal pass with `cols` (over the source rows the vertical pass reads),
// each value rounded to uint8, then the vertical pass with `rows`. Writes
// rows.count() x cols.count() values to out[(y * cols.count() + x) *
// out_pixel_stride] (stride 3 interleaves three planes). The axes must come
// from pillow_axis with in_size in_w (cols) and in_h (rows).
void pillow_resample_plane(const uint8_t* in, int in_w, int in_h, const PillowAxis& cols, const PillowAxis& rows,
                           uint8_t* out, size_t out_pixel_stride = 1);

// PIL.Image.resize((out_w, out_h), filter) of one uint8 plane.
std::vector<uint8_t> pillow_resize_plane(const uint8_t* in, int in_w, int in_h, int out_w, int out_h,
                                         PillowFilter filter);

}  // namespace tinyzo
