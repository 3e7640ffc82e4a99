#include "data/protocol.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <exception>
#include <optional>
#include <thread>

#include "data/corruptions.h"
#include "util/errors.h"
#include "data/preprocess.h"
#include "util/rng.h"
#include "tinyzo/train/fmath.h"

namespace tinyzo {

namespace {

// Stream tags, so the split, the epoch order and the augmentation never share draws.
constexpr uint64_t kTagEpochOrder = 0x4550'4F43'4844'5231ull;  // "EPOCHDR1"
constexpr uint64_t kTagAugment = 0x4155'474D'454E'5431ull;     // "AUGMENT1"

uint64_t uniform_below(uint64_t& state, uint64_t bound) {
  // Rejection on the low end of the 64-bit range keeps every value equally likely.
  const uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const uint64_t r = splitmix64_next(state);
    if (r >= threshold) return r % bound;
  }
}

// Python's round(): half to even. std::nearbyint does it in the default
// rounding mode, deterministically.
int round_half_even(float v) { return static_cast<int>(std::nearbyint(v)); }

}  // namespace

void shuffle_indices(std::vector<uint32_t>& v, uint64_t seed) {
  uint64_t state = seed;
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(uniform_below(state, i));
    std::swap(v[i - 1], v[j]);
  }
}

SplitIndices class_balanced_split(const std::vector<uint8_t>& labels, int n_classes, const SplitSpec& spec,
                                  const std::vector<std::string>& class_names) {
  if (spec.train_per_class < 0 || spec.val_per_class < 0 || spec.test_per_class < 0)
    throw CliError("split: per-class counts must be >= 0");
  const size_t need = size_t(spec.train_per_class) + size_t(spec.val_per_class) + size_t(spec.test_per_class);
  std::vector<std::vector<uint32_t>> by_class(size_t(std::max(n_classes, 0)));
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= by_class.size()) throw CliError("split: label " + std::to_string(labels[i]) + " out of range");
    by_class[labels[i]].push_back(static_cast<uint32_t>(i));
  }
  SplitIndices out;
  for (int c = 0; c < n_classes; ++c) {
    std::vector<uint32_t>& idx = by_class[size_t(c)];
    if (idx.size() < need)
      throw CliError("split: class " + std::to_string(c) +
                     (size_t(c) < class_names.size() ? " (" + class_names[size_t(c)] + ")" : std::string()) + " has " +
                     std::to_string(idx.size()) + " images, the split needs " + std::to_string(need) + " (" +
                     std::to_string(spec.train_per_class) + " train + " + std::to_string(spec.val_per_class) +
                     " val + " + std::to_string(spec.test_per_class) +
                     " test per class; lower --train-per-class / --val-per-class / --test-per-class)");
    shuffle_indices(idx, derive_seed(spec.seed, uint64_t(c)));
    auto take = [&](std::vector<uint32_t>& dst, size_t first, int count) {
      dst.insert(dst.end(), idx.begin() + long(first), idx.begin() + long(first) + count);
    };
    take(out.train, 0, spec.train_per_class);
    take(out.val, size_t(spec.train_per_class), spec.val_per_class);
    take(out.test, size_t(spec.train_per_class) + size_t(spec.val_per_class), spec.test_per_class);
  }
  std::sort(out.train.begin(), out.train.end());
  std::sort(out.val.begin(), out.val.end());
  std::sort(out.test.begin(), out.test.end());
  return out;
}

Cifar10Set subset(const Cifar10Set& set, const std::vector<uint32_t>& indices) {
  Cifar10Set out;
  out.labels.reserve(indices.size());
  out.pixels.resize(indices.size() * kCifar10ImageBytes);
  for (size_t k = 0; k < indices.size(); ++k) {
    if (indices[k] >= set.size()) throw CliError("subset: index out of range");
    out.labels.push_back(set.labels[indices[k]]);
    std::copy(set.image(indices[k]), set.image(indices[k]) + kCifar10ImageBytes,
              out.pixels.begin() + long(k * kCifar10ImageBytes));
  }
  return out;
}

ProtocolData make_protocol_data(const DataSource& source, const ProtocolSpec& spec, const std::string& frost_dir,
                                int threads) {
  std::optional<Corruption> c;
  if (spec.corruption != "none") {
    c = parse_corruption(spec.corruption);
    check_severity(spec.severity);
  }
  ProtocolData d;
  d.class_names = source.class_names();
  d.description = source.description();
  d.skipped = source.skipped();
  d.skipped_summary = skipped_summary(source);
  d.indices = class_balanced_split(source.labels(), source.n_classes(), spec.split, source.class_names());
  d.train = load_images(source, d.indices.train, threads);
  d.val = load_images(source, d.indices.val, threads);
  d.test = load_images(source, d.indices.test, threads);
  if (!c) return d;

  // The corruptions are defined on 32x32 RGB images (CORRUPTIONS.md).
  for (auto [set, idx] : {std::pair{&d.train, &d.indices.train}, std::pair{&d.val, &d.indices.val},
                          std::pair{&d.test, &d.indices.test}})
    for (size_t k = 0; k < idx->size(); ++k) {
      const ImageSet::Dims& dm = set->dims[k];
      if (dm.channels != 3 || dm.height != kCorruptSide || dm.width != kCorruptSide)
        throw CliError(source.item_name((*idx)[k]) + ": " + std::to_string(dm.width) + "x" +
                       std::to_string(dm.height) + " with " + std::to_string(dm.channels) +
                       " channels; --corruption " + spec.corruption +
                       " works on 32x32 RGB images only (use --corruption none for this data)");
    }

  FrostSet frost;
  if (corruption_needs_frost(*c)) frost = load_frost_set(frost_dir);
  // One job per image: (set, position, index in the source).
  struct Job {
    ImageSet* set;
    size_t pos;
    uint32_t source_index;
  };
  std::vector<Job> jobs;
  for (auto [set, idx] : {std::pair{&d.train, &d.indices.train}, std::pair{&d.val, &d.indices.val},
                          std::pair{&d.test, &d.indices.test}})
    for (size_t k = 0; k < idx->size(); ++k) jobs.push_back(Job{set, k, (*idx)[k]});
  unsigned n_threads = threads > 0 ? unsigned(threads) : std::max(1u, std::thread::hardware_concurrency());
  n_threads = std::min<unsigned>(n_threads, unsigned(std::max<size_t>(jobs.size(), 1)));
  std::atomic<size_t> next{0};
  run_workers(int(n_threads), [&](int) {
    for (size_t j; (j = next.fetch_add(1)) < jobs.size();) {
      const Job& job = jobs[j];
      uint8_t* img = job.set->pixels.data() + job.set->dims[job.pos].offset;
      corrupt(*c, spec.severity, corruption_image_seed(spec.corruption_seed, *c, job.source_index), img, img,
              corruption_needs_frost(*c) ? &frost : nullptr);
    }
  });
  return d;
}

ProtocolData make_protocol_data(const Cifar10Set& source, const ProtocolSpec& spec, const std::string& frost_dir,
                                int threads) {
  return make_protocol_data(Cifar10Source(source), spec, frost_dir, threads);
}

bool protocol_needs_data_dir(const ProtocolSpec& spec) {
  return spec.data == kDefaultData || spec.corruption == "frost";
}

std::unique_ptr<DataSource> open_protocol_source(const std::string& data_dir, const ProtocolSpec& spec,
                                                 int threads) {
  if (spec.data == kDefaultData)
    return open_cifar10_files({cifar10_test_batch_path(data_dir)});
  return open_data_source(spec.data, spec.bad_images, threads);
}

ProtocolData load_protocol_data(const std::string& data_dir, const ProtocolSpec& spec, int threads) {
  if (spec.corruption != "none") {  // fail on a bad name before reading 30 MB
    (void)parse_corruption(spec.corruption);
    check_severity(spec.severity);
  }
  const std::unique_ptr<DataSource> source = open_protocol_source(data_dir, spec, threads);
  return make_protocol_data(*source, spec, data_dir, threads);
}

// ------------------------------------------------------------ augmentation

uint64_t augment_seed(uint64_t seed, uint32_t epoch, uint32_t image) {
  return derive_seed(derive_seed(derive_seed(seed, kTagAugment), epoch), image);
}

AugmentParams draw_augment(const AugmentSpec& spec, uint64_t seed, int src_h, int src_w) {
  HostRng rng(seed);
  AugmentParams p;
  // RandomResizedCrop.get_params: 10 attempts, then the centre fallback. The
  // transcendental functions are tinyzo's deterministic float ones (fmath.h),
  // so the crop does not depend on the C library.
  const float area = float(src_h) * float(src_w);
  const float log_rmin = tz_logf(spec.ratio_min), log_rmax = tz_logf(spec.ratio_max);
  bool found = false;
  for (int attempt = 0; attempt < 10 && !found; ++attempt) {
    const float target = area * float(rng.uniform(spec.scale_min, spec.scale_max));
    const float ratio = tz_expf(float(rng.uniform(log_rmin, log_rmax)));
    const int w = round_half_even(tz_sqrtf(target * ratio));
    const int h = round_half_even(tz_sqrtf(target / ratio));
    if (w > 0 && w <= src_w && h > 0 && h <= src_h) {
      p.crop_y = static_cast<int>(rng.randint(0, src_h - h + 1));
      p.crop_x = static_cast<int>(rng.randint(0, src_w - w + 1));
      p.crop_h = h;
      p.crop_w = w;
      found = true;
    }
  }
  if (!found) {
    // torchvision's fallback: the whole image, its ratio clipped to
    // [ratio_min, ratio_max] (a square's ratio 1 lies inside any sane range).
    const float in_ratio = float(src_w) / float(src_h);
    int w = src_w, h = src_h;
    if (in_ratio < spec.ratio_min) h = round_half_even(float(w) / spec.ratio_min);
    else if (in_ratio > spec.ratio_max) w = round_half_even(float(h) * spec.ratio_max);
    p.crop_h = std::max(1, std::min(h, src_h));
    p.crop_w = std::max(1, std::min(w, src_w));
    p.crop_y = (src_h - p.crop_h) / 2;
    p.crop_x = (src_w - p.crop_w) / 2;
  }
  p.flip = rng.uniform() < double(spec.flip_p);
  auto factor = [&](float x) {
    return x > 0.f ? float(rng.uniform(std::max(0.0, 1.0 - double(x)), 1.0 + double(x))) : 1.f;
  };
  p.brightness = factor(spec.brightness);
  p.contrast = factor(spec.contrast);
  p.saturation = factor(spec.saturation);
  // A random order of the three (torchvision permutes its jitter ops).
  for (int i = 2; i > 0; --i) std::swap(p.order[i], p.order[rng.randint(0, i + 1)]);
  return p;
}

void augment_rgb_pixels(const ImageView& rgb, const AugmentParams& p, int out_h, int out_w, uint8_t* hwc) {
  if (rgb.channels != 3) throw CliError("augmentation: needs an RGB image");
  // Bilinear resize of the crop (align_corners=False, edge-clamped, like
  // torchvision's tensor resize when upsampling) into float [0, 255], flipped
  // horizontally by sampling mirrored columns.
  const size_t n = size_t(out_h) * size_t(out_w);
  std::vector<float> img(n * 3);
  const size_t n_cols = static_cast<size_t>(out_w);
  std::vector<int> x0(n_cols), x1(n_cols);
  std::vector<float> fx(n_cols);
  auto taps = [](int o, int out, int len, int* a, int* b, float* f) {
    float s = (float(o) + 0.5f) * (float(len) / float(out)) - 0.5f;
    if (s < 0.f) s = 0.f;
    int i0 = static_cast<int>(s);
    if (i0 > len - 1) i0 = len - 1;
    *a = i0;
    *b = i0 + 1 < len ? i0 + 1 : len - 1;
    *f = s - float(i0);
    if (*f > 1.f) *f = 1.f;
  };
  for (int ox = 0; ox < out_w; ++ox) {
    const int sx = p.flip ? out_w - 1 - ox : ox;
    taps(sx, out_w, p.crop_w, &x0[size_t(ox)], &x1[size_t(ox)], &fx[size_t(ox)]);
  }
  const size_t plane = size_t(rgb.height) * size_t(rgb.width);
  const size_t stride = size_t(rgb.width);
  for (int oy = 0; oy < out_h; ++oy) {
    int y0, y1;
    float fy;
    taps(oy, out_h, p.crop_h, &y0, &y1, &fy);
    for (int c = 0; c < 3; ++c) {
      const uint8_t* r0 = rgb.pixels + c * plane + size_t(p.crop_y + y0) * stride + p.crop_x;
      const uint8_t* r1 = rgb.pixels + c * plane + size_t(p.crop_y + y1) * stride + p.crop_x;
      for (int ox = 0; ox < out_w; ++ox) {
        const size_t a = size_t(x0[size_t(ox)]), b = size_t(x1[size_t(ox)]);
        const float f = fx[size_t(ox)];
        const float top = float(r0[a]) + (float(r0[b]) - float(r0[a])) * f;
        const float bot = float(r1[a]) + (float(r1[b]) - float(r1[a])) * f;
        img[(size_t(oy) * size_t(out_w) + size_t(ox)) * 3 + size_t(c)] = top + (bot - top) * fy;
      }
    }
  }
  auto clamp255 = [](float v) { return v < 0.f ? 0.f : (v > 255.f ? 255.f : v); };
  auto gray = [&](size_t i) { return 0.299f * img[i * 3] + 0.587f * img[i * 3 + 1] + 0.114f * img[i * 3 + 2]; };
  // Colour jitter as torchvision's functional ops on a [0, 1] image (here
  // scaled by 255): each blends with a reference and clamps.
  for (const int op : p.order) {
    if (op == 0 && p.brightness != 1.f) {  // blend with black
      for (float& v : img) v = clamp255(v * p.brightness);
    } else if (op == 1 && p.contrast != 1.f) {  // blend with the mean grey level of the image
      double sum = 0.0;
      for (size_t i = 0; i < n; ++i) sum += double(gray(i));
      const float mean = float(sum / double(n));
      for (float& v : img) v = clamp255(p.contrast * v + (1.f - p.contrast) * mean);
    } else if (op == 2 && p.saturation != 1.f) {  // blend with the pixel's grey level
      for (size_t i = 0; i < n; ++i) {
        const float g = gray(i);
        for (int c = 0; c < 3; ++c) img[i * 3 + c] = clamp255(p.saturation * img[i * 3 + c] + (1.f - p.saturation) * g);
      }
    }
  }
  // Round half up to a pixel (what a uint8 image would hold).
  for (size_t i = 0; i < n * 3; ++i) hwc[i] = uint8_t(static_cast<int>(img[i] + 0.5f));
}

void augment_image(const uint8_t* planar, int src_side, const AugmentParams& p, int out_side, int8_t* out) {
  // The pixels, then the eval pipeline's pixel -> int8 map, so that train and
  // eval inputs share one input convention (docs/training.md).
  const size_t n = size_t(out_side) * size_t(out_side) * 3;
  std::vector<uint8_t> px(n);
  augment_rgb_pixels(ImageView{planar, 3, src_side, src_side}, p, out_side, out_side, px.data());
  const std::array<int8_t, 256>& table = pixel_to_input_table();
  for (size_t i = 0; i < n; ++i) out[i] = table[px[i]];
}

// --------------------------------------------------------------- batches

std::vector<uint32_t> epoch_order(size_t n, uint64_t seed, uint32_t epoch) {
  std::vector<uint32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint32_t>(i);
  shuffle_indices(v, derive_seed(derive_seed(seed, kTagEpochOrder), epoch));
  return v;
}

int steps_per_epoch(size_t n, int batch) {
  if (batch < 1) throw CliError("batch size must be >= 1");
  return static_cast<int>((n + size_t(batch) - 1) / size_t(batch));
}

// --------------------------------------------------------------- threads

void run_workers(int threads, const std::function<void(int)>& body) {
  const int n = std::max(threads, 1);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  auto guarded = [&](int t) {
    try {
      body(t);
    } catch (...) {
      errors[size_t(t)] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(guarded, t);
  guarded(0);
  for (std::thread& th : pool) th.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace tinyzo
