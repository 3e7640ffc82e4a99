// The quantized zeroth-order trainer (METHOD §3): weight perturbation (WP) and
// node perturbation (NP) in integer LSBs, layer-wise estimation with prefix
// reuse or model-wise estimation, gradient-norm scaling, and the QAS integer
// update. Device-safe: every buffer comes from the caller's Arena; samples are
// streamed one at a time, so memory does not grow with the batch.
//
// One training step:
//   begin_step(step);
//   for each sample of the batch: accumulate_sample(input, label);
//   end_step(lr);      // estimates every layer's gradient, then updates all
// With ZoConfig::one_layer_per_pass the batch is streamed n_passes() times,
// one trained layer per pass, with next_pass(lr) between passes: the same
// weights bit for bit, in less memory (one NP accumulator instead of one per
// NP layer).
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/kernels/params.h"
#include "tinyzo/span.h"
#include "tinyzo/status.h"
#include "tinyzo/train/rng.h"

namespace tinyzo {

enum class PerturbMode : uint8_t { kWeight = 0, kNode = 1 };
enum class Estimation : uint8_t { kLayerWise = 0, kModelWise = 1 };
enum class GnsMode : uint8_t { kNone = 0, kLinear = 1, kSqrt = 2 };
enum class Rounding : uint8_t { kNearest = 0, kStochastic = 1 };
// A control variate for the per-query loss differences (docs/zo-search.md).
// kMean: each query's difference d_q has the mean of the other queries'
// differences subtracted, d_q - (sum_k d_k - d_q) / (n - 1), before it
// weights u_q. The baseline is independent of u_q, so the estimate stays
// unbiased; it removes the part of d_q that does not depend on the direction
// (the curvature term sigma^2 u^T H u / 2 ~ sigma^2 tr(H) / 2 of a one-sided
// difference, and the rounding noise common to all queries), which otherwise
// adds |offset| sqrt(n) of noise to every coordinate. No memory: it works on
// the Q coefficients the estimator keeps anyway. Needs n >= 2 (n = 1 leaves
// the difference as it is).
enum class Baseline : uint8_t { kNone = 0, kMean = 1 };
// Per-layer step normalisation (docs/results.md, dense training). kLayer:
// every layer's step is multiplied by ||W_int|| / ||g'||, where g' is the
// step direction of its weights in the units the update applies it in (LSBs
// after QAS), so each layer moves lr * ||W_int|| per step whatever the scale
// of its gradient (LARS). The bias step uses the same factor. The relative
// step of the gradient differs by 1000x between MCUNet's layers, so one
// learning rate for all 42 either blows up the early layers or leaves the deep
// ones in place. Two float sums and one square root per layer and step, no
// memory. kNone: the paper.
enum class StepNorm : uint8_t { kNone = 0, kLayer = 1 };

struct ZoConfig {
  int n_queries_w = 25;   // WP queries for a weight tensor
  int n_queries_b = 25;   // WP queries for a bias tensor
  int n_queries_np = 50;  // NP queries per layer
  int sigma_w_lsb = 1;    // WP weight perturbation size (int8 LSBs)
  int sigma_b_lsb = 100;  // WP bias perturbation size (int32 LSBs)
  int mu_lsb = 5;         // NP output perturbation size (int8 LSBs), 1..127
  bool two_sided = false; // antithetic (L+ - L-) / 2 sigma instead of (L+ - L0) / sigma
  GnsMode gns = GnsMode::kLinear;
  Rounding rounding = Rounding::kNearest;
  Estimation estimation = Estimation::kLayerWise;
  bool update_bias = true;
  // Quantization-aware scaling (METHOD §3.6): the step on W_int is lr * g /
  // s_w^2 (b_int: lr * g / (s_x s_w)^2). Off, the step is lr * g in integer
  // units, which rounds to zero almost everywhere (the paper's ablation).
  bool qas = true;
  // Control variate of the loss differences (kMean: leave-one-out mean of the
  // other queries). Layer-wise estimation, or model-wise with WP layers only
  // (model-wise NP folds each query into G as it goes: init() returns
  // kUnsupported).
  Baseline baseline = Baseline::kNone;
  // Per-layer learning rates by perturbation mode: the step of a WP layer
  // uses lr * lr_scale_wp, of an NP layer lr * lr_scale_np. Gradient-norm
  // scaling shrinks the two kinds very differently (WP: n / (n + d_w - 1) with
  // n = Q, about 1 / 600 for the paper's WP layers at Q = 5; NP: n = B Q,
  // about 1 / 6), so one learning rate cannot suit both. 1 = the paper.
  float lr_scale_wp = 1.f;
  float lr_scale_np = 1.f;
  // Momentum of the gradient estimate, beta in [0, 1): every trained
  // parameter keeps m = beta m + (1 - beta) g (float32, 4 bytes per weight and
  // bias: the update's only state across steps), and the step uses
  // m / (1 - beta^(t+1)) (bias-corrected: the first step is the paper's).
  // Averaging over about (1 + beta) / (1 - beta) steps cuts the variance of a
  // zeroth-order estimate, which the per-step queries alone do not. 0 = off
  // (the paper, bit for bit, no memory).
  float momentum = 0.f;
  StepNorm step_norm = StepNorm::kNone;
  uint64_t seed = 0;
  // Layer-wise: put the per-layer workspace (boundary cache, perturbed copy,
  // query losses or NP coefficients) into a gap of the engine's activations
  // when the plan has one (docs/memory.md §2), so it costs no arena. false
  // keeps it in the trainer's arena (the same weights, bit for bit; for
  // callers that run other forwards on the engine in the middle of a sample).
  bool workspace_in_activations = true;
  // Layer-wise: estimate one trained layer per pass over the batch (the
  // caller streams the batch n_passes() times, calling next_pass(lr) between
  // passes). Every layer is still estimated at the step's starting weights and
  // updated at once (the same weights as one pass, bit for bit: the RNG keys
  // depend on the sample's index in the batch, not on the pass), but the NP
  // layers share one float32 dW/db accumulator: an NP layer's update is
  // computed when its pass ends and kept as int8 weights / int32 biases until
  // end_step (the last NP layer's straight from the accumulator). Costs one
  // prefix forward per sample and layer instead of one per sample, plus one
  // unperturbed suffix per sample for NP layers after the first pass.
  bool one_layer_per_pass = false;
  // Train the biases of the layers only (ZO BitFit; docs/zo-search.md),
  // model-wise: per sample and query, every layer's bias b[o] moves by
  // u[o] * delta[o] with u Rademacher, independent per sample (the key hashes
  // the sample, as NP's does), and delta[o] = round(mu / gain[o])
  // accumulator LSBs (mu = bias_mu, or mu_lsb when it is 0), gain[o] = d y /
  // d acc of the channel, so every channel of every layer is shifted by about
  // mu output LSBs. One forward of the
  // whole network per query (n_queries_b queries per sample), per-sample loss
  // differences, dL/db[o] ~ sum over samples and queries of
  // (L_q - L_0) u[o] / delta[o] / (B Q), gradient-norm scaled with n = B Q and
  // d = all perturbed biases. The weights stay in flash (no SRAM copy);
  // weights(i) is empty. Needs Estimation::kModelWise and StepNorm::kNone
  // (init: kUnsupported). The perturbation is added to the trainable biases
  // in place and taken off again after the query's forward, exactly: the
  // biases are kept within +-ZoTrainer::kBiasOnlyLimit (the update clamps to
  // it; a model bias outside it, such as a dead channel's INT32_MIN, is
  // frozen: never perturbed, never updated, not counted in d) and delta <= 2^24.
  // Memory: per layer the trainable biases and a float accumulator (8 bytes
  // per bias), plus the Q coefficients of a sample. Its layers may lie inside
  // an engine's fused blocks (the bands read the biases through the engine's
  // overrides; every other mode needs its layers unfused).
  bool bias_only = false;
  // bias_only: the channel shift in output LSBs, fractions allowed (0 = use
  // mu_lsb). Every channel of every layer moves at once, so the network
  // reacts far less linearly than to NP's per-node shifts: 0.25 LSB learned
  // where 1 did not (docs/zo-search.md, stage 4).
  float bias_mu = 0.f;
  // Decay towards the start model, lambda in [0, 1]: every update also pulls
  // each trained weight and bias lambda of the way back to the value it has in
  // the model the engine runs (flash on the device: no memory), decoupled from
  // the estimate (not averaged by momentum, not scaled by step_norm or the
  // per-mode rates): w' = w - round(step + lambda (w - w0)). Most of a
  // zeroth-order step is noise; over hundreds of steps it random-walks the
  // weights away from the pretrained ones (the paper's NP layers end about 7
  // LSBs rms from where they started), which the decay bounds at about
  // sqrt(changes per step / (2 lambda)) LSBs while the gradient's signal keeps
  // its direction (L2-SP's regulariser, with the integer update's rounding).
  // 0 = off (the paper, bit for bit).
  float anchor = 0.f;
};

// The configuration of the second trainer of a plus-biases run (`tinyzo
// train --plus-biases Q`, the firmware's plus_biases=Q; docs/zo-search.md,
// stage 6): the biases of every conv the first trainer leaves out, bias-only
// and model-wise with `n_queries` queries per sample. It shares base's shift
// (mu_lsb, bias_mu), sidedness, GNS, rounding, QAS, baseline and seed (the
// perturbation keys hash the op, so the two trainers' perturbations are
// independent); everything else is ZoConfig's default.
ZoConfig plus_bias_config(const ZoConfig& base, int n_queries);

// The exact backward inside one conv layer (METHOD §3.2), used by NP:
// delta[pos, o] = node_grad[pos, o] * mask[pos, o] * mult[o] / y_scale (the
// gradient of the int32 accumulator; for TFLite's fixed-point rule, p.fx_*
// set and mult unused, the gain M[o] * 2^(shift[o] - 31) replaces mult / y_scale), grad_b[o] += sum delta, grad_w[o, ky,
// kx, c] += sum delta * (x - x_zero). Accumulates into grad_w / grad_b.
void conv_local_gradient(const ConvParams& p, const int8_t* x, const float* node_grad, const int8_t* mask,
                         const float* mult, float* grad_w, float* grad_b);
// The same for the flat output elements [begin, end) only; node_grad and mask
// hold end - begin entries for them.
void conv_local_gradient_range(const ConvParams& p, const int8_t* x, const float* node_grad, const int8_t* mask,
                               const float* mult, size_t begin, size_t end, float* grad_w, float* grad_b);

struct TrainLayer {
  int op = -1;                             // a Conv2d op of the model
  PerturbMode mode = PerturbMode::kWeight;
};

// The layers of a plus-biases run's second trainer (plus_bias_config): every Conv2d of `model` not in
// `taken`, in op order, as weight-mode entries (bias-only training ignores the mode), written to
// out[0..capacity). Returns how many there are, or -1 when they do not fit `capacity`. Host (`tinyzo train`,
// `tinyzo plan`, `tinyzo fw`) and firmware both call this, so they train the same set.
int plus_bias_layers(const ModelView& model, Span<const TrainLayer> taken, TrainLayer* out, int capacity);

// Statistics of the last finished step.
struct StepStats {
  float mean_loss = 0.f;     // batch-mean unperturbed loss L0
  int n_samples = 0;
  uint64_t forward_macs = 0; // MACs the step's forward passes ran
  int weights_changed = 0;   // integer parameters the update moved
};

class ZoTrainer {
 public:
  static constexpr int kMaxLayers = 256;  // a sanity bound: the layer table is in the arena
  static constexpr int kMaxQueries = 256;  // per tensor (WP) or layer (NP)
  static constexpr int32_t kBiasOnlyLimit = 1 << 30;  // ZoConfig::bias_only: |b| stays within it

  // Takes the trainable copies (int8 weights, int32 biases) and all buffers
  // from `arena` and points the engine at the copies. `layers` must be Conv2d
  // ops; they are sorted by op index. kOutOfMemory if the arena is too small.
  Status init(Engine& engine, Span<const TrainLayer> layers, const ZoConfig& config, Arena& arena);

  // Bytes an arena must have for init() to succeed (measured by a trial init
  // in `scratch`, which is left as it was): arena_bytes(), or more when the
  // workspace search's temporary tables (one record per tensor, released
  // before init returns) rise above what a set of small layers keeps.
  static Status required_arena_bytes(Engine& engine, Span<const TrainLayer> layers, const ZoConfig& config,
                                     Arena& scratch, size_t* bytes);

  // Host-side parallelism and batching (a device never calls this). `engines`
  // are the query workers: engines over the same model, each with its own
  // arena, all with the same batch N <= kMaxBatch (Engine::init's batch).
  // `parallel_for` runs task(arg, worker, index) for index in [0, n) on
  // workers 0 .. engines.size() - 1, each worker one task at a time. The
  // queries of one layer are cut into blocks of N; a block runs on one
  // worker's engine as N items: the perturbed layer per item, the suffix for
  // all N at once. Every task writes its own result slots and the sums are
  // folded in query order, so the weights are bitwise the same for any number
  // of workers and any N. The trainer's own engine then runs only the prefix
  // and the unperturbed passes. Layer-wise estimation only (kUnsupported for
  // model-wise). Call after init(); takes N perturbation buffers per worker
  // from `arena`.
  using ParallelFor = void (*)(void* ctx, int n, void (*task)(void* arg, int worker, int index), void* arg);
  static constexpr int kMaxWorkers = 16;
  static constexpr int kMaxBatch = 64;
  Status set_workers(Span<Engine* const> engines, Arena& arena, ParallelFor parallel_for, void* ctx);

  Status begin_step(uint32_t step);
  // Runs the unperturbed and perturbed forwards of one sample and accumulates
  // what the estimator needs. `input` holds the model input's element count;
  // model-wise estimation copies it into the engine's input before every
  // query, so it must stay valid until the call returns.
  Status accumulate_sample(Span<const int8_t> input, int label);
  // A sample the trainer can ask for again. Model-wise estimation runs the
  // whole network once per query and the engine reuses its input tensor's
  // memory during a forward, so before every query the input must be written
  // again: read(context, input) writes the same bytes into `input` (the
  // engine's input tensor) as the first time, e.g. by reading the sample
  // again from the storage it came from. Then no copy of the sample exists
  // in SRAM (48 KB at 128x128x3). Layer-wise estimation never calls it.
  struct SampleReader {
    Status (*read)(void* context, Span<int8_t> input) = nullptr;
    void* context = nullptr;
  };
  // The same as accumulate_sample(input, label) for the sample that the
  // engine's input tensor holds now; `reader` writes it again when needed.
  Status accumulate_sample(const SampleReader& reader, int label);
  // Finishes the estimate of every layer and applies the integer update with
  // learning rate `lr` (METHOD §3.6).
  Status end_step(float lr);
  const StepStats& last_step() const { return stats_; }
  // Passes over the batch per step: n_layers() with one_layer_per_pass, else 1.
  int n_passes() const { return config_.one_layer_per_pass ? n_layers_ : 1; }
  // Ends the current pass (every pass must see the same number of samples)
  // and starts the next; `lr` is the step's learning rate, which an NP
  // layer's update needs now (end_step must get the same). kInvalidArgument
  // after the last pass or without one_layer_per_pass.
  Status next_pass(float lr);

  // The gradient estimate of layer i from the samples accumulated since
  // begin_step (dL/dW_int and dL/db_int per LSB, GNS applied): what end_step
  // would apply. grad_w holds weights(i).size() floats, grad_b biases(i).size().
  Status gradient(int i, Span<float> grad_w, Span<float> grad_b) const;
  // Node gradient G of NP layer i for the last accumulated sample, per LSB of
  // the layer output, summed over queries (not yet divided by Q), regenerated
  // from the kept per-query coefficients into `out` (the output's element
  // count). Layer-wise estimation only: the coefficients sit in the shared
  // workspace, which every later layer reuses, so i must be the last layer,
  // and the workspace may lie in the engine's activations, so call it before
  // any other forward on the engine (loss(), an evaluation).
  Status node_gradient(int i, Span<float> out) const;

  // Loss of one sample with the current weights (one forward). `input` may be
  // the engine's input tensor itself.
  Status loss(Span<const int8_t> input, int label, float* loss_out, int* predicted = nullptr);

  // What init() takes, for the memory model (docs/memory.md §2), which
  // accounts for the trainer byte for byte: the layer table has one record
  // of layer_record_bytes() per layer; layer-wise estimation keeps one
  // workspace of the largest workspace_bytes_for() over the layers, where
  // `boundary_bytes` is Engine::boundary_size_bytes(op) (the boundary cache,
  // then WP: the perturbed copy and the query losses, NP: the sample's Q
  // coefficients, each rounded up to 16 bytes). The workspace goes into a
  // gap of the engine's activations when zo_workspace_gap() finds one (then
  // it takes no arena), else into the arena. Its contents live for one
  // layer of one sample: any other forward on the engine (loss(), a full
  // invoke) may overwrite them.
  static size_t layer_record_bytes();
  static size_t workspace_bytes_for(size_t boundary_bytes, PerturbMode mode, size_t d_w, size_t c_out,
                                    const ZoConfig& config);

  int n_layers() const { return n_layers_; }
  const TrainLayer& layer(int i) const { return layers_[i].spec; }
  // The trainable copies of layer i (what the engine runs with).
  Span<int8_t> weights(int i) const { return Span<int8_t>(layers_[i].w, layers_[i].w ? layers_[i].d_w : 0); }
  Span<int32_t> biases(int i) const { return Span<int32_t>(layers_[i].b, layers_[i].c_out); }
  // The momentum buffers of layer i (ZoConfig::momentum > 0; empty spans
  // otherwise, and the bias one also without update_bias): training state a
  // checkpoint must keep for a bit-identical resume.
  Span<float> momentum_w(int i) const {
    return Span<float>(layers_[i].mom_w, layers_[i].mom_w ? layers_[i].d_w : 0);
  }
  Span<float> momentum_b(int i) const {
    return Span<float>(layers_[i].mom_b, layers_[i].mom_b ? size_t(layers_[i].c_out) : 0);
  }
  // 1 / (1 - beta^(step + 1)): the bias correction of momentum at 0-based step `step`.
  static float momentum_correction(float beta, uint32_t step);
  size_t arena_bytes() const { return arena_bytes_; }

  // Gradient-norm scaling factor for n queries in d dimensions (METHOD §3.3).
  static float gns_factor(GnsMode mode, float n, float d);
  // The integer step of the QAS update: rounds `step` to an integer with the
  // configured rounding (`u` in [0,1) is the stochastic-rounding draw).
  static int64_t round_step(float step, Rounding r, float u);
  // The step of one weight before rounding: lr g / s_w^2 with QAS (dL/dW_int maps to W_int by
  // 1 / s_w^2), lr g without.
  static float weight_step(float lr, float g, bool qas, float s_w);
  // The step of one bias before rounding: lr g / (s_x s_w)^2 with QAS, lr g without.
  static float bias_step(float lr, float g, bool qas, float s_x, float s_w);
  // The update of one weight, clamp(w - R(step), -128, 127), and of one bias, clamped to int32
  // instead of wrapping (ZoConfig::anchor adds its pull lambda (p - p0) to the step first).
  static int8_t updated_weight(int8_t w, float step, Rounding r, float u);
  static int32_t updated_bias(int32_t b, float step, Rounding r, float u);

 private:
  // 16-aligned, so the table is a whole number of the arena's 16-byte units.
  struct alignas(16) Layer {
    TrainLayer spec;
    int x_tensor = -1, y_tensor = -1;
    size_t d_w = 0;              // weight elements
    int c_out = 0;
    size_t x_size = 0, y_size = 0;  // layer input / output elements
    int8_t* w = nullptr;         // trainable copies (SRAM)
    int32_t* b = nullptr;
    const float* s_w = nullptr;  // per-channel weight scales (flash)
    const float* mult = nullptr; // per-channel f32(s_x * s_w)
    float s_x = 0.f, s_y = 0.f;
    int32_t z_x = 0, act_min = -128, act_max = 127;
    // WP: per query, the batch sum of L(P + sigma u_q) (then of L(P - sigma u_q) when two-sided).
    float* sum_lw = nullptr;
    float* sum_lb = nullptr;
    int8_t* pert_w = nullptr;    // model-wise WP: a perturbed weight copy (layer-wise: in the workspace)
    int32_t* pert_b = nullptr;
    // NP buffers (shared between layers in layer-wise mode).
    int8_t* x_cache = nullptr;   // the layer input of the current sample
    int8_t* offsets = nullptr;   // mu * m * u of one query
    int8_t* mask = nullptr;      // 1 where the output was not saturated
    float* node_grad = nullptr;  // G of the current sample
    float* grad_w = nullptr;     // accumulated dL/dW_int over the batch
    float* grad_b = nullptr;     // accumulated dL/db_int
    uint64_t unmasked = 0;       // unmasked output nodes summed over the batch
    // one_layer_per_pass, an NP layer other than the last: its updated
    // parameters, computed when its pass ends, written at end_step.
    int8_t* next_w = nullptr;
    int32_t* next_b = nullptr;
    // ZoConfig::momentum > 0: the running average of the estimate (d_w and c_out floats).
    float* mom_w = nullptr;
    float* mom_b = nullptr;
  };

  Status allocate(Arena& arena);
  void bind_workspace(int li);
  int8_t* workspace_in_engine(Arena& arena, size_t bytes);
  Status forward_loss(int first_op, int label, float* loss_out, int* predicted);
  Status layer_wise_sample(int label);
  Status model_wise_sample(int label);
  Status bias_sample(int label);
  Status sample_dispatch(int label);
  // Writes the sample into the engine's input again (model-wise, per query).
  Status rewrite_input();
  // ZoConfig::bias_only: moves the biases from perturbation (q_from, s_from) of the current sample to
  // (q_to, s_to); a sign of 0 is no perturbation.
  void move_bias_perturbation(int q_from, int s_from, int q_to, int s_to);
  // ZoConfig::bias_only: the perturbation steps of channels [base, base + len) of layer l
  // (len <= 64), in int32 LSBs, into delta; 0 for a frozen bias (b0: the model's biases).
  void bias_deltas(const Layer& l, const ConvParams& p, const int32_t* b0, size_t base, size_t len,
                   int32_t* delta) const;
  Status wp_queries(Layer& l, int li, int label, float l0);
  Status np_queries(Layer& l, int li, int label, float l0);
  void prepare_mask(Layer& l);
  void write_offsets(Layer& l, int li, int q, int sign);
  void np_accumulate(Layer& l, int li, int q, float coef);
  void np_local_gradient(Layer& l);
  void np_local_gradient_regenerated(Layer& l, int li, const int8_t* x, const int8_t* y);
  void write_perturbed_weights(const Layer& l, int li, int q, int sign, int8_t* out) const;
  void write_perturbed_bias(const Layer& l, int li, int q, int sign, int32_t* out) const;
  struct QueryBatch {
    int layer = 0;
    int label = 0;
    bool bias = false;  // WP: perturbing the bias (else the weights)
    float l0 = 0.f;     // NP one-sided: the unperturbed loss
    int side = 0;       // NP: 0 = +mu, 1 = -mu
    int n = 0;          // tasks in this batch (set by run_tasks)
    int block = 1;      // tasks per block (set by run_tasks)
  };
  struct Block {
    Engine* e = nullptr;
    int8_t* pert = nullptr;  // per item: pert_bytes_ bytes
    int begin = 0, end = 0;  // task indices; item k runs task begin + k
  };
  Block block(int worker, int index) const;
  static void wp_task(void* arg, int worker, int index);
  static void np_task(void* arg, int worker, int q);
  Status run_tasks(void (*task)(void*, int, int), int n);
  Status& task_status(int worker) { return pool_ ? pool_->status[worker] : task_status0_; }
  uint64_t key(int li, RngStream s, int q, uint32_t sample) const;
  // Writes layer li's updated parameters to w_out / b_out (which may be l.w /
  // l.b themselves); returns how many changed.
  int apply_update(Layer& l, int li, float lr, int8_t* w_out, int32_t* b_out);
  // StepNorm::kLayer's factor ||W_int|| / ||g'|| of layer li (0 for a zero or
  // non-finite gradient sum); beta / corr as in apply_update's momentum.
  float step_norm_factor(const Layer& l, int li, float beta, float corr) const;
  // Applies config_.baseline to n coefficients in place.
  void apply_baseline(float* coef, int n) const;
  template <class FW, class FB>
  void for_each_gradient(const Layer& l, int li, FW&& fw, FB&& fb) const;

  Engine* engine_ = nullptr;
  ZoConfig config_;
  Layer* layers_ = nullptr;  // n_layers_ entries, from the arena
  int n_layers_ = 0;
  // Layer-wise: one workspace for the layer being estimated (bind_workspace):
  int8_t* workspace_ = nullptr;
  int8_t* boundary_ = nullptr;   // its cached input boundary (at the workspace's start)
  float* np_coef_ = nullptr;     // NP: the Q loss-difference coefficients of one sample
  float* bias_coef_ = nullptr;   // bias_only: the same for the sample's bias queries
  uint64_t bias_dims_ = 0;       // bias_only: biases perturbed together (GNS's d; frozen ones left out)
  size_t boundary_bytes_ = 0;
  size_t arena_bytes_ = 0;
  size_t required_bytes_ = 0;    // arena_bytes_, or more when init's scratch rose above it
  size_t init_high_ = 0;         // highest arena use during init (absolute)
  uint32_t step_ = 0;
  uint32_t sample_ = 0;          // index of the sample within the step (within the pass)
  int pass_ = 0;                 // one_layer_per_pass: the layer being estimated
  uint32_t pass_samples_ = 0;    // samples of the first pass (every pass must see as many)
  int changed_early_ = 0;        // parameters changed by updates computed before end_step
  float sum_l0_ = 0.f;           // batch sum of the unperturbed loss
  StepStats stats_;
  uint64_t macs_ = 0;
  Span<const int8_t> input_;     // the sample being accumulated (valid during accumulate_sample)
  SampleReader reader_;          // or where to read it again (read == nullptr: copy input_)
  // Query workers (host only, layer-wise), taken from the arena by
  // set_workers. Without them every query runs on engine_ with the shared
  // perturbation buffer; a device never pays for more than this pointer.
  struct WorkerPool {
    Engine* engines[kMaxWorkers] = {};
    int8_t* pert[kMaxWorkers] = {};     // per worker: batch perturbation buffers
    Status status[kMaxWorkers] = {};
    int n = 0;                          // workers
    int batch = 1;                      // items per engine = tasks per block
    ParallelFor parallel_for = nullptr;
    void* ctx = nullptr;
  };
  WorkerPool* pool_ = nullptr;
  int8_t* shared_pert_ = nullptr;
  Status task_status0_ = Status::kOk;  // worker 0's task status without a pool
  QueryBatch batch_;
  float* results_ = nullptr;     // WP: one loss per (query, side) of the current batch of tasks
  size_t pert_bytes_ = 0;
};

}  // namespace tinyzo
