// CIFAR-10 in the official binary layout: per record one label byte (0..9)
// then 3,072 pixel bytes, the R plane, the G plane and the B plane, each
// 32x32 row-major. Files may be plain or gzip-compressed (detected by the
// magic bytes 1f 8b). See docs/data.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "data/data_source.h"

namespace tinyzo {

constexpr int kCifar10Side = 32;
constexpr int kCifar10Channels = 3;
constexpr int kCifar10Classes = 10;
constexpr size_t kCifar10ImageBytes = size_t(kCifar10Channels) * kCifar10Side * kCifar10Side;  // 3072
constexpr size_t kCifar10RecordBytes = 1 + kCifar10ImageBytes;                                   // 3073

// A loaded set: labels[i] in 0..9, pixels of image i at pixels[i * 3072],
// planar [3][32][32] exactly as in the file.
struct Cifar10Set {
  std::vector<uint8_t> labels;
  std::vector<uint8_t> pixels;

  size_t size() const { return labels.size(); }
  const uint8_t* image(size_t i) const { return pixels.data() + i * kCifar10ImageBytes; }
};

// Parses decompressed records. `what` names the source in errors. Throws
// CliError when the size is not a positive multiple of 3073 or a label is
// outside 0..9.
Cifar10Set parse_cifar10(const uint8_t* data, size_t size, const std::string& what);

// The largest CIFAR-10 file read (plain, compressed, or once decompressed):
// 80,000 records, more than the 60,000 images of all of CIFAR-10.
constexpr uint64_t kMaxCifar10Bytes = 80000 * kCifar10RecordBytes;

// Loads a plain or gzip file. Throws CliError for a missing or non-regular
// file, corrupt or truncated gzip data, bad records, or more than
// kMaxCifar10Bytes (checked from the file size before reading, and while
// decompressing).
Cifar10Set load_cifar10(const std::string& path);

// The CIFAR-10 test batch inside a data directory: cifar10/test_batch.bin.gz,
// or cifar10/test_batch.bin (the official file, uncompressed) when the .gz is
// absent. Throws CliError naming both and where to get them.
std::string cifar10_test_batch_path(const std::string& data_dir);

// "airplane", "automobile", ... for 0..9; "?" otherwise.
const char* cifar10_class_name(int label);

// CIFAR-10 records as a DataSource: 10 classes named as above, item i the
// planar 3x32x32 image of record i, byte for byte. `parts` name the files the
// records came from, in order, with their record counts (item names: "FILE
// record K"); empty = one unnamed part ("CIFAR-10 record K").
class Cifar10Source : public DataSource {
 public:
  struct Part {
    std::string path;
    size_t records = 0;
  };
  explicit Cifar10Source(Cifar10Set set, std::vector<Part> parts = {});
  PlanarImage image(size_t i) const override;
  std::string item_name(size_t i) const override;
  std::string description() const override;
  const Cifar10Set& set() const { return set_; }

 private:
  Cifar10Set set_;
  std::vector<Part> parts_;
};

// The set as an ImageSet: the same labels and pixel bytes, each image 3x32x32.
ImageSet to_image_set(const Cifar10Set& set);

// Loads CIFAR-10 files (each plain or gzip) as one source, in the given order.
std::unique_ptr<Cifar10Source> open_cifar10_files(const std::vector<std::string>& paths);

}  // namespace tinyzo
