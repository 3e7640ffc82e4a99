// The cases a hostile-user probe found (issue 14, items 1-3), through the
// `tinyzo` binary on a tiny model and a synthetic data directory: two runs
// into one --out, --resume of a live run, --overwrite, files the run does not
// own, Ctrl-C and SIGTERM, --out "", settings refused alike by flags, config
// files and the saved config, counts of other commands, an unknown command,
// FIFOs and devices given as files, and a 5 GB model refused without being
// read. Each is fast (a run is a few milliseconds per step).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.h"
#include "util/file_util.h"
#include "test_models.h"

namespace tinyzo {
namespace {

using namespace cli_testing;

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::vector<nlohmann::json> log_records(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(slurp(path));
  for (std::string line; std::getline(in, line);) {
    EXPECT_TRUE(nlohmann::json::accept(line)) << "not a whole JSON line: " << line;
    if (nlohmann::json::accept(line)) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

// The step numbers of a log, which must run 0, 1, 2, ... without gaps or repeats.
void expect_steps_in_order(const std::string& log, int expected_count) {
  int next = 0;
  for (const nlohmann::json& j : log_records(log))
    if (j["type"] == "step") {
      EXPECT_EQ(j["step"].get<int>(), next) << log;
      next = j["step"].get<int>() + 1;
    }
  if (expected_count >= 0) {
    EXPECT_EQ(next, expected_count) << log;
  }
}

class CliTrainTest : public TrainableCliTest {
 protected:
  // The settings of a tiny run: 30 training images, 4 steps per epoch.
  static std::string tiny() {
    return "--model m.tzm --corruption none --train-per-class 3 --val-per-class 1 --test-per-class 2 "
           "--layers 1.1.conv.0,1.2.conv.0 --mode wp --queries-w 2 --queries-b 1 --batch 8 --no-progress";
  }
  // A run that would take hours, in the background.
  std::unique_ptr<Background> start_long(const std::string& out, const std::string& extra = "") {
    return std::make_unique<Background>(
        words("train " + tiny() + " --epochs 100000000 --out " + out + " " + extra), dir_.path(),
        std::vector<std::string>{"TINYZO_DATA=" + dir_.file("data")});
  }
  bool has_step(const std::string& out) {
    return slurp(dir_.file(out + "/log.jsonl")).find("\"type\":\"step\"") != std::string::npos;
  }
  nlohmann::json json_file(const std::string& rel) { return nlohmann::json::parse(slurp(dir_.file(rel))); }
};

TEST_F(CliTrainTest, SelectRanksWithOrWithoutAugmentationAndTestPickRunsEveryConv) {
  // The ranking batch is augmented as train's first step sees it, unless
  // --no-augment (a run trained without augmentation ranks on its own
  // inputs): the two rankings see different batches. Test-pick trains every
  // conv alone, the small ones included.
  const std::string common =
      "select --model m.tzm --corruption none --train-per-class 3 --val-per-class 1 --test-per-class 2 "
      "--batch 8 -q 2 -k 2 --json --no-progress -j 1 ";
  auto ranking = [&](const std::string& extra) {
    const RunResult r = run(common + extra);
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  };
  const nlohmann::json aug = ranking("--augment"), plain = ranking("--no-augment");
  ASSERT_TRUE(aug.is_object() && plain.is_object());
  EXPECT_TRUE(aug["augment"].get<bool>());
  EXPECT_FALSE(plain["augment"].get<bool>());
  ASSERT_EQ(aug["ranking"].size(), plain["ranking"].size());
  bool differ = false;
  for (size_t i = 0; i < aug["ranking"].size(); ++i)
    for (size_t j = 0; j < plain["ranking"].size(); ++j)
      if (aug["ranking"][i]["op"] == plain["ranking"][j]["op"])
        differ = differ || aug["ranking"][i]["grad_norm"] != plain["ranking"][j]["grad_norm"];
  EXPECT_TRUE(differ) << "the ranking batch did not change with --no-augment";
  const nlohmann::json tp = ranking("--no-augment --method test-pick");
  ASSERT_TRUE(tp.is_object());
  EXPECT_EQ(tp["ranking"].size(), plain["ranking"].size());  // every candidate took its step
}

TEST_F(CliTrainTest, ASecondWriterOrAResumeOfALiveRunIsRefused) {
  auto a = start_long("run");
  ASSERT_TRUE(wait_until([&] { return has_step("run") || !a->running(); })) << a->err();
  ASSERT_TRUE(a->running()) << a->err();
  const std::string pid = "(pid " + std::to_string(a->pid()) + ")";
  expect_one_error_line(run("train " + tiny() + " --epochs 100000000 --out run"), 75,
                        "in use by another tinyzo train " + pid);
  expect_one_error_line(run("train --out run --resume --no-progress"), 75, "in use by another tinyzo train");
  expect_one_error_line(run("train " + tiny() + " --epochs 2 --out run --overwrite"), 75, "in use");

  // Ctrl-C: the run stops after its step, saves everything and exits 130.
  a->signal(SIGINT);
  EXPECT_EQ(a->wait(), 130) << a->err();
  EXPECT_NE(a->err().find("tinyzo: interrupted by SIGINT after step"), std::string::npos) << a->err();
  EXPECT_EQ(a->err().find('\n'), a->err().size() - 1) << a->err();
  EXPECT_TRUE(is_regular_file(dir_.file("run/best.tzm")));
  EXPECT_TRUE(is_regular_file(dir_.file("run/checkpoint.bin")));
  const nlohmann::json summary = json_file("run/summary.json");
  EXPECT_EQ(summary["finished"], false);
  EXPECT_EQ(json_file("run/run.json")["state"], "stopped");
  const int done = summary["steps"];
  expect_steps_in_order(dir_.file("run/log.jsonl"), done);
  // The best model so far is a model.
  const RunResult info = run("info --model run/best.tzm");
  EXPECT_EQ(info.code, 0) << info.err;

  // Resumed (from the saved config): the steps continue, none repeated.
  const RunResult more =
      run("train --out run --resume --no-progress --stop-after " + std::to_string(done + 3));
  ASSERT_EQ(more.code, 0) << more.err;
  expect_steps_in_order(dir_.file("run/log.jsonl"), done + 3);
}

TEST_F(CliTrainTest, SigtermSavesTheRunAndExits143) {
  auto a = start_long("run", "--seed 3");
  ASSERT_TRUE(wait_until([&] { return has_step("run") || !a->running(); })) << a->err();
  a->signal(SIGTERM);
  EXPECT_EQ(a->wait(), 143) << a->err();
  EXPECT_NE(a->err().find("interrupted by SIGTERM"), std::string::npos) << a->err();
  EXPECT_TRUE(is_regular_file(dir_.file("run/best.tzm")));
  EXPECT_EQ(json_file("run/summary.json")["finished"], false);
  // --overwrite replaces the stopped run.
  const RunResult again = run("train " + tiny() + " --epochs 1 --out run --overwrite");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(json_file("run/summary.json")["finished"], true);
  expect_steps_in_order(dir_.file("run/log.jsonl"), 4);
}

TEST_F(CliTrainTest, OverwriteRemovesExactlyTheOldRunsFiles) {
  ASSERT_EQ(run("train " + tiny() + " --epochs 1 --out run").code, 0);
  write_bytes(dir_.file("run/notes.md"), {'m', 'i', 'n', 'e'});
  // The new run is killed (no chance to save anything) once it has declared itself.
  auto b = start_long("run", "--overwrite --seed 5");
  ASSERT_TRUE(wait_until([&] {
    try {
      return json_file("run/run.json")["pid"] == b->pid() || !b->running();
    } catch (...) {
      return false;  // between the removal of the old manifest and the new one
    }
  })) << b->err();
  b->signal(SIGKILL);
  b->wait();
  // Nothing of the old run is left beside the new one; the user's file is.
  EXPECT_FALSE(fs::exists(dir_.file("run/best.tzm")));
  EXPECT_FALSE(fs::exists(dir_.file("run/summary.json")));
  EXPECT_EQ(slurp(dir_.file("run/notes.md")), "mine");
  int starts = 0;
  for (const nlohmann::json& j : log_records(dir_.file("run/log.jsonl")))
    if (j["type"] == "start") {
      ++starts;
      EXPECT_EQ(j["config"]["seed"], 5);
    }
  EXPECT_LE(starts, 1);
}

TEST_F(CliTrainTest, AFinishedRunIsReplacedOnlyWithOverwrite) {
  ASSERT_EQ(run("train " + tiny() + " --epochs 1 --out run").code, 0);
  const std::string best = slurp(dir_.file("run/best.tzm"));
  fs::remove(dir_.file("run/checkpoint.bin"));  // the old guard looked only at this file
  expect_one_error_line(run("train " + tiny() + " --epochs 1 --seed 9 --out run"), 1,
                        "already holds a finished run");
  EXPECT_EQ(slurp(dir_.file("run/best.tzm")), best);
  expect_one_error_line(run("train --out run --resume --no-progress"), 1, "without a checkpoint.bin");
  const RunResult replaced = run("train " + tiny() + " --epochs 1 --seed 9 --out run --overwrite");
  ASSERT_EQ(replaced.code, 0) << replaced.err;
  EXPECT_NE(slurp(dir_.file("run/best.tzm")), "");
}

TEST_F(CliTrainTest, FilesTheRunDoesNotOwnAreNeverReplaced) {
  fs::create_directories(dir_.file("mine"));
  write_bytes(dir_.file("mine/config.json"), {'{', '}'});
  write_bytes(dir_.file("mine/log.jsonl"), {'n', '\n'});
  expect_one_error_line(run("train " + tiny() + " --epochs 1 --out mine"), 1,
                        "that no tinyzo run there owns");
  expect_one_error_line(run("train " + tiny() + " --epochs 1 --out mine --overwrite"), 1,
                        "no tinyzo run there owns");
  expect_one_error_line(run("train --out mine --resume"), 1, "holds no run");
  EXPECT_EQ(slurp(dir_.file("mine/config.json")), "{}");
  EXPECT_EQ(slurp(dir_.file("mine/log.jsonl")), "n\n");
  EXPECT_FALSE(fs::exists(dir_.file("mine/run.lock")));
}

TEST_F(CliTrainTest, EmptyOutIsRefused) {
  expect_one_error_line(run("train " + tiny() + " --epochs 1 --out ''"), 2, "--out: is empty");
  std::ofstream(dir_.file("empty_out.json")) << "{\"out\": \"\"}";
  expect_one_error_line(run("train " + tiny() + " --epochs 1 --config empty_out.json"), 1,
                        "empty_out.json: key 'out': is empty");
}

TEST_F(CliTrainTest, StaleTemporariesAreCleanedUp) {
  ASSERT_EQ(run("train " + tiny() + " --epochs 2 --stop-after 2 --out run").code, 0);
  write_bytes(dir_.file("run/checkpoint.bin.tmp.4242.0"), {1, 2, 3});
  const RunResult r = run("train --out run --resume --no-progress");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(dir_.file("run/checkpoint.bin.tmp.4242.0")));
  for (const auto& e : fs::directory_iterator(dir_.file("run")))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST_F(CliTrainTest, AShortOrMissingLogDoesNotSpoilTheCheckpoint) {
  ASSERT_EQ(run("train " + tiny() + " --epochs 2 --out full").code, 0);
  for (const char* damage : {"short", "missing"}) {
    const std::string out = std::string("run_") + damage;
    ASSERT_EQ(run("train " + tiny() + " --epochs 2 --stop-after 5 --out " + out).code, 0);
    const std::string log = dir_.file(out + "/log.jsonl");
    if (std::string(damage) == "short") fs::resize_file(log, fs::file_size(log) / 3);
    if (std::string(damage) == "missing") fs::remove(log);
    const RunResult r = run("train --out " + out + " --resume --no-progress");
    ASSERT_EQ(r.code, 0) << damage << ": " << r.err;
    // The same weights as the uninterrupted run.
    EXPECT_EQ(slurp(dir_.file(out + "/best.tzm")), slurp(dir_.file("full/best.tzm"))) << damage;
    bool marked = false;
    for (const nlohmann::json& j : log_records(log)) marked = marked || j["type"] == "log_repaired";
    EXPECT_TRUE(marked) << damage;
  }
}

// --one-layer-per-pass streams the batch once per layer with one NP
// accumulator, --fuse runs the trainer's engine with fused blocks: the same
// run, bit for bit.
TEST_F(CliTrainTest, OneLayerPerPassTrainsTheSameWeights) {
  // tiny() with two NP layers and a WP layer instead of its two WP layers.
  std::string args = tiny();
  const std::string wp = "--layers 1.1.conv.0,1.2.conv.0 --mode wp";
  ASSERT_NE(args.find(wp), std::string::npos);
  args.replace(args.find(wp), wp.size(), "--layers 1.1.conv.0:np,1.1.conv.2:wp,1.2.conv.0:np --max-steps 3 --queries-np 3 --lr 20");
  const RunResult a = run("train " + args + " --out a");
  ASSERT_EQ(a.code, 0) << a.err;
  const RunResult b = run("train " + args + " --one-layer-per-pass --out b");
  ASSERT_EQ(b.code, 0) << b.err;
  // The steps' losses and moved-parameter counts, and the best weights, are the same.
  auto steps = [&](const std::string& out) {
    std::vector<nlohmann::json> v;
    for (const nlohmann::json& j : log_records(dir_.file(out + "/log.jsonl")))
      if (j["type"] == "step") v.push_back({j["step"], j["loss"], j["lr"], j["samples"], j["weights_changed"]});
    return v;
  };
  // And with the trainer's engine fused (--fuse): still the same run.
  const RunResult c = run("train " + args + " --one-layer-per-pass --fuse --out c");
  ASSERT_EQ(c.code, 0) << c.err;
  const auto sa = steps("a"), sb = steps("b"), sc = steps("c");
  ASSERT_EQ(sa.size(), 3u);
  EXPECT_EQ(sa, sb);
  EXPECT_EQ(sa, sc);
  EXPECT_TRUE(slurp(dir_.file("a/best.tzm")) == slurp(dir_.file("c/best.tzm")));
  int changed = 0;
  for (const nlohmann::json& j : sa) changed += j[4].get<int>();
  EXPECT_GT(changed, 0);  // training moved weights, so the equality says something
  EXPECT_TRUE(slurp(dir_.file("a/best.tzm")) == slurp(dir_.file("b/best.tzm")));
  // The per-pass mode uses more prefix forwards (macs), nothing else differs.
  EXPECT_EQ(json_file("a/config.json").value("one_layer_per_pass", true), false);
  EXPECT_EQ(json_file("b/config.json").value("one_layer_per_pass", false), true);
}

TEST_F(CliTrainTest, SettingsAreCheckedAlikeByFlagsConfigFilesAndTheSavedConfig) {
  const std::string t = "train " + tiny() + " --epochs 1 --out run ";
  expect_one_error_line(run(t + "--lr inf"), 2, "--lr: inf is not a finite number");
  expect_one_error_line(run(t + "--lr 1e309"), 2, "--lr: 1e309 is not a finite number");
  expect_one_error_line(run(t + "--budget-kb inf"), 2, "--budget-kb: inf is not a finite number");
  expect_one_error_line(run(t + "--seed -1"), 2, "--seed: '-1' is not a non-negative integer");
  expect_one_error_line(run(t + "--seed 1e23"), 2, "--seed: '1e23' is not a non-negative integer");
  expect_one_error_line(run(t + "--queries-np 0"), 2, "--queries-np: 0 is outside 1..256");
  expect_one_error_line(run("train --model m.tzm --corruption none --out run --epochs 214748365 --batch 1 "
                            "--train-per-class 2"),
                        1, "--epochs: 214748365 epochs x 20 steps per epoch");
  EXPECT_FALSE(fs::exists(dir_.file("run")));  // refused before the directory was made

  std::ofstream(dir_.file("neg.json")) << "{\"seed\": -1}";
  expect_one_error_line(run(t + "--config neg.json"), 1,
                        "neg.json: key 'seed': expected a non-negative integer");
  std::ofstream(dir_.file("dup.json")) << "{\"lr\": 0.5, \"lr\": 0.25}";
  expect_one_error_line(run(t + "--config dup.json"), 1, "dup.json: key 'lr' appears twice");
  std::ofstream(dir_.file("inf.json")) << "{\"lr\": 1e309}";
  expect_one_error_line(run(t + "--config inf.json"), 1, "inf.json: invalid JSON");
  expect_one_error_line(run(t + "--config data"), 1,
                        "data: is a directory, expected a regular JSON config file");
  EXPECT_FALSE(fs::exists(dir_.file("run")));

  // A finished run's saved config is read by the same table: a bad value names the file and key.
  ASSERT_EQ(run(t + "--stop-after 1").code, 0);
  nlohmann::json saved = json_file("run/config.json");
  EXPECT_TRUE(saved["lr"].is_number());
  saved["lr"] = nullptr;  // what "inf" used to be saved as
  std::ofstream(dir_.file("run/config.json")) << saved.dump();
  expect_one_error_line(run("train --out run --resume"), 1, "run/config.json: key 'lr': expected a number");
  saved["lr"] = -1;
  std::ofstream(dir_.file("run/config.json")) << saved.dump();
  expect_one_error_line(run("train --out run --resume"), 1,
                        "run/config.json: key 'lr': -1 is outside 0..1e+06");
}

TEST_F(CliTrainTest, OtherCommandsCheckTheirCounts) {
  for (const char* count : {"-5", "0"})
    expect_one_error_line(
        run(std::string("corrupt --corruption fog --severity 1 --count ") + count + " --out c.bin"), 2,
        std::string("--count: ") + count + " is outside 1..");
  expect_one_error_line(run("split --train-per-class 0 --out sp"), 2,
                        "--train-per-class: 0 is outside 1..1000");
  EXPECT_FALSE(fs::exists(dir_.file("sp")));
  expect_one_error_line(run("plan --model m.tzm --width -5"), 2, "--width: -5 is outside 16..4096");
  expect_one_error_line(run("select --queries 0"), 2, "--queries: 0 is outside 1..256");
  expect_one_error_line(run("eval --model m.tzm --first -1"), 2, "--first: -1 is outside 0..");
  expect_one_error_line(run("frobnicate"), 2, "unknown command 'frobnicate'");
  expect_one_error_line(run("--data-dir data frobnicate --x"), 2, "unknown command 'frobnicate'");
  ASSERT_EQ(::mkfifo(dir_.file("pipe.tzm").c_str(), 0600), 0);
  expect_one_error_line(run("info --model pipe.tzm"), 1,
                        "pipe.tzm: is a FIFO (named pipe), expected a .tzm file");
  expect_one_error_line(run("info --model /dev/null"), 1,
                        "/dev/null: is a character device, expected a .tzm file");
  expect_one_error_line(run("eval --model m.tzm --images pipe.tzm"), 1, "is a FIFO");
}

TEST_F(CliTrainTest, AHugeModelIsRefusedWithoutBeingRead) {
  // 5 GB (sparse) behind a real model header; then 3 GB of zeros (within the
  // format's limit, refused by the magic). Under a 1 GB address-space limit:
  // reading either whole would fail with "out of memory" instead.
  std::vector<uint8_t> head = testing::trainable_model_bytes();
  head.resize(64);
  write_bytes(dir_.file("huge.tzm"), head);
  fs::resize_file(dir_.file("huge.tzm"), uint64_t(5) << 30);
  write_bytes(dir_.file("zeros.tzm"), {});
  fs::resize_file(dir_.file("zeros.tzm"), uint64_t(3) << 30);
#if defined(__SANITIZE_ADDRESS__)
  const std::string limit;  // AddressSanitizer reserves terabytes of address space
#else
  const std::string limit = "ulimit -v 1048576 && ";
#endif
  expect_one_error_line(run("info --model huge.tzm", limit), 1, "more than a .tzm model can hold");
  expect_one_error_line(run("info --model zeros.tzm", limit), 1, "zeros.tzm: corrupt model: bad magic");
  expect_one_error_line(run("train --model huge.tzm --corruption none --out run", limit), 1,
                        "more than a .tzm model");
  EXPECT_FALSE(fs::exists(dir_.file("run")));
}

}  // namespace
}  // namespace tinyzo
