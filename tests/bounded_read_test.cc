// Bounded reading of every input (issue 14, item 3): models, checkpoints,
// CIFAR-10 files, images and configs are refused from their type, size and
// header before anything large is read or allocated. The large files are
// sparse (ftruncate): they cost no disk and, read whole, would cost
// gigabytes of memory, which is what the tests make sure never happens
// (cli_train_test.cc runs the binary under a 1 GB address-space limit).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "data/image_io.h"
#include "models/model_store.h"
#include "temp_dir.h"
#include "test_models.h"
#include "tinyzo/model_format.h"
#include "train/checkpoint.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {
namespace {

namespace fs = std::filesystem;

using Dir = test::TempDir;

void write(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// `head` followed by zeros up to `size` bytes, the zeros a hole in the file.
void write_sparse(const std::string& path, const std::vector<uint8_t>& head, uint64_t size) {
  write(path, head);
  fs::resize_file(path, size);
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const CliError& e) {
    return e.what();
  }
  return "";
}

constexpr uint64_t k5GB = uint64_t(5) << 30;

TEST(InputFile, RefusesWhatIsNotARegularFileWithoutBlocking) {
  Dir d;
  const std::string fifo = d.file("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Opening a FIFO for reading would wait for a writer; it is refused at once.
  EXPECT_NE(error_of([&] {
              InputFile(fifo, "model");
            }).find("pipe: is a FIFO (named pipe), expected a regular model file"),
            std::string::npos);
  EXPECT_NE(error_of([&] { InputFile("/dev/null", "model"); }).find("/dev/null: is a character device"),
            std::string::npos);
  EXPECT_NE(error_of([&] { InputFile(d.path(), "model"); }).find("is a directory"), std::string::npos);
  EXPECT_NE(error_of([&] { InputFile(d.file("missing"), "model"); }).find("No such file"), std::string::npos);
  EXPECT_EQ(non_regular_file_kind(fifo), "a FIFO (named pipe)");
  EXPECT_EQ(non_regular_file_kind(d.file("missing")), "");
  // The model loader says the same.
  EXPECT_NE(error_of([&] { LoadedModel::load(fifo); }).find("is a FIFO"), std::string::npos);
  EXPECT_NE(
      error_of([&] { resolve_model_path("/dev/null"); }).find("is a character device, expected a .tzm file"),
      std::string::npos);
}

TEST(InputFile, SizeIsKnownBeforeReading) {
  Dir d;
  write_sparse(d.file("big"), {1, 2, 3}, k5GB);
  const InputFile f(d.file("big"), "thing");
  EXPECT_EQ(f.size(), k5GB);
  uint8_t b[3];
  f.read_at(0, b, 3);
  EXPECT_EQ(b[2], 3);
  EXPECT_NE(error_of([&] { f.require_at_most(1 << 20); }).find("5368709120 bytes, more than any thing"),
            std::string::npos);
  EXPECT_NE(error_of([&] { (void)read_file_bytes(d.file("big"), 1 << 20); }).find("not read"),
            std::string::npos);
  // A read past the end is an error, never a short read.
  EXPECT_NE(error_of([&] { f.read_at(k5GB - 1, b, 2); }), "");
}

TEST(BoundedModel, FiveGigabytesAreRefusedFromTheSize) {
  Dir d;
  std::vector<uint8_t> head = testing::trainable_model_bytes();
  head.resize(64);
  write_sparse(d.file("huge.tzm"), head, k5GB);
  const std::string why = error_of([&] { LoadedModel::load(d.file("huge.tzm")); });
  EXPECT_NE(why.find("more than a .tzm model can hold"), std::string::npos) << why;
}

TEST(BoundedModel, TheHeaderIsCheckedBeforeTheRest) {
  Dir d;
  // 3 GB (under the format's limit) of zeros: the magic refuses it after 64 bytes.
  write_sparse(d.file("zeros.tzm"), {}, uint64_t(3) << 30);
  EXPECT_NE(error_of([&] { LoadedModel::load(d.file("zeros.tzm")); }).find("corrupt model: bad magic"),
            std::string::npos);
  // A real header whose size field disagrees with the file: refused from the header.
  std::vector<uint8_t> m = testing::trainable_model_bytes();
  std::vector<uint8_t> head(m.begin(), m.begin() + 64);
  write_sparse(d.file("long.tzm"), head, uint64_t(3) << 30);
  EXPECT_NE(
      error_of([&] { LoadedModel::load(d.file("long.tzm")); }).find("corrupt model: file size mismatch"),
      std::string::npos);
  write(d.file("short.tzm"), std::vector<uint8_t>(m.begin(), m.end() - 16));
  EXPECT_NE(error_of([&] { LoadedModel::load(d.file("short.tzm")); }).find("corrupt model: truncated file"),
            std::string::npos);
  // The intact model still loads.
  write(d.file("ok.tzm"), m);
  EXPECT_EQ(LoadedModel::load(d.file("ok.tzm")).size_bytes(), m.size());
}

TEST(BoundedCheckpoint, SizeAndHeadBeforeTheBody) {
  Dir d;
  Checkpoint c;
  c.fingerprint = "0123456789abcdef";
  c.step = 3;
  c.log_bytes = 77;
  CheckpointLayer l;
  l.op = 1;
  l.weights = l.best_weights = std::vector<int8_t>(40, 2);
  l.biases = l.best_biases = std::vector<int32_t>(5, -9);
  c.layers.push_back(l);
  const std::vector<uint8_t> bytes = serialize_checkpoint(c);
  EXPECT_EQ(checkpoint_size_bytes(c.layers), bytes.size());
  write(d.file("ck.bin"), bytes);
  const CheckpointHead h = peek_checkpoint(d.file("ck.bin"));
  EXPECT_EQ(h.fingerprint, c.fingerprint);
  EXPECT_EQ(h.step, 3u);
  EXPECT_EQ(h.log_bytes, 77u);
  EXPECT_EQ(load_checkpoint(d.file("ck.bin"), bytes.size()).step, 3u);
  // A checkpoint of other layers (larger than this run's) is refused unread.
  EXPECT_NE(error_of([&] { load_checkpoint(d.file("ck.bin"), bytes.size() - 1); }).find("not read"),
            std::string::npos);
  // 5 GB behind a valid head: refused by the default bound.
  write_sparse(d.file("big.bin"), std::vector<uint8_t>(bytes.begin(), bytes.begin() + 100), k5GB);
  EXPECT_NE(error_of([&] { load_checkpoint(d.file("big.bin")); }).find("not read"), std::string::npos);
  // Not a checkpoint at all: the magic, before the size matters.
  write_sparse(d.file("zeros.bin"), {}, k5GB);
  EXPECT_NE(error_of([&] { load_checkpoint(d.file("zeros.bin")); }).find("not a tinyzo checkpoint"),
            std::string::npos);
  EXPECT_NE(error_of([&] { peek_checkpoint(d.path()); }).find("is a directory"), std::string::npos);
}

TEST(BoundedCifar, SizeBeforeReadingAndDecompression) {
  Dir d;
  write_sparse(d.file("big.bin"), {}, k5GB);
  EXPECT_NE(error_of([&] { load_cifar10(d.file("big.bin")); }).find("not read"), std::string::npos);
  write_sparse(d.file("odd.bin"), {}, 3073 * 4 + 1);
  EXPECT_NE(error_of([&] { load_cifar10(d.file("odd.bin")); }).find("not a multiple"), std::string::npos);
  // A gzip stream that inflates past the bound stops inflating there.
  std::vector<uint8_t> zeros(1 << 20, 0);
  const std::string gz = d.file("bomb.gz");
  gzFile g = gzopen(gz.c_str(), "wb9");
  ASSERT_NE(g, nullptr);
  ASSERT_EQ(gzwrite(g, zeros.data(), unsigned(zeros.size())), int(zeros.size()));
  ASSERT_EQ(gzclose(g), Z_OK);
  const std::vector<uint8_t> packed = read_file_bytes(gz, 1 << 20);
  EXPECT_NE(error_of([&] {
              (void)gunzip_bytes(packed.data(), packed.size(), "bomb.gz", 65536);
            }).find("decompresses to more than 65536 bytes"),
            std::string::npos);
  EXPECT_EQ(gunzip_bytes(packed.data(), packed.size(), "bomb.gz", zeros.size()).size(), zeros.size());
}

TEST(BoundedImage, DimensionsBeforeDecoding) {
  Image8 img;
  img.width = img.height = 4;
  img.channels = 3;
  img.pixels.assign(48, 100);
  std::vector<uint8_t> png = encode_png(img);
  EXPECT_EQ(decode_image(png.data(), png.size(), 3, "ok.png").width, 4);
  // IHDR width and height (big-endian, bytes 16..23) claim 10000 x 10000
  // pixels: 300 MB that stb would allocate (its own limit is 1 GB).
  for (int at : {16, 20}) {
    png[size_t(at)] = 0;
    png[size_t(at) + 1] = 0;
    png[size_t(at) + 2] = 0x27;
    png[size_t(at) + 3] = 0x10;
  }
  const std::string why = error_of([&] { (void)decode_image(png.data(), png.size(), 3, "huge.png"); });
  EXPECT_NE(why.find("huge.png: 10000x10000 pixels"), std::string::npos) << why;
  Dir d;
  write_sparse(d.file("big.png"), {}, k5GB);
  EXPECT_NE(error_of([&] { (void)read_image(d.file("big.png")); }).find("not read"), std::string::npos);
}

}  // namespace
}  // namespace tinyzo
