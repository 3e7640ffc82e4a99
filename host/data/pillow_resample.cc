#include "data/pillow_resample.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "util/errors.h"

namespace tinyzo {

namespace {

double filter_support(PillowFilter f) { return f == PillowFilter::kBox ? 0.5 : 1.0; }

double filter_value(PillowFilter f, double x) {
  if (f == PillowFilter::kBox) return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0;
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPillowPrecisionBits;  // arithmetic shift, as Pillow's int
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace

PillowAxis pillow_axis(PillowFilter filter, int in_size, int out_size, int first, int count) {
  // Pillow holds the source box in float: sizes up to 2^24 are exact.
  constexpr int kMaxSize = 1 << 24;
  if (in_size < 1 || out_size < 1 || in_size > kMaxSize || out_size > kMaxSize || first < 0 || count < 0 ||
      count > out_size - first)
    throw CliError("bad resample geometry " + std::to_string(in_size) + " -> " + std::to_string(out_size) +
                   " (outputs " + std::to_string(first) + " + " + std::to_string(count) + ")");
  PillowAxis a;
  a.start.resize(size_t(count));
  a.taps.resize(size_t(count));
  if (in_size == out_size) {  // Pillow skips this pass
    a.max_taps = 1;
    a.weights.assign(size_t(count), int32_t(1) << kPillowPrecisionBits);
    for (int k = 0; k < count; ++k) a.start[size_t(k)] = first + k, a.taps[size_t(k)] = 1;
    return a;
  }
  const double scale = double(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = filter_support(filter) * filterscale;
  const double ss = 1.0 / filterscale;
  a.max_taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  a.weights.assign(size_t(count) * size_t(a.max_taps), 0);
  std::vector<double> k(size_t(a.max_taps));
  for (int o = 0; o < count; ++o) {
    const double center = (first + o + 0.5) * scale;
    // (int) truncates toward zero, as in C; a negative xmin is then clamped.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[size_t(x)] = filter_value(filter, (double(x + xmin) - center + 0.5) * ss);
      ww += k[size_t(x)];
    }
    int32_t* w = &a.weights[size_t(o) * size_t(a.max_taps)];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[size_t(x)] / ww : k[size_t(x)];
      // 2^22 is a power of two: the product is exact, the +-0.5 and the
      // truncation round half away from zero.
      const double fixed = v * double(int32_t(1) << kPillowPrecisionBits);
      w[x] = static_cast<int32_t>(v < 0.0 ? -0.5 + fixed : 0.5 + fixed);
    }
    a.start[size_t(o)] = xmin;
    a.taps[size_t(o)] = xmax;
  }
  return a;
}

void pillow_resample_plane(const uint8_t* in, int in_w, int in_h, const PillowAxis& cols, const PillowAxis& rows,
                           uint8_t* out, size_t out_pixel_stride) {
  const int out_w = cols.count(), out_h = rows.count();
  if (out_w == 0 || out_h == 0) return;
  // Only the source rows the vertical pass reads go through the horizontal one.
  int y_first = in_h, y_end = 0;
  for (int y = 0; y < out_h; ++y) {
    y_first = std::min(y_first, rows.start[size_t(y)]);
    y_end = std::max(y_end, rows.start[size_t(y)] + rows.taps[size_t(y)]);
  }
  // The sums fit Pillow's int: at most 255 * (2^22 + taps / 2) + 2^21 < 2^31
  // for the non-negative BOX and BILINEAR weights.
  const int32_t half = int32_t(1) << (kPillowPrecisionBits - 1);
  std::vector<uint8_t> tmp(size_t(std::max(y_end - y_first, 0)) * size_t(out_w));
  for (int y = y_first; y < y_end; ++y) {
    const uint8_t* src = in + size_t(y) * size_t(in_w);
    uint8_t* dst = &tmp[size_t(y - y_first) * size_t(out_w)];
    for (int x = 0; x < out_w; ++x) {
      const uint8_t* p = src + cols.start[size_t(x)];
      int32_t acc = half;
      for (int j = 0; j < cols.taps[size_t(x)]; ++j) acc += int32_t(p[j]) * cols.weight(x, j);
      dst[x] = clip8(acc);
    }
  }
  for (int y = 0; y < out_h; ++y) {
    const uint8_t* base = &tmp[size_t(rows.start[size_t(y)] - y_first) * size_t(out_w)];
    for (int x = 0; x < out_w; ++x) {
      int32_t acc = half;
      for (int j = 0; j < rows.taps[size_t(y)]; ++j)
        acc += int32_t(base[size_t(j) * size_t(out_w) + size_t(x)]) * rows.weight(y, j);
      out[(size_t(y) * size_t(out_w) + size_t(x)) * out_pixel_stride] = clip8(acc);
    }
  }
}

std::vector<uint8_t> pillow_resize_plane(const uint8_t* in, int in_w, int in_h, int out_w, int out_h,
                                         PillowFilter filter) {
  const PillowAxis cols = pillow_axis(filter, in_w, out_w);
  const PillowAxis rows = pillow_axis(filter, in_h, out_h);
  std::vector<uint8_t> out(size_t(out_w) * size_t(out_h));
  pillow_resample_plane(in, in_w, in_h, cols, rows, out.data());
  return out;
}

}  // namespace tinyzo
