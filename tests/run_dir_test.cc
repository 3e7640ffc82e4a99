// Run directories as a small database (host/run_dir.h, issue 14 item 1): one
// writer per directory, a manifest of the files a run owns, --overwrite that
// removes exactly those, refusal of files no run owns, stale temporaries
// removed, and a resumed run whose checkpoint alone decides (a short, missing
// or edited log.jsonl is cut back and the gap recorded). The end-to-end cases
// through the binary (signals, two processes) are in cli_train_test.cc.
#include "train/run_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "temp_dir.h"
#include "test_models.h"
#include "train/checkpoint.h"
#include "train/trainer_run.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {
namespace {

namespace fs = std::filesystem;

using Dir = test::TempDir;

void touch(const std::string& path, const std::string& text = "x") { std::ofstream(path) << text; }
std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

template <class F>
std::string error_of(F f, int* code = nullptr) {
  try {
    f();
  } catch (const CliError& e) {
    if (code != nullptr) *code = e.exit_code();
    return e.what();
  }
  return "";
}

using Mode = RunDirectory::Mode;

// A run directory that has begun: what a run leaves.
void make_run(const std::string& dir, RunDirectory::State state) {
  RunDirectory d(dir, Mode::kStart);
  d.begin("0123456789abcdef", 0, 8);
  for (const char* f : {"config.json", "log.jsonl", "best.tzm", "summary.json"}) touch(d.path(f));
  d.set_state(state, state == RunDirectory::State::kFinished ? 8 : 3);
}

TEST(RunDirectory, OneWriterAtATime) {
  Dir dir("lock");
  const std::string out = dir.file("run");
  RunDirectory first(out, Mode::kStart);
  first.begin("0123456789abcdef", 0, 8);
  // flock locks belong to open files: a second open in this process conflicts like another process.
  for (Mode m : {Mode::kStart, Mode::kResume, Mode::kOverwrite}) {
    int code = 0;
    const std::string why = error_of([&] { RunDirectory second(out, m); }, &code);
    EXPECT_NE(why.find("is in use by another tinyzo train (pid " + std::to_string(::getpid()) + ")"),
              std::string::npos)
        << why;
    EXPECT_EQ(code, kExitBusy);
  }
}

TEST(RunDirectory, ManifestListsTheRunsFiles) {
  Dir dir("manifest");
  const std::string out = dir.file("run");
  make_run(out, RunDirectory::State::kStopped);
  const nlohmann::json m = nlohmann::json::parse(slurp(out + "/run.json"));
  EXPECT_EQ(m["format"], "tinyzo-run");
  EXPECT_EQ(m["state"], "stopped");
  EXPECT_EQ(m["step"], 3);
  EXPECT_EQ(m["total_steps"], 8);
  for (const std::string& f : RunDirectory::run_files())
    EXPECT_NE(std::find(m["files"].begin(), m["files"].end(), f), m["files"].end()) << f;
}

TEST(RunDirectory, ANewRunNeverLandsOnAnotherRun) {
  Dir dir("start");
  const std::string out = dir.file("run");
  make_run(out, RunDirectory::State::kFinished);
  // Finished, and its checkpoint deleted: still a run (the manifest says so), not overwritten.
  const std::string why = error_of([&] { RunDirectory d(out, Mode::kStart); });
  EXPECT_NE(why.find("already holds a finished run"), std::string::npos) << why;
  EXPECT_NE(why.find("--overwrite"), std::string::npos) << why;
}

// A run killed before its first checkpoint (during the start evaluation)
// holds nothing to resume or keep: a plain start replaces it, so a queue that
// restarts a job without a checkpoint as a new run keeps working.
TEST(RunDirectory, ARunThatDiedBeforeItsFirstCheckpointIsReplaced) {
  Dir dir("dead");
  const std::string out = dir.file("run");
  {
    RunDirectory d(out, Mode::kStart);
    d.begin("0123456789abcdef", 0, 8);
    touch(d.path("config.json"));
    touch(d.path("log.jsonl"), "{\"type\":\"start\"}\n");
  }  // killed here: the manifest says running, the lock is free
  RunDirectory d(out, Mode::kStart);
  EXPECT_TRUE(d.replaces_dead_run());
  d.remove_old_run();
  EXPECT_FALSE(fs::exists(out + "/config.json"));
  EXPECT_FALSE(fs::exists(out + "/log.jsonl"));
  EXPECT_FALSE(fs::exists(out + "/run.json"));
}

TEST(RunDirectory, FilesNoRunOwnsAreRefusedAndLeftAlone) {
  Dir dir("foreign");
  touch(dir.file("config.json"), "{\"mine\": true}");
  touch(dir.file("log.jsonl"), "my notes\n");
  for (Mode m : {Mode::kStart, Mode::kOverwrite}) {
    const std::string why = error_of([&] { RunDirectory d(dir.path(), m); });
    EXPECT_NE(why.find("holds log.jsonl, config.json that no tinyzo run there owns"), std::string::npos)
        << why;
  }
  EXPECT_NE(error_of([&] { RunDirectory d(dir.path(), Mode::kResume); }).find("holds no run"),
            std::string::npos);
  EXPECT_EQ(slurp(dir.file("config.json")), "{\"mine\": true}");
  EXPECT_EQ(slurp(dir.file("log.jsonl")), "my notes\n");
  // A refused open leaves nothing behind (no lock file).
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"config.json", "log.jsonl"}));
  // Files with other names do not stop a run and are never touched.
  Dir other("other");
  touch(other.file("stdout.txt"), "tee'd output");
  {
    RunDirectory d(other.path(), Mode::kStart);
    d.begin("0123456789abcdef", 0, 8);
  }
  EXPECT_EQ(slurp(other.file("stdout.txt")), "tee'd output");
}

TEST(RunDirectory, AnOpenThatNeverBeganLeavesNoTrace) {
  Dir dir("trace");
  const std::string out = dir.file("new/run");
  { RunDirectory d(out, Mode::kStart); }  // e.g. the model failed to load
  EXPECT_FALSE(fs::exists(out));
  EXPECT_NE(error_of([&] { RunDirectory d(dir.file("none"), Mode::kResume); }).find("does not exist"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir.file("none")));
  touch(dir.file("file"));
  EXPECT_NE(error_of([&] { RunDirectory d(dir.file("file"), Mode::kStart); }).find("is not a directory"),
            std::string::npos);
  EXPECT_NE(error_of([&] { RunDirectory d("", Mode::kStart); }).find("--out: is empty"), std::string::npos);
}

TEST(RunDirectory, OverwriteRemovesExactlyTheOldRunsFiles) {
  Dir dir("overwrite");
  const std::string out = dir.file("run");
  make_run(out, RunDirectory::State::kFinished);
  touch(out + "/checkpoint.bin");
  touch(out + "/notes.md", "the user's");
  RunDirectory d(out, Mode::kOverwrite);
  EXPECT_EQ(d.previous_state(), RunDirectory::State::kFinished);
  d.remove_old_run();
  EXPECT_EQ(dir.entries().size(), 1u);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(out)) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"notes.md", "run.lock"}));
  EXPECT_EQ(slurp(out + "/notes.md"), "the user's");
}

TEST(RunDirectory, StaleTemporariesAreRemoved) {
  Dir dir("tmp");
  const std::string out = dir.file("run");
  make_run(out, RunDirectory::State::kStopped);
  touch(out + "/checkpoint.bin");
  touch(out + "/checkpoint.bin.tmp.12345.0");
  touch(out + "/best.tzm.tmp.999.3");
  touch(out + "/mine.tmp.1.2");  // not a run file's temporary: not ours to remove
  { RunDirectory d(out, Mode::kResume); }
  EXPECT_FALSE(fs::exists(out + "/checkpoint.bin.tmp.12345.0"));
  EXPECT_FALSE(fs::exists(out + "/best.tzm.tmp.999.3"));
  EXPECT_TRUE(fs::exists(out + "/mine.tmp.1.2"));
}

TEST(RunDirectory, ResumeNeedsACheckpoint) {
  Dir dir("resume");
  const std::string out = dir.file("run");
  make_run(out, RunDirectory::State::kStopped);
  const std::string why = error_of([&] { RunDirectory d(out, Mode::kResume); });
  EXPECT_NE(why.find("without a checkpoint.bin"), std::string::npos) << why;
  EXPECT_NE(why.find("--overwrite"), std::string::npos) << why;
}

TEST(RunDirectory, ADamagedManifestIsNotGuessedAt) {
  Dir dir("damaged");
  touch(dir.file("run.json"), "{\"format\": \"tinyzo-run\", \"version\": 1, \"files\": [\"../../etc\"]}");
  for (Mode m : {Mode::kStart, Mode::kResume, Mode::kOverwrite})
    EXPECT_NE(error_of([&] { RunDirectory d(dir.path(), m); }).find("run.json"), std::string::npos);
  touch(dir.file("run.json"), "{\"format\": \"tinyzo-run\", \"files\": [], \"files\": []}");
  EXPECT_NE(error_of([&] { RunDirectory d(dir.path(), Mode::kOverwrite); }).find("appears twice"),
            std::string::npos);
}

// ---------------------------------------------------------------- with training

struct SmallRun {
  AlignedModelBytes bytes;
  ModelView view;
  TrainData data;
  TrainConfig cfg;
  std::vector<LayerChoice> layers;
  SmallRun() : bytes(testing::trainable_model_bytes()) {
    EXPECT_EQ(view.init(bytes.data(), bytes.size()), Status::kOk) << view.error();
    ProtocolSpec spec;
    spec.corruption = "none";
    spec.split = SplitSpec{3, 1, 2, 0};
    data = prepare_train_data(make_protocol_data(testing::coloured_cifar_images(8, 1), spec, "", 1), view);
    cfg.queries_w = 3;
    cfg.queries_b = 2;
    cfg.queries_np = 3;
    cfg.batch = 8;   // 30 train images: 4 steps per epoch
    cfg.epochs = 2;  // 8 steps
    cfg.lr = 2.0;
    cfg.rounding = "stochastic";
    cfg.seed = 11;
    layers = resolve_layers(view, "1.1.conv.0,1.2.conv.0", parse_mode("threshold:1"), {});
  }
  RunResult run(const std::string& out, bool resume, uint32_t stop_after = 0, bool overwrite = false,
                const RunHooks& hooks = {}) {
    RunOptions opt;
    opt.config = cfg;
    opt.layers = layers;
    opt.out_dir = out;
    opt.resume = resume;
    opt.overwrite = overwrite;
    opt.stop_after_steps = stop_after;
    return run_training(view, data, opt, hooks);
  }
};

std::vector<nlohmann::json> log_records(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(RunTraining, AStopSavesCheckpointBestModelAndSummary) {
  SmallRun r;
  Dir dir("stop");
  int steps = 0;
  RunHooks hooks;
  hooks.on_step = [&](const StepReport&) { ++steps; };
  hooks.should_stop = [&] { return steps >= 5; };  // like Ctrl-C during step 4
  const RunResult res = r.run(dir.file("run"), false, 0, false, hooks);
  EXPECT_FALSE(res.finished);
  EXPECT_TRUE(res.stopped_by_hook);
  EXPECT_EQ(res.steps_done, 5u);
  EXPECT_EQ(peek_checkpoint(dir.file("run/checkpoint.bin")).step, 5u);
  EXPECT_TRUE(is_regular_file(dir.file("run/best.tzm")));
  const nlohmann::json s = nlohmann::json::parse(slurp(dir.file("run/summary.json")));
  EXPECT_EQ(s["finished"], false);
  EXPECT_EQ(s["steps"], 5);
  EXPECT_EQ(s["best_epoch"], 1);
  EXPECT_EQ(nlohmann::json::parse(slurp(dir.file("run/run.json")))["state"], "stopped");
  // best.tzm is a valid model holding the best weights so far.
  EXPECT_EQ(LoadedModel::load(dir.file("run/best.tzm")).size_bytes(), r.bytes.size());
  // The resumed run ends as an uninterrupted one would.
  Dir ref("stop_ref");
  const RunResult full = r.run(ref.file("run"), false);
  const RunResult rest = r.run(dir.file("run"), true);
  ASSERT_TRUE(rest.finished);
  EXPECT_EQ(rest.layers[0].weights, full.layers[0].weights);
  EXPECT_EQ(rest.test_after, full.test_after);
  EXPECT_EQ(read_file_bytes(dir.file("run/best.tzm"), kMaxModelBytes),
            read_file_bytes(ref.file("run/best.tzm"), kMaxModelBytes));
  EXPECT_EQ(nlohmann::json::parse(slurp(dir.file("run/summary.json")))["finished"], true);
  EXPECT_EQ(nlohmann::json::parse(slurp(dir.file("run/run.json")))["state"], "finished");
}

// The checkpoint alone decides: a log that is short, missing or edited does
// not make it unusable; the result is still bit-identical.
TEST(RunTraining, ResumeRepairsTheLog) {
  SmallRun r;
  Dir ref("log_ref");
  const RunResult full = r.run(ref.file("run"), false);
  for (const std::string damage : {"short", "missing", "edited", "longer"}) {
    Dir dir("log_" + damage);
    const std::string out = dir.file("run"), log = out + "/log.jsonl";
    r.run(out, false, 6);
    const std::string text = slurp(log);
    if (damage == "short") fs::resize_file(log, text.size() / 2);
    if (damage == "missing") fs::remove(log);
    if (damage == "edited") {
      // The line end where the checkpoint's log ended (before the "stopped" record) is gone.
      std::string t = text;
      t[t.rfind('\n', t.size() - 2)] = ' ';
      std::ofstream(log, std::ios::binary) << t;
    }
    if (damage == "longer") std::ofstream(log, std::ios::app) << "{\"type\":\"step\",\"step\":99}\n";
    const RunResult rest = r.run(out, true);
    ASSERT_TRUE(rest.finished) << damage;
    EXPECT_EQ(rest.log_repaired, damage != "longer") << damage;
    EXPECT_EQ(rest.layers[0].weights, full.layers[0].weights) << damage;
    EXPECT_EQ(rest.layers[1].best_weights, full.layers[1].best_weights) << damage;
    EXPECT_EQ(rest.test_after, full.test_after) << damage;
    // Every line is whole JSON; steps never repeat; the gap is recorded.
    const std::vector<nlohmann::json> recs = log_records(log);
    std::vector<int> steps;
    bool repaired = false, start = false;
    for (const nlohmann::json& j : recs) {
      if (j["type"] == "step") steps.push_back(j["step"]);
      repaired = repaired || j["type"] == "log_repaired";
      start = start || j["type"] == "start";
    }
    EXPECT_TRUE(start) << damage;
    EXPECT_EQ(repaired, damage != "longer") << damage;
    EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end())) << damage;
    EXPECT_EQ(std::adjacent_find(steps.begin(), steps.end()), steps.end()) << damage;
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps.back(), 7) << damage;
  }
}

TEST(RunTraining, OverwriteReplacesAFinishedRunOnlyWhenAsked) {
  SmallRun r;
  Dir dir("rerun");
  const std::string out = dir.file("run");
  r.run(out, false);
  EXPECT_NE(error_of([&] { r.run(out, false); }).find("already holds a finished run"), std::string::npos);
  touch(out + "/notes.md", "mine");
  r.cfg.seed = 12;  // another run
  int steps = 0;
  RunHooks hooks;
  hooks.on_step = [&](const StepReport&) { ++steps; };
  hooks.should_stop = [&] { return steps >= 1; };
  const RunResult second = r.run(out, false, 0, true, hooks);
  EXPECT_EQ(second.steps_done, 1u);
  // Only the new run's records are in the log; the user's file survived.
  const std::vector<nlohmann::json> recs = log_records(out + "/log.jsonl");
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs[0]["config"]["seed"], 12);
  int starts = 0;
  for (const auto& j : recs) starts += j["type"] == "start" ? 1 : 0;
  EXPECT_EQ(starts, 1);
  EXPECT_EQ(slurp(out + "/notes.md"), "mine");
  EXPECT_EQ(nlohmann::json::parse(slurp(out + "/summary.json"))["steps"], 1);
}

TEST(RunTraining, ARunBeforeManifestsIsStillResumable) {
  SmallRun r;
  Dir dir("legacy");
  const std::string out = dir.file("run");
  r.run(out, false, 3);
  // What an older tinyzo left: no manifest, no lock.
  fs::remove(out + "/run.json");
  fs::remove(out + "/run.lock");
  fs::remove(out + "/best.tzm");
  fs::remove(out + "/summary.json");
  EXPECT_NE(error_of([&] { r.run(out, false); }).find("already holds"), std::string::npos);
  const RunResult rest = r.run(out, true);
  EXPECT_TRUE(rest.finished);
  EXPECT_EQ(nlohmann::json::parse(slurp(out + "/run.json"))["state"], "finished");
}

}  // namespace
}  // namespace tinyzo
