// The noise family (gaussian, shot, impulse, speckle) and the blur family
// (gaussian, glass, defocus, motion, zoom). Noise draws go value by value in
// the CHW order of the image (R plane, then G, then B).
#include <algorithm>
#include <cmath>

#include "data/corrupt_internal.h"

namespace tinyzo::corrupt_detail {

void gaussian_noise(int severity, HostRng& rng, const uint8_t* in, uint8_t* out) {
  static constexpr double kC[] = {0.04, 0.06, 0.08, 0.09, 0.10};
  const double c = kC[severity - 1];
  for (int i = 0; i < kValues; ++i) out[i] = to_u8_trunc(in[i] / 255.0 + c * rng.normal());
}

void shot_noise(int severity, HostRng& rng, const uint8_t* in, uint8_t* out) {
  static constexpr double kC[] = {500, 250, 100, 75, 50};
  const double c = kC[severity - 1];
  for (int i = 0; i < kValues; ++i)
    out[i] = to_u8_trunc(static_cast<double>(rng.poisson(in[i] / 255.0 * c)) / c);
}

void impulse_noise(int severity, HostRng& rng, const uint8_t* in, uint8_t* out) {
  static constexpr double kC[] = {0.01, 0.02, 0.03, 0.05, 0.07};
  const double c = kC[severity - 1];
  // One uniform u per value: u < c/2 salt (1), c/2 <= u < c pepper (0), else
  // unchanged - the per-value Bernoulli(c) flip and fair salt/pepper coin of
  // skimage's random_noise('s&p'), from a single draw.
  for (int i = 0; i < kValues; ++i) {
    const double u = rng.uniform();
    if (u < 0.5 * c)
      out[i] = 255;
    else if (u < c)
      out[i] = 0;
    else
      out[i] = to_u8_trunc(in[i] / 255.0);
  }
}

void speckle_noise(int severity, HostRng& rng, const uint8_t* in, uint8_t* out) {
  static constexpr double kC[] = {0.06, 0.10, 0.12, 0.16, 0.20};
  const double c = kC[severity - 1];
  for (int i = 0; i < kValues; ++i) {
    const double x = in[i] / 255.0;
    out[i] = to_u8_trunc(x + x * (c * rng.normal()));  // numpy: normal(scale=c) is c * N(0, 1)
  }
}

void gaussian_blur(int severity, HostRng&, const uint8_t* in, uint8_t* out) {
  static constexpr double kSigma[] = {0.4, 0.6, 0.7, 0.8, 1.0};
  FImage x;
  to_float(in, x);
  for (int c = 0; c < 3; ++c) gaussian_filter(x.plane(c), kSigma[severity - 1], 4.0, Border::kNearest);
  to_u8_trunc(x, out);
}

void glass_blur(int severity, HostRng& rng, const uint8_t* in, uint8_t* out) {
  struct Params {
    double sigma;
    int max_delta;
    int iterations;
  };
  static constexpr Params kP[] = {{0.05, 1, 1}, {0.25, 1, 1}, {0.4, 1, 1}, {0.25, 1, 2}, {0.4, 1, 2}};
  const Params p = kP[severity - 1];
  FImage x;
  to_float(in, x);
  for (int c = 0; c < 3; ++c) gaussian_filter(x.plane(c), p.sigma, 4.0, Border::kNearest);
  uint8_t u8[kValues];
  to_u8_trunc(x, u8);
  // Locally shuffle pixels, scanning bottom-right to top-left. The original
  // writes `x[h, w], x[h', w'] = x[h', w'], x[h, w]` on a numpy array: the
  // right side holds views, so pixel (h', w') is copied into (h, w) and
  // (h', w') keeps its value - a copy, not a swap. We do what that code does
  // (CIFAR-10-C was made with it): each pixel takes the value of a neighbour
  // up to max_delta up/left, so nothing drifts further than that per pass.
  const int d = p.max_delta;
  for (int it = 0; it < p.iterations; ++it)
    for (int h = kSide - d; h > d; --h)
      for (int w = kSide - d; w > d; --w) {
        const int dx = static_cast<int>(rng.randint(-d, d));
        const int dy = static_cast<int>(rng.randint(-d, d));
        const int a = h * kSide + w, b = (h + dy) * kSide + (w + dx);
        for (int c = 0; c < 3; ++c) u8[c * kPixels + a] = u8[c * kPixels + b];
      }
  to_float(u8, x);
  for (int c = 0; c < 3; ++c) gaussian_filter(x.plane(c), p.sigma, 4.0, Border::kNearest);
  to_u8_trunc(x, out);
}

std::vector<double> defocus_kernel(double radius, double alias_blur, int& r) {
  // The aliased disk on the grid -8..8, normalized (float32 like the original).
  constexpr int kN = 17, kC = 8;
  float disk[kN * kN];
  float count = 0.0f;
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x) {
      const double yy = y - kC, xx = x - kC;
      disk[y * kN + x] = (xx * xx + yy * yy <= radius * radius) ? 1.0f : 0.0f;
      count += disk[y * kN + x];
    }
  for (float& v : disk) v /= count;
  // cv2.GaussianBlur(ksize=(3,3), sigmaX=alias_blur): separable, border reflect-101.
  double g[3];
  const double scale2 = -0.5 / (alias_blur * alias_blur);
  const double g0 = std::exp(scale2);
  g[0] = g0 / (1.0 + 2.0 * g0);
  g[1] = 1.0 / (1.0 + 2.0 * g0);
  g[2] = g[0];
  double tmp[kN * kN], k[kN * kN];
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x) {
      double acc = 0.0;
      for (int i = -1; i <= 1; ++i) acc += g[i + 1] * disk[y * kN + border_index(x + i, kN, Border::kReflect101)];
      tmp[y * kN + x] = acc;
    }
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x) {
      double acc = 0.0;
      for (int i = -1; i <= 1; ++i) acc += g[i + 1] * tmp[border_index(y + i, kN, Border::kReflect101) * kN + x];
      k[y * kN + x] = static_cast<float>(acc);  // the blurred kernel is float32
    }
  // Crop to the non-zero support (zero taps add nothing).
  r = 0;
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x)
      if (k[y * kN + x] != 0.0) r = std::max(r, std::max(std::abs(y - kC), std::abs(x - kC)));
  std::vector<double> out((2 * r + 1) * (2 * r + 1));
  for (int y = -r; y <= r; ++y)
    for (int x = -r; x <= r; ++x) out[(y + r) * (2 * r + 1) + (x + r)] = k[(y + kC) * kN + (x + kC)];
  return out;
}

void defocus_blur(int severity, HostRng&, const uint8_t* in, uint8_t* out) {
  static constexpr double kRadius[] = {0.3, 0.4, 0.5, 1.0, 1.5};
  static constexpr double kAlias[] = {0.4, 0.5, 0.6, 0.2, 0.1};
  int r = 0;
  const std::vector<double> kernel = defocus_kernel(kRadius[severity - 1], kAlias[severity - 1], r);
  FImage x, y;
  to_float(in, x);
  for (int c = 0; c < 3; ++c) filter2d(x.plane(c), kernel, r, r, Border::kReflect101, y.plane(c));
  to_u8_trunc(y, out);
}

void motion_blur(int severity, HostRng& rng, const uint8_t* in, uint8_t* out) {
  static constexpr double kRadius[] = {6, 6, 6, 8, 9};
  static constexpr double kSigma[] = {1, 1.5, 2, 2, 2.5};
  const double angle = rng.uniform(-45.0, 45.0);
  uint8_t tmp[kValues];
  motion_blur_u8(in, 3, kRadius[severity - 1], kSigma[severity - 1], angle, tmp);
  std::copy(tmp, tmp + kValues, out);
}

std::vector<double> zoom_factors(int severity) {
  // len(np.arange(1, e, 0.01)) for e = 1.06, 1.11, 1.16, 1.21, 1.26. numpy
  // sizes an arange as ceil((stop - start) / step) in floating point, which
  // gives 7 and 12 (not 6 and 11) for the first two: 1.06 and 1.11 are
  // included. CIFAR-10-C was made with these factors, so we keep them.
  static constexpr int kCount[] = {7, 12, 16, 21, 26};
  // numpy's arange fills start + i * delta with delta = (start + step) - start.
  const double delta = (1.0 + 0.01) - 1.0;
  std::vector<double> z(kCount[severity - 1]);
  for (size_t i = 0; i < z.size(); ++i) z[i] = 1.0 + double(i) * delta;
  return z;
}

void zoom_blur(int severity, HostRng&, const uint8_t* in, uint8_t* out) {
  const std::vector<double> factors = zoom_factors(severity);
  FImage x, acc;
  to_float(in, x);
  std::copy(x.v, x.v + kValues, acc.v);
  double zoomed[kPixels];
  for (const double z : factors)
    for (int c = 0; c < 3; ++c) {
      clipped_zoom(x.plane(c), z, zoomed);
      double* a = acc.plane(c);
      for (int i = 0; i < kPixels; ++i) a[i] += zoomed[i];
    }
  const double n = double(factors.size() + 1);
  for (double& v : acc.v) v /= n;
  to_u8_trunc(acc, out);
}

}  // namespace tinyzo::corrupt_detail
