// `tinyzo select`: task-adaptive sparse layer selection (METHOD §4) on the
// protocol's training batch. Two rankings of the candidate convs:
//   grad-norm  ZO relative gradient norm |dL/dW| / |W| in real units, from
//              one batch (B = 100) and Q = 10 weight perturbations per layer;
//   test-pick  one ZO step of each candidate alone, then the validation
//              accuracy (and loss) against the start model's.
// The top k that fit the SRAM budget (memory model) are kept. The estimator
// and the rules are in docs/training.md.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
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
#include "tinyzo/train/fmath.h"
#include "tinyzo/train/rng.h"
#include "train/train_config.h"
#include "train/trainer_run.h"

namespace tinyzo::cli {

namespace {

using Json = nlohmann::ordered_json;

struct SelectArgs {
  std::string config_path;
  std::unique_ptr<SettingFlags> flags;  // the train settings select shares
  std::string candidates = "all", method = "grad-norm", out;
  int queries = 10, k = 5, threads = 0;
  bool json = false, no_progress = false;
};

struct Candidate {
  int op = -1;
  bool node = false;         // the mode --mode gives it (test-pick trains it so)
  ConvDims dims;
  double grad_ratio = -1;    // grad-norm: |dL/dW| / |W|, real units
  double grad_norm = -1;     // |dL/dW| real units
  double weight_norm = -1;   // |W| real units
  double val_acc = -1;       // test-pick: after one step
  double val_loss = -1;
  size_t alone_bytes = 0;    // inference + ZO SRAM if it were the only trainable layer
  double score = 0;          // the ranking key (larger is better)
};

// The first `batch` training images of epoch 0, as `tinyzo train`'s first step sees them.
std::vector<std::vector<int8_t>> first_batch(const TrainData& data, const ModelView& m, const TrainConfig& cfg,
                                             std::vector<int>* labels) {
  const std::vector<uint32_t> order = epoch_order(data.train.size(), cfg.seed, 0);
  AugmentSpec aug;
  aug.enabled = cfg.augment;
  const size_t n = std::min<size_t>(size_t(cfg.batch), order.size());
  std::vector<std::vector<int8_t>> inputs(n, std::vector<int8_t>(data.input_size));
  labels->clear();
  for (size_t k = 0; k < n; ++k) {
    train_input(data, m, aug, cfg.seed, 0, order[k], inputs[k].data());
    labels->push_back(data.train.labels[order[k]]);
  }
  return inputs;
}

float sample_loss(EngineInstance& inst, int first_op, int label, std::vector<float>* logits) {
  Engine& e = inst.engine();
  check_status(e.invoke_range(first_op, e.model().n_ops()), "select: forward");
  inst.logits(logits);
  return cross_entropy(logits->data(), int(logits->size()), label);
}

// ZO relative gradient norm (METHOD §4). Per candidate: Q Rademacher weight
// perturbations of sigma_w LSBs, the batch-mean loss differences
// d_q = (mean L_q - mean L_0) / sigma estimate the directional derivatives
// g . u_q, and E[d_q^2] = |g|^2 (Rademacher u), so mean_q d_q^2 estimates
// |dL/dW_int|^2 without the d/Q noise floor of |g_hat|^2. Real units:
// dL/dW = dL/dW_int / s_w[o], taken as |dL/dW_int|^2 * mean_i 1/s_w[o(i)]^2
// (gradient energy spread evenly over the layer's elements).
void rank_grad_norm(const ModelView& m, const KernelTable& kernels, const TrainConfig& cfg, int queries,
                    const std::vector<std::vector<int8_t>>& inputs, const std::vector<int>& labels,
                    std::vector<Candidate>* cands, int threads, Progress* progress) {
  const size_t n = inputs.size(), nc = cands->size();
  // losses[s][c * Q + q], l0[s]: written by sample index, summed in order, so
  // the result does not depend on the thread count.
  std::vector<std::vector<float>> losses(n, std::vector<float>(nc * size_t(queries)));
  std::vector<float> l0(n);
  std::atomic<size_t> next{0};
  run_workers(threads, [&](int) {
    EngineInstance inst(m, kernels);
    Engine& e = inst.engine();
    size_t cache_bytes = 0, max_dw = 0;
    for (const Candidate& c : *cands) {
      cache_bytes = std::max(cache_bytes, e.boundary_size_bytes(c.op));
      max_dw = std::max(max_dw, c.dims.d_w);
    }
    std::vector<int8_t> cache(cache_bytes), pert(max_dw);
    std::vector<float> logits;
    for (size_t s; (s = next.fetch_add(1)) < n;) {
      std::memcpy(e.input().data(), inputs[s].data(), inputs[s].size());
      int cur = 0;
      for (size_t ci = 0; ci < nc; ++ci) {
        const Candidate& c = (*cands)[ci];
        check_status(e.invoke_range(cur, c.op), "select: prefix");
        const Span<int8_t> span(cache.data(), e.boundary_size_bytes(c.op));
        check_status(e.save_boundary(c.op, span), "select: save boundary");
        if (ci == 0) {
          l0[s] = sample_loss(inst, c.op, labels[s], &logits);
          check_status(e.restore_boundary(c.op, span), "select: restore");
        }
        const auto* w = static_cast<const int8_t*>(m.data(m.op(c.op).inputs[1]));
        for (int q = 0; q < queries; ++q) {
          PerturbKey key;
          key.seed = cfg.seed;
          key.layer = uint32_t(c.op);
          key.stream = RngStream::kSelect;
          key.query = uint32_t(q);
          const uint64_t k = key_hash(key);
          for (size_t i = 0; i < c.dims.d_w; ++i)
            pert[i] = int8_t(std::clamp(int(w[i]) + cfg.sigma_w * rademacher(k, i), -128, 127));
          check_status(e.set_param_override(c.op, 1, pert.data()), "select: override");
          check_status(e.restore_boundary(c.op, span), "select: restore");
          losses[s][ci * size_t(queries) + size_t(q)] = sample_loss(inst, c.op, labels[s], &logits);
        }
        check_status(e.set_param_override(c.op, 1, nullptr), "select: override");
        check_status(e.restore_boundary(c.op, span), "select: restore");
        cur = c.op;
      }
      if (progress) progress->advance();
    }
  });

  double mean_l0 = 0;
  for (size_t s = 0; s < n; ++s) mean_l0 += l0[s];
  mean_l0 /= double(n);
  for (size_t ci = 0; ci < nc; ++ci) {
    Candidate& c = (*cands)[ci];
    double sum_d2 = 0;
    for (int q = 0; q < queries; ++q) {
      double mean_lq = 0;
      for (size_t s = 0; s < n; ++s) mean_lq += losses[s][ci * size_t(queries) + size_t(q)];
      const double d = (mean_lq / double(n) - mean_l0) / double(cfg.sigma_w);
      sum_d2 += d * d;
    }
    const TzmOp& op = m.op(c.op);
    const auto* w = static_cast<const int8_t*>(m.data(op.inputs[1]));
    const float* s_w = m.channel_scales(op.inputs[1]);
    const size_t per_ch = c.dims.d_w / c.dims.c_out;
    // Pruned channels (MCUNet has some, with scales of 4e-9..2e-6 next to
    // live ones of 4e-4..1e-1) move no loss under a 1-LSB perturbation, and
    // their 1/s^2 would swamp the mean: only live channels (scale >= 1/100 of
    // the layer's median scale) count.
    std::vector<double> scales(c.dims.c_out, 1.0);
    if (s_w)
      for (size_t o = 0; o < c.dims.c_out; ++o) scales[o] = s_w[o];
    std::vector<double> sorted = scales;
    std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
    const double floor_s = 0.01 * sorted[sorted.size() / 2];
    double inv_s2 = 0, w2 = 0;
    size_t live = 0;
    for (size_t i = 0; i < c.dims.d_w; ++i) {
      const double s = scales[i / per_ch];
      if (s < floor_s) continue;
      inv_s2 += 1.0 / (s * s);
      w2 += (s * w[i]) * (s * w[i]);
      ++live;
    }
    c.grad_norm = live ? std::sqrt(sum_d2 / queries * inv_s2 / double(live)) : 0.0;
    c.weight_norm = std::sqrt(w2);
    c.grad_ratio = c.weight_norm > 0 ? c.grad_norm / c.weight_norm : 0;
    c.score = c.grad_ratio;
  }
}

// Test and pick (METHOD §4): each candidate alone takes one ZO step (the
// trainer with this run's settings, Q queries, lr = eta0) on the batch; the
// validation accuracy after it, against the start model's, ranks it (ties:
// the lower validation loss). Candidates run in parallel, one trainer each.
void rank_test_pick(const ModelView& m, const KernelTable& kernels, const TrainConfig& cfg, int queries,
                    const std::vector<std::vector<int8_t>>& inputs, const std::vector<int>& labels,
                    const TrainData& data, std::vector<Candidate>* cands, int threads, Progress* progress,
                    double* val_before, double* val_loss_before) {
  TrainConfig c1 = cfg;
  c1.queries_w = c1.queries_b = c1.queries_np = queries;
  const ZoConfig zc = make_zo_config(c1);
  const float lr = static_cast<float>(effective_lr(cfg));
  auto validate = [&](ZoTrainer& tr, double* acc, double* loss) {
    size_t correct = 0;
    double sum = 0;
    for (size_t i = 0; i < data.n_val(); ++i) {
      float l = 0;
      int pred = -1;
      check_status(tr.loss(Span<const int8_t>(data.val_inputs.data() + i * data.input_size, data.input_size),
                           data.val_labels[i], &l, &pred),
                   "select: validation");
      sum += l;
      correct += pred == data.val_labels[i];
    }
    *acc = double(correct) / double(data.n_val());
    *loss = sum / double(data.n_val());
  };
  {
    // The start model (any one layer, before its step).
    TrainerHost host(m, kernels, {LayerChoice{(*cands)[0].op, false}}, zc);
    validate(host.trainer(), val_before, val_loss_before);
  }
  std::atomic<size_t> next{0};
  run_workers(threads, [&](int) {
    for (size_t ci; (ci = next.fetch_add(1)) < cands->size();) {
      Candidate& c = (*cands)[ci];
      TrainerHost host(m, kernels, {LayerChoice{c.op, c.node}}, zc);
      ZoTrainer& tr = host.trainer();
      check_status(tr.begin_step(0), "select: begin_step");
      for (size_t s = 0; s < inputs.size(); ++s)
        check_status(tr.accumulate_sample(Span<const int8_t>(inputs[s].data(), inputs[s].size()), labels[s]),
                     "select: accumulate_sample");
      check_status(tr.end_step(lr), "select: end_step");
      validate(tr, &c.val_acc, &c.val_loss);
      // Accuracy gain first; the loss (finer on 100 images) breaks ties.
      c.score = (c.val_acc - *val_before) * 1e3 - (c.val_loss - *val_loss_before);
      if (progress) progress->advance();
    }
  });
}

void run_select(const SelectArgs& a) {
  TrainConfig cfg;
  SettingSources sources;
  if (!a.config_path.empty()) cfg = load_config_file(a.config_path, &sources);
  a.flags->apply(&cfg, &sources);
  apply_data_defaults(&cfg, sources);
  validate_config(cfg, &sources);
  const int threads = a.threads > 0 ? a.threads : int(std::max(1u, std::thread::hardware_concurrency()));

  const tinyzo::LoadedModel model = load_model_arg(cfg.model);
  const ModelView& view = model.view();
  const KernelTable& kernels = kernels_by_name(cfg.kernels);
  const ModeRule mode = parse_mode(cfg.mode);
  AutoModeContext actx;
  actx.n_queries = std::max(cfg.queries_w + cfg.queries_b, cfg.queries_np);
  actx.batch = cfg.batch;  // budget: applied below to the chosen set, not per candidate
  std::vector<Candidate> cands;
  for (const LayerChoice& l : resolve_layers(view, a.candidates, mode, actx)) {
    Candidate c;
    c.op = l.op;
    c.node = l.node;
    c.dims = conv_dims(view, l.op);
    c.alone_bytes = predict_training_memory(view, {l}, actx.n_queries, cfg.batch).total_bytes();
    cands.push_back(c);
  }

  const ProtocolSpec spec = protocol_spec(cfg);
  ProtocolData pdata =
      load_protocol_data(protocol_needs_data_dir(spec) ? resolve_data_dir() : std::string(), spec, threads);
  if (!pdata.skipped_summary.empty()) std::fprintf(stderr, "tinyzo: %s\n", pdata.skipped_summary.c_str());
  check_class_count(pdata.description, pdata.class_names, tensor_elements(view.tensor(view.output_tensor())),
                    cfg.model);  // as the user named it
  const TrainData data = prepare_train_data(std::move(pdata), view);
  std::vector<int> labels;
  const auto inputs = first_batch(data, view, cfg, &labels);

  double val_before = -1, val_loss_before = -1;
  const bool grad = a.method == "grad-norm";
  {
    Progress progress(grad ? inputs.size() : cands.size(), grad ? "select (grad-norm)" : "select (test-pick)");
    if (a.no_progress) progress.set_interactive(false);
    if (grad) {
      rank_grad_norm(view, kernels, cfg, a.queries, inputs, labels, &cands, threads, &progress);
    } else {
      rank_test_pick(view, kernels, cfg, a.queries, inputs, labels, data, &cands, threads, &progress, &val_before,
                     &val_loss_before);
    }
    progress.finish("");
  }
  std::vector<size_t> order(cands.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return cands[x].score > cands[y].score; });

  // Greedy: in rank order, keep a candidate when the set with it still fits.
  std::vector<LayerChoice> chosen;
  std::vector<size_t> chosen_idx;
  MemoryPrediction mem;
  const size_t budget = cfg.budget_kb > 0 ? size_t(cfg.budget_kb * 1024.0) : SIZE_MAX;
  for (size_t r : order) {
    if (int(chosen.size()) >= a.k) break;
    std::vector<LayerChoice> trial = chosen;
    trial.push_back(LayerChoice{cands[r].op, cands[r].node});
    std::sort(trial.begin(), trial.end(), [](const LayerChoice& x, const LayerChoice& y) { return x.op < y.op; });
    std::string ops;
    for (const LayerChoice& l : trial) ops += (ops.empty() ? "#" : ",#") + std::to_string(l.op);
    AutoModeContext bctx = actx;
    bctx.budget_kb = cfg.budget_kb;
    trial = resolve_layers(view, ops, mode, bctx);  // --mode auto may move layers to WP to fit
    const MemoryPrediction p = predict_training_memory(view, trial, actx.n_queries, cfg.batch);
    if (p.total_bytes() > budget) continue;
    chosen = trial;
    chosen_idx.push_back(r);
    mem = p;
  }
  const std::string layers = chosen.empty() ? "" : layers_to_string(view, chosen);

  Json j;
  j["model"] = cfg.model;
  j["corruption"] = cfg.corruption;
  j["severity"] = cfg.severity;
  if (cfg.data != TrainConfig{}.data) j["data"] = cfg.data;
  j["method"] = a.method;
  j["batch"] = inputs.size();
  j["augment"] = cfg.augment;
  j["queries"] = a.queries;
  if (!grad) {
    j["val_before"] = val_before;
    j["val_loss_before"] = val_loss_before;
  }
  Json ranking = Json::array();
  for (size_t rank = 0; rank < order.size(); ++rank) {
    const Candidate& c = cands[order[rank]];
    Json e{{"rank", rank + 1}, {"op", c.op}, {"name", view.op(c.op).name}, {"mode", c.node ? "NP" : "WP"},
           {"params", c.dims.d_w + c.dims.c_out}, {"sram_alone_bytes", c.alone_bytes}};
    if (grad) {
      e["grad_ratio"] = c.grad_ratio;
      e["grad_norm"] = c.grad_norm;
      e["weight_norm"] = c.weight_norm;
    } else {
      e["val_acc"] = c.val_acc;
      e["val_loss"] = c.val_loss;
    }
    ranking.push_back(e);
  }
  j["ranking"] = ranking;
  j["k"] = a.k;
  j["budget_kb"] = cfg.budget_kb;
  j["layers"] = layers;
  j["sram_inference_bytes"] = mem.inference_bytes;
  j["sram_zo_extra_bytes"] = mem.zo_extra_bytes;
  j["sram_total_bytes"] = mem.total_bytes();
  if (!a.out.empty()) {
    const std::string text = j.dump(2) + "\n";
    write_file_atomic(a.out, text.data(), text.size());
  }
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  const bool own_data = cfg.data != TrainConfig{}.data;
  std::printf("%s on %s%s: %s ranking of %zu convs (batch %zu, Q = %d)\n", cfg.model.c_str(),
              own_data && cfg.corruption == "none" ? cfg.data.c_str() : cfg.corruption.c_str(),
              cfg.corruption == "none" ? "" : (" severity " + std::to_string(cfg.severity)).c_str(),
              a.method.c_str(), cands.size(), inputs.size(), a.queries);
  if (!grad) std::printf("start model: val %.1f%%, val loss %.4f\n", 100 * val_before, val_loss_before);
  std::printf("%4s  %-14s %4s %8s  %-28s %10s  %s\n", "rank", "op", "mode", "params",
              grad ? "|dL/dW| / |W|" : "val acc / loss after 1 step", "SRAM alone", "");
  for (size_t rank = 0; rank < order.size(); ++rank) {
    const Candidate& c = cands[order[rank]];
    const bool picked = std::find(chosen_idx.begin(), chosen_idx.end(), order[rank]) != chosen_idx.end();
    char metric[64];
    if (grad) {
      std::snprintf(metric, sizeof metric, "%.4e", c.grad_ratio);
    } else {
      std::snprintf(metric, sizeof metric, "%5.1f%% / %.4f", 100 * c.val_acc, c.val_loss);
    }
    std::printf("%4zu  %-14s %4s %8zu  %-28s %7.1f KB  %s\n", rank + 1, view.op(c.op).name, c.node ? "NP" : "WP",
                c.dims.d_w + c.dims.c_out, metric, double(c.alone_bytes) / 1024.0, picked ? "*" : "");
  }
  if (chosen.empty()) {
    std::printf("no candidate fits the budget of %.1f KB\n", cfg.budget_kb);
    return;
  }
  std::printf("selected %zu (k = %d%s): --layers %s\n", chosen.size(), a.k,
              cfg.budget_kb > 0 ? (", budget " + std::to_string(int(cfg.budget_kb)) + " KB").c_str() : "",
              layers.c_str());
  std::printf("training SRAM (memory model): inference %.1f KB + ZO %.1f KB = %.1f KB\n",
              double(mem.inference_bytes) / 1024.0, double(mem.zo_extra_bytes) / 1024.0,
              double(mem.total_bytes()) / 1024.0);
}

}  // namespace

void register_select_command(CLI::App& app) {
  auto a = std::make_shared<SelectArgs>();
  CLI::App* cmd = app.add_subcommand("select", "rank convs for sparse ZO training and pick k under an SRAM budget");
  cmd->add_option("--config", a->config_path, "a train config (model, data, estimator settings); flags override");
  a->flags = std::make_unique<SettingFlags>(cmd);
  a->flags->add("model");
  a->flags->add("corruption");
  a->flags->add("severity");
  a->flags->add("data");
  a->flags->add("bad_images");
  a->flags->add("train_per_class");
  a->flags->add("val_per_class");
  a->flags->add("test_per_class");
  cmd->add_option("--candidates", a->candidates, "layers to rank: all (default), paper, or op names");
  cmd->add_option("--method", a->method, "grad-norm (default) or test-pick")
      ->check(CLI::IsMember({"grad-norm", "test-pick"}));
  a->flags->add("mode", "WP/NP rule for the chosen layers: wp | np | threshold:N | auto");
  a->flags->add("batch", "images in the ranking batch (default 100)");
  a->flags->add("augment", "augment the ranking batch as train's first step would (default on; --no-augment for a run "
                           "trained without augmentation)");
  add_int_option(cmd, "--queries,-q", &a->queries, 1, 256, "ZO queries per candidate, 1..256 (default 10)");
  add_int_option(cmd, "-k", &a->k, 1, 4096, "layers to keep (default 5)");
  a->flags->add("budget_kb", "SRAM budget for the chosen set, inference included (default none)");
  a->flags->add("seed", "perturbation seed (default: the config's, 0)");
  add_int_option(cmd, "--threads,-j", &a->threads, 0, 256,
                 "worker threads (default 0 = all cores; no effect on the ranking)");
  cmd->add_option("--out,-o", a->out, "also write the result as JSON to this file");
  cmd->add_flag("--json", a->json, "print JSON");
  cmd->add_flag("--no-progress", a->no_progress, "no progress bar");
  cmd->callback([a]() { run_select(*a); });
}

}  // namespace tinyzo::cli
