// The host side of `tinyzo train`: checkpoint format and atomic write, config
// file handling, layer specs, and a short run on a small synthetic model that
// must resume bit-identically and export a loadable best.tzm.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "temp_dir.h"
#include "test_models.h"
#include "tinyzo/model.h"
#include "train/checkpoint.h"
#include "train/train_config.h"
#include "train/trainer_run.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

Checkpoint sample_checkpoint() {
  Checkpoint c;
  c.fingerprint = "0123456789abcdef";
  c.step = 17;
  c.best_epoch = 2;
  c.best_val = 0.61;
  c.val_before = 0.4;
  c.test_before = 0.45;
  c.log_bytes = 12345;
  c.elapsed_seconds = 3.5;
  c.total_macs = 1ull << 40;
  for (int i = 0; i < 2; ++i) {
    CheckpointLayer l;
    l.op = 3 + 5 * i;
    l.node = i == 1;
    for (int k = 0; k < 24 + i; ++k) {
      l.weights.push_back(int8_t(k * 11 - 100));
      l.best_weights.push_back(int8_t(-k));
    }
    for (int k = 0; k < 4; ++k) {
      l.biases.push_back(k * 100000 - 7);
      l.best_biases.push_back(INT32_MIN + k);
    }
    c.layers.push_back(l);
  }
  return c;
}

void expect_same(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.best_epoch, b.best_epoch);
  EXPECT_EQ(a.best_val, b.best_val);
  EXPECT_EQ(a.val_before, b.val_before);
  EXPECT_EQ(a.test_before, b.test_before);
  EXPECT_EQ(a.log_bytes, b.log_bytes);
  EXPECT_EQ(a.elapsed_seconds, b.elapsed_seconds);
  EXPECT_EQ(a.total_macs, b.total_macs);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].op, b.layers[i].op);
    EXPECT_EQ(a.layers[i].node, b.layers[i].node);
    EXPECT_EQ(a.layers[i].weights, b.layers[i].weights);
    EXPECT_EQ(a.layers[i].biases, b.layers[i].biases);
    EXPECT_EQ(a.layers[i].best_weights, b.layers[i].best_weights);
    EXPECT_EQ(a.layers[i].best_biases, b.layers[i].best_biases);
    EXPECT_EQ(a.layers[i].momentum_w, b.layers[i].momentum_w);
    EXPECT_EQ(a.layers[i].momentum_b, b.layers[i].momentum_b);
  }
}

TEST(Checkpoint, RoundTrip) {
  const Checkpoint c = sample_checkpoint();
  const std::vector<uint8_t> bytes = serialize_checkpoint(c);
  expect_same(c, parse_checkpoint(bytes.data(), bytes.size(), "mem"));
}

TEST(Checkpoint, MomentumMakesVersion2AndRoundTrips) {
  // Without momentum the file is version 1, byte for byte what it always was;
  // with it, version 2 carries the float buffers.
  const Checkpoint plain = sample_checkpoint();
  const std::vector<uint8_t> v1 = serialize_checkpoint(plain);
  EXPECT_EQ(v1[4], 1);
  EXPECT_EQ(v1.size(), checkpoint_size_bytes(plain.layers));
  Checkpoint c = plain;
  for (size_t i = 0; i < c.layers.size(); ++i) {
    for (size_t k = 0; k < c.layers[i].weights.size(); ++k) c.layers[i].momentum_w.push_back(0.125f * float(k) - 1e-7f);
    if (i == 0) c.layers[i].momentum_b = {1.f, -2.f, 3.5e-9f, 0.f};  // layer 1: weights only (no bias update)
  }
  const std::vector<uint8_t> v2 = serialize_checkpoint(c);
  EXPECT_EQ(v2[4], 2);
  EXPECT_EQ(v2.size(), checkpoint_size_bytes(c.layers));
  expect_same(c, parse_checkpoint(v2.data(), v2.size(), "mem"));
  // A momentum buffer that does not match its layer is refused, writing and reading.
  Checkpoint bad = c;
  bad.layers[0].momentum_b.pop_back();
  EXPECT_THROW(serialize_checkpoint(bad), CliError);
  std::vector<uint8_t> wrong = v2;
  // Layer 0's n_mb sits after its head (13 B), weights, biases, best weights, best biases and n_mw.
  const size_t at = 84 + 13 + 2 * (24 + 16) + 4;  // the head is 84 bytes
  ASSERT_EQ(wrong[at], 4);
  wrong[at] = 3;
  const uint32_t crc = crc32_update(0, wrong.data(), wrong.size() - 4);
  std::memcpy(wrong.data() + wrong.size() - 4, &crc, 4);
  EXPECT_THROW(
      {
        try {
          parse_checkpoint(wrong.data(), wrong.size(), "mem");
        } catch (const CliError& e) {
          EXPECT_NE(std::string(e.what()).find("momentum of 24 + 3 values"), std::string::npos) << e.what();
          throw;
        }
      },
      CliError);
}

TEST(Checkpoint, RejectsDamage) {
  const std::vector<uint8_t> bytes = serialize_checkpoint(sample_checkpoint());
  // Every single-byte flip is caught (magic, version, CRC or payload).
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::vector<uint8_t> bad = bytes;
    bad[i] ^= 0x20;
    EXPECT_THROW(parse_checkpoint(bad.data(), bad.size(), "mem"), CliError) << "byte " << i;
  }
  for (size_t n : {size_t(0), size_t(3), size_t(40), bytes.size() - 1})
    EXPECT_THROW(parse_checkpoint(bytes.data(), n, "mem"), CliError) << n;
  Checkpoint c = sample_checkpoint();
  c.fingerprint = "short";
  EXPECT_THROW(serialize_checkpoint(c), CliError);
}

TEST(Checkpoint, AtomicSaveReplacesAndLeavesNoTemporaries) {
  TempDir dir("ckpt");
  const std::string path = dir.file("checkpoint.bin");
  Checkpoint c = sample_checkpoint();
  save_checkpoint(path, c);
  c.step = 99;
  c.layers[0].weights[0] = 42;
  save_checkpoint(path, c);
  expect_same(c, load_checkpoint(path));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "checkpoint.bin");
  }
  EXPECT_EQ(files, 1);
  // A write that cannot happen throws and leaves the old checkpoint intact.
  EXPECT_THROW(save_checkpoint(dir.file("no_such_dir/checkpoint.bin"), c), CliError);
  expect_same(c, load_checkpoint(path));
  EXPECT_THROW(load_checkpoint(dir.file("missing.bin")), CliError);
}

TEST(TrainConfig, JsonRoundTripAndStrictKeys) {
  TrainConfig c;
  c.corruption = "fog";
  c.queries_w = 7;
  c.two_sided = true;
  c.lr = 0.125;
  c.seed = 99;
  TrainConfig d;
  apply_config_json(nlohmann::json::parse(config_to_json(c).dump()), &d, "test");
  EXPECT_EQ(config_to_json(c), config_to_json(d));
  EXPECT_THROW(apply_config_json(nlohmann::json{{"queries", 3}}, &d, "test"), CliError);
  EXPECT_THROW(apply_config_json(nlohmann::json{{"queries_w", "3"}}, &d, "test"), CliError);
  EXPECT_THROW(apply_config_json(nlohmann::json{{"queries_w", 2.5}}, &d, "test"), CliError);
  EXPECT_THROW(apply_config_json(nlohmann::json{{"seed", -1}}, &d, "test"), CliError);
  EXPECT_THROW(apply_config_json(nlohmann::json::array(), &d, "test"), CliError);
  apply_config_json(nlohmann::json{{"_comment", "free text"}, {"lr", 1}}, &d,
                    "test");  // ints are numbers too
  EXPECT_EQ(d.lr, 1.0);
}

TEST(TrainConfig, ValidationAndFingerprint) {
  TrainConfig c;
  EXPECT_NO_THROW(validate_config(c));
  EXPECT_DOUBLE_EQ(effective_lr(c), 0.01 * 100 / 256);
  for (auto bad : std::vector<std::function<void(TrainConfig&)>>{
           [](TrainConfig& x) { x.queries_w = 0; }, [](TrainConfig& x) { x.queries_np = 257; },
           [](TrainConfig& x) { x.mu = 128; }, [](TrainConfig& x) { x.gns = "cubic"; },
           [](TrainConfig& x) { x.mode = "threshold:"; }, [](TrainConfig& x) { x.severity = 6; },
           [](TrainConfig& x) { x.batch = 0; }, [](TrainConfig& x) { x.kernels = "fast"; }}) {
    TrainConfig x;
    bad(x);
    EXPECT_THROW(validate_config(x), CliError);
  }
  TrainConfig d = c;
  d.threads = 8;
  d.out = "elsewhere";
  EXPECT_EQ(config_fingerprint(c), config_fingerprint(d));  // execution settings only
  d.lr = 0.5;
  EXPECT_NE(config_fingerprint(c), config_fingerprint(d));
  EXPECT_EQ(config_fingerprint(c).size(), 16u);
}

TEST(TrainConfig, ParseMode) {
  EXPECT_EQ(parse_mode("wp").kind, ModeRule::kWeight);
  EXPECT_EQ(parse_mode("np").kind, ModeRule::kNode);
  EXPECT_EQ(parse_mode("auto").kind, ModeRule::kAuto);
  const ModeRule t = parse_mode("threshold:12");
  EXPECT_EQ(t.kind, ModeRule::kThreshold);
  EXPECT_EQ(t.threshold, 12);
  for (const char* bad : {"", "WP", "threshold", "threshold:x", "threshold:-1", "np "})
    EXPECT_THROW(parse_mode(bad), CliError) << bad;
}

TEST(TrainConfig, OpBlock) {
  EXPECT_EQ(op_block("1.4.conv.0"), 4);
  EXPECT_EQ(op_block("1.12.q_add"), 12);
  EXPECT_EQ(op_block("blocks.7.pointwise1"), 7);
  EXPECT_EQ(op_block("0"), -1);
  EXPECT_EQ(op_block("4"), -1);
  EXPECT_EQ(op_block("1.x.conv"), -1);
  EXPECT_EQ(op_block("10.2"), -1);
}

// ---------------------------------------------------------------- a small model

using testing::coloured_cifar_images;
using testing::trainable_model_bytes;

struct SmallRun {
  AlignedModelBytes bytes;
  ModelView view;
  TrainData data;
  TrainConfig cfg;
  std::vector<LayerChoice> layers;
  SmallRun() : bytes(trainable_model_bytes()) {
    EXPECT_EQ(view.init(bytes.data(), bytes.size()), Status::kOk) << view.error();
    ProtocolSpec spec;
    spec.corruption = "none";
    spec.split = SplitSpec{3, 1, 2, 0};
    data = prepare_train_data(make_protocol_data(coloured_cifar_images(8, 1), spec, "", 1), view);
    cfg.queries_w = 3;
    cfg.queries_b = 2;
    cfg.queries_np = 3;
    cfg.batch = 8;   // 30 train images: 4 steps per epoch (the last has 6)
    cfg.epochs = 2;  // 8 steps
    cfg.lr = 2.0;    // large: the synthetic layers must really move
    cfg.rounding = "stochastic";
    cfg.seed = 11;
    cfg.threads = 2;
    layers = resolve_layers(view, "1.1.conv.0,1.1.conv.2:np,1.2.conv.0", parse_mode("threshold:1"), {});
  }
};

// Runs `opt` into `dir` stopped after 3 steps, then resumes it: the final
// parameters and best.tzm must be those of `full`, the uninterrupted run
// whose directory is `full_dir`. Returns the resumed run.
RunResult expect_resume_matches(const SmallRun& r, RunOptions opt, const RunResult& full, const TempDir& full_dir,
                                const TempDir& dir) {
  opt.out_dir = dir.path();
  opt.resume = false;
  opt.stop_after_steps = 3;
  EXPECT_FALSE(run_training(r.view, r.data, opt).finished);
  opt.stop_after_steps = 0;
  opt.resume = true;
  const RunResult rest = run_training(r.view, r.data, opt);
  EXPECT_TRUE(rest.finished);
  EXPECT_EQ(rest.layers.size(), full.layers.size());
  for (size_t i = 0; i < full.layers.size() && i < rest.layers.size(); ++i) {
    EXPECT_EQ(rest.layers[i].weights, full.layers[i].weights) << i;
    EXPECT_EQ(rest.layers[i].biases, full.layers[i].biases) << i;
  }
  EXPECT_EQ(read_file_bytes(full_dir.file("best.tzm"), kMaxModelBytes),
            read_file_bytes(dir.file("best.tzm"), kMaxModelBytes));
  return rest;
}

// Bias-only layers `full.layers[first..]`: no weights kept, the export holds
// the source's weights byte for byte and the best biases. Returns whether
// any of their biases moved.
bool expect_biases_only_exported(const SmallRun& r, const RunResult& full, size_t first) {
  const std::vector<uint8_t> bytes = read_file_bytes(full.best_model_path, kMaxModelBytes);
  AlignedModelBytes aligned(bytes);
  ModelView exported;
  EXPECT_EQ(exported.init(aligned.data(), aligned.size()), Status::kOk) << exported.error();
  if (!exported.valid()) return false;
  bool moved = false;
  for (size_t k = first; k < full.layers.size(); ++k) {
    const CheckpointLayer& l = full.layers[k];
    const TzmOp& op = r.view.op(l.op);
    EXPECT_TRUE(l.weights.empty());
    EXPECT_EQ(std::memcmp(exported.data(op.inputs[1]), r.view.data(op.inputs[1]), r.view.tensor(op.inputs[1]).data_size),
              0);
    EXPECT_EQ(std::memcmp(exported.data(op.inputs[2]), l.best_biases.data(), l.best_biases.size() * 4), 0);
    moved = moved || std::memcmp(l.biases.data(), r.view.data(op.inputs[2]), l.biases.size() * 4) != 0;
  }
  return moved;
}

TEST(TrainLayers, ResolveSpecs) {
  SmallRun r;
  ASSERT_EQ(r.layers.size(), 3u);
  EXPECT_EQ(r.layers[0].op, 1);
  EXPECT_FALSE(r.layers[0].node);  // block 1 <= threshold 1: WP
  EXPECT_TRUE(r.layers[1].node);   // forced :np
  EXPECT_TRUE(r.layers[2].node);   // block 2 > 1: NP
  EXPECT_EQ(layers_to_string(r.view, r.layers), "1.1.conv.0:wp,1.1.conv.2:np,1.2.conv.0:np");
  const auto all = resolve_layers(r.view, "all", parse_mode("wp"), {});
  EXPECT_EQ(all.size(), 5u);
  for (const LayerChoice& l : all) EXPECT_FALSE(l.node);
  const auto by_index = resolve_layers(r.view, "#4, #0:np", parse_mode("wp"), {});
  ASSERT_EQ(by_index.size(), 2u);
  EXPECT_EQ(by_index[0].op, 0);
  EXPECT_TRUE(by_index[0].node);
  EXPECT_THROW(resolve_layers(r.view, "paper", parse_mode("wp"), {}), CliError);
  EXPECT_THROW(resolve_layers(r.view, "pool", parse_mode("wp"), {}), CliError);  // not a conv
  EXPECT_THROW(resolve_layers(r.view, "nope", parse_mode("wp"), {}), CliError);
  EXPECT_THROW(resolve_layers(r.view, "0:xp", parse_mode("wp"), {}), CliError);
  EXPECT_THROW(resolve_layers(r.view, " , ", parse_mode("wp"), {}), CliError);
  // Auto: NP exactly where D <= 2 d_w.
  for (const LayerChoice& l : resolve_layers(r.view, "all", parse_mode("auto"), {})) {
    const ConvDims d = conv_dims(r.view, l.op);
    EXPECT_EQ(l.node, double(d.d_out) <= kAutoNodeFactor * double(d.d_w)) << l.op;
  }
  // Auto under a budget no NP layer fits in: everything falls back to WP.
  AutoModeContext tight;
  tight.budget_kb = 0.001;
  for (const LayerChoice& l : resolve_layers(r.view, "all", parse_mode("auto"), tight)) EXPECT_FALSE(l.node);
}

TEST(TrainRun, ResumeEqualsUninterrupted) {
  SmallRun r;
  TempDir a("run_a"), b("run_b");
  RunOptions opt;
  opt.config = r.cfg;
  opt.layers = r.layers;
  opt.out_dir = a.path();
  const RunResult full = run_training(r.view, r.data, opt);
  ASSERT_TRUE(full.finished);
  EXPECT_EQ(full.steps_done, 8u);
  EXPECT_EQ(full.epochs, 2u);
  // The run really trained: the weights moved.
  bool moved = false;
  for (int i = 0; i < int(full.layers.size()); ++i) {
    const TzmOp& op = r.view.op(full.layers[size_t(i)].op);
    moved = moved || std::memcmp(full.layers[size_t(i)].weights.data(), r.view.data(op.inputs[1]),
                                 full.layers[size_t(i)].weights.size()) != 0;
  }
  EXPECT_TRUE(moved);

  // Interrupted mid-epoch (after step 3 of the first epoch's 4), then resumed.
  opt.out_dir = b.path();
  opt.stop_after_steps = 3;
  const RunResult part = run_training(r.view, r.data, opt);
  EXPECT_FALSE(part.finished);
  EXPECT_EQ(part.steps_done, 3u);
  opt.stop_after_steps = 0;
  opt.resume = true;
  const RunResult rest = run_training(r.view, r.data, opt);
  ASSERT_TRUE(rest.finished);
  ASSERT_EQ(rest.layers.size(), full.layers.size());
  for (size_t i = 0; i < full.layers.size(); ++i) {
    EXPECT_EQ(rest.layers[i].weights, full.layers[i].weights) << i;
    EXPECT_EQ(rest.layers[i].biases, full.layers[i].biases) << i;
    EXPECT_EQ(rest.layers[i].best_weights, full.layers[i].best_weights) << i;
    EXPECT_EQ(rest.layers[i].best_biases, full.layers[i].best_biases) << i;
  }
  EXPECT_EQ(rest.best_val, full.best_val);
  EXPECT_EQ(rest.best_epoch, full.best_epoch);
  EXPECT_EQ(rest.test_after, full.test_after);
  EXPECT_EQ(rest.test_before, full.test_before);
  EXPECT_EQ(rest.total_macs, full.total_macs);
  EXPECT_EQ(read_file_bytes(a.file("best.tzm"), kMaxModelBytes),
            read_file_bytes(b.file("best.tzm"), kMaxModelBytes));

  // The logs hold the same step records (the resumed one has a "resume" line).
  auto steps = [](const std::string& path) {
    std::vector<std::string> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line);
      if (j["type"] == "step")
        out.push_back(std::to_string(j["step"].get<int>()) + ":" + j["loss"].dump() + ":" +
                      j["weights_changed"].dump());
    }
    return out;
  };
  EXPECT_EQ(steps(a.file("log.jsonl")), steps(b.file("log.jsonl")));
  EXPECT_EQ(steps(a.file("log.jsonl")).size(), 8u);

  // A different config must not resume this run.
  opt.config.lr = 1.0;
  EXPECT_THROW(run_training(r.view, r.data, opt), CliError);
}

TEST(TrainRun, MomentumResumesBitIdenticallyAndChangesTheRun) {
  // Momentum is training state: a run stopped mid-epoch and resumed from its
  // (version 2) checkpoint ends with the same weights, log and best model as
  // an uninterrupted one, and differs from the same run without momentum.
  SmallRun r;
  TempDir a("mom_a"), b("mom_b"), c("mom_c");
  RunOptions opt;
  opt.config = r.cfg;
  opt.config.momentum = 0.9;
  opt.layers = r.layers;
  opt.out_dir = a.path();
  const RunResult full = run_training(r.view, r.data, opt);
  ASSERT_TRUE(full.finished);
  EXPECT_EQ(expect_resume_matches(r, opt, full, a, b).best_val, full.best_val);
  EXPECT_EQ(read_file_bytes(b.file("checkpoint.bin"), 1 << 20)[4], 2);
  // The plain run's checkpoint cannot resume it (another fingerprint), and its weights differ.
  opt.config.momentum = 0;
  opt.resume = false;
  opt.out_dir = c.path();
  const RunResult plain = run_training(r.view, r.data, opt);
  bool differ = false;
  for (size_t i = 0; i < full.layers.size(); ++i) differ = differ || plain.layers[i].weights != full.layers[i].weights;
  EXPECT_TRUE(differ);
  EXPECT_EQ(read_file_bytes(c.file("checkpoint.bin"), 1 << 20)[4], 1);
  opt.out_dir = a.path();
  opt.resume = true;
  EXPECT_THROW(run_training(r.view, r.data, opt), CliError);
}

TEST(TrainRun, ExportedModelHoldsTheBestWeights) {
  SmallRun r;
  TempDir dir("export");
  RunOptions opt;
  opt.config = r.cfg;
  opt.config.max_steps = 3;  // one epoch of 4 steps cut to 3: the cosine spans 3
  opt.layers = r.layers;
  opt.out_dir = dir.path();
  const RunResult res = run_training(r.view, r.data, opt);
  ASSERT_TRUE(res.finished);
  EXPECT_EQ(res.total_steps, 3u);
  EXPECT_EQ(res.epochs, 1u);
  EXPECT_EQ(res.best_epoch, 1);
  const std::vector<uint8_t> bytes = read_file_bytes(res.best_model_path, kMaxModelBytes);
  AlignedModelBytes aligned(bytes);
  ModelView exported;
  ASSERT_EQ(exported.init(aligned.data(), aligned.size()), Status::kOk) << exported.error();
  for (const CheckpointLayer& l : res.layers) {
    const TzmOp& op = exported.op(l.op);
    EXPECT_EQ(std::memcmp(exported.data(op.inputs[1]), l.best_weights.data(), l.best_weights.size()), 0);
    EXPECT_EQ(std::memcmp(exported.data(op.inputs[2]), l.best_biases.data(), l.best_biases.size() * 4), 0);
  }
  // Every other constant is byte-identical to the source.
  for (int t = 0; t < exported.n_tensors(); ++t) {
    const TzmTensor& tt = exported.tensor(t);
    if (!(tt.flags & kTensorConstant)) continue;
    bool trained = false;
    for (const CheckpointLayer& l : res.layers)
      trained = trained || t == r.view.op(l.op).inputs[1] || t == r.view.op(l.op).inputs[2];
    if (!trained) {
      EXPECT_EQ(std::memcmp(exported.data(t), r.view.data(t), tt.data_size), 0) << tt.name;
    }
  }
  // The test accuracy of the export (evaluated independently) is the reported one.
  Evaluator eval(exported, best_kernels(), 1);
  EXPECT_DOUBLE_EQ(eval.accuracy(r.data.test_inputs.data(), r.data.input_size, r.data.test_labels.data(),
                                 r.data.n_test(), {}),
                   res.test_after);
  // Log: start, before, 3 steps, 1 epoch, summary.
  std::ifstream in(dir.file("log.jsonl"));
  std::vector<std::string> types;
  for (std::string line; std::getline(in, line);) types.push_back(nlohmann::json::parse(line)["type"]);
  EXPECT_EQ(types, (std::vector<std::string>{"start", "before", "step", "step", "step", "epoch", "summary"}));
}

TEST(TrainRun, ThreadsDoNotChangeTheResult) {
  SmallRun r;
  RunOptions opt;
  opt.config = r.cfg;
  opt.config.max_steps = 2;
  opt.layers = r.layers;
  const RunResult two_threads = run_training(r.view, r.data, opt);  // no out_dir: no files
  opt.config.threads = 1;
  const RunResult one_thread = run_training(r.view, r.data, opt);
  EXPECT_EQ(two_threads.val_before, one_thread.val_before);
  EXPECT_EQ(two_threads.test_after, one_thread.test_after);
  EXPECT_EQ(two_threads.layers[0].weights, one_thread.layers[0].weights);
}

TEST(TrainRun, BiasOnlyKeepsTheWeightsExportsTheBiasesAndResumes) {
  // --params bias: the export holds the source's weights byte for byte and
  // the trained biases; a run stopped after 3 steps resumes to the same
  // biases and best model as an uninterrupted one.
  SmallRun r;
  TempDir a("bias_a"), b("bias_b");
  RunOptions opt;
  opt.config = r.cfg;
  opt.config.params = "bias";
  opt.config.estimation = "model";
  opt.config.lr = 0.5;
  opt.layers = r.layers;
  opt.out_dir = a.path();
  const RunResult full = run_training(r.view, r.data, opt);
  ASSERT_TRUE(full.finished);
  EXPECT_TRUE(expect_biases_only_exported(r, full, 0));
  expect_resume_matches(r, opt, full, a, b);
  // Layer-wise estimation cannot perturb every layer at once: a one-line refusal.
  opt.config.estimation = "layer";
  opt.resume = false;
  EXPECT_THROW(run_training(r.view, r.data, opt), CliError);
}

TEST(TrainRun, PlusBiasesTrainsEveryOtherConvsBiasesBesideTheLayersAndResumes) {
  // --plus-biases: a second trainer takes the biases of the convs the layers
  // leave out (model-wise, per sample). Its layers come after the chosen ones
  // in the result and the export; their weights stay the source's byte for
  // byte; their biases move; the first trainer's weights differ from a run
  // without it (its forwards see the moved biases); query workers change nothing;
  // a stopped run resumes to the same best model; the memory model counts
  // both arenas byte for byte.
  SmallRun r;
  TempDir a("plus_a"), b("plus_b"), c("plus_c");
  RunOptions opt;
  opt.config = r.cfg;
  opt.config.plus_biases = 4;
  opt.config.bias_mu = 0.5;
  opt.layers = r.layers;
  opt.out_dir = a.path();
  const RunResult full = run_training(r.view, r.data, opt);
  ASSERT_TRUE(full.finished);
  const std::vector<LayerChoice> others = plus_bias_group(r.view, r.layers, make_zo_config(opt.config), 4).layers;
  ASSERT_EQ(others.size(), 2u);  // 5 convs, 3 chosen
  ASSERT_EQ(full.layers.size(), r.layers.size() + others.size());
  for (size_t i = 0; i < r.layers.size(); ++i) EXPECT_EQ(full.layers[i].op, r.layers[i].op);
  for (size_t k = 0; k < others.size(); ++k) {
    EXPECT_EQ(full.layers[r.layers.size() + k].op, others[k].op);
    for (const LayerChoice& chosen : r.layers) EXPECT_NE(others[k].op, chosen.op);
  }
  EXPECT_TRUE(expect_biases_only_exported(r, full, r.layers.size()));
  EXPECT_EQ(full.predicted.total_bytes(), full.engine_arena_bytes + full.trainer_arena_bytes);

  RunOptions plain = opt;
  plain.config.plus_biases = 0;
  plain.out_dir.clear();
  const RunResult without = run_training(r.view, r.data, plain);
  ASSERT_EQ(without.layers.size(), r.layers.size());
  EXPECT_LT(without.trainer_arena_bytes, full.trainer_arena_bytes);
  bool differs = false;
  for (size_t i = 0; i < r.layers.size(); ++i) differs = differs || without.layers[i].weights != full.layers[i].weights;
  EXPECT_TRUE(differs);

  // No query workers at all (one thread, batches of 1): the run above ran the
  // first trainer's queries on worker engines, which must read the second
  // trainer's biases as the main engine does.
  RunOptions one = opt;
  one.config.threads = 1;
  one.config.engine_batch = 1;
  one.out_dir = c.path();
  const RunResult single = run_training(r.view, r.data, one);
  ASSERT_EQ(single.layers.size(), full.layers.size());
  for (size_t i = 0; i < full.layers.size(); ++i) {
    EXPECT_EQ(single.layers[i].weights, full.layers[i].weights) << i;
    EXPECT_EQ(single.layers[i].biases, full.layers[i].biases) << i;
  }

  expect_resume_matches(r, opt, full, a, b);

  // Refused in one line: the layers training their biases alone already; no conv left over.
  RunOptions bad = plain;
  bad.config.plus_biases = 4;
  bad.config.params = "bias";
  bad.config.estimation = "model";
  EXPECT_THROW(run_training(r.view, r.data, bad), CliError);
  bad.config.params = "all";
  bad.layers = resolve_layers(r.view, "all", parse_mode("wp"), {});
  EXPECT_THROW(run_training(r.view, r.data, bad), CliError);
}

}  // namespace
}  // namespace tinyzo
