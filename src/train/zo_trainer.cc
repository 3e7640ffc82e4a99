#include "tinyzo/train/zo_trainer.h"

#include <cstring>
#include <new>

#include "tinyzo/kernels/requant.h"
#include "tinyzo/fusion.h"
#include "tinyzo/planner.h"
#include "tinyzo/train/memory_model.h"
#include "tinyzo/train/fmath.h"
#include "tinyzo/train/perturb.h"
#include "tinyzo/train/rng.h"

namespace tinyzo {
namespace {

constexpr float kMaxStep = 1099511627776.f;  // 2^40: saturates absurd steps before int64 conversion

int8_t clamp_s8(int32_t v) { return static_cast<int8_t>(clamp_i32(v, -128, 127)); }
int32_t clamp_s32(int64_t v) {
  return static_cast<int32_t>(v < INT32_MIN ? INT32_MIN : (v > INT32_MAX ? INT32_MAX : v));
}
size_t align16(size_t n) { return (n + 15) & ~size_t(15); }

// floor() without libm.
float floor_f(float v) {
  if (!(v < 8388608.f && v > -8388608.f)) return v;  // already integral (or NaN)
  const float t = static_cast<float>(static_cast<int32_t>(v));
  return t > v ? t - 1.f : t;
}

// Momentum's running average m' = beta m + (1 - beta) g: one expression, so apply_update's step and
// step_norm_factor's norm of it agree bit for bit.
float momentum_average(float beta, float m, float g) { return beta * m + (1.f - beta) * g; }

// ZoConfig::bias_only: a model bias outside +-kBiasOnlyLimit (e.g. the INT32_MIN of a dead
// channel) is frozen: never perturbed or updated. The test reads the model's own bias, which the
// trainable copy of a frozen one always equals, so it holds for the whole run.
bool bias_frozen(int32_t b0) { return b0 > ZoTrainer::kBiasOnlyLimit || b0 < -ZoTrainer::kBiasOnlyLimit; }

}  // namespace

float ZoTrainer::gns_factor(GnsMode mode, float n, float d) {
  if (mode == GnsMode::kNone || n <= 0.f) return 1.f;
  const float c = n / (n + d - 1.f);  // minimizes E|c g_hat - g|^2 (METHOD §3.3)
  return mode == GnsMode::kSqrt ? tz_sqrtf(c) : c;
}

int64_t ZoTrainer::round_step(float step, Rounding r, float u) {
  if (step != step) return 0;
  if (step > kMaxStep) step = kMaxStep;
  if (step < -kMaxStep) step = -kMaxStep;
  if (r == Rounding::kNearest) {
    // round half to even on the full range (round_half_even saturates at 2^30).
    if (step < 1073741824.f && step > -1073741824.f) return round_half_even(step);
    return static_cast<int64_t>(step);  // |step| >= 2^30 is already an integer
  }
  if (!(step < 8388608.f && step > -8388608.f)) return static_cast<int64_t>(step);
  const float fl = floor_f(step);
  return static_cast<int64_t>(fl) + (u < step - fl ? 1 : 0);
}

ZoConfig plus_bias_config(const ZoConfig& base, int n_queries) {
  ZoConfig z;
  z.n_queries_b = n_queries;
  z.mu_lsb = base.mu_lsb;
  z.bias_mu = base.bias_mu;
  z.two_sided = base.two_sided;
  z.gns = base.gns;
  z.rounding = base.rounding;
  z.qas = base.qas;
  z.baseline = base.baseline;
  z.estimation = Estimation::kModelWise;
  z.bias_only = true;
  z.update_bias = true;
  z.anchor = base.anchor;
  z.seed = base.seed;
  return z;
}

int plus_bias_layers(const ModelView& model, Span<const TrainLayer> taken, TrainLayer* out, int capacity) {
  int n = 0;
  for (int op = 0; op < model.n_ops(); ++op) {
    if (static_cast<OpType>(model.op(op).type) != OpType::kConv2d) continue;
    bool is_taken = false;
    for (size_t i = 0; i < taken.size(); ++i) is_taken = is_taken || taken[i].op == op;
    if (is_taken) continue;
    if (n == capacity) return -1;
    out[n].op = op;
    out[n].mode = PerturbMode::kWeight;
    ++n;
  }
  return n;
}

uint64_t ZoTrainer::key(int li, RngStream s, int q, uint32_t sample) const {
  PerturbKey k;
  k.seed = config_.seed;
  k.step = step_;
  k.layer = static_cast<uint32_t>(layers_[li].spec.op);
  k.stream = s;
  k.query = static_cast<uint32_t>(q);
  k.sample = sample;
  return key_hash(k);
}

Status ZoTrainer::required_arena_bytes(Engine& engine, Span<const TrainLayer> layers, const ZoConfig& config,
                                       Arena& scratch, size_t* bytes) {
  const size_t mark = scratch.mark();
  ZoTrainer probe;
  const Status s = probe.init(engine, layers, config, scratch);
  *bytes = s == Status::kOk ? probe.required_bytes_ : 0;
  // Leave the engine pointing at the model's own tensors again.
  for (int i = 0; i < probe.n_layers_; ++i) {
    (void)engine.set_param_override(probe.layers_[i].spec.op, 1, nullptr);
    (void)engine.set_param_override(probe.layers_[i].spec.op, 2, nullptr);
  }
  scratch.reset_to(mark);
  return s;
}

Status ZoTrainer::init(Engine& engine, Span<const TrainLayer> layers, const ZoConfig& config, Arena& arena) {
  const ModelView& m = engine.model();
  if (layers.empty() || layers.size() > size_t(kMaxLayers) || engine.batch() != 1) return Status::kInvalidArgument;
  if (config.n_queries_w < 1 || config.n_queries_w > kMaxQueries || config.n_queries_b > kMaxQueries || config.n_queries_b < 1 || config.n_queries_np < 1 || config.sigma_w_lsb < 1 ||
      config.sigma_w_lsb > 127 || config.sigma_b_lsb < 1 || config.mu_lsb < 1 || config.mu_lsb > 127)
    return Status::kInvalidArgument;
  // Learning-rate multipliers: finite and non-negative (the comparisons are false for NaN).
  if (!(config.lr_scale_wp >= 0.f && config.lr_scale_wp <= 1e6f) ||
      !(config.lr_scale_np >= 0.f && config.lr_scale_np <= 1e6f) ||
      !(config.momentum >= 0.f && config.momentum < 1.f) || !(config.anchor >= 0.f && config.anchor <= 1.f))
    return Status::kInvalidArgument;
  if (config.baseline != Baseline::kNone && config.estimation == Estimation::kModelWise && !config.bias_only)
    for (const TrainLayer& t : layers)
      if (t.mode == PerturbMode::kNode) return Status::kUnsupported;  // model-wise NP folds each query at once
  if (config.one_layer_per_pass && config.estimation == Estimation::kModelWise) return Status::kUnsupported;
  // Bias-only training perturbs every layer at once (model-wise) and has no weights to normalise by.
  if (config.bias_only && (config.estimation != Estimation::kModelWise || config.step_norm != StepNorm::kNone))
    return Status::kUnsupported;
  if (config.bias_only && !config.update_bias) return Status::kInvalidArgument;
  if (!(config.bias_mu >= 0.f && config.bias_mu <= 127.f)) return Status::kInvalidArgument;
  engine_ = &engine;
  config_ = config;
  n_layers_ = 0;
  init_high_ = 0;
  // The layer table lives in the arena: its size follows the layer count (no
  // fixed maximum in the trainer object).
  // Counted from the first 16-byte boundary: what arena_bytes() reports does
  // not depend on where the caller's last allocation ended.
  (void)arena.allocate(0, 16);
  const size_t start = arena.used();
  layers_ = static_cast<Layer*>(arena.allocate(layers.size() * sizeof(Layer), alignof(Layer)));
  if (layers_ == nullptr) return Status::kOutOfMemory;
  for (const TrainLayer& t : layers) {
    if (t.op < 0 || t.op >= m.n_ops() || static_cast<OpType>(m.op(t.op).type) != OpType::kConv2d)
      return Status::kInvalidArgument;
    // A layer inside a fused block has no input boundary and no full output:
    // the engine must keep it unfused (EngineOptions::unfused_ops). Bias-only
    // training needs neither: it moves the biases the fused bands read
    // (Engine::param) and runs whole forwards.
    if (engine.fused_block_of(t.op) >= 0 && !config.bias_only) return Status::kInvalidArgument;
    // Insert sorted by op index; duplicates are a caller error.
    int at = n_layers_;
    while (at > 0 && layers_[at - 1].spec.op > t.op) {
      layers_[at] = layers_[at - 1];
      --at;
    }
    if (at > 0 && layers_[at - 1].spec.op == t.op) return Status::kInvalidArgument;
    new (&layers_[at]) Layer{};
    layers_[at].spec = t;
    ++n_layers_;
  }
  for (int i = 0; i < n_layers_; ++i) {
    Layer& l = layers_[i];
    const TzmOp& op = m.op(l.spec.op);
    l.x_tensor = op.inputs[0];
    l.y_tensor = op.output;
    const TzmTensor& x = m.tensor(l.x_tensor);
    const TzmTensor& y = m.tensor(l.y_tensor);
    l.d_w = tensor_elements(m.tensor(op.inputs[1]));
    l.c_out = y.dims[2];
    l.x_size = tensor_elements(x);
    l.y_size = tensor_elements(y);
    l.s_w = m.channel_scales(op.inputs[1]);
    // Fixed-point layers have no float multipliers: the local gradient reads the rule's own
    // gain from conv_params (fixed_point_gain).
    l.mult = op.params[kConvRequant] == kRequantFixedPoint ? nullptr : static_cast<const float*>(m.data(op.inputs[3]));
    l.s_x = x.scale;
    l.z_x = x.zero_point;
    l.s_y = y.scale;
    l.act_min = op.params[kConvActMin];
    l.act_max = op.params[kConvActMax];
  }
  TZ_RETURN_IF_ERROR(allocate(arena));
  arena_bytes_ = arena.used() - start;  // the layer table plus allocate()'s buffers
  // What init() needs: the workspace search's scratch may rise above the final use (a set of small layers).
  required_bytes_ = (init_high_ > arena.used() ? init_high_ : arena.used()) - start;
  return Status::kOk;
}

size_t ZoTrainer::layer_record_bytes() { return sizeof(Layer); }

size_t ZoTrainer::workspace_bytes_for(size_t boundary_bytes, PerturbMode mode, size_t d_w, size_t c_out,
                                      const ZoConfig& config) {
  const int sides = config.two_sided ? 2 : 1;
  size_t bytes = align16(boundary_bytes);
  if (mode == PerturbMode::kWeight) {
    // W and b are perturbed one at a time: one copy of the larger serves both;
    // then one loss per (query, side) of the tensor being estimated.
    bytes += align16(d_w > c_out * 4 ? d_w : c_out * 4);
    const int max_q = config.n_queries_w > config.n_queries_b ? config.n_queries_w : config.n_queries_b;
    bytes += align16(size_t(max_q) * size_t(sides) * 4);
  } else {
    bytes += align16(size_t(config.n_queries_np) * 4);  // the sample's Q coefficients
  }
  return bytes;
}

// The workspace of layer `li` (layer-wise estimation): the boundary cache at
// its start, then the layer's own buffers. Called before the layer is
// estimated on a sample; the pointers stay valid until the next call.
void ZoTrainer::bind_workspace(int li) {
  const Layer& l = layers_[li];
  boundary_ = workspace_;
  boundary_bytes_ = engine_->boundary_size_bytes(l.spec.op);
  uint8_t* tail = reinterpret_cast<uint8_t*>(workspace_) + align16(boundary_bytes_);
  if (l.spec.mode == PerturbMode::kWeight) {
    shared_pert_ = reinterpret_cast<int8_t*>(tail);
    const size_t pert = l.d_w > size_t(l.c_out) * 4 ? l.d_w : size_t(l.c_out) * 4;
    results_ = reinterpret_cast<float*>(tail + align16(pert));
  } else {
    np_coef_ = reinterpret_cast<float*>(tail);
  }
}

// The engine's plan, as the memory model sees it (zo_workspace_gap): the
// requests the engine planned (with fused blocks: build_fused_requests, the
// blocks' intermediates of size 0 and one scratch request per block) and the
// addresses it gave them (a block's scratch: Engine::fused_scratch), in
// scratch from the top of `arena` that is released again.
int8_t* ZoTrainer::workspace_in_engine(Arena& arena, size_t bytes) {
  const ModelView& m = engine_->model();
  const int first_op = layers_[0].spec.op;
  const size_t n = static_cast<size_t>(m.n_tensors());
  const size_t nb = static_cast<size_t>(engine_->n_fused_blocks());
  const size_t mark = arena.mark();
  auto* req = static_cast<BufferRequest*>(arena.allocate((n + nb) * sizeof(BufferRequest), alignof(BufferRequest)));
  auto* at = static_cast<size_t*>(arena.allocate((n + nb) * sizeof(size_t), alignof(size_t)));
  if (arena.used() > init_high_) init_high_ = arena.used();
  int8_t* gap = nullptr;
  bool ok = req != nullptr && at != nullptr;
  if (ok) {
    for (size_t k = 0; k < n + nb; ++k) new (&req[k]) BufferRequest{};
    ok = nb == 0 ? build_buffer_requests(m, Span<BufferRequest>(req, n)) == Status::kOk
                 : build_fused_requests(m, Span<const FusedBlock>(&engine_->fused_block(0), nb),
                                        Span<BufferRequest>(req, n + nb)) == Status::kOk;
  }
  for (size_t k = 0; ok && k < n + nb; ++k) {
    at[k] = 0;
    if (req[k].size_bytes == 0) continue;
    const void* p = k < n ? engine_->tensor_data(static_cast<int>(k)) : engine_->fused_scratch(static_cast<int>(k - n));
    ok = p != nullptr;
    at[k] = reinterpret_cast<uintptr_t>(p);
  }
  size_t o = 0;
  if (ok && zo_workspace_gap(Span<const BufferRequest>(req, n + nb), Span<const size_t>(at, n + nb), first_op, bytes,
                             &o))
    gap = reinterpret_cast<int8_t*>(o);
  arena.reset_to(mark);
  return gap;
}

Status ZoTrainer::allocate(Arena& arena) {
  const size_t start = arena.used();
  const bool model_wise = config_.estimation == Estimation::kModelWise;
  const int sides = config_.two_sided ? 2 : 1;
  const ModelView& m = engine_->model();
  bool ok = true;
  auto take = [&](size_t bytes) -> void* {
    void* p = arena.allocate(bytes ? bytes : 1);
    ok = ok && p != nullptr;
    return p;
  };
  // Layer-wise estimation works on one layer of one sample at a time, so one
  // workspace serves every layer: sized by the largest per-layer sum of
  // boundary cache + perturbed copy + query losses (WP) or + Q coefficients
  // (NP), not by the sum of each buffer's own maximum. Layer-wise NP keeps no
  // output-sized buffer: the perturbation is written straight into the layer
  // output in the arena, and the node gradient G is regenerated from the Q
  // per-query coefficients in the in-layer backward.
  pert_bytes_ = 0;
  workspace_ = nullptr;
  if (!model_wise) {
    size_t ws = 0;
    for (int i = 0; i < n_layers_; ++i) {
      const Layer& l = layers_[i];
      const size_t b = workspace_bytes_for(engine_->boundary_size_bytes(l.spec.op), l.spec.mode, l.d_w,
                                           size_t(l.c_out), config_);
      ws = b > ws ? b : ws;
      if (l.spec.mode == PerturbMode::kWeight) {  // the host workers' per-item stride (set_workers)
        const size_t pert = l.d_w > size_t(l.c_out) * 4 ? l.d_w : size_t(l.c_out) * 4;
        pert_bytes_ = pert > pert_bytes_ ? pert : pert_bytes_;
      }
    }
    // In a gap of the engine's activations when the plan has one (bytes only
    // the prefix before the first trained op uses: docs/memory.md §2), else
    // a buffer of its own.
    workspace_ = config_.workspace_in_activations ? workspace_in_engine(arena, ws) : nullptr;
    if (workspace_ == nullptr) workspace_ = static_cast<int8_t*>(take(ws));
  }
  // One layer per pass: the NP layers share one dW/db accumulator (each
  // part sized by the largest NP layer's), and every NP layer but the last
  // keeps its updated parameters from the end of its pass to end_step.
  float* shared_grad_w = nullptr;
  float* shared_grad_b = nullptr;
  int last_np = -1;
  if (config_.one_layer_per_pass) {
    size_t max_dw = 0, max_c = 0;
    for (int i = 0; i < n_layers_; ++i) {
      const Layer& l = layers_[i];
      if (l.spec.mode != PerturbMode::kNode) continue;
      last_np = i;
      max_dw = l.d_w > max_dw ? l.d_w : max_dw;
      max_c = size_t(l.c_out) > max_c ? size_t(l.c_out) : max_c;
    }
    if (last_np >= 0) {
      shared_grad_w = static_cast<float*>(take(max_dw * 4));
      shared_grad_b = static_cast<float*>(take(max_c * 4));
    }
  }
  bias_coef_ = nullptr;
  bias_dims_ = 0;
  if (config_.bias_only) {
    bias_coef_ = static_cast<float*>(take(size_t(config_.n_queries_b) * 4));
    for (int i = 0; i < n_layers_ && ok; ++i) {
      Layer& l = layers_[i];
      l.b = static_cast<int32_t*>(take(size_t(l.c_out) * 4));
      l.grad_b = static_cast<float*>(take(size_t(l.c_out) * 4));
      if (config_.momentum > 0.f) l.mom_b = static_cast<float*>(take(size_t(l.c_out) * 4));
      if (!ok) break;
      const auto* b0 = static_cast<const int32_t*>(m.data(m.op(l.spec.op).inputs[2]));
      std::memcpy(l.b, b0, size_t(l.c_out) * 4);
      for (int o = 0; o < l.c_out; ++o) bias_dims_ += bias_frozen(b0[o]) ? 0 : 1;
      if (l.mom_b) std::memset(l.mom_b, 0, size_t(l.c_out) * 4);
    }
  }
  for (int i = 0; i < n_layers_ && ok && !config_.bias_only; ++i) {
    Layer& l = layers_[i];
    const TzmOp& op = m.op(l.spec.op);
    l.w = static_cast<int8_t*>(take(l.d_w));
    l.b = static_cast<int32_t*>(take(size_t(l.c_out) * 4));
    if (!ok) break;
    std::memcpy(l.w, m.data(op.inputs[1]), l.d_w);
    std::memcpy(l.b, m.data(op.inputs[2]), size_t(l.c_out) * 4);
    if (config_.momentum > 0.f) {
      l.mom_w = static_cast<float*>(take(l.d_w * 4));
      if (config_.update_bias) l.mom_b = static_cast<float*>(take(size_t(l.c_out) * 4));
      if (!ok) break;
      std::memset(l.mom_w, 0, l.d_w * 4);
      if (l.mom_b) std::memset(l.mom_b, 0, size_t(l.c_out) * 4);
    }
    if (l.spec.mode == PerturbMode::kWeight) {
      l.sum_lw = static_cast<float*>(take(size_t(config_.n_queries_w) * sides * 4));
      l.sum_lb = static_cast<float*>(take(size_t(config_.n_queries_b) * sides * 4));
      if (model_wise) {
        l.pert_w = static_cast<int8_t*>(take(l.d_w));
        l.pert_b = static_cast<int32_t*>(take(size_t(l.c_out) * 4));
      }
    } else if (config_.one_layer_per_pass) {
      l.grad_w = shared_grad_w;
      l.grad_b = shared_grad_b;
      if (i != last_np) {
        l.next_w = static_cast<int8_t*>(take(l.d_w));
        l.next_b = static_cast<int32_t*>(take(size_t(l.c_out) * 4));
      }
    } else {
      l.grad_w = static_cast<float*>(take(l.d_w * 4));
      l.grad_b = static_cast<float*>(take(size_t(l.c_out) * 4));
      if (model_wise) {
        l.x_cache = static_cast<int8_t*>(take(l.x_size));
        l.offsets = static_cast<int8_t*>(take(l.y_size));
        l.mask = static_cast<int8_t*>(take(l.y_size));
        l.node_grad = static_cast<float*>(take(l.y_size * 4));
      }
    }
  }
  if (!ok) {
    arena.reset_to(start);
    return Status::kOutOfMemory;
  }
  (void)arena.allocate(0, 16);  // the last buffer's padding counts too (the memory model's a16 rule)
  if (!model_wise) bind_workspace(0);
  for (int i = 0; i < n_layers_; ++i) {
    // Bias-only: the weights stay the model's own (nullptr: no override).
    TZ_RETURN_IF_ERROR(engine_->set_param_override(layers_[i].spec.op, 1, layers_[i].w));
    TZ_RETURN_IF_ERROR(engine_->set_param_override(layers_[i].spec.op, 2, layers_[i].b));
  }
  arena_bytes_ = arena.used() - start;
  return begin_step(0);
}

Status ZoTrainer::set_workers(Span<Engine* const> engines, Arena& arena, ParallelFor parallel_for, void* ctx) {
  if (engine_ == nullptr || engines.empty() || engines.size() > size_t(kMaxWorkers) || parallel_for == nullptr)
    return Status::kInvalidArgument;
  if (config_.estimation == Estimation::kModelWise) return Status::kUnsupported;
  const int batch = engines[0] ? engines[0]->batch() : 0;
  if (batch < 1 || batch > kMaxBatch) return Status::kInvalidArgument;
  void* mem = arena.allocate(sizeof(WorkerPool), alignof(WorkerPool) < 16 ? 16 : alignof(WorkerPool));
  if (mem == nullptr) return Status::kOutOfMemory;
  WorkerPool* pool = new (mem) WorkerPool();
  for (size_t w = 0; w < engines.size(); ++w) {
    Engine* e = engines[w];
    if (e == nullptr || &e->model() != &engine_->model() || e->batch() != batch) return Status::kInvalidArgument;
    // Workers read the trainer's copies of every trainable layer, as the main engine does.
    for (int i = 0; i < n_layers_; ++i) {
      TZ_RETURN_IF_ERROR(e->set_param_override(layers_[i].spec.op, 1, layers_[i].w));
      TZ_RETURN_IF_ERROR(e->set_param_override(layers_[i].spec.op, 2, layers_[i].b));
    }
    // One perturbed copy per item (WP: every item of a block runs its own query).
    pool->pert[w] = static_cast<int8_t*>(arena.allocate((pert_bytes_ ? pert_bytes_ : 1) * size_t(batch)));
    if (pool->pert[w] == nullptr) return Status::kOutOfMemory;
    pool->engines[w] = e;
  }
  pool->n = static_cast<int>(engines.size());
  pool->batch = batch;
  pool->parallel_for = parallel_for;
  pool->ctx = ctx;
  pool_ = pool;
  return Status::kOk;
}

Status ZoTrainer::begin_step(uint32_t step) {
  if (engine_ == nullptr) return Status::kInvalidArgument;
  step_ = step;
  sample_ = 0;
  pass_ = 0;
  pass_samples_ = 0;
  changed_early_ = 0;
  sum_l0_ = 0.f;
  macs_ = 0;
  const int sides = config_.two_sided ? 2 : 1;
  for (int i = 0; i < n_layers_; ++i) {
    Layer& l = layers_[i];
    if (l.sum_lw) std::memset(l.sum_lw, 0, size_t(config_.n_queries_w) * sides * 4);
    if (l.sum_lb) std::memset(l.sum_lb, 0, size_t(config_.n_queries_b) * sides * 4);
    if (l.grad_w) std::memset(l.grad_w, 0, l.d_w * 4);
    if (l.grad_b) std::memset(l.grad_b, 0, size_t(l.c_out) * 4);
    l.unmasked = 0;
  }
  return Status::kOk;
}

namespace {

// The cross-entropy of item `item`'s logits (after a run to the end).
Status output_loss(const Engine& engine, int item, int label, float* loss_out, int* predicted) {
  const TzmTensor& out = engine.output_info();
  const int classes = static_cast<int>(tensor_elements(out));
  if (label < 0 || label >= classes) return Status::kInvalidArgument;
  float logits_buf[64];
  const float* logits = nullptr;
  if (out.dtype == uint8_t(DType::kFloat32)) {
    logits = engine.output_f32(item).data();
  } else {
    if (classes > 64) return Status::kUnsupported;
    const int8_t* q = engine.output_s8(item).data();
    for (int i = 0; i < classes; ++i) logits_buf[i] = static_cast<float>(int32_t(q[i]) - out.zero_point) * out.scale;
    logits = logits_buf;
  }
  *loss_out = cross_entropy(logits, classes, label);
  if (predicted) {
    int best = 0;
    for (int i = 1; i < classes; ++i)
      if (logits[i] > logits[best]) best = i;
    *predicted = best;
  }
  return Status::kOk;
}

// Runs items [0, n_items) of `engine` from `first_op` to the end; losses[k] is item k's loss.
Status engine_losses(Engine& engine, int first_op, int label, int n_items, float* losses) {
  TZ_RETURN_IF_ERROR(engine.invoke_items(first_op, engine.model().n_ops(), 0, n_items));
  for (int k = 0; k < n_items; ++k) TZ_RETURN_IF_ERROR(output_loss(engine, k, label, &losses[k], nullptr));
  return Status::kOk;
}

}  // namespace

// Runs `engine` (item 0) from `first_op` to the end and the cross-entropy of its logits.
Status engine_loss(Engine& engine, int first_op, int label, float* loss_out, int* predicted) {
  TZ_RETURN_IF_ERROR(engine.invoke_items(first_op, engine.model().n_ops(), 0, 1));
  return output_loss(engine, 0, label, loss_out, predicted);
}

Status ZoTrainer::forward_loss(int first_op, int label, float* loss_out, int* predicted) {
  macs_ += engine_->macs(first_op, engine_->model().n_ops());
  return engine_loss(*engine_, first_op, label, loss_out, predicted);
}

Status ZoTrainer::loss(Span<const int8_t> input, int label, float* loss_out, int* predicted) {
  Span<int8_t> in = engine_->input();
  if (input.size() != in.size()) return Status::kInvalidArgument;
  // The input may already be the engine's input tensor (a streamed sample).
  if (in.data() != input.data()) std::memcpy(in.data(), input.data(), in.size());
  return forward_loss(0, label, loss_out, predicted);
}

Status ZoTrainer::accumulate_sample(Span<const int8_t> input, int label) {
  if (engine_ == nullptr) return Status::kInvalidArgument;
  Span<int8_t> in = engine_->input();
  if (input.size() != in.size()) return Status::kInvalidArgument;
  if (in.data() != input.data()) std::memcpy(in.data(), input.data(), in.size());
  input_ = input;
  reader_ = SampleReader{};
  return sample_dispatch(label);
}

Status ZoTrainer::accumulate_sample(const SampleReader& reader, int label) {
  if (engine_ == nullptr || reader.read == nullptr) return Status::kInvalidArgument;
  input_ = Span<const int8_t>();
  reader_ = reader;
  return sample_dispatch(label);
}

Status ZoTrainer::sample_dispatch(int label) {
  const Status s = config_.estimation == Estimation::kModelWise ? model_wise_sample(label) : layer_wise_sample(label);
  ++sample_;
  return s;
}

Status ZoTrainer::rewrite_input() {
  Span<int8_t> in = engine_->input();
  if (reader_.read != nullptr) return reader_.read(reader_.context, in);
  std::memcpy(in.data(), input_.data(), in.size());
  return Status::kOk;
}

// Layer-wise estimation with prefix reuse (METHOD §3.4): the prefix up to each
// layer runs once; every query runs only the suffix from the cached boundary.
Status ZoTrainer::layer_wise_sample(int label) {
  if (config_.one_layer_per_pass) {
    // One layer per pass: the prefix up to this pass's layer, then its
    // queries. L0 (the same value from any boundary: the forward is
    // deterministic) is summed in the first pass and recomputed by NP layers,
    // whose one-sided coefficients need it.
    Layer& l = layers_[pass_];
    const int op = l.spec.op;
    bind_workspace(pass_);
    const Span<int8_t> cache(boundary_, boundary_bytes_);
    TZ_RETURN_IF_ERROR(engine_->invoke_range(0, op));
    macs_ += engine_->macs(0, op);
    TZ_RETURN_IF_ERROR(engine_->save_boundary(op, cache));
    float l0 = 0.f;
    if (pass_ == 0 || l.spec.mode == PerturbMode::kNode) {
      TZ_RETURN_IF_ERROR(forward_loss(op, label, &l0, nullptr));
      TZ_RETURN_IF_ERROR(engine_->restore_boundary(op, cache));
      if (pass_ == 0) sum_l0_ += l0;
    }
    TZ_RETURN_IF_ERROR(l.spec.mode == PerturbMode::kWeight ? wp_queries(l, pass_, label, l0)
                                                           : np_queries(l, pass_, label, l0));
    return engine_->restore_boundary(op, cache);
  }
  int cur = 0;
  bool have_l0 = false;
  float l0 = 0.f;
  for (int li = 0; li < n_layers_; ++li) {
    Layer& l = layers_[li];
    const int op = l.spec.op;
    bind_workspace(li);  // this layer's cache and buffers in the shared workspace
    const Span<int8_t> cache(boundary_, boundary_bytes_);
    TZ_RETURN_IF_ERROR(engine_->invoke_range(cur, op));
    macs_ += engine_->macs(cur, op);
    cur = op;
    TZ_RETURN_IF_ERROR(engine_->save_boundary(op, cache));
    if (!have_l0) {
      // The unperturbed loss of this sample, from the first layer's boundary.
      TZ_RETURN_IF_ERROR(forward_loss(op, label, &l0, nullptr));
      TZ_RETURN_IF_ERROR(engine_->restore_boundary(op, cache));
      sum_l0_ += l0;
      have_l0 = true;
    }
    if (l.spec.mode == PerturbMode::kWeight) {
      TZ_RETURN_IF_ERROR(wp_queries(l, li, label, l0));
    } else {
      TZ_RETURN_IF_ERROR(np_queries(l, li, label, l0));
    }
    TZ_RETURN_IF_ERROR(engine_->restore_boundary(op, cache));
  }
  return Status::kOk;
}

void ZoTrainer::write_perturbed_weights(const Layer& l, int li, int q, int sign, int8_t* out) const {
  const uint64_t k = key(li, RngStream::kWeightPerturb, q, 0);
  const int32_t sigma = config_.sigma_w_lsb * sign;
  for_each_rademacher(k, l.d_w, [&](size_t i, int u) { out[i] = clamp_s8(int32_t(l.w[i]) + sigma * u); });
}

void ZoTrainer::write_perturbed_bias(const Layer& l, int li, int q, int sign, int32_t* out) const {
  const uint64_t k = key(li, RngStream::kBiasPerturb, q, 0);
  const int64_t sigma = int64_t(config_.sigma_b_lsb) * sign;
  for_each_rademacher(k, size_t(l.c_out), [&](size_t i, int u) { out[i] = clamp_s32(int64_t(l.b[i]) + sigma * u); });
}

// The engine, perturbation buffers and task indices of block `block` of the
// current batch of tasks. Without a pool: the trainer's engine, one task per
// block. With a pool: the worker's engine, `batch` tasks per block, one item
// each.
ZoTrainer::Block ZoTrainer::block(int worker, int index) const {
  Block b;
  const int size = batch_.block;
  b.e = pool_ ? pool_->engines[worker] : engine_;
  b.pert = pool_ ? pool_->pert[worker] : shared_pert_;
  b.begin = index * size;
  b.end = b.begin + size < batch_.n ? b.begin + size : batch_.n;
  return b;
}

// A block of WP query tasks: per item, the perturbed copy of query q into the
// item's buffer, the boundary restored into the item, and the perturbed layer
// run for that item alone; then the suffix for all items at once (same weights
// from there on), one loss per item. Tasks are independent, so workers may run
// blocks in any order; each writes only its own result slots.
void ZoTrainer::wp_task(void* arg, int worker, int index) {
  auto* t = static_cast<ZoTrainer*>(arg);
  const QueryBatch& qb = t->batch_;
  const Layer& l = t->layers_[qb.layer];
  const Block bl = t->block(worker, index);
  Engine& e = *bl.e;
  const int op = l.spec.op, slot = qb.bias ? 2 : 1;
  const int sides = t->config_.two_sided ? 2 : 1;
  const Span<const int8_t> cache(t->boundary_, t->boundary_bytes_);
  Status s = Status::kOk;
  for (int i = bl.begin; i < bl.end && s == Status::kOk; ++i) {
    const int k = i - bl.begin;
    const int q = i / sides, sign = i % sides == 0 ? 1 : -1;
    int8_t* buf = bl.pert + size_t(k) * t->pert_bytes_;
    if (qb.bias) {
      t->write_perturbed_bias(l, qb.layer, q, sign, reinterpret_cast<int32_t*>(buf));
    } else {
      t->write_perturbed_weights(l, qb.layer, q, sign, buf);
    }
    s = e.set_param_override(op, slot, buf);
    if (s == Status::kOk) s = e.restore_boundary(op, cache, k);
    if (s == Status::kOk) s = e.invoke_items(op, op + 1, k, k + 1);
  }
  const Status r = e.set_param_override(op, slot, qb.bias ? static_cast<const void*>(l.b) : l.w);
  if (s == Status::kOk) s = r;
  if (s == Status::kOk) s = engine_losses(e, op + 1, qb.label, bl.end - bl.begin, &t->results_[bl.begin]);
  if (s != Status::kOk) t->task_status(worker) = s;
}

Status ZoTrainer::run_tasks(void (*task)(void*, int, int), int n) {
  batch_.n = n;
  const int workers = pool_ ? pool_->n : 1;
  for (int w = 0; w < workers; ++w) task_status(w) = Status::kOk;
  if (pool_) {
    // Blocks of at most `batch` tasks, as even as the workers allow (25
    // queries on 2 workers: 13 + 12, not 16 + 9).
    const int per_worker = (n + workers - 1) / workers;
    const int rounds = (per_worker + pool_->batch - 1) / pool_->batch;
    batch_.block = (per_worker + rounds - 1) / rounds;
    if (batch_.block < 1) batch_.block = 1;
    pool_->parallel_for(pool_->ctx, (n + batch_.block - 1) / batch_.block, task, this);
  } else {
    batch_.block = 1;
    for (int i = 0; i < n; ++i) task(this, 0, i);
  }
  for (int w = 0; w < workers; ++w) TZ_RETURN_IF_ERROR(task_status(w));
  return Status::kOk;
}

Status ZoTrainer::wp_queries(Layer& l, int li, int label, float /*l0*/) {
  const int sides = config_.two_sided ? 2 : 1;
  const uint64_t suffix = engine_->macs(l.spec.op, engine_->model().n_ops());
  for (int pass = 0; pass < (config_.update_bias ? 2 : 1); ++pass) {
    const int nq = pass == 0 ? config_.n_queries_w : config_.n_queries_b;
    batch_ = QueryBatch{li, label, pass == 1};
    TZ_RETURN_IF_ERROR(run_tasks(&ZoTrainer::wp_task, nq * sides));
    // Fold the results in query order: the same sums whatever ran them.
    float* sums = pass == 0 ? l.sum_lw : l.sum_lb;
    for (int q = 0; q < nq; ++q)
      for (int side = 0; side < sides; ++side) sums[side * nq + q] += results_[q * sides + side];
    macs_ += suffix * uint64_t(nq * sides);
  }
  return Status::kOk;
}

// m = 1 where the unperturbed output is strictly inside the clamp range. The
// simulation's mask also admits values that round exactly onto the bound; the
// int8 output can't tell those apart, and they carry no gradient through a
// ReLU either, so they are masked here (docs/training.md).
void ZoTrainer::prepare_mask(Layer& l) {
  const auto* y = static_cast<const int8_t*>(engine_->tensor_data(l.y_tensor));
  uint64_t n = 0;
  for (size_t k = 0; k < l.y_size; ++k) {
    const bool inside = y[k] > l.act_min && y[k] < l.act_max;
    l.mask[k] = inside ? 1 : 0;
    n += inside ? 1 : 0;
  }
  l.unmasked += n;
}

void ZoTrainer::write_offsets(Layer& l, int li, int q, int sign) {
  const uint64_t k = key(li, RngStream::kNodePerturb, q, sample_);
  const int32_t mu = config_.mu_lsb * sign;
  for_each_rademacher(k, l.y_size, [&](size_t i, int u) { l.offsets[i] = static_cast<int8_t>(l.mask[i] ? mu * u : 0); });
}

void ZoTrainer::np_accumulate(Layer& l, int li, int q, float coef) {
  const uint64_t k = key(li, RngStream::kNodePerturb, q, sample_);
  for_each_rademacher(k, l.y_size, [&](size_t i, int u) {
    if (l.mask[i]) l.node_grad[i] += u > 0 ? coef : -coef;
  });
}

// A block of NP query tasks of one side (qb.side): every item gets the cached
// boundary, the layer runs for all items at once (its output is the same for
// every item), each item's unsaturated outputs are perturbed in place by
// +-mu * u_q for its own query q, then the suffix runs for all items. Each task
// writes only np_coef_[q]: one-sided the coefficient (L_q - L0) / mu; two-sided
// side 0 leaves L+ there and side 1 turns it into (L+ - L-) / (2 mu).
void ZoTrainer::np_task(void* arg, int worker, int index) {
  auto* t = static_cast<ZoTrainer*>(arg);
  const QueryBatch& qb = t->batch_;
  const Layer& l = t->layers_[qb.layer];
  const Block bl = t->block(worker, index);
  Engine& e = *bl.e;
  const int op = l.spec.op, n_items = bl.end - bl.begin;
  const Span<const int8_t> cache(t->boundary_, t->boundary_bytes_);
  Status s = Status::kOk;
  for (int k = 0; k < n_items && s == Status::kOk; ++k) s = e.restore_boundary(op, cache, k);
  if (s == Status::kOk) s = e.invoke_items(op, op + 1, 0, n_items);
  const int32_t mu = t->config_.mu_lsb;
  const int32_t m = qb.side == 0 ? mu : -mu;
  for (int k = 0; k < n_items && s == Status::kOk; ++k) {
    auto* y = static_cast<int8_t*>(e.tensor_data(l.y_tensor, k));
    const uint64_t key = t->key(qb.layer, RngStream::kNodePerturb, bl.begin + k, t->sample_);
    perturb_unsaturated(y, l.y_size, key, m, l.act_min, l.act_max);
  }
  if (s == Status::kOk) s = e.invoke_items(op + 1, e.model().n_ops(), 0, n_items);
  for (int k = 0; k < n_items && s == Status::kOk; ++k) {
    float loss = 0.f;
    s = output_loss(e, k, qb.label, &loss, nullptr);
    float& c = t->np_coef_[bl.begin + k];
    if (!t->config_.two_sided) {
      c = (loss - qb.l0) / static_cast<float>(mu);
    } else if (qb.side == 0) {
      c = loss;
    } else {
      c = (c - loss) / (2.f * static_cast<float>(mu));
    }
  }
  if (s != Status::kOk) t->task_status(worker) = s;
}

// Layer-wise NP from the cached input of layer l: each query recomputes the
// layer output (its MACs are small next to the suffix), perturbs the unsaturated
// outputs in place by mu * u_q, and runs the suffix. Only the Q loss
// differences are kept; G is regenerated from them afterwards.
Status ZoTrainer::np_queries(Layer& l, int li, int label, float l0) {
  const int op = l.spec.op;
  const Span<const int8_t> cache(boundary_, boundary_bytes_);
  const int sides = config_.two_sided ? 2 : 1;
  for (int side = 0; side < sides; ++side) {
    batch_ = QueryBatch{li, label, false, l0, side};
    TZ_RETURN_IF_ERROR(run_tasks(&ZoTrainer::np_task, config_.n_queries_np));
  }
  macs_ += engine_->macs(op, engine_->model().n_ops()) * uint64_t(config_.n_queries_np * sides);
  // Unperturbed x and y side by side in the arena for the in-layer backward.
  TZ_RETURN_IF_ERROR(engine_->restore_boundary(op, cache));
  TZ_RETURN_IF_ERROR(engine_->invoke_range(op, op + 1));
  macs_ += engine_->macs(op, op + 1);
  np_local_gradient_regenerated(l, li, static_cast<const int8_t*>(engine_->tensor_data(l.x_tensor)),
                                static_cast<const int8_t*>(engine_->tensor_data(l.y_tensor)));
  return Status::kOk;
}

void conv_local_gradient(const ConvParams& p, const int8_t* x, const float* node_grad, const int8_t* mask,
                         const float* mult, float* grad_w, float* grad_b) {
  const size_t n = size_t(p.out_h) * p.out_w * p.out_c;
  conv_local_gradient_range(p, x, node_grad, mask, mult, 0, n, grad_w, grad_b);
}

void ZoTrainer::np_local_gradient(Layer& l) {
  const ConvParams p = conv_params(engine_->model(), engine_->model().op(l.spec.op));
  conv_local_gradient(p, l.x_cache, l.node_grad, l.mask, l.mult, l.grad_w, l.grad_b);
}


// d y / d acc of TFLite's fixed-point rule: M * 2^(shift - 31), as binary32. float(M) rounds to
// nearest even (deterministic on host and device); the power of two is built from its exponent
// bits (shift in [-31, 30]: 2^-62 .. 2^-1, all normal), so no libm.
static float fixed_point_gain(int32_t multiplier, int32_t shift) {
  const uint32_t bits = static_cast<uint32_t>(127 + shift - 31) << 23;
  float pow2;
  std::memcpy(&pow2, &bits, 4);
  return static_cast<float>(multiplier) * pow2;
}

void conv_local_gradient_range(const ConvParams& p, const int8_t* x, const float* node_grad, const int8_t* mask,
                               const float* mult, size_t begin, size_t end, float* grad_w, float* grad_b) {
  const int cig = p.in_c / p.groups, cog = p.out_c / p.groups;
  for (size_t yi = begin; yi < end; ++yi) {
    if (!mask[yi - begin]) continue;
    const size_t oc = yi % p.out_c;
    const float gain = p.fx_multiplier != nullptr ? fixed_point_gain(p.fx_multiplier[oc], p.fx_shift[oc])
                                                  : mult[oc] / p.y_scale;
    const float delta = node_grad[yi - begin] * gain;
    if (delta == 0.f) continue;
    const int o = static_cast<int>(yi % size_t(p.out_c));
    const size_t pos = yi / size_t(p.out_c);
    const int oy = static_cast<int>(pos / size_t(p.out_w)), ox = static_cast<int>(pos % size_t(p.out_w));
    grad_b[o] += delta;
    const int g = o / cog;
    float* gw = grad_w + size_t(o) * p.kh * p.kw * cig;
    for (int ky = 0; ky < p.kh; ++ky) {
      const int iy = oy * p.stride_h - p.pad_top + ky;
      if (iy < 0 || iy >= p.in_h) continue;
      for (int kx = 0; kx < p.kw; ++kx) {
        const int ix = ox * p.stride_w - p.pad_left + kx;
        if (ix < 0 || ix >= p.in_w) continue;
        const int8_t* xp = x + (size_t(iy) * p.in_w + ix) * p.in_c + g * cig;
        float* gp = gw + (ky * p.kw + kx) * cig;
        for (int c = 0; c < cig; ++c) gp[c] += delta * static_cast<float>(int32_t(xp[c]) - p.x_zero);
      }
    }
  }
}

void ZoTrainer::np_local_gradient_regenerated(Layer& l, int li, const int8_t* x, const int8_t* y) {
  const ConvParams p = conv_params(engine_->model(), engine_->model().op(l.spec.op));
  const int nq = config_.n_queries_np;
  apply_baseline(np_coef_, nq);  // this sample's Q coefficients (node_gradient() sees them so too)
  for (size_t base = 0; base < l.y_size; base += 64) {
    const size_t len = l.y_size - base < 64 ? l.y_size - base : 64;
    float g[64];
    int8_t m[64];
    for (size_t j = 0; j < len; ++j) {
      m[j] = (y[base + j] > l.act_min && y[base + j] < l.act_max) ? 1 : 0;
      l.unmasked += uint64_t(m[j]);
    }
    // G[k] = sum_q coef_q u_q[k]: the same bits the queries used (block base / 64).
    signed_sum_block(
        nq, np_coef_, [&](int q) { return random_block(key(li, RngStream::kNodePerturb, q, sample_), base >> 6); }, g);
    conv_local_gradient_range(p, x, g, m, l.mult, base, base + len, l.grad_w, l.grad_b);
  }
}

// Model-wise estimation (MeZO-like, for ablations): every trainable tensor or
// output is perturbed at once and each query runs the whole network.
Status ZoTrainer::model_wise_sample(int label) {
  if (config_.bias_only) return bias_sample(label);
  const int n = engine_->model().n_ops();
  // Unperturbed forward, op by op, keeping each NP layer's input and mask.
  int li = 0;
  // A fused block runs whole (trainable layers are never inside one).
  for (int i = 0, next = 0; i < n; i = next) {
    next = engine_->next_cut(i);
    while (li < n_layers_ && layers_[li].spec.op < i) ++li;
    Layer* l = (li < n_layers_ && layers_[li].spec.op == i) ? &layers_[li] : nullptr;
    if (l && l->spec.mode == PerturbMode::kNode) std::memcpy(l->x_cache, engine_->tensor_data(l->x_tensor), l->x_size);
    TZ_RETURN_IF_ERROR(engine_->invoke_range(i, next));
    if (l && l->spec.mode == PerturbMode::kNode) prepare_mask(*l);
  }
  macs_ += engine_->macs(0, n);
  float l0 = 0.f;
  TZ_RETURN_IF_ERROR(forward_loss(n, label, &l0, nullptr));  // reads the logits only
  sum_l0_ += l0;
  for (int k = 0; k < n_layers_; ++k)
    if (layers_[k].spec.mode == PerturbMode::kNode) std::memset(layers_[k].node_grad, 0, layers_[k].y_size * 4);
  const int sides = config_.two_sided ? 2 : 1;
  const float mu = static_cast<float>(config_.mu_lsb);
  for (int q = 0; q < config_.n_queries_w; ++q) {
    float lq[2] = {0.f, 0.f};
    for (int side = 0; side < sides; ++side) {
      const int sign = side == 0 ? 1 : -1;
      for (int k = 0; k < n_layers_; ++k) {
        Layer& l = layers_[k];
        if (l.spec.mode == PerturbMode::kWeight) {
          write_perturbed_weights(l, k, q, sign, l.pert_w);
          TZ_RETURN_IF_ERROR(engine_->set_param_override(l.spec.op, 1, l.pert_w));
          if (config_.update_bias) {
            write_perturbed_bias(l, k, q, sign, l.pert_b);
            TZ_RETURN_IF_ERROR(engine_->set_param_override(l.spec.op, 2, l.pert_b));
          }
        } else {
          write_offsets(l, k, q, sign);
          TZ_RETURN_IF_ERROR(engine_->set_output_offset(l.spec.op, l.offsets));
        }
      }
      // The planner may reuse the input buffer once the input is dead: refill it.
      TZ_RETURN_IF_ERROR(rewrite_input());
      TZ_RETURN_IF_ERROR(forward_loss(0, label, &lq[side], nullptr));
    }
    for (int k = 0; k < n_layers_; ++k) {
      Layer& l = layers_[k];
      if (l.spec.mode == PerturbMode::kWeight) {
        l.sum_lw[q] += lq[0];
        if (q < config_.n_queries_b) l.sum_lb[q] += lq[0];
        if (sides == 2) {
          l.sum_lw[config_.n_queries_w + q] += lq[1];
          if (q < config_.n_queries_b) l.sum_lb[config_.n_queries_b + q] += lq[1];
        }
      } else {
        const float coef = sides == 2 ? (lq[0] - lq[1]) / (2.f * mu) : (lq[0] - l0) / mu;
        np_accumulate(l, k, q, coef);
      }
    }
  }
  for (int k = 0; k < n_layers_; ++k) {
    Layer& l = layers_[k];
    if (l.spec.mode == PerturbMode::kWeight) {
      TZ_RETURN_IF_ERROR(engine_->set_param_override(l.spec.op, 1, l.w));
      TZ_RETURN_IF_ERROR(engine_->set_param_override(l.spec.op, 2, l.b));
    } else {
      TZ_RETURN_IF_ERROR(engine_->set_output_offset(l.spec.op, nullptr));
      np_local_gradient(l);
    }
  }
  return Status::kOk;
}

// delta[o] = round(mu / gain[o]) accumulator LSBs, at least 1 (a dead channel,
// gain 0 or denormal, still gets a finite step) and at most 2^24; 0 when the
// model's bias is frozen. Branch-free: across channels the fractions are
// random, and the loop runs once per block and forward. For 1 <= v < 2^24 the
// rounding is round_half_even's.
void ZoTrainer::bias_deltas(const Layer& l, const ConvParams& p, const int32_t* b0, size_t base, size_t len,
                            int32_t* delta) const {
  const float mu = config_.bias_mu > 0.f ? config_.bias_mu : static_cast<float>(config_.mu_lsb);
  float gain[64];
  if (p.fx_multiplier != nullptr) {
    for (size_t j = 0; j < len; ++j) gain[j] = fixed_point_gain(p.fx_multiplier[base + j], p.fx_shift[base + j]);
  } else {
    for (size_t j = 0; j < len; ++j) gain[j] = l.mult[base + j] / p.y_scale;
  }
  for (size_t j = 0; j < len; ++j) {
    float v = mu / gain[j];
    v = !(v < 16777216.f) ? 16777216.f : (v < 1.f ? 1.f : v);
    const int32_t i = static_cast<int32_t>(v);
    const float frac = v - static_cast<float>(i);
    const int32_t up = int32_t(frac > 0.5f) | (int32_t(frac == 0.5f) & (i & 1));
    delta[j] = bias_frozen(b0[base + j]) ? 0 : i + up;
  }
}

// Moves every layer's biases from one perturbation of this sample to another
// in one pass: b += (s_to u_to - s_from u_from) delta, where a perturbation is
// a query q and a sign s (s = 0: none). Exact in int32: the biases stay within
// +-kBiasOnlyLimit and delta <= 2^24. Going straight from one query's
// perturbation to the next computes each channel's delta once per forward
// instead of twice (off, then on).
void ZoTrainer::move_bias_perturbation(int q_from, int s_from, int q_to, int s_to) {
  const ModelView& m = engine_->model();
  for (int k = 0; k < n_layers_; ++k) {
    Layer& l = layers_[k];
    const ConvParams p = conv_params(m, m.op(l.spec.op));
    const auto* b0 = static_cast<const int32_t*>(m.data(m.op(l.spec.op).inputs[2]));
    const uint64_t key_from = key(k, RngStream::kBiasSample, q_from, sample_);
    const uint64_t key_to = key(k, RngStream::kBiasSample, q_to, sample_);
    for (size_t base = 0; base < size_t(l.c_out); base += 64) {
      const uint64_t from = s_from ? random_block(key_from, base >> 6) : 0;
      const uint64_t to = s_to ? random_block(key_to, base >> 6) : 0;
      const size_t len = size_t(l.c_out) - base < 64 ? size_t(l.c_out) - base : 64;
      int32_t delta[64];
      bias_deltas(l, p, b0, base, len, delta);
      for (size_t j = 0; j < len; ++j) {
        // u = +-1 from the bit, times the sign (0: no perturbation).
        const int32_t u_from = s_from * (int32_t((from >> j) & 1u) * 2 - 1);
        const int32_t u_to = s_to * (int32_t((to >> j) & 1u) * 2 - 1);
        l.b[base + j] += (u_to - u_from) * delta[j];
      }
    }
  }
}

// Bias-only estimation (ZoConfig::bias_only): the unperturbed loss, then per
// query every layer's biases shifted in place by +-delta u for this sample
// and the whole network run again; after the last query they are back where
// they were. The Q loss differences (after the baseline) are folded into
// every layer's dL/db accumulator, u regenerated from its key.
Status ZoTrainer::bias_sample(int label) {
  const ModelView& m = engine_->model();
  float l0 = 0.f;
  TZ_RETURN_IF_ERROR(forward_loss(0, label, &l0, nullptr));
  sum_l0_ += l0;
  const int nq = config_.n_queries_b;
  const int sides = config_.two_sided ? 2 : 1;
  int q_on = 0, s_on = 0;  // the perturbation the biases carry (none)
  for (int q = 0; q < nq; ++q) {
    float lq[2] = {0.f, 0.f};
    for (int side = 0; side < sides; ++side) {
      const int sign = side == 0 ? 1 : -1;
      move_bias_perturbation(q_on, s_on, q, sign);
      q_on = q;
      s_on = sign;
      // The planner may reuse the input buffer once the input is dead: refill it.
      Status s = rewrite_input();
      if (s == Status::kOk) s = forward_loss(0, label, &lq[side], nullptr);
      if (s != Status::kOk) {
        move_bias_perturbation(q_on, s_on, 0, 0);
        return s;
      }
    }
    bias_coef_[q] = sides == 2 ? (lq[0] - lq[1]) * 0.5f : lq[0] - l0;
  }
  move_bias_perturbation(q_on, s_on, 0, 0);
  apply_baseline(bias_coef_, nq);
  // grad_b[o] += +-c_q / delta[o] in query order; delta once per channel.
  for (int k = 0; k < n_layers_; ++k) {
    Layer& l = layers_[k];
    const ConvParams p = conv_params(m, m.op(l.spec.op));
    const auto* b0 = static_cast<const int32_t*>(m.data(m.op(l.spec.op).inputs[2]));
    for (size_t base = 0; base < size_t(l.c_out); base += 64) {
      const size_t len = size_t(l.c_out) - base < 64 ? size_t(l.c_out) - base : 64;
      int32_t idelta[64];
      bias_deltas(l, p, b0, base, len, idelta);
      float delta[64];
      for (size_t j = 0; j < len; ++j) delta[j] = static_cast<float>(idelta[j]);
      for (int q = 0; q < nq; ++q) {
        const float c = bias_coef_[q];
        const uint64_t bits = random_block(key(k, RngStream::kBiasSample, q, sample_), base >> 6);
        for (size_t j = 0; j < len; ++j)
          if (idelta[j] != 0) l.grad_b[base + j] += (((bits >> j) & 1u) ? c : -c) / delta[j];
      }
    }
  }
  return Status::kOk;
}

Status ZoTrainer::next_pass(float lr) {
  if (engine_ == nullptr || !config_.one_layer_per_pass || pass_ + 1 >= n_layers_ || sample_ == 0 ||
      (pass_ > 0 && sample_ != pass_samples_))
    return Status::kInvalidArgument;
  pass_samples_ = sample_;
  Layer& l = layers_[pass_];
  if (l.next_w != nullptr) {
    std::memcpy(l.next_w, l.w, l.d_w);  // what the update leaves (e.g. the biases with update_bias off)
    std::memcpy(l.next_b, l.b, size_t(l.c_out) * 4);
    changed_early_ += apply_update(l, pass_, lr, l.next_w, l.next_b);
  }
  ++pass_;
  sample_ = 0;  // the RNG keys of the next layer's samples start at 0 again
  Layer& n = layers_[pass_];
  if (n.spec.mode == PerturbMode::kNode) {  // the shared accumulator starts empty
    std::memset(n.grad_w, 0, n.d_w * 4);
    std::memset(n.grad_b, 0, size_t(n.c_out) * 4);
  }
  return Status::kOk;
}

Status ZoTrainer::end_step(float lr) {
  if (engine_ == nullptr || sample_ == 0) return Status::kInvalidArgument;
  if (config_.one_layer_per_pass && (pass_ + 1 != n_layers_ || (pass_ > 0 && sample_ != pass_samples_)))
    return Status::kInvalidArgument;
  stats_ = StepStats{};
  stats_.n_samples = static_cast<int>(sample_);
  stats_.mean_loss = sum_l0_ / static_cast<float>(sample_);
  int changed = changed_early_;
  for (int li = 0; li < n_layers_; ++li) {
    Layer& l = layers_[li];
    if (l.next_w != nullptr) {  // computed when its pass ended
      std::memcpy(l.w, l.next_w, l.d_w);
      std::memcpy(l.b, l.next_b, size_t(l.c_out) * 4);
    } else {
      changed += apply_update(l, li, lr, l.w, l.b);
    }
  }
  stats_.weights_changed = changed;
  stats_.forward_macs = macs_;
  return Status::kOk;
}

float ZoTrainer::weight_step(float lr, float g, bool qas, float s_w) {
  return qas ? (lr * g) / (s_w * s_w) : lr * g;
}

float ZoTrainer::bias_step(float lr, float g, bool qas, float s_x, float s_w) {
  const float sxw = s_x * s_w;
  return qas ? (lr * g) / (sxw * sxw) : lr * g;
}

int8_t ZoTrainer::updated_weight(int8_t w, float step, Rounding r, float u) {
  return clamp_s8(clamp_s32(int64_t(w) - round_step(step, r, u)));
}

int32_t ZoTrainer::updated_bias(int32_t b, float step, Rounding r, float u) {
  return clamp_s32(int64_t(b) - round_step(step, r, u));
}

template <class FW, class FB>
void ZoTrainer::for_each_gradient(const Layer& l, int li, FW&& fw, FB&& fb) const {
  const float batch = static_cast<float>(sample_);
  if (config_.bias_only) {
    // dL/db per int32 LSB: / (Q B), then GNS with n = B Q over every perturbed bias.
    const float n_eff = static_cast<float>(config_.n_queries_b) * batch;
    const float scale = gns_factor(config_.gns, n_eff, static_cast<float>(bias_dims_)) / n_eff;
    for (int o = 0; o < l.c_out; ++o) fb(size_t(o), l.grad_b[o] * scale);
    (void)fw;
    (void)li;
    return;
  }
  if (l.spec.mode == PerturbMode::kWeight) {
    // g_i = c / (n sigma) * sum_q (mean L_q - mean L_0) u_q[i], u_q regenerated
    // from its seed in blocks of 64 elements (no d-sized gradient buffer).
    const int sides = config_.two_sided ? 2 : 1;
    auto wp = [&](int n, float sigma, const float* sums, RngStream stream, size_t d, auto&& emit) {
      if (n > kMaxQueries) n = kMaxQueries;
      const float c = gns_factor(config_.gns, static_cast<float>(n), static_cast<float>(d));
      const float scale = c / (static_cast<float>(n) * sigma * (sides == 2 ? 2.f : 1.f));
      // The control variate needs the sum of all n coefficients (computed in
      // query order, one pass over the n sums, no array).
      float coef_sum = 0.f;
      if (config_.baseline == Baseline::kMean && n >= 2)
        for (int q = 0; q < n; ++q)
          coef_sum += sides == 2 ? (sums[q] - sums[n + q]) / batch : (sums[q] - sum_l0_) / batch;
      const float inv_others = n >= 2 ? 1.f / static_cast<float>(n - 1) : 0.f;
      // Coefficients and keys are recomputed per block of 64 elements rather
      // than kept in Q-sized arrays: a few hashes per block, no stack arrays.
      for (size_t base = 0; base < d; base += 64) {
        float g[64] = {0.f};
        const size_t len = d - base < 64 ? d - base : 64;
        for (int q = 0; q < n; ++q) {
          float coef = sides == 2 ? (sums[q] - sums[n + q]) / batch : (sums[q] - sum_l0_) / batch;
          if (config_.baseline == Baseline::kMean && n >= 2) coef -= (coef_sum - coef) * inv_others;
          const uint64_t bitsq = random_block(key(li, stream, q, 0), base >> 6);
          for (size_t j = 0; j < len; ++j) g[j] += ((bitsq >> j) & 1u) ? coef : -coef;
        }
        for (size_t j = 0; j < len; ++j) emit(base + j, g[j] * scale);
      }
    };
    const bool model_wise = config_.estimation == Estimation::kModelWise;
    const int nw = config_.n_queries_w;
    const int nb = model_wise ? (config_.n_queries_b < nw ? config_.n_queries_b : nw) : config_.n_queries_b;
    wp(nw, static_cast<float>(config_.sigma_w_lsb), l.sum_lw, RngStream::kWeightPerturb, l.d_w, fw);
    if (config_.update_bias)
      wp(nb, static_cast<float>(config_.sigma_b_lsb), l.sum_lb, RngStream::kBiasPerturb, size_t(l.c_out), fb);
    return;
  }
  // NP: G /= (Q B), then GNS with the effective sample count B Q and
  // d = unmasked nodes per sample (METHOD §3.2).
  const float n_eff = static_cast<float>(config_.n_queries_np) * batch;
  const float d = static_cast<float>(l.unmasked) / batch;
  const float scale = gns_factor(config_.gns, n_eff, d) / n_eff;
  for (size_t i = 0; i < l.d_w; ++i) fw(i, l.grad_w[i] * scale);
  if (config_.update_bias)
    for (int o = 0; o < l.c_out; ++o) fb(size_t(o), l.grad_b[o] * scale);
}

Status ZoTrainer::node_gradient(int i, Span<float> out) const {
  if (i < 0 || i >= n_layers_ || sample_ == 0 || np_coef_ == nullptr) return Status::kInvalidArgument;
  const Layer& l = layers_[i];
  if (l.spec.mode != PerturbMode::kNode || out.size() < l.y_size) return Status::kInvalidArgument;
  // Every later layer reuses the workspace the coefficients sit in.
  if (i != n_layers_ - 1) return Status::kInvalidArgument;
  for (size_t e = 0; e < l.y_size; ++e) out[e] = 0.f;
  for (int q = 0; q < config_.n_queries_np; ++q) {
    const uint64_t k = key(i, RngStream::kNodePerturb, q, sample_ - 1);
    for (size_t e = 0; e < l.y_size; ++e) out[e] += rademacher(k, e) > 0 ? np_coef_[q] : -np_coef_[q];
  }
  return Status::kOk;
}

Status ZoTrainer::gradient(int i, Span<float> grad_w, Span<float> grad_b) const {
  if (i < 0 || i >= n_layers_ || sample_ == 0) return Status::kInvalidArgument;
  const Layer& l = layers_[i];
  if (grad_w.size() < l.d_w || grad_b.size() < size_t(l.c_out)) return Status::kInvalidArgument;
  // One layer per pass: only the layer of the current pass has its sums
  // complete (and an NP layer its accumulator, which the NP layers share).
  if (config_.one_layer_per_pass && i != pass_) return Status::kInvalidArgument;
  for (int o = 0; o < l.c_out; ++o) grad_b[o] = 0.f;
  for_each_gradient(
      l, i, [&](size_t k, float g) { grad_w[k] = g; }, [&](size_t o, float g) { grad_b[o] = g; });
  return Status::kOk;
}

void ZoTrainer::apply_baseline(float* coef, int n) const {
  if (config_.baseline != Baseline::kMean || n < 2) return;
  float sum = 0.f;
  for (int q = 0; q < n; ++q) sum += coef[q];
  const float inv_others = 1.f / static_cast<float>(n - 1);
  // Leave-one-out: d_q - mean of the others, from the unchanged sum.
  for (int q = 0; q < n; ++q) coef[q] -= (sum - coef[q]) * inv_others;
}

float ZoTrainer::momentum_correction(float beta, uint32_t step) {
  // beta^(step + 1) by repeated products (no libm pow: the device computes the same float).
  float p = 1.f;
  for (uint32_t t = 0; t <= step && p > 0.f; ++t) p *= beta;
  return 1.f / (1.f - p);
}

float ZoTrainer::step_norm_factor(const Layer& l, int li, float beta, float corr) const {
  // ||W_int||^2 exactly (an int8 tensor of < 2^24 elements: < 2^38), then one rounding.
  int64_t ww = 0;
  for (size_t i = 0; i < l.d_w; ++i) ww += int32_t(l.w[i]) * int32_t(l.w[i]);
  // ||g'||^2 in the order for_each_gradient emits, with g' what apply_update
  // steps by per unit of lr: the (momentum-averaged) estimate, over s_w^2 with QAS.
  const size_t per_ch = l.d_w / size_t(l.c_out);
  float gg = 0.f;
  for_each_gradient(
      l, li,
      [&](size_t i, float g) {
        if (l.mom_w != nullptr) g = momentum_average(beta, l.mom_w[i], g) * corr;
        if (config_.qas) {
          const float s = l.s_w[i / per_ch];
          g = g / (s * s);
        }
        gg += g * g;
      },
      [](size_t, float) {});
  // A zero, NaN or overflowing sum gives no step rather than a wild one.
  if (!(gg > 0.f) || !(gg < 3.0e38f)) return 0.f;
  return tz_sqrtf(static_cast<float>(ww)) / tz_sqrtf(gg);
}

int ZoTrainer::apply_update(Layer& l, int li, float lr, int8_t* w_out, int32_t* b_out) {
  // Per-layer learning rate by mode (1 = the paper: lr * 1.f is lr, bit for bit).
  if (!config_.bias_only) lr *= l.spec.mode == PerturbMode::kWeight ? config_.lr_scale_wp : config_.lr_scale_np;
  // Momentum: g becomes the bias-corrected running average of the estimates.
  const float beta = config_.momentum;
  const float corr = beta > 0.f ? momentum_correction(beta, step_) : 1.f;
  // The only writer of the momentum buffers (step_norm_factor reads the same average, unwritten).
  auto averaged = [&](float* m, size_t i, float g) {
    if (m == nullptr) return g;
    m[i] = momentum_average(beta, m[i], g);
    return m[i] * corr;
  };
  const size_t per_ch = l.d_w / size_t(l.c_out);
  if (config_.step_norm == StepNorm::kLayer) lr *= step_norm_factor(l, li, beta, corr);
  const uint64_t round_key_w = key(li, RngStream::kRounding, 0, 0);
  const TzmOp& op = engine_->model().op(l.spec.op);
  const auto* b0 = static_cast<const int32_t*>(engine_->model().data(op.inputs[2]));
  // Decay towards the model's own values w0 / b0 (bias-only training never reads w0).
  const float anchor = config_.anchor;
  const auto* w0 = static_cast<const int8_t*>(engine_->model().data(op.inputs[1]));
  const uint64_t round_key_b = key(li, RngStream::kRounding, 1, 0);
  // Gradients are computed from the step's sums and the weights they were
  // estimated at; the updates below only write element i of w_out / b_out
  // after reading element i of l.w / l.b, which the gradient of this layer
  // no longer reads (so w_out may be l.w).
  int changed = 0;
  for_each_gradient(
      l, li,
      [&](size_t i, float g) {
        g = averaged(l.mom_w, i, g);
        const float u = uniform01(round_key_w, i);
        float step = weight_step(lr, g, config_.qas, l.s_w[i / per_ch]);
        if (anchor > 0.f) step += anchor * static_cast<float>(int32_t(l.w[i]) - int32_t(w0[i]));
        const int8_t nw = updated_weight(l.w[i], step, config_.rounding, u);
        changed += nw != l.w[i];
        w_out[i] = nw;
      },
      [&](size_t o, float g) {
        g = averaged(l.mom_b, o, g);
        const float u = uniform01(round_key_b, o);
        float step = bias_step(lr, g, config_.qas, l.s_x, l.s_w[o]);
        if (anchor > 0.f) step += anchor * static_cast<float>(int64_t(l.b[o]) - int64_t(b0[o]));
        int32_t nb = updated_bias(l.b[o], step, config_.rounding, u);
        // Bias-only: a frozen bias stays; the others within the limit their in-place perturbations need.
        if (config_.bias_only) nb = bias_frozen(b0[o]) ? l.b[o] : clamp_i32(nb, -kBiasOnlyLimit, kBiasOnlyLimit);
        changed += nb != l.b[o];
        b_out[o] = nb;
      });
  return changed;
}

}  // namespace tinyzo
