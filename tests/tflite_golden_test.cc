// TensorFlow Lite import against TensorFlow Lite Micro's own outputs (issue 12): each model of
// <data>/models/tflite/ that uses only the supported operators is imported (tinyzo import's
// code path), run by the engine on every golden input, and compared with TFLM's reference-kernel
// output and with EVERY intermediate tensor TFLM recorded (goldens/<model>/intermediates_*.npz,
// keys op<k>_t<tensor>), byte for byte, with the ref kernels and with the best kernels of this
// machine. keyword_scrambled (SVDF, int16 input) must be refused with a clear error.
//
// These tests read the shared data directory at run time ($TINYZO_DATA, else ../shared/data next
// to the source tree) and fail, not skip, when it is missing: they must never pass vacuously.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "models/model_store.h"
#include "models/tzm_writer.h"
#include "tinyzo/train/zo_trainer.h"
#include <cmath>
#include <map>
#include "models/tflite_import.h"
#include "models/tflite_reader.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "util/npy.h"

namespace tinyzo {
namespace {

namespace fs = std::filesystem;

std::string tflite_dir() {
  const char* env = std::getenv("TINYZO_DATA");
  const std::string data = env != nullptr && *env != '\0' ? std::string(env) : std::string(TINYZO_SOURCE_DIR) + "/../shared/data";
  return data + "/models/tflite";
}

struct GoldenModel {
  const char* name;  // goldens/<name>/
  const char* file;  // <name>.tflite
  int n_ops;         // TFLite operators (manifest.json)
  int min_samples;   // golden inputs present
};

const GoldenModel kModels[] = {
    {"person_detect", "person_detect.tflite", 31, 22},
    {"micro_speech_quantized", "micro_speech_quantized.tflite", 4, 20},
    {"hello_world_int8", "hello_world_int8.tflite", 3, 20},
    {"mobilenet_v2_quantized_1x3x224x224", "mobilenet_v2_quantized_1x3x224x224.tflite", 84, 6},
};

struct Recorder {
  std::vector<std::vector<uint8_t>> outputs;
  static void observe(void* ctx, int op, const void* out, size_t n) {
    auto* r = static_cast<Recorder*>(ctx);
    const auto* p = static_cast<const uint8_t*>(out);
    r->outputs[size_t(op)].assign(p, p + n);
  }
};

struct Counts {
  int samples = 0, outputs_exact = 0, tensors = 0, tensors_exact = 0;
};

Counts check_model(const GoldenModel& g, const char* kernels_name) {
  Counts c;
  const std::string path = tflite_dir() + "/" + g.file;
  if (!is_regular_file(path)) {
    ADD_FAILURE() << path << " is missing (set $TINYZO_DATA to the shared data directory)";
    return c;
  }
  const TfliteImport imp = import_tflite_file(path);
  EXPECT_EQ(imp.n_ops, g.n_ops);
  const LoadedModel model = LoadedModel::from_bytes(imp.tzm.data(), imp.tzm.size(), path);
  const ModelView& view = model.view();
  EngineInstance inst(view, kernels_by_name(kernels_name));
  Recorder rec;
  rec.outputs.resize(size_t(view.n_ops()));
  inst.engine().set_observer(&Recorder::observe, &rec);

  const std::string dir = tflite_dir() + "/goldens/" + g.name;
  std::vector<std::string> labels;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.rfind("input_", 0) == 0 && e.path().extension() == ".npy") labels.push_back(f.substr(6, f.size() - 10));
  }
  std::sort(labels.begin(), labels.end());
  EXPECT_GE(int(labels.size()), g.min_samples) << dir;
  const TzmTensor& in_t = view.tensor(view.input_tensor());
  const TzmTensor& out_t = view.tensor(view.output_tensor());
  for (const std::string& label : labels) {
    const NpyArray x = read_npy_file(dir + "/input_" + label + ".npy");
    const NpyArray want = read_npy_file(dir + "/output_" + label + ".npy");
    EXPECT_EQ(x.type, NpyType::kInt8);
    if (x.data.size() != tensor_elements(in_t)) {
      ADD_FAILURE() << label << ": input of " << x.data.size() << " bytes, the model takes " << tensor_elements(in_t);
      continue;
    }
    std::memcpy(inst.engine().input().data(), x.data.data(), x.data.size());
    inst.invoke();
    ++c.samples;
    const auto* out = static_cast<const uint8_t*>(inst.engine().tensor_data(view.output_tensor()));
    const std::vector<uint8_t> got(out, out + tensor_elements(out_t) * dtype_size(DType(out_t.dtype)));
    if (got == want.data) ++c.outputs_exact;
    else ADD_FAILURE() << g.name << " " << label << ": output differs from TFLM's";

    const std::string npz = dir + "/intermediates_" + label + ".npz";
    if (!is_regular_file(npz)) continue;
    const NpzArchive golden = read_npz_file(npz);
    // Every op of the imported model has exactly one golden tensor, and nothing is left over.
    EXPECT_EQ(golden.names.size(), size_t(view.n_ops())) << npz;
    for (int k = 0; k < view.n_ops(); ++k) {
      const TzmTensor& t = view.tensor(view.op(k).output);
      const std::string key = intermediate_key(k, std::string(t.name, strnlen(t.name, kTzmNameLen)));
      const auto it = golden.arrays.find(key);
      ++c.tensors;
      if (it == golden.arrays.end()) {
        ADD_FAILURE() << npz << ": no golden tensor " << key;
        continue;
      }
      if (rec.outputs[size_t(k)] == it->second.data) {
        ++c.tensors_exact;
      } else {
        size_t diff = 0;
        int max_abs = 0;
        const std::vector<uint8_t>& a = rec.outputs[size_t(k)];
        const std::vector<uint8_t>& b = it->second.data;
        for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
          if (a[i] != b[i]) {
            ++diff;
            max_abs = std::max(max_abs, std::abs(int(int8_t(a[i])) - int(int8_t(b[i]))));
          }
        ADD_FAILURE() << g.name << " " << label << " " << key << " (" << view.op(k).name << "): " << diff << " of "
                      << b.size() << " bytes differ (max |diff| " << max_abs << " for int8), sizes " << a.size()
                      << " / " << b.size();
      }
    }
  }
  std::printf("[tflite golden] %-36s %-5s samples %d, outputs exact %d/%d, intermediate tensors exact %d/%d\n", g.name,
              kernels_name, c.samples, c.outputs_exact, c.samples, c.tensors_exact, c.tensors);
  return c;
}

class TfliteGolden : public ::testing::TestWithParam<std::tuple<int, const char*>> {};

TEST_P(TfliteGolden, EveryOutputAndIntermediateMatchesTflm) {
  const GoldenModel& g = kModels[std::get<0>(GetParam())];
  const Counts c = check_model(g, std::get<1>(GetParam()));
  EXPECT_GE(c.samples, g.min_samples);
  EXPECT_EQ(c.outputs_exact, c.samples);
  EXPECT_EQ(c.tensors_exact, c.tensors);
  RecordProperty("samples", c.samples);
  RecordProperty("outputs_exact", c.outputs_exact);
  RecordProperty("tensors_exact", c.tensors_exact);
  RecordProperty("tensors", c.tensors);
}

INSTANTIATE_TEST_SUITE_P(Models, TfliteGolden,
                         ::testing::Combine(::testing::Range(0, int(sizeof kModels / sizeof kModels[0])),
                                            ::testing::Values("ref", "best")),
                         [](const auto& info) {
                           std::string n = kModels[std::get<0>(info.param)].name;
                           n = n.substr(0, n.find('_', n.find('_') + 1));  // person_detect, micro_speech, ...
                           for (char& ch : n)
                             if (ch == '_') ch = 'X';
                           return n + "_" + std::get<1>(info.param);
                         });

TEST(TfliteGoldenRefusal, KeywordScrambledIsRefusedNamingSvdf) {
  const std::string path = tflite_dir() + "/keyword_scrambled.tflite";
  ASSERT_TRUE(is_regular_file(path)) << path << " is missing (set $TINYZO_DATA)";
  try {
    (void)import_tflite_file(path);
    FAIL() << "keyword_scrambled was imported";
  } catch (const CliError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("keyword_scrambled.tflite: operator "), std::string::npos) << msg;
    EXPECT_NE(msg.find("(SVDF)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not supported"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// The reader on every real model file: truncations anywhere and random damage are one CliError
// (or a model read), never a crash. Under the sanitizer build (debug-asan) this also checks every
// read: keyword_scrambled's damaged copies once reached a misaligned int64 zero-point load (UBSan),
// now copied out byte-wise.
TEST(TfliteGoldenRefusal, TruncatedOrDamagedRealModelsAreCleanErrors) {
  std::vector<GoldenModel> all(std::begin(kModels), std::end(kModels));
  all.push_back({"keyword_scrambled", "keyword_scrambled.tflite", 15, 0});
  for (const GoldenModel& g : all) {
    const std::string path = tflite_dir() + "/" + g.file;
    ASSERT_TRUE(is_regular_file(path)) << path;
    const std::vector<uint8_t> bytes = read_file_bytes(path, tflite::kMaxTfliteBytes);
    const size_t step = std::max<size_t>(1, bytes.size() / 97);
    for (size_t n = 0; n < bytes.size(); n += step) {
      std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(n));
      EXPECT_THROW((void)tflite::parse_tflite(std::move(cut), "cut"), CliError) << g.name << " cut at " << n;
    }
    uint32_t r = 12345;
    int read = 0;
    for (int i = 0; i < 300; ++i) {
      std::vector<uint8_t> b = bytes;
      for (int k = 0; k < 4; ++k) {
        r = r * 1103515245u + 12345u;
        b[(r >> 3) % b.size()] = uint8_t(r >> 16);
      }
      try {
        (void)tflite::parse_tflite(std::move(b), "damaged");
        ++read;
      } catch (const CliError&) {
      }
    }
    RecordProperty(std::string(g.name) + "_damaged_read", read);
  }
}

}  // namespace
}  // namespace tinyzo

namespace tinyzo {
namespace {

// ZO training on an imported model (smoke, real data): person_detect's two last convs (WP on the
// classifier, NP on the 1x1 conv before it; fixed-point requantization, scales from the TFLite
// tensors for GNS and QAS) for a few steps on TFLM's golden inputs labelled by TFLM's own
// prediction. The steps must run, move weights, keep the loss finite, and the trained copies
// must run the same in a fresh engine over the rewritten model (export round trip).
TEST(TfliteTrain, ZoStepsRunOnImportedPersonDetect) {
  const std::string path = tflite_dir() + "/person_detect.tflite";
  ASSERT_TRUE(is_regular_file(path)) << path << " is missing (set $TINYZO_DATA)";
  const TfliteImport imp = import_tflite_file(path);
  const LoadedModel model = LoadedModel::from_bytes(imp.tzm.data(), imp.tzm.size(), path);
  const ModelView& view = model.view();
  ASSERT_EQ(view.op(26).type, uint16_t(OpType::kConv2d));
  ASSERT_EQ(view.op(28).type, uint16_t(OpType::kConv2d));

  const std::string dir = tflite_dir() + "/goldens/person_detect";
  std::vector<std::vector<int8_t>> inputs;
  std::vector<int> labels;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.rfind("input_", 0) != 0) continue;
    const NpyArray x = read_npy_file(e.path().string());
    const NpyArray y = read_npy_file(dir + "/output_" + f.substr(6));
    inputs.emplace_back(x.s8(), x.s8() + x.data.size());
    labels.push_back(y.s8()[0] >= y.s8()[1] ? 0 : 1);
  }
  ASSERT_GE(inputs.size(), 22u);

  std::vector<uint8_t> engine_mem(required_arena_bytes(view) + 64);
  Arena engine_arena(engine_mem.data(), engine_mem.size());
  Engine engine;
  ASSERT_EQ(engine.init(view, engine_arena, ref::table()), Status::kOk);
  const TrainLayer layers[] = {{26, PerturbMode::kNode}, {28, PerturbMode::kWeight}};
  ZoConfig cfg;
  cfg.n_queries_w = 8;
  cfg.n_queries_b = 8;
  cfg.n_queries_np = 8;
  cfg.seed = 5;
  std::vector<uint8_t> scratch_mem(64 << 20);
  Arena scratch(scratch_mem.data(), scratch_mem.size());
  size_t need = 0;
  ASSERT_EQ(ZoTrainer::required_arena_bytes(engine, Span<const TrainLayer>(layers, 2), cfg, scratch, &need), Status::kOk);
  std::vector<uint8_t> train_mem(need + 64);
  Arena train_arena(train_mem.data(), train_mem.size());
  ZoTrainer trainer;
  ASSERT_EQ(trainer.init(engine, Span<const TrainLayer>(layers, 2), cfg, train_arena), Status::kOk);
  const std::vector<int8_t> w0(trainer.weights(1).begin(), trainer.weights(1).end());
  const std::vector<int8_t> w0np(trainer.weights(0).begin(), trainer.weights(0).end());

  int moved = 0;
  for (uint32_t step = 0; step < 4; ++step) {
    ASSERT_EQ(trainer.begin_step(step), Status::kOk);
    for (size_t i = 0; i < 8; ++i) {
      const size_t s = (step * 8 + i) % inputs.size();
      ASSERT_EQ(trainer.accumulate_sample(Span<const int8_t>(inputs[s].data(), inputs[s].size()), labels[s]), Status::kOk);
    }
    ASSERT_EQ(trainer.end_step(0.05f), Status::kOk);
    EXPECT_TRUE(std::isfinite(trainer.last_step().mean_loss));
    moved += trainer.last_step().weights_changed;
    std::printf("[tflite train] person_detect step %u: loss %.4f, %d integer parameters moved\n", step,
                double(trainer.last_step().mean_loss), trainer.last_step().weights_changed);
  }
  EXPECT_GT(moved, 0);
  const std::vector<int8_t> w1(trainer.weights(1).begin(), trainer.weights(1).end());
  const std::vector<int8_t> w1np(trainer.weights(0).begin(), trainer.weights(0).end());
  EXPECT_TRUE(w1 != w0 || w1np != w0np);

  // Export the trained copies and run both: the same output bytes.
  std::map<int, std::vector<uint8_t>> repl;
  for (int li = 0; li < 2; ++li) {
    const TzmOp& op = view.op(trainer.layer(li).op);
    const Span<int8_t> w = trainer.weights(li);
    const Span<int32_t> b = trainer.biases(li);
    repl[op.inputs[1]] = std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(w.data()),
                                              reinterpret_cast<const uint8_t*>(w.data()) + w.size());
    repl[op.inputs[2]] = std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(b.data()),
                                              reinterpret_cast<const uint8_t*>(b.data()) + 4 * b.size());
  }
  const std::vector<uint8_t> trained = rewrite_with_constants(view, repl);
  const LoadedModel tm = LoadedModel::from_bytes(trained.data(), trained.size(), "trained");
  EngineInstance fresh(tm.view(), ref::table());
  for (size_t s = 0; s < 3; ++s) {
    std::memcpy(engine.input().data(), inputs[s].data(), inputs[s].size());
    ASSERT_EQ(engine.invoke(), Status::kOk);
    std::memcpy(fresh.engine().input().data(), inputs[s].data(), inputs[s].size());
    fresh.invoke();
    const Span<const int8_t> a = engine.output_s8(), c = fresh.engine().output_s8();
    EXPECT_EQ(std::vector<int8_t>(a.begin(), a.end()), std::vector<int8_t>(c.begin(), c.end())) << s;
  }
}

}  // namespace
}  // namespace tinyzo
