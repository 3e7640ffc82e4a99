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
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "commands.h"
#include "data/corruptions.h"
#include "data/data_dir.h"
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
  if (!o.out.empty() && corruptions.size() == 1) check_parent(o.out, "--out");
  if (!o.png.empty()) check_parent(o.png, "--png");

  bool needs_frost = false;
  for (const Corruption c : corruptions) needs_frost = needs_frost || corruption_needs_frost(c);
  const std::string data_dir = (o.input.empty() || needs_frost) ? resolve_data_dir() : std::string();
  const std::string input = o.input.empty() ? cifar10_test_batch_path(data_dir) : o.input;
  const Cifar10Set set = load_cifar10(input);
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

  if (!o.out.empty()) {
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
  cmd->add_option("--out", opts->out, "output file (a directory with --corruption all), CIFAR-10 binary layout");
  cmd->add_option("--png", opts->png, "write a PNG grid: rows corruptions, columns clean and severities 1..5");
  cmd->add_option("--image", opts->images, "image index for --png (repeatable; default 0)");
  add_int_option(cmd, "--threads", &opts->threads, 0, 1024, "worker threads (default 0 = all cores)");
  cmd->callback([opts] { run_corrupt(*opts); });
}

}  // namespace tinyzo::cli
