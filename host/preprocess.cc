#include "preprocess.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "errors.h"

namespace tinyzo {

std::vector<ResizeTap> resize_taps(int src, int dst, int first, int count) {
  if (src < 1 || dst < 1 || first < 0 || count < 0 || first + count > dst)
    throw CliError("bad resize geometry " + std::to_string(src) + " -> " + std::to_string(dst));
  // Source coordinate of output i (align_corners=False): (i + 0.5) * src/dst - 0.5
  // = ((2i+1)*src - dst) / (2*dst), kept as an exact fraction over 2*dst.
  const int64_t den = 2 * int64_t(dst);
  std::vector<ResizeTap> taps(count);
  for (int k = 0; k < count; ++k) {
    const int64_t i = first + k;
    int64_t s = (2 * i + 1) * src - dst;
    if (s < 0) s = 0;  // left of the first pixel centre: clamp to it
    const int64_t x0 = s / den;
    ResizeTap& t = taps[k];
    if (x0 >= src - 1) {
      t.x0 = t.x1 = src - 1;
      t.w0 = static_cast<int>(den);
      t.w1 = 0;
    } else {
      const int64_t rem = s - den * x0;
      t.x0 = static_cast<int>(x0);
      t.x1 = static_cast<int>(x0 + 1);
      t.w0 = static_cast<int>(den - rem);
      t.w1 = static_cast<int>(rem);
    }
  }
  return taps;
}

int center_crop_offset(int resized, int crop) {
  const int diff = resized - crop;
  // round(diff / 2) with ties to even: only odd diffs tie (k + 0.5).
  const int k = diff / 2;
  if (diff % 2 == 0) return k;
  return (k % 2 == 0) ? k : k + 1;
}

int default_resize_for_crop(int crop) {
  if (crop == 128) return 147;
  return static_cast<int>((int64_t(crop) * 147 + 64) / 128);
}

namespace {

void check_spec(const ResizeCropSpec& spec) {
  if (spec.src < 1 || spec.resize < 1 || spec.crop < 1 || spec.crop > spec.resize)
    throw CliError("bad resize/crop geometry: " + std::to_string(spec.src) + " -> " + std::to_string(spec.resize) +
                   " -> crop " + std::to_string(spec.crop));
  // The numerator sum is at most 255 * (2*resize)^2; keep it well inside int64.
  if (spec.resize > 100000) throw CliError("resize size too large: " + std::to_string(spec.resize));
}

void apply(const uint8_t* planar, int channels, int src, const std::vector<ResizeTap>& taps, int64_t denom,
           uint8_t* hwc) {
  const int n = static_cast<int>(taps.size());
  const size_t plane = size_t(src) * src;
  for (int oy = 0; oy < n; ++oy) {
    const ResizeTap& ty = taps[oy];
    for (int ox = 0; ox < n; ++ox) {
      const ResizeTap& tx = taps[ox];
      for (int c = 0; c < channels; ++c) {
        const uint8_t* p = planar + c * plane;
        const uint8_t* r0 = p + size_t(ty.x0) * src;
        const uint8_t* r1 = p + size_t(ty.x1) * src;
        const int64_t num = int64_t(ty.w0) * (int64_t(tx.w0) * r0[tx.x0] + int64_t(tx.w1) * r0[tx.x1]) +
                            int64_t(ty.w1) * (int64_t(tx.w0) * r1[tx.x0] + int64_t(tx.w1) * r1[tx.x1]);
        // num >= 0, so integer division of num + D/2 is round-half-up.
        hwc[(size_t(oy) * n + ox) * channels + c] = static_cast<uint8_t>((num + denom / 2) / denom);
      }
    }
  }
}

}  // namespace

void resize_center_crop_u8(const uint8_t* planar, int channels, const ResizeCropSpec& spec, uint8_t* hwc) {
  check_spec(spec);
  const int off = center_crop_offset(spec.resize, spec.crop);
  const std::vector<ResizeTap> taps = resize_taps(spec.src, spec.resize, off, spec.crop);
  const int64_t den = 2 * int64_t(spec.resize);
  apply(planar, channels, spec.src, taps, den * den, hwc);
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
  // The paper's input quantization (METHOD §6, docs/semantics.md): s = 1/127.5
  // stored as binary32, z = 0, and pixel p maps to q = p - 128. Other input
  // quantizations would need a documented rounding rule first.
  const double want = 1.0 / 127.5;
  if (!(std::fabs(double(input.scale) - want) <= 1e-4 * want) || input.zero_point != 0) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "model input quantization (scale %.9g, zero point %d) is not supported: only scale 1/127.5, "
                  "zero point 0 (q = p - 128)",
                  double(input.scale), int(input.zero_point));
    throw CliError(buf);
  }
  spec_.src = src_side;
  spec_.crop = h;
  spec_.resize = resize > 0 ? resize : default_resize_for_crop(h);
  check_spec(spec_);
  taps_ = resize_taps(spec_.src, spec_.resize, center_crop_offset(spec_.resize, spec_.crop), spec_.crop);
  const int64_t den = 2 * int64_t(spec_.resize);
  denom_ = den * den;
}

void InputPreprocessor::run(const uint8_t* planar, int8_t* out) const {
  // Resize into the output buffer as uint8, then shift in place: q = p - 128.
  uint8_t* u = reinterpret_cast<uint8_t*>(out);
  apply(planar, 3, spec_.src, taps_, denom_, u);
  const size_t n = output_elements();
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(int(u[i]) - 128);
}

}  // namespace tinyzo
