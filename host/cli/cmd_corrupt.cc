// `tinyzo corrupt`: CIFAR-10-C style corrupted copies of the CIFAR-10 test set
// (docs/corruptions.md).
//
//   tinyzo corrupt --corruption NAME|all --severity S|all [--seed 0] [--count N] --out FILE|DIR
//   tinyzo corrupt --corruption NAME|all --png GRID.png [--image I]...
//
// --out writes records in the CIFAR-10 binary layout (label byte + 3072 pixel
// bytes). With --severity all a file holds the 5 severities one after the
// other (severity-major, like the published CIFAR-10-C arrays). With
// --corruption all (or a comma-separated list), --out is a directory that receives <name>.bin for each of
// the 19. Every file is written atomically (temporary file + rename).
// --png writes a picture to look at: one row per corruption, columns clean
// and severities 1..5, one block per --image, upscaled x3 (nearest).
//
// --data DIR takes the images from an image folder or CIFAR-10 files instead
// (open_data_source; every image must be 32x32 RGB, the corruptions' size).
// --format png writes an image folder instead of records, ready for
// `tinyzo train --data`: OUT[/<corruption>][/severity<k>]/<class>/<name>.png
// (the corruption level only with several corruptions, the severity level
// only with several severities); <name> is the image's index in the input
// (00042) for CIFAR-10 data, its path below its class folder ('/' as '__',
// without the extension) for a folder.
#include <chrono>
#include <cstdio>
#include <string>
#include <memory>
#include <set>
#include <vector>

#include "data/cifar10.h"
#include "commands.h"
#include "data/corruptions.h"
#include "data/data_dir.h"
#include "data/data_source.h"
#include "data/image_folder.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "data/image_io.h"
#include "options.h"

namespace tinyzo::cli {

namespace {

struct CorruptOptions {
  std::string corruption;
  std::string severity;
  uint64_t seed = 0;
  int64_t count = 0;  // 0: all
  std::string input;
  std::string data;
  std::string bad_images = "stop";
  std::string format = "bin";
  std::string out;
  std::string png;
  std::vector<int64_t> images;
  int threads = 0;
};

// "all", one name, or a comma-separated list of names.
std::vector<Corruption> selected_corruptions(const std::string& names) {
  if (names == "all") return {all_corruptions().begin(), all_corruptions().end()};
  std::vector<Corruption> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = names.find(',', start);
    out.push_back(parse_corruption(names.substr(start, comma == std::string::npos ? comma : comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::vector<int> selected_severities(const std::string& text) {
  if (text == "all") return {1, 2, 3, 4, 5};
  int s = 0;
  try {
    size_t used = 0;
    s = std::stoi(text, &used);
    if (used != text.size()) s = 0;
  } catch (const std::exception&) {
    s = 0;
  }
  if (s < kMinSeverity || s > kMaxSeverity)
    throw CliError("--severity " + text + ": expected 1..5 or all");
  return {s};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Writes the corrupted records of one corruption (all requested severities)
// to `path`; returns the seconds spent corrupting.
double write_split(Corruption c, const std::vector<int>& severities, const CorruptOptions& o,
                   const Cifar10Set& set, size_t count, const FrostSet* frost, const std::string& path) {
  std::vector<uint8_t> pixels(count * kCorruptImageBytes);
  AtomicFileWriter writer(path);
  double seconds = 0.0;
  for (const int s : severities) {
    const auto t0 = std::chrono::steady_clock::now();
    corrupt_split(c, s, o.seed, set.pixels.data(), count, pixels.data(), frost, o.threads);
    seconds += seconds_since(t0);
    for (size_t i = 0; i < count; ++i) {
      writer.write_u8(set.labels[i]);
      writer.write(pixels.data() + i * kCorruptImageBytes, kCorruptImageBytes);
    }
  }
  writer.commit();
  return seconds;
}

// Copies a CHW 32x32 image into `grid` (RGB, HWC) at (top, left), scaled.
void blit(Image8& grid, const uint8_t* chw, int top, int left, int scale) {
  for (int y = 0; y < kCorruptSide * scale; ++y)
    for (int x = 0; x < kCorruptSide * scale; ++x)
      for (int c = 0; c < 3; ++c)
        grid.at(top + y, left + x, c) =
            chw[c * kCorruptSide * kCorruptSide + (y / scale) * kCorruptSide + (x / scale)];
}

void write_grid(const std::vector<Corruption>& corruptions, const CorruptOptions& o, const Cifar10Set& set,
                const FrostSet* frost) {
  constexpr int kScale = 3, kGap = 3, kBlockGap = 12;
  constexpr int kCell = kCorruptSide * kScale;
  constexpr int kColumns = 1 + kMaxSeverity;  // clean, 1..5
  std::vector<int64_t> images = o.images.empty() ? std::vector<int64_t>{0} : o.images;
  for (const int64_t i : images)
    if (i < 0 || size_t(i) >= set.size())
      throw CliError("--image " + std::to_string(i) + ": out of range (the set has " + std::to_string(set.size()) +
                     " images)");
  const int block_w = kColumns * kCell + (kColumns - 1) * kGap;
  Image8 grid;
  grid.channels = 3;
  grid.width = int(images.size()) * block_w + (int(images.size()) - 1) * kBlockGap + 2 * kGap;
  grid.height = int(corruptions.size()) * (kCell + kGap) + kGap;
  grid.pixels.assign(size_t(grid.width) * grid.height * 3, 64);
  uint8_t out[kCorruptImageBytes];
  for (size_t b = 0; b < images.size(); ++b) {
    const uint8_t* clean = set.image(size_t(images[b]));
    const int left0 = kGap + int(b) * (block_w + kBlockGap);
    for (size_t r = 0; r < corruptions.size(); ++r) {
      const int top = kGap + int(r) * (kCell + kGap);
      blit(grid, clean, top, left0, kScale);
      for (int s = kMinSeverity; s <= kMaxSeverity; ++s) {
        const Corruption c = corruptions[r];
        corrupt(c, s, corruption_image_seed(o.seed, c, uint64_t(images[b])), clean, out, frost);
        blit(grid, out, top, left0 + s * (kCell + kGap), kScale);
      }
    }
  }
  write_png(o.png, grid);
  std::printf("wrote %s (%dx%d): rows", o.png.c_str(), grid.width, grid.height);
  for (const Corruption c : corruptions) std::printf(" %s", corruption_name(c));
  std::printf("; columns clean, severity 1..5; images");
  for (const int64_t i : images) std::printf(" %lld", static_cast<long long>(i));
  std::printf("\n");
}

// The file name of item i in a PNG folder (see the top of this file).
std::vector<std::string> png_names(const DataSource& source, size_t count) {
  std::vector<std::string> names(count);
  const auto* folder = dynamic_cast<const ImageFolderSource*>(&source);
  std::set<std::string> seen;
  for (size_t i = 0; i < count; ++i) {
    std::string n;
    if (folder) {
      n = folder->relative_path(i);
      for (size_t p; (p = n.find('/')) != std::string::npos;) n.replace(p, 1, "__");
      const size_t dot = n.find_last_of('.');
      std::string stem = dot == std::string::npos ? n : n.substr(0, dot);
      // a.jpg and a.png in one class folder keep their extensions apart
      n = seen.count(source.class_names()[size_t(source.label(i))] + "/" + stem) ? n : stem;
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%05zu", i);
      n = buf;
    }
    seen.insert(source.class_names()[size_t(source.label(i))] + "/" + n);
    names[i] = n + ".png";
  }
  return names;
}

// Writes the corrupted images of one corruption as PNG folders below `dir`.
double write_png_folder(Corruption c, const std::vector<int>& severities, const CorruptOptions& o,
                        const Cifar10Set& set, size_t count, const FrostSet* frost, const DataSource& source,
                        const std::string& dir) {
  const std::vector<std::string> names = png_names(source, count);
  std::vector<uint8_t> pixels(count * kCorruptImageBytes);
  double seconds = 0.0;
  for (const int s : severities) {
    const auto t0 = std::chrono::steady_clock::now();
    corrupt_split(c, s, o.seed, set.pixels.data(), count, pixels.data(), frost, o.threads);
    seconds += seconds_since(t0);
    const std::string base = severities.size() > 1 ? dir + "/severity" + std::to_string(s) : dir;
    for (const std::string& cls : source.class_names()) make_directories(base + "/" + cls);
    for (size_t i = 0; i < count; ++i) {
      Image8 im;
      im.width = im.height = kCorruptSide;
      im.channels = 3;
      im.pixels.resize(kCorruptImageBytes);
      const uint8_t* chw = pixels.data() + i * kCorruptImageBytes;
      for (size_t p = 0; p < size_t(kCorruptSide) * kCorruptSide; ++p)
        for (size_t ch = 0; ch < 3; ++ch) im.pixels[p * 3 + ch] = chw[ch * kCorruptSide * kCorruptSide + p];
      write_png(base + "/" + source.class_names()[set.labels[i]] + "/" + names[i], im);
    }
  }
  return seconds;
}

// The 32x32 RGB images of a source as CIFAR-10-layout records in memory.
Cifar10Set cifar_layout(const DataSource& source) {
  Cifar10Set set;
  set.labels = source.labels();
  set.pixels.resize(source.size() * kCifar10ImageBytes);
  for (size_t i = 0; i < source.size(); ++i) {
    const PlanarImage im = source.image(i);
    if (im.channels != 3 || im.height != kCorruptSide || im.width != kCorruptSide)
      throw CliError(source.item_name(i) + ": " + std::to_string(im.width) + "x" + std::to_string(im.height) +
                     " with " + std::to_string(im.channels) + " channels; the corruptions work on 32x32 RGB images");
    std::copy(im.pixels.begin(), im.pixels.end(), set.pixels.begin() + long(i * kCifar10ImageBytes));
  }
  return set;
}

void run_corrupt(const CorruptOptions& o) {
  const std::vector<Corruption> corruptions = selected_corruptions(o.corruption);
  if (o.out.empty() && o.png.empty()) throw CliError("nothing to do: give --out FILE and/or --png GRID.png");
  std::vector<int> severities;
  if (!o.out.empty()) {
    if (o.severity.empty()) throw CliError("--out needs --severity 1..5 or all");
    severities = selected_severities(o.severity);
  } else if (!o.severity.empty()) {
    selected_severities(o.severity);  // validate even though the grid shows all five
  }
  if (o.threads < 0) throw CliError("--threads must be >= 0 (0 = all cores)");
  // Fail on a bad output path before spending time corrupting.
  auto check_parent = [](const std::string& path, const char* flag) {
    const size_t slash = path.find_last_of('/');
    const std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    if (!is_directory(parent)) throw CliError(std::string(flag) + " " + path + ": directory " + parent + " does not exist");
  };
  if (!o.out.empty() && corruptions.size() == 1 && o.format == "bin") check_parent(o.out, "--out");
  if (!o.png.empty()) check_parent(o.png, "--png");

  bool needs_frost = false;
  for (const Corruption c : corruptions) needs_frost = needs_frost || corruption_needs_frost(c);
  if (!o.input.empty() && !o.data.empty()) throw CliError("--input and --data: give one of them");
  const bool default_input = o.input.empty() && o.data.empty();
  const std::string data_dir = (default_input || needs_frost) ? resolve_data_dir() : std::string();
  std::unique_ptr<DataSource> source;
  if (!o.data.empty()) {
    source = open_data_source(o.data, parse_bad_images(o.bad_images), o.threads);
    const std::string skipped = skipped_summary(*source);
    if (!skipped.empty()) std::fprintf(stderr, "tinyzo: %s\n", skipped.c_str());
  } else {
    source = open_cifar10_files({o.input.empty() ? cifar10_test_batch_path(data_dir) : o.input});
  }
  const auto* cifar = dynamic_cast<const Cifar10Source*>(source.get());
  const Cifar10Set set = cifar ? cifar->set() : cifar_layout(*source);
  if (o.format == "bin" && !o.out.empty() && source->n_classes() > kCifar10Classes)
    throw CliError(source->description() + ": " + std::to_string(source->n_classes()) +
                   " classes do not fit CIFAR-10 records (labels 0..9); use --format png");
  size_t count = set.size();
  if (o.count > 0) {
    if (size_t(o.count) > set.size())
      throw CliError("--count " + std::to_string(o.count) + ": expected 1.." + std::to_string(set.size()));
    count = size_t(o.count);
  }
  FrostSet frost_set;
  const FrostSet* frost = nullptr;
  if (needs_frost) {
    frost_set = load_frost_set(data_dir);
    frost = &frost_set;
  }

  if (!o.out.empty() && o.format == "png") {
    make_directories(o.out);
    std::printf("%-18s %9s %12s\n", "corruption", "seconds", "images/s");
    double total = 0.0;
    for (const Corruption c : corruptions) {
      const std::string dir = corruptions.size() > 1 ? o.out + "/" + corruption_name(c) : o.out;
      const double sec = write_png_folder(c, severities, o, set, count, frost, *source, dir);
      total += sec;
      const double n = double(count * severities.size());
      std::printf("%-18s %9.3f %12.0f\n", corruption_name(c), sec, sec > 0 ? n / sec : 0.0);
      std::fflush(stdout);
    }
    std::printf("wrote %zu images x %zu severities per corruption as PNG folders (one per class) below %s (%.2f s "
                "corrupting)\n",
                count, severities.size(), o.out.c_str(), total);
  } else if (!o.out.empty()) {
    const bool to_dir = corruptions.size() > 1;
    if (to_dir) make_directories(o.out);
    std::printf("%-18s %9s %12s\n", "corruption", "seconds", "images/s");
    double total = 0.0;
    for (const Corruption c : corruptions) {
      const std::string path = to_dir ? o.out + "/" + corruption_name(c) + ".bin" : o.out;
      const double sec = write_split(c, severities, o, set, count, frost, path);
      total += sec;
      const double n = double(count * severities.size());
      std::printf("%-18s %9.3f %12.0f\n", corruption_name(c), sec, sec > 0 ? n / sec : 0.0);
      std::fflush(stdout);
    }
    std::printf("wrote %zu records x %zu severities per corruption to %s (%.2f s corrupting)\n", count,
                severities.size(), o.out.c_str(), total);
  }
  if (!o.png.empty()) write_grid(corruptions, o, set, frost);
}

}  // namespace

void register_corrupt_command(CLI::App& app) {
  auto opts = std::make_shared<CorruptOptions>();
  CLI::App* cmd = app.add_subcommand(
      "corrupt", "write a CIFAR-10-C style corrupted copy of the CIFAR-10 test set, or a PNG grid to look at");
  cmd->add_option("--corruption", opts->corruption, "corruption name (gaussian_noise, ..., spatter), a comma-separated list, or all")
      ->required();
  cmd->add_option("--severity", opts->severity, "severity 1..5, or all (5 blocks, severity-major)");
  add_u64_option(cmd, "--seed", &opts->seed, "seed of the random draws (default 0)");
  add_int_option(cmd, "--count", &opts->count, 1, INT64_MAX,
                 "corrupt only the first N images (default: all)");
  cmd->add_option("--input", opts->input, "CIFAR-10 binary file (default: the test batch in the data directory)");
  cmd->add_option("--data", opts->data,
                  "corrupt your own 32x32 RGB images: an image folder (DIR/<class>/<image>.png|jpg|bmp) or CIFAR-10 "
                  "files (docs/data.md)");
  cmd->add_option("--bad-images", opts->bad_images, "an unreadable image in --data: stop (default) or skip")
      ->check(CLI::IsMember({"stop", "skip"}));
  cmd->add_option("--format", opts->format,
                  "bin (default: CIFAR-10 records) or png (an image folder per class, for tinyzo train --data)")
      ->check(CLI::IsMember({"bin", "png"}));
  cmd->add_option("--out", opts->out,
                  "output file (a directory with --corruption all), CIFAR-10 binary layout; with --format png the "
                  "output directory");
  cmd->add_option("--png", opts->png, "write a PNG grid: rows corruptions, columns clean and severities 1..5");
  cmd->add_option("--image", opts->images, "image index for --png (repeatable; default 0)");
  add_int_option(cmd, "--threads", &opts->threads, 0, 1024, "worker threads (default 0 = all cores)");
  cmd->callback([opts] { run_corrupt(*opts); });
}

}  // namespace tinyzo::cli
