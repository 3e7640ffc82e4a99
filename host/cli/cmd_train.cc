// `tinyzo train`: ZO adaptation of a model to one CIFAR-10-C corruption with
// the protocol of METHOD §6 (docs/training.md). Settings come from the
// defaults, then `--config FILE.json`, then the flags, all checked by the one
// settings table (host/train_config.h); `--resume` continues a run from
// DIR/checkpoint.bin with the settings saved in DIR/config.json. The run
// directory is locked and owned as docs/run-directories.md describes; SIGINT
// and SIGTERM stop the run after the current step with a checkpoint, best.tzm
// and summary.json, and exit 130 / 143.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "data/data_dir.h"
#include "data/data_source.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "models/model_store.h"
#include "options.h"
#include "train/progress.h"
#include "data/protocol.h"
#include "train/run_dir.h"
#include "train/train_config.h"
#include "train/trainer_run.h"

namespace tinyzo::cli {

namespace {

using Json = nlohmann::ordered_json;

std::atomic<int> g_signal{0};
extern "C" void on_stop_signal(int sig) { g_signal.store(sig); }

// SIGINT and SIGTERM set g_signal for the loop to stop at the next step. The
// handlers reset themselves (SA_RESETHAND): a second signal ends the process
// at once, which the atomic writes make safe too (the last checkpoint stays).
class StopSignals {
 public:
  StopSignals() {
    g_signal.store(0);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_RESTART;  // interrupted system calls resume
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

const char* signal_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

struct TrainArgs {
  std::string config_path;
  bool resume = false;
  bool overwrite = false;
  bool no_progress = false;
  bool json = false;
  int64_t stop_after = 0;
  int64_t checkpoint_every = 0;
  std::unique_ptr<SettingFlags> flags;
};

std::string human_time(double s) {
  char buf[32];
  const long t = long(s + 0.5);
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  } else if (t >= 60) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  }
  return buf;
}

std::string kb(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f KB", double(bytes) / 1024.0);
  return buf;
}

std::string gmacs(uint64_t m) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GMAC", double(m) / 1e9);
  return buf;
}

// The status line: redrawn in place on a terminal, one line per epoch (and
// per slow step) otherwise.
class StatusLine {
 public:
  explicit StatusLine(bool enabled) : enabled_(enabled), tty_(enabled && is_terminal(stderr)) {}
  void message(const std::string& s) {
    if (!enabled_) return;
    clear();
    std::fprintf(stderr, "train: %s\n", s.c_str());
  }
  void step(const StepReport& r) {
    if (!enabled_) return;
    last_ = r;
    have_step_ = true;
    char buf[256];
    std::snprintf(buf, sizeof buf, "step %u/%u  epoch %u/%u  loss %.4f  lr %.2e  val %s  %.2fs/step  ETA %s",
                  r.step + 1, r.total_steps, r.epoch + 1, r.epochs, double(r.loss), double(r.lr), val_.c_str(),
                  r.seconds, human_time(r.eta_seconds).c_str());
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", buf);
      drawn_ = true;
    } else if (r.seconds >= 2.0) {
      std::fprintf(stderr, "train: %s\n", buf);
    }
    std::fflush(stderr);
  }
  void epoch(const EpochReport& e) {
    if (!enabled_) return;
    char v[64];
    std::snprintf(v, sizeof v, "%.1f%% (best %.1f%% @%d)", 100 * e.val_acc, 100 * e.best_val, e.best_epoch);
    val_ = v;
    if (!tty_) {
      std::fprintf(stderr, "train: epoch %u/%u  step %u  loss %.4f  val %s\n", e.epoch, e.epochs, e.step,
                   have_step_ ? double(last_.loss) : 0.0, v);
      std::fflush(stderr);
    }
  }
  void clear() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  bool enabled_, tty_;
  bool drawn_ = false, have_step_ = false;
  StepReport last_;
  std::string val_ = "-";
};

void run_train(TrainArgs& a) {
  StopSignals signals;
  // Settings: defaults < config file (or, resuming, the run's saved config) < flags.
  SettingSources sources;
  TrainConfig cfg;
  if (!a.config_path.empty()) cfg = load_config_file(a.config_path, &sources);
  a.flags->apply(&cfg, &sources);
  // A new run's settings are refused before its directory is touched.
  if (!a.resume || !a.config_path.empty()) validate_config(cfg, &sources);
  // The directory is locked before anything in it is read: a live run's
  // files are never looked at, let alone written.
  const RunDirectory::Mode dir_mode = a.resume      ? RunDirectory::Mode::kResume
                                      : a.overwrite ? RunDirectory::Mode::kOverwrite
                                                    : RunDirectory::Mode::kStart;
  RunDirectory dir(cfg.out, dir_mode);
  if (a.resume && a.config_path.empty()) {
    const std::string saved = dir.path("config.json");
    if (!is_regular_file(saved) && non_regular_file_kind(saved).empty())
      throw CliError("--resume: " + saved + " not found (the run's settings; give them with --config)");
    SettingSources saved_sources;
    TrainConfig base = load_config_file(saved, &saved_sources);
    a.flags->apply(&base, &saved_sources);
    cfg = base;
    sources = saved_sources;
  }
  cfg.out = dir.dir();
  apply_data_defaults(&cfg, sources);
  // The saved config names the data absolutely, so --resume works from any directory.
  if (cfg.data != TrainConfig{}.data) cfg.data = std::filesystem::absolute(cfg.data).lexically_normal().string();
  validate_config(cfg, &sources);

  StatusLine status(!a.no_progress);
  const LoadedModel model = load_model_arg(cfg.model);
  const ModelView& view = model.view();
  const ModeRule mode = parse_mode(cfg.mode);
  AutoModeContext actx;
  actx.budget_kb = cfg.budget_kb;
  actx.n_queries = std::max(cfg.queries_w + cfg.queries_b, cfg.queries_np);
  actx.batch = cfg.batch;
  RunOptions opt;
  opt.layers = resolve_layers(view, cfg.layers, mode, actx);
  opt.config = cfg;
  opt.out_dir = cfg.out;
  opt.directory = &dir;
  opt.resume = a.resume;
  opt.overwrite = a.overwrite;
  opt.stop_after_steps = uint32_t(a.stop_after);
  opt.checkpoint_every = uint32_t(a.checkpoint_every);

  const ProtocolSpec spec = protocol_spec(cfg);
  const bool own_data = cfg.data != TrainConfig{}.data;
  std::string data_name =
      cfg.corruption == "none" ? std::string("clean CIFAR-10") : cfg.corruption + " severity " + std::to_string(cfg.severity);
  if (own_data) {
    data_name = cfg.data + (cfg.corruption == "none" ? std::string()
                                                     : " (" + cfg.corruption + " severity " + std::to_string(cfg.severity) + ")");
    status.message("preparing " + data_name + " (" + std::to_string(cfg.train_per_class) + " train / " +
                   std::to_string(cfg.val_per_class) + " val / " + std::to_string(cfg.test_per_class) +
                   " test per class)");
  } else {
    status.message("preparing " + data_name + " (" + std::to_string(10 * cfg.train_per_class) + " train / " +
                   std::to_string(10 * cfg.val_per_class) + " val / " + std::to_string(10 * cfg.test_per_class) +
                   " test)");
  }
  ProtocolData pdata = load_protocol_data(protocol_needs_data_dir(spec) ? resolve_data_dir() : std::string(), spec, 0);
  if (!pdata.skipped_summary.empty()) status.message(pdata.skipped_summary);
  check_class_count(pdata.description, pdata.class_names, tensor_elements(view.tensor(view.output_tensor())),
                    cfg.model);  // as the user named it (a .tflite, not the import cache's .tzm)
  const TrainData data = prepare_train_data(std::move(pdata), view);

  size_t n_params = 0;
  for (const TrainerGroup& g : trainer_groups(view, opt.layers, cfg))
    for (const LayerChoice& l : g.layers) {
      const ConvDims d = conv_dims(view, l.op);
      n_params += (g.config.bias_only ? 0 : d.d_w) + d.c_out;
    }
  const std::string plus =
      cfg.plus_biases > 0 ? " and the biases of every other conv (" + std::to_string(cfg.plus_biases) + " queries)" : "";
  status.message("layers " + layers_to_string(view, opt.layers) + plus + " (" + std::to_string(n_params) +
                 " trainable parameters)");

  RunHooks hooks;
  hooks.on_message = [&](const std::string& s) { status.message(s); };
  hooks.on_step = [&](const StepReport& r) { status.step(r); };
  hooks.on_epoch = [&](const EpochReport& e) { status.epoch(e); };
  hooks.should_stop = [] { return g_signal.load() != 0; };
  RunResult r;
  try {
    r = run_training(view, data, opt, hooks);
  } catch (const CliError& e) {
    status.clear();
    const int sig = g_signal.load();
    if (sig != 0) throw CliError(e.what(), 128 + sig);
    throw;
  } catch (...) {
    status.clear();
    throw;
  }
  status.clear();
  const int sig = r.stopped_by_hook ? g_signal.load() : 0;
  if (sig != 0) set_exit_code(128 + sig);  // 130 for SIGINT, 143 for SIGTERM

  if (a.json) {
    Json j{{"finished", r.finished},
           {"interrupted", sig != 0 ? Json(signal_name(sig)) : Json(nullptr)},
           {"out", cfg.out},
           {"steps", r.steps_done},
           {"total_steps", r.total_steps},
           {"layers", layers_to_string(view, opt.layers)},
           {"trainable_params", n_params},
           {"val_before", r.val_before},
           {"test_before", r.test_before},
           {"best_val", r.best_val},
           {"best_epoch", r.best_epoch},
           {"test_after", r.test_after},
           {"train_seconds", r.train_seconds},
           {"wall_seconds", r.wall_seconds},
           {"mean_step_seconds", r.mean_step_seconds},
           {"engine_arena_bytes", r.engine_arena_bytes},
           {"trainer_arena_bytes", r.trainer_arena_bytes},
           {"predicted_inference_bytes", r.predicted.inference_bytes},
           {"predicted_zo_extra_bytes", r.predicted.zo_extra_bytes},
           {"macs_per_step", r.macs_per_step},
           {"full_rerun_macs_per_step", r.full_rerun_macs_per_step},
           {"best_model", r.best_model_path}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  if (!r.finished) {
    char best[96] = "the start model: no epoch finished yet";
    if (r.best_epoch > 0)
      std::snprintf(best, sizeof best, "best val %.1f%% at epoch %d", 100 * r.best_val, r.best_epoch);
    // Interrupted is a non-zero exit: its one line goes where errors go.
    std::FILE* to = sig != 0 ? stderr : stdout;
    std::fprintf(to,
                 "%s after step %u of %u: checkpoint, best.tzm (%s) and summary.json saved in %s; continue "
                 "with: tinyzo train --out %s --resume\n",
                 sig != 0 ? (std::string("tinyzo: interrupted by ") + signal_name(sig)).c_str() : "stopped",
                 r.steps_done, r.total_steps, best, cfg.out.c_str(), cfg.out.c_str());
    return;
  }
  std::printf("tinyzo train: %s on %s, layers %s%s (%zu trainable parameters%s)\n", cfg.model.c_str(),
              data_name.c_str(), layers_to_string(view, opt.layers).c_str(), plus.c_str(), n_params,
              cfg.params == "bias" ? ", biases only" : "");
  std::printf("accuracy on %zu test images: %.2f%% -> %.2f%% (best val %.1f%% at epoch %d; val before %.1f%%)\n",
              data.n_test(), 100 * r.test_before, 100 * r.test_after, 100 * r.best_val, r.best_epoch,
              100 * r.val_before);
  std::printf("training SRAM: %s = engine arena %s + trainer arena %s (memory model: %s + %s = %s)\n",
              kb(r.engine_arena_bytes + r.trainer_arena_bytes).c_str(), kb(r.engine_arena_bytes).c_str(),
              kb(r.trainer_arena_bytes).c_str(), kb(r.predicted.inference_bytes).c_str(),
              kb(r.predicted.zo_extra_bytes).c_str(), kb(r.predicted.total_bytes()).c_str());
  std::printf("time: %s training (%u steps, %.2f s/step in this run), %s wall\n", human_time(r.train_seconds).c_str(),
              r.steps_done, r.mean_step_seconds, human_time(r.wall_seconds).c_str());
  const uint64_t saved = r.full_rerun_macs_per_step > r.macs_per_step ? r.full_rerun_macs_per_step - r.macs_per_step : 0;
  std::printf("MACs per step: %s (whole network per query: %s; prefix reuse saves %s, %.0f%%)\n",
              gmacs(r.macs_per_step).c_str(), gmacs(r.full_rerun_macs_per_step).c_str(), gmacs(saved).c_str(),
              r.full_rerun_macs_per_step ? 100.0 * double(saved) / double(r.full_rerun_macs_per_step) : 0.0);
  std::printf("best model: %s (check: tinyzo eval --model %s); log: %s/log.jsonl\n", r.best_model_path.c_str(),
              r.best_model_path.c_str(), cfg.out.c_str());
}

}  // namespace

void register_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand(
      "train", "ZO-adapt a model to a CIFAR-10-C corruption (METHOD §6), or to your own data (--data DIR)");
  cmd->add_option("--config", a->config_path, "JSON settings (keys as in docs/training.md); flags override it");
  CLI::Option* resume =
      cmd->add_flag("--resume", a->resume, "continue the run in --out from its checkpoint (bit-identical)");
  cmd->add_flag(
         "--overwrite", a->overwrite,
         "start again in an --out that holds a finished, stopped or dead run (removes that run's files only)")
      ->excludes(resume);
  a->flags = std::make_unique<SettingFlags>(cmd);
  a->flags->add_all();
  add_int_option(cmd, "--stop-after", &a->stop_after, 1, INT32_MAX,
                 "stop with a checkpoint once N steps are done (resume later)");
  add_int_option(cmd, "--checkpoint-every", &a->checkpoint_every, 1, INT32_MAX,
                 "also checkpoint every N steps (default: each epoch)");
  cmd->add_flag("--no-progress", a->no_progress, "no status output on stderr");
  cmd->add_flag("--json", a->json, "print the summary as JSON");
  cmd->callback([a]() { run_train(*a); });
}

}  // namespace tinyzo::cli
