// The weather family: snow, frost, fog, spatter.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "data/corrupt_internal.h"

namespace tinyzo::corrupt_detail {

void snow(int severity, HostRng& rng, const uint8_t* in, uint8_t* out) {
  struct Params {
    double loc, scale, zoom, threshold, blur_radius, blur_sigma, blend;
  };
  static constexpr Params kP[] = {{0.1, 0.2, 1, 0.6, 8, 3, 0.95},
                                  {0.1, 0.2, 1, 0.5, 10, 4, 0.9},
                                  {0.15, 0.3, 1.75, 0.55, 10, 4, 0.9},
                                  {0.25, 0.3, 2.25, 0.6, 12, 6, 0.85},
                                  {0.3, 0.3, 1.25, 0.65, 14, 12, 0.8}};
  const Params p = kP[severity - 1];
  double layer[kPixels], zoomed[kPixels];
  for (double& v : layer) v = rng.normal(p.loc, p.scale);
  clipped_zoom(layer, p.zoom, zoomed);
  uint8_t snow_u8[kPixels], blurred[kPixels];
  for (int i = 0; i < kPixels; ++i) snow_u8[i] = to_u8_trunc(zoomed[i] < p.threshold ? 0.0 : zoomed[i]);
  const double angle = rng.uniform(-135.0, -45.0);
  motion_blur_u8(snow_u8, 1, p.blur_radius, p.blur_sigma, angle, blurred);

  FImage x;
  to_float(in, x);
  double* r = x.plane(0);
  double* g = x.plane(1);
  double* b = x.plane(2);
  for (int i = 0; i < kPixels; ++i) {
    const double bright = (0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i]) * 1.5 + 0.5;
    const double s = blurred[i] / 255.0 + blurred[kPixels - 1 - i] / 255.0;  // + rot180
    for (int c = 0; c < 3; ++c) {
      double& v = x.v[c * kPixels + i];
      v = p.blend * v + (1.0 - p.blend) * std::max(v, bright);
      v += s;
    }
  }
  to_u8_trunc(x, out);
}

void frost(int severity, HostRng& rng, const FrostSet& frost_set, const uint8_t* in, uint8_t* out) {
  static constexpr double kA[] = {1, 1, 0.9, 0.85, 0.75};
  static constexpr double kB[] = {0.2, 0.3, 0.4, 0.4, 0.45};
  const double a = kA[severity - 1], b = kB[severity - 1];
  const int idx = static_cast<int>(rng.randint(0, 5));
  const Image8& f = frost_set.images.at(idx);
  const int y0 = static_cast<int>(rng.randint(0, f.height - kSide));
  const int x0 = static_cast<int>(rng.randint(0, f.width - kSide));
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x) {
        const int i = c * kPixels + y * kSide + x;
        const double v = a * in[i] + b * f.at(y0 + y, x0 + x, c);
        out[i] = static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));  // truncation, pixel scale
      }
}

void plasma_fractal(double wibble_decay, HostRng& rng, double* map) {
  // Diamond-square on a 32x32 torus. Every cell is written before it is read.
  constexpr int n = kSide;
  auto at = [&](int y, int x) -> double& { return map[(y & (n - 1)) * n + (x & (n - 1))]; };
  std::fill(map, map + kPixels, 0.0);
  double wibble = 100.0;
  for (int step = n; step >= 2; step /= 2) {
    const int half = step / 2;
    auto wibbled_mean = [&](double sum) { return sum / 4.0 + wibble * rng.uniform(-wibble, wibble); };
    // Squares: centres from their four corners.
    for (int y = 0; y < n; y += step)
      for (int x = 0; x < n; x += step)
        at(y + half, x + half) =
            wibbled_mean(at(y, x) + at(y + step, x) + at(y, x + step) + at(y + step, x + step));
    // Diamonds: first the midpoints of the horizontal edges (row y, column
    // x + half), then those of the vertical edges (row y + half, column x),
    // each from its four neighbours.
    for (int y = 0; y < n; y += step)
      for (int x = 0; x < n; x += step)
        at(y, x + half) =
            wibbled_mean(at(y + half, x + half) + at(y - half, x + half) + at(y, x) + at(y, x + step));
    for (int y = 0; y < n; y += step)
      for (int x = 0; x < n; x += step)
        at(y + half, x) =
            wibbled_mean(at(y + half, x + half) + at(y + half, x - half) + at(y, x) + at(y + step, x));
    wibble /= wibble_decay;
  }
  const double lo = *std::min_element(map, map + kPixels);
  for (int i = 0; i < kPixels; ++i) map[i] -= lo;
  const double hi = *std::max_element(map, map + kPixels);
  if (hi > 0.0)
    for (int i = 0; i < kPixels; ++i) map[i] /= hi;
}

void fog(int severity, HostRng& rng, const uint8_t* in, uint8_t* out) {
  static constexpr double kStrength[] = {0.2, 0.5, 0.75, 1.0, 1.5};
  static constexpr double kDecay[] = {3.0, 3.0, 2.5, 2.0, 1.75};
  const double strength = kStrength[severity - 1];
  double map[kPixels];
  plasma_fractal(kDecay[severity - 1], rng, map);
  FImage x;
  to_float(in, x);
  const double max_val = *std::max_element(x.v, x.v + kValues);
  const double scale = max_val / (max_val + strength);
  for (int c = 0; c < 3; ++c) {
    double* p = x.plane(c);
    for (int i = 0; i < kPixels; ++i) p[i] = (p[i] + strength * map[i]) * scale;
  }
  to_u8_trunc(x, out);
}

// Canny edges of a 32x32 uint8 map the way OpenCV's cv2.Canny(img, low, high)
// finds them: 3x3 Sobel (replicated border), L1 magnitude |gx| + |gy|,
// non-maximum suppression along the gradient quantized to 4 directions,
// strong > high, weak > low kept when 8-connected to a strong pixel.
// Returns 255 on edges, 0 elsewhere.
void canny(const uint8_t* img, int low, int high, uint8_t* edges) {
  int gx[kPixels], gy[kPixels], mag[kPixels];
  auto px = [&](int y, int x) {
    return int(img[border_index(y, kSide, Border::kNearest) * kSide + border_index(x, kSide, Border::kNearest)]);
  };
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      const int i = y * kSide + x;
      gx[i] = (px(y - 1, x + 1) + 2 * px(y, x + 1) + px(y + 1, x + 1)) -
              (px(y - 1, x - 1) + 2 * px(y, x - 1) + px(y + 1, x - 1));
      gy[i] = (px(y + 1, x - 1) + 2 * px(y + 1, x) + px(y + 1, x + 1)) -
              (px(y - 1, x - 1) + 2 * px(y - 1, x) + px(y - 1, x + 1));
      mag[i] = std::abs(gx[i]) + std::abs(gy[i]);
    }
  auto m = [&](int y, int x) { return (y < 0 || y >= kSide || x < 0 || x >= kSide) ? 0 : mag[y * kSide + x]; };
  // 0: not an edge, 1: weak candidate, 2: strong edge.
  uint8_t state[kPixels] = {};
  constexpr int kTan22 = 13573;  // tan(22.5 deg) * 2^15, as in OpenCV
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      const int i = y * kSide + x;
      const int v = mag[i];
      if (v <= low) continue;
      const int64_t ax = std::abs(gx[i]);
      const int64_t ay = int64_t(std::abs(gy[i])) << 15;
      const int64_t tg22x = ax * kTan22;
      bool is_max;
      if (ay < tg22x) {
        is_max = v > m(y, x - 1) && v >= m(y, x + 1);
      } else if (ay > tg22x + (ax << 16)) {
        is_max = v > m(y - 1, x) && v >= m(y + 1, x);
      } else {
        const int s = ((gx[i] ^ gy[i]) < 0) ? -1 : 1;
        is_max = v > m(y - 1, x - s) && v > m(y + 1, x + s);
      }
      if (is_max) state[i] = v > high ? 2 : 1;
    }
  std::vector<int> stack;
  for (int i = 0; i < kPixels; ++i)
    if (state[i] == 2) stack.push_back(i);
  while (!stack.empty()) {
    const int i = stack.back();
    stack.pop_back();
    const int y = i / kSide, x = i % kSide;
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) {
        const int yy = y + dy, xx = x + dx;
        if (yy < 0 || yy >= kSide || xx < 0 || xx >= kSide) continue;
        const int j = yy * kSide + xx;
        if (state[j] == 1) {
          state[j] = 2;
          stack.push_back(j);
        }
      }
  }
  for (int i = 0; i < kPixels; ++i) edges[i] = state[i] == 2 ? 255 : 0;
}

// cv2.distanceTransform(src, DIST_L2, 5): distance of every non-zero pixel to
// the nearest zero pixel with OpenCV's 5x5 chamfer weights (1, 1.4, 2.1969),
// in OpenCV's 16.16 fixed point, two raster passes, returned as float32
// values. No zero pixel at all: every distance is "far" (> 20).
void distance_transform(const uint8_t* src, double* dist) {
  constexpr int64_t kA = 65536, kB = 91750, kC = 143976;  // round(w * 2^16)
  constexpr int64_t kFar = int64_t(1) << 40;
  int64_t d[kPixels];
  for (int i = 0; i < kPixels; ++i) d[i] = src[i] == 0 ? 0 : kFar;
  struct Step {
    int dy, dx;
    int64_t w;
  };
  static constexpr Step kForward[] = {{-2, -1, kC}, {-2, 1, kC}, {-1, -2, kC}, {-1, -1, kB},
                                      {-1, 0, kA},  {-1, 1, kB}, {-1, 2, kC},  {0, -1, kA}};
  auto relax = [&](int y, int x, int sign) {
    int64_t& v = d[y * kSide + x];
    for (const Step& s : kForward) {
      const int yy = y + sign * s.dy, xx = x + sign * s.dx;
      if (yy < 0 || yy >= kSide || xx < 0 || xx >= kSide) continue;
      v = std::min(v, d[yy * kSide + xx] + s.w);
    }
  };
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) relax(y, x, 1);
  for (int y = kSide - 1; y >= 0; --y)
    for (int x = kSide - 1; x >= 0; --x) relax(y, x, -1);
  for (int i = 0; i < kPixels; ++i) dist[i] = static_cast<float>(double(d[i]) * (1.0 / 65536.0));
}

namespace {

// cv2.blur(img, (3, 3)): 3x3 mean, border reflect-101, as OpenCV computes
// it: the sum of the 9 values in double, times 1/9. The caller rounds to the
// output type (float32, or uint8 with rounding).
void box3(const double* in, double* out) {
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      double sum = 0.0;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx)
          sum += in[border_index(y + dy, kSide, Border::kReflect101) * kSide +
                    border_index(x + dx, kSide, Border::kReflect101)];
      out[y * kSide + x] = sum * (1.0 / 9.0);
    }
}

}  // namespace

// cv2.equalizeHist on a 32x32 uint8 map.
void equalize_hist(uint8_t* img) {
  int hist[256] = {};
  for (int i = 0; i < kPixels; ++i) ++hist[img[i]];
  int first = 0;
  while (hist[first] == 0) ++first;
  if (hist[first] == kPixels) return;  // constant image: unchanged
  const float scale = 255.0f / float(kPixels - hist[first]);
  uint8_t lut[256] = {};
  int sum = 0;
  for (int i = first + 1; i < 256; ++i) {
    sum += hist[i];
    lut[i] = static_cast<uint8_t>(std::clamp(std::nearbyint(float(sum) * scale), 0.0f, 255.0f));
  }
  for (int i = 0; i < kPixels; ++i) img[i] = lut[img[i]];
}

void spatter_water_weight(const double* liquid, double* m) {
  uint8_t liquid_u8[kPixels], edges[kPixels], notedge[kPixels];
  // (liquid * 255).astype(np.uint8) without a clip: values above 1 (likely at
  // severity 3, scale 0.3) wrap modulo 256, as numpy's cast does on x86.
  for (int i = 0; i < kPixels; ++i)
    liquid_u8[i] = static_cast<uint8_t>(static_cast<uint64_t>(static_cast<int64_t>(liquid[i] * 255.0)));
  canny(liquid_u8, 50, 150, edges);
  for (int i = 0; i < kPixels; ++i) notedge[i] = 255 - edges[i];
  double dist[kPixels], tmp[kPixels];
  distance_transform(notedge, dist);
  for (double& d : dist) d = std::min(d, 20.0);
  box3(dist, tmp);
  uint8_t d8[kPixels];
  // The blur of a float32 map is float32; astype(uint8) truncates.
  for (int i = 0; i < kPixels; ++i) d8[i] = static_cast<uint8_t>(static_cast<float>(tmp[i]));
  equalize_hist(d8);
  static const std::vector<double> kEmboss = {-2, -1, 0, -1, 1, 1, 0, 1, 2};
  for (int i = 0; i < kPixels; ++i) tmp[i] = d8[i];
  filter2d(tmp, kEmboss, 1, 1, Border::kReflect101, dist);
  for (int i = 0; i < kPixels; ++i) tmp[i] = std::clamp(std::nearbyint(dist[i]), 0.0, 255.0);  // CV_8U
  box3(tmp, dist);
  for (int i = 0; i < kPixels; ++i) m[i] = liquid_u8[i] * std::nearbyint(dist[i]);  // cv2.blur on uint8 rounds
}

void spatter(int severity, HostRng& rng, const uint8_t* in, uint8_t* out) {
  struct Params {
    double loc, scale, sigma, threshold, intensity;
    int mode;
  };
  static constexpr Params kP[] = {{0.62, 0.1, 0.7, 0.7, 0.5, 0},
                                  {0.65, 0.1, 0.8, 0.7, 0.5, 0},
                                  {0.65, 0.3, 1, 0.69, 0.5, 0},
                                  {0.65, 0.1, 0.7, 0.69, 0.6, 1},
                                  {0.65, 0.1, 0.5, 0.68, 0.6, 1}};
  const Params p = kP[severity - 1];
  double liquid[kPixels];
  for (double& v : liquid) v = rng.normal(p.loc, p.scale);
  gaussian_filter(liquid, p.sigma, 4.0, Border::kNearest);
  for (double& v : liquid)
    if (v < p.threshold) v = 0.0;

  FImage x;
  to_float(in, x);
  if (p.mode == 0) {
    // Water: a turquoise sheen that is strongest inside the drops, away from
    // their edges.
    double m[kPixels];
    spatter_water_weight(liquid, m);
    const double m_max = *std::max_element(m, m + kPixels);
    // The original divides by the max unguarded (0/0 would turn the image to
    // NaN); with no liquid there is nothing to add.
    if (m_max > 0.0) {
      static constexpr double kColor[] = {175 / 255.0, 238 / 255.0, 238 / 255.0};
      for (int c = 0; c < 3; ++c) {
        double* xp = x.plane(c);
        for (int i = 0; i < kPixels; ++i) xp[i] += m[i] / m_max * p.intensity * kColor[c];
      }
    }
  } else {
    // Mud: brown blots where the liquid is, smoothed and hard-edged at 0.8.
    double m[kPixels];
    for (int i = 0; i < kPixels; ++i) m[i] = liquid[i] > p.threshold ? 1.0 : 0.0;
    gaussian_filter(m, p.intensity, 4.0, Border::kNearest);
    for (double& v : m)
      if (v < 0.8) v = 0.0;
    static constexpr double kColor[] = {63 / 255.0, 42 / 255.0, 20 / 255.0};
    for (int c = 0; c < 3; ++c) {
      double* xp = x.plane(c);
      for (int i = 0; i < kPixels; ++i) xp[i] = xp[i] * (1.0 - m[i]) + m[i] * kColor[c];
    }
  }
  to_u8_trunc(x, out);
}

}  // namespace tinyzo::corrupt_detail
