// `tinyzo train`: ZO adaptation of a model to one CIFAR-10-C corruption with
// the protocol of METHOD §6 (docs/training.md). Settings come from the
// defaults, then `--config FILE.json`, then the flags; `--resume` continues a
// run from DIR/checkpoint.bin with the settings saved in DIR/config.json.
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
#include "data_dir.h"
#include "errors.h"
#include "file_util.h"
#include "model_store.h"
#include "progress.h"
#include "protocol.h"
#include "train_config.h"
#include "trainer_run.h"

namespace tinyzo::cli {

namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

struct TrainArgs {
  std::string config_path;
  bool resume = false;
  bool overwrite = false;
  bool no_progress = false;
  bool json = false;
  uint32_t stop_after = 0;
  uint32_t checkpoint_every = 0;
  TrainConfig flags;  // values of the flags given on the command line
  std::vector<std::function<void(TrainConfig&)>> apply;
};

// Binds a flag to a TrainConfig member; it overrides the file only when given.
template <class T>
CLI::Option* bind_flag(CLI::App* cmd, const std::shared_ptr<TrainArgs>& a, const std::string& name, T TrainConfig::*m,
                  const std::string& desc) {
  CLI::Option* o;
  if constexpr (std::is_same_v<T, bool>) {
    o = cmd->add_flag(name, a->flags.*m, desc);
  } else {
    o = cmd->add_option(name, a->flags.*m, desc);
  }
  TrainArgs* raw = a.get();
  a->apply.push_back([o, m, raw](TrainConfig& c) {
    if (o->count() > 0) c.*m = raw->flags.*m;
  });
  return o;
}

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
  // Settings: defaults < config file (or, resuming, the run's saved config) < flags.
  TrainConfig cfg;
  if (!a.config_path.empty()) cfg = load_config_file(a.config_path);
  for (auto& f : a.apply) f(cfg);
  if (a.resume && a.config_path.empty()) {
    const std::string saved = cfg.out + "/config.json";
    if (!is_regular_file(saved)) throw CliError("--resume: " + saved + " not found (is --out the run's directory?)");
    TrainConfig base = load_config_file(saved);
    for (auto& f : a.apply) f(base);
    cfg = base;
  }
  validate_config(cfg);
  if (a.resume && !is_regular_file(cfg.out + "/checkpoint.bin"))
    throw CliError("--resume: " + cfg.out + "/checkpoint.bin not found");
  if (a.resume && a.overwrite) throw CliError("--resume and --overwrite exclude each other");
  if (!a.resume && is_regular_file(cfg.out + "/checkpoint.bin")) {
    if (!a.overwrite)
      throw CliError("--out " + cfg.out + " already holds a run (checkpoint.bin): add --resume to continue it, "
                     "--overwrite to start it again, or choose another --out");
    // Asked for: the old run's checkpoint goes first, so a crash now leaves
    // no checkpoint that mixes two runs; its other files are rewritten.
    std::filesystem::remove(cfg.out + "/checkpoint.bin");
  }

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
  opt.resume = a.resume;
  opt.stop_after_steps = a.stop_after;
  opt.checkpoint_every = a.checkpoint_every;

  ProtocolSpec spec;
  spec.corruption = cfg.corruption;
  spec.severity = cfg.severity;
  spec.corruption_seed = cfg.corruption_seed;
  spec.split.train_per_class = cfg.train_per_class;
  spec.split.val_per_class = cfg.val_per_class;
  spec.split.test_per_class = cfg.test_per_class;
  spec.split.seed = cfg.split_seed;
  const std::string data_name =
      cfg.corruption == "none" ? std::string("clean CIFAR-10") : cfg.corruption + " severity " + std::to_string(cfg.severity);
  status.message("preparing " + data_name + " (" + std::to_string(10 * cfg.train_per_class) + " train / " +
                 std::to_string(10 * cfg.val_per_class) + " val / " + std::to_string(10 * cfg.test_per_class) +
                 " test)");
  const TrainData data = prepare_train_data(load_protocol_data(resolve_data_dir(), spec, 0), view);

  size_t n_params = 0;
  for (const LayerChoice& l : opt.layers) {
    const ConvDims d = conv_dims(view, l.op);
    n_params += d.d_w + d.c_out;
  }
  status.message("layers " + layers_to_string(view, opt.layers) + " (" + std::to_string(n_params) +
                 " trainable parameters)");

  RunHooks hooks;
  hooks.on_message = [&](const std::string& s) { status.message(s); };
  hooks.on_step = [&](const StepReport& r) { status.step(r); };
  hooks.on_epoch = [&](const EpochReport& e) { status.epoch(e); };
  hooks.should_stop = [] { return g_interrupted.load(); };
  g_interrupted.store(false);
  auto previous = std::signal(SIGINT, on_sigint);
  RunResult r;
  try {
    r = run_training(view, data, opt, hooks);
  } catch (...) {
    std::signal(SIGINT, previous);
    status.clear();
    throw;
  }
  std::signal(SIGINT, previous);
  status.clear();

  if (a.json) {
    nlohmann::ordered_json j{{"finished", r.finished},
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
    std::printf("stopped after step %u of %u; continue with: tinyzo train --out %s --resume\n", r.steps_done,
                r.total_steps, cfg.out.c_str());
    return;
  }
  std::printf("tinyzo train: %s on %s, layers %s (%zu trainable parameters)\n", cfg.model.c_str(), data_name.c_str(),
              layers_to_string(view, opt.layers).c_str(), n_params);
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
  CLI::App* cmd = app.add_subcommand("train", "ZO-adapt a model to a CIFAR-10-C corruption (METHOD §6)");
  cmd->add_option("--config", a->config_path, "JSON settings (keys as in docs/training.md); flags override it");
  cmd->add_flag("--resume", a->resume, "continue the run in --out from its checkpoint (bit-identical)");
  cmd->add_flag("--overwrite", a->overwrite, "start again in an --out that already holds a run (replaces it)");
  bind_flag(cmd, a, "--model,-m", &TrainConfig::model, "a .tzm file or a reference model name (default mcunet-cifar10)");
  bind_flag(cmd, a, "--kernels", &TrainConfig::kernels, "kernel set: best (default) or ref");
  bind_flag(cmd, a, "--corruption,-c", &TrainConfig::corruption,
       "a CIFAR-10-C corruption (gaussian_noise, ..., see tinyzo corrupt) or none (default gaussian_noise)");
  bind_flag(cmd, a, "--severity", &TrainConfig::severity, "corruption severity 1..5 (default 5)");
  bind_flag(cmd, a, "--corruption-seed", &TrainConfig::corruption_seed, "seed of the random corruptions (default 0)");
  bind_flag(cmd, a, "--train-per-class", &TrainConfig::train_per_class, "training images per class (default 100)");
  bind_flag(cmd, a, "--val-per-class", &TrainConfig::val_per_class, "validation images per class (default 10)");
  bind_flag(cmd, a, "--test-per-class", &TrainConfig::test_per_class, "test images per class (default 90)");
  bind_flag(cmd, a, "--split-seed", &TrainConfig::split_seed, "seed of the class-balanced split (default 0)");
  bind_flag(cmd, a, "--augment,!--no-augment", &TrainConfig::augment,
       "training augmentation: random-resized-crop, flip, colour jitter (default on)");
  bind_flag(cmd, a, "--layers,-l", &TrainConfig::layers,
       "paper | all | op names (optionally :wp / :np), comma-separated (default paper)");
  bind_flag(cmd, a, "--mode", &TrainConfig::mode, "wp | np | threshold:N | auto (default threshold:5)");
  bind_flag(cmd, a, "--budget-kb", &TrainConfig::budget_kb, "SRAM budget for --mode auto (default none)");
  bind_flag(cmd, a, "--queries-w", &TrainConfig::queries_w, "WP queries per weight tensor (default 25)");
  bind_flag(cmd, a, "--queries-b", &TrainConfig::queries_b, "WP queries per bias tensor (default 25)");
  bind_flag(cmd, a, "--queries-np", &TrainConfig::queries_np, "NP queries per layer (default 50)");
  bind_flag(cmd, a, "--sigma-w", &TrainConfig::sigma_w, "WP weight perturbation, int8 LSBs (default 1)");
  bind_flag(cmd, a, "--sigma-b", &TrainConfig::sigma_b, "WP bias perturbation, int32 LSBs (default 100)");
  bind_flag(cmd, a, "--mu", &TrainConfig::mu, "NP output perturbation, int8 LSBs (default 5)");
  bind_flag(cmd, a, "--two-sided,!--one-sided", &TrainConfig::two_sided, "antithetic differences (default one-sided)");
  bind_flag(cmd, a, "--gns", &TrainConfig::gns, "gradient-norm scaling: none | linear | sqrt (default linear)");
  bind_flag(cmd, a, "--rounding", &TrainConfig::rounding, "integer update rounding: nearest | stochastic");
  bind_flag(cmd, a, "--estimation", &TrainConfig::estimation, "layer (prefix reuse) | model (MeZO-like)");
  bind_flag(cmd, a, "--update-bias,!--no-update-bias", &TrainConfig::update_bias, "train the biases too (default on)");
  bind_flag(cmd, a, "--qas,!--no-qas", &TrainConfig::qas,
            "quantization-aware scaling of the integer update (default on; off = the paper's ablation)");
  bind_flag(cmd, a, "--batch,-b", &TrainConfig::batch, "batch size B (default 100)");
  bind_flag(cmd, a, "--epochs,-e", &TrainConfig::epochs, "epochs (default 50)");
  bind_flag(cmd, a, "--lr", &TrainConfig::lr, "initial learning rate (default 0.01 * B / 256)");
  bind_flag(cmd, a, "--max-steps", &TrainConfig::max_steps, "train this many steps in all (the cosine spans them)");
  bind_flag(cmd, a, "--seed", &TrainConfig::seed, "run seed: perturbations, rounding, batch order, augmentation");
  bind_flag(cmd, a, "--threads,-j", &TrainConfig::threads, "threads for the queries of a step and for evaluation (default 1; no effect on results)");
  bind_flag(cmd, a, "--engine-batch", &TrainConfig::engine_batch,
            "queries each thread runs as one batch through the network (default 16; no effect on results)");
  bind_flag(cmd, a, "--out,-o", &TrainConfig::out, "output directory (default runs/train)");
  cmd->add_option("--stop-after", a->stop_after, "stop with a checkpoint once N steps are done (resume later)");
  cmd->add_option("--checkpoint-every", a->checkpoint_every, "also checkpoint every N steps (default: each epoch)");
  cmd->add_flag("--no-progress", a->no_progress, "no status output on stderr");
  cmd->add_flag("--json", a->json, "print the summary as JSON");
  cmd->callback([a]() { run_train(*a); });
}

}  // namespace tinyzo::cli
