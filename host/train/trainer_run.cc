#include "train/trainer_run.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "util/errors.h"
#include "util/file_util.h"
#include "data/preprocess.h"
#include "util/rng.h"
#include "tinyzo/train/fmath.h"
#include "models/tzm_writer.h"

namespace tinyzo {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

// ------------------------------------------------------------------ data

TrainData prepare_train_data(ProtocolData data, const ModelView& model) {
  const ImagePreprocessor prep(model.tensor(model.input_tensor()));
  TrainData d;
  d.input_size = prep.output_elements();
  d.input_side = prep.height();
  d.input_width = prep.width();
  d.input_channels = prep.channels();
  auto run = [&](const ImageSet& set, std::vector<int8_t>* inputs, std::vector<uint8_t>* labels) {
    inputs->resize(set.size() * d.input_size);
    for (size_t i = 0; i < set.size(); ++i) prep.run(set.view(i), inputs->data() + i * d.input_size);
    *labels = set.labels;
  };
  run(data.val, &d.val_inputs, &d.val_labels);
  run(data.test, &d.test_inputs, &d.test_labels);
  d.train = std::move(data.train);
  return d;
}

ProtocolSpec protocol_spec(const TrainConfig& c) {
  ProtocolSpec spec;
  spec.corruption = c.corruption;
  spec.severity = c.severity;
  spec.corruption_seed = c.corruption_seed;
  spec.split = SplitSpec{c.train_per_class, c.val_per_class, c.test_per_class, c.split_seed};
  spec.data = c.data;
  spec.bad_images = parse_bad_images(c.bad_images);
  return spec;
}

void train_input(const TrainData& data, const ModelView& model, const AugmentSpec& augment, uint64_t seed,
                 uint32_t epoch, uint32_t image, int8_t* out) {
  // Rebuilt per call: the table and the checks are cheap next to the forwards.
  const ImagePreprocessor prep(model.tensor(model.input_tensor()));
  const ImageView src = data.train.view(image);
  if (!augment.enabled) {
    prep.run(src, out);
    return;
  }
  // The augmentation works on RGB (colour jitter); other images are made RGB first.
  PlanarImage rgb;
  ImageView v = src;
  if (src.channels != 3) {
    rgb = convert_channels(src, 3);
    v = view_of(rgb);
  }
  const AugmentParams p = draw_augment(augment, augment_seed(seed, epoch, image), v.height, v.width);
  std::vector<uint8_t> px(size_t(prep.height()) * size_t(prep.width()) * 3);
  augment_rgb_pixels(v, p, prep.height(), prep.width(), px.data());
  prep.quantize_rgb(px.data(), out);
}

// ------------------------------------------------------------------ evaluation

Evaluator::Evaluator(const ModelView& model, const KernelTable& kernels, int threads, int batch)
    : batch_(std::max(batch, 1)) {
  for (int t = 0; t < std::max(threads, 1); ++t)
    engines_.push_back(std::make_unique<EngineInstance>(model, kernels, batch_));
}

double Evaluator::accuracy(const int8_t* inputs, size_t input_size, const uint8_t* labels, size_t n,
                           const std::vector<ParamOverride>& overrides) {
  if (n == 0) return 0.0;
  const int threads = static_cast<int>(std::min<size_t>(engines_.size(), n));
  std::vector<size_t> correct(static_cast<size_t>(threads), 0);
  run_workers(threads, [&](int t) {
    const size_t begin = n * size_t(t) / size_t(threads), end = n * size_t(t + 1) / size_t(threads);
    EngineInstance& inst = *engines_[size_t(t)];
    Engine& e = inst.engine();
    for (const ParamOverride& o : overrides) {
      check_status(e.set_param_override(o.op, 1, o.weights), "evaluation: weight override");
      check_status(e.set_param_override(o.op, 2, o.biases), "evaluation: bias override");
    }
    if (e.input().size() != input_size) throw CliError("evaluation: input size mismatch");
    std::vector<float> logits;
    for (size_t i = begin; i < end; i += size_t(batch_)) {
      const int items = static_cast<int>(std::min(end - i, size_t(batch_)));
      for (int k = 0; k < items; ++k) std::memcpy(e.input(k).data(), inputs + (i + size_t(k)) * input_size, input_size);
      inst.invoke_items(items);
      for (int k = 0; k < items; ++k) {
        inst.logits(&logits, k);
        correct[size_t(t)] += argmax(logits) == int(labels[i + size_t(k)]) ? 1 : 0;
      }
    }
    for (const ParamOverride& o : overrides) {
      (void)e.set_param_override(o.op, 1, nullptr);
      (void)e.set_param_override(o.op, 2, nullptr);
    }
  });
  size_t total = 0;
  for (size_t c : correct) total += c;
  return double(total) / double(n);
}

// ------------------------------------------------------------------ trainer

ZoConfig make_zo_config(const TrainConfig& c) {
  ZoConfig z;
  z.n_queries_w = c.queries_w;
  z.n_queries_b = c.queries_b;
  z.n_queries_np = c.queries_np;
  z.sigma_w_lsb = c.sigma_w;
  z.sigma_b_lsb = c.sigma_b;
  z.mu_lsb = c.mu;
  z.two_sided = c.two_sided;
  z.gns = c.gns == "none" ? GnsMode::kNone : (c.gns == "sqrt" ? GnsMode::kSqrt : GnsMode::kLinear);
  z.rounding = c.rounding == "stochastic" ? Rounding::kStochastic : Rounding::kNearest;
  z.estimation = c.estimation == "model" ? Estimation::kModelWise : Estimation::kLayerWise;
  z.update_bias = c.update_bias;
  z.qas = c.qas;
  z.baseline = c.baseline == "mean" ? Baseline::kMean : Baseline::kNone;
  z.lr_scale_wp = static_cast<float>(c.lr_wp);
  z.lr_scale_np = static_cast<float>(c.lr_np);
  z.momentum = static_cast<float>(c.momentum);
  z.step_norm = c.step_norm == "layer" ? StepNorm::kLayer : StepNorm::kNone;
  z.bias_only = c.params == "bias";
  z.bias_mu = static_cast<float>(c.bias_mu);
  z.anchor = static_cast<float>(c.anchor);
  z.one_layer_per_pass = c.one_layer_per_pass;
  z.seed = c.seed;
  return z;
}

namespace {
// The ops the engine keeps out of fused blocks: every group's layers but a
// bias-only group's (it trains inside the blocks). Throws on a layer in two groups.
std::vector<int> unfused_ops(const std::vector<TrainerGroup>& groups) {
  std::vector<int> seen, ops;
  for (const TrainerGroup& g : groups)
    for (const LayerChoice& l : g.layers) {
      if (std::find(seen.begin(), seen.end(), l.op) != seen.end())
        throw CliError("trainer: op " + std::to_string(l.op) + " is in two trainer groups (their layers must differ)");
      seen.push_back(l.op);
      if (!g.config.bias_only) ops.push_back(l.op);
    }
  return ops;
}
EngineOptions trainer_engine_options(bool fuse, const std::vector<int>& unfused) {
  EngineOptions o;
  o.fuse = fuse;
  o.unfused_ops = Span<const int>(unfused.data(), unfused.size());
  return o;
}
// The CLI's refusals of option combinations the trainer cannot run.
void check_group(const TrainerGroup& g) {
  const ZoConfig& config = g.config;
  if (config.bias_only && config.estimation != Estimation::kModelWise)
    throw CliError("--params bias: needs --estimation model (every layer's biases are perturbed at once)");
  if (config.bias_only && !config.update_bias)
    throw CliError("--params bias: not with --no-update-bias (the biases are all it trains)");
  if (config.bias_only && config.step_norm != StepNorm::kNone)
    throw CliError("--params bias: not with --step-norm layer (it normalises by the weights, which stay frozen)");
  if (!config.bias_only && config.baseline != Baseline::kNone && config.estimation == Estimation::kModelWise)
    for (const LayerChoice& l : g.layers)
      if (l.node)
        throw CliError("--baseline mean: not with --estimation model on an NP layer (model-wise NP folds every "
                       "query into its node gradient at once); use --estimation layer or WP layers");
}
// Forwards per sample (METHOD §3.4): one unperturbed pass, then per layer its
// queries (x2 when two-sided); model-wise, each query is a full pass.
uint64_t forwards_per_sample(const TrainerGroup& g) {
  const ZoConfig& config = g.config;
  const int sides = config.two_sided ? 2 : 1;
  uint64_t forwards = 1;
  if (config.bias_only) {
    forwards += uint64_t(config.n_queries_b) * sides;
  } else if (config.estimation == Estimation::kModelWise) {
    forwards += uint64_t(config.n_queries_w) * sides;
  } else {
    for (const LayerChoice& l : g.layers)
      forwards += l.node ? uint64_t(config.n_queries_np) * sides
                         : uint64_t(config.n_queries_w + (config.update_bias ? config.n_queries_b : 0)) * sides;
  }
  return forwards;
}
}  // namespace

TrainerGroup plus_bias_group(const ModelView& model, const std::vector<LayerChoice>& layers,
                             const ZoConfig& base, int queries) {
  if (queries <= 0) throw CliError("--plus-biases: needs at least one query per sample");
  std::vector<TrainLayer> taken;
  for (const LayerChoice& l : layers) taken.push_back(TrainLayer{l.op, PerturbMode::kWeight});
  std::vector<TrainLayer> rest(size_t(model.n_ops()));
  const int n = plus_bias_layers(model, Span<const TrainLayer>(taken.data(), taken.size()), rest.data(),
                                 int(rest.size()));
  TrainerGroup g;
  for (int i = 0; i < n; ++i) g.layers.push_back(LayerChoice{rest[size_t(i)].op, false});
  if (g.layers.empty())
    throw CliError("--plus-biases: the trained layers are every conv already; no bias is left");
  g.config = plus_bias_config(base, queries);
  return g;
}

std::vector<TrainerGroup> trainer_groups(const ModelView& model, const std::vector<LayerChoice>& layers,
                                         const TrainConfig& c) {
  std::vector<TrainerGroup> groups{TrainerGroup{layers, make_zo_config(c)}};
  if (c.plus_biases > 0) groups.push_back(plus_bias_group(model, layers, groups[0].config, c.plus_biases));
  return groups;
}

TrainerHost::TrainerHost(const ModelView& model, const KernelTable& kernels, const std::vector<LayerChoice>& layers,
                         const ZoConfig& config, bool fuse)
    : TrainerHost(model, kernels, std::vector<TrainerGroup>{TrainerGroup{layers, config}}, fuse) {}

TrainerHost::TrainerHost(const ModelView& model, const KernelTable& kernels, const std::vector<TrainerGroup>& groups,
                         bool fuse)
    : unfused_(unfused_ops(groups)), engine_(model, kernels, 1, trainer_engine_options(fuse, unfused_)) {
  engine_bytes_ = engine_.engine().arena_bytes();
  uint64_t forwards = 0;
  for (const TrainerGroup& g : groups) {
    check_group(g);
    std::vector<TrainLayer> tl;
    for (const LayerChoice& l : g.layers) {
      TrainLayer t;
      t.op = l.op;
      t.mode = l.node ? PerturbMode::kNode : PerturbMode::kWeight;
      tl.push_back(t);
    }
    const Span<const TrainLayer> spec(tl.data(), tl.size());
    // Measure the trainer's need in a scratch arena big enough (doubling), then
    // give it exactly that.
    size_t need = 0;
    for (size_t cap = size_t(1) << 20;; cap *= 2) {
      std::vector<Block> scratch((cap + sizeof(Block) - 1) / sizeof(Block));
      Arena a(scratch.data(), scratch.size() * sizeof(Block));
      const Status s = ZoTrainer::required_arena_bytes(engine_.engine(), spec, g.config, a, &need);
      if (s == Status::kOk) break;
      if (s != Status::kOutOfMemory || cap > (size_t(1) << 34)) check_status(s, "trainer: sizing its arena");
    }
    auto group = std::make_unique<Group>();
    group->config = g.config;
    group->memory.resize((need + sizeof(Block) - 1) / sizeof(Block) + 1);
    group->arena = Arena(group->memory.data(), group->memory.size() * sizeof(Block));
    check_status(group->trainer.init(engine_.engine(), spec, g.config, group->arena), "trainer: init");
    groups_.push_back(std::move(group));
    forwards += forwards_per_sample(g);
  }
  full_rerun_macs_ = forwards * engine_.engine().macs(0, model.n_ops());
}

MemoryPrediction predict_group_memory(const ModelView& model, const std::vector<TrainerGroup>& groups, int n_queries,
                                      int batch, bool fuse) {
  MemoryPrediction p = predict_training_memory(model, groups.at(0).layers, n_queries, batch, &groups[0].config, fuse);
  if (groups.size() == 1) return p;
  // The engine keeps the groups' layers out of its fused blocks (a bias-only
  // group's excepted: unfused_ops()); each trainer has its own arena.
  std::vector<LayerChoice> all;
  for (const TrainerGroup& g : groups)
    if (!g.config.bias_only) all.insert(all.end(), g.layers.begin(), g.layers.end());
  if (!all.empty())
    p.inference_bytes = predict_training_memory(model, all, n_queries, batch, &groups[0].config, fuse).inference_bytes;
  for (size_t g = 1; g < groups.size(); ++g) {
    const MemoryPrediction q = predict_training_memory(model, groups[g].layers, n_queries, batch, &groups[g].config, fuse);
    p.zo_extra_bytes += q.zo_extra_bytes;
    p.persistent_bytes += q.persistent_bytes;
    p.workspace_bytes += q.workspace_bytes;
    p.layer_extra_bytes.insert(p.layer_extra_bytes.end(), q.layer_extra_bytes.begin(), q.layer_extra_bytes.end());
  }
  return p;
}

size_t TrainerHost::trainer_arena_bytes() const {
  size_t bytes = 0;
  for (const auto& g : groups_) bytes += g->trainer.arena_bytes();
  return bytes;
}

TrainerHost::~TrainerHost() = default;

namespace {

// ZoTrainer::ParallelFor over std::thread: worker 0 is the calling thread;
// each worker pulls task indices from a shared counter.
void thread_parallel_for(void* ctx, int n, void (*task)(void*, int, int), void* arg) {
  const int workers = std::min(*static_cast<int*>(ctx), n);
  std::atomic<int> next{0};
  auto body = [&](int w) {
    for (int i = next++; i < n; i = next++) task(arg, w, i);
  };
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(body, w);
  body(0);
  for (auto& t : threads) t.join();
}

}  // namespace

void TrainerHost::enable_query_workers(int threads, int batch) {
  if (threads <= 1 && batch <= 1) return;
  threads = std::min(threads, ZoTrainer::kMaxWorkers);
  batch = std::min(batch, ZoTrainer::kMaxBatch);
  // The layer-wise trainers (model-wise ones run every query on the one engine).
  std::vector<ZoTrainer*> layer_wise;
  size_t largest = 0;  // one perturbation buffer per worker: at most the largest trainable tensor
  for (auto& g : groups_) {
    ZoTrainer& t = g->trainer;
    if (t.n_layers() == 0 || g->config.estimation == Estimation::kModelWise) continue;
    layer_wise.push_back(&t);
    for (int i = 0; i < t.n_layers(); ++i) largest = std::max({largest, t.weights(i).size(), t.biases(i).size() * 4});
  }
  if (layer_wise.empty()) return;
  std::vector<Engine*> engines;
  for (int w = 0; w < threads; ++w) {
    workers_.push_back(std::make_unique<EngineInstance>(engine_.engine().model(), engine_.engine().kernels(), batch));
    engines.push_back(&workers_.back()->engine());
  }
  // Per trainer: the buffers plus its worker table (well under 1 KB).
  worker_memory_.resize(layer_wise.size() * (size_t(threads) * size_t(batch) * (largest / sizeof(Block) + 2) + 64));
  worker_arena_ = Arena(worker_memory_.data(), worker_memory_.size() * sizeof(Block));
  n_threads_ = threads;
  for (ZoTrainer* t : layer_wise)
    check_status(t->set_workers(Span<Engine* const>(engines.data(), engines.size()), worker_arena_,
                                thread_parallel_for, &n_threads_),
                 "trainer: query workers");
  // A worker runs a trainer's queries through the rest of the network, so it
  // must read every other trainer's parameters as the main engine does (the
  // plus-biases trainer's biases move every step): set_workers pointed the
  // workers at its own trainer's copies only.
  for (Engine* e : engines)
    for (auto& g : groups_) {
      const ZoTrainer& t = g->trainer;
      if (std::find(layer_wise.begin(), layer_wise.end(), &t) != layer_wise.end()) continue;
      for (int i = 0; i < t.n_layers(); ++i) {
        if (!t.weights(i).empty()) check_status(e->set_param_override(t.layer(i).op, 1, t.weights(i).data()), "workers");
        check_status(e->set_param_override(t.layer(i).op, 2, t.biases(i).data()), "workers");
      }
    }
}

std::vector<ParamOverride> TrainerHost::overrides() {
  std::vector<ParamOverride> v;
  for (auto& g : groups_) {
    ZoTrainer& t = g->trainer;
    for (int i = 0; i < t.n_layers(); ++i)
      v.push_back(ParamOverride{t.layer(i).op, t.weights(i).data(), t.biases(i).data()});
  }
  return v;
}

// ------------------------------------------------------------------ the run

uint32_t total_training_steps(const TrainConfig& c, size_t n_train) {
  if (c.max_steps > 0) return uint32_t(c.max_steps);
  // In 64 bits, refused rather than wrapped (a wrapped count is a tiny run that reports success).
  const uint64_t total = uint64_t(std::max(c.epochs, 0)) * uint64_t(steps_per_epoch(n_train, c.batch));
  if (total > kMaxTrainingSteps)
    throw CliError("train: " + std::to_string(c.epochs) + " epochs of " + std::to_string(n_train) +
                   " images in batches of " + std::to_string(c.batch) + " = " + std::to_string(total) +
                   " steps, more than the " + std::to_string(kMaxTrainingSteps) + " a run can count");
  return uint32_t(total);
}

namespace {

// What JsonLog::resume did to a log that did not end where the checkpoint says.
struct LogRepair {
  bool repaired = false;
  uint64_t expected_bytes = 0, found_bytes = 0, kept_bytes = 0;
};

// log.jsonl: one JSON object per line, flushed, so a crash loses at most the
// line being written. The checkpoint alone decides a resumed run's state: its
// log is cut back to the length the checkpoint recorded.
class JsonLog {
 public:
  JsonLog() = default;
  // A new, empty log.
  static JsonLog create(const std::string& path) { return JsonLog(path, "wb"); }
  // The log of a resumed run, made to end where the checkpoint says: a longer
  // log is truncated to `keep_bytes`; a shorter, missing or edited one (its
  // byte keep_bytes - 1 is not a line end) is cut to its last whole line
  // before that point and `repair` says so, for the caller to record the gap.
  static JsonLog resume(const std::string& path, uint64_t keep_bytes, LogRepair* repair) {
    *repair = LogRepair{};
    repair->expected_bytes = keep_bytes;
    uint64_t cut = 0;
    if (is_regular_file(path) || !non_regular_file_kind(path).empty()) {
      const InputFile f(path, "log");
      repair->found_bytes = f.size();
      // Scanning back from `limit` in blocks: only the tail is read.
      auto whole_lines_before = [&](uint64_t limit) {
        char buf[1 << 16];
        while (limit > 0) {
          const size_t n = size_t(std::min<uint64_t>(limit, sizeof buf));
          f.read_at(limit - n, buf, n);
          for (size_t i = n; i > 0; --i)
            if (buf[i - 1] == '\n') return limit - n + i;
          limit -= n;
        }
        return uint64_t(0);
      };
      char last = '\n';
      if (f.size() >= keep_bytes && keep_bytes > 0) f.read_at(keep_bytes - 1, &last, 1);
      cut = f.size() >= keep_bytes && last == '\n' ? keep_bytes
                                                   : whole_lines_before(std::min(f.size(), keep_bytes));
      std::error_code ec;
      std::filesystem::resize_file(path, cut, ec);
      if (ec) throw CliError(path + ": " + ec.message());
    }
    repair->repaired = cut != keep_bytes;
    repair->kept_bytes = cut;
    return JsonLog(path, "ab");
  }
  ~JsonLog() {
    if (f_) std::fclose(f_);
  }
  JsonLog(const JsonLog&) = delete;
  JsonLog& operator=(const JsonLog&) = delete;
  JsonLog(JsonLog&& o) noexcept : path_(std::move(o.path_)), f_(o.f_) { o.f_ = nullptr; }
  JsonLog& operator=(JsonLog&& o) noexcept {
    std::swap(f_, o.f_);
    std::swap(path_, o.path_);
    return *this;
  }

  void write(const Json& j) {
    if (!f_) return;
    const std::string line = j.dump() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
      throw CliError(path_ + ": write failed");
  }
  uint64_t bytes() const { return f_ ? uint64_t(std::ftell(f_)) : 0; }

 private:
  JsonLog(const std::string& path, const char* mode) : path_(path) {
    f_ = std::fopen(path.c_str(), mode);
    if (!f_) throw CliError(path + ": cannot open the log for writing");
  }

  std::string path_;
  std::FILE* f_ = nullptr;
};

std::string run_fingerprint(const TrainConfig& c, const ModelView& m) {
  // The config digest plus the model's CRC: same settings on other weights is another run.
  char hex[17];
  const std::string key = config_fingerprint(c) + ":" + std::to_string(m.header().crc32);
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_name64(key)));
  return hex;
}

}  // namespace

RunResult run_training(const ModelView& model, const TrainData& data, const RunOptions& opt, const RunHooks& hooks) {
  const auto t_start = Clock::now();
  const TrainConfig& cfg = opt.config;
  validate_config(cfg);
  auto say = [&](const std::string& s) {
    if (hooks.on_message) hooks.on_message(s);
  };
  auto stop_requested = [&]() { return hooks.should_stop && hooks.should_stop(); };
  if (data.train.size() == 0 || data.n_val() == 0) throw CliError("train: no training or validation images");
  if (opt.resume && opt.overwrite) throw CliError("--resume and --overwrite exclude each other");
  const bool files = !opt.out_dir.empty() || opt.directory != nullptr;
  if (opt.resume && !files) throw CliError("--resume needs an output directory");

  // The run directory first: a second writer or a live run is refused before
  // any work, and the lock is held until this function returns.
  std::unique_ptr<RunDirectory> own_dir;
  RunDirectory* dir = opt.directory;
  const RunDirectory::Mode want = opt.resume      ? RunDirectory::Mode::kResume
                                  : opt.overwrite ? RunDirectory::Mode::kOverwrite
                                                  : RunDirectory::Mode::kStart;
  if (files && dir == nullptr) {
    own_dir = std::make_unique<RunDirectory>(opt.out_dir, want);
    dir = own_dir.get();
  }
  if (dir != nullptr && dir->mode() != want)
    throw std::logic_error("run_training: the run directory's mode differs");
  const std::string ckpt_path = files ? dir->path("checkpoint.bin") : "";

  const size_t n_train = data.train.size();
  const uint32_t spe = uint32_t(steps_per_epoch(n_train, cfg.batch));
  const uint32_t total = total_training_steps(cfg, n_train);
  const uint32_t n_epochs = (total + spe - 1) / spe;
  const float eta0 = static_cast<float>(effective_lr(cfg));
  AugmentSpec augment;
  augment.enabled = cfg.augment;
  const std::string fingerprint = run_fingerprint(cfg, model);

  RunResult res;
  res.total_steps = total;
  res.epochs = n_epochs;
  res.steps_per_epoch = spe;

  const KernelTable& kernels = kernels_by_name(cfg.kernels);
  const std::vector<TrainerGroup> groups = trainer_groups(model, opt.layers, cfg);
  TrainerHost host(model, kernels, groups, cfg.fuse);
  host.enable_query_workers(cfg.threads, cfg.engine_batch);
  Evaluator eval(model, kernels, cfg.threads, cfg.engine_batch);
  res.engine_arena_bytes = host.engine_arena_bytes();
  res.trainer_arena_bytes = host.trainer_arena_bytes();
  res.predicted = predict_group_memory(model, groups, std::max(cfg.queries_w + cfg.queries_b, cfg.queries_np),
                                       cfg.batch, cfg.fuse);
  res.full_rerun_macs_per_step = host.full_rerun_macs_per_sample() * uint64_t(std::min<size_t>(n_train, cfg.batch));

  // Every trained layer of every trainer, in group order: the order of the
  // best-validation state, the checkpoint and the export.
  struct TrainedLayerRef {
    ZoTrainer* trainer;
    int index;
  };
  std::vector<TrainedLayerRef> refs;
  for (int g = 0; g < host.n_trainers(); ++g)
    for (int i = 0; i < host.trainer(g).n_layers(); ++i) refs.push_back(TrainedLayerRef{&host.trainer(g), i});
  const int n_layers = int(refs.size());
  auto weights_of = [&](int i) { return refs[size_t(i)].trainer->weights(refs[size_t(i)].index); };
  auto biases_of = [&](int i) { return refs[size_t(i)].trainer->biases(refs[size_t(i)].index); };
  auto momentum_w_of = [&](int i) { return refs[size_t(i)].trainer->momentum_w(refs[size_t(i)].index); };
  auto momentum_b_of = [&](int i) { return refs[size_t(i)].trainer->momentum_b(refs[size_t(i)].index); };

  // Best-validation copies of the trainable parameters.
  std::vector<CheckpointLayer> state(static_cast<size_t>(n_layers));
  for (int i = 0; i < n_layers; ++i) {
    CheckpointLayer& l = state[size_t(i)];
    const TrainLayer& spec = refs[size_t(i)].trainer->layer(refs[size_t(i)].index);
    l.op = spec.op;
    l.node = spec.mode == PerturbMode::kNode;
    l.best_weights.assign(weights_of(i).begin(), weights_of(i).end());
    l.best_biases.assign(biases_of(i).begin(), biases_of(i).end());
  }
  auto best_overrides = [&]() {
    std::vector<ParamOverride> v;
    // Bias-only training keeps no weights: nullptr leaves the model's own.
    for (const CheckpointLayer& l : state)
      v.push_back(
          ParamOverride{l.op, l.best_weights.empty() ? nullptr : l.best_weights.data(), l.best_biases.data()});
    return v;
  };

  Json layers_json = Json::array();
  for (const LayerChoice& l : opt.layers)
    layers_json.push_back({{"op", l.op}, {"name", model.op(l.op).name}, {"mode", l.node ? "NP" : "WP"}});
  auto start_record = [&]() {
    return Json{{"type", "start"},
                {"fingerprint", fingerprint},
                {"config", config_to_json(cfg)},
                {"layers", layers_json},
                {"total_steps", total},
                {"steps_per_epoch", spe},
                {"lr0", eta0},
                {"engine_arena_bytes", res.engine_arena_bytes},
                {"trainer_arena_bytes", res.trainer_arena_bytes}};
  };

  Checkpoint ck;
  ck.fingerprint = fingerprint;
  double train_seconds_before = 0;
  JsonLog log;
  if (opt.resume) {
    const CheckpointHead head = peek_checkpoint(ckpt_path);
    if (head.fingerprint != fingerprint)
      throw CliError(ckpt_path + ": written by a run with other settings or another model (fingerprint " +
                     head.fingerprint + ", this run " + fingerprint +
                     "); use a new --out or the same config");
    // The exact size of this run's checkpoint bounds the read.
    std::vector<CheckpointLayer> shape = state;
    for (size_t i = 0; i < shape.size(); ++i) {
      CheckpointLayer& l = shape[i];
      l.weights = l.best_weights;
      l.biases = l.best_biases;
      l.momentum_w.resize(momentum_w_of(int(i)).size());
      l.momentum_b.resize(momentum_b_of(int(i)).size());
    }
    ck = load_checkpoint(ckpt_path, checkpoint_size_bytes(shape));
    if (ck.fingerprint != fingerprint || ck.layers.size() != state.size() || ck.step > total)
      throw CliError(ckpt_path + ": its layers or step count do not match this run");
    for (int i = 0; i < n_layers; ++i) {
      const CheckpointLayer& c = ck.layers[size_t(i)];
      if (c.op != state[size_t(i)].op || c.node != state[size_t(i)].node ||
          c.weights.size() != weights_of(i).size() || c.biases.size() != biases_of(i).size() ||
          c.momentum_w.size() != momentum_w_of(i).size() || c.momentum_b.size() != momentum_b_of(i).size())
        throw CliError(ckpt_path + ": layer " + std::to_string(i) + " does not match this run");
      if (!c.weights.empty()) std::memcpy(weights_of(i).data(), c.weights.data(), c.weights.size());
      std::memcpy(biases_of(i).data(), c.biases.data(), c.biases.size() * 4);
      if (!c.momentum_w.empty()) std::memcpy(momentum_w_of(i).data(), c.momentum_w.data(), c.momentum_w.size() * 4);
      if (!c.momentum_b.empty()) std::memcpy(momentum_b_of(i).data(), c.momentum_b.data(), c.momentum_b.size() * 4);
      state[size_t(i)].best_weights = c.best_weights;
      state[size_t(i)].best_biases = c.best_biases;
    }
    dir->begin(fingerprint, ck.step, total);
    LogRepair repair;
    log = JsonLog::resume(dir->path("log.jsonl"), ck.log_bytes, &repair);
    if (repair.repaired) {
      res.log_repaired = true;
      if (repair.kept_bytes == 0)
        log.write([&] {
          Json j = start_record();
          j["rebuilt"] = true;
          return j;
        }());
      log.write(Json{{"type", "log_repaired"},
                     {"step", ck.step},
                     {"expected_bytes", repair.expected_bytes},
                     {"found_bytes", repair.found_bytes},
                     {"kept_bytes", repair.kept_bytes},
                     {"note",
                      "the log was shorter than, or differed from, what the checkpoint recorded: records "
                      "before this step may be missing; the checkpoint decides the run's state"}});
      say("log.jsonl was " + std::to_string(repair.found_bytes) + " bytes where the checkpoint recorded " +
          std::to_string(repair.expected_bytes) + ": kept its first " + std::to_string(repair.kept_bytes) +
          " and marked the gap");
    }
    train_seconds_before = ck.elapsed_seconds;
    say("resuming at step " + std::to_string(ck.step) + " of " + std::to_string(total));
    log.write(Json{{"type", "resume"}, {"step", ck.step}});
  } else {
    if (files) {
      // Everything the run needs was accepted: only now is an old run removed.
      if (stop_requested())
        throw CliError("train: interrupted before the run began; " + dir->dir() + " is unchanged");
      if (dir->replaces_dead_run())
        say("replacing the run in " + dir->dir() +
            ": it stopped before its first checkpoint (nothing to resume)");
      dir->remove_old_run();
      dir->begin(fingerprint, 0, total);
      const std::string cfg_text = config_to_json(cfg).dump(2) + "\n";
      write_file_atomic(dir->path("config.json"), cfg_text.data(), cfg_text.size());
      log = JsonLog::create(dir->path("log.jsonl"));
    }
    log.write(start_record());
    say("evaluating the start model on " + std::to_string(data.n_val()) + " val + " + std::to_string(data.n_test()) +
        " test images");
    const auto t0 = Clock::now();
    ck.val_before = eval.accuracy(data.val_inputs.data(), data.input_size, data.val_labels.data(), data.n_val(), {});
    ck.test_before =
        eval.accuracy(data.test_inputs.data(), data.input_size, data.test_labels.data(), data.n_test(), {});
    log.write(Json{{"type", "before"}, {"val_acc", ck.val_before}, {"test_acc", ck.test_before},
                   {"seconds", seconds_since(t0)}});
  }
  res.val_before = ck.val_before;
  res.test_before = ck.test_before;

  auto write_checkpoint = [&](uint32_t steps_done, double train_seconds) {
    if (!files) return;
    ck.step = steps_done;
    ck.log_bytes = log.bytes();
    ck.elapsed_seconds = train_seconds;
    ck.layers = state;
    for (int i = 0; i < n_layers; ++i) {
      ck.layers[size_t(i)].weights.assign(weights_of(i).begin(), weights_of(i).end());
      ck.layers[size_t(i)].biases.assign(biases_of(i).begin(), biases_of(i).end());
      ck.layers[size_t(i)].momentum_w.assign(momentum_w_of(i).begin(), momentum_w_of(i).end());
      ck.layers[size_t(i)].momentum_b.assign(momentum_b_of(i).begin(), momentum_b_of(i).end());
    }
    save_checkpoint(ckpt_path, ck);
  };
  // From here on a stop at any moment can be resumed.
  if (!opt.resume) write_checkpoint(0, 0);

  // ---- the loop
  std::vector<int8_t> input(data.input_size);
  std::vector<uint32_t> order;
  uint32_t order_epoch = UINT32_MAX;
  const auto t_loop = Clock::now();
  double step_seconds_sum = 0;
  uint32_t steps_run = 0;
  uint32_t step = ck.step;
  auto train_seconds = [&]() { return train_seconds_before + seconds_since(t_loop); };
  for (; step < total; ++step) {
    if (opt.stop_after_steps > 0 && step >= opt.stop_after_steps) break;
    if (stop_requested()) {
      res.stopped_by_hook = true;
      break;
    }
    const auto t_step = Clock::now();
    const uint32_t epoch = step / spe, b = step % spe;
    if (epoch != order_epoch) {
      order = epoch_order(n_train, cfg.seed, epoch);
      order_epoch = epoch;
    }
    const float lr = cosine_lr(eta0, int(step), int(total));
    // fw::run_training's order: every begin_step; per pass and sample every
    // trainer still in a pass; every end_step.
    int passes = 1;  // one pass unless --one-layer-per-pass
    for (int g = 0; g < host.n_trainers(); ++g) {
      check_status(host.trainer(g).begin_step(step), "trainer: begin_step");
      passes = std::max(passes, host.trainer(g).n_passes());
    }
    const size_t first = size_t(b) * size_t(cfg.batch), last = std::min(n_train, first + size_t(cfg.batch));
    for (int pass = 0; pass < passes; ++pass) {
      for (int g = 0; g < host.n_trainers(); ++g)
        if (pass > 0 && pass < host.trainer(g).n_passes())
          check_status(host.trainer(g).next_pass(lr), "trainer: next_pass");
      for (size_t k = first; k < last; ++k) {
        const uint32_t image = order[k];
        train_input(data, model, augment, cfg.seed, epoch, image, input.data());
        for (int g = 0; g < host.n_trainers(); ++g) {
          if (pass >= host.trainer(g).n_passes()) continue;
          check_status(host.trainer(g).accumulate_sample(Span<const int8_t>(input.data(), input.size()),
                                                         data.train.labels[image]),
                       "trainer: accumulate_sample");
        }
      }
    }
    for (int g = 0; g < host.n_trainers(); ++g) check_status(host.trainer(g).end_step(lr), "trainer: end_step");
    // The loss is the first trainer's (every trainer's unperturbed forward sees the same weights).
    StepStats st = host.trainer(0).last_step();
    for (int g = 1; g < host.n_trainers(); ++g) {
      st.forward_macs += host.trainer(g).last_step().forward_macs;
      st.weights_changed += host.trainer(g).last_step().weights_changed;
    }
    ck.total_macs += st.forward_macs;
    const double secs = seconds_since(t_step);
    step_seconds_sum += secs;
    ++steps_run;
    res.last_loss = st.mean_loss;
    StepReport rep;
    rep.step = step;
    rep.total_steps = total;
    rep.epoch = epoch;
    rep.epochs = n_epochs;
    rep.loss = st.mean_loss;
    rep.lr = lr;
    rep.macs = st.forward_macs;
    rep.weights_changed = st.weights_changed;
    rep.seconds = secs;
    rep.eta_seconds = step_seconds_sum / steps_run * double(total - step - 1);
    log.write(Json{{"type", "step"},
                   {"step", step},
                   {"epoch", epoch},
                   {"loss", st.mean_loss},
                   {"lr", lr},
                   {"samples", st.n_samples},
                   {"macs", st.forward_macs},
                   {"weights_changed", st.weights_changed},
                   {"seconds", secs},
                   {"elapsed", train_seconds()}});
    if (hooks.on_step) hooks.on_step(rep);

    const bool epoch_end = b + 1 == spe || step + 1 == total;
    if (epoch_end) {
      const auto t_val = Clock::now();
      const double val = eval.accuracy(data.val_inputs.data(), data.input_size, data.val_labels.data(), data.n_val(),
                                       host.overrides());
      // Strictly better only: the earliest epoch wins a tie.
      if (val > ck.best_val) {
        ck.best_val = val;
        ck.best_epoch = int32_t(epoch + 1);
        for (int i = 0; i < n_layers; ++i) {
          state[size_t(i)].best_weights.assign(weights_of(i).begin(), weights_of(i).end());
          state[size_t(i)].best_biases.assign(biases_of(i).begin(), biases_of(i).end());
        }
      }
      EpochReport er;
      er.epoch = epoch + 1;
      er.epochs = n_epochs;
      er.step = step + 1;
      er.val_acc = val;
      er.best_val = ck.best_val;
      er.best_epoch = ck.best_epoch;
      er.seconds = seconds_since(t_val);
      log.write(Json{{"type", "epoch"},
                     {"epoch", er.epoch},
                     {"step", er.step},
                     {"val_acc", val},
                     {"best_val", ck.best_val},
                     {"best_epoch", ck.best_epoch},
                     {"seconds", er.seconds},
                     {"elapsed", train_seconds()}});
      if (hooks.on_epoch) hooks.on_epoch(er);
    }
    if (epoch_end || (opt.checkpoint_every > 0 && (step + 1) % opt.checkpoint_every == 0))
      write_checkpoint(step + 1, train_seconds());
  }
  res.steps_done = step;
  res.train_seconds = train_seconds();
  res.mean_step_seconds = steps_run ? step_seconds_sum / steps_run : 0;
  res.total_macs = ck.total_macs;
  res.macs_per_step = step ? ck.total_macs / step : 0;
  res.best_val = ck.best_val;
  res.best_epoch = ck.best_epoch;
  res.finished = step >= total;

  // best.tzm: the best-validation weights (so far, when stopped early; the
  // start weights before the first epoch ends).
  auto export_best = [&]() {
    std::map<int, std::vector<uint8_t>> blobs;
    for (const CheckpointLayer& l : state) {
      const TzmOp& op = model.op(l.op);
      if (!l.best_weights.empty())  // bias-only training leaves the weights as they are
        blobs[op.inputs[1]].assign(
          reinterpret_cast<const uint8_t*>(l.best_weights.data()),
            reinterpret_cast<const uint8_t*>(l.best_weights.data()) + l.best_weights.size());
      blobs[op.inputs[2]].assign(
          reinterpret_cast<const uint8_t*>(l.best_biases.data()),
          reinterpret_cast<const uint8_t*>(l.best_biases.data()) + l.best_biases.size() * 4);
    }
    const std::vector<uint8_t> bytes = rewrite_with_constants(model, blobs);
    res.best_model_path = dir->path("best.tzm");
    write_file_atomic(res.best_model_path, bytes.data(), bytes.size());
  };
  if (!res.finished) {
    write_checkpoint(step, res.train_seconds);
    if (files) export_best();
  } else {
    say("testing the best-validation weights (epoch " + std::to_string(ck.best_epoch) + ") on " +
        std::to_string(data.n_test()) + " test images");
    res.test_after = eval.accuracy(data.test_inputs.data(), data.input_size, data.test_labels.data(), data.n_test(),
                                   best_overrides());
    if (files) export_best();
  }
  // Current and best weights for the caller.
  res.layers = state;
  for (int i = 0; i < n_layers; ++i) {
    res.layers[size_t(i)].weights.assign(weights_of(i).begin(), weights_of(i).end());
    res.layers[size_t(i)].biases.assign(biases_of(i).begin(), biases_of(i).end());
  }
  res.wall_seconds = seconds_since(t_start);
  Json summary{{"type", "summary"},
               {"finished", res.finished},
               {"steps", res.steps_done},
               {"total_steps", res.total_steps},
               {"val_before", res.val_before},
               {"test_before", res.test_before},
               {"best_val", res.best_val},
               {"best_epoch", res.best_epoch}};
  // The test split is measured only at the end (a stop does not spend it).
  if (res.finished) summary["test_after"] = res.test_after;
  summary["train_seconds"] = res.train_seconds;
  summary["mean_step_seconds"] = res.mean_step_seconds;
  summary["engine_arena_bytes"] = res.engine_arena_bytes;
  summary["trainer_arena_bytes"] = res.trainer_arena_bytes;
  summary["predicted_inference_bytes"] = res.predicted.inference_bytes;
  summary["predicted_zo_extra_bytes"] = res.predicted.zo_extra_bytes;
  summary["macs_per_step"] = res.macs_per_step;
  summary["full_rerun_macs_per_step"] = res.full_rerun_macs_per_step;
  summary["total_macs"] = res.total_macs;
  if (res.finished) log.write(summary);
  if (files) {
    const std::string text = summary.dump(2) + "\n";
    write_file_atomic(dir->path("summary.json"), text.data(), text.size());
    dir->set_state(res.finished ? RunDirectory::State::kFinished : RunDirectory::State::kStopped, step);
  }
  if (!res.finished) log.write(Json{{"type", "stopped"}, {"step", step}});
  return res;
}

}  // namespace tinyzo
