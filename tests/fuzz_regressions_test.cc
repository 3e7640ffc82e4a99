// Regression tests for what the libFuzzer targets (fuzz/, docs/fuzzing.md)
// found: each input that crashed a target, or its essence, must now be handled
// cleanly (a CliError, or a correct result).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "train/checkpoint.h"
#include "util/errors.h"
#include "data/image_io.h"
#include "tinyzo/model.h"
#include "train/train_config.h"

namespace tinyzo {
namespace {

std::vector<uint8_t> with_crc(std::vector<uint8_t> b) {
  const uint32_t crc = crc32_update(0, b.data(), b.size() - 4);
  std::memcpy(b.data() + b.size() - 4, &crc, 4);
  return b;
}

// An 8x8 RGB JPEG (quality 80) of a ramp with step `step`, as stb writes it.
std::vector<uint8_t> small_jpeg(int step) {
  Image8 im;
  im.width = im.height = 8;
  im.channels = 3;
  for (int i = 0; i < 8 * 8 * 3; ++i) im.pixels.push_back(uint8_t(i * step));
  return encode_jpeg(im, 80);
}

// Offset of the first marker FF `marker` after SOI, or 0.
size_t first_marker(const std::vector<uint8_t>& jpg, uint8_t marker) {
  for (size_t i = 2; i + 1 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == marker) return i;
  return 0;
}

// Runs fn() in a child process with at most 256 MB more address space than the
// parent has now. Returns 0 when fn threw a CliError, 1 for std::bad_alloc (it
// tried to allocate more), 2 when it returned, 3 when the child could not be
// set up; -1 (not run) under ASan, whose shadow memory cannot live under an
// address-space limit.
template <class Fn>
int under_memory_limit(Fn fn) {
#if defined(__SANITIZE_ADDRESS__)
  (void)fn;
  return -1;
#else
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return 3;
  if (pid == 0) {
    long pages = 0;
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    const rlim_t limit = rlim_t(pages) * rlim_t(sysconf(_SC_PAGESIZE)) + (rlim_t(256) << 20);
    const rlimit rl{limit, limit};
    if (pages == 0 || setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
    try {
      fn();
    } catch (const CliError&) {
      _exit(0);
    } catch (const std::bad_alloc&) {
      _exit(1);
    } catch (...) {
      _exit(3);
    }
    _exit(2);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 3;
  return WEXITSTATUS(status);
#endif
}

// tz_fuzz_checkpoint: a layer with no weights or biases made parse_checkpoint
// memcpy into an empty vector's null data() (undefined behaviour; UBSan).
TEST(FuzzRegressions, CheckpointWithAnEmptyLayer) {
  Checkpoint c;
  c.fingerprint = "0123456789abcdef";
  c.layers.resize(2);
  c.layers[0].op = 3;
  c.layers[1].op = 5;
  c.layers[1].weights = c.layers[1].best_weights = {1, -2, 3};
  c.layers[1].biases = c.layers[1].best_biases = {7};
  const std::vector<uint8_t> bytes = serialize_checkpoint(c);
  const Checkpoint back = parse_checkpoint(bytes.data(), bytes.size(), "mem");
  ASSERT_EQ(back.layers.size(), 2u);
  EXPECT_TRUE(back.layers[0].weights.empty());
  EXPECT_TRUE(back.layers[0].best_biases.empty());
  EXPECT_EQ(back.layers[1].weights, c.layers[1].weights);
  EXPECT_EQ(serialize_checkpoint(back), bytes);
}

// A layer claiming 2^28 biases in a file of a few hundred bytes: refused as
// truncated before anything is allocated for it (it used to resize to 1 GB
// first).
TEST(FuzzRegressions, CheckpointHugeLayerInASmallFileIsTruncated) {
  Checkpoint c;
  c.fingerprint = "0123456789abcdef";
  c.layers.resize(1);
  c.layers[0].weights = c.layers[0].best_weights = {1, 2};
  c.layers[0].biases = c.layers[0].best_biases = {3};
  std::vector<uint8_t> bytes = serialize_checkpoint(c);
  // The layer record: op (4), node (1), d_w (4), c_out (4) after the 84-byte fixed part.
  const uint32_t huge = 1u << 28;
  uint32_t c_out = 0;
  std::memcpy(&c_out, bytes.data() + 84 + 4 + 1 + 4, 4);
  ASSERT_EQ(c_out, 1u);
  std::memcpy(bytes.data() + 84 + 4 + 1 + 4, &huge, 4);
  bytes = with_crc(bytes);
  try {
    parse_checkpoint(bytes.data(), bytes.size(), "mem");
    FAIL() << "accepted";
  } catch (const CliError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  EXPECT_NE(under_memory_limit([&] { parse_checkpoint(bytes.data(), bytes.size(), "mem"); }), 1)
      << "the parse tried to allocate the claimed 1 GB";
}

// tz_fuzz_checkpoint: a layer's perturbation-mode byte other than 0 or 1 was
// read as NP, so a damaged file (with a matching CRC) passed and saved back
// different bytes.
TEST(FuzzRegressions, CheckpointModeByteMustBe0Or1) {
  Checkpoint c;
  c.fingerprint = "0123456789abcdef";
  c.layers.resize(1);
  c.layers[0].node = true;
  c.layers[0].weights = c.layers[0].best_weights = {4};
  std::vector<uint8_t> bytes = serialize_checkpoint(c);
  ASSERT_EQ(bytes[84 + 4], 1);
  bytes[84 + 4] = 249;
  bytes = with_crc(bytes);
  try {
    parse_checkpoint(bytes.data(), bytes.size(), "mem");
    FAIL() << "accepted";
  } catch (const CliError& e) {
    EXPECT_NE(std::string(e.what()).find("perturbation mode 249"), std::string::npos) << e.what();
  }
}

// tz_fuzz_checkpoint (CI, session 7): a version-2 checkpoint whose layers
// carry no momentum parsed, but serialized back as version 1 (the writer's
// only encoding without momentum): the round trip differed. Such a file is
// refused now.
TEST(FuzzRegressions, CheckpointVersion2WithoutMomentumIsRefused) {
  for (int n_layers : {0, 1}) {
    Checkpoint c;
    c.fingerprint = "0123456789abcdef";
    c.layers.resize(size_t(n_layers));
    for (CheckpointLayer& l : c.layers) l.weights = l.best_weights = {4, 5};
    std::vector<uint8_t> v1 = serialize_checkpoint(c);
    ASSERT_EQ(v1[4], 1);
    // The same content as version 2: per layer two zero momentum counts before the CRC.
    std::vector<uint8_t> v2(v1.begin(), v1.end() - 4);
    v2[4] = 2;
    for (int i = 0; i < n_layers; ++i) v2.insert(v2.end(), 8, 0);
    v2.insert(v2.end(), 4, 0);
    v2 = with_crc(v2);
    try {
      parse_checkpoint(v2.data(), v2.size(), "mem");
      FAIL() << "accepted, " << n_layers << " layers";
    } catch (const CliError& e) {
      EXPECT_NE(std::string(e.what()).find("version 2 without momentum"), std::string::npos) << e.what();
    }
  }
}

// tz_fuzz_image: a PNG whose first IDAT chunk is empty made stb_image memcpy 0
// bytes into a null buffer (UBSan: undefined). It decodes like the file
// without that chunk.
TEST(FuzzRegressions, PngWithAnEmptyFirstIdat) {
  Image8 im;
  im.width = 5;
  im.height = 3;
  im.channels = 1;
  for (int i = 0; i < 15; ++i) im.pixels.push_back(uint8_t(i * 17));
  const std::vector<uint8_t> good = encode_png(im);
  size_t idat = 0;
  for (size_t i = 8; i + 8 <= good.size(); ++i)
    if (std::memcmp(good.data() + i + 4, "IDAT", 4) == 0) {
      idat = i;
      break;
    }
  ASSERT_GT(idat, 0u);
  std::vector<uint8_t> empty_chunk = {0, 0, 0, 0, 'I', 'D', 'A', 'T'};
  const uint32_t crc = crc32_update(0, empty_chunk.data() + 4, 4);
  for (int k = 3; k >= 0; --k) empty_chunk.push_back(uint8_t(crc >> (8 * k)));  // big-endian
  std::vector<uint8_t> png = good;
  png.insert(png.begin() + long(idat), empty_chunk.begin(), empty_chunk.end());
  const Image8 back = decode_image(png.data(), png.size(), 0, "empty-idat.png");
  EXPECT_EQ(back.pixels, im.pixels);
}

// tz_fuzz_image: an 80-byte PNG whose IDAT chunk claims 1.3 GB made stb_image
// allocate 1.3 GB before finding the data missing. Refused up front, without
// allocating; so is a header claiming an image over kMaxImagePixels.
TEST(FuzzRegressions, PngChunkPastTheEndAndHugeImagesAreRefusedWithoutAllocating) {
  Image8 im;
  im.width = 5;
  im.height = 9;
  im.channels = 4;
  im.pixels.assign(5 * 9 * 4, 200);
  const std::vector<uint8_t> good = encode_png(im);
  size_t idat = 0;
  for (size_t i = 8; i + 8 <= good.size(); ++i)
    if (std::memcmp(good.data() + i + 4, "IDAT", 4) == 0) {
      idat = i;
      break;
    }
  ASSERT_GT(idat, 0u);
  std::vector<uint8_t> bad = good;
  const uint8_t len[4] = {0x50, 0x00, 0x00, 0x16};  // the fuzzer's 1,342,177,302 bytes
  std::memcpy(bad.data() + idat, len, 4);
  auto decode = [&](const std::vector<uint8_t>& b) { decode_image(b.data(), b.size(), 0, "x.png"); };
  try {
    decode(bad);
    FAIL() << "accepted";
  } catch (const CliError& e) {
    // Before the fix stb said "outofmem" (under a memory limit) or "outofdata" (after allocating).
    EXPECT_NE(std::string(e.what()).find("a chunk runs past the end"), std::string::npos) << e.what();
  }
  std::vector<uint8_t> cut = good;
  cut.resize(idat + 10);  // truncated inside the IDAT chunk
  EXPECT_THROW(decode(cut), CliError);

  // 16384 x 16384 pixels in a valid header (IHDR width/height at bytes 16..23, CRC after):
  // stb's own limit (2^30 bytes) lets it through, kMaxImagePixels (2^26) does not.
  std::vector<uint8_t> huge = good;
  const uint8_t dims[8] = {0, 0, 0x40, 0, 0, 0, 0x40, 0};
  std::memcpy(huge.data() + 16, dims, 8);
  const uint32_t crc = crc32_update(0, huge.data() + 12, 17);
  for (int k = 0; k < 4; ++k) huge[29 + size_t(k)] = uint8_t(crc >> (24 - 8 * k));
  try {
    decode(huge);
    FAIL() << "accepted";
  } catch (const CliError& e) {
    EXPECT_NE(std::string(e.what()).find("16384x16384 pixels, more than the"), std::string::npos) << e.what();
  }
  const int limited = under_memory_limit([&] { decode(huge); });
  if (limited >= 0) {
    EXPECT_EQ(limited, 0) << "1: allocated for the claimed size";
  }
}

// tz_fuzz_image: a 1 KB JPEG whose header claims tens of megapixels (within
// kMaxImagePixels) took seconds to decode; a caller that expects small images
// bounds the pixels itself (the fuzz harness: 2^20), checked from the header.
TEST(FuzzRegressions, DecodeImageTakesACallersPixelBound) {
  Image8 im;
  im.width = im.height = 64;
  im.channels = 1;
  im.pixels.assign(64 * 64, 90);
  const std::vector<uint8_t> jpg = encode_jpeg(im, 90);
  EXPECT_EQ(decode_image(jpg.data(), jpg.size(), 0, "a.jpg").width, 64);
  EXPECT_EQ(decode_image(jpg.data(), jpg.size(), 0, "a.jpg", 4096).width, 64) << "64 x 64 = 4096: at the bound";
  try {
    decode_image(jpg.data(), jpg.size(), 0, "a.jpg", 4095);
    FAIL() << "accepted";
  } catch (const CliError& e) {
    EXPECT_NE(std::string(e.what()).find("64x64 pixels, more than the 4095"), std::string::npos) << e.what();
  }
}

// tz_fuzz_image: a JPEG Huffman table (DHT) whose 16 code counts sum past 256
// made stb_image write past its tables (index 257 of size[257]). Such a file is
// refused before stb sees it.
TEST(FuzzRegressions, JpegHuffmanTableOver256CodesIsRefused) {
  const std::vector<uint8_t> good = small_jpeg(5);
  EXPECT_NO_THROW(decode_image(good.data(), good.size(), 0, "good"));
  // The first DHT segment: FF C4, length, then class/id and the 16 counts.
  const size_t dht = first_marker(good, 0xC4);
  ASSERT_GT(dht, 0u);
  for (int counts_sum : {257, 16 * 255}) {
    std::vector<uint8_t> bad = good;
    int left = counts_sum;
    for (int k = 0; k < 16; ++k) {
      const int c = left > 255 ? 255 : left;
      bad[dht + 5 + size_t(k)] = uint8_t(c);
      left -= c;
    }
    // Also with 0xFF fill bytes before SOI, which stb skips (the fuzzer's second find).
    std::vector<uint8_t> filled(20 + bad.size(), 0xFF);
    std::copy(bad.begin(), bad.end(), filled.begin() + 20);
    for (const std::vector<uint8_t>* file : {&bad, &filled}) {
      try {
        decode_image(file->data(), file->size(), 0, "bad.jpg");
        FAIL() << "accepted a Huffman table of " << counts_sum << " codes";
      } catch (const CliError& e) {
        EXPECT_NE(std::string(e.what()).find("Huffman table with " + std::to_string(counts_sum) + " codes"),
                  std::string::npos)
            << e.what();
      }
    }
  }
}

// tz_fuzz_image (CI, stop 17): a JPEG whose DC predictions add up past what a
// 16-bit quantizer times the prediction fits in an int made stb_image overflow
// int (UBSan: "65534 * 65535 cannot be represented in type 'int'",
// stbi__jpeg_decode_block). The file is corrupt but parseable; it must decode
// without undefined behaviour (image_io.cc compiles stb with -fwrapv; the
// sanitizer builds of this test abort on any UBSan report).
TEST(FuzzRegressions, JpegDcOverflowDecodesWithoutUndefinedBehaviour) {
  auto segment = [](uint8_t marker, std::vector<uint8_t> body) {
    std::vector<uint8_t> s(4 + body.size());
    s[0] = 0xFF;
    s[1] = marker;
    s[2] = uint8_t((body.size() + 2) >> 8);
    s[3] = uint8_t(body.size() + 2);
    std::copy(body.begin(), body.end(), s.begin() + 4);
    return s;
  };
  std::vector<uint8_t> dqt = {0x10};  // 16-bit table 0: every quantizer 65535
  dqt.insert(dqt.end(), 128, 0xFF);
  // SOF0: 8-bit, 8 rows x 16 columns (two blocks), one component using table 0.
  const std::vector<uint8_t> sof = {8, 0, 8, 0, 16, 1, 1, 0x11, 0};
  std::vector<uint8_t> dc_table = {0x00, 1}, ac_table = {0x10, 1};  // one 1-bit code each
  dc_table.insert(dc_table.end(), 15, 0);
  ac_table.insert(ac_table.end(), 15, 0);
  dc_table.push_back(15);  // DC: a 15-bit difference
  ac_table.push_back(0);   // AC: end of block
  const std::vector<uint8_t> sos = {1, 1, 0x00, 0, 63, 0};
  // Each block: DC code 0, difference +32767 (15 one bits), EOB code 0; then
  // one-bit padding. 0x7F FF 00 (stuffed) 3F FF 00 BF.
  const std::vector<uint8_t> scan = {0x7F, 0xFF, 0x00, 0x3F, 0xFF, 0x00, 0xBF};
  std::vector<uint8_t> jpg = {0xFF, 0xD8};
  for (const auto& s : {segment(0xDB, dqt), segment(0xC0, sof), segment(0xC4, dc_table), segment(0xC4, ac_table),
                        segment(0xDA, sos)})
    jpg.insert(jpg.end(), s.begin(), s.end());
  jpg.insert(jpg.end(), scan.begin(), scan.end());
  jpg.push_back(0xFF);
  jpg.push_back(0xD9);
  const Image8 im = decode_image(jpg.data(), jpg.size(), 0, "dc.jpg");
  EXPECT_EQ(im.width, 16);
  EXPECT_EQ(im.height, 8);
  EXPECT_EQ(im.channels, 1);
  EXPECT_EQ(im.pixels.size(), 16u * 8u);
}

// tz_fuzz_image: a JPEG whose scan uses a Huffman table no DHT defines made
// stb_image decode with its never-built table (uninitialised heap; an assertion
// in stbi__jpeg_huff_decode fired or not with the heap's contents). Such a file
// is refused before stb sees it, naming the table.
TEST(FuzzRegressions, JpegScanWithUndefinedHuffmanTableIsRefused) {
  const std::vector<uint8_t> good = small_jpeg(7);
  const size_t sos = first_marker(good, 0xDA);
  ASSERT_GT(sos, 0u);
  // FF DA, length (2), Ns, then the first component's id and Td << 4 | Ta.
  ASSERT_GE(good[sos + 4], 1);
  const uint8_t tables = good[sos + 6];
  for (const auto& [byte, expected] : {std::pair<uint8_t, std::string>{uint8_t(0x30 | (tables & 15)), "DC Huffman table 3"},
                                       std::pair<uint8_t, std::string>{uint8_t((tables & 0xF0) | 3), "AC Huffman table 3"}}) {
    std::vector<uint8_t> bad = good;
    bad[sos + 6] = byte;
    try {
      decode_image(bad.data(), bad.size(), 0, "bad.jpg");
      FAIL() << "accepted a scan using " << expected;
    } catch (const CliError& e) {
      EXPECT_NE(std::string(e.what()).find("corrupt JPEG: a scan uses " + expected + ", which no DHT before it defines"),
                std::string::npos)
          << e.what();
    }
  }
}

// tz_fuzz_config: a number that overflows a double ({"lr": 1e400}) escaped
// load_config_file as nlohmann's out_of_range, not a CliError naming the file
// (fixed by the settings rewrite of issue 14 item 2, host/train_config.cc).
TEST(FuzzRegressions, ConfigNumberOverflowIsACliError) {
  const std::string path = ::testing::TempDir() + "tinyzo_overflow_config.json";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fputs("{\"lr\": 1e400}", f);
  std::fclose(f);
  try {
    load_config_file(path);
    FAIL() << "accepted";
  } catch (const CliError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    FAIL() << "not a CliError: " << e.what();
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tinyzo
