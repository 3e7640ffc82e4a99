#include "data/corruptions.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>

#include "data/corrupt_internal.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {

namespace {

using corrupt_detail::kValues;

struct Info {
  Corruption c;
  const char* name;
  CorruptionFamily family;
  bool random;
  void (*fn)(int, HostRng&, const uint8_t*, uint8_t*);  // null for frost
};

namespace cd = corrupt_detail;
constexpr Info kInfo[kNumCorruptions] = {
    {Corruption::kGaussianNoise, "gaussian_noise", CorruptionFamily::kNoise, true, cd::gaussian_noise},
    {Corruption::kShotNoise, "shot_noise", CorruptionFamily::kNoise, true, cd::shot_noise},
    {Corruption::kImpulseNoise, "impulse_noise", CorruptionFamily::kNoise, true, cd::impulse_noise},
    {Corruption::kSpeckleNoise, "speckle_noise", CorruptionFamily::kNoise, true, cd::speckle_noise},
    {Corruption::kGaussianBlur, "gaussian_blur", CorruptionFamily::kBlur, false, cd::gaussian_blur},
    {Corruption::kGlassBlur, "glass_blur", CorruptionFamily::kBlur, true, cd::glass_blur},
    {Corruption::kDefocusBlur, "defocus_blur", CorruptionFamily::kBlur, false, cd::defocus_blur},
    {Corruption::kMotionBlur, "motion_blur", CorruptionFamily::kBlur, true, cd::motion_blur},
    {Corruption::kZoomBlur, "zoom_blur", CorruptionFamily::kBlur, false, cd::zoom_blur},
    {Corruption::kSnow, "snow", CorruptionFamily::kWeather, true, cd::snow},
    {Corruption::kFrost, "frost", CorruptionFamily::kWeather, true, nullptr},
    {Corruption::kFog, "fog", CorruptionFamily::kWeather, true, cd::fog},
    {Corruption::kBrightness, "brightness", CorruptionFamily::kDigital, false, cd::brightness},
    {Corruption::kContrast, "contrast", CorruptionFamily::kDigital, false, cd::contrast},
    {Corruption::kSaturate, "saturate", CorruptionFamily::kDigital, false, cd::saturate},
    {Corruption::kJpegCompression, "jpeg_compression", CorruptionFamily::kDigital, false, cd::jpeg_compression},
    {Corruption::kPixelate, "pixelate", CorruptionFamily::kDigital, false, cd::pixelate},
    {Corruption::kElasticTransform, "elastic_transform", CorruptionFamily::kDigital, true, cd::elastic_transform},
    {Corruption::kSpatter, "spatter", CorruptionFamily::kWeather, true, cd::spatter},
};

const Info& info(Corruption c) {
  const int i = static_cast<int>(c);
  if (i < 0 || i >= kNumCorruptions) throw CliError("unknown corruption id " + std::to_string(i));
  return kInfo[i];
}

std::string all_names() {
  std::string s;
  for (const Info& i : kInfo) {
    if (!s.empty()) s += ", ";
    s += i.name;
  }
  return s;
}

}  // namespace

const std::array<Corruption, kNumCorruptions>& all_corruptions() {
  static const std::array<Corruption, kNumCorruptions> all = [] {
    std::array<Corruption, kNumCorruptions> a{};
    for (int i = 0; i < kNumCorruptions; ++i) a[i] = kInfo[i].c;
    return a;
  }();
  return all;
}

const char* corruption_name(Corruption c) { return info(c).name; }

const char* family_name(CorruptionFamily f) {
  switch (f) {
    case CorruptionFamily::kNoise: return "noise";
    case CorruptionFamily::kBlur: return "blur";
    case CorruptionFamily::kWeather: return "weather";
    case CorruptionFamily::kDigital: return "digital";
  }
  return "?";
}

CorruptionFamily corruption_family(Corruption c) { return info(c).family; }
bool corruption_is_random(Corruption c) { return info(c).random; }
bool corruption_needs_frost(Corruption c) { return c == Corruption::kFrost; }

std::optional<Corruption> find_corruption(std::string_view name) {
  for (const Info& i : kInfo)
    if (name == i.name) return i.c;
  return std::nullopt;
}

Corruption parse_corruption(std::string_view name) {
  if (auto c = find_corruption(name)) return *c;
  throw CliError("unknown corruption '" + std::string(name) + "' (expected one of: " + all_names() + ")");
}

void check_severity(int severity) {
  if (severity < kMinSeverity || severity > kMaxSeverity)
    throw CliError("severity must be 1..5, got " + std::to_string(severity));
}

Image8 resize_frost(const Image8& rgb) {
  if (rgb.channels != 3) throw CliError("resize_frost: needs an RGB image");
  // cv2.resize(fx=0.2, fy=0.2, INTER_LINEAR): size round(w * 0.2); source
  // coordinate (d + 0.5) / 0.2 - 0.5, clamped to the image (OpenCV's rule).
  // For this factor the coordinate is the integer 5d + 2: a plain subsample.
  const double fx = 0.2;
  const double inv = 1.0 / fx;
  Image8 out;
  out.width = static_cast<int>(std::nearbyint(rgb.width * fx));
  out.height = static_cast<int>(std::nearbyint(rgb.height * fx));
  out.channels = 3;
  out.pixels.resize(size_t(out.width) * out.height * 3);
  auto axis = [inv](int d, int n, int& i0, int& i1, double& f) {
    const double s = (d + 0.5) * inv - 0.5;
    i0 = static_cast<int>(std::floor(s));
    f = s - i0;
    if (i0 < 0) {
      i0 = 0;
      f = 0.0;
    }
    if (i0 >= n - 1) {
      i0 = n - 1;
      f = 0.0;
    }
    i1 = std::min(i0 + 1, n - 1);
  };
  for (int y = 0; y < out.height; ++y) {
    int y0, y1;
    double fy;
    axis(y, rgb.height, y0, y1, fy);
    for (int x = 0; x < out.width; ++x) {
      int x0, x1;
      double fxx;
      axis(x, rgb.width, x0, x1, fxx);
      for (int c = 0; c < 3; ++c) {
        const double top = (1 - fxx) * rgb.at(y0, x0, c) + fxx * rgb.at(y0, x1, c);
        const double bottom = (1 - fxx) * rgb.at(y1, x0, c) + fxx * rgb.at(y1, x1, c);
        out.at(y, x, c) = static_cast<uint8_t>(std::clamp(std::nearbyint((1 - fy) * top + fy * bottom), 0.0, 255.0));
      }
    }
  }
  return out;
}

FrostSet load_frost_set(const std::string& data_dir) {
  static const char* const kFiles[] = {"frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"};
  FrostSet set;
  for (const char* file : kFiles) {
    const std::string path = data_dir + "/frost/" + file;
    if (!is_regular_file(path))
      throw CliError(path + ": missing (frost image of the frost corruption, from github.com/hendrycks/robustness "
                            "ImageNet-C/create_c/); point --data-dir or $TINYZO_DATA at the shared data");
    Image8 small = resize_frost(read_image(path, 3));
    if (small.width <= kCorruptSide || small.height <= kCorruptSide)
      throw CliError(path + ": too small for a 32x32 crop after resizing by 0.2");
    set.images.push_back(std::move(small));
  }
  return set;
}

uint64_t corruption_image_seed(uint64_t seed, Corruption c, uint64_t image_index) {
  return derive_seed(derive_seed(seed, hash_name64(corruption_name(c))), image_index);
}

void corrupt(Corruption c, int severity, uint64_t seed, const uint8_t* in, uint8_t* out, const FrostSet* frost) {
  check_severity(severity);
  const Info& i = info(c);
  HostRng rng(seed);
  // Every corruption reads its whole input before writing, or works value by
  // value, so in == out is safe; copy anyway to keep that a non-issue.
  uint8_t src[kValues];
  std::copy(in, in + kValues, src);
  if (c == Corruption::kFrost) {
    if (frost == nullptr || frost->images.size() < 5)
      throw CliError("frost needs the frost images (load_frost_set of the data directory)");
    corrupt_detail::frost(severity, rng, *frost, src, out);
    return;
  }
  i.fn(severity, rng, src, out);
}

void corrupt_split(Corruption c, int severity, uint64_t seed, const uint8_t* in, size_t count, uint8_t* out,
                   const FrostSet* frost, int threads, uint64_t first_index) {
  check_severity(severity);
  if (c == Corruption::kFrost && (frost == nullptr || frost->images.size() < 5))
    throw CliError("frost needs the frost images (load_frost_set of the data directory)");
  unsigned n_threads = threads > 0 ? unsigned(threads) : std::max(1u, std::thread::hardware_concurrency());
  n_threads = static_cast<unsigned>(std::min<size_t>(n_threads, std::max<size_t>(count, 1)));
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    constexpr size_t kChunk = 64;
    for (;;) {
      const size_t begin = next.fetch_add(kChunk);
      if (begin >= count) return;
      const size_t end = std::min(count, begin + kChunk);
      try {
        for (size_t i = begin; i < end; ++i)
          corrupt(c, severity, corruption_image_seed(seed, c, first_index + i), in + i * kValues,
                  out + i * kValues, frost);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = count;
        return;
      }
    }
  };
  if (n_threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < n_threads; ++t) pool.emplace_back(work);
    for (std::thread& t : pool) t.join();
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace tinyzo
