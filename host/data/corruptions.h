// The 19 CIFAR-10-C corruptions (Hendrycks & Dietterich, ICLR 2019) for 32x32
// RGB uint8 images, severities 1..5, as specified in shared/CORRUPTIONS.md.
// What each one does and where it deviates from the original libraries:
// docs/corruptions.md.
//
// Layout: every image is CHW planar uint8, 3 x 32 x 32 = 3072 bytes (the R
// plane, then G, then B, each row-major), exactly the pixel part of a CIFAR-10
// binary record (host/cifar10.h).
//
// Determinism: the output is a pure function of (corruption, severity, seed,
// input bytes) - and, for frost, of the frost images - on every machine and
// thread count. Random draws come from HostRng (host/rng.h), never from the
// standard library's distributions.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/image_io.h"

namespace tinyzo {

constexpr int kCorruptSide = 32;
constexpr size_t kCorruptImageBytes = 3 * kCorruptSide * kCorruptSide;  // 3072
constexpr int kMinSeverity = 1;
constexpr int kMaxSeverity = 5;

// In the order of CORRUPTIONS.md. The enum value is not part of any seed or
// file format (seeds hash the name), so reordering it changes no output.
enum class Corruption : int {
  kGaussianNoise,
  kShotNoise,
  kImpulseNoise,
  kSpeckleNoise,
  kGaussianBlur,
  kGlassBlur,
  kDefocusBlur,
  kMotionBlur,
  kZoomBlur,
  kSnow,
  kFrost,
  kFog,
  kBrightness,
  kContrast,
  kSaturate,
  kJpegCompression,
  kPixelate,
  kElasticTransform,
  kSpatter,
};
constexpr int kNumCorruptions = 19;

enum class CorruptionFamily { kNoise, kBlur, kWeather, kDigital };

// All 19, in enum order.
const std::array<Corruption, kNumCorruptions>& all_corruptions();

// "gaussian_noise", "shot_noise", ..., "elastic_transform", "spatter".
const char* corruption_name(Corruption c);
// "noise", "blur", "weather", "digital".
const char* family_name(CorruptionFamily f);
CorruptionFamily corruption_family(Corruption c);
// True when the corruption draws random numbers (its output depends on the seed).
// False for gaussian_blur, defocus_blur, zoom_blur, brightness, contrast,
// saturate, jpeg_compression and pixelate.
bool corruption_is_random(Corruption c);
// True for frost, which needs the frost images (FrostSet).
bool corruption_needs_frost(Corruption c);

// Exact name lookup ("gaussian_noise"); nullopt for an unknown name.
std::optional<Corruption> find_corruption(std::string_view name);
// Like find_corruption, but throws CliError listing the valid names.
Corruption parse_corruption(std::string_view name);
// Throws CliError unless 1 <= severity <= 5.
void check_severity(int severity);

// The frost photographs of the frost corruption, ready to crop: frost1.png,
// frost2.png, frost3.png, frost4.jpg, frost5.jpg (the original never draws
// frost6), decoded as RGB (alpha dropped) and resized by 0.2 in each direction
// with OpenCV's bilinear rule. Each is at least 33x33.
struct FrostSet {
  std::vector<Image8> images;  // 5 RGB images
};
// Loads `data_dir`/frost/. Throws CliError naming a missing or broken file.
FrostSet load_frost_set(const std::string& data_dir);
// The resize step alone (cv2.resize(img, (0,0), fx=0.2, fy=0.2), INTER_LINEAR),
// for an RGB image. Output size round(w * 0.2) x round(h * 0.2).
Image8 resize_frost(const Image8& rgb);

// The seed of image `image_index` of a split corrupted with `c` under `seed`:
// derive_seed(derive_seed(seed, hash_name64(name)), image_index). Severity is
// not part of it: one image sees the same random draws at every severity.
uint64_t corruption_image_seed(uint64_t seed, Corruption c, uint64_t image_index);

// Corrupts one image. `in` and `out` are 3072 bytes CHW and may be the same
// buffer. `seed` seeds this image's draws directly (corrupt_split derives it
// per image with corruption_image_seed). `frost` is required for frost
// (CliError when null) and ignored otherwise. Throws CliError for a bad
// severity. Thread-safe.
void corrupt(Corruption c, int severity, uint64_t seed, const uint8_t* in, uint8_t* out,
             const FrostSet* frost = nullptr);

// Corrupts `count` consecutive images (count * 3072 bytes each way; `in` and
// `out` may be the same buffer). Image i uses corruption_image_seed(seed, c,
// first_index + i), so the bytes do not depend on the order, the batching or
// `threads` (0 = all hardware threads).
void corrupt_split(Corruption c, int severity, uint64_t seed, const uint8_t* in, size_t count, uint8_t* out,
                   const FrostSet* frost = nullptr, int threads = 0, uint64_t first_index = 0);

}  // namespace tinyzo
