// The host training loop of `tinyzo train` (METHOD §6): epochs x batches of
// the ZO trainer (src/train) on the protocol's data, validation after every
// epoch, the best-validation weights kept and re-tested at the end, JSON-lines
// log, atomic checkpoints and bit-identical resume, export of the best model.
// Also the pieces `tinyzo select` shares: the data preparation, a
// multi-engine evaluator and the trainer set-up.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "train/checkpoint.h"
#include "data/cifar10.h"
#include "models/model_store.h"
#include "data/protocol.h"
#include "train/run_dir.h"
#include "tinyzo/train/zo_trainer.h"
#include "train/train_config.h"

namespace tinyzo {

// ------------------------------------------------------------------ data

// The protocol's images ready for the model: train kept as raw CIFAR-10
// (augmented on the fly), val and test through the eval preprocessing.
struct TrainData {
  ImageSet train;  // decoded, before any preprocessing (augmented per epoch)
  std::vector<int8_t> val_inputs, test_inputs;  // n x input_size, NHWC int8
  std::vector<uint8_t> val_labels, test_labels;
  size_t input_size = 0;
  int input_side = 0;  // the model input's height (= width for square inputs)
  int input_width = 0, input_channels = 0;
  size_t n_val() const { return val_labels.size(); }
  size_t n_test() const { return test_labels.size(); }
};
// Inputs are made by ImagePreprocessor (host/data/preprocess.h): for CIFAR-10
// data and the paper's model exactly the eval preprocessing of METHOD §6.
// Throws CliError when the model input is not an int8 image tensor with a
// supported quantization.
TrainData prepare_train_data(ProtocolData data, const ModelView& model);

// The protocol settings of a config (corruption, split, data, bad images).
ProtocolSpec protocol_spec(const TrainConfig& c);

// The model input of training image `image` in `epoch`: the augmentation when
// `augment.enabled`, the eval preprocessing otherwise. `out` has input_size.
void train_input(const TrainData& data, const ModelView& model, const AugmentSpec& augment, uint64_t seed,
                 uint32_t epoch, uint32_t image, int8_t* out);

// ------------------------------------------------------------------ evaluation

// A trainable layer's parameters as an engine should read them.
struct ParamOverride {
  int op = -1;
  const int8_t* weights = nullptr;
  const int32_t* biases = nullptr;
};

// `threads` engines (one arena each) over contiguous slices: the accuracy
// does not depend on the thread count.
class Evaluator {
 public:
  // `threads` engines of `batch` images each (neither changes the result).
  Evaluator(const ModelView& model, const KernelTable& kernels, int threads, int batch = 1);
  // Top-1 accuracy in [0, 1] of n inputs (input_size each); `overrides` point
  // the engines at trained parameters for the call.
  double accuracy(const int8_t* inputs, size_t input_size, const uint8_t* labels, size_t n,
                  const std::vector<ParamOverride>& overrides);
  int threads() const { return static_cast<int>(engines_.size()); }

 private:
  std::vector<std::unique_ptr<EngineInstance>> engines_;
  int batch_ = 1;
};

// ------------------------------------------------------------------ trainer

// The ZoConfig of a TrainConfig (queries, sigmas, mu, sidedness, GNS,
// rounding, estimation, bias update, seed).
ZoConfig make_zo_config(const TrainConfig& c);

// One trainer of a run: its layers and its configuration.
struct TrainerGroup {
  std::vector<LayerChoice> layers;
  ZoConfig config;
};

// The second trainer of `--plus-biases Q` (TrainConfig::plus_biases): the
// biases of every conv not in `layers`, in op order, with
// plus_bias_config(base, Q) (bias-only and model-wise, Q queries per sample).
// Throws CliError when `layers` already holds every conv or Q is not positive.
TrainerGroup plus_bias_group(const ModelView& model, const std::vector<LayerChoice>& layers, const ZoConfig& base,
                             int queries);

// The trainer groups of a config: its layers with make_zo_config(c), then
// plus_bias_group() when c.plus_biases > 0.
std::vector<TrainerGroup> trainer_groups(const ModelView& model, const std::vector<LayerChoice>& layers,
                                         const TrainConfig& c);

// predict_training_memory() of a run's trainers: the engine with the groups'
// layers outside its fused blocks (a bias-only group's stay inside), plus
// each trainer's own arena.
MemoryPrediction predict_group_memory(const ModelView& model, const std::vector<TrainerGroup>& groups, int n_queries,
                                      int batch, bool fuse = false);

// An Engine and one or more ZoTrainers on it, each in its own heap arena of
// exactly the size it asks for (measured by ZoTrainer::required_arena_bytes).
// Several trainers train disjoint layers: a step calls every trainer's
// begin_step, then per sample each trainer's accumulate_sample in group order,
// then every end_step in group order (fw::run_training's order, bit for bit).
class TrainerHost {
 public:
  // `fuse`: the trainer's engine runs fused row-band blocks (EngineOptions::fuse,
  // the trained layers kept out of them): the device's smaller arena, the same weights.
  TrainerHost(const ModelView& model, const KernelTable& kernels, const std::vector<LayerChoice>& layers,
              const ZoConfig& config, bool fuse = false);
  // Groups with disjoint layers (CliError otherwise).
  TrainerHost(const ModelView& model, const KernelTable& kernels, const std::vector<TrainerGroup>& groups,
              bool fuse = false);
  ~TrainerHost();
  TrainerHost(const TrainerHost&) = delete;
  TrainerHost& operator=(const TrainerHost&) = delete;

  Engine& engine() { return engine_.engine(); }
  ZoTrainer& trainer(int group = 0) { return groups_[size_t(group)]->trainer; }
  int n_trainers() const { return int(groups_.size()); }
  size_t engine_arena_bytes() const { return engine_bytes_; }
  // All trainers' arenas.
  size_t trainer_arena_bytes() const;
  // The trainable copies of every trainer as ParamOverrides (what the evaluator should read).
  std::vector<ParamOverride> overrides();
  // Runs each layer's queries on `threads` worker engines of `batch` items
  // (one thread each; a worker runs `batch` queries as one batch through the
  // suffix). The weights stay bitwise the same as with the trainer's own
  // engine alone. Layer-wise estimation only (a model-wise trainer stays on
  // the one engine); with one thread and batch 1 it does nothing.
  void enable_query_workers(int threads, int batch = 1);
  // MACs of one sample's forwards if every forward ran the whole network
  // (no prefix reuse): the sum over the trainers of (1 + queries) x full-model MACs.
  uint64_t full_rerun_macs_per_sample() const { return full_rerun_macs_; }

 private:
  struct alignas(16) Block {
    uint8_t b[16];
  };
  struct Group {
    ZoConfig config;
    std::vector<Block> memory;
    Arena arena;
    ZoTrainer trainer;
  };
  std::vector<int> unfused_;  // the trained ops but bias-only ones (before engine_: its options point here)
  EngineInstance engine_;
  size_t engine_bytes_ = 0;
  std::vector<std::unique_ptr<Group>> groups_;
  uint64_t full_rerun_macs_ = 0;
  std::vector<std::unique_ptr<EngineInstance>> workers_;
  std::vector<Block> worker_memory_;
  Arena worker_arena_;
  int n_threads_ = 1;
};

// ------------------------------------------------------------------ the run

struct StepReport {
  uint32_t step = 0, total_steps = 0;  // step is 0-based
  uint32_t epoch = 0, epochs = 0;      // epoch is 0-based
  float loss = 0, lr = 0;
  uint64_t macs = 0;
  int weights_changed = 0;
  double seconds = 0;      // this step's wall time
  double eta_seconds = 0;  // remaining training steps at this invocation's mean step time
};

struct EpochReport {
  uint32_t epoch = 0, epochs = 0;  // epoch is 1-based here (the epoch just finished)
  uint32_t step = 0;               // steps completed
  double val_acc = 0, best_val = 0;
  int best_epoch = 0;
  double seconds = 0;              // validation wall time
};

struct RunHooks {
  std::function<void(const std::string&)> on_message;  // phase notes for the user
  std::function<void(const StepReport&)> on_step;
  std::function<void(const EpochReport&)> on_epoch;
  std::function<bool()> should_stop;  // checked before each step (Ctrl-C)
};

struct RunOptions {
  TrainConfig config;
  std::vector<LayerChoice> layers;
  std::string out_dir;        // empty: no files at all (log, checkpoint, export)
  bool resume = false;        // continue from out_dir/checkpoint.bin
  bool overwrite = false;     // replace the run in out_dir (its own files only; RunDirectory)
  // out_dir opened (locked and checked) by the caller in the mode resume /
  // overwrite give; null: run_training opens it.
  RunDirectory* directory = nullptr;
  uint32_t stop_after_steps = 0;  // > 0: stop (with a checkpoint) once this many steps are done
  uint32_t checkpoint_every = 0;  // > 0: also checkpoint every N steps (besides every epoch end)
};

struct RunResult {
  bool finished = false;        // false: stopped early, resumable
  bool stopped_by_hook = false;  // RunHooks::should_stop ended it (Ctrl-C)
  uint32_t steps_done = 0, total_steps = 0, epochs = 0, steps_per_epoch = 0;
  double val_before = 0, test_before = 0;  // [0, 1]
  double best_val = 0, test_after = 0;     // best-validation weights; test_after only when finished
  int best_epoch = 0;
  double train_seconds = 0;     // training wall time over all invocations (steps + validation)
  double wall_seconds = 0;      // this invocation, everything
  double mean_step_seconds = 0; // this invocation
  size_t engine_arena_bytes = 0, trainer_arena_bytes = 0;
  MemoryPrediction predicted;
  uint64_t total_macs = 0;              // forward MACs of all training steps
  uint64_t macs_per_step = 0;           // of a full batch
  uint64_t full_rerun_macs_per_step = 0;
  float last_loss = 0;
  std::vector<CheckpointLayer> layers;  // final (current) and best weights
  std::string best_model_path;          // out_dir/best.tzm (also when stopped: the best so far)
  bool log_repaired = false;            // resumed with a short, missing or edited log.jsonl
};

// Runs (or resumes) the training. `model` is what `config.model` named; its
// bytes are what best.tzm is exported from. With an out_dir, the directory is
// a RunDirectory (host/run_dir.h): locked for the whole run, its files
// declared in run.json before they are written, and (overwrite) the old run's
// files removed only once the model, data and settings were accepted. A run
// stopped early (stop_after_steps, should_stop) writes its checkpoint, the
// best weights so far as best.tzm and summary.json (finished: false). Throws
// CliError on any failure, leaving the last checkpoint intact.
RunResult run_training(const ModelView& model, const TrainData& data, const RunOptions& options,
                       const RunHooks& hooks = {});

// Steps of a run: max_steps, or epochs x ceil(n_train / batch).
uint32_t total_training_steps(const TrainConfig& c, size_t n_train);

}  // namespace tinyzo
