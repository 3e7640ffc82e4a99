#include "data/preprocess.h"

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
