#include "data/image_folder.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <exception>
#include <filesystem>
#include <system_error>
#include <thread>

#include "data/cifar10.h"
#include "data/image_io.h"
#include "data/protocol.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

// Image files below `class_dir`, as paths relative to it, sorted.
std::vector<std::string> scan_class(const fs::path& class_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(class_dir, fs::directory_options::none, ec), end;
  if (ec) throw CliError(class_dir.string() + ": cannot list (" + ec.message() + ")");
  for (; it != end; it.increment(ec)) {
    if (ec) throw CliError(class_dir.string() + ": cannot list (" + ec.message() + ")");
    if (hidden(it->path())) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec)) continue;
    if (!is_image_file_name(it->path().filename().string())) continue;
    out.push_back(it->path().lexically_relative(class_dir).generic_string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

PlanarImage to_planar(const Image8& im) {
  PlanarImage p;
  p.channels = im.channels;
  p.height = im.height;
  p.width = im.width;
  p.pixels.resize(im.pixels.size());
  const size_t plane = size_t(im.width) * size_t(im.height);
  for (size_t i = 0; i < plane; ++i)
    for (int c = 0; c < im.channels; ++c) p.pixels[size_t(c) * plane + i] = im.pixels[i * size_t(im.channels) + c];
  return p;
}

}  // namespace

bool is_image_file_name(const std::string& name) {
  const std::string n = lower(name);
  return ends_with(n, ".png") || ends_with(n, ".jpg") || ends_with(n, ".jpeg") || ends_with(n, ".bmp");
}

PlanarImage read_planar_image(const std::string& path) { return to_planar(read_image(path, 0)); }

ImageFolderSource::ImageFolderSource(const std::string& dir, BadImages bad_images, int threads) : dir_(dir) {
  std::vector<std::string> classes;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (!hidden(it->path()) && it->is_directory()) classes.push_back(it->path().filename().string());
  if (ec) throw CliError(dir + ": cannot list (" + ec.message() + ")");
  std::sort(classes.begin(), classes.end());
  if (classes.empty())
    throw CliError(dir + ": no class folders (expected DIR/<class>/<image>.png|jpg|bmp, one folder per class)");
  if (classes.size() > size_t(kMaxClasses))
    throw CliError(dir + ": " + std::to_string(classes.size()) + " class folders, at most " +
                   std::to_string(kMaxClasses) + " are supported");

  std::vector<std::string> paths, relative;
  std::vector<uint8_t> labels;
  for (size_t c = 0; c < classes.size(); ++c) {
    for (const std::string& rel : scan_class(fs::path(dir) / classes[c])) {
      paths.push_back(dir + "/" + classes[c] + "/" + rel);
      relative.push_back(rel);
      labels.push_back(static_cast<uint8_t>(c));
    }
  }
  if (paths.empty())
    throw CliError(dir + ": no images in its " + std::to_string(classes.size()) +
                   " class folders (.png, .jpg, .jpeg or .bmp files)");

  // Decode everything once, in parallel; errors are collected per item so
  // the one reported (or the skip list) does not depend on the thread count.
  const size_t n = paths.size();
  std::vector<PlanarImage> decoded(n);
  std::vector<std::string> errors(n);
  std::atomic<size_t> next{0};
  unsigned n_threads = threads > 0 ? unsigned(threads) : std::max(1u, std::thread::hardware_concurrency());
  n_threads = std::min<unsigned>(n_threads, unsigned(std::min<size_t>(n, 64)));
  run_workers(int(n_threads), [&](int) {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      try {
        decoded[i] = read_planar_image(paths[i]);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
  });
  size_t cached_bytes = 0;
  bool keep = true;
  for (size_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) {
      if (bad_images == BadImages::kStop)
        throw CliError(errors[i] + " (an unreadable image; --bad-images skip leaves such files out)");
      // errors[i] is "<path>: <reason>"; the summary lists "<path> (<reason>)".
      const std::string prefix = paths[i] + ": ";
      skipped_.push_back(errors[i].compare(0, prefix.size(), prefix) == 0
                             ? paths[i] + " (" + errors[i].substr(prefix.size()) + ")"
                             : errors[i]);
      continue;
    }
    paths_.push_back(paths[i]);
    relative_.push_back(relative[i]);
    labels_.push_back(labels[i]);
    cached_bytes += decoded[i].pixels.size();
    keep = keep && cached_bytes <= kCacheBytes;
    cache_.push_back(std::move(decoded[i]));
  }
  if (!keep) cache_.clear();
  if (paths_.empty()) throw CliError(dir + ": none of its " + std::to_string(n) + " image files could be decoded");
  class_names_ = std::move(classes);
}

PlanarImage ImageFolderSource::image(size_t i) const {
  if (i >= paths_.size()) throw CliError(dir_ + ": image index " + std::to_string(i) + " out of range");
  if (!cache_.empty()) return cache_[i];
  return read_planar_image(paths_[i]);
}

std::string ImageFolderSource::description() const {
  return "image folder " + dir_ + " (" + std::to_string(n_classes()) + " classes, " + std::to_string(size()) +
         " images)";
}

}  // namespace tinyzo
