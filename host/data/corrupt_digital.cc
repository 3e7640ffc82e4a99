// The digital family: brightness, contrast, saturate, jpeg_compression,
// pixelate, elastic_transform.
#include <algorithm>
#include <cmath>

#include "data/corrupt_internal.h"
#include "util/errors.h"
#include "data/image_io.h"
#include "data/pillow_resample.h"

namespace tinyzo::corrupt_detail {

namespace {

// Applies f(h, s, v) in skimage's HSV space to every pixel.
template <typename F>
void in_hsv(const uint8_t* in, uint8_t* out, F f) {
  for (int i = 0; i < kPixels; ++i) {
    double h, s, v, r, g, b;
    rgb_to_hsv(in[i] / 255.0, in[kPixels + i] / 255.0, in[2 * kPixels + i] / 255.0, h, s, v);
    f(h, s, v);
    hsv_to_rgb(h, s, v, r, g, b);
    out[i] = to_u8_trunc(r);
    out[kPixels + i] = to_u8_trunc(g);
    out[2 * kPixels + i] = to_u8_trunc(b);
  }
}

}  // namespace

void brightness(int severity, HostRng&, const uint8_t* in, uint8_t* out) {
  static constexpr double kC[] = {0.05, 0.1, 0.15, 0.2, 0.3};
  const double c = kC[severity - 1];
  in_hsv(in, out, [c](double&, double&, double& v) { v = std::clamp(v + c, 0.0, 1.0); });
}

void saturate(int severity, HostRng&, const uint8_t* in, uint8_t* out) {
  static constexpr double kK[] = {0.3, 0.1, 1.5, 2.0, 2.5};
  static constexpr double kAdd[] = {0.0, 0.0, 0.0, 0.1, 0.2};
  const double k = kK[severity - 1], add = kAdd[severity - 1];
  in_hsv(in, out, [k, add](double&, double& s, double&) { s = std::clamp(s * k + add, 0.0, 1.0); });
}

void contrast(int severity, HostRng&, const uint8_t* in, uint8_t* out) {
  static constexpr double kC[] = {0.75, 0.5, 0.4, 0.3, 0.15};
  const double c = kC[severity - 1];
  for (int ch = 0; ch < 3; ++ch) {
    const uint8_t* p = in + ch * kPixels;
    // The mean from the exact integer sum: equal to the mean of x / 255.
    int64_t sum = 0;
    for (int i = 0; i < kPixels; ++i) sum += p[i];
    const double mean = double(sum) / (255.0 * kPixels);
    for (int i = 0; i < kPixels; ++i) out[ch * kPixels + i] = to_u8_trunc((p[i] / 255.0 - mean) * c + mean);
  }
}

void jpeg_compression(int severity, HostRng&, const uint8_t* in, uint8_t* out) {
  static constexpr int kQuality[] = {80, 65, 58, 50, 40};
  Image8 rgb;
  rgb.width = rgb.height = kSide;
  rgb.channels = 3;
  rgb.pixels.resize(kValues);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < kPixels; ++i) rgb.pixels[i * 3 + c] = in[c * kPixels + i];
  const std::vector<uint8_t> jpeg = encode_jpeg(rgb, kQuality[severity - 1]);
  const Image8 decoded = decode_image(jpeg.data(), jpeg.size(), 3, "jpeg_compression");
  if (decoded.width != kSide || decoded.height != kSide) throw CliError("jpeg_compression: bad decoded size");
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < kPixels; ++i) out[c * kPixels + i] = decoded.pixels[i * 3 + c];
}

void pixelate(int severity, HostRng&, const uint8_t* in, uint8_t* out) {
  static constexpr double kC[] = {0.95, 0.9, 0.85, 0.75, 0.65};
  const int small = static_cast<int>(kSide * kC[severity - 1]);  // 30, 28, 27, 24, 20
  for (int c = 0; c < 3; ++c) {
    // Pillow's resize(BOX) down and back up (host/pillow_resample.h).
    const std::vector<uint8_t> down = pillow_resize_plane(in + c * kPixels, kSide, kSide, small, small, PillowFilter::kBox);
    const std::vector<uint8_t> up = pillow_resize_plane(down.data(), small, small, kSide, kSide, PillowFilter::kBox);
    std::copy(up.begin(), up.end(), out + c * kPixels);
  }
}

namespace {

// cv2.getAffineTransform: the 2x3 matrix M with M * (src_i, 1) = dst_i.
void affine_from_points(const double src[3][2], const double dst[3][2], double m[2][3]) {
  const double det = src[0][0] * (src[1][1] - src[2][1]) - src[0][1] * (src[1][0] - src[2][0]) +
                     (src[1][0] * src[2][1] - src[2][0] * src[1][1]);
  for (int row = 0; row < 2; ++row) {
    const double u0 = dst[0][row], u1 = dst[1][row], u2 = dst[2][row];
    // Cramer's rule on [x y 1] * (a b c)^T = u.
    m[row][0] = (u0 * (src[1][1] - src[2][1]) - src[0][1] * (u1 - u2) + (u1 * src[2][1] - u2 * src[1][1])) / det;
    m[row][1] = (src[0][0] * (u1 - u2) - u0 * (src[1][0] - src[2][0]) + (src[1][0] * u2 - src[2][0] * u1)) / det;
    m[row][2] = (src[0][0] * (src[1][1] * u2 - src[2][1] * u1) - src[0][1] * (src[1][0] * u2 - src[2][0] * u1) +
                 u0 * (src[1][0] * src[2][1] - src[2][0] * src[1][1])) /
                det;
  }
}

// Bilinear sample of a 32x32 plane at (sy, sx), out-of-range neighbours
// mapped by `border`.
inline double bilinear(const double* p, double sy, double sx, Border border) {
  const double fy0 = std::floor(sy), fx0 = std::floor(sx);
  const int y0 = static_cast<int>(fy0), x0 = static_cast<int>(fx0);
  const double fy = sy - fy0, fx = sx - fx0;
  const int ya = border_index(y0, kSide, border), yb = border_index(y0 + 1, kSide, border);
  const int xa = border_index(x0, kSide, border), xb = border_index(x0 + 1, kSide, border);
  const double top = (1.0 - fx) * p[ya * kSide + xa] + fx * p[ya * kSide + xb];
  const double bottom = (1.0 - fx) * p[yb * kSide + xa] + fx * p[yb * kSide + xb];
  return (1.0 - fy) * top + fy * bottom;
}

}  // namespace

void elastic_transform(int severity, HostRng& rng, const uint8_t* in, uint8_t* out) {
  constexpr double S = kSide;
  static constexpr double kAlpha[] = {0, 0.05 * S, 0.08 * S, 0.1 * S, 0.1 * S};
  static constexpr double kSigma[] = {0, 0.2 * S, 0.06 * S, 0.04 * S, 0.03 * S};
  static constexpr double kAffine[] = {0.08 * S, 0.07 * S, 0.06 * S, 0.05 * S, 0.03 * S};
  const double alpha = kAlpha[severity - 1], sigma = kSigma[severity - 1], affine = kAffine[severity - 1];

  // Random affine: three points around the centre, each coordinate moved by
  // U(-affine, affine); points are (x, y) as OpenCV takes them.
  constexpr double c = kSide / 2, k = kSide / 3;  // 16, 10
  const double src[3][2] = {{c + k, c + k}, {c + k, c - k}, {c - k, c - k}};
  double dst[3][2];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) dst[i][j] = static_cast<float>(src[i][j] + rng.uniform(-affine, affine));
  double m[2][3];
  affine_from_points(src, dst, m);
  // warpAffine samples the source at M^-1 * (x, y).
  const double det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
  const double inv_det = det != 0.0 ? 1.0 / det : 0.0;
  const double a11 = m[1][1] * inv_det, a12 = -m[0][1] * inv_det;
  const double a21 = -m[1][0] * inv_det, a22 = m[0][0] * inv_det;
  const double b1 = -a11 * m[0][2] - a12 * m[1][2], b2 = -a21 * m[0][2] - a22 * m[1][2];

  // cv2.warpAffine's fixed point: source coordinates in 1/1024 pixel
  // (rounded half to even), reduced to 1/32 pixel; the fraction picks the
  // bilinear weights from a table of float products.
  FImage x, warped;
  to_float(in, x);
  auto cv_round = [](double v) { return static_cast<int64_t>(std::nearbyint(v)); };
  auto floor_div32 = [](int64_t v) { return v >= 0 ? v / 32 : -((-v + 31) / 32); };
  constexpr double kAbScale = 1024.0;
  constexpr int64_t kRoundDelta = 16;  // AB_SCALE / INTER_TAB_SIZE / 2
  for (int yy = 0; yy < kSide; ++yy) {
    const int64_t x0 = cv_round((a12 * yy + b1) * kAbScale) + kRoundDelta;
    const int64_t y0 = cv_round((a22 * yy + b2) * kAbScale) + kRoundDelta;
    for (int xx = 0; xx < kSide; ++xx) {
      const int64_t sx = floor_div32(x0 + cv_round(a11 * xx * kAbScale));  // in 1/32 pixel
      const int64_t sy = floor_div32(y0 + cv_round(a21 * xx * kAbScale));
      const int64_t ix = floor_div32(sx), iy = floor_div32(sy);
      const float fx = float(sx - ix * 32) / 32.0f, fy = float(sy - iy * 32) / 32.0f;
      const float w[4] = {(1.0f - fy) * (1.0f - fx), (1.0f - fy) * fx, fy * (1.0f - fx), fy * fx};
      const int ya = border_index(int(iy), kSide, Border::kReflect101);
      const int yb = border_index(int(iy) + 1, kSide, Border::kReflect101);
      const int xa = border_index(int(ix), kSide, Border::kReflect101);
      const int xb = border_index(int(ix) + 1, kSide, Border::kReflect101);
      for (int ch = 0; ch < 3; ++ch) {
        const double* p = x.plane(ch);
        warped.plane(ch)[yy * kSide + xx] = static_cast<float>(
            w[0] * p[ya * kSide + xa] + w[1] * p[ya * kSide + xb] + w[2] * p[yb * kSide + xa] + w[3] * p[yb * kSide + xb]);
      }
    }
  }

  // Smooth random displacement fields (dx first, then dy), in pixels.
  double dx[kPixels], dy[kPixels];
  for (double& v : dx) v = rng.uniform(-1.0, 1.0);
  for (double& v : dy) v = rng.uniform(-1.0, 1.0);
  gaussian_filter(dx, sigma, 3.0, Border::kReflect);
  gaussian_filter(dy, sigma, 3.0, Border::kReflect);
  for (int i = 0; i < kPixels; ++i) {
    dx[i] = static_cast<float>(dx[i] * alpha);
    dy[i] = static_cast<float>(dy[i] * alpha);
  }
  for (int ch = 0; ch < 3; ++ch)
    for (int yy = 0; yy < kSide; ++yy)
      for (int xx = 0; xx < kSide; ++xx) {
        const int i = yy * kSide + xx;
        out[ch * kPixels + i] = to_u8_trunc(bilinear(warped.plane(ch), yy + dy[i], xx + dx[i], Border::kReflect));
      }
}

}  // namespace tinyzo::corrupt_detail
