// A folder of images as a DataSource (docs/data.md, "Your own data"):
//
//   DIR/<class>/.../<image>.{png,jpg,jpeg,bmp}
//
// Classes are DIR's subfolders (names starting with '.' are ignored), sorted
// by name in byte order; class k is the k-th. An image is a file under a class
// folder, at any depth, whose name ends in .png, .jpg, .jpeg or .bmp (any
// case); other files are ignored. Items are ordered by class, then by path
// below the class folder (byte order). Every image is decoded once when the
// folder is opened, so an unreadable one is found before any work starts.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "data/data_source.h"

namespace tinyzo {

class ImageFolderSource : public DataSource {
 public:
  // Scans and checks `dir`. Throws CliError when it has no class folder,
  // more than kMaxClasses classes, no image at all, or (BadImages::kStop) an
  // image that cannot be decoded, naming that file.
  ImageFolderSource(const std::string& dir, BadImages bad_images, int threads = 0);

  PlanarImage image(size_t i) const override;
  std::string item_name(size_t i) const override { return paths_[i]; }
  std::string description() const override;
  // The image's path relative to its class folder ("sub/001.png").
  const std::string& relative_path(size_t i) const { return relative_[i]; }

 private:
  std::string dir_;
  std::vector<std::string> paths_, relative_;
  // The images decoded while checking, kept when they fit kCacheBytes.
  std::vector<PlanarImage> cache_;
  static constexpr size_t kCacheBytes = size_t(512) << 20;
};

// True for a file name ending in .png, .jpg, .jpeg or .bmp (any case).
bool is_image_file_name(const std::string& name);

// Decodes an image file (PNG, JPEG, BMP; 8 bits per value) into planar form,
// keeping its channel count. Throws CliError "<path>: <reason>".
PlanarImage read_planar_image(const std::string& path);

}  // namespace tinyzo
