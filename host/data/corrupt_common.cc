// Image helpers shared by the corruptions: the library routines of the
// original generator (scipy.ndimage, OpenCV, ImageMagick, skimage), reduced to
// what 32x32 images need.
#include <algorithm>
#include <cmath>

#include "data/corrupt_internal.h"

namespace tinyzo::corrupt_detail {

void to_float(const uint8_t* in, FImage& x) {
  for (int i = 0; i < kValues; ++i) x.v[i] = in[i] / 255.0;
}

void to_u8_trunc(const FImage& x, uint8_t* out) {
  for (int i = 0; i < kValues; ++i) out[i] = to_u8_trunc(x.v[i]);
}

int border_index(int i, int n, Border border) {
  if (i >= 0 && i < n) return i;
  switch (border) {
    case Border::kNearest:
      return i < 0 ? 0 : n - 1;
    case Border::kReflect: {
      const int period = 2 * n;
      int m = i % period;
      if (m < 0) m += period;
      return m < n ? m : period - 1 - m;
    }
    case Border::kReflect101: {
      if (n == 1) return 0;
      const int period = 2 * n - 2;
      int m = i % period;
      if (m < 0) m += period;
      return m < n ? m : period - m;
    }
  }
  return 0;
}

void gaussian_filter(double* plane, double sigma, double truncate, Border border) {
  if (sigma <= 1e-15) return;
  const int r = static_cast<int>(truncate * sigma + 0.5);
  std::vector<double> w(2 * r + 1);
  double sum = 0.0;
  for (int k = -r; k <= r; ++k) {
    w[k + r] = std::exp(-0.5 / (sigma * sigma) * double(k) * double(k));
    sum += w[k + r];
  }
  for (double& v : w) v /= sum;
  double tmp[kPixels];
  // Axis 0 (down the columns).
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      double acc = 0.0;
      for (int k = -r; k <= r; ++k) acc += w[k + r] * plane[border_index(y + k, kSide, border) * kSide + x];
      tmp[y * kSide + x] = acc;
    }
  // Axis 1 (along the rows).
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      double acc = 0.0;
      for (int k = -r; k <= r; ++k) acc += w[k + r] * tmp[y * kSide + border_index(x + k, kSide, border)];
      plane[y * kSide + x] = acc;
    }
}

void filter2d(const double* in, const std::vector<double>& kernel, int ry, int rx, Border border, double* out) {
  const int kw = 2 * rx + 1;
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      double acc = 0.0;
      for (int dy = -ry; dy <= ry; ++dy) {
        const double* row = in + border_index(y + dy, kSide, border) * kSide;
        const double* krow = kernel.data() + (dy + ry) * kw + rx;
        for (int dx = -rx; dx <= rx; ++dx) acc += krow[dx] * row[border_index(x + dx, kSide, border)];
      }
      out[y * kSide + x] = acc;
    }
}

void clipped_zoom(const double* in, double z, double* out) {
  const int ch = static_cast<int>(std::ceil(kSide / z));
  const int top = (kSide - ch) / 2;
  // Python's round() of the output size: half to even (nearbyint in the
  // default rounding mode).
  const int n = static_cast<int>(std::nearbyint(ch * z));
  const int trim = (n - kSide) / 2;
  const double scale = n > 1 ? double(ch - 1) / double(n - 1) : 0.0;
  int i0[kSide], i1[kSide];
  double f[kSide];
  for (int o = 0; o < kSide; ++o) {
    const double c = (o + trim) * scale;
    int lo = static_cast<int>(std::floor(c));
    double frac = c - lo;
    if (lo >= ch - 1) {
      lo = ch - 1;
      frac = 0.0;
    }
    i0[o] = top + lo;
    i1[o] = top + std::min(lo + 1, ch - 1);
    f[o] = frac;
  }
  for (int y = 0; y < kSide; ++y) {
    const double* r0 = in + i0[y] * kSide;
    const double* r1 = in + i1[y] * kSide;
    for (int x = 0; x < kSide; ++x) {
      const double a = (1.0 - f[x]) * r0[i0[x]] + f[x] * r0[i1[x]];
      const double b = (1.0 - f[x]) * r1[i0[x]] + f[x] * r1[i1[x]];
      out[y * kSide + x] = (1.0 - f[y]) * a + f[y] * b;
    }
  }
}

void motion_blur_u8(const uint8_t* in, int channels, double radius, double sigma, double angle_deg,
                    uint8_t* out) {
  const int width = 2 * static_cast<int>(std::ceil(radius)) + 1;
  std::vector<double> weight(width);
  double norm = 0.0;
  for (int i = 0; i < width; ++i) {
    weight[i] = std::exp(-(double(i) * i) / (2.0 * sigma * sigma));
    norm += weight[i];
  }
  for (double& w : weight) w /= norm;
  // ImageMagick: point = width * (sin a, cos a); offset i = ceil(i * point / |point| - 0.5).
  const double a = kPi * angle_deg / 180.0;
  const double px = width * std::sin(a), py = width * std::cos(a);
  const double len = std::hypot(px, py);
  std::vector<int> ox(width), oy(width);
  for (int i = 0; i < width; ++i) {
    ox[i] = static_cast<int>(std::ceil(i * py / len - 0.5));
    oy[i] = static_cast<int>(std::ceil(i * px / len - 0.5));
  }
  for (int c = 0; c < channels; ++c) {
    const uint8_t* src = in + c * kPixels;
    uint8_t* dst = out + c * kPixels;
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x) {
        double acc = 0.0;
        for (int i = 0; i < width; ++i) {
          const int sy = std::clamp(y + oy[i], 0, kSide - 1);
          const int sx = std::clamp(x + ox[i], 0, kSide - 1);
          acc += weight[i] * src[sy * kSide + sx];
        }
        // ImageMagick (Q16) keeps a 16-bit quantum, rounded, and its PNG
        // writer drops it to 8 bits by truncation: floor(round(257 v) / 257).
        const double q16 = std::clamp(std::floor(acc * 257.0 + 0.5), 0.0, 65535.0);
        dst[y * kSide + x] = static_cast<uint8_t>(static_cast<int>(q16) / 257);
      }
  }
}

void rgb_to_hsv(double r, double g, double b, double& h, double& s, double& v) {
  v = std::max(r, std::max(g, b));
  const double delta = v - std::min(r, std::min(g, b));
  if (delta == 0.0) {
    h = 0.0;
    s = 0.0;
    return;
  }
  s = delta / v;
  // skimage assigns red, then green, then blue: the last channel equal to the
  // max wins a tie.
  double h6;
  if (b == v)
    h6 = 4.0 + (r - g) / delta;
  else if (g == v)
    h6 = 2.0 + (b - r) / delta;
  else
    h6 = (g - b) / delta;
  // Python's % (result has the sign of the divisor).
  h = std::fmod(h6 / 6.0, 1.0);
  if (h < 0.0) h += 1.0;
  if (h >= 1.0) h = 0.0;
}

void hsv_to_rgb(double h, double s, double v, double& r, double& g, double& b) {
  const double hi_f = std::floor(h * 6.0);
  const double f = h * 6.0 - hi_f;
  const double p = v * (1.0 - s);
  const double q = v * (1.0 - f * s);
  const double t = v * (1.0 - (1.0 - f) * s);
  int hi = static_cast<int>(hi_f) % 6;
  if (hi < 0) hi += 6;
  switch (hi) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
}

}  // namespace tinyzo::corrupt_detail
