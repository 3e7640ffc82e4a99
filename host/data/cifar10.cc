#include "data/cifar10.h"

#include <algorithm>

#include "data/data_dir.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {

Cifar10Set parse_cifar10(const uint8_t* data, size_t size, const std::string& what) {
  if (size == 0) throw CliError(what + ": empty, expected CIFAR-10 records of 3073 bytes");
  if (size % kCifar10RecordBytes != 0)
    throw CliError(what + ": " + std::to_string(size) +
                   " bytes is not a multiple of the 3073-byte CIFAR-10 record (truncated or not CIFAR-10 binary)");
  const size_t n = size / kCifar10RecordBytes;
  Cifar10Set set;
  set.labels.resize(n);
  set.pixels.resize(n * kCifar10ImageBytes);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* rec = data + i * kCifar10RecordBytes;
    if (rec[0] >= kCifar10Classes)
      throw CliError(what + ": record " + std::to_string(i) + " has label " + std::to_string(rec[0]) +
                     ", expected 0..9 (not a CIFAR-10 binary file?)");
    set.labels[i] = rec[0];
    std::copy(rec + 1, rec + kCifar10RecordBytes, set.pixels.begin() + i * kCifar10ImageBytes);
  }
  return set;
}

Cifar10Set load_cifar10(const std::string& path) {
  const InputFile file(path, "CIFAR-10 data");
  uint8_t magic[2] = {0, 0};
  file.read_at(0, magic, size_t(std::min<uint64_t>(file.size(), 2)));
  if (has_gzip_magic(magic, size_t(std::min<uint64_t>(file.size(), 2)))) {
    const std::vector<uint8_t> raw = file.read_all(kMaxCifar10Bytes);
    const std::vector<uint8_t> plain = gunzip_bytes(raw.data(), raw.size(), path, kMaxCifar10Bytes);
    return parse_cifar10(plain.data(), plain.size(), path);
  }
  // Plain records: the size alone tells a file that is not CIFAR-10.
  file.require_at_most(kMaxCifar10Bytes);
  if (file.size() % kCifar10RecordBytes != 0)
    throw CliError(
        path + ": " + std::to_string(file.size()) +
        " bytes is not a multiple of the 3073-byte CIFAR-10 record (truncated or not CIFAR-10 binary)");
  const std::vector<uint8_t> raw = file.read_all(kMaxCifar10Bytes);
  return parse_cifar10(raw.data(), raw.size(), path);
}

std::string cifar10_test_batch_path(const std::string& data_dir) {
  const std::string gz = data_dir + "/" + kCifar10TestRelPath;
  if (is_regular_file(gz)) return gz;
  const std::string plain = data_dir + "/cifar10/test_batch.bin";
  if (is_regular_file(plain)) return plain;
  throw CliError(gz + ": missing (the CIFAR-10 test batch; " + plain + " would also do); " + data_download_hint());
}

const char* cifar10_class_name(int label) {
  static const char* const kNames[kCifar10Classes] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                      "dog",      "frog",       "horse", "ship", "truck"};
  return label >= 0 && label < kCifar10Classes ? kNames[label] : "?";
}

Cifar10Source::Cifar10Source(Cifar10Set set, std::vector<Part> parts) : set_(std::move(set)), parts_(std::move(parts)) {
  labels_ = set_.labels;
  for (int c = 0; c < kCifar10Classes; ++c) class_names_.push_back(cifar10_class_name(c));
}

PlanarImage Cifar10Source::image(size_t i) const {
  if (i >= set_.size()) throw CliError(item_name(i) + ": out of range");
  PlanarImage im;
  im.channels = kCifar10Channels;
  im.height = im.width = kCifar10Side;
  im.pixels.assign(set_.image(i), set_.image(i) + kCifar10ImageBytes);
  return im;
}

std::string Cifar10Source::item_name(size_t i) const {
  size_t k = i;
  for (const Part& p : parts_) {
    if (k < p.records) return p.path + " record " + std::to_string(k);
    k -= p.records;
  }
  return "CIFAR-10 record " + std::to_string(i);
}

std::string Cifar10Source::description() const {
  if (parts_.empty()) return "CIFAR-10 records";
  if (parts_.size() == 1) return parts_[0].path;
  std::string s = std::to_string(parts_.size()) + " CIFAR-10 files (" + parts_[0].path;
  for (size_t k = 1; k < parts_.size(); ++k) s += ", " + parts_[k].path;
  return s + ")";
}

ImageSet to_image_set(const Cifar10Set& set) {
  ImageSet out;
  out.labels = set.labels;
  out.pixels = set.pixels;
  out.dims.resize(set.size());
  for (size_t i = 0; i < set.size(); ++i)
    out.dims[i] = ImageSet::Dims{kCifar10Channels, kCifar10Side, kCifar10Side, i * kCifar10ImageBytes};
  return out;
}

std::unique_ptr<Cifar10Source> open_cifar10_files(const std::vector<std::string>& paths) {
  Cifar10Set all;
  std::vector<Cifar10Source::Part> parts;
  for (const std::string& path : paths) {
    Cifar10Set s = load_cifar10(path);
    if (all.size() + s.size() > 80000)
      throw CliError(path + ": more than 80,000 CIFAR-10 records in all (the most tinyzo reads)");
    parts.push_back({path, s.size()});
    all.labels.insert(all.labels.end(), s.labels.begin(), s.labels.end());
    all.pixels.insert(all.pixels.end(), s.pixels.begin(), s.pixels.end());
  }
  return std::make_unique<Cifar10Source>(std::move(all), std::move(parts));
}

}  // namespace tinyzo
