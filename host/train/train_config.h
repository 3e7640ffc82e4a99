// Settings of `tinyzo train` / `tinyzo select`: the JSON config file, the
// layer specification (--layers / --mode) and the memory-model prediction of a
// layer set. Every key and rule is documented in docs/training.md.
//
// This file deliberately does not include tinyzo/train/zo_trainer.h: it talks
// to the memory model (tinyzo/train/memory_model.h), and the two headers each
// declare a tinyzo::TrainLayer. Layers travel as LayerChoice instead.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "tinyzo/model.h"
#include "tinyzo/train/zo_trainer.h"
#include "tinyzo/status.h"

namespace tinyzo {

// Throws CliError "<what>: <status name>" for a non-ok status.
void check_status(Status s, const std::string& what);

struct TrainConfig {
  // model and data
  std::string model = "mcunet-cifar10";
  std::string kernels = "best";
  std::string corruption = "gaussian_noise";  // or "none" (clean CIFAR-10)
  int severity = 5;
  uint64_t corruption_seed = 0;
  int train_per_class = 100, val_per_class = 10, test_per_class = 90;
  uint64_t split_seed = 0;
  bool augment = true;
  // layers
  std::string layers = "paper";       // paper | all | op[:wp|:np],... (see parse in resolve_layers)
  std::string mode = "threshold:5";   // wp | np | threshold:N | auto
  double budget_kb = 0;               // SRAM budget of --mode auto (0 = none)
  // estimator (METHOD §3)
  int queries_w = 25, queries_b = 25, queries_np = 50;
  int sigma_w = 1, sigma_b = 100, mu = 5;
  bool two_sided = false;
  std::string gns = "linear";         // none | linear | sqrt
  std::string rounding = "nearest";   // nearest | stochastic
  std::string estimation = "layer";   // layer | model
  bool update_bias = true;
  bool qas = true;                     // quantization-aware scaling of the update (METHOD §3.6); off for the ablation
  // beyond the paper (issue 13, docs/zo-search.md); the defaults are the paper's
  std::string baseline = "none";      // none | mean: control variate of the loss differences
  double lr_wp = 1, lr_np = 1;        // learning-rate multipliers of the WP / NP layers
  std::string step_norm = "none";     // ZoConfig::step_norm: none | layer
  std::string params = "all";         // all | bias (ZoConfig::bias_only: train the biases alone)
  double bias_mu = 0;                 // ZoConfig::bias_mu: the bias shift in output LSBs (0 = mu)
  int plus_biases = 0;                // > 0: a second trainer, every other conv's biases (plus_bias_group)
  double momentum = 0;                // ZoConfig::momentum: running average of the estimate, 0 = off
  double anchor = 0;                  // ZoConfig::anchor: decay towards the start model's values, 0 = off
  // schedule
  int batch = 100;
  int epochs = 50;
  double lr = 0;       // 0 = 0.01 * batch / 256
  int max_steps = 0;   // > 0: train this many steps in all (the cosine spans them)
  uint64_t seed = 0;   // perturbations, rounding, epoch order, augmentation
  // execution (no effect on the result)
  int threads = 1;     // evaluation engines
  int engine_batch = 16;  // queries a worker engine runs as one batch
  bool one_layer_per_pass = false;  // ZoConfig::one_layer_per_pass: less memory, the same weights
  bool fuse = false;  // the trainer's engine with fused row-band blocks: less memory, the same weights
  std::string out = "runs/train";
  // data (after `out`: keys added later go last, so older keys keep their order)
  std::string data = "cifar10";      // the data directory's CIFAR-10 test batch, or an image folder / CIFAR-10 files
  std::string bad_images = "stop";   // stop | skip: an unreadable image in a folder (docs/data.md)
};

// ------------------------------------------------------------------ settings

// One definition of every setting: its config key, its flag, its type (the
// TrainConfig member's) and its range. The command-line flags (host/cli),
// config files, the run's saved DIR/config.json and --resume all go through
// this table, so a value accepted one way is accepted every way, and a value
// refused is refused everywhere with the same words.
using SettingMember = std::variant<std::string TrainConfig::*, bool TrainConfig::*, int TrainConfig::*,
                                   uint64_t TrainConfig::*, double TrainConfig::*>;
struct Setting {
  const char* key;    // config key: "train_per_class"
  const char* flags;  // CLI11 names: "--train-per-class", "--batch,-b", "--augment,!--no-augment"
  SettingMember member;
  double min = 0, max = 0;        // int and double: the inclusive range (uint64: any value)
  const char* choices = nullptr;  // strings: "best|ref"; nullptr: any non-empty text
  const char* help = "";
};
// Every setting, in the order config_to_json writes them (the order is part
// of config_fingerprint(): never reorder).
const std::vector<Setting>& train_settings();
// The setting with config key `key`, or nullptr.
const Setting* find_setting(const std::string& key);
// The first long flag of a setting: "--batch" for "--batch,-b".
std::string setting_flag(const Setting& s);

// Where each value came from, for messages that name the flag or the key and
// the file: "--lr", "configs/quick.json: key 'lr'". Keys not recorded are
// named "config key 'lr'".
class SettingSources {
 public:
  void set(const std::string& key, std::string where) { where_[key] = std::move(where); }
  std::string describe(const std::string& key) const;
  // True when the value of `key` was set by a flag or a file.
  bool has(const std::string& key) const { return where_.count(key) != 0; }

 private:
  std::map<std::string, std::string> where_;
};

// Strict parsers of command-line text, shared by every command's numeric
// flags: the whole text must be the number (no spaces, no trailing bytes, no
// "1e23" for an integer, no "-1" for an unsigned one), nothing wraps or is
// clamped, and reals must be finite (no inf, nan or 1e309). Each returns ""
// and sets *out, or returns the reason ("must be 1..256", "not a finite
// number") for the caller to prefix with the flag.
std::string parse_int_text(const std::string& text, int64_t min, int64_t max, int64_t* out);
std::string parse_u64_text(const std::string& text, uint64_t* out);
std::string parse_real_text(const std::string& text, double min, double max, double* out);

// Sets setting `s` from command-line text / a JSON value, with the type and
// range checks of the table. Throws CliError "<where>: <reason>".
void set_setting_text(const Setting& s, const std::string& text, TrainConfig* c, const std::string& where);
void set_setting_json(const Setting& s, const nlohmann::json& v, TrainConfig* c, const std::string& where);
// The reason a text value is refused for `s`, or "" (no side effects).
std::string check_setting_text(const Setting& s, const std::string& text);

// Every key, in table order.
nlohmann::ordered_json config_to_json(const TrainConfig& c);
// Sets the keys present in `j` (an object). Throws CliError naming `what` and
// the key for an unknown key, a value of the wrong type or out of range.
// Records each key's origin in `sources` when given.
void apply_config_json(const nlohmann::json& j, TrainConfig* c, const std::string& what,
                       SettingSources* sources = nullptr);
// The largest config file read.
constexpr uint64_t kMaxConfigBytes = 1 << 20;
// Parses JSON text strictly: a duplicate key in any object is an error (the
// JSON standard leaves it open; silently keeping one of two values is how a
// typo goes unnoticed). Throws CliError "<what>: ...".
nlohmann::json parse_json_strict(const std::string& text, const std::string& what);
// Reads a JSON config file (a regular file of at most kMaxConfigBytes) over
// the defaults. Throws CliError naming the file.
TrainConfig load_config_file(const std::string& path, SettingSources* sources = nullptr);
// Range checks of every value (the table's), the names of the corruption and
// the mode, and the step arithmetic: the total step count must fit a run's
// step counter (kMaxTrainingSteps). Throws CliError naming the flag or key
// (and file) that `sources` recorded.
void validate_config(const TrainConfig& c, const SettingSources* sources = nullptr);
// The most steps a run may have (the step counter and the cosine schedule
// use int32).
constexpr uint64_t kMaxTrainingSteps = INT32_MAX;
// Data other than the default CIFAR-10 is the user's own, already as it
// should be: its corruption is "none" unless `sources` says the corruption
// was given (a flag or a config key). Call after the flags and the file are
// applied, before validate_config.
void apply_data_defaults(TrainConfig* c, const SettingSources& sources);
// The protocol's training images for a config: 10 classes x train_per_class.
size_t config_train_images(const TrainConfig& c);
// The learning rate eta0: c.lr, or 0.01 * batch / 256 when c.lr is 0.
double effective_lr(const TrainConfig& c);
// A hex digest of every key that changes the trained weights (all but
// threads and out; data and bad_images only when not the defaults, so that
// digests of runs from before those keys existed stay the same): a checkpoint
// only resumes a run with the same digest.
std::string config_fingerprint(const TrainConfig& c);

// ------------------------------------------------------------------ layers

struct LayerChoice {
  int op = -1;
  bool node = false;  // NP (true) or WP (false)
};

// The block of an op from its name: k for "1.<k>.…" (the .pth names) and
// "blocks.<k>.…" (the .pkl names); -1 otherwise (the first conv "0", heads).
int op_block(const std::string& name);

// An op by name, or by index written "#12"; -1 when absent.
int find_op_by_name(const ModelView& m, const std::string& name);

// The ops of the paper's released CIFAR-10-C layer set (METHOD §4): 1.4.conv.0,
// 1.5.conv.0, 1.6.conv.0, 1.7.conv.0 (or their .pkl names blocks.<k>.pointwise1),
// in that order; the paper runs WP on the first two and NP on the last two.
// Throws CliError naming `flag` when the model lacks one.
std::vector<int> paper_layer_ops(const ModelView& m, const std::string& flag);

// --mode.
struct ModeRule {
  enum Kind { kWeight, kNode, kThreshold, kAuto } kind = kThreshold;
  int threshold = 5;  // kThreshold: WP for blocks <= threshold, NP after
};
// "wp", "np", "threshold:N", "auto". Throws CliError.
ModeRule parse_mode(const std::string& s);

// What --mode auto needs besides the graph.
struct AutoModeContext {
  double budget_kb = 0;  // 0 = no memory limit
  int n_queries = 50;    // Q, for the memory model
  int batch = 100;
};

// The auto rule's dimension test: NP when the layer's output elements per
// sample D <= kAutoNodeFactor * d_w (docs/training.md explains the factor).
constexpr double kAutoNodeFactor = 2.0;

// Resolves --layers and --mode into sorted, distinct Conv2d ops with modes.
// Spec: a comma list of `paper` (1.4.conv.0, 1.5.conv.0, 1.6.conv.0,
// 1.7.conv.0 or their .pkl names), `all` (every Conv2d), op names or "#index",
// each optionally suffixed ":wp" / ":np" (which beats --mode). Throws
// CliError naming the bad token.
std::vector<LayerChoice> resolve_layers(const ModelView& m, const std::string& spec, const ModeRule& mode,
                                        const AutoModeContext& ctx);

// "1.4.conv.0:wp,1.6.conv.0:np" (what --layers accepts back).
std::string layers_to_string(const ModelView& m, const std::vector<LayerChoice>& layers);

// Weight count, output elements per sample, input elements of a Conv2d op.
struct ConvDims {
  size_t d_w = 0, c_out = 0, d_out = 0, d_in = 0;
  bool depthwise = false;
};
ConvDims conv_dims(const ModelView& m, int op);
// Whether op `op` is a Conv2d (the ops training can take).
bool is_conv(const ModelView& m, int op);

// ------------------------------------------------------------------ memory

// The memory model's figures (docs/memory.md) for training `layers`.
struct MemoryPrediction {
  size_t inference_bytes = 0;   // Engine arena: planned activations + engine tables
  size_t zo_extra_bytes = 0;    // what ZO training adds (persistent + shared workspace)
  size_t persistent_bytes = 0;
  size_t workspace_bytes = 0;
  std::vector<size_t> layer_extra_bytes;  // per layer, if it were the only one
  size_t total_bytes() const { return inference_bytes + zo_extra_bytes; }
};
// Throws CliError when the memory model rejects the set.
// With `trainer`, its query counts (W, b, NP) and sides are the ones accounted
// (what that trainer takes, byte for byte); without, Q is split as
// zo_trainer_config() does, and its one_layer_per_pass too. `fuse`: the engine
// with fused row-band blocks, the trained layers outside them (TrainerHost's).
MemoryPrediction predict_training_memory(const ModelView& m, const std::vector<LayerChoice>& layers, int n_queries,
                                         int batch, const ZoConfig* trainer = nullptr, bool fuse = false);

}  // namespace tinyzo
