// Writes the committed seed corpus of the fuzz targets (fuzz/corpus/<target>/)
// from synthetic inputs only: the test models of tests/test_models.h,
// hand-made checkpoints, configs, CIFAR-10 records and images. Nothing comes
// from the data directory (its files may not be committed).
//
//   build/fuzz/fuzz/tz_make_seeds fuzz/corpus      (scripts/fuzz.sh --seeds does it)
//
// The output is deterministic: rerunning it rewrites the same bytes.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "train/checkpoint.h"
#include "data/cifar10.h"
#include "data/image_io.h"
#include "test_models.h"
#include "tflite_test_models.h"
#include "train/train_config.h"

namespace {

namespace fs = std::filesystem;
using tinyzo::testing::TestRng;

void put(const fs::path& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  fs::create_directories(dir);
  const fs::path p = dir / name;
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::fprintf(stderr, "make_seeds: cannot write %s\n", p.c_str());
    std::exit(1);
  }
  std::printf("%8zu  %s\n", bytes.size(), p.c_str());
}
void put(const fs::path& dir, const std::string& name, const std::string& text) {
  put(dir, name, std::vector<uint8_t>(text.begin(), text.end()));
}

std::vector<uint8_t> gzip(const std::vector<uint8_t>& in) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::exit(1);
  std::vector<uint8_t> out(deflateBound(&z, in.size()) + 32);
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = uInt(in.size());
  z.next_out = out.data();
  z.avail_out = uInt(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::exit(1);
  out.resize(z.total_out);
  deflateEnd(&z);
  // Zero the gzip header's mtime / OS bytes: the same bytes on every machine.
  for (int i = 4; i < 8; ++i) out[size_t(i)] = 0;
  out[9] = 3;
  return out;
}

void models(const fs::path& dir) {
  put(dir, "tiny_cnn_1.tzm", tinyzo::testing::make_tiny_cnn(1).builder.serialize());
  put(dir, "tiny_cnn_7.tzm", tinyzo::testing::make_tiny_cnn(7).builder.serialize());
  put(dir, "small_conv.tzm", tinyzo::testing::make_small_conv(2, false).serialize());
  put(dir, "small_conv_dequant.tzm", tinyzo::testing::make_small_conv(3, true).serialize());
  put(dir, "tflite_ops.tzm", tinyzo::testing::make_tflite_ops_model().serialize());
}

void checkpoints(const fs::path& dir) {
  tinyzo::Checkpoint c;
  c.fingerprint = "0123456789abcdef";
  put(dir, "empty.ck", tinyzo::serialize_checkpoint(c));
  TestRng rng(5);
  c.step = 12;
  c.best_epoch = 2;
  c.best_val = 0.5;
  c.val_before = 0.25;
  c.test_before = 0.3;
  c.log_bytes = 1234;
  c.elapsed_seconds = 3.5;
  c.total_macs = 987654321;
  for (int i = 0; i < 2; ++i) {
    tinyzo::CheckpointLayer l;
    l.op = 3 + 2 * i;
    l.node = i == 1;
    l.weights = rng.s8(size_t(9 + 7 * i));
    l.best_weights = rng.s8(l.weights.size());
    for (int k = 0; k < 3 + i; ++k) {
      l.biases.push_back(rng.uniform(-1000, 1000));
      l.best_biases.push_back(rng.uniform(-1000, 1000));
    }
    c.layers.push_back(l);
    put(dir, "layers" + std::to_string(i + 1) + ".ck", tinyzo::serialize_checkpoint(c));
  }
  // Version 2: momentum on both layers' weights, on the first one's biases only.
  for (size_t i = 0; i < c.layers.size(); ++i) {
    for (size_t k = 0; k < c.layers[i].weights.size(); ++k) c.layers[i].momentum_w.push_back(0.01f * float(k) - 0.05f);
    if (i == 0)
      for (size_t k = 0; k < c.layers[i].biases.size(); ++k) c.layers[i].momentum_b.push_back(-0.5f * float(k));
  }
  put(dir, "momentum.ck", tinyzo::serialize_checkpoint(c));
}

void configs(const fs::path& dir) {
  put(dir, "defaults.json", tinyzo::config_to_json(tinyzo::TrainConfig{}).dump(2));
  put(dir, "empty.json", std::string("{}"));
  put(dir, "small.json",
      std::string(R"({"corruption": "none", "layers": "all", "mode": "wp", "queries_w": 2, "queries_b": 2,)"
                  R"( "lr": 0.004, "epochs": 1, "batch": 4, "seed": 17, "two_sided": true, "out": "runs/x"})"));
  put(dir, "np.json",
      std::string(R"({"mode": "threshold:3", "estimation": "model", "rounding": "stochastic", "gns": "sqrt",)"
                  R"( "budget_kb": 256.5, "max_steps": 10, "qas": false})"));
}

void cifar(const fs::path& dir) {
  TestRng rng(9);
  std::vector<uint8_t> two;
  for (int r = 0; r < 2; ++r) {
    two.push_back(uint8_t(r * 7 % 10));
    for (size_t i = 0; i < tinyzo::kCifar10ImageBytes; ++i) two.push_back(uint8_t(rng.next() >> 56));
  }
  put(dir, "two.bin", two);
  put(dir, "two.bin.gz", gzip(two));
  std::vector<uint8_t> flat(tinyzo::kCifar10RecordBytes * 3, 0);
  flat[0] = 9;
  flat[tinyzo::kCifar10RecordBytes] = 1;
  put(dir, "three_flat.bin.gz", gzip(flat));
}

void images(const fs::path& dir) {
  TestRng rng(11);
  auto image = [&](int w, int h, int c, bool smooth) {
    tinyzo::Image8 im;
    im.width = w;
    im.height = h;
    im.channels = c;
    im.pixels.resize(size_t(w) * h * c);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int k = 0; k < c; ++k) im.at(y, x, k) = smooth ? uint8_t(x * 16 + y * 8 + k * 40) : uint8_t(rng.next() >> 56);
    return im;
  };
  auto with_mode = [](uint8_t mode, std::vector<uint8_t> file) {
    file.insert(file.begin(), mode);
    return file;
  };
  put(dir, "gray8.png", with_mode(0, tinyzo::encode_png(image(8, 8, 1, true))));
  put(dir, "rgb12x7.png", with_mode(2, tinyzo::encode_png(image(12, 7, 3, false))));
  put(dir, "rgba5x9.png", with_mode(3, tinyzo::encode_png(image(5, 9, 4, true))));
  put(dir, "rgb16_q75.jpg", with_mode(0, tinyzo::encode_jpeg(image(16, 16, 3, true), 75)));
  put(dir, "rgb9x13_q95.jpg", with_mode(1, tinyzo::encode_jpeg(image(9, 13, 3, false), 95)));
  put(dir, "gray8_q50.jpg", with_mode(2, tinyzo::encode_jpeg(image(8, 8, 1, true), 50)));
  put(dir, "rgb7x5.bmp", with_mode(0, tinyzo::encode_bmp(image(7, 5, 3, false))));
  put(dir, "gray6x6.bmp", with_mode(2, tinyzo::encode_bmp(image(6, 6, 1, true))));
}

// Synthetic TensorFlow Lite models (tests/tflite_test_models.h): every supported operator, a
// depth multiplier, TRANSPOSE / PAD / QUANTIZE / DEQUANTIZE, and a few refused variants so the
// fuzzer starts next to each refusal.
void tflites(const fs::path& dir) {
  using namespace tinyzo::tflite_testing;
  put(dir, "conv_net.tflite", conv_net());
  ConvNetOptions o;
  o.conv_padding = tfl::Padding_VALID;
  o.conv_stride = 1;
  o.depth_multiplier = 1;
  o.input_h = 5;
  put(dir, "conv_net_valid.tflite", conv_net(o));
  o = {};
  o.dilation = 2;
  put(dir, "conv_net_dilated.tflite", conv_net(o));
  put(dir, "layout_net.tflite", layout_net());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR   (writes CORPUS_DIR/<target>/...)\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  try {
    models(root / "model");
    checkpoints(root / "checkpoint");
    configs(root / "config");
    cifar(root / "cifar10");
    images(root / "image");
    tflites(root / "tflite");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
