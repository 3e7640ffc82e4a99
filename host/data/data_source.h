// Where images come from: one interface over the CIFAR-10 binary files
// (host/data/cifar10.h) and folders of images, one subfolder per class
// (host/data/image_folder.h). The protocol's split (host/data/protocol.h) and
// the commands (eval, train, select, split, corrupt) read data only through
// it. What `--data` accepts, the folder rules and the bad-image policy:
// docs/data.md ("Your own data").
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tinyzo {

// An 8-bit image, planar: channel c, row y, column x at
// pixels[(c * height + y) * width + x] (a CIFAR-10 record's layout).
// channels: 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).
struct PlanarImage {
  int channels = 0, height = 0, width = 0;
  std::vector<uint8_t> pixels;

  bool operator==(const PlanarImage& o) const {
    return channels == o.channels && height == o.height && width == o.width && pixels == o.pixels;
  }
};

// A read-only view of planar pixels (an image inside a PlanarImage or an
// ImageSet).
struct ImageView {
  const uint8_t* pixels = nullptr;
  int channels = 0, height = 0, width = 0;
};
inline ImageView view_of(const PlanarImage& im) { return ImageView{im.pixels.data(), im.channels, im.height, im.width}; }

// Images with labels in memory, planar and back to back (sizes may differ).
// For CIFAR-10 data it holds exactly the bytes of a Cifar10Set: pixels is
// the concatenation of the 3072-byte records' pixel parts.
struct ImageSet {
  struct Dims {
    int channels = 0, height = 0, width = 0;
    size_t offset = 0;  // into pixels
  };
  std::vector<uint8_t> labels;
  std::vector<uint8_t> pixels;
  std::vector<Dims> dims;

  size_t size() const { return labels.size(); }
  const uint8_t* image(size_t i) const { return pixels.data() + dims[i].offset; }
  ImageView view(size_t i) const {
    const Dims& d = dims[i];
    return ImageView{pixels.data() + d.offset, d.channels, d.height, d.width};
  }
  // Appends image `im` with `label`.
  void add(uint8_t label, const PlanarImage& im);
};

// What to do with an image file that cannot be read or decoded.
//   kStop: the command fails with one line naming the file (the default:
//          the split is a function of the set of readable images, so a file
//          silently left out would change which images train and test; a run
//          uses every file in the folder unless told otherwise);
//   kSkip: the file is left out, every skipped file is listed in one summary
//          line on stderr, and the rest are used.
enum class BadImages { kStop, kSkip };
// "stop" / "skip"; parse throws CliError for anything else.
const char* bad_images_name(BadImages b);
BadImages parse_bad_images(const std::string& text);

// The most classes a source may have: labels are stored in one byte, as in
// the CIFAR-10 records and the training data.
constexpr int kMaxClasses = 256;

// A labelled set of images. Implementations load their index (labels, names)
// when opened; image(i) may read and decode on demand. All methods are
// thread-safe for concurrent readers.
class DataSource {
 public:
  virtual ~DataSource() = default;

  // Number of items, 0..size()-1.
  size_t size() const { return labels_.size(); }
  // Classes 0..n_classes()-1 and their names (CIFAR-10's "airplane", ...;
  // a folder's subfolder names, sorted).
  int n_classes() const { return static_cast<int>(class_names_.size()); }
  const std::vector<std::string>& class_names() const { return class_names_; }
  // The label of every item (each < n_classes()).
  const std::vector<uint8_t>& labels() const { return labels_; }
  int label(size_t i) const { return labels_[i]; }

  // Item i's decoded 8-bit image. Throws CliError naming item_name(i) when it
  // can no longer be read (e.g. the file changed after the source was opened).
  virtual PlanarImage image(size_t i) const = 0;
  // Item i's name for messages: "DIR/cat/001.png", "FILE record 17".
  virtual std::string item_name(size_t i) const = 0;
  // What the source is, for messages: "image folder DIR (3 classes)".
  virtual std::string description() const = 0;

  // Files left out under BadImages::kSkip, one "name (reason)" each, in
  // scanning order. Empty for CIFAR-10 files (a bad record fails the file).
  const std::vector<std::string>& skipped() const { return skipped_; }

 protected:
  std::vector<uint8_t> labels_;
  std::vector<std::string> class_names_;
  std::vector<std::string> skipped_;
};

// Opens `--data PATH`:
//   a regular file                      -> CIFAR-10 binary records (plain or gzip);
//   a directory with subdirectories     -> an image folder (image_folder.h);
//   a directory of *.bin / *.bin.gz files and no subdirectories
//                                       -> those CIFAR-10 files, in name order, as one set.
// `threads` (0 = all cores) decodes a folder's images in parallel while it is
// checked; it changes nothing else. Throws CliError for a missing path, an
// empty directory, or (kStop) the first unreadable image.
std::unique_ptr<DataSource> open_data_source(const std::string& path, BadImages bad_images, int threads = 0);

// The one summary line of the skipped images ("" when none): "skipped 2
// unreadable images of DIR: a.png (reason), b.jpg (reason)".
std::string skipped_summary(const DataSource& source);

// Throws CliError unless the source has exactly `n_outputs` classes:
// "<source>: 3 classes (cat, dog, fox), the model <model> has 10 outputs; ...".
void check_class_count(const DataSource& source, size_t n_outputs, const std::string& model);
// The same from a description and class names (data already loaded).
void check_class_count(const std::string& description, const std::vector<std::string>& class_names,
                       size_t n_outputs, const std::string& model);

// Items `indices` of `source`, in that order, decoded with `threads` workers
// (0 = all cores; no effect on the bytes).
ImageSet load_images(const DataSource& source, const std::vector<uint32_t>& indices, int threads = 0);

}  // namespace tinyzo
