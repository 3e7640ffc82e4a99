// CIFAR-10 loader and gzip reader: synthetic files in a temporary directory,
// plus one test on the real test batch that fails (never skips) when the data
// is missing.
#include "data/cifar10.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "temp_dir.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {
namespace {

using test::TempDir;

// n records; record i has label i % 10 and pixel j = (i * 7 + j) & 255.
std::vector<uint8_t> synthetic_records(size_t n) {
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < n; ++i) {
    bytes.push_back(static_cast<uint8_t>(i % 10));
    for (size_t j = 0; j < kCifar10ImageBytes; ++j) bytes.push_back(static_cast<uint8_t>((i * 7 + j) & 255));
  }
  return bytes;
}

void write_plain(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  if (!bytes.empty()) ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
}

void write_gzip(const std::string& path, const std::vector<uint8_t>& bytes, const char* mode = "wb") {
  gzFile g = gzopen(path.c_str(), mode);
  ASSERT_NE(g, nullptr);
  ASSERT_EQ(gzwrite(g, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(g), Z_OK);
}

// Expects `fn` to throw CliError whose message contains `needle`.
template <class F>
void expect_error(F fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected CliError containing '" << needle << "'";
  } catch (const CliError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "message must be one line";
  }
}

void expect_synthetic(const Cifar10Set& set, size_t n) {
  ASSERT_EQ(set.size(), n);
  ASSERT_EQ(set.pixels.size(), n * kCifar10ImageBytes);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(set.labels[i], i % 10);
    // Planar layout is kept: R plane, then G, then B.
    EXPECT_EQ(set.image(i)[0], (i * 7) & 255);
    EXPECT_EQ(set.image(i)[1024], (i * 7 + 1024) & 255);
    EXPECT_EQ(set.image(i)[3071], (i * 7 + 3071) & 255);
  }
}

TEST(Cifar10Test, LoadsPlainFile) {
  TempDir dir;
  write_plain(dir.file("a.bin"), synthetic_records(12));
  expect_synthetic(load_cifar10(dir.file("a.bin")), 12);
}

TEST(Cifar10Test, LoadsGzipFile) {
  TempDir dir;
  write_gzip(dir.file("a.bin.gz"), synthetic_records(25));
  expect_synthetic(load_cifar10(dir.file("a.bin.gz")), 25);
}

TEST(Cifar10Test, GzipDetectedByMagicNotName) {
  TempDir dir;
  write_gzip(dir.file("named_plain.bin"), synthetic_records(3));
  write_plain(dir.file("named_gz.bin.gz"), synthetic_records(3));
  expect_synthetic(load_cifar10(dir.file("named_plain.bin")), 3);
  expect_synthetic(load_cifar10(dir.file("named_gz.bin.gz")), 3);
}

TEST(Cifar10Test, LoadsMultiMemberGzip) {
  TempDir dir;
  const std::vector<uint8_t> all = synthetic_records(6);
  const std::vector<uint8_t> first(all.begin(), all.begin() + 2 * kCifar10RecordBytes);
  const std::vector<uint8_t> rest(all.begin() + 2 * kCifar10RecordBytes, all.end());
  write_gzip(dir.file("m.gz"), first, "wb");
  write_gzip(dir.file("m.gz"), rest, "ab");  // a second gzip member appended
  expect_synthetic(load_cifar10(dir.file("m.gz")), 6);
}

TEST(Cifar10Test, RejectsTruncatedPlainFile) {
  TempDir dir;
  std::vector<uint8_t> bytes = synthetic_records(4);
  bytes.resize(bytes.size() - 100);
  write_plain(dir.file("t.bin"), bytes);
  expect_error([&] { load_cifar10(dir.file("t.bin")); }, "not a multiple of the 3073-byte");
}

TEST(Cifar10Test, RejectsTruncatedRecordInsideGzip) {
  TempDir dir;
  std::vector<uint8_t> bytes = synthetic_records(4);
  bytes.resize(bytes.size() - 1);
  write_gzip(dir.file("t.gz"), bytes);
  expect_error([&] { load_cifar10(dir.file("t.gz")); }, "not a multiple");
}

TEST(Cifar10Test, RejectsBadLabel) {
  TempDir dir;
  std::vector<uint8_t> bytes = synthetic_records(5);
  bytes[3 * kCifar10RecordBytes] = 10;
  write_plain(dir.file("l.bin"), bytes);
  expect_error([&] { load_cifar10(dir.file("l.bin")); }, "record 3 has label 10");
  write_gzip(dir.file("l.gz"), bytes);
  expect_error([&] { load_cifar10(dir.file("l.gz")); }, "record 3 has label 10");
}

TEST(Cifar10Test, RejectsEmptyAndMissingFiles) {
  TempDir dir;
  write_plain(dir.file("empty.bin"), {});
  expect_error([&] { load_cifar10(dir.file("empty.bin")); }, "empty");
  expect_error([&] { load_cifar10(dir.file("missing.bin")); }, "missing.bin: No such file");
  expect_error([&] { load_cifar10(dir.file("")); }, "is a directory");
}

TEST(Cifar10Test, RejectsTruncatedGzip) {
  TempDir dir;
  write_gzip(dir.file("full.gz"), synthetic_records(20));
  std::vector<uint8_t> gz = read_file_bytes(dir.file("full.gz"), kMaxCifar10Bytes);
  for (size_t cut : {gz.size() - 4, gz.size() / 2, size_t(11)}) {
    std::vector<uint8_t> part(gz.begin(), gz.begin() + static_cast<long>(cut));
    write_plain(dir.file("cut.gz"), part);
    expect_error([&] { load_cifar10(dir.file("cut.gz")); }, "truncated gzip");
  }
}

TEST(Cifar10Test, RejectsCorruptGzip) {
  TempDir dir;
  write_gzip(dir.file("full.gz"), synthetic_records(20));
  std::vector<uint8_t> gz = read_file_bytes(dir.file("full.gz"), kMaxCifar10Bytes);
  // Damage the stored CRC-32 of the trailer: the inflated data is complete
  // but fails its check.
  std::vector<uint8_t> bad_crc = gz;
  bad_crc[bad_crc.size() - 8] ^= 0xff;
  write_plain(dir.file("crc.gz"), bad_crc);
  expect_error([&] { load_cifar10(dir.file("crc.gz")); }, "corrupt gzip data");
  // Garbage after a complete member.
  std::vector<uint8_t> trailing = gz;
  trailing.push_back('x');
  trailing.push_back('y');
  write_plain(dir.file("trail.gz"), trailing);
  expect_error([&] { load_cifar10(dir.file("trail.gz")); }, "corrupt gzip data");
  // A bad compression method in the header.
  std::vector<uint8_t> bad_method = gz;
  bad_method[2] = 7;
  write_plain(dir.file("method.gz"), bad_method);
  expect_error([&] { load_cifar10(dir.file("method.gz")); }, "corrupt gzip data");
}

TEST(Cifar10Test, ParsesFromMemory) {
  const std::vector<uint8_t> bytes = synthetic_records(2);
  expect_synthetic(parse_cifar10(bytes.data(), bytes.size(), "mem"), 2);
  expect_error([&] { parse_cifar10(bytes.data(), 3072, "mem"); }, "mem: 3072 bytes");
}

TEST(Cifar10Test, ClassNames) {
  EXPECT_STREQ(cifar10_class_name(0), "airplane");
  EXPECT_STREQ(cifar10_class_name(9), "truck");
  EXPECT_STREQ(cifar10_class_name(10), "?");
}

// The real CIFAR-10 test batch of the shared data directory. Fails with a
// clear message when it is missing: this test must never pass vacuously.
TEST(Cifar10RealData, TestBatchHas1000ImagesPerClass) {
  const char* env = std::getenv("TINYZO_DATA");
  const std::string data_dir =
      env != nullptr && *env != '\0' ? std::string(env) : std::string(TINYZO_SOURCE_DIR) + "/../shared/data";
  std::string path;
  try {
    path = cifar10_test_batch_path(data_dir);
  } catch (const CliError& e) {
    FAIL() << "the CIFAR-10 test batch is missing (set $TINYZO_DATA to the shared data directory): "
           << e.what();
  }
  const Cifar10Set set = load_cifar10(path);
  ASSERT_EQ(set.size(), 10000u);
  std::vector<int> per_class(kCifar10Classes, 0);
  for (uint8_t l : set.labels) ++per_class[l];
  for (int c = 0; c < kCifar10Classes; ++c) EXPECT_EQ(per_class[size_t(c)], 1000) << cifar10_class_name(c);
  // Not a constant image set: the pixels use the whole byte range.
  uint8_t lo = 255, hi = 0;
  for (uint8_t p : set.pixels) lo = std::min(lo, p), hi = std::max(hi, p);
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 255);
}

}  // namespace
}  // namespace tinyzo
