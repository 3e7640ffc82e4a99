// What the firmware and the host tools (`tinyzo fw-*`, host/cli/cmd_fw.cc)
// must agree on, in one header both compile: the file formats exchanged
// through semihosting, the run configuration and its `key=value` syntax, the
// layer specification, and the training loop itself. The host reference run
// and the device run execute this same loop, so "device == host, bit for bit"
// compares two compilations of one program, not two programs.
//
// Device-safe: no heap, no exceptions, no stdio; only the device library.
// All files are little-endian (both ends are).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>

#include "tinyzo/engine.h"
#include "tinyzo/model.h"
#include "tinyzo/span.h"
#include "tinyzo/status.h"
#include "tinyzo/train/fmath.h"
#include "tinyzo/train/zo_trainer.h"

namespace tinyzo::fw {

// ------------------------------------------------------------------ files

// 2: RunConfig gained momentum (the trained-weights header grew by 8 bytes).
// 3: RunConfig gained step_norm (in what was padding before the seed: the same size).
// 4: RunConfig gained params and bias_mu (ZoConfig::bias_only, bias_mu; 8 bytes more).
// 5: RunConfig gained plus_biases (a second trainer on the other convs' biases; 8 bytes more).
// 6: RunConfig's reserved word became anchor (ZoConfig::anchor; the same size).
constexpr uint32_t kFormatVersion = 6;

// Sample stream (host -> device): this header, then n_samples records of
// record_bytes: uint32 label, int8 input[input_bytes], zero padding to a
// multiple of 4. The device reads one record at a time, straight into the
// engine's input tensor.
struct SampleStreamHeader {
  char magic[4];     // "TZSS"
  uint32_t version;  // kFormatVersion
  uint32_t n_samples;
  uint32_t input_bytes;  // elements of the model input (int8)
  uint32_t n_classes;
  uint32_t record_bytes;  // 4 + input_bytes rounded up to 4
  uint32_t reserved[2];
};
static_assert(sizeof(SampleStreamHeader) == 32, "sample stream header layout");

inline uint32_t sample_record_bytes(uint32_t input_bytes) { return 4u + ((input_bytes + 3u) & ~3u); }
inline size_t sample_offset(const SampleStreamHeader& h, uint32_t index) {
  return sizeof(SampleStreamHeader) + size_t(index) * h.record_bytes;
}

// Logits (device or host -> file): this header, then per sample uint32 label,
// int32 predicted class, float32 logits[n_classes].
struct LogitsHeader {
  char magic[4];  // "TZLG"
  uint32_t version;
  uint32_t n_samples;
  uint32_t n_classes;
};
static_assert(sizeof(LogitsHeader) == 16, "logits header layout");

// ------------------------------------------------------------------ configuration

constexpr int kMaxSpecChars = 96;

// Everything that changes the trained weights. Written verbatim into the
// trained-weights file, so the host can check it ran the same thing.
struct RunConfig {
  uint32_t steps = 1;
  uint32_t batch = 1;
  uint32_t first_sample = 0;  // sample of step s, position b: (first + s * batch + b) mod n_samples
  int32_t queries_w = 25, queries_b = 25, queries_np = 50;
  int32_t sigma_w = 1, sigma_b = 100, mu = 5;
  uint32_t two_sided = 0;
  uint32_t update_bias = 1;
  uint32_t stochastic_rounding = 0;
  uint32_t model_wise = 0;
  float lr = 0.f;  // eta0 of the cosine schedule; 0 = 0.01 * batch / 256 (METHOD §3.6)
  // Beyond the paper (docs/zo-search.md): ZoConfig::baseline, lr_scale_wp, lr_scale_np.
  uint32_t baseline = 0;  // Baseline: 0 none, 1 mean
  float lr_wp = 1.f, lr_np = 1.f;
  uint32_t one_layer_per_pass = 0;  // ZoConfig::one_layer_per_pass (the same weights, less memory)
  float momentum = 0.f;             // ZoConfig::momentum, [0, 1); 0 = off
  uint32_t step_norm = 0;           // StepNorm: 0 none, 1 layer
  uint32_t params = 0;              // 0 all (weights and biases), 1 bias (ZoConfig::bias_only)
  float bias_mu = 0.f;              // ZoConfig::bias_mu (0 = mu)
  // > 0: one more trainer, plus_bias_config(zo_config(c), plus_biases), on the
  // biases of every conv the layers leave out (create_trainers).
  uint32_t plus_biases = 0;
  float anchor = 0.f;  // ZoConfig::anchor, [0, 1]: decay towards the model's values (0 = off)
  uint64_t seed = 0;
  char layers[kMaxSpecChars] = "paper";  // see resolve_layers()
};
static_assert(sizeof(RunConfig) == 200, "run configuration layout");

// Trained weights (device or host -> file): this header, float32 mean loss of
// every step, then per layer a LayerRecord, int8 weights[d_w] zero-padded to a
// multiple of 4, int32 biases[c_out].
struct TrainedHeader {
  char magic[4];  // "TZTW"
  uint32_t version;
  uint32_t n_layers;
  uint32_t n_samples;  // of the stream the run read
  RunConfig config;
};
static_assert(sizeof(TrainedHeader) == 216, "trained header layout");

struct LayerRecord {
  int32_t op;
  uint32_t mode;  // PerturbMode: 0 WP, 1 NP
  uint32_t d_w;
  uint32_t c_out;
};

inline float effective_lr(const RunConfig& c) {
  return c.lr > 0.f ? c.lr : static_cast<float>(0.01 * double(c.batch) / 256.0);
}
inline ZoConfig zo_config(const RunConfig& c) {
  ZoConfig z;
  z.n_queries_w = c.queries_w;
  z.n_queries_b = c.queries_b;
  z.n_queries_np = c.queries_np;
  z.sigma_w_lsb = c.sigma_w;
  z.sigma_b_lsb = c.sigma_b;
  z.mu_lsb = c.mu;
  z.two_sided = c.two_sided != 0;
  z.update_bias = c.update_bias != 0;
  z.rounding = c.stochastic_rounding ? Rounding::kStochastic : Rounding::kNearest;
  z.estimation = c.model_wise ? Estimation::kModelWise : Estimation::kLayerWise;
  z.baseline = c.baseline ? Baseline::kMean : Baseline::kNone;
  z.lr_scale_wp = c.lr_wp;
  z.lr_scale_np = c.lr_np;
  z.one_layer_per_pass = c.one_layer_per_pass != 0;
  z.momentum = c.momentum;
  z.step_norm = c.step_norm ? StepNorm::kLayer : StepNorm::kNone;
  z.bias_only = c.params != 0;
  z.bias_mu = c.bias_mu;
  z.anchor = c.anchor;
  z.seed = c.seed;
  return z;
}

namespace detail {
inline bool parse_u64(const char* s, uint64_t* out) {
  if (*s == 0) return false;
  uint64_t v = 0;
  const bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  if (hex) s += 2;
  if (*s == 0) return false;
  for (; *s; ++s) {
    int d;
    if (*s >= '0' && *s <= '9')
      d = *s - '0';
    else if (hex && *s >= 'a' && *s <= 'f')
      d = *s - 'a' + 10;
    else if (hex && *s >= 'A' && *s <= 'F')
      d = *s - 'A' + 10;
    else
      return false;
    v = v * (hex ? 16 : 10) + uint64_t(d);
  }
  *out = v;
  return true;
}
inline bool parse_i32(const char* s, int32_t lo, int32_t hi, int32_t* out) {
  const bool neg = *s == '-';
  uint64_t v;
  if (!parse_u64(neg ? s + 1 : s, &v) || v > 0x7fffffffull) return false;
  const int64_t x = neg ? -int64_t(v) : int64_t(v);
  if (x < lo || x > hi) return false;
  *out = int32_t(x);
  return true;
}
// A non-negative decimal ("0.0039", "4e-3") or the float's bits ("0x3b800000").
// Decimal: digits D with point shift k give f32(double(D) / 10^k), one
// correctly rounded double division, so host and device get the same bits.
inline bool parse_float(const char* s, float* out) {
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    uint64_t bits;
    if (!parse_u64(s, &bits) || bits > 0xffffffffull) return false;
    const uint32_t b = uint32_t(bits);
    std::memcpy(out, &b, 4);
    return true;
  }
  uint64_t digits = 0;
  int n_digits = 0, scale = 0;
  bool point = false;
  for (; *s && *s != 'e' && *s != 'E'; ++s) {
    if (*s == '.' && !point) {
      point = true;
      continue;
    }
    if (*s < '0' || *s > '9' || n_digits >= 17) return false;
    digits = digits * 10 + uint64_t(*s - '0');
    ++n_digits;
    if (point) ++scale;
  }
  if (n_digits == 0) return false;
  if (*s == 'e' || *s == 'E') {
    int32_t e;
    if (!parse_i32(s + 1, -20, 20, &e)) return false;
    scale -= e;
  }
  double v = double(digits);
  double p = 1.0;
  for (int i = 0; i < (scale < 0 ? -scale : scale); ++i) p *= 10.0;  // exact up to 10^22
  if (scale > 22 || scale < -22) return false;
  v = scale >= 0 ? v / p : v * p;
  *out = static_cast<float>(v);
  return true;
}
// A two-way choice: *out = 0 for `first`, 1 for `second`; false (unchanged) for anything else.
inline bool parse_choice(const char* v, const char* first, const char* second, uint32_t* out) {
  if (std::strcmp(v, first) == 0) {
    *out = 0;
    return true;
  }
  if (std::strcmp(v, second) == 0) {
    *out = 1;
    return true;
  }
  return false;
}
}  // namespace detail

// Applies one `key=value` token. Keys: steps, batch, first, qw, qb, qnp,
// sigma_w, sigma_b, mu, two_sided (0/1), bias (0/1: update the biases),
// rounding (nearest/stochastic), estimation (layer/model), lr, baseline
// (none/mean), lr_wp, lr_np, passes (1: all layers in one pass over the
// batch, layer: one layer per pass), momentum (0 <= beta < 1), step_norm
// (none/layer), params (all/bias), bias_mu (0 <= x <= 127, 0 = mu),
// plus_biases (0..256: the other convs' biases, that many queries per sample), anchor (0 <= x <= 1:
// decay towards the model's values), seed, layers.
// Returns false (config unchanged for that key) for an unknown key or a bad
// value.
inline bool apply_token(RunConfig* c, const char* token) {
  const char* eq = std::strchr(token, '=');
  if (eq == nullptr) return false;
  const size_t klen = size_t(eq - token);
  const char* v = eq + 1;
  auto is = [&](const char* k) { return std::strlen(k) == klen && std::strncmp(token, k, klen) == 0; };
  int32_t i = 0;
  uint64_t u = 0;
  if (is("steps")) {
    if (!detail::parse_i32(v, 1, 1 << 20, &i)) return false;
    c->steps = uint32_t(i);
    return true;
  }
  if (is("batch")) {
    if (!detail::parse_i32(v, 1, 1 << 20, &i)) return false;
    c->batch = uint32_t(i);
    return true;
  }
  if (is("first")) {
    if (!detail::parse_i32(v, 0, 0x7fffffff, &i)) return false;
    c->first_sample = uint32_t(i);
    return true;
  }
  if (is("qw")) return detail::parse_i32(v, 1, ZoTrainer::kMaxQueries, &c->queries_w);
  if (is("qb")) return detail::parse_i32(v, 1, ZoTrainer::kMaxQueries, &c->queries_b);
  if (is("qnp")) return detail::parse_i32(v, 1, 1 << 16, &c->queries_np);
  if (is("sigma_w")) return detail::parse_i32(v, 1, 127, &c->sigma_w);
  if (is("sigma_b")) return detail::parse_i32(v, 1, 1 << 30, &c->sigma_b);
  if (is("mu")) return detail::parse_i32(v, 1, 127, &c->mu);
  if (is("two_sided")) {
    if (!detail::parse_i32(v, 0, 1, &i)) return false;
    c->two_sided = uint32_t(i);
    return true;
  }
  if (is("bias")) {
    if (!detail::parse_i32(v, 0, 1, &i)) return false;
    c->update_bias = uint32_t(i);
    return true;
  }
  if (is("rounding")) return detail::parse_choice(v, "nearest", "stochastic", &c->stochastic_rounding);
  if (is("estimation")) return detail::parse_choice(v, "layer", "model", &c->model_wise);
  if (is("lr")) return detail::parse_float(v, &c->lr) && c->lr >= 0.f;
  if (is("passes")) return detail::parse_choice(v, "1", "layer", &c->one_layer_per_pass);
  if (is("baseline")) return detail::parse_choice(v, "none", "mean", &c->baseline);
  if (is("step_norm")) return detail::parse_choice(v, "none", "layer", &c->step_norm);
  if (is("params")) return detail::parse_choice(v, "all", "bias", &c->params);
  if (is("bias_mu")) {
    float x = 0.f;
    if (!detail::parse_float(v, &x) || !(x >= 0.f && x <= 127.f)) return false;
    c->bias_mu = x;
    return true;
  }
  if (is("plus_biases")) {
    if (!detail::parse_i32(v, 0, ZoTrainer::kMaxQueries, &i)) return false;
    c->plus_biases = uint32_t(i);
    return true;
  }
  if (is("anchor")) {
    float x = 0.f;
    if (!detail::parse_float(v, &x) || !(x >= 0.f && x <= 1.f)) return false;
    c->anchor = x;
    return true;
  }
  if (is("lr_wp")) return detail::parse_float(v, &c->lr_wp) && c->lr_wp <= 1e6f;
  if (is("lr_np")) return detail::parse_float(v, &c->lr_np) && c->lr_np <= 1e6f;
  if (is("momentum")) {
    float b = 0.f;
    if (!detail::parse_float(v, &b) || !(b >= 0.f && b < 1.f)) return false;
    c->momentum = b;
    return true;
  }
  if (is("seed")) {
    if (!detail::parse_u64(v, &u)) return false;
    c->seed = u;
    return true;
  }
  if (is("layers")) {
    if (std::strlen(v) + 1 > sizeof c->layers || *v == 0) return false;
    std::memset(c->layers, 0, sizeof c->layers);
    std::memcpy(c->layers, v, std::strlen(v));
    return true;
  }
  return false;
}

// ------------------------------------------------------------------ layers

inline int find_op(const ModelView& m, const char* name, size_t len) {
  if (len > 1 && name[0] == '#') {
    int32_t idx;
    char buf[16];
    if (len - 1 >= sizeof buf) return -1;
    std::memcpy(buf, name + 1, len - 1);
    buf[len - 1] = 0;
    return detail::parse_i32(buf, 0, m.n_ops() - 1, &idx) ? idx : -1;
  }
  for (int i = 0; i < m.n_ops(); ++i)
    if (std::strlen(m.op(i).name) == len && std::strncmp(m.op(i).name, name, len) == 0) return i;
  return -1;
}

// Resolves a layer specification into Conv2d ops sorted by index:
//   paper     the paper's CIFAR-10-C set (METHOD §4): the first pointwise conv
//             of blocks 4..7 (1.k.conv.0, or blocks.k.pointwise1 in the .pkl
//             models), WP for blocks 4-5 and NP for 6-7;
//   paper-wp  the same four layers, all WP;
//   all       every Conv2d of the model, WP (dense full-model ZO);
//   otherwise a comma list of op names or #index, each optionally suffixed
//             :wp (default) or :np.
// kInvalidArgument for an unknown name, a non-Conv2d op, a duplicate or more
// than `cap` layers.
inline Status resolve_layers(const ModelView& m, const char* spec, TrainLayer* out, int cap, int* n_out) {
  int n = 0;
  auto add = [&](int op, PerturbMode mode) -> bool {
    if (op < 0 || op >= m.n_ops() || static_cast<OpType>(m.op(op).type) != OpType::kConv2d || n >= cap)
      return false;
    int at = n;
    while (at > 0 && out[at - 1].op > op) {
      out[at] = out[at - 1];
      --at;
    }
    if (at > 0 && out[at - 1].op == op) return false;
    out[at].op = op;
    out[at].mode = mode;
    ++n;
    return true;
  };
  const bool paper = std::strcmp(spec, "paper") == 0, paper_wp = std::strcmp(spec, "paper-wp") == 0;
  if (paper || paper_wp) {
    for (int k = 4; k <= 7; ++k) {
      char a[32] = "1.?.conv.0", b[32] = "blocks.?.pointwise1";
      a[2] = char('0' + k);
      b[7] = char('0' + k);
      int op = find_op(m, a, std::strlen(a));
      if (op < 0) op = find_op(m, b, std::strlen(b));
      if (!add(op, (paper && k >= 6) ? PerturbMode::kNode : PerturbMode::kWeight))
        return Status::kInvalidArgument;
    }
  } else if (std::strcmp(spec, "all") == 0) {
    for (int i = 0; i < m.n_ops(); ++i)
      if (static_cast<OpType>(m.op(i).type) == OpType::kConv2d && !add(i, PerturbMode::kWeight))
        return Status::kInvalidArgument;
  } else {
    const char* s = spec;
    while (*s) {
      const char* e = std::strchr(s, ',');
      size_t len = e ? size_t(e - s) : std::strlen(s);
      PerturbMode mode = PerturbMode::kWeight;
      if (len > 3 && std::strncmp(s + len - 3, ":np", 3) == 0) {
        mode = PerturbMode::kNode;
        len -= 3;
      } else if (len > 3 && std::strncmp(s + len - 3, ":wp", 3) == 0) {
        len -= 3;
      }
      if (!add(find_op(m, s, len), mode)) return Status::kInvalidArgument;
      s = e ? e + 1 : s + std::strlen(s);
    }
  }
  if (n == 0) return Status::kInvalidArgument;
  *n_out = n;
  return Status::kOk;
}

// ZoTrainer takes at most ZoTrainer::kMaxLayers layers; a larger set (dense
// training of MCUNet-5fps: 42 convs) is split into consecutive groups with one
// trainer each, stepped in lockstep. That is the same estimator, bit for bit:
// every layer is still estimated at the same weights with the same perturbation
// keys (they hash the op index, not the position), and each trainer sees the
// same samples; the only cost is one extra unperturbed forward per sample and
// group.
constexpr int kMaxGroups = 2;
static_assert(std::is_trivially_destructible<ZoTrainer>::value,
              "trainers live in the arena, never destroyed");
// The largest layer set a run may name. The firmware resolves it into a table on the stack
// (prepare_training, 8 B per entry), so this is a small fixed bound, not the groups' capacity
// (2 x ZoTrainer::kMaxLayers = 512 entries would be a 4 KB frame, more than the 256k image's
// stack): every conv of MCUNet-5fps (42) fits.
constexpr int kMaxRunLayers = 64;
static_assert(kMaxRunLayers <= kMaxGroups * ZoTrainer::kMaxLayers, "the groups hold every run layer");
inline int n_groups(int n_layers) { return (n_layers + ZoTrainer::kMaxLayers - 1) / ZoTrainer::kMaxLayers; }
inline int group_begin(int g) { return g * ZoTrainer::kMaxLayers; }
inline int group_size(int n_layers, int g) {
  const int rest = n_layers - group_begin(g);
  return rest < ZoTrainer::kMaxLayers ? rest : ZoTrainer::kMaxLayers;
}

// Constructs one trainer per group in `arena` and initializes it (the engine
// already set up): the trainer objects (and the layer tables they allocate) are
// arena memory like their buffers, so an image pays only for the trainers its
// job uses.
inline Status create_trainers(Engine& engine, const TrainLayer* layers, int n_layers, const RunConfig& c,
                              Arena& arena, ZoTrainer** trainers, int* groups_out) {
  const int groups = n_groups(n_layers);
  const int plus = c.plus_biases > 0 ? 1 : 0;
  if (groups + plus > kMaxGroups || groups < 1) return Status::kInvalidArgument;
  const ZoConfig z = zo_config(c);
  auto create = [&](int g, const TrainLayer* l, int n, const ZoConfig& config) -> Status {
    void* p = arena.allocate(sizeof(ZoTrainer), alignof(ZoTrainer));
    if (p == nullptr) return Status::kOutOfMemory;
    trainers[g] = new (p) ZoTrainer();  // trivially destructible: never destroyed, the arena is dropped whole
    return trainers[g]->init(engine, Span<const TrainLayer>(l, size_t(n)), config, arena);
  };
  for (int g = 0; g < groups; ++g)
    TZ_RETURN_IF_ERROR(create(g, layers + group_begin(g), group_size(n_layers, g), z));
  if (plus) {
    // plus_biases: every conv the layers leave out (plus_bias_layers), on
    // the stack only while the trainer copies the table.
    TrainLayer rest[kMaxRunLayers];
    const int n_rest = plus_bias_layers(engine.model(), Span<const TrainLayer>(layers, size_t(n_layers)),
                                        rest, kMaxRunLayers);
    if (n_rest <= 0) return Status::kInvalidArgument;
    TZ_RETURN_IF_ERROR(create(groups, rest, n_rest, plus_bias_config(z, int(c.plus_biases))));
  }
  *groups_out = groups + plus;
  return Status::kOk;
}

// ------------------------------------------------------------------ the loop

// The logits of the engine's last invoke() as float32 (a float head's output,
// or the int8 output dequantized).
inline void read_logits(const Engine& e, float* out, int n_classes) {
  const TzmTensor& t = e.output_info();
  if (t.dtype == uint8_t(DType::kFloat32)) {
    std::memcpy(out, e.output_f32().data(), size_t(n_classes) * 4);
  } else {
    const int8_t* q = e.output_s8().data();
    for (int i = 0; i < n_classes; ++i) out[i] = static_cast<float>(int32_t(q[i]) - t.zero_point) * t.scale;
  }
}

inline int argmax(const float* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

// A sample of the stream that the trainer may ask for again
// (ZoTrainer::SampleReader): model-wise estimation rewrites the engine's input
// before every query, from the stream itself, so no copy of the sample sits
// in SRAM (48 KB at 128x128x3). The label read again is not used.
template <class Reload>
struct StreamedSample {
  Reload* reload;
  uint32_t index;
  static Status read(void* context, Span<int8_t> input) {
    auto* s = static_cast<StreamedSample*>(context);
    int label = -1;
    return (*s->reload)(s->index, input, &label);
  }
};

// Runs `c.steps` ZO steps. `load(index, input, &label)` must write sample
// `index` of the stream into `input` (input.size() bytes) and its label; the
// target is the engine's input tensor itself, no copy of the sample exists
// anywhere else. load() is called once per sample and group, right before
// that group's accumulate_sample (the engine reuses the input tensor's memory
// later in the forward, so the sample is loaded again for every group).
// Model-wise estimation writes the sample into the input again before every
// query with `reload(index, input, &label)`: the same bytes as load(), without
// load()'s side effects (the cost report's per-sample marker).
// `on_step(step, mean_loss, lr)` after each step (trainers[g]->last_step() has the rest);
// `mark()` at the start of every step and once after the last (the
// instruction-count plugin's marker on the device).
template <class Load, class Reload, class OnStep, class Mark>
Status run_training(Engine& engine, ZoTrainer* const* trainers, int groups, const RunConfig& c,
                    uint32_t n_samples, Load&& load, Reload&& reload, OnStep&& on_step, Mark&& mark) {
  if (n_samples == 0) return Status::kInvalidArgument;
  const float lr0 = effective_lr(c);
  const Span<int8_t> input = engine.input();
  using Streamed = StreamedSample<std::remove_reference_t<Reload>>;
  for (uint32_t s = 0; s < c.steps; ++s) {
    mark();
    const float lr = cosine_lr(lr0, int(s), int(c.steps));
    int passes = 1;
    for (int g = 0; g < groups; ++g) {
      TZ_RETURN_IF_ERROR(trainers[g]->begin_step(s));
      passes = trainers[g]->n_passes() > passes ? trainers[g]->n_passes() : passes;
    }
    // One pass over the batch, or (passes=layer) one per trained layer: the
    // samples are streamed again for every pass.
    for (int p = 0; p < passes; ++p) {
      for (int g = 0; g < groups; ++g)
        if (p > 0 && p < trainers[g]->n_passes()) TZ_RETURN_IF_ERROR(trainers[g]->next_pass(lr));
      for (uint32_t b = 0; b < c.batch; ++b) {
        const uint32_t index = uint32_t((uint64_t(c.first_sample) + uint64_t(s) * c.batch + b) % n_samples);
        for (int g = 0; g < groups; ++g) {
          if (p >= trainers[g]->n_passes()) continue;
          int label = -1;
          TZ_RETURN_IF_ERROR(load(index, input, &label));
          Streamed again{&reload, index};
          const ZoTrainer::SampleReader reader{&Streamed::read, &again};
          TZ_RETURN_IF_ERROR(trainers[g]->accumulate_sample(reader, label));
        }
      }
    }
    for (int g = 0; g < groups; ++g) TZ_RETURN_IF_ERROR(trainers[g]->end_step(lr));
    on_step(s, trainers[0]->last_step().mean_loss, lr);
  }
  mark();
  return Status::kOk;
}

}  // namespace tinyzo::fw
