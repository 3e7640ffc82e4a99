// The `tinyzo` binary end to end on small synthetic inputs (models built with
// TzmBuilder, CIFAR-10 files written here): the info/eval/dump/import paths,
// and that bad input gives one error line, a non-zero exit code and no output
// file. Also the data/cache directory rules and the model store's cache, with
// a stand-in importer. Needs $TINYZO_TEST_BINARY_DIR (set by ctest).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "cli_support.h"
#include "data/data_dir.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "models/tzm_writer.h"

namespace tinyzo {
namespace {

using namespace cli_testing;

// input int8 [16,16,3] (s = 1/127.5, z = 0) -> conv 3x3/2 pad 1 -> [8,8,8]
// -> global average pool -> LinearF32 -> float [n_classes].
std::vector<uint8_t> tiny_model(int n_classes = 10, float input_scale = 1.0f / 127.5f) {
  TzmBuilder b;
  const int x = b.add_tensor("input", DType::kInt8, {16, 16, 3}, 0, input_scale, 0);
  b.set_input(x);
  std::vector<int8_t> w(8 * 3 * 3 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int8_t>(int(i * 37 % 61) - 30);
  std::vector<float> w_scales(8, 0.004f);
  const int wt = b.add_constant_s8("conv.w", {8, 3, 3, 3}, w, w_scales);
  const int bt = b.add_constant_s32("conv.b", {8}, {10, -20, 30, -40, 50, -60, 70, -80});
  const int mt = b.add_constant_f32("conv.m", {8}, conv_multipliers(input_scale, w_scales));
  WindowParams win;
  win.stride_h = win.stride_w = 2;
  win.pad_top = win.pad_left = win.pad_bottom = win.pad_right = 1;
  const int y = b.add_conv2d("conv", x, wt, bt, mt, win, 1, 0.05f, -128, -128, 127);
  const int g = b.add_global_avg_pool("pool", y);
  std::vector<float> hw(static_cast<size_t>(n_classes) * 8), hb(static_cast<size_t>(n_classes));
  for (size_t i = 0; i < hw.size(); ++i) hw[i] = float(int(i * 13 % 17) - 8) / 8.f;
  for (size_t i = 0; i < hb.size(); ++i) hb[i] = float(i) / 100.f;
  const int hwt = b.add_constant_f32("head.w", {n_classes, 8}, hw);
  const int hbt = b.add_constant_f32("head.b", {n_classes}, hb);
  const int out = b.add_linear_f32("head", g, hwt, hbt);
  b.set_output(out);
  return b.serialize();
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tinyzo_binary().empty()) << "TINYZO_TEST_BINARY_DIR is not set (run through ctest)";
    ASSERT_TRUE(is_regular_file(tinyzo_binary())) << tinyzo_binary() << " is missing: build the tinyzo target";
    write_bytes(dir_.file("m.tzm"), tiny_model());
    write_bytes(dir_.file("images.bin"), synthetic_cifar(10));
  }
  // Runs with a private, empty cache and data directory.
  RunResult run(const std::string& args, const std::string& env = "") {
    return run_tinyzo("--cache-dir '" + dir_.file("cache") + "' " + args, dir_.path(),
                      "TINYZO_DATA='" + dir_.file("nodata") + "' " + env);
  }
  TempDir dir_;
};

TEST_F(CliTest, UsageErrorsExitTwo) {
  expect_one_error_line(run(""), 2, "subcommand");
  expect_one_error_line(run("--bogus info --model m.tzm"), 2, "--bogus");
  expect_one_error_line(run("info"), 2, "--model");
  expect_one_error_line(run("info --model m.tzm --nope"), 2, "--nope");
  expect_one_error_line(run("eval --model m.tzm --threads 0"), 2, "threads");
  expect_one_error_line(run("eval --model m.tzm --limit 0"), 2, "--limit: Value 0 not in range 1");
  expect_one_error_line(run("dump --model m.tzm"), 2, "--out");
  expect_one_error_line(run("import -o x.tzm"), 2, "src");
}

TEST_F(CliTest, HelpExitsZero) {
  const RunResult r = run("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("eval"), std::string::npos);
  EXPECT_NE(r.out.find("import"), std::string::npos);
}

TEST_F(CliTest, BadModelFilesExitOne) {
  expect_one_error_line(run("info --model missing.tzm"), 1, "missing.tzm: no such file");
  expect_one_error_line(run("info --model ."), 1, "is a directory");
  expect_one_error_line(run("info --model no-such-model"), 1, "unknown model 'no-such-model'");

  const std::vector<uint8_t> good = tiny_model();
  write_bytes(dir_.file("trunc.tzm"), std::vector<uint8_t>(good.begin(), good.begin() + 100));
  expect_one_error_line(run("info --model trunc.tzm"), 1, "trunc.tzm: corrupt model");
  write_bytes(dir_.file("short.tzm"), std::vector<uint8_t>(good.begin(), good.end() - 16));
  expect_one_error_line(run("eval --model short.tzm --images images.bin"), 1, "short.tzm: corrupt model");
  std::vector<uint8_t> flipped = good;
  flipped[flipped.size() - 5] ^= 1;  // caught by the CRC
  write_bytes(dir_.file("crc.tzm"), flipped);
  expect_one_error_line(run("info --model crc.tzm"), 1, "corrupt model");
  write_bytes(dir_.file("empty.tzm"), {});
  expect_one_error_line(run("info --model empty.tzm"), 1, "corrupt model");
  write_bytes(dir_.file("ckpt.pth"), {'P', 'K', 3, 4, 0, 0});
  expect_one_error_line(run("info --model ckpt.pth"), 1, "tinyzo import");
}

TEST_F(CliTest, ConvertToFixedPoint) {
  const RunResult r = run("convert m.tzm --requant fixed -o fx.tzm");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("1 conv/fully-connected ops converted"), std::string::npos) << r.out;
  const std::string bytes = slurp(dir_.file("fx.tzm"));
  AlignedModelBytes b(std::vector<uint8_t>(bytes.begin(), bytes.end()));
  ModelView v;
  ASSERT_EQ(v.init(b.data(), b.size()), Status::kOk) << v.error();
  EXPECT_EQ(v.header().version_minor, 1);
  EXPECT_EQ(v.op(0).params[kConvRequant], kRequantFixedPoint);
  // The converted model evaluates like any other.
  const RunResult e = run("eval --model fx.tzm --images images.bin");
  EXPECT_EQ(e.code, 0) << e.err;
  // Errors: one line, non-zero, no output file left behind.
  expect_one_error_line(run("convert m.tzm --requant float -o bad.tzm"), 1, "only 'fixed'");
  expect_one_error_line(run("convert missing.tzm --requant fixed -o bad.tzm"), 1, "missing.tzm: no such file");
  expect_one_error_line(run("convert m.tzm -o bad.tzm"), 2, "--requant");
  EXPECT_FALSE(std::filesystem::exists(dir_.file("bad.tzm")));
}

TEST_F(CliTest, MissingDataDirectoryExitsOne) {
  expect_one_error_line(run("--data-dir nowhere eval --model m.tzm"), 1, "--data-dir nowhere: no such directory");
  // $TINYZO_DATA points at a missing directory (see run()).
  expect_one_error_line(run("eval --model m.tzm"), 1, "no such directory");
  expect_one_error_line(run("eval --model mcunet-cifar10"), 1, "no such directory");
}

TEST_F(CliTest, InfoListsOpsAndTotals) {
  const RunResult r = run("info --model m.tzm");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("conv 3x3/2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("16x16x3 -> 8x8x8"), std::string::npos) << r.out;
  // 8*27 weights + 8 biases + 10*8 + 10 head parameters = 314.
  EXPECT_NE(r.out.find("total: 3 ops, 314 parameters"), std::string::npos) << r.out;

  const RunResult j = run("info --model m.tzm --json");
  ASSERT_EQ(j.code, 0) << j.err;
  const nlohmann::json info = nlohmann::json::parse(j.out);
  EXPECT_EQ(info["n_ops"], 3);
  EXPECT_EQ(info["parameters"], 314);
  EXPECT_EQ(info["macs"], 8 * 8 * 8 * 27 + 80);
  EXPECT_EQ(info["ops"][1]["type"], "global_avg_pool");
  EXPECT_EQ(info["model_bytes"], tiny_model().size());
}

TEST_F(CliTest, EvalDoesNotDependOnThreadCount) {
  const RunResult one = run("eval --model m.tzm --images images.bin --json --threads 1");
  const RunResult three = run("eval --model m.tzm --images images.bin --json --threads 3 --kernels ref");
  ASSERT_EQ(one.code, 0) << one.err;
  ASSERT_EQ(three.code, 0) << three.err;
  const nlohmann::json a = nlohmann::json::parse(one.out), b = nlohmann::json::parse(three.out);
  EXPECT_EQ(a["images"], 10);
  EXPECT_EQ(a["predictions"], b["predictions"]);
  EXPECT_EQ(a["correct"], b["correct"]);
  EXPECT_EQ(b["threads"], 3);
  // Batches (4 images per engine: slices of 5 end in a partial batch) change nothing either.
  const RunResult batched = run("eval --model m.tzm --images images.bin --json --threads 2 --batch 4");
  ASSERT_EQ(batched.code, 0) << batched.err;
  const nlohmann::json c = nlohmann::json::parse(batched.out);
  EXPECT_EQ(a["predictions"], c["predictions"]);
  EXPECT_EQ(c["batch"], 4);
  expect_one_error_line(run("eval --model m.tzm --images images.bin --batch 0"), 2, "--batch");

  const RunResult text = run("eval --model m.tzm --images images.bin --first 8 --limit 5");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.out.rfind("top-1 ", 0), 0u) << text.out;
  EXPECT_NE(text.out.find("/2), "), std::string::npos) << text.out;  // only images 8 and 9 remain
}

TEST_F(CliTest, EvalRejectsUnsuitableModelsAndData) {
  write_bytes(dir_.file("four.tzm"), tiny_model(4));
  expect_one_error_line(run("eval --model four.tzm --images images.bin"), 1, "10-class");
  write_bytes(dir_.file("scale.tzm"), tiny_model(10, 0.02f));
  expect_one_error_line(run("eval --model scale.tzm --images images.bin"), 1, "not supported");
  std::vector<uint8_t> bad = synthetic_cifar(3);
  bad.pop_back();
  write_bytes(dir_.file("bad.bin"), bad);
  expect_one_error_line(run("eval --model m.tzm --images bad.bin"), 1, "not a multiple");
  expect_one_error_line(run("eval --model m.tzm --images images.bin --first 10"), 1, "only 10 images");
}

uint32_t u32_at(const std::string& s, size_t at) {
  return uint32_t(uint8_t(s[at])) | uint32_t(uint8_t(s[at + 1])) << 8 | uint32_t(uint8_t(s[at + 2])) << 16 |
         uint32_t(uint8_t(s[at + 3])) << 24;
}

TEST_F(CliTest, DumpWritesEveryOpOutput) {
  const RunResult r = run("dump --model m.tzm --images images.bin --first 2 --count 3 --out d.bin");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string d = slurp(dir_.file("d.bin"));
  ASSERT_GE(d.size(), 12u);
  EXPECT_EQ(d.substr(0, 4), "TZD1");
  EXPECT_EQ(u32_at(d, 4), 3u);
  EXPECT_EQ(u32_at(d, 8), 3u);
  const uint32_t sizes[3] = {8 * 8 * 8, 8, 10 * 4};
  size_t at = 12;
  for (int img = 0; img < 3; ++img) {
    ASSERT_LT(at, d.size());
    EXPECT_EQ(uint8_t(d[at]), (2 + img) * 3 % 10) << "label of image " << 2 + img;
    at += 1;
    for (uint32_t want : sizes) {
      ASSERT_LE(at + 4, d.size());
      EXPECT_EQ(u32_at(d, at), want);
      at += 4 + want;
    }
  }
  EXPECT_EQ(at, d.size());
  // The same images dumped one at a time give the same bytes.
  ASSERT_EQ(run("dump --model m.tzm --images images.bin --first 3 --count 1 --out one.bin").code, 0);
  const std::string one = slurp(dir_.file("one.bin"));
  const size_t per_image = 1 + 12 + sizes[0] + sizes[1] + sizes[2];
  EXPECT_EQ(one.substr(12), d.substr(12 + per_image, per_image));
}

TEST_F(CliTest, FailedDumpLeavesNoFile) {
  const std::vector<uint8_t> good = tiny_model();
  write_bytes(dir_.file("trunc.tzm"), std::vector<uint8_t>(good.begin(), good.begin() + 200));
  const std::vector<std::string> before = dir_.entries();
  expect_one_error_line(run("dump --model trunc.tzm --images images.bin --out d.bin"), 1, "corrupt model");
  expect_one_error_line(run("dump --model m.tzm --images images.bin --first 9 --count 2 --out d.bin"), 1,
                        "the set has 10 images");
  expect_one_error_line(run("dump --model m.tzm --images images.bin --out nodir/d.bin"), 1, "nodir/d.bin");
  EXPECT_EQ(dir_.entries(), before);
}

TEST_F(CliTest, ImportFailuresLeaveNoFile) {
  const std::vector<std::string> before = dir_.entries();
  expect_one_error_line(run("import missing.pth -o out.tzm"), 1, "missing.pth: no such file");
  write_bytes(dir_.file("junk.pth"), {'n', 'o', 't', ' ', 'a', ' ', 'm', 'o', 'd', 'e', 'l'});
  expect_one_error_line(run("import junk.pth -o out.tzm"), 1, "importer failed");
  std::vector<std::string> after = dir_.entries();
  after.erase(std::remove(after.begin(), after.end(), "junk.pth"), after.end());
  EXPECT_EQ(after, before);
}

// A stand-in for python/tinyzo/importer.py: copies $FAKE_TZM to the -o path
// (or fails with a message when $FAKE_TZM is unset).
void write_fake_importer(const std::string& path) {
  std::ofstream f(path);
  f << "import os, shutil, sys\n"
       "src = os.environ.get('FAKE_TZM')\n"
       "if not src:\n"
       "    print('importer: error: fake failure on ' + sys.argv[1], file=sys.stderr)\n"
       "    sys.exit(2)\n"
       "shutil.copyfile(src, sys.argv[sys.argv.index('-o') + 1])\n";
}

TEST_F(CliTest, ModelStoreConvertsOnceAndAgainWhenTheSourceChanges) {
  TempDir data;
  fs::create_directories(data.file("models/original"));
  write_bytes(data.file("models/original/mcunet-5fps.pkl"), {1, 2, 3});
  write_fake_importer(dir_.file("fake_importer.py"));
  const std::string env = "TINYZO_IMPORTER='" + dir_.file("fake_importer.py") + "' FAKE_TZM='" + dir_.file("m.tzm") + "'";
  const std::string args = "--data-dir '" + data.path() + "' info --model mcunet-5fps";

  RunResult r = run(args, env);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("converted mcunet-5fps"), std::string::npos) << r.err;
  EXPECT_TRUE(is_regular_file(dir_.file("cache/mcunet-5fps.tzm")));
  r = run(args, env);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "") << "second use must come from the cache";

  // A newer source is converted again.
  const auto later = fs::last_write_time(dir_.file("cache/mcunet-5fps.tzm")) + std::chrono::seconds(5);
  fs::last_write_time(data.file("models/original/mcunet-5fps.pkl"), later);
  r = run(args, env);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("converted mcunet-5fps"), std::string::npos) << r.err;

  // A failing importer reports its last line; a corrupt result is rejected and
  // never lands in the cache.
  fs::last_write_time(data.file("models/original/mcunet-5fps.pkl"), later + std::chrono::seconds(5));
  expect_one_error_line(run(args, "TINYZO_IMPORTER='" + dir_.file("fake_importer.py") + "'"), 1,
                        "fake failure on");
  write_bytes(dir_.file("junk.tzm"), {'T', 'Z', 'M', '1', 0, 0});
  fs::remove(dir_.file("cache/mcunet-5fps.tzm"));
  expect_one_error_line(run(args, "TINYZO_IMPORTER='" + dir_.file("fake_importer.py") + "' FAKE_TZM='" +
                                      dir_.file("junk.tzm") + "'"),
                        1, "corrupt model");
  EXPECT_EQ(fs::directory_iterator(dir_.file("cache")) == fs::directory_iterator(), true) << "cache must stay empty";
}

// ---- directory rules (in-process) ----

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

TEST(DataDirTest, FlagThenEnvironment) {
  TempDir a, b;
  ScopedEnv env("TINYZO_DATA", b.path());
  EXPECT_EQ(resolve_data_dir(a.path()), a.path());
  EXPECT_EQ(resolve_data_dir(""), b.path());
  try {
    resolve_data_dir(a.file("missing"));
    ADD_FAILURE() << "expected CliError";
  } catch (const CliError& e) {
    EXPECT_NE(std::string(e.what()).find("cifar-10-binary"), std::string::npos) << "must say where to get the data";
  }
  ScopedEnv missing("TINYZO_DATA", a.file("missing"));
  EXPECT_THROW(resolve_data_dir(""), CliError);  // no silent fallback past a bad $TINYZO_DATA
}

TEST(DataDirTest, CacheDirOrder) {
  ScopedEnv cache("TINYZO_CACHE", "/c1");
  ScopedEnv xdg("XDG_CACHE_HOME", "/x");
  ScopedEnv home("HOME", "/h");
  EXPECT_EQ(resolve_cache_dir("/flag"), "/flag");
  EXPECT_EQ(resolve_cache_dir(""), "/c1");
  ::unsetenv("TINYZO_CACHE");
  EXPECT_EQ(resolve_cache_dir(""), "/x/tinyzo");
  ::unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(resolve_cache_dir(""), "/h/.cache/tinyzo");
}

}  // namespace
}  // namespace tinyzo
