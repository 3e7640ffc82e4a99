// `tinyzo plan`: SRAM and flash of a model for inference, and what ZO (WP /
// NP) and BP training of a layer set add. The accounting rules are in
// docs/memory.md; the numbers come from include/tinyzo/train/memory_model.h.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "util/errors.h"
#include "models/fused_plan.h"
#include "models/lifetime_chart.h"
#include "models/model_store.h"
#include "options.h"
#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/fusion.h"
#include "tinyzo/train/memory_model.h"
#include "tinyzo/train/zo_trainer.h"
#include "train/train_config.h"

namespace tinyzo::cli {
namespace {

using Json = nlohmann::ordered_json;

struct PlanArgs {
  std::string model;
  std::string train;
  std::string mode;  // "", "wp", "np", "auto"
  int batch = 100;
  int queries = 50;
  double budget_kb = 256;
  int width = 96;
  bool json = false;
  bool no_chart = false;
  bool np_materialize_grad = false;
  bool one_layer_per_pass = false;
  double momentum = 0;  // ZoConfig::momentum: > 0 adds a float32 running average per trained parameter
  std::string params = "all";  // all | bias (ZoConfig::bias_only: a row of its own)
  int plus_biases = 0;  // > 0: tinyzo train --plus-biases Q, the other convs' bias-only trainer (rows of its own)
};

void check(Status s, const std::string& what) {
  if (s != Status::kOk) throw CliError(what + ": " + status_name(s));
}

bool trainable_op(const ModelView& m, int i) {
  const OpType t = static_cast<OpType>(m.op(i).type);
  return t == OpType::kConv2d || t == OpType::kFullyConnected;
}

// An op by name, "#12" or "12" (an index).
int find_op(const ModelView& m, const std::string& name) {
  const int op = find_op_by_name(m, name);
  if (op >= 0 || name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return op;
  return find_op_by_name(m, "#" + name);
}

std::string conv_names_hint(const ModelView& m) {
  std::string s;
  int shown = 0;
  for (int i = 0; i < m.n_ops() && shown < 6; ++i)
    if (trainable_op(m, i)) s += (shown++ ? ", " : "") + std::string(m.op(i).name);
  return s + ", ...";
}

// Parses --train: a comma list of op names / indices and the keywords
// `paper` (with the paper's modes) and `all` (WP); --mode may override.
std::vector<TrainLayer> parse_layers(const ModelView& m, const std::string& spec) {
  std::vector<TrainLayer> layers;
  auto add = [&](int op, PerturbMode mode) {
    for (const TrainLayer& l : layers)
      if (l.op == op) return;
    layers.push_back(TrainLayer{op, mode});
  };
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    std::string tok = spec.substr(start, end - start);
    tok.erase(0, tok.find_first_not_of(" \t"));
    tok.erase(tok.find_last_not_of(" \t") + 1);
    start = end + 1;
    if (tok.empty()) continue;
    if (tok == "paper") {
      // The paper's modes: WP for the first two layers, NP for the last two.
      const std::vector<int> ops = paper_layer_ops(m, "--train");
      for (size_t i = 0; i < ops.size(); ++i) add(ops[i], i < 2 ? PerturbMode::kWeight : PerturbMode::kNode);
    } else if (tok == "all") {
      // Every Conv2d; an int8 FullyConnected classifier is left out (name it to add it).
      for (int i = 0; i < m.n_ops(); ++i)
        if (static_cast<OpType>(m.op(i).type) == OpType::kConv2d) add(i, PerturbMode::kWeight);
    } else {
      const int op = find_op(m, tok);
      if (op < 0) throw CliError("--train: no op named '" + tok + "' (convs: " + conv_names_hint(m) + ")");
      if (!trainable_op(m, op))
        throw CliError("--train: op '" + tok + "' is not a Conv2d or FullyConnected op, it has no int8 weights");
      add(op, PerturbMode::kWeight);
    }
  }
  if (layers.empty()) throw CliError("--train: no layers given");
  std::sort(layers.begin(), layers.end(), [](const TrainLayer& a, const TrainLayer& b) { return a.op < b.op; });
  return layers;
}

struct Inference {
  std::vector<BufferRequest> requests;
  std::vector<size_t> offsets;
  InferenceMemory mem;
  size_t required_bytes = 0;  // Engine::required_arena_bytes: activations + engine tables
  size_t table_bytes = 0;
  FlashBreakdown flash;
  uint64_t macs = 0;
  Span<const BufferRequest> req() const { return Span<const BufferRequest>(requests.data(), requests.size()); }
};

Inference plan_inference_host(const ModelView& m) {
  Inference inf;
  const size_t nt = size_t(m.n_tensors());
  inf.requests.resize(nt);
  inf.offsets.resize(nt);
  std::vector<int> scratch(plan_buffers_scratch_size(nt));
  check(plan_inference(m, Span<BufferRequest>(inf.requests.data(), nt), Span<size_t>(inf.offsets.data(), nt),
                       Span<int>(scratch.data(), scratch.size()), &inf.mem),
        "planning the activations");
  // The engine's own figure (a trial init in a scratch arena), so the report
  // is what a device would have to reserve.
  size_t cap = inf.mem.activation_bytes + 64 * (nt + size_t(m.n_ops())) + 4096;
  for (int attempt = 0;; ++attempt) {
    std::vector<uint8_t> buf(cap + 16);
    Arena arena(buf.data() + (16 - reinterpret_cast<uintptr_t>(buf.data()) % 16) % 16, cap);
    const Status s = Engine::required_arena_bytes(m, arena, &inf.required_bytes);
    if (s == Status::kOk) break;
    if (s != Status::kOutOfMemory || attempt > 4) check(s, "sizing the engine arena");
    cap *= 2;
  }
  inf.table_bytes = inf.required_bytes - std::min(inf.required_bytes, inf.mem.activation_bytes);
  check(flash_breakdown(m, &inf.flash), "measuring the flash");
  for (int i = 0; i < m.n_ops(); ++i) inf.macs += m.op_macs(i);
  return inf;
}

ZoMemory zo_for(const ModelView& m, const Inference& inf, const std::vector<TrainLayer>& layers,
                const ZoSettings& s, std::vector<ZoLayerMemory>* per) {
  per->assign(layers.size(), ZoLayerMemory{});
  ZoMemory z;
  check(zo_memory(m, inf.req(), Span<const TrainLayer>(layers.data(), layers.size()), s,
                  Span<ZoLayerMemory>(per->data(), per->size()), &z),
        "ZO accounting");
  // Where the trainer puts the workspace: a gap of the inference plan if there is one.
  int first = m.n_ops();
  for (const TrainLayer& l : layers) first = std::min(first, l.op);
  check(zo_place_workspace(inf.req(), Span<const size_t>(inf.offsets.data(), inf.offsets.size()), first, &z),
        "placing the ZO workspace");
  return z;
}

// Total SRAM when the ZO workspace shares the activation arena (see
// zo_workspace_in_arena): tables + planned arena + persistent buffers.
size_t zo_shared_total(const ModelView& m, const Inference& inf, const std::vector<TrainLayer>& layers,
                       const ZoMemory& z) {
  int first = m.n_ops();
  for (const TrainLayer& l : layers) first = std::min(first, l.op);
  const size_t n = size_t(m.n_tensors()) + 1;
  std::vector<BufferRequest> work(n);
  std::vector<size_t> offsets(n);
  std::vector<int> scratch(plan_buffers_scratch_size(n));
  size_t arena = 0;
  check(zo_workspace_in_arena(m, inf.req(), first, z.workspace_bytes, Span<BufferRequest>(work.data(), n),
                              Span<size_t>(offsets.data(), n), Span<int>(scratch.data(), scratch.size()),
                              &arena),
        "planning the ZO workspace");
  return inf.table_bytes + arena + z.persistent_bytes;
}

// The trainer as implemented (src/train/zo_trainer.cc): what its init()
// takes from an arena, measured by a trial init beside a real engine. Empty
// when the trainer cannot take this set (too many layers, a non-Conv2d op).
std::string measure_trainer(const ModelView& m, const Inference& inf, const std::vector<TrainLayer>& layers,
                            int queries, bool one_layer_per_pass, float momentum, size_t* bytes,
                            bool fused = false, bool bias_only = false) {
  if (layers.size() > size_t(ZoTrainer::kMaxLayers))
    return "the trainer takes at most " + std::to_string(ZoTrainer::kMaxLayers) + " layers";
  for (const TrainLayer& l : layers)
    if (static_cast<OpType>(m.op(l.op).type) != OpType::kConv2d) return "the trainer trains Conv2d ops only";
  struct alignas(16) Block {
    uint8_t b[16];
  };
  // (The fused engine's tables are larger, its activations smaller: 64 KB of margin is plenty.)
  std::vector<Block> engine_mem(inf.required_bytes / 16 + 4097);
  Arena engine_arena(engine_mem.data(), engine_mem.size() * 16);
  Engine engine;
  std::vector<int> unfused;
  for (const TrainLayer& l : layers) unfused.push_back(l.op);
  EngineOptions eo;
  eo.fuse = fused;  // the trained layers kept out of the blocks, as the trainer requires
  eo.unfused_ops = Span<const int>(unfused.data(), unfused.size());
  check(engine.init(m, engine_arena, best_kernels(), 1, eo), "engine init");
  size_t need = 1 << 20;
  for (const TrainLayer& l : layers) {
    const TzmOp& op = m.op(l.op);
    need += 8 * (tensor_elements(m.tensor(op.inputs[1])) + tensor_elements(m.tensor(op.output)) +
                 tensor_elements(m.tensor(op.inputs[0])));
  }
  need += engine.boundary_size_bytes(0) + inf.mem.activation_bytes;
  std::vector<Block> scratch_mem(need / 16 + 1);
  Arena scratch(scratch_mem.data(), scratch_mem.size() * 16);
  ZoSettings zs;
  zs.n_queries = queries;
  zs.one_layer_per_pass = one_layer_per_pass;
  zs.momentum = momentum;
  zs.bias_only = bias_only;
  const ZoConfig cfg = zo_trainer_config(zs);  // the query split the memory model assumes
  if (queries > ZoTrainer::kMaxQueries) return "more queries than the trainer takes";
  const Status s = ZoTrainer::required_arena_bytes(engine, Span<const TrainLayer>(layers.data(), layers.size()), cfg,
                                                   scratch, bytes);
  if (s != Status::kOk) return std::string("trainer init: ") + status_name(s);
  return {};
}

BpMemory bp_for(const ModelView& m, const Inference& inf, const std::vector<TrainLayer>& layers, BpKind kind) {
  const size_t n = bp_request_count(m);
  std::vector<BufferRequest> work(n);
  std::vector<size_t> offsets(n);
  std::vector<int> scratch(plan_buffers_scratch_size(n));
  BpMemory b;
  check(bp_memory(m, inf.req(), Span<const TrainLayer>(layers.data(), layers.size()), kind,
                  inf.mem.activation_bytes, Span<BufferRequest>(work.data(), n),
                  Span<size_t>(offsets.data(), n), Span<int>(scratch.data(), scratch.size()), &b),
        "BP accounting");
  return b;
}

// --mode auto: start from NP everywhere (B*Q effective samples instead of Q,
// the lower-variance estimator, METHOD §3.5) and move layers to WP, each time
// the one whose move saves the most, until inference + ZO fits the budget.
void choose_auto(const ModelView& m, const Inference& inf, std::vector<TrainLayer>* layers, const ZoSettings& s,
                 size_t budget_bytes) {
  for (TrainLayer& l : *layers) l.mode = PerturbMode::kNode;
  std::vector<ZoLayerMemory> per;
  for (;;) {
    const size_t now = zo_for(m, inf, *layers, s, &per).extra_bytes;
    if (inf.required_bytes + now <= budget_bytes) return;
    size_t best = now;
    int best_i = -1;
    for (size_t i = 0; i < layers->size(); ++i) {
      if ((*layers)[i].mode != PerturbMode::kNode) continue;
      (*layers)[i].mode = PerturbMode::kWeight;
      const size_t v = zo_for(m, inf, *layers, s, &per).extra_bytes;
      (*layers)[i].mode = PerturbMode::kNode;
      if (v < best) {
        best = v;
        best_i = int(i);
      }
    }
    if (best_i < 0) return;  // nothing left to save: report as is
    (*layers)[size_t(best_i)].mode = PerturbMode::kWeight;
  }
}

std::string shape(const TzmTensor& t) {
  std::string s;
  for (int d = 0; d < t.rank; ++d) s += (d ? "x" : "") + std::to_string(t.dims[d]);
  return s;
}

std::string op_kind(const ModelView& m, int i) {
  const TzmOp& op = m.op(i);
  if (static_cast<OpType>(op.type) == OpType::kFullyConnected) return "fc";
  const int k = op.params[kConvKh], g = op.params[kConvGroups], s = op.params[kConvStrideH];
  const int ci = m.tensor(op.inputs[0]).dims[2];
  std::string kind = (g > 1 && g == ci) ? "dw" : (k == 1 ? "pw" : "conv");
  kind += std::to_string(k) + "x" + std::to_string(op.params[kConvKw]);
  if (s != 1) kind += "/" + std::to_string(s);
  return kind;
}

// Inference with fused row-band blocks (models/fused_plan.h) and the peak of
// its live bytes (the lower bound no plan of these lifetimes beats).
struct FusedInference : FusedPlan {
  size_t peak_live_bytes = 0;
  int peak_op = 0;
};

FusedInference plan_fused_host(const ModelView& m, const std::vector<int>& unfused) {
  FusedInference f;
  static_cast<FusedPlan&>(f) = plan_fused(m, unfused);
  f.peak_live_bytes = plan_lower_bound_at(f.req(), &f.peak_op);
  return f;
}

// The ops where `req` reaches `peak` live bytes, each with the buffers alive
// there (requests past the tensors are fused-block scratch).
std::vector<std::pair<int, std::string>> peak_texts(const ModelView& m, Span<const BufferRequest> req, size_t peak,
                                                    const std::vector<FusedBlock>& blocks = {}) {
  std::vector<std::pair<int, std::string>> out;
  const std::vector<size_t> live = live_bytes_per_step(req, m.n_ops());
  for (int step = -1; step <= m.n_ops(); ++step) {
    if (live[size_t(step + 1)] != peak) continue;
    std::string t = "op " + std::to_string(step);
    if (step >= 0 && step < m.n_ops()) {
      const TzmOp& op = m.op(step);
      t += " " + std::string(op.name);
      const OpType type = static_cast<OpType>(op.type);
      if (type == OpType::kConv2d || type == OpType::kFullyConnected) t += " " + op_kind(m, step);
      t += " " + shape(m.tensor(op.inputs[0])) + " -> " + shape(m.tensor(op.output));
    } else {
      t += step < 0 ? " (model input)" : " (model output)";
    }
    t += ", alive:";
    for (size_t r = 0; r < req.size(); ++r) {
      const BufferRequest& q = req[r];
      if (q.size_bytes == 0 || q.first_use > step || q.last_use < step) continue;
      if (q.share_with >= 0 && q.first_use == step && is_inplace_pair(req, int(r), q.share_with)) continue;
      const size_t nt = size_t(m.n_tensors());
      const std::string name = r < nt ? std::string(m.tensor(int(r)).name)
                                      : "scratch of block " + std::string(m.op(blocks[r - nt].first_op).name) + ".." +
                                            m.op(blocks[r - nt].end_op - 1).name;
      const size_t counted = live_contribution(req, int(r), step, false);
      t += " " + name + " " + format_bytes(counted);
      if (counted != q.size_bytes && q.overlap_with >= 0)
        t += " (of " + format_bytes(q.size_bytes) + ", over " + std::string(m.tensor(q.overlap_with).name) + ")";
      t += ",";
    }
    t.pop_back();
    out.emplace_back(step, t);
  }
  return out;
}

double kb(size_t b) { return double(b) / 1024.0; }

Json layer_json(const ModelView& m, const ZoLayerMemory& l) {
  Json j;
  j["op"] = l.op;
  j["name"] = m.op(l.op).name;
  j["mode"] = perturb_mode_name(l.mode);
  j["n_weights"] = l.n_weights;
  j["n_bias"] = l.n_bias;
  j["n_outputs"] = l.n_outputs;
  j["weight_bytes"] = l.weight_bytes;
  j["bias_bytes"] = l.bias_bytes;
  j["scalar_bytes"] = l.scalar_bytes;
  j["grad_bytes"] = l.grad_bytes;
  j["pending_bytes"] = l.pending_bytes;
  j["momentum_bytes"] = l.momentum_bytes;
  j["boundary_bytes"] = l.boundary_bytes;
  j["perturbed_bytes"] = l.perturbed_bytes;
  j["offset_bytes"] = l.offset_bytes;
  j["sample_scalar_bytes"] = l.sample_scalar_bytes;
  j["node_grad_bytes"] = l.node_grad_bytes;
  j["mask_bytes"] = l.mask_bytes;
  j["loss_bytes"] = l.loss_bytes;
  j["record_bytes"] = l.record_bytes;
  j["query_loss_bytes"] = l.query_loss_bytes;
  j["persistent_bytes"] = l.persistent_bytes();
  j["transient_bytes"] = l.transient_bytes();
  j["extra_bytes"] = l.extra_bytes();
  return j;
}

Json zo_json(const ModelView& m, const ZoMemory& z, size_t inference_bytes, size_t shared_total) {
  Json j;
  j["total_bytes_workspace_in_arena"] = shared_total;
  j["persistent_bytes"] = z.persistent_bytes;
  j["shared_grad_bytes"] = z.shared_grad_bytes;
  j["workspace_bytes"] = z.workspace_bytes;
  j["workspace_op"] = z.workspace_op >= 0 ? Json(m.op(z.workspace_op).name) : Json(nullptr);
  j["workspace_in_arena"] = z.workspace_in_arena;
  j["extra_bytes"] = z.extra_bytes;
  j["total_bytes"] = inference_bytes + z.extra_bytes;
  return j;
}

Json bp_json(const BpMemory& b, size_t inference_bytes) {
  Json j;
  j["arena_bytes"] = b.arena_bytes;
  j["saved_bytes"] = b.saved_bytes;
  j["mask_bytes"] = b.mask_bytes;
  j["max_grad_bytes"] = b.max_grad_bytes;
  j["weight_bytes"] = b.weight_bytes;
  j["weight_grad_bytes"] = b.weight_grad_bytes;
  j["extra_bytes"] = b.extra_bytes;
  j["total_bytes"] = inference_bytes + b.extra_bytes;
  return j;
}

void run_plan(const PlanArgs& a) {
  if (a.batch < 1) throw CliError("--batch must be at least 1");
  if (a.queries < 1) throw CliError("--queries must be at least 1");
  if (!(a.budget_kb > 0)) throw CliError("--budget-kb must be positive");
  const LoadedModel model = load_model_arg(a.model);
  const ModelView& m = model.view();
  const Inference inf = plan_inference_host(m);
  const size_t budget = size_t(a.budget_kb * 1024.0);

  Json j;
  j["model"] = model.path();
  j["n_ops"] = m.n_ops();
  j["n_tensors"] = m.n_tensors();
  j["macs"] = inf.macs;
  Json ji;
  ji["activation_bytes"] = inf.mem.activation_bytes;
  ji["peak_live_bytes"] = inf.mem.peak_live_bytes;
  ji["peak_op"] = inf.mem.peak_op;
  ji["engine_table_bytes"] = inf.table_bytes;
  ji["kernel_scratch_bytes"] = 0;
  ji["total_bytes"] = inf.required_bytes;
  ji["sum_tensor_bytes"] = inf.mem.sum_tensor_bytes;
  j["inference"] = ji;
  Json jf;
  jf["file_bytes"] = inf.flash.file_bytes;
  jf["weight_bytes"] = inf.flash.weight_bytes;
  jf["bias_bytes"] = inf.flash.bias_bytes;
  jf["multiplier_bytes"] = inf.flash.multiplier_bytes;
  jf["scale_bytes"] = inf.flash.scale_bytes;
  jf["head_bytes"] = inf.flash.head_bytes;
  jf["other_const_bytes"] = inf.flash.other_const_bytes;
  jf["table_bytes"] = inf.flash.table_bytes;
  jf["padding_bytes"] = inf.flash.padding_bytes;
  j["flash"] = jf;
  Json jt = Json::array();
  for (int t = 0; t < m.n_tensors(); ++t) {
    const BufferRequest& r = inf.requests[size_t(t)];
    if (r.size_bytes == 0) continue;
    jt.push_back(Json{{"tensor", t},
                      {"name", m.tensor(t).name},
                      {"shape", shape(m.tensor(t))},
                      {"bytes", r.size_bytes},
                      {"offset", inf.offsets[size_t(t)]},
                      {"first_use", r.first_use},
                      {"last_use", r.last_use},
                      {"in_place_over", r.share_with}});
  }
  j["tensors"] = jt;
  Json jo = Json::array();
  for (int i = 0; i < m.n_ops(); ++i) {
    const TzmOp& op = m.op(i);
    const OpType type = static_cast<OpType>(op.type);
    Json e{{"op", i}, {"name", op.name}, {"input", op.inputs[0]}, {"output", op.output}};
    e["kind"] = type == OpType::kConv2d || type == OpType::kFullyConnected ? op_kind(m, i) : "other";
    if (type == OpType::kConv2d) {
      e["kernel"] = {op.params[kConvKh], op.params[kConvKw]};
      e["stride"] = {op.params[kConvStrideH], op.params[kConvStrideW]};
      e["pad_top"] = op.params[kConvPadTop];
    }
    jo.push_back(e);
  }
  j["ops"] = jo;
  j["live_bytes_per_step"] = live_bytes_per_step(inf.req(), m.n_ops());

  // Every op (or step) where the live bytes reach the peak: what a smaller
  // plan would have to change.
  struct PeakOp {
    int op;
    std::string text;
  };
  std::vector<PeakOp> peak_ops;
  {
    const std::vector<size_t> live = live_bytes_per_step(inf.req(), m.n_ops());
    Json jp = Json::array();
    for (int step = -1; step <= m.n_ops(); ++step) {
      if (live[size_t(step + 1)] != inf.mem.peak_live_bytes) continue;
      std::string t = "op " + std::to_string(step);
      std::string name = step < 0 ? "(model input)" : step >= m.n_ops() ? "(model output)" : m.op(step).name;
      if (step >= 0 && step < m.n_ops()) {
        const TzmOp& op = m.op(step);
        t += " " + name;
        const OpType type = static_cast<OpType>(op.type);
        if (type == OpType::kConv2d || type == OpType::kFullyConnected) t += " " + op_kind(m, step);
        t += " " + shape(m.tensor(op.inputs[0])) + " -> " + shape(m.tensor(op.output));
      } else {
        t += " " + name;
      }
      t += ", alive:";
      for (int tt = 0; tt < m.n_tensors(); ++tt) {
        const BufferRequest& r = inf.requests[size_t(tt)];
        if (r.size_bytes == 0 || r.first_use > step || r.last_use < step) continue;
        if (r.share_with >= 0 && r.first_use == step && is_inplace_pair(inf.req(), tt, r.share_with))
          continue;
        t += " " + std::string(m.tensor(tt).name) + " " + format_bytes(r.size_bytes) + ",";
      }
      t.pop_back();
      peak_ops.push_back(PeakOp{step, t});
      jp.push_back(Json{{"op", step}, {"name", name}});
    }
    j["inference"]["peak_ops"] = jp;
  }

  std::string text;
  auto line = [&](const char* fmt, auto... v) {
    char buf[1024];
    std::snprintf(buf, sizeof buf, fmt, v...);
    text += buf;
    text += '\n';
  };
  line("model %s: %d ops, %d tensors, %.1f MMAC per sample", model.path().c_str(), m.n_ops(), m.n_tensors(),
       double(inf.macs) / 1e6);
  line("");
  line("Inference SRAM (engine arena)                  %10zu B  %8.1f KB", inf.required_bytes, kb(inf.required_bytes));
  line("  activation arena (planned)                   %10zu B  %8.1f KB", inf.mem.activation_bytes,
       kb(inf.mem.activation_bytes));
  line("    lower bound: peak live bytes at op %-4d    %10zu B  %8.1f KB  (%s)", inf.mem.peak_op,
       inf.mem.peak_live_bytes, kb(inf.mem.peak_live_bytes),
       inf.mem.peak_op >= 0 && inf.mem.peak_op < m.n_ops() ? m.op(inf.mem.peak_op).name : "-");
  if (inf.mem.activation_bytes > inf.mem.peak_live_bytes)
    line("    planned above the bound by                 %10zu B",
         inf.mem.activation_bytes - inf.mem.peak_live_bytes);
  for (const PeakOp& p : peak_ops) line("    at the peak: %s", p.text.c_str());
  line("    without reuse (sum of all activations)     %10zu B  %8.1f KB", inf.mem.sum_tensor_bytes,
       kb(inf.mem.sum_tensor_bytes));
  line("  engine tables                                %10zu B  %8.1f KB", inf.table_bytes, kb(inf.table_bytes));
  line("  kernel scratch                               %10d B            (no kernel needs scratch)", 0);
  // Fused row-band blocks (docs/memory.md, "Fused blocks").
  const FusedInference fused = plan_fused_host(m, {});
  auto block_lines = [&](const FusedInference& f) {
    for (const FusedBlock& b : f.blocks)
      line("    block ops %d..%d (%s .. %s), bands of %d output rows, scratch %zu B", b.first_op, b.end_op - 1,
           m.op(b.first_op).name, m.op(b.end_op - 1).name, b.band_rows, fused_scratch_bytes(m, b));
  };
  line("Inference SRAM with fused blocks               %10zu B  %8.1f KB  (%+.1f KB)", fused.required_bytes,
       kb(fused.required_bytes), kb(fused.required_bytes) - kb(inf.required_bytes));
  line("  activation arena (planned)                   %10zu B  %8.1f KB", fused.activation_bytes,
       kb(fused.activation_bytes));
  line("    lower bound: peak live bytes at op %-4d    %10zu B  %8.1f KB  (%s)", fused.peak_op,
       fused.peak_live_bytes, kb(fused.peak_live_bytes),
       fused.peak_op >= 0 && fused.peak_op < m.n_ops() ? m.op(fused.peak_op).name : "-");
  for (const auto& p : peak_texts(m, fused.req(), fused.peak_live_bytes, fused.blocks))
    line("    at the peak: %s", p.second.c_str());
  block_lines(fused);
  {
    Json jfu;
    jfu["activation_bytes"] = fused.activation_bytes;
    jfu["peak_live_bytes"] = fused.peak_live_bytes;
    jfu["peak_op"] = fused.peak_op;
    jfu["total_bytes"] = fused.required_bytes;
    Json jb = Json::array();
    for (const FusedBlock& b : fused.blocks)
      jb.push_back(Json{{"first_op", b.first_op},
                        {"last_op", b.end_op - 1},
                        {"band_rows", b.band_rows},
                        {"scratch_bytes", fused_scratch_bytes(m, b)}});
    jfu["blocks"] = jb;
    j["inference_fused"] = jfu;
  }
  line("Flash (the .tzm, read in place)                %10zu B  %8.1f KB", inf.flash.file_bytes,
       kb(inf.flash.file_bytes));
  line("  int8 weights                                 %10zu B  %8.1f KB", inf.flash.weight_bytes,
       kb(inf.flash.weight_bytes));
  line("  int32 biases                                 %10zu B  %8.1f KB", inf.flash.bias_bytes, kb(inf.flash.bias_bytes));
  line("  float32 requant multipliers                  %10zu B  %8.1f KB", inf.flash.multiplier_bytes,
       kb(inf.flash.multiplier_bytes));
  line("  float32 per-channel weight scales            %10zu B  %8.1f KB", inf.flash.scale_bytes,
       kb(inf.flash.scale_bytes));
  line("  float32 head (weight + bias)                 %10zu B  %8.1f KB", inf.flash.head_bytes, kb(inf.flash.head_bytes));
  if (inf.flash.other_const_bytes)
    line("  other constants                              %10zu B  %8.1f KB", inf.flash.other_const_bytes,
         kb(inf.flash.other_const_bytes));
  line("  header + tensor/op tables                    %10zu B  %8.1f KB", inf.flash.table_bytes,
       kb(inf.flash.table_bytes));
  line("  alignment padding                            %10zu B  %8.1f KB", inf.flash.padding_bytes,
       kb(inf.flash.padding_bytes));
  if (!a.no_chart) {
    LifetimeChartOptions co;
    co.max_columns = a.width;
    text += "\n" + render_lifetime_chart(m, inf.req(), Span<const size_t>(inf.offsets.data(), inf.offsets.size()),
                                         inf.mem.activation_bytes, co);
  }

  if (!a.train.empty()) {
    std::vector<TrainLayer> layers = parse_layers(m, a.train);
    ZoSettings s;
    s.n_queries = a.queries;
    s.batch = a.batch;
    s.np_materialize_grad = a.np_materialize_grad;
    s.one_layer_per_pass = a.one_layer_per_pass;
    s.momentum = static_cast<float>(a.momentum);
    if (a.mode == "wp" || a.mode == "np") {
      for (TrainLayer& l : layers) l.mode = a.mode == "np" ? PerturbMode::kNode : PerturbMode::kWeight;
    } else if (a.mode == "auto") {
      choose_auto(m, inf, &layers, s, budget);
    }
    std::vector<TrainLayer> all_wp = layers, all_np = layers;
    for (TrainLayer& l : all_wp) l.mode = PerturbMode::kWeight;
    for (TrainLayer& l : all_np) l.mode = PerturbMode::kNode;
    std::vector<ZoLayerMemory> per, per_wp, per_np;
    const ZoMemory zsel = zo_for(m, inf, layers, s, &per);
    const ZoMemory zwp = zo_for(m, inf, all_wp, s, &per_wp);
    const ZoMemory znp = zo_for(m, inf, all_np, s, &per_np);
    const BpMemory bfull = bp_for(m, inf, layers, BpKind::kFull);
    const BpMemory bsparse = bp_for(m, inf, layers, BpKind::kSparse);
    int n_np = 0;
    size_t n_params = 0;
    for (const ZoLayerMemory& l : per) {
      n_np += l.mode == PerturbMode::kNode;
      n_params += l.n_weights + l.n_bias;
    }

    Json jtr;
    jtr["layers_spec"] = a.train;
    jtr["mode_flag"] = a.mode.empty() ? "default" : a.mode;
    jtr["queries"] = a.queries;
    jtr["batch"] = a.batch;
    jtr["budget_bytes"] = budget;
    jtr["n_params"] = n_params;
    Json jl = Json::array();
    for (size_t i = 0; i < per.size(); ++i) {
      Json e = layer_json(m, per[i]);
      e["wp_extra_bytes"] = per_wp[i].extra_bytes();
      e["np_extra_bytes"] = per_np[i].extra_bytes();
      jl.push_back(e);
    }
    jtr["layers"] = jl;
    const size_t shared_sel = zo_shared_total(m, inf, layers, zsel);
    const size_t shared_wp = zo_shared_total(m, inf, all_wp, zwp);
    const size_t shared_np = zo_shared_total(m, inf, all_np, znp);
    jtr["zo"] = zo_json(m, zsel, inf.required_bytes, shared_sel);
    jtr["zo_all_wp"] = zo_json(m, zwp, inf.required_bytes, shared_wp);
    jtr["zo_all_np"] = zo_json(m, znp, inf.required_bytes, shared_np);
    jtr["bp"] = bp_json(bfull, inf.required_bytes);
    jtr["sparse_bp"] = bp_json(bsparse, inf.required_bytes);
    j["training"] = jtr;

    line("");
    line("Training %zu layer%s (%zu parameters), Q = %d queries per layer, batch %d streamed one sample at a time",
         per.size(), per.size() == 1 ? "" : "s", n_params, a.queries, a.batch);
    line("Extra SRAM per layer if it alone were trained (persistent + its transient workspace):");
    int name_w = 14;
    for (const ZoLayerMemory& l : per) name_w = std::max(name_w, int(std::string(m.op(l.op).name).size()));
    line("  %4s %-*s %-8s %-20s %8s %6s %8s %10s  %10s %10s  %s", "op", name_w, "name", "kind", "in -> out", "d_w",
         "C_out", "D", "boundary", "WP extra", "NP extra", "mode");
    for (size_t i = 0; i < per.size(); ++i) {
      const ZoLayerMemory& l = per[i];
      const TzmOp& op = m.op(l.op);
      const std::string io = shape(m.tensor(op.inputs[0])) + "->" + shape(m.tensor(op.output));
      line("  %4d %-*s %-8s %-20s %8zu %6zu %8zu %10zu  %10zu %10zu  %s", l.op, name_w, op.name, op_kind(m, l.op).c_str(),
           io.c_str(), l.n_weights, l.n_bias, l.n_outputs, l.boundary_bytes, per_wp[i].extra_bytes(),
           per_np[i].extra_bytes(), perturb_mode_name(l.mode));
    }
    line("");
    line("Layer set totals (SRAM total = inference %zu B + extra):", inf.required_bytes);
    line("  %-32s %10s %10s %10s %12s %9s %10s  %s", "", "persistent", "workspace", "extra", "total", "total KB",
         "shared KB", "fits 256/1024 KB");
    auto fits = [](size_t total) {
      return std::string(total <= 256 * 1024 ? "yes" : "no") + " / " + (total <= 1024 * 1024 ? "yes" : "no");
    };
    auto zo_row = [&](const std::string& label, const ZoMemory& z, size_t shared) {
      const size_t total = inf.required_bytes + z.extra_bytes;
      line("  %-32s %10zu %10zu %10zu %12zu %9.1f %10.1f  %s (shared: %s)", label.c_str(), z.persistent_bytes,
           z.workspace_bytes, z.extra_bytes, total, kb(total), kb(shared), fits(total).c_str(), fits(shared).c_str());
    };
    zo_row("ZO, selected (" + std::to_string(per.size() - size_t(n_np)) + " WP + " + std::to_string(n_np) + " NP)",
           zsel, shared_sel);
    zo_row("ZO, all WP", zwp, shared_wp);
    zo_row("ZO, all NP", znp, shared_np);
    if (zsel.workspace_in_arena || zwp.workspace_in_arena || znp.workspace_in_arena)
      line("  (ZO rows with the workspace in a gap of the inference plan (bytes only the prefix uses), not in"
           " extra:%s%s%s)", zsel.workspace_in_arena ? " selected" : "", zwp.workspace_in_arena ? " all-WP" : "",
           znp.workspace_in_arena ? " all-NP" : "");
    size_t trainer_bytes = 0;
    const std::string trainer_why = measure_trainer(m, inf, layers, a.queries, a.one_layer_per_pass,
                                                    static_cast<float>(a.momentum), &trainer_bytes);
    if (trainer_why.empty()) {
      const size_t total = inf.required_bytes + trainer_bytes;
      line("  %-32s %10s %10s %10zu %12zu %9.1f %10s  %s", "ZoTrainer as built (measured)", "", "", trainer_bytes,
           total, kb(total), "", fits(total).c_str());
      j["training"]["zo_trainer_measured"] = Json{{"extra_bytes", trainer_bytes}, {"total_bytes", total}};
    } else {
      line("  %-32s (n/a: %s)", "ZoTrainer as built (measured)", trainer_why.c_str());
      j["training"]["zo_trainer_measured"] = Json{{"unavailable", trainer_why}};
    }
    auto bp_row = [&](const char* label, const BpMemory& b) {
      const size_t total = inf.required_bytes + b.extra_bytes;
      line("  %-32s %10zu %10zu %10zu %12zu %9.1f %10.1f  %s", label, b.weight_bytes + b.weight_grad_bytes,
           b.arena_bytes - std::min(b.arena_bytes, inf.mem.activation_bytes), b.extra_bytes, total, kb(total),
           kb(total), fits(total).c_str());
    };
    if (a.params == "bias") {
      // ZO on the biases alone (tinyzo train --params bias): model-wise, Q_b = Q / 2 queries.
      ZoSettings sb = s;
      sb.bias_only = true;
      std::vector<ZoLayerMemory> per_b;
      const ZoMemory zb = zo_for(m, inf, layers, sb, &per_b);
      zo_row("ZO, biases only (--params bias)", zb, inf.required_bytes + zb.extra_bytes);
      size_t bias_trainer = 0;
      const std::string why = measure_trainer(m, inf, layers, a.queries, a.one_layer_per_pass,
                                              static_cast<float>(a.momentum), &bias_trainer, false, true);
      Json jb = zo_json(m, zb, inf.required_bytes, inf.required_bytes + zb.extra_bytes);
      jb["bias_coef_bytes"] = zb.bias_coef_bytes;
      if (why.empty()) {
        const size_t total = inf.required_bytes + bias_trainer;
        line("  %-32s %10s %10s %10zu %12zu %9.1f %10s  %s", "ZoTrainer, biases only (measured)", "", "",
             bias_trainer, total, kb(total), "", fits(total).c_str());
        jb["measured_extra_bytes"] = bias_trainer;
      }
      j["training"]["zo_bias_only"] = jb;
    }
    size_t plus_extra = 0;  // --plus-biases: the bias-only trainer of every conv --train leaves out
    if (a.plus_biases > 0) {
      std::vector<TrainLayer> others(size_t(m.n_ops()));
      others.resize(size_t(plus_bias_layers(m, Span<const TrainLayer>(layers.data(), layers.size()),
                                            others.data(), int(others.size()))));
      if (others.empty()) throw CliError("--plus-biases: --train is every conv already; no bias is left");
      ZoSettings sp = s;
      sp.bias_only = true;
      sp.n_queries_b = a.plus_biases;
      sp.one_layer_per_pass = false;
      sp.momentum = 0.f;
      std::vector<ZoLayerMemory> per_p;
      const ZoMemory zp = zo_for(m, inf, others, sp, &per_p);
      plus_extra = zp.extra_bytes;
      const size_t total = inf.required_bytes + zsel.extra_bytes + zp.extra_bytes;
      line("  %-32s %10zu %10zu %10zu %12zu %9.1f %10s  %s", "ZO, selected + other convs' biases",
           zsel.persistent_bytes + zp.persistent_bytes, zsel.workspace_bytes + zp.workspace_bytes,
           zsel.extra_bytes + zp.extra_bytes, total, kb(total), "", fits(total).c_str());
      line("    (--plus-biases %d: a second, bias-only trainer on the %zu other convs, %zu B of its own)",
           a.plus_biases, others.size(), zp.extra_bytes);
      Json jp{{"queries", a.plus_biases}, {"convs", others.size()}, {"extra_bytes", zp.extra_bytes},
              {"total_bytes", total}};
      size_t plus_trainer = 0;
      if (trainer_why.empty() && measure_trainer(m, inf, others, 2 * a.plus_biases, false, 0.f, &plus_trainer,
                                                 false, true).empty()) {
        const size_t measured = inf.required_bytes + trainer_bytes + plus_trainer;
        line("  %-32s %10s %10s %10zu %12zu %9.1f %10s  %s", "both ZoTrainers as built (measured)", "", "",
             trainer_bytes + plus_trainer, measured, kb(measured), "", fits(measured).c_str());
        jp["measured_extra_bytes"] = plus_trainer;
        jp["measured_total_bytes"] = measured;
      }
      j["training"]["zo_plus_biases"] = jp;
    }
    bp_row("BP (every op input kept)", bfull);
    bp_row("sparse BP (MIT-style)", bsparse);
    {
      // The same set on an engine with fused blocks; the trained layers stay
      // outside them (the trainer needs their input boundary and full output).
      std::vector<int> unfused;
      for (const TrainLayer& l : layers) unfused.push_back(l.op);
      const FusedInference ft = plan_fused_host(m, unfused);
      // The workspace's gap in the fused plan.
      ZoMemory zfu = zsel;
      int first = m.n_ops();
      for (const TrainLayer& l : layers) first = std::min(first, l.op);
      check(zo_place_workspace(ft.req(), ft.offs(), first, &zfu), "placing the ZO workspace (fused)");
      const size_t total = ft.required_bytes + zfu.extra_bytes;
      line("  %-32s %10zu %10zu %10zu %12zu %9.1f %10s  %s", "ZO, selected, fused engine", zfu.persistent_bytes,
           zfu.workspace_bytes, zfu.extra_bytes, total, kb(total), "", fits(total).c_str());
      line("    fused-engine inference %zu B (%.1f KB; peak at op %d %s); training / inference peak = %.3f",
           ft.required_bytes, kb(ft.required_bytes), ft.peak_op,
           ft.peak_op >= 0 && ft.peak_op < m.n_ops() ? m.op(ft.peak_op).name : "-",
           double(total) / double(fused.required_bytes));
      for (const auto& p : peak_texts(m, ft.req(), ft.peak_live_bytes, ft.blocks))
        line("    at the peak: %s", p.second.c_str());
      block_lines(ft);
      Json jz;
      size_t fused_trainer_bytes = 0;
      if (trainer_why.empty() &&
          measure_trainer(m, inf, layers, a.queries, a.one_layer_per_pass, static_cast<float>(a.momentum),
                          &fused_trainer_bytes, /*fused=*/true).empty()) {
        // Measured beside the fused engine: the buffers are those of the unfused engine, the
        // workspace goes into the fused plan's gap if it has one.
        const size_t measured = ft.required_bytes + fused_trainer_bytes;
        line("  %-32s %10s %10s %10zu %12zu %9.1f %10s  %s", "ZoTrainer, fused engine (measured)", "", "",
             fused_trainer_bytes, measured, kb(measured), "", fits(measured).c_str());
        jz["measured_total_bytes"] = measured;
      }
      if (a.plus_biases > 0) {
        // The bias-only trainer's layers stay inside the blocks (only --train's are kept out).
        const size_t with_plus = total + plus_extra;
        line("  %-32s %10s %10s %10zu %12zu %9.1f %10s  %s", "ZO, selected + biases, fused", "", "",
             zfu.extra_bytes + plus_extra, with_plus, kb(with_plus), "", fits(with_plus).c_str());
        jz["plus_biases_total_bytes"] = with_plus;
      }
      jz["inference_total_bytes"] = ft.required_bytes;
      jz["activation_bytes"] = ft.activation_bytes;
      jz["peak_op"] = ft.peak_op;
      jz["total_bytes"] = total;
      jz["training_over_inference"] = double(total) / double(fused.required_bytes);
      j["training"]["zo_fused"] = jz;
    }
    line("  (ZO: workspace = one per-sample buffer beside the arena; 'shared' = the same buffer planned into");
    line("   arena bytes only the prefix before the earliest trained op uses.");
    line("   BP: persistent = trained weights + float32 weight gradients; workspace = growth of the arena planned");
    line("   over forward + backward: saved activations %zu B / masks %zu B (sparse: %zu B / %zu B), float32",
         bfull.saved_bytes, bfull.mask_bytes, bsparse.saved_bytes, bsparse.mask_bytes);
    line("   activation gradients up to %zu B each.)", bfull.max_grad_bytes);
    line("");
    line("Selected ZO extra, itemized:");
    size_t w = 0, b = 0, sc = 0, g = zsel.shared_grad_bytes, rec = 0, pend = 0, mom = 0;
    for (const ZoLayerMemory& l : per) {
      rec += l.record_bytes;
      w += l.weight_bytes;
      b += l.bias_bytes;
      sc += l.scalar_bytes;
      g += l.grad_bytes;
      pend += l.pending_bytes;
      mom += l.momentum_bytes;
    }
    line("  trainer layer table (%zu records)     %10zu B", per.size(), rec);
    line("  trainable int8 weights in SRAM        %10zu B", w);
    line("  trainable int32 biases in SRAM        %10zu B", b);
    line("  WP per-query loss sums (float32)      %10zu B", sc);
    if (a.one_layer_per_pass) {
      line("  NP dW/db accumulator (float32, one for all NP layers: one layer per pass) %zu B", g);
      line("  NP updated W/b kept to the step's end %10zu B", pend);
    } else {
      line("  NP dW/db accumulators (float32)       %10zu B", g);
    }
    if (a.momentum > 0) line("  momentum of dW/db (float32, --momentum) %8zu B", mom);
    for (const ZoLayerMemory& l : per) {
      if (l.op != zsel.workspace_op) continue;
      line("  workspace, sized by op %d %s (%s):", l.op, m.op(l.op).name, perturb_mode_name(l.mode));
      line("    boundary cache                      %10zu B", l.boundary_bytes);
      if (l.mode == PerturbMode::kWeight) {
        line("    perturbed W or b                    %10zu B", l.perturbed_bytes);
        line("    losses of one tensor's queries      %10zu B", l.query_loss_bytes);
      } else {
        if (l.node_grad_bytes) line("    float32 node gradient G             %10zu B", l.node_grad_bytes);
        else line("    per-query (Lq - L0) / mu of the sample %7zu B  (G never materialized)", l.sample_scalar_bytes);
      }
    }
    if (a.mode == "auto")
      line("  (--mode auto: NP where inference + ZO still fits %.0f KB, WP elsewhere)", a.budget_kb);
  }

  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::fputs(text.c_str(), stdout);
  }
}

}  // namespace

void register_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "SRAM and flash for inference, and the extra SRAM of ZO (WP/NP) and BP training (docs/memory.md)");
  cmd->add_option("--model,-m", args->model, "a .tzm file or a reference model name (mcunet-cifar10, ...)")
      ->required();
  cmd->add_option("--train", args->train,
                  "layers to train: comma list of op names or indices, 'paper' (1.4-1.7 conv.0, WP/WP/NP/NP) or "
                  "'all' (every Conv2d)");
  cmd->add_option("--mode", args->mode,
                  "ZO mode of every trained layer: wp, np, or auto (NP while it fits --budget-kb); default: the "
                  "keyword's modes ('paper'), else wp")
      ->check(CLI::IsMember({"wp", "np", "auto"}));
  add_int_option(cmd, "--batch,-b", &args->batch, 1, 100000,
                 "batch size B (streamed; does not change memory; default 100)");
  add_int_option(cmd, "--queries,-q", &args->queries, 1, 65536, "queries Q per layer (default 50)");
  add_real_option(cmd, "--budget-kb", &args->budget_kb, 1e-3, 1e9,
                  "SRAM budget for --mode auto, in KB (default 256)");
  add_int_option(cmd, "--width", &args->width, 16, 4096,
                 "columns of the lifetime chart, 16..4096 (default 96)");
  cmd->add_flag("--one-layer-per-pass", args->one_layer_per_pass,
                "account for ZO training with one layer per pass over the batch (tinyzo train --one-layer-per-pass): "
                "one NP accumulator for all NP layers");
  add_real_option(cmd, "--momentum", &args->momentum, 0, 0.999,
                  "account for ZO training with momentum (tinyzo train --momentum): a float32 running average per "
                  "trained weight and bias");
  cmd->add_option("--params", args->params,
                  "also account for ZO on the biases alone (tinyzo train --params bias --estimation model): all "
                  "(default) or bias")
      ->check(CLI::IsMember({"all", "bias"}));
  add_int_option(cmd, "--plus-biases", &args->plus_biases, 0, 256,
                 "also account for a second, bias-only trainer on every conv --train leaves out (tinyzo train "
                 "--plus-biases Q), Q queries per sample (default 0 = none)");
  cmd->add_flag("--np-materialize-grad", args->np_materialize_grad,
                "account NP with a float32 node-gradient buffer G per output instead of Q per-sample scalars");
  cmd->add_flag("--json", args->json, "print the numbers as JSON instead of text");
  cmd->add_flag("--no-chart", args->no_chart, "leave out the lifetime chart");
  cmd->callback([args] { run_plan(*args); });
}

}  // namespace tinyzo::cli
