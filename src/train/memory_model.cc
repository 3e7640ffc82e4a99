#include "tinyzo/train/memory_model.h"

#include <cstdint>

namespace tinyzo {
namespace {

bool is_const(const TzmTensor& t) { return (t.flags & kTensorConstant) != 0; }

size_t tensor_bytes(const TzmTensor& t) {
  return tensor_elements(t) * dtype_size(static_cast<DType>(t.dtype));
}

bool is_trainable_type(OpType t) { return t == OpType::kConv2d || t == OpType::kFullyConnected; }
// Ops whose int8 output went through a saturating clamp: back-propagating
// through them needs to know which outputs saturated.
bool clamps_output(OpType t) {
  return t == OpType::kConv2d || t == OpType::kFullyConnected || t == OpType::kAdd || t == OpType::kAddTfl;
}

size_t align16(size_t n) { return (n + 15) & ~size_t(15); }

bool layer_op_ok(const ModelView& m, int op) {
  return op >= 0 && op < m.n_ops() && is_trainable_type(static_cast<OpType>(m.op(op).type));
}

}  // namespace

const char* perturb_mode_name(PerturbMode m) { return m == PerturbMode::kNode ? "NP" : "WP"; }
const char* bp_kind_name(BpKind k) { return k == BpKind::kSparse ? "sparse BP" : "BP"; }

Status flash_breakdown(const ModelView& model, FlashBreakdown* out) {
  if (!model.valid() || out == nullptr) return Status::kInvalidArgument;
  FlashBreakdown f;
  const TzmHeader& h = model.header();
  f.file_bytes = h.file_size;
  f.table_bytes = sizeof(TzmHeader) + size_t(h.n_tensors) * sizeof(TzmTensor) + size_t(h.n_ops) * sizeof(TzmOp);
  // Classify each constant by the first op slot that reads it; a constant no
  // op reads counts as "other".
  for (int t = 0; t < model.n_tensors(); ++t) {
    const TzmTensor& info = model.tensor(t);
    if (info.flags & kTensorPerChannel) f.scale_bytes += size_t(info.quant_count) * sizeof(float);
    if (!is_const(info)) continue;
    size_t* bucket = &f.other_const_bytes;
    for (int i = 0; i < model.n_ops() && bucket == &f.other_const_bytes; ++i) {
      const TzmOp& op = model.op(i);
      const OpType type = static_cast<OpType>(op.type);
      for (int k = 0; k < op.n_inputs; ++k) {
        if (op.inputs[k] != t) continue;
        if (type == OpType::kLinearF32 && k >= 1) bucket = &f.head_bytes;
        else if (is_trainable_type(type) && k == 1) bucket = &f.weight_bytes;
        else if (is_trainable_type(type) && k == 2) bucket = &f.bias_bytes;
        else if (is_trainable_type(type) && k == 3) bucket = &f.multiplier_bytes;
        break;
      }
    }
    *bucket += info.data_size;
  }
  const size_t used = f.table_bytes + f.weight_bytes + f.bias_bytes + f.multiplier_bytes + f.head_bytes +
                      f.scale_bytes + f.other_const_bytes;
  f.padding_bytes = f.file_bytes > used ? f.file_bytes - used : 0;
  *out = f;
  return Status::kOk;
}

size_t live_bytes_at(Span<const BufferRequest> r, int op) {
  size_t sum = 0;
  const int n = static_cast<int>(r.size());
  for (int i = 0; i < n; ++i) {
    // An output that takes over its dying input in place adds nothing at the
    // hand-over op (the planner gives both the same bytes); a fused block's
    // output over its input adds only what sticks out (planner.h).
    sum += live_contribution(r, i, op, false);
  }
  return sum;
}

size_t boundary_bytes(Span<const BufferRequest> r, int op) {
  size_t sum = 0;
  for (size_t i = 0; i < r.size(); ++i)
    if (r[i].size_bytes != 0 && r[i].first_use < op && r[i].last_use >= op) sum += r[i].size_bytes;
  return sum;
}

Status plan_inference(const ModelView& model, Span<BufferRequest> requests, Span<size_t> offsets,
                      Span<int> scratch, InferenceMemory* out) {
  if (!model.valid() || out == nullptr) return Status::kInvalidArgument;
  const size_t nt = static_cast<size_t>(model.n_tensors());
  if (requests.size() < nt || offsets.size() < nt || scratch.size() < plan_buffers_scratch_size(nt))
    return Status::kInvalidArgument;
  Span<BufferRequest> req = requests.subspan(0, nt);
  TZ_RETURN_IF_ERROR(build_buffer_requests(model, req));
  InferenceMemory m;
  TZ_RETURN_IF_ERROR(plan_buffers(req, offsets.subspan(0, nt), scratch, &m.activation_bytes));
  for (size_t i = 0; i < nt; ++i) m.sum_tensor_bytes += req[i].size_bytes;
  // Ops run at 0..n_ops-1; the output stays alive one step longer (n_ops),
  // the input one step earlier (-1): both are inside [-1, n_ops].
  for (int op = -1; op <= model.n_ops(); ++op) {
    const size_t live = live_bytes_at(req, op);
    if (live > m.peak_live_bytes) {
      m.peak_live_bytes = live;
      m.peak_op = op;
    }
  }
  *out = m;
  return Status::kOk;
}

ZoConfig zo_trainer_config(const ZoSettings& s) {
  ZoConfig c;
  const int q = s.n_queries;
  c.n_queries_w = s.n_queries_w > 0 ? s.n_queries_w : ((q + 1) / 2 > 1 ? (q + 1) / 2 : 1);
  c.n_queries_b = s.n_queries_b > 0 ? s.n_queries_b : (q / 2 > 1 ? q / 2 : 1);
  c.n_queries_np = s.n_queries_np > 0 ? s.n_queries_np : q;
  c.two_sided = s.two_sided;
  c.one_layer_per_pass = s.one_layer_per_pass;
  c.momentum = s.momentum;
  c.bias_only = s.bias_only;
  if (s.bias_only) c.estimation = Estimation::kModelWise;
  return c;
}

Status zo_layer_memory(const ModelView& model, Span<const BufferRequest> requests, int op, PerturbMode mode,
                       const ZoSettings& settings, ZoLayerMemory* out) {
  if (!model.valid() || out == nullptr || !layer_op_ok(model, op)) return Status::kInvalidArgument;
  if (settings.n_queries < 1 || settings.batch < 1 || settings.n_queries_w < 0 || settings.n_queries_b < 0 ||
      settings.n_queries_np < 0 || !(settings.momentum >= 0.f && settings.momentum < 1.f))
    return Status::kInvalidArgument;
  if (requests.size() < static_cast<size_t>(model.n_tensors())) return Status::kInvalidArgument;
  const ZoConfig cfg = zo_trainer_config(settings);
  const size_t sides = cfg.two_sided ? 2 : 1;
  const TzmOp& o = model.op(op);
  ZoLayerMemory m;
  m.op = op;
  m.mode = mode;
  m.n_weights = tensor_elements(model.tensor(o.inputs[1]));
  m.n_bias = tensor_elements(model.tensor(o.inputs[2]));
  m.n_outputs = tensor_elements(model.tensor(o.output));
  m.record_bytes = ZoTrainer::layer_record_bytes();
  const size_t w_bytes = tensor_bytes(model.tensor(o.inputs[1]));
  const size_t b_bytes = tensor_bytes(model.tensor(o.inputs[2]));
  m.bias_bytes = align16(b_bytes);
  if (settings.bias_only) {
    // ZoTrainer::allocate: b (perturbed in place) and the db accumulator per
    // layer, for the whole step (every layer is perturbed in every query);
    // the weights stay in flash.
    m.grad_bytes = align16(m.n_bias * sizeof(float));
    if (settings.momentum > 0.f) m.momentum_bytes = align16(m.n_bias * sizeof(float));
    *out = m;
    return Status::kOk;
  }
  m.weight_bytes = align16(w_bytes);
  if (settings.momentum > 0.f)
    m.momentum_bytes = align16(m.n_weights * sizeof(float)) + align16(m.n_bias * sizeof(float));
  // Both modes restore the tensors alive across the cut before `op` and run
  // the suffix from `op`: WP because op reads the perturbed weights, NP
  // because op's output is recomputed and perturbed in place before the rest
  // of the suffix. The cache also holds op's input x, which NP's in-layer
  // backward reads after the queries.
  const size_t cut = boundary_bytes(requests, op);
  m.boundary_bytes = align16(cut);
  if (mode == PerturbMode::kWeight) {
    // u_q is regenerated from its seed at update time, so the step keeps only
    // the batch sum of Lq per query (METHOD §3.7). The engine reads a whole
    // perturbed tensor: W and b are perturbed one at a time, so one buffer of
    // the larger of the two; the losses of one tensor's queries are folded
    // into the sums in query order after they all ran.
    m.scalar_bytes = align16(size_t(cfg.n_queries_w) * sides * 4) + align16(size_t(cfg.n_queries_b) * sides * 4);
    m.perturbed_bytes = align16(w_bytes > b_bytes ? w_bytes : b_bytes);
    const size_t max_q = size_t(cfg.n_queries_w > cfg.n_queries_b ? cfg.n_queries_w : cfg.n_queries_b);
    m.query_loss_bytes = align16(max_q * sides * 4);
  } else {
    // dW sums over the batch of per-sample terms G[b] (x) im2col(x[b]); with
    // samples streamed one at a time that sum needs a d_w-sized accumulator
    // (the GNS factor's count of unmasked outputs is a field of the record).
    m.grad_bytes = align16(m.n_weights * sizeof(float)) + align16(m.n_bias * sizeof(float));
    // The trainer writes y + mu * u_q straight into op's output in the arena
    // (after re-running op from the cached boundary) and tests saturation on
    // the unperturbed y there too: no offset or mask buffer.
    // G[b] = sum_q (Lq[b] - L0[b]) / mu * m * u_q is linear in the Q scalars:
    // keeping them and regenerating u_q element by element in the backward
    // costs Q generator calls per output (as many as the queries themselves
    // drew) instead of a float per output. They cannot be streamed (folded
    // into dW query by query) without changing the float summation order of G
    // (and the leave-one-out baseline needs all Q first), and cost only 4 Q.
    if (settings.np_materialize_grad) m.node_grad_bytes = m.n_outputs * sizeof(float);
    else m.sample_scalar_bytes = align16(size_t(cfg.n_queries_np) * 4);
  }
  *out = m;
  return Status::kOk;
}

Status zo_memory(const ModelView& model, Span<const BufferRequest> requests, Span<const TrainLayer> layers,
                 const ZoSettings& settings, Span<ZoLayerMemory> per_layer, ZoMemory* out) {
  if (out == nullptr || per_layer.size() < layers.size()) return Status::kInvalidArgument;
  ZoMemory z;
  // One layer per pass (ZoTrainer::allocate): one accumulator for the NP
  // layers, each part sized by the largest NP layer's; updated parameters kept
  // for every NP layer but the last (by op index, the trainer's pass order).
  int last_np = -1;
  size_t max_dw = 0, max_c = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      if (layers[j].op == layers[i].op) return Status::kInvalidArgument;
    TZ_RETURN_IF_ERROR(zo_layer_memory(model, requests, layers[i].op, layers[i].mode, settings, &per_layer[i]));
    if (layers[i].mode == PerturbMode::kNode && layers[i].op > last_np) last_np = layers[i].op;
  }
  if (settings.bias_only) {
    z.bias_coef_bytes = align16(size_t(zo_trainer_config(settings).n_queries_b) * 4);
    z.persistent_bytes = z.bias_coef_bytes;
  } else if (settings.one_layer_per_pass && last_np >= 0) {
    for (size_t i = 0; i < layers.size(); ++i) {
      ZoLayerMemory& l = per_layer[i];
      if (l.mode != PerturbMode::kNode) continue;
      max_dw = l.n_weights > max_dw ? l.n_weights : max_dw;
      max_c = l.n_bias > max_c ? l.n_bias : max_c;
      l.grad_bytes = 0;
      if (l.op != last_np) l.pending_bytes = l.weight_bytes + l.bias_bytes;
    }
    z.shared_grad_bytes = align16(max_dw * sizeof(float)) + align16(max_c * sizeof(float));
    z.persistent_bytes = z.shared_grad_bytes;
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    z.persistent_bytes += per_layer[i].persistent_bytes();
    const size_t t = per_layer[i].transient_bytes();
    if (t > z.workspace_bytes || z.workspace_op < 0) {
      z.workspace_bytes = t;
      z.workspace_op = layers[i].op;
    }
  }
  z.extra_bytes = z.persistent_bytes + z.workspace_bytes;
  *out = z;
  return Status::kOk;
}

bool zo_workspace_gap(Span<const BufferRequest> r, Span<const size_t> offsets, int first_op, size_t bytes,
                      size_t* offset) {
  // Tensors and fused-block scratch alike: each has its offset and lifetime.
  const size_t n = r.size() < offsets.size() ? r.size() : offsets.size();
  size_t lo = SIZE_MAX, hi = 0;
  for (size_t k = 0; k < n; ++k) {
    if (r[k].size_bytes == 0) continue;
    lo = offsets[k] < lo ? offsets[k] : lo;
    hi = offsets[k] + r[k].size_bytes > hi ? offsets[k] + r[k].size_bytes : hi;
  }
  if (lo == SIZE_MAX || bytes == 0) return false;
  auto late = [&](size_t k) { return r[k].size_bytes != 0 && r[k].last_use >= first_op; };
  // Candidates: the start of the span and the 16-aligned end of every late
  // buffer (the lowest gap starts at one of them). O(n^2), once per init().
  bool found = false;
  size_t best = 0;
  for (size_t c = 0; c <= n; ++c) {
    if (c < n && !late(c)) continue;
    const size_t at = c == n ? lo : lo + align16(offsets[c] + r[c].size_bytes - lo);
    if (at + bytes > hi || (found && at >= best)) continue;
    bool clear = true;
    for (size_t k = 0; k < n && clear; ++k)
      clear = !late(k) || offsets[k] >= at + bytes || offsets[k] + r[k].size_bytes <= at;
    if (clear) {
      best = at;
      found = true;
    }
  }
  if (found) *offset = best;
  return found;
}

Status zo_place_workspace(Span<const BufferRequest> requests, Span<const size_t> offsets, int first_op,
                          ZoMemory* z) {
  if (z == nullptr || first_op < 0) return Status::kInvalidArgument;
  size_t at = 0;
  z->workspace_in_arena = zo_workspace_gap(requests, offsets, first_op, z->workspace_bytes, &at);
  z->extra_bytes = z->persistent_bytes + (z->workspace_in_arena ? 0 : z->workspace_bytes);
  return Status::kOk;
}

Status zo_workspace_in_arena(const ModelView& model, Span<const BufferRequest> requests, int first_op,
                             size_t workspace_bytes, Span<BufferRequest> work, Span<size_t> offsets,
                             Span<int> scratch, size_t* arena_bytes) {
  if (!model.valid() || arena_bytes == nullptr || first_op < 0 || first_op >= model.n_ops())
    return Status::kInvalidArgument;
  const size_t nt = static_cast<size_t>(model.n_tensors());
  if (requests.size() < nt || work.size() < nt + 1 || offsets.size() < nt + 1 ||
      scratch.size() < plan_buffers_scratch_size(nt + 1))
    return Status::kInvalidArgument;
  for (size_t t = 0; t < nt; ++t) work[t] = requests[t];
  work[nt] = BufferRequest{};
  work[nt].size_bytes = workspace_bytes;
  work[nt].first_use = first_op;
  work[nt].last_use = model.n_ops();
  return plan_buffers(Span<const BufferRequest>(work.data(), nt + 1), offsets.subspan(0, nt + 1), scratch,
                      arena_bytes);
}

size_t bp_request_count(const ModelView& model) {
  return model.valid() ? 2 * static_cast<size_t>(model.n_tensors()) + static_cast<size_t>(model.n_ops()) : 0;
}

Status bp_memory(const ModelView& model, Span<const BufferRequest> requests, Span<const TrainLayer> layers,
                 BpKind kind, size_t inference_activation_bytes, Span<BufferRequest> work,
                 Span<size_t> offsets, Span<int> scratch, BpMemory* out) {
  if (!model.valid() || out == nullptr || layers.empty()) return Status::kInvalidArgument;
  const int nt = model.n_tensors(), no = model.n_ops();
  const size_t count = bp_request_count(model);
  if (requests.size() < size_t(nt) || work.size() < count || offsets.size() < count ||
      scratch.size() < plan_buffers_scratch_size(count))
    return Status::kInvalidArgument;
  BpMemory m;
  int earliest = no;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!layer_op_ok(model, layers[i].op)) return Status::kInvalidArgument;
    if (layers[i].op < earliest) earliest = layers[i].op;
  }
  auto trained = [&](int op) {
    for (size_t i = 0; i < layers.size(); ++i)
      if (layers[i].op == op) return true;
    return false;
  };
  // Time: forward op i runs at step i, the loss gradient appears at step
  // n_ops (where the model output is still alive), the backward of op i runs
  // at step 2 n_ops - i. Layout of `work`: [0, nt) activations (the
  // inference requests, lifetimes extended when saved), [nt, 2 nt) float32
  // gradients per tensor, [2 nt, 2 nt + no) 1-bit clamp masks per op.
  auto tb = [&](int op) { return 2 * no - op; };
  for (int t = 0; t < nt; ++t) work[t] = requests[t];
  for (size_t i = nt; i < count; ++i) work[i] = BufferRequest{};
  BufferRequest* grad = &work[nt];
  BufferRequest* mask = &work[2 * nt];
  auto extend = [&](int t, int until) {
    if (work[t].size_bytes != 0 && until > work[t].last_use) work[t].last_use = until;
  };
  // Ops on the gradient path: the earliest trained op and every later op that
  // reads a tensor with a gradient. A tensor has a gradient when an op on the
  // path produces it.
  for (int i = earliest; i < no; ++i) {
    const TzmOp& op = model.op(i);
    const OpType type = static_cast<OpType>(op.type);
    bool on_path = trained(i);  // includes the earliest
    for (int k = 0; k < op.n_inputs && !on_path; ++k) on_path = grad[op.inputs[k]].size_bytes != 0;
    if (!on_path) continue;
    const TzmTensor& y = model.tensor(op.output);
    grad[op.output].size_bytes = tensor_elements(y) * sizeof(float);
    grad[op.output].last_use = tb(i);  // dies once op i's backward consumed it
    for (int k = 0; k < op.n_inputs; ++k) {
      const int t = op.inputs[k];
      if (is_const(model.tensor(t))) continue;
      const bool keep = kind == BpKind::kFull || (is_trainable_type(type) && trained(i)) ||
                        type == OpType::kMaxPool2d;  // max pool's backward needs its argmax
      if (keep) extend(t, tb(i));
    }
    if (clamps_output(type)) {
      // Back-propagating through op i needs to know which outputs saturated:
      // a kept output tells; otherwise (sparse) a 1-bit mask does.
      bool output_kept = kind == BpKind::kFull;
      for (int j = i + 1; j < no && !output_kept; ++j) {
        if (!trained(j)) continue;
        const TzmOp& r = model.op(j);
        for (int k = 0; k < r.n_inputs; ++k) output_kept = output_kept || r.inputs[k] == op.output;
      }
      if (output_kept) {
        extend(op.output, tb(i));
      } else {
        mask[i].size_bytes = (tensor_elements(y) + 7) / 8;
        mask[i].first_use = i;
        mask[i].last_use = tb(i);
      }
    }
    if (trained(i)) {
      m.weight_bytes += tensor_bytes(model.tensor(op.inputs[1])) + tensor_bytes(model.tensor(op.inputs[2]));
      m.weight_grad_bytes += (tensor_elements(model.tensor(op.inputs[1])) +
                              tensor_elements(model.tensor(op.inputs[2]))) * sizeof(float);
    }
  }
  // Birth of each gradient: the model output's at the loss (step n_ops), any
  // other's at the backward of its latest reader (which runs first).
  for (int t = 0; t < nt; ++t) {
    if (grad[t].size_bytes == 0) continue;
    int born = grad[t].last_use;
    if (t == model.output_tensor()) born = no;
    for (int i = earliest; i < no; ++i) {
      const TzmOp& op = model.op(i);
      for (int k = 0; k < op.n_inputs; ++k)
        if (op.inputs[k] == t && tb(i) < born) born = tb(i);
    }
    grad[t].first_use = born;
    if (grad[t].size_bytes > m.max_grad_bytes) m.max_grad_bytes = grad[t].size_bytes;
  }
  for (int t = 0; t < nt; ++t)
    if (work[t].size_bytes != 0 && work[t].last_use > no) m.saved_bytes += work[t].size_bytes;
  for (int i = 0; i < no; ++i) m.mask_bytes += mask[i].size_bytes;
  TZ_RETURN_IF_ERROR(plan_buffers(Span<const BufferRequest>(work.data(), count), offsets.subspan(0, count),
                                  scratch, &m.arena_bytes));
  const size_t arena_growth =
      m.arena_bytes > inference_activation_bytes ? m.arena_bytes - inference_activation_bytes : 0;
  m.extra_bytes = arena_growth + m.weight_bytes + m.weight_grad_bytes;
  *out = m;
  return Status::kOk;
}

}  // namespace tinyzo
