#include "data/data_source.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <system_error>
#include <thread>

#include "data/cifar10.h"
#include "data/image_folder.h"
#include "data/protocol.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {

namespace fs = std::filesystem;

void ImageSet::add(uint8_t label, const PlanarImage& im) {
  labels.push_back(label);
  dims.push_back(Dims{im.channels, im.height, im.width, pixels.size()});
  pixels.insert(pixels.end(), im.pixels.begin(), im.pixels.end());
}

const char* bad_images_name(BadImages b) { return b == BadImages::kSkip ? "skip" : "stop"; }

BadImages parse_bad_images(const std::string& text) {
  if (text == "stop") return BadImages::kStop;
  if (text == "skip") return BadImages::kSkip;
  throw CliError("--bad-images " + text + ": expected skip or stop");
}

std::string skipped_summary(const DataSource& source) {
  const std::vector<std::string>& s = source.skipped();
  if (s.empty()) return "";
  std::string line = "skipped " + std::to_string(s.size()) + " unreadable image" + (s.size() == 1 ? "" : "s") +
                     " (--bad-images skip): ";
  for (size_t i = 0; i < s.size(); ++i) line += (i ? "; " : "") + s[i];
  return line;
}

void check_class_count(const DataSource& source, size_t n_outputs, const std::string& model) {
  check_class_count(source.description(), source.class_names(), n_outputs, model);
}

void check_class_count(const std::string& description, const std::vector<std::string>& class_names,
                       size_t n_outputs, const std::string& model) {
  if (class_names.size() == n_outputs) return;
  std::string names;
  const size_t shown = std::min<size_t>(class_names.size(), 8);
  for (size_t i = 0; i < shown; ++i) names += (i ? ", " : "") + class_names[i];
  if (shown < class_names.size()) names += ", ...";
  throw CliError(description + ": " + std::to_string(class_names.size()) + " classes (" + names +
                 "), but " + model + " has " + std::to_string(n_outputs) +
                 " outputs; the data needs one class per model output (a " + std::to_string(n_outputs) +
                 "-class model for this data, or " + std::to_string(n_outputs) + " class folders)");
}

ImageSet load_images(const DataSource& source, const std::vector<uint32_t>& indices, int threads) {
  std::vector<PlanarImage> images(indices.size());
  std::atomic<size_t> next{0};
  unsigned n_threads = threads > 0 ? unsigned(threads) : std::max(1u, std::thread::hardware_concurrency());
  n_threads = std::min<unsigned>(n_threads, unsigned(std::max<size_t>(std::min<size_t>(indices.size(), 64), 1)));
  run_workers(int(n_threads), [&](int) {
    for (size_t k; (k = next.fetch_add(1)) < indices.size();) {
      if (indices[k] >= source.size()) throw CliError("load_images: index out of range");
      images[k] = source.image(indices[k]);
    }
  });
  ImageSet out;
  size_t bytes = 0;
  for (const PlanarImage& im : images) bytes += im.pixels.size();
  out.pixels.reserve(bytes);
  for (size_t k = 0; k < indices.size(); ++k) out.add(uint8_t(source.label(indices[k])), images[k]);
  return out;
}

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

}  // namespace


std::unique_ptr<DataSource> open_data_source(const std::string& path, BadImages bad_images, int threads) {
  if (path.empty()) throw CliError("--data: is empty (give an image folder or CIFAR-10 binary files)");
  if (is_regular_file(path)) return open_cifar10_files({path});
  if (!is_directory(path)) {
    const std::string kind = non_regular_file_kind(path);
    throw CliError(path + ": " + (kind.empty() ? std::string("no such file or directory") : "is " + kind) +
                   " (--data takes an image folder or CIFAR-10 binary files)");
  }
  bool has_subdirs = false;
  std::vector<std::string> bins;
  std::error_code ec;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (hidden(it->path())) continue;
    if (it->is_directory()) has_subdirs = true;
    const std::string name = it->path().filename().string();
    if (it->is_regular_file() && (ends_with(name, ".bin") || ends_with(name, ".bin.gz")))
      bins.push_back(path + "/" + name);
  }
  if (ec) throw CliError(path + ": cannot list (" + ec.message() + ")");
  if (has_subdirs) return std::make_unique<ImageFolderSource>(path, bad_images, threads);
  if (!bins.empty()) {
    std::sort(bins.begin(), bins.end());
    return open_cifar10_files(bins);
  }
  throw CliError(path + ": holds neither class folders (DIR/<class>/<image>.png) nor CIFAR-10 .bin files");
}

}  // namespace tinyzo
