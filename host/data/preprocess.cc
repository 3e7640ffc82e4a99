#include "data/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "util/errors.h"

namespace tinyzo {

int center_crop_offset(int resized, int crop) {
  const int diff = resized - crop;
  // round(diff / 2) with ties to even: only odd diffs tie (k + 0.5).
  const int k = diff / 2;
  if (diff % 2 == 0) return k;
  return (k % 2 == 0) ? k : k + 1;
}

int default_resize_for_crop(int crop) {
  // crop / 0.875 = 8 crop / 7 (0.875 is exact in binary); the double quotient
  // is an integer exactly when 7 divides 8 crop and otherwise at least 1/7 away
  // from one, so its ceil is the integer ceil.
  return static_cast<int>((8 * int64_t(crop) + 6) / 7);
}

namespace {

// round half to even of a binary32 value well inside int range, independent
// of the FPU rounding mode (torch.round).
float round_half_even(float v) {
  const float f = std::floor(v);
  const float d = v - f;  // exact for |v| < 2^23
  if (d > 0.5f) return f + 1.0f;
  if (d < 0.5f) return f;
  return std::fmod(f, 2.0f) == 0.0f ? f : f + 1.0f;
}

std::array<int8_t, 256> make_pixel_table() {
  // Binary32 throughout, in torchvision's order (the build has no fast-math and
  // -ffp-contract=off, so nothing is fused or reassociated):
  //   ToTensor:  x = float32(p) / 255          (tensor.div(255))
  //   Normalize: y = (x - 0.5f) / float32(1/255)   (tensor.sub_(mean).div_(std))
  //   first conv: round half to even           (x.round() in _QuantizedConv2dFunc)
  const float std_f = static_cast<float>(1.0 / 255.0);
  std::array<int8_t, 256> t{};
  for (int p = 0; p < 256; ++p) {
    const float x = static_cast<float>(p) / 255.0f;
    const float y = (x - 0.5f) / std_f;
    t[size_t(p)] = static_cast<int8_t>(static_cast<int>(round_half_even(y)));
  }
  return t;
}

void check_spec(const ResizeCropSpec& spec) {
  if (spec.src < 1 || spec.resize < 1 || spec.crop < 1 || spec.crop > spec.resize || spec.resize > 100000)
    throw CliError("bad resize/crop geometry: " + std::to_string(spec.src) + " -> " + std::to_string(spec.resize) +
                   " -> crop " + std::to_string(spec.crop));
}

}  // namespace

const std::array<int8_t, 256>& pixel_to_input_table() {
  static const std::array<int8_t, 256> table = make_pixel_table();
  return table;
}

void resize_center_crop_u8(const uint8_t* planar, int channels, const ResizeCropSpec& spec, uint8_t* hwc) {
  check_spec(spec);
  const PillowAxis axis = pillow_axis(PillowFilter::kBilinear, spec.src, spec.resize,
                                      center_crop_offset(spec.resize, spec.crop), spec.crop);
  const size_t plane = size_t(spec.src) * size_t(spec.src);
  for (int c = 0; c < channels; ++c)
    pillow_resample_plane(planar + size_t(c) * plane, spec.src, spec.src, axis, axis, hwc + c, size_t(channels));
}

InputPreprocessor::InputPreprocessor(const TzmTensor& input, int src_side, int resize) {
  int h = 0, w = 0, c = 0;
  if (input.rank == 3) {
    h = input.dims[0], w = input.dims[1], c = input.dims[2];
  } else if (input.rank == 4 && input.dims[0] == 1) {
    h = input.dims[1], w = input.dims[2], c = input.dims[3];
  }
  const std::string shape = "[" + std::to_string(input.dims[0]) + "," + std::to_string(input.dims[1]) + "," +
                            std::to_string(input.dims[2]) + (input.rank == 4 ? "," + std::to_string(input.dims[3]) : "") +
                            "]";
  if (input.dtype != static_cast<uint8_t>(DType::kInt8))
    throw CliError("model input must be int8, got dtype " + std::to_string(input.dtype));
  if (h < 1 || h != w || c != 3)
    throw CliError("model input has shape " + shape + ", expected a square RGB image [S,S,3]");
  // The tiny-training input convention (METHOD §6, docs/semantics.md): s =
  // 1/127.5 stored as binary32, z = 0, i.e. the first conv reads the
  // Normalize(0.5, 1/255) output. Other input quantizations would need their
  // own documented pipeline first.
  const double want = 1.0 / 127.5;
  if (!(std::fabs(double(input.scale) - want) <= 1e-4 * want) || input.zero_point != 0) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "model input quantization (scale %.9g, zero point %d) is not supported: only scale 1/127.5, "
                  "zero point 0 (the tiny-training input convention)",
                  double(input.scale), int(input.zero_point));
    throw CliError(buf);
  }
  spec_.src = src_side;
  spec_.crop = h;
  spec_.resize = resize > 0 ? resize : default_resize_for_crop(h);
  check_spec(spec_);
  axis_ = pillow_axis(PillowFilter::kBilinear, spec_.src, spec_.resize, center_crop_offset(spec_.resize, spec_.crop),
                      spec_.crop);
}

const char* pixel_range_name(PixelRange r) {
  switch (r) {
    case PixelRange::kMinusOneToOne: return "[-1, 1]";
    case PixelRange::kZeroToOne: return "[0, 1]";
    case PixelRange::kPixels: return "[0, 255]";
  }
  return "?";
}

std::array<int8_t, 256> input_quantization_table(float scale, int32_t zero_point, PixelRange* range_out) {
  const double s = double(scale), z = double(zero_point);
  const double paper = 1.0 / 127.5;
  if (std::fabs(s - paper) <= 1e-4 * paper && zero_point == 0) {
    if (range_out) *range_out = PixelRange::kMinusOneToOne;
    return pixel_to_input_table();
  }
  char buf[256];
  if (!(s > 0) || !std::isfinite(s) || zero_point < -128 || zero_point > 127) {
    std::snprintf(buf, sizeof buf, "model input quantization (scale %.9g, zero point %d) is not supported",
                  double(scale), int(zero_point));
    throw CliError(buf);
  }
  // The tensor's representable real range, against each convention's.
  const double lo = s * (-128.0 - z), hi = s * (127.0 - z);
  struct Conv {
    PixelRange r;
    double lo, hi;
  };
  const Conv convs[] = {{PixelRange::kMinusOneToOne, -1.0, 1.0},
                        {PixelRange::kZeroToOne, 0.0, 1.0},
                        {PixelRange::kPixels, 0.0, 255.0}};
  for (const Conv& c : convs) {
    if (std::fabs(lo - c.lo) > 1.5 * s || std::fabs(hi - c.hi) > 1.5 * s) continue;
    std::array<int8_t, 256> t{};
    for (int p = 0; p < 256; ++p) {
      const double x = c.r == PixelRange::kMinusOneToOne ? double(p) / 127.5 - 1.0
                       : c.r == PixelRange::kZeroToOne   ? double(p) / 255.0
                                                         : double(p);
      const double v = std::nearbyint(x / s) + z;  // half to even (default rounding mode)
      t[size_t(p)] = static_cast<int8_t>(v < -128 ? -128 : v > 127 ? 127 : v);
    }
    if (range_out) *range_out = c.r;
    return t;
  }
  std::snprintf(buf, sizeof buf,
                "model input quantization (scale %.9g, zero point %d: real range [%.4g, %.4g]) is not supported: "
                "it matches none of the pixel ranges [-1, 1], [0, 1], [0, 255] (docs/data.md)",
                double(scale), int(zero_point), lo, hi);
  throw CliError(buf);
}

void resize_shorter_side(int in_h, int in_w, int r, int* out_h, int* out_w) {
  // torchvision's _compute_resized_output_size for an int size: the shorter
  // side becomes r, the longer int(r * long / short) (Python true division,
  // then truncation; exact in double for these magnitudes).
  const int shorter = std::min(in_h, in_w), longer = std::max(in_h, in_w);
  const int new_long = static_cast<int>(double(int64_t(r) * longer) / double(shorter));
  if (in_h <= in_w) {
    *out_h = r;
    *out_w = in_h == in_w ? r : new_long;
  } else {
    *out_w = r;
    *out_h = new_long;
  }
}

PlanarImage convert_channels(const ImageView& image, int channels) {
  const size_t plane = size_t(image.height) * size_t(image.width);
  PlanarImage out;
  out.channels = channels;
  out.height = image.height;
  out.width = image.width;
  const uint8_t* p = image.pixels;
  const int c_in = image.channels;
  if (c_in < 1 || c_in > 4) throw CliError("image with " + std::to_string(c_in) + " channels");
  if (channels == c_in || (channels == 3 && c_in == 4) || (channels == 1 && c_in == 2)) {
    out.pixels.assign(p, p + plane * size_t(channels));  // same planes, alpha (the last plane) dropped
  } else if (channels == 3) {  // gray (+ alpha) -> RGB: the gray plane three times
    out.pixels.resize(plane * 3);
    for (int c = 0; c < 3; ++c) std::copy(p, p + plane, out.pixels.begin() + long(size_t(c) * plane));
  } else if (channels == 1) {  // RGB(A) -> L, Pillow's ITU-R 601-2 luma in 16-bit fixed point
    out.pixels.resize(plane);
    for (size_t i = 0; i < plane; ++i)
      out.pixels[i] = uint8_t((19595u * p[i] + 38470u * p[plane + i] + 7471u * p[2 * plane + i] + 0x8000u) >> 16);
  } else {
    throw CliError("cannot convert images to " + std::to_string(channels) + " channels");
  }
  return out;
}

ImagePreprocessor::ImagePreprocessor(const TzmTensor& input) {
  int h = 0, w = 0, c = 0;
  if (input.rank == 3) {
    h = input.dims[0], w = input.dims[1], c = input.dims[2];
  } else if (input.rank == 4 && input.dims[0] == 1) {
    h = input.dims[1], w = input.dims[2], c = input.dims[3];
  }
  if (input.dtype != static_cast<uint8_t>(DType::kInt8))
    throw CliError("model input must be int8, got dtype " + std::to_string(input.dtype));
  if (h < 1 || w < 1 || h > 16384 || w > 16384 || (c != 1 && c != 3))
    throw CliError("model input has shape [" + std::to_string(input.dims[0]) + "," + std::to_string(input.dims[1]) +
                   "," + std::to_string(input.dims[2]) +
                   (input.rank == 4 ? "," + std::to_string(input.dims[3]) : std::string()) +
                   "], expected an image [H,W,C] with C = 1 or 3");
  height_ = h;
  width_ = w;
  channels_ = c;
  table_ = input_quantization_table(input.scale, input.zero_point, &range_);
}

void ImagePreprocessor::run(const ImageView& image, int8_t* out) const {
  if (image.height < 1 || image.width < 1 || image.height > 1 << 20 || image.width > 1 << 20)
    throw CliError("image of " + std::to_string(image.width) + "x" + std::to_string(image.height) + " pixels");
  const PlanarImage conv = convert_channels(image, channels_);
  const int r = default_resize_for_crop(std::max(height_, width_));
  int rh = 0, rw = 0;
  resize_shorter_side(image.height, image.width, r, &rh, &rw);
  const PillowAxis rows = pillow_axis(PillowFilter::kBilinear, image.height, rh, center_crop_offset(rh, height_), height_);
  const PillowAxis cols = pillow_axis(PillowFilter::kBilinear, image.width, rw, center_crop_offset(rw, width_), width_);
  uint8_t* u = reinterpret_cast<uint8_t*>(out);
  const size_t plane = size_t(image.height) * size_t(image.width);
  for (int c = 0; c < channels_; ++c)
    pillow_resample_plane(conv.pixels.data() + size_t(c) * plane, image.width, image.height, cols, rows, u + c,
                          size_t(channels_));
  const size_t n = output_elements();
  for (size_t i = 0; i < n; ++i) out[i] = table_[u[i]];
}

void ImagePreprocessor::quantize_rgb(const uint8_t* hwc, int8_t* out) const {
  const size_t n = size_t(height_) * size_t(width_);
  if (channels_ == 3) {
    for (size_t i = 0; i < n * 3; ++i) out[i] = table_[hwc[i]];
    return;
  }
  for (size_t i = 0; i < n; ++i)
    out[i] = table_[(19595u * hwc[3 * i] + 38470u * hwc[3 * i + 1] + 7471u * hwc[3 * i + 2] + 0x8000u) >> 16];
}

void InputPreprocessor::run(const uint8_t* planar, int8_t* out) const {
  // Resample into the output buffer as uint8 pixels, then map them in place.
  uint8_t* u = reinterpret_cast<uint8_t*>(out);
  const size_t plane = size_t(spec_.src) * size_t(spec_.src);
  for (int c = 0; c < 3; ++c)
    pillow_resample_plane(planar + size_t(c) * plane, spec_.src, spec_.src, axis_, axis_, u + c, 3);
  const std::array<int8_t, 256>& table = pixel_to_input_table();
  const size_t n = output_elements();
  for (size_t i = 0; i < n; ++i) out[i] = table[u[i]];
}

}  // namespace tinyzo
