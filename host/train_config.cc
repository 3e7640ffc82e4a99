#include "train_config.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "errors.h"
#include "model_store.h"
#include "rng.h"
#include "tinyzo/train/memory_model.h"

namespace tinyzo {

// Every config key, in the order config_to_json writes them.
#define TZ_TRAIN_CONFIG_FIELDS(X)                                                                             \
  X(model) X(kernels) X(corruption) X(severity) X(corruption_seed) X(train_per_class) X(val_per_class)       \
  X(test_per_class) X(split_seed) X(augment) X(layers) X(mode) X(budget_kb) X(queries_w) X(queries_b)         \
  X(queries_np) X(sigma_w) X(sigma_b) X(mu) X(two_sided) X(gns) X(rounding) X(estimation) X(update_bias) X(qas)     \
  X(batch) X(epochs) X(lr) X(max_steps) X(seed) X(threads) X(engine_batch) X(out)

namespace {

// Strict typing: an int key takes only an integer, a bool only true/false.
void assign(const nlohmann::json& v, std::string* dst, const std::string& where) {
  if (!v.is_string()) throw CliError(where + ": expected a string");
  *dst = v.get<std::string>();
}
void assign(const nlohmann::json& v, bool* dst, const std::string& where) {
  if (!v.is_boolean()) throw CliError(where + ": expected true or false");
  *dst = v.get<bool>();
}
void assign(const nlohmann::json& v, double* dst, const std::string& where) {
  if (!v.is_number()) throw CliError(where + ": expected a number");
  *dst = v.get<double>();
}
void assign(const nlohmann::json& v, int* dst, const std::string& where) {
  if (!v.is_number_integer()) throw CliError(where + ": expected an integer");
  const int64_t x = v.get<int64_t>();
  if (x < INT32_MIN || x > INT32_MAX) throw CliError(where + ": out of range");
  *dst = static_cast<int>(x);
}
void assign(const nlohmann::json& v, uint64_t* dst, const std::string& where) {
  if (!v.is_number_unsigned()) throw CliError(where + ": expected a non-negative integer");
  *dst = v.get<uint64_t>();
}

void require(bool ok, const char* key, const std::string& why) {
  if (!ok) throw CliError(std::string("config: ") + key + " " + why);
}

}  // namespace

void check_status(Status s, const std::string& what) {
  if (s != Status::kOk) throw CliError(what + ": " + status_name(s));
}

nlohmann::ordered_json config_to_json(const TrainConfig& c) {
  nlohmann::ordered_json j;
#define TZ_TO_JSON(name) j[#name] = c.name;
  TZ_TRAIN_CONFIG_FIELDS(TZ_TO_JSON)
#undef TZ_TO_JSON
  return j;
}

void apply_config_json(const nlohmann::json& j, TrainConfig* c, const std::string& what) {
  if (!j.is_object()) throw CliError(what + ": expected a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const std::string where = what + ": key '" + key + "'";
    bool known = false;
#define TZ_FROM_JSON(name)          \
  if (key == #name) {               \
    assign(*it, &c->name, where);   \
    known = true;                   \
  }
    TZ_TRAIN_CONFIG_FIELDS(TZ_FROM_JSON)
#undef TZ_FROM_JSON
    if (!known && key.rfind("_", 0) != 0)  // "_comment" and other "_" keys are free text
      throw CliError(where + " is not a setting (see docs/training.md)");
  }
}

TrainConfig load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw CliError(path + ": cannot open the config file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw CliError(path + ": invalid JSON (" + e.what() + ")");
  }
  TrainConfig c;
  apply_config_json(j, &c, path);
  return c;
}

void validate_config(const TrainConfig& c) {
  require(!c.model.empty(), "model", "is empty");
  require(c.kernels == "best" || c.kernels == "ref", "kernels", "must be best or ref");
  require(c.corruption == "none" || (c.severity >= 1 && c.severity <= 5), "severity", "must be 1..5");
  require(c.train_per_class >= 1, "train_per_class", "must be >= 1");
  require(c.val_per_class >= 1, "val_per_class", "must be >= 1");
  require(c.test_per_class >= 1, "test_per_class", "must be >= 1");
  require(c.budget_kb >= 0, "budget_kb", "must be >= 0");
  // The trainer keeps at most 256 per-query coefficients per tensor.
  require(c.queries_w >= 1 && c.queries_w <= 256, "queries_w", "must be 1..256");
  require(c.queries_b >= 1 && c.queries_b <= 256, "queries_b", "must be 1..256");
  require(c.queries_np >= 1 && c.queries_np <= 256, "queries_np", "must be 1..256");
  require(c.sigma_w >= 1 && c.sigma_w <= 127, "sigma_w", "must be 1..127 (int8 LSBs)");
  require(c.sigma_b >= 1, "sigma_b", "must be >= 1 (int32 LSBs)");
  require(c.mu >= 1 && c.mu <= 127, "mu", "must be 1..127 (int8 LSBs)");
  require(c.gns == "none" || c.gns == "linear" || c.gns == "sqrt", "gns", "must be none, linear or sqrt");
  require(c.rounding == "nearest" || c.rounding == "stochastic", "rounding", "must be nearest or stochastic");
  require(c.estimation == "layer" || c.estimation == "model", "estimation", "must be layer or model");
  require(c.batch >= 1, "batch", "must be >= 1");
  require(c.epochs >= 1, "epochs", "must be >= 1");
  require(c.lr >= 0, "lr", "must be >= 0 (0 = 0.01 * batch / 256)");
  require(c.max_steps >= 0, "max_steps", "must be >= 0");
  require(c.threads >= 1 && c.threads <= 256, "threads", "must be 1..256");
  require(c.engine_batch >= 1 && c.engine_batch <= 64, "engine_batch", "must be 1..64");
  (void)parse_mode(c.mode);
}

double effective_lr(const TrainConfig& c) { return c.lr > 0 ? c.lr : 0.01 * double(c.batch) / 256.0; }

std::string config_fingerprint(const TrainConfig& c) {
  nlohmann::ordered_json j = config_to_json(c);
  j.erase("threads");
  j.erase("engine_batch");
  j.erase("out");
  j.erase("kernels");  // every kernel set is bit-exact with the reference
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_name64(j.dump())));
  return hex;
}

// ------------------------------------------------------------------ layers

int op_block(const std::string& name) {
  for (const char* prefix : {"1.", "blocks."}) {
    const size_t n = std::char_traits<char>::length(prefix);
    if (name.compare(0, n, prefix) != 0) continue;
    size_t i = n;
    int k = 0;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9' && k < 100000) k = k * 10 + (name[i++] - '0');
    if (i > n && (i == name.size() || name[i] == '.')) return k;
  }
  return -1;
}

int find_op_by_name(const ModelView& m, const std::string& name) {
  for (int i = 0; i < m.n_ops(); ++i)
    if (name == m.op(i).name) return i;
  if (name.size() > 1 && name[0] == '#' &&
      std::all_of(name.begin() + 1, name.end(), [](char c) { return c >= '0' && c <= '9'; }) && name.size() < 10) {
    const int v = std::stoi(name.substr(1));
    if (v < m.n_ops()) return v;
  }
  return -1;
}

ModeRule parse_mode(const std::string& s) {
  ModeRule r;
  if (s == "wp") {
    r.kind = ModeRule::kWeight;
  } else if (s == "np") {
    r.kind = ModeRule::kNode;
  } else if (s == "auto") {
    r.kind = ModeRule::kAuto;
  } else if (s.rfind("threshold:", 0) == 0 && s.size() > 10 && s.size() < 16 &&
             std::all_of(s.begin() + 10, s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    r.kind = ModeRule::kThreshold;
    r.threshold = std::stoi(s.substr(10));
  } else {
    throw CliError("--mode '" + s + "': expected wp, np, threshold:N or auto");
  }
  return r;
}

ConvDims conv_dims(const ModelView& m, int op) {
  const TzmOp& o = m.op(op);
  ConvDims d;
  d.d_w = tensor_elements(m.tensor(o.inputs[1]));
  d.c_out = size_t(m.tensor(o.output).dims[2]);
  d.d_out = tensor_elements(m.tensor(o.output));
  d.d_in = tensor_elements(m.tensor(o.inputs[0]));
  const int groups = o.params[kConvGroups];
  d.depthwise = groups > 1 && groups == m.tensor(o.inputs[0]).dims[2];
  return d;
}

namespace {

bool is_conv(const ModelView& m, int op) { return static_cast<OpType>(m.op(op).type) == OpType::kConv2d; }

// The paper's released CIFAR-10-C set (METHOD §4), as the .pth and .pkl name them.
constexpr const char* kPaperLayers[][2] = {
    {"1.4.conv.0", "blocks.4.pointwise1"},
    {"1.5.conv.0", "blocks.5.pointwise1"},
    {"1.6.conv.0", "blocks.6.pointwise1"},
    {"1.7.conv.0", "blocks.7.pointwise1"},
};

}  // namespace

std::vector<int> paper_layer_ops(const ModelView& m, const std::string& flag) {
  std::vector<int> ops;
  for (const auto& names : kPaperLayers) {
    int op = find_op_by_name(m, names[0]);
    if (op < 0) op = find_op_by_name(m, names[1]);
    if (op < 0 || !is_conv(m, op))
      throw CliError(flag + " paper: the model has no conv named " + names[0] +
                     " (the paper's layer set is defined on MCUNet-5fps, e.g. --model mcunet-cifar10)");
    ops.push_back(op);
  }
  return ops;
}

std::vector<LayerChoice> resolve_layers(const ModelView& m, const std::string& spec, const ModeRule& mode,
                                        const AutoModeContext& ctx) {
  struct Pending {
    int op;
    int forced;  // -1 = from --mode, 0 = WP, 1 = NP
  };
  std::vector<Pending> picked;
  auto add = [&](int op, int forced) {
    for (Pending& p : picked)
      if (p.op == op) {
        if (forced >= 0) p.forced = forced;
        return;
      }
    picked.push_back(Pending{op, forced});
  };
  std::stringstream ss(spec);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    tok.erase(0, tok.find_first_not_of(" \t"));
    tok.erase(tok.find_last_not_of(" \t") + 1);
    if (tok.empty()) continue;
    int forced = -1;
    const size_t colon = tok.rfind(':');
    if (colon != std::string::npos) {
      const std::string suffix = tok.substr(colon + 1);
      if (suffix != "wp" && suffix != "np")
        throw CliError("--layers: '" + tok + "': the suffix must be :wp or :np");
      forced = suffix == "np" ? 1 : 0;
      tok = tok.substr(0, colon);
    }
    if (tok == "paper") {
      for (int op : paper_layer_ops(m, "--layers")) add(op, forced);
    } else if (tok == "all") {
      for (int i = 0; i < m.n_ops(); ++i)
        if (is_conv(m, i)) add(i, forced);
    } else {
      const int op = find_op_by_name(m, tok);
      if (op < 0) throw CliError("--layers: the model has no op named '" + tok + "' (see tinyzo info)");
      if (!is_conv(m, op)) throw CliError("--layers: op '" + tok + "' is not a Conv2d; only convs can be trained");
      add(op, forced);
    }
  }
  if (picked.empty()) throw CliError("--layers '" + spec + "': no layers");
  std::sort(picked.begin(), picked.end(), [](const Pending& a, const Pending& b) { return a.op < b.op; });

  std::vector<LayerChoice> out;
  for (const Pending& p : picked) {
    LayerChoice c;
    c.op = p.op;
    switch (mode.kind) {
      case ModeRule::kWeight: c.node = false; break;
      case ModeRule::kNode: c.node = true; break;
      case ModeRule::kThreshold: c.node = op_block(m.op(p.op).name) > mode.threshold; break;
      case ModeRule::kAuto: {
        const ConvDims d = conv_dims(m, p.op);
        c.node = double(d.d_out) <= kAutoNodeFactor * double(d.d_w);
        break;
      }
    }
    if (p.forced >= 0) c.node = p.forced == 1;
    out.push_back(c);
  }
  if (mode.kind == ModeRule::kAuto && ctx.budget_kb > 0) {
    // Over budget: move NP layers (not forced) to WP, the biggest saving first.
    const size_t budget = size_t(ctx.budget_kb * 1024.0);
    for (;;) {
      const size_t now = predict_training_memory(m, out, ctx.n_queries, ctx.batch).total_bytes();
      if (now <= budget) break;
      size_t best = now;
      int best_i = -1;
      for (size_t i = 0; i < out.size(); ++i) {
        if (!out[i].node || picked[i].forced == 1) continue;
        out[i].node = false;
        const size_t v = predict_training_memory(m, out, ctx.n_queries, ctx.batch).total_bytes();
        out[i].node = true;
        if (v < best) {
          best = v;
          best_i = int(i);
        }
      }
      if (best_i < 0) break;  // nothing left to save; the caller reports the overrun
      out[size_t(best_i)].node = false;
    }
  }
  return out;
}

std::string layers_to_string(const ModelView& m, const std::vector<LayerChoice>& layers) {
  std::string s;
  for (const LayerChoice& l : layers) s += (s.empty() ? "" : ",") + std::string(m.op(l.op).name) + (l.node ? ":np" : ":wp");
  return s;
}

// ------------------------------------------------------------------ memory

MemoryPrediction predict_training_memory(const ModelView& m, const std::vector<LayerChoice>& layers, int n_queries,
                                         int batch) {
  const size_t nt = size_t(m.n_tensors());
  std::vector<BufferRequest> requests(nt);
  std::vector<size_t> offsets(nt);
  std::vector<int> scratch(nt);
  InferenceMemory inf;
  check_status(plan_inference(m, Span<BufferRequest>(requests.data(), nt), Span<size_t>(offsets.data(), nt),
                       Span<int>(scratch.data(), nt), &inf),
        "memory model: planning the activations");
  std::vector<TrainLayer> tl;
  for (const LayerChoice& l : layers) tl.push_back(TrainLayer{l.op, l.node ? ZoMode::kNode : ZoMode::kWeight});
  std::vector<ZoLayerMemory> per(tl.size());
  ZoSettings s;
  s.n_queries = n_queries;
  s.batch = batch;
  ZoMemory z;
  check_status(zo_memory(m, Span<const BufferRequest>(requests.data(), nt), Span<const TrainLayer>(tl.data(), tl.size()), s,
                  Span<ZoLayerMemory>(per.data(), per.size()), &z),
        "memory model: ZO accounting");
  MemoryPrediction p;
  p.inference_bytes = required_arena_bytes(m);
  p.zo_extra_bytes = z.extra_bytes;
  p.persistent_bytes = z.persistent_bytes;
  p.workspace_bytes = z.workspace_bytes;
  for (const ZoLayerMemory& l : per) p.layer_extra_bytes.push_back(l.extra_bytes());
  return p;
}

}  // namespace tinyzo
