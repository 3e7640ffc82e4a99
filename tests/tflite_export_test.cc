// Export of imported, adapted models back to TensorFlow Lite (host/models/tflite_export.h,
// `tinyzo export MODEL.tzm --tflite OUT --from ORIG.tflite`): on the synthetic conv_net
// (tests/tflite_test_models.h) and on the real person_detect from the shared data directory
// (read at run time; the test fails when it is missing, like tflite_golden_test.cc).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cli_support.h"
#include "models/model_store.h"
#include "models/tflite_export.h"
#include "models/tflite_import.h"
#include "models/tflite_reader.h"
#include "models/tzm_writer.h"
#include "tflite_test_models.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/train/zo_trainer.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "util/npy.h"

namespace tinyzo {
namespace {

using namespace tflite_testing;
using cli_testing::TempDir;

std::string tflite_dir() {
  const char* env = std::getenv("TINYZO_DATA");
  const std::string data = env != nullptr && *env != '\0' ? std::string(env) : std::string(TINYZO_SOURCE_DIR) + "/../shared/data";
  return data + "/models/tflite";
}

std::vector<uint8_t> import_bytes(const std::vector<uint8_t>& tflite) {
  return import_tflite(tflite::parse_tflite(std::vector<uint8_t>(tflite), "orig.tflite"), "orig.tflite").tzm;
}

// An adaptation as training makes one: every conv / fully-connected weight and bias nudged by a
// deterministic pattern (weights by -1 / 0 / +1, saturating; biases by -2..2). Returns the
// rewritten .tzm and the number of tensors changed.
std::vector<uint8_t> adapt(const std::vector<uint8_t>& tzm, int* n_changed) {
  const LoadedModel m = LoadedModel::from_bytes(tzm.data(), tzm.size(), "model.tzm");
  const ModelView& v = m.view();
  std::map<int, std::vector<uint8_t>> repl;
  for (int k = 0; k < v.n_ops(); ++k) {
    const TzmOp& op = v.op(k);
    if (op.type != uint16_t(OpType::kConv2d) && op.type != uint16_t(OpType::kFullyConnected)) continue;
    const TzmTensor& w = v.tensor(op.inputs[1]);
    std::vector<uint8_t> wb(static_cast<const uint8_t*>(v.data(op.inputs[1])),
                            static_cast<const uint8_t*>(v.data(op.inputs[1])) + w.data_size);
    for (size_t i = 0; i < wb.size(); ++i) {
      const int q = int(int8_t(wb[i])) + int((i * 7 + size_t(k)) % 3) - 1;
      wb[i] = uint8_t(int8_t(std::clamp(q, -127, 127)));
    }
    repl[op.inputs[1]] = wb;
    const TzmTensor& b = v.tensor(op.inputs[2]);
    std::vector<int32_t> bv(b.data_size / 4);
    std::memcpy(bv.data(), v.data(op.inputs[2]), b.data_size);
    for (size_t i = 0; i < bv.size(); ++i) bv[i] += int32_t((i + size_t(k)) % 5) - 2;
    std::vector<uint8_t> bb(b.data_size);
    std::memcpy(bb.data(), bv.data(), bb.size());
    repl[op.inputs[2]] = bb;
  }
  *n_changed = int(repl.size());
  return rewrite_with_constants(v, repl);
}

std::string export_error(const std::vector<uint8_t>& tzm, const std::vector<uint8_t>& orig) {
  try {
    const LoadedModel m = LoadedModel::from_bytes(tzm.data(), tzm.size(), "model.tzm");
    (void)export_tflite(m.view(), "model.tzm", tflite::parse_tflite(std::vector<uint8_t>(orig), "orig.tflite"),
                        "orig.tflite");
  } catch (const CliError& e) {
    return e.what();
  }
  return "(no error)";
}

// Runs `tzm` on `inputs` (int8, one item each) with the reference kernels; the outputs, concatenated.
std::vector<int8_t> run_outputs(const std::vector<uint8_t>& tzm, const std::vector<std::vector<int8_t>>& inputs) {
  const LoadedModel m = LoadedModel::from_bytes(tzm.data(), tzm.size(), "model");
  EngineInstance e(m.view(), ref::table());
  std::vector<int8_t> out;
  for (const auto& x : inputs) {
    EXPECT_EQ(e.engine().input().size(), x.size());
    std::memcpy(e.engine().input().data(), x.data(), std::min(x.size(), size_t(e.engine().input().size())));
    e.invoke();
    const Span<const int8_t> y = e.engine().output_s8();
    out.insert(out.end(), y.begin(), y.end());
  }
  return out;
}

// The round trip the export promises: the exported file imports to MODEL bit for bit (every
// constant, every record), runs to the same outputs, differs from ORIG only inside the changed
// buffers, and an unadapted model exports to ORIG itself.
void check_round_trip(const std::vector<uint8_t>& orig, const std::vector<std::vector<int8_t>>& inputs) {
  const std::vector<uint8_t> tzm0 = import_bytes(orig);
  int n_changed = 0;
  const std::vector<uint8_t> tzm1 = adapt(tzm0, &n_changed);
  ASSERT_GT(n_changed, 0);
  ASSERT_NE(tzm1, tzm0);
  const LoadedModel m1 = LoadedModel::from_bytes(tzm1.data(), tzm1.size(), "adapted");
  const tflite::TfliteModel o = tflite::parse_tflite(std::vector<uint8_t>(orig), "orig.tflite");
  const TfliteExport e = export_tflite(m1.view(), "adapted.tzm", o, "orig.tflite");
  ASSERT_EQ(e.bytes.size(), orig.size());
  EXPECT_EQ(e.n_tensors_changed, n_changed);
  size_t differ = 0;
  for (size_t i = 0; i < orig.size(); ++i) differ += orig[i] != e.bytes[i];
  EXPECT_EQ(differ, e.n_bytes_changed);
  EXPECT_GT(differ, 0u);
  // Every differing byte lies inside a conv / FC weight or bias buffer of ORIG.
  std::vector<bool> in_buffer(orig.size(), false);
  for (const auto& op : o.ops) {
    if (op.builtin != tflite::kOpConv2d && op.builtin != tflite::kOpDepthwiseConv2d && op.builtin != tflite::kOpFullyConnected)
      continue;
    for (size_t s = 1; s < 3 && s < op.inputs.size(); ++s) {
      if (op.inputs[s] < 0) continue;
      const tflite::TflTensor& t = o.tensors[size_t(op.inputs[s])];
      const size_t at = size_t(t.data - o.bytes.data());
      for (size_t i = 0; i < t.data_size; ++i) in_buffer[at + i] = true;
    }
  }
  for (size_t i = 0; i < orig.size(); ++i) {
    if (orig[i] != e.bytes[i]) {
      ASSERT_TRUE(in_buffer[i]) << "byte " << i << " changed outside the weights";
    }
  }

  const std::vector<uint8_t> tzm2 = import_bytes(e.bytes);
  EXPECT_EQ(tzm2, tzm1);  // the whole .tzm, constants included, bit for bit
  const LoadedModel m2 = LoadedModel::from_bytes(tzm2.data(), tzm2.size(), "re-imported");
  for (int i = 0; i < m1.view().n_tensors(); ++i) {
    const TzmTensor& t = m1.view().tensor(i);
    if ((t.flags & kTensorConstant) == 0) continue;
    ASSERT_EQ(m2.view().tensor(i).data_size, t.data_size);
    EXPECT_EQ(std::memcmp(m1.view().data(i), m2.view().data(i), t.data_size), 0) << "tensor " << i;
  }
  const std::vector<int8_t> y1 = run_outputs(tzm1, inputs), y2 = run_outputs(tzm2, inputs);
  EXPECT_EQ(y1, y2);
  EXPECT_NE(run_outputs(tzm0, inputs), y1) << "the adaptation should change some output";

  // Unadapted: ORIG's bytes exactly.
  const LoadedModel m0 = LoadedModel::from_bytes(tzm0.data(), tzm0.size(), "imported");
  const TfliteExport e0 = export_tflite(m0.view(), "imported.tzm", o, "orig.tflite");
  EXPECT_EQ(e0.bytes, orig);
  EXPECT_EQ(e0.n_tensors_changed, 0);
  EXPECT_EQ(e0.n_bytes_changed, 0u);
}

std::vector<std::vector<int8_t>> ramp_inputs(size_t n_bytes, int n) {
  std::vector<std::vector<int8_t>> xs;
  for (int s = 0; s < n; ++s) xs.push_back(ramp(n_bytes, s + 1));
  return xs;
}

TEST(TfliteExport, SyntheticRoundTripIsBitExact) {
  check_round_trip(conv_net(), ramp_inputs(6 * 5 * 2, 4));
  ConvNetOptions o;
  o.depth_multiplier = 1;
  o.conv_stride = 1;
  check_round_trip(conv_net(o), ramp_inputs(6 * 5 * 2, 4));
}

TEST(TfliteExport, RefusesWhatIsNotAnAdaptation) {
  const std::vector<uint8_t> orig = conv_net();
  // Another graph: a different stride changes shapes.
  ConvNetOptions o;
  o.conv_stride = 1;
  EXPECT_EQ(export_error(import_bytes(conv_net(o)), orig),
            "model.tzm is not an adaptation of orig.tflite: op 0 'op0.CONV_2D': parameters differ");
  // Same ops and parameters, another input size.
  ConvNetOptions tall;
  tall.input_h = 8;
  EXPECT_EQ(export_error(import_bytes(conv_net(tall)), orig),
            "model.tzm is not an adaptation of orig.tflite: op 4 'op4.AVERAGE_POOL_2D': parameters differ");
  // A different model altogether.
  EXPECT_EQ(export_error(import_bytes(layout_net()), orig),
            "model.tzm is not an adaptation of orig.tflite: 4 ops, the original has 9");
  // A changed constant that training never changes (op 0's requantization).
  const std::vector<uint8_t> tzm = import_bytes(orig);
  const LoadedModel m = LoadedModel::from_bytes(tzm.data(), tzm.size(), "m");
  const int rq = m.view().op(0).inputs[3];
  std::vector<uint8_t> rb(static_cast<const uint8_t*>(m.view().data(rq)),
                          static_cast<const uint8_t*>(m.view().data(rq)) + m.view().tensor(rq).data_size);
  rb[0] ^= 1;
  const std::vector<uint8_t> bad = rewrite_with_constants(m.view(), {{rq, rb}});
  EXPECT_EQ(export_error(bad, orig), "model.tzm is not an adaptation of orig.tflite: tensor " + std::to_string(rq) +
                                         " 'op0.requant': constant values differ (only conv / fully-connected weights and biases may change)");
}

// One CONV_2D without a bias tensor (the importer gives it a zero bias constant).
std::vector<uint8_t> no_bias_net() {
  TflBuilder b;
  auto& f = b.fbb();
  const int x = b.int8_act("input", {1, 4, 4, 2}, 0.05f, 1);
  const int w = b.int8_const("conv/w", {2, 3, 3, 2}, ramp(36, 4), {0.01f, 0.02f}, 0);
  const int y = b.int8_act("conv/y", {1, 2, 2, 2}, 0.04f, -3);
  b.op(3, {x, w, -1}, {y}, tfl::BuiltinOptions_Conv2DOptions,
       tfl::CreateConv2DOptions(f, tfl::Padding_VALID, 1, 1).Union());
  return b.finish({x}, {y});
}

TEST(TfliteExport, AnAbsentBiasMustStayZero) {
  const std::vector<uint8_t> orig = no_bias_net();
  const std::vector<uint8_t> tzm = import_bytes(orig);
  int n = 0;
  const std::string err = export_error(adapt(tzm, &n), orig);
  EXPECT_EQ(err.rfind("orig.tflite: operator 0 (CONV_2D) has no bias tensor, so the adapted bias of tensor ", 0), 0u) << err;
  // The weights alone go back.
  const LoadedModel m = LoadedModel::from_bytes(tzm.data(), tzm.size(), "m");
  const int wi = m.view().op(0).inputs[1];
  std::vector<uint8_t> wb(static_cast<const uint8_t*>(m.view().data(wi)),
                          static_cast<const uint8_t*>(m.view().data(wi)) + m.view().tensor(wi).data_size);
  for (auto& v : wb) v = uint8_t(int8_t(std::clamp(int(int8_t(v)) + 1, -127, 127)));
  const std::vector<uint8_t> adapted = rewrite_with_constants(m.view(), {{wi, wb}});
  const LoadedModel ma = LoadedModel::from_bytes(adapted.data(), adapted.size(), "adapted");
  const TfliteExport e =
      export_tflite(ma.view(), "adapted.tzm", tflite::parse_tflite(std::vector<uint8_t>(orig), "o"), "orig.tflite");
  EXPECT_EQ(e.n_tensors_changed, 1);
  EXPECT_EQ(import_bytes(e.bytes), adapted);
}

// Two CONV_2Ds reading the same weight and bias tensors (one TFLite buffer each); the importer
// gives each op its own copies.
std::vector<uint8_t> shared_weight_net() {
  TflBuilder b;
  auto& f = b.fbb();
  const int x = b.int8_act("input", {1, 4, 4, 2}, 0.05f, 1);
  const int w = b.int8_const("conv/w", {2, 3, 3, 2}, ramp(36, 5), {0.01f, 0.02f}, 0);
  const int bias = b.int32_const("conv/b", {2}, {5, -5});
  const int y1 = b.int8_act("conv1/y", {1, 4, 4, 2}, 0.05f, 1);
  b.op(3, {x, w, bias}, {y1}, tfl::BuiltinOptions_Conv2DOptions, tfl::CreateConv2DOptions(f, tfl::Padding_SAME, 1, 1).Union());
  const int y2 = b.int8_act("conv2/y", {1, 4, 4, 2}, 0.05f, 1);
  b.op(3, {y1, w, bias}, {y2}, tfl::BuiltinOptions_Conv2DOptions, tfl::CreateConv2DOptions(f, tfl::Padding_SAME, 1, 1).Union());
  return b.finish({x}, {y2});
}

TEST(TfliteExport, SharedWeightsMustStayShared) {
  const std::vector<uint8_t> orig = shared_weight_net();
  const std::vector<uint8_t> tzm = import_bytes(orig);
  int n = 0;
  // adapt() nudges each op's copy by a different pattern: one buffer cannot hold both.
  const std::string err = export_error(adapt(tzm, &n), orig);
  EXPECT_EQ(err, "orig.tflite: tensor 1 is shared by operators 0 and 1, whose copies were adapted to different values") << err;
  // The same new values in both copies go back once.
  const LoadedModel m = LoadedModel::from_bytes(tzm.data(), tzm.size(), "m");
  std::map<int, std::vector<uint8_t>> repl;
  for (int k = 0; k < 2; ++k) {
    const int wi = m.view().op(k).inputs[1];
    std::vector<uint8_t> wb(static_cast<const uint8_t*>(m.view().data(wi)),
                            static_cast<const uint8_t*>(m.view().data(wi)) + m.view().tensor(wi).data_size);
    wb[3] = uint8_t(int8_t(wb[3]) + 1);
    repl[wi] = wb;
  }
  const std::vector<uint8_t> adapted = rewrite_with_constants(m.view(), repl);
  const LoadedModel ma = LoadedModel::from_bytes(adapted.data(), adapted.size(), "adapted");
  const TfliteExport e =
      export_tflite(ma.view(), "adapted.tzm", tflite::parse_tflite(std::vector<uint8_t>(orig), "o"), "orig.tflite");
  EXPECT_EQ(e.n_tensors_changed, 1);
  EXPECT_EQ(e.n_bytes_changed, 1u);
  EXPECT_EQ(import_bytes(e.bytes), adapted);
}

TEST(TfliteExport, RefusesDamagedOriginals) {
  const std::vector<uint8_t> orig = conv_net();
  const std::vector<uint8_t> tzm = import_bytes(orig);
  for (size_t cut : {size_t(0), size_t(7), size_t(300), orig.size() / 2, orig.size() - 1}) {
    const std::string err = export_error(tzm, std::vector<uint8_t>(orig.begin(), orig.begin() + long(cut)));
    EXPECT_EQ(err.rfind("orig.tflite: ", 0), 0u) << cut << ": " << err;
  }
}

TEST(TfliteExport, PersonDetectRoundTripIsBitExact) {
  const std::string path = tflite_dir() + "/person_detect.tflite";
  ASSERT_TRUE(is_regular_file(path)) << path << " is missing (set $TINYZO_DATA)";
  const std::vector<uint8_t> orig = read_file_bytes(path, tflite::kMaxTfliteBytes, "person_detect");
  check_round_trip(orig, ramp_inputs(96 * 96, 3));
}

// As training adapts it: a few ZO steps (NP on op 26, WP on op 28, as TfliteTrain does) on
// TFLM's golden inputs, the trained copies written into the .tzm, exported, imported back: the
// same .tzm bit for bit and the same outputs.
TEST(TfliteExport, ZoTrainedPersonDetectRoundTrip) {
  const std::string path = tflite_dir() + "/person_detect.tflite";
  ASSERT_TRUE(is_regular_file(path)) << path << " is missing (set $TINYZO_DATA)";
  const std::vector<uint8_t> orig = read_file_bytes(path, tflite::kMaxTfliteBytes, "person_detect");
  const std::vector<uint8_t> tzm0 = import_bytes(orig);
  const LoadedModel model = LoadedModel::from_bytes(tzm0.data(), tzm0.size(), path);
  const ModelView& view = model.view();
  std::vector<std::vector<int8_t>> inputs;
  std::vector<int> labels;
  for (const char* label : {"person", "no_person", "random_00", "random_01", "random_02", "random_03"}) {
    const std::string dir = tflite_dir() + "/goldens/person_detect/";
    const NpyArray x = read_npy_file(dir + "input_" + label + ".npy");
    const NpyArray y = read_npy_file(dir + "output_" + label + ".npy");
    inputs.emplace_back(x.s8(), x.s8() + x.data.size());
    labels.push_back(y.s8()[0] >= y.s8()[1] ? 0 : 1);
  }
  EngineInstance engine(view, ref::table());
  const TrainLayer layers[] = {{26, PerturbMode::kNode}, {28, PerturbMode::kWeight}};
  ZoConfig cfg;
  cfg.n_queries_w = 8;
  cfg.n_queries_b = 8;
  cfg.n_queries_np = 8;
  cfg.seed = 7;
  std::vector<uint8_t> scratch_mem(64 << 20);
  Arena scratch(scratch_mem.data(), scratch_mem.size());
  size_t need = 0;
  ASSERT_EQ(ZoTrainer::required_arena_bytes(engine.engine(), Span<const TrainLayer>(layers, 2), cfg, scratch, &need),
            Status::kOk);
  std::vector<uint8_t> train_mem(need + 64);
  Arena train_arena(train_mem.data(), train_mem.size());
  ZoTrainer trainer;
  ASSERT_EQ(trainer.init(engine.engine(), Span<const TrainLayer>(layers, 2), cfg, train_arena), Status::kOk);
  int moved = 0;
  for (uint32_t step = 0; step < 4; ++step) {
    ASSERT_EQ(trainer.begin_step(step), Status::kOk);
    for (size_t i = 0; i < inputs.size(); ++i)
      ASSERT_EQ(trainer.accumulate_sample(Span<const int8_t>(inputs[i].data(), inputs[i].size()), labels[i]), Status::kOk);
    ASSERT_EQ(trainer.end_step(0.05f), Status::kOk);
    moved += trainer.last_step().weights_changed;
  }
  ASSERT_GT(moved, 0);
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
  ASSERT_NE(trained, tzm0);
  const LoadedModel tm = LoadedModel::from_bytes(trained.data(), trained.size(), "trained");
  const TfliteExport e =
      export_tflite(tm.view(), "trained.tzm", tflite::parse_tflite(std::vector<uint8_t>(orig), "o"), "person_detect.tflite");
  EXPECT_GT(e.n_tensors_changed, 0);
  EXPECT_LE(e.n_tensors_changed, 4);
  const std::vector<uint8_t> back = import_bytes(e.bytes);
  EXPECT_EQ(back, trained);
  EXPECT_EQ(run_outputs(back, inputs), run_outputs(trained, inputs));
}

TEST(TfliteExport, CliExportsAndRefuses) {
  TempDir dir;
  cli_testing::write_bytes(dir.file("net.tflite"), conv_net());
  cli_testing::RunResult r = cli_testing::run_tinyzo("import net.tflite -o net.tzm", dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  r = cli_testing::run_tinyzo("export net.tzm --tflite out.tflite --from net.tflite", dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("0 weight / bias tensors changed"), std::string::npos) << r.out;
  EXPECT_EQ(cli_testing::slurp(dir.file("out.tflite")), cli_testing::slurp(dir.file("net.tflite")));

  int n = 0;
  const std::vector<uint8_t> adapted = adapt(read_file_bytes(dir.file("net.tzm"), 1 << 20, "net.tzm"), &n);
  cli_testing::write_bytes(dir.file("adapted.tzm"), adapted);
  r = cli_testing::run_tinyzo("export adapted.tzm --tflite a.tflite --from net.tflite", dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(std::to_string(n) + " weight / bias tensors changed"), std::string::npos) << r.out;
  r = cli_testing::run_tinyzo("import a.tflite -o a.tzm", dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(cli_testing::slurp(dir.file("a.tzm")), cli_testing::slurp(dir.file("adapted.tzm")));

  ConvNetOptions o;
  o.conv_stride = 1;
  cli_testing::write_bytes(dir.file("other.tflite"), conv_net(o));
  cli_testing::expect_one_error_line(
      cli_testing::run_tinyzo("export adapted.tzm --tflite x.tflite --from other.tflite", dir.path()), 1,
      "adapted.tzm is not an adaptation of other.tflite: ");
  EXPECT_FALSE(is_regular_file(dir.file("x.tflite")));
  const std::vector<uint8_t> whole = conv_net();
  cli_testing::write_bytes(dir.file("cut.tflite"), std::vector<uint8_t>(whole.begin(), whole.begin() + 300));
  cli_testing::expect_one_error_line(
      cli_testing::run_tinyzo("export adapted.tzm --tflite x.tflite --from cut.tflite", dir.path()), 1,
      "cut.tflite: corrupt TensorFlow Lite model");
  EXPECT_FALSE(is_regular_file(dir.file("x.tflite")));
}

}  // namespace
}  // namespace tinyzo
