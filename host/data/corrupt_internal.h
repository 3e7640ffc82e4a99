// Internals of the corruptions (host/corruptions.h): shared image helpers that
// mimic the library routines the original generator called, and one function
// per corruption. Not a public API.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "data/corruptions.h"
#include "util/rng.h"

namespace tinyzo::corrupt_detail {

constexpr int kSide = kCorruptSide;
constexpr int kPixels = kSide * kSide;
constexpr int kValues = 3 * kPixels;
constexpr double kPi = 3.14159265358979323846;

// A 32x32 image as float in [0, 1] (or any range), CHW like the uint8 layout.
struct FImage {
  double v[kValues];
  double* plane(int c) { return v + c * kPixels; }
  const double* plane(int c) const { return v + c * kPixels; }
};

// x / 255 for every value.
void to_float(const uint8_t* in, FImage& x);
// uint8(clip(v, 0, 1) * 255), truncating toward zero (np.uint8 of a float).
inline uint8_t to_u8_trunc(double v) {
  v = v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
  return static_cast<uint8_t>(v * 255.0);
}
void to_u8_trunc(const FImage& x, uint8_t* out);

// Border rules for out-of-range indices of a length-n axis:
//  kNearest    aaaa|abcd|dddd  (scipy 'nearest', OpenCV REPLICATE)
//  kReflect    dcba|abcd|dcba  (scipy 'reflect', OpenCV REFLECT)
//  kReflect101 dcb|abcd|cba    (scipy 'mirror', OpenCV REFLECT_101 = its default)
enum class Border { kNearest, kReflect, kReflect101 };
int border_index(int i, int n, Border border);

// scipy.ndimage.gaussian_filter on one 32x32 plane, in place: the 1-D kernel
// exp(-x^2 / (2 sigma^2)), x = -r..r with r = int(truncate * sigma + 0.5),
// normalized, applied along rows (axis 0) then columns (axis 1). sigma <= 1e-15
// leaves the plane unchanged, as scipy does.
void gaussian_filter(double* plane, double sigma, double truncate, Border border);

// Correlates a 32x32 plane with a (2*ry+1) x (2*rx+1) kernel (row-major), OpenCV
// filter2D semantics (anchor at the centre) with the given border.
void filter2d(const double* in, const std::vector<double>& kernel, int ry, int rx, Border border, double* out);

// clipped_zoom of the original: the centred crop of side ceil(32 / z), zoomed
// by z with scipy.ndimage.zoom(order=1) (linear interpolation, corners
// aligned: input coordinate = output index * (ch - 1) / (n - 1), n =
// round-half-even(ch * z)), then the centre 32x32 (offset (n - 32) // 2). z >= 1.
void clipped_zoom(const double* in, double z, double* out);

// ImageMagick's MotionBlurImage on `channels` planes of 32x32 uint8: a
// one-sided line kernel of width 2*ceil(radius)+1, weight i = exp(-i^2 /
// (2 sigma^2)) normalized, sample i taken at offset
// (ceil(i*cos(a) - 0.5), ceil(i*sin(a) - 0.5)) in (x, y), y pointing down,
// edges clamped; the result quantized as ImageMagick Q16 does and its PNG
// writer then reads it: floor(round(257 v) / 257). Bit-exact with
// ImageMagick 6.9.11 Q16 (`convert -motion-blur RxS+A`) on CIFAR-10 images.
void motion_blur_u8(const uint8_t* in, int channels, double radius, double sigma, double angle_deg,
                    uint8_t* out);

// skimage.color.rgb2hsv / hsv2rgb on one pixel, values in [0, 1].
void rgb_to_hsv(double r, double g, double b, double& h, double& s, double& v);
void hsv_to_rgb(double h, double s, double v, double& r, double& g, double& b);

// One function per corruption. `severity` is 1..5 (checked by the caller).
void gaussian_noise(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void shot_noise(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void impulse_noise(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void speckle_noise(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void gaussian_blur(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void glass_blur(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void defocus_blur(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void motion_blur(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void zoom_blur(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void snow(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void frost(int severity, HostRng& rng, const FrostSet& frost_set, const uint8_t* in, uint8_t* out);
void fog(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void brightness(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void contrast(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void saturate(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void jpeg_compression(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void pixelate(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void elastic_transform(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);
void spatter(int severity, HostRng& rng, const uint8_t* in, uint8_t* out);

// Pieces exposed for tests.
// The 17x17 defocus kernel of the original's disk(radius, alias_blur), cropped
// to its non-zero support: returns the kernel and sets `r` to its half-width.
std::vector<double> defocus_kernel(double radius, double alias_blur, int& r);
// The 32x32 plasma fractal of fog, normalized to [0, 1].
void plasma_fractal(double wibble_decay, HostRng& rng, double* map);
// The pieces of spatter's water branch (OpenCV equivalents, 32x32 maps):
// Canny edges (255 on edges), the 5x5 chamfer distance to the nearest zero
// pixel, histogram equalization, and the whole weight map liquid_u8 * dist
// before normalization.
void canny(const uint8_t* img, int low, int high, uint8_t* edges);
void distance_transform(const uint8_t* src, double* dist);
void equalize_hist(uint8_t* img);
void spatter_water_weight(const double* liquid, double* m);
// Zoom factors of zoom_blur at a severity: 1, 1.01, ... (numpy arange).
std::vector<double> zoom_factors(int severity);

}  // namespace tinyzo::corrupt_detail
