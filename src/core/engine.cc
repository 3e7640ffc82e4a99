#include "tinyzo/engine.h"

#include <cstdint>
#include <cstring>

#include "tinyzo/kernels/requant.h"
#include "tinyzo/planner.h"

namespace tinyzo {
namespace {

constexpr int kOverrideSlots = 2;  // slot 1 (weight) and slot 2 (bias)

PoolParams pool_params(const ModelView& m, const TzmOp& op) {
  const TzmTensor& x = m.tensor(op.inputs[0]);
  const TzmTensor& y = m.tensor(op.output);
  PoolParams p;
  p.in_h = x.dims[0];
  p.in_w = x.dims[1];
  p.c = x.dims[2];
  p.out_h = y.dims[0];
  p.out_w = y.dims[1];
  p.kh = op.params[kPoolKh];
  p.kw = op.params[kPoolKw];
  p.stride_h = op.params[kPoolStrideH];
  p.stride_w = op.params[kPoolStrideW];
  p.pad_top = op.params[kPoolPadTop];
  p.pad_left = op.params[kPoolPadLeft];
  p.act_min = op.params[kPoolActMin];
  p.act_max = op.params[kPoolActMax];
  return p;
}

// Pad / transpose shapes from the tensor records (rank <= 4).
PadParams pad_params(const ModelView& m, const TzmOp& op) {
  const TzmTensor& x = m.tensor(op.inputs[0]);
  PadParams p;
  p.rank = x.rank;
  for (int d = 0; d < kTzmMaxDims; ++d) {
    p.in_dims[d] = x.dims[d];
    p.before[d] = op.params[kPadBefore + d];
    p.after[d] = op.params[kPadAfter + d];
  }
  p.value = static_cast<int8_t>(op.params[kPadValue]);
  return p;
}

TransposeParams transpose_params(const ModelView& m, const TzmOp& op) {
  const TzmTensor& x = m.tensor(op.inputs[0]);
  TransposeParams p;
  p.rank = x.rank;
  for (int d = 0; d < kTzmMaxDims; ++d) {
    p.in_dims[d] = x.dims[d];
    p.perm[d] = op.params[d];
  }
  return p;
}

}  // namespace

ConvParams conv_params(const ModelView& m, const TzmOp& op) {
  const TzmTensor& x = m.tensor(op.inputs[0]);
  const TzmTensor& y = m.tensor(op.output);
  ConvParams p;
  p.in_h = x.dims[0];
  p.in_w = x.dims[1];
  p.in_c = x.dims[2];
  p.out_h = y.dims[0];
  p.out_w = y.dims[1];
  p.out_c = y.dims[2];
  p.kh = op.params[kConvKh];
  p.kw = op.params[kConvKw];
  p.stride_h = op.params[kConvStrideH];
  p.stride_w = op.params[kConvStrideW];
  p.pad_top = op.params[kConvPadTop];
  p.pad_left = op.params[kConvPadLeft];
  p.groups = op.params[kConvGroups];
  p.x_zero = x.zero_point;
  p.y_scale = y.scale;
  p.y_zero = y.zero_point;
  p.act_min = op.params[kConvActMin];
  p.act_max = op.params[kConvActMax];
  if (op.params[kConvRequant] == kRequantFixedPoint) {
    // inputs[3] is int32 [2, C_out]: the multipliers, then the shifts (validated at load).
    const auto* q = static_cast<const int32_t*>(m.data(op.inputs[3]));
    p.fx_multiplier = q;
    p.fx_shift = q + p.out_c;
  }
  return p;
}

Status Engine::required_arena_bytes(const ModelView& model, Arena& scratch, size_t* bytes, int batch,
                                   const EngineOptions& options) {
  if (!model.valid() || bytes == nullptr) return Status::kInvalidArgument;
  const size_t mark = scratch.mark();
  Engine probe;
  const Status s = probe.init(model, scratch, best_kernels(), batch, options);
  *bytes = s == Status::kOk ? probe.arena_bytes() : 0;
  scratch.reset_to(mark);
  return s;
}

Status Engine::init(const ModelView& model, Arena& arena, const KernelTable& kernels, int batch,
                    const EngineOptions& options) {
  if (!model.valid() || batch < 1) return Status::kInvalidArgument;
  model_ = &model;
  kernels_ = &kernels;
  batch_ = batch;
  n_blocks_ = 0;
  blocks_ = nullptr;
  block_of_ = nullptr;
  const size_t start = arena.used();
  const size_t nt = size_t(model.n_tensors()), no = size_t(model.n_ops());
  // With fusion: room for the most blocks a model can have (two ops each) and
  // one scratch request per block after the tensors' requests. Without it the
  // tables are exactly the unfused engine's.
  const bool fuse = options.fuse || !options.blocks.empty();
  const size_t nb_cap = fuse ? no / 2 + 1 : 0;
  if (!options.blocks.empty() &&
      (options.blocks.size() > nb_cap || !fused_blocks_valid(model, options.blocks)))
    return Status::kInvalidArgument;
  const size_t nr = nt + nb_cap;

  // Persistent tables first, then the planner's temporary arrays at the top;
  // the activations go where the temporaries were (planned size known by then).
  offsets_ = static_cast<size_t*>(arena.allocate(nr * sizeof(size_t)));
  last_use_ = static_cast<int*>(arena.allocate(nt * sizeof(int)));
  overrides_ = static_cast<const void**>(arena.allocate(no * kOverrideSlots * sizeof(void*)));
  output_offsets_ = static_cast<const int8_t**>(arena.allocate(no * sizeof(int8_t*)));
  if (nb_cap) {
    blocks_ = static_cast<FusedBlock*>(arena.allocate(nb_cap * sizeof(FusedBlock)));
    block_of_ = static_cast<int*>(arena.allocate(no * sizeof(int)));
  }
  const size_t tables_mark = arena.mark();
  auto* requests = static_cast<BufferRequest*>(arena.allocate(nr * sizeof(BufferRequest)));
  int* order = static_cast<int*>(arena.allocate(plan_buffers_scratch_size(nr) * sizeof(int)));
  auto* candidate = nb_cap ? static_cast<FusedBlock*>(arena.allocate(nb_cap * sizeof(FusedBlock))) : nullptr;
  const size_t planner_end = arena.used();
  if (!offsets_ || !last_use_ || !overrides_ || !output_offsets_ || !requests || !order ||
      (nb_cap && (!blocks_ || !block_of_ || !candidate))) {
    arena.reset_to(start);
    model_ = nullptr;
    return Status::kOutOfMemory;
  }
  if (!options.blocks.empty()) {
    n_blocks_ = static_cast<int>(options.blocks.size());
    for (int k = 0; k < n_blocks_; ++k) blocks_[k] = options.blocks[size_t(k)];
  } else if (nb_cap) {
    // Chosen on batch-1 sizes: a batch scales every tensor alike.
    TZ_RETURN_IF_ERROR(choose_fused_blocks(model, options.unfused_ops, Span<BufferRequest>(requests, nr),
                                           Span<FusedBlock>(candidate, nb_cap), Span<FusedBlock>(blocks_, nb_cap),
                                           &n_blocks_, options.band_slack_bytes));
  }
  const size_t n_req = nt + size_t(n_blocks_);
  TZ_RETURN_IF_ERROR(build_fused_requests(model, Span<const FusedBlock>(blocks_, size_t(n_blocks_)),
                                          Span<BufferRequest>(requests, n_req)));
  // A batch stores the items of a tensor back to back: N times the bytes, the
  // same lifetimes (and the same in-place pairs: items line up element-wise).
  // A block's scratch serves one item at a time.
  // A block's output over its input is safe only for one item: the bands of
  // item 0 would write over item 1's input. A batch keeps them apart.
  if (batch > 1)
    for (size_t t = 0; t < nt; ++t) requests[t].overlap_with = -1;
  if (batch > 1)
    for (size_t t = 0; t < nt; ++t) {
      if (requests[t].size_bytes > SIZE_MAX / size_t(batch)) {
        arena.reset_to(start);
        model_ = nullptr;
        return Status::kOutOfMemory;
      }
      requests[t].size_bytes *= size_t(batch);
    }
  TZ_RETURN_IF_ERROR(plan_buffers(Span<const BufferRequest>(requests, n_req), Span<size_t>(offsets_, n_req),
                                  Span<int>(order, plan_buffers_scratch_size(n_req)), &activation_bytes_));
  for (size_t t = 0; t < nt; ++t) last_use_[t] = requests[t].size_bytes ? requests[t].last_use : -1;
  if (block_of_ != nullptr) {
    for (size_t i = 0; i < no; ++i) block_of_[i] = -1;
    for (int k = 0; k < n_blocks_; ++k)
      for (int i = blocks_[k].first_op; i < blocks_[k].end_op; ++i) {
        block_of_[i] = k;
        if (i + 1 < blocks_[k].end_op) offsets_[model.op(i).output] = SIZE_MAX;  // never in full
      }
  }
  arena.reset_to(tables_mark);
  activations_ = static_cast<uint8_t*>(arena.allocate(activation_bytes_, kPlanAlign));
  if (activations_ == nullptr) {
    arena.reset_to(start);
    model_ = nullptr;
    return Status::kOutOfMemory;
  }
  for (size_t i = 0; i < no * kOverrideSlots; ++i) overrides_[i] = nullptr;
  for (size_t i = 0; i < no; ++i) output_offsets_[i] = nullptr;
  // Zero the activations so a suffix run over never-written memory is
  // deterministic (and valgrind-clean).
  std::memset(activations_, 0, activation_bytes_);
  // The planner's temporaries were overwritten by the activations; the
  // engine's footprint is the larger of the two phases.
  arena_bytes_ = (arena.used() > planner_end ? arena.used() : planner_end) - start;
  return Status::kOk;
}

bool Engine::is_cut(int op) const {
  if (model_ == nullptr || op < 0 || op > model_->n_ops()) return false;
  if (block_of_ == nullptr || op == model_->n_ops()) return true;
  const int k = block_of_[op];
  return k < 0 || blocks_[k].first_op == op;
}

int Engine::next_cut(int op) const {
  const int k = block_of_ != nullptr ? block_of_[op] : -1;
  return k >= 0 ? blocks_[k].end_op : op + 1;
}

size_t Engine::item_bytes(int tensor) const {
  const TzmTensor& t = model_->tensor(tensor);
  return tensor_elements(t) * dtype_size(DType(t.dtype));
}

void* Engine::tensor_data(int tensor, int item) const {
  const TzmTensor& t = model_->tensor(tensor);
  if ((t.flags & kTensorConstant) || item < 0 || item >= batch_ || offsets_[tensor] == SIZE_MAX) return nullptr;
  return activations_ + offsets_[tensor] + size_t(item) * item_bytes(tensor);
}

Span<int8_t> Engine::input(int item) {
  const int t = model_->input_tensor();
  if (model_->tensor(t).dtype != uint8_t(DType::kInt8)) return {};
  auto* data = static_cast<int8_t*>(tensor_data(t, item));
  return data ? Span<int8_t>(data, tensor_elements(model_->tensor(t))) : Span<int8_t>();
}

Span<float> Engine::input_f32(int item) {
  const int t = model_->input_tensor();
  if (model_->tensor(t).dtype != uint8_t(DType::kFloat32)) return {};
  auto* data = static_cast<float*>(tensor_data(t, item));
  return data ? Span<float>(data, tensor_elements(model_->tensor(t))) : Span<float>();
}

Span<const float> Engine::output_f32(int item) const {
  const int t = model_->output_tensor();
  if (model_->tensor(t).dtype != uint8_t(DType::kFloat32) || item < 0 || item >= batch_) return {};
  return Span<const float>(static_cast<const float*>(tensor_data(t, item)), tensor_elements(model_->tensor(t)));
}

Span<const int8_t> Engine::output_s8(int item) const {
  const int t = model_->output_tensor();
  if (model_->tensor(t).dtype != uint8_t(DType::kInt8) || item < 0 || item >= batch_) return {};
  return Span<const int8_t>(static_cast<const int8_t*>(tensor_data(t, item)), tensor_elements(model_->tensor(t)));
}

Status Engine::set_param_override(int op, int slot, const void* data) {
  if (model_ == nullptr || op < 0 || op >= model_->n_ops() || slot < 1 || slot > kOverrideSlots)
    return Status::kOutOfRange;
  const OpType type = static_cast<OpType>(model_->op(op).type);
  if (type != OpType::kConv2d && type != OpType::kFullyConnected && type != OpType::kLinearF32)
    return Status::kInvalidArgument;
  overrides_[op * kOverrideSlots + (slot - 1)] = data;
  return Status::kOk;
}

const void* Engine::param(int op, int slot) const {
  const void* o = overrides_[op * kOverrideSlots + (slot - 1)];
  return o ? o : model_->data(model_->op(op).inputs[slot]);
}

Status Engine::set_output_offset(int op, const int8_t* offsets) {
  if (model_ == nullptr || op < 0 || op >= model_->n_ops()) return Status::kOutOfRange;
  if (offsets != nullptr && model_->tensor(model_->op(op).output).dtype != uint8_t(DType::kInt8))
    return Status::kInvalidArgument;
  output_offsets_[op] = offsets;
  return Status::kOk;
}

size_t Engine::boundary_size_bytes(int op) const {
  size_t total = 0;
  for (int t = 0; t < model_->n_tensors(); ++t) {
    if (last_use_[t] < op) continue;  // dead before the cut (or a constant)
    const int p = t == model_->input_tensor() ? -1 : model_->producer(t);
    if (p < op) total += tensor_elements(model_->tensor(t)) * dtype_size(DType(model_->tensor(t).dtype));
  }
  return total;
}

Status Engine::save_boundary(int op, Span<int8_t> cache, int item) const {
  if (model_ == nullptr || op < 0 || op > model_->n_ops() || item < 0 || item >= batch_) return Status::kOutOfRange;
  if (!is_cut(op)) return Status::kInvalidArgument;
  if (cache.size() < boundary_size_bytes(op)) return Status::kInvalidArgument;
  size_t at = 0;
  for (int t = 0; t < model_->n_tensors(); ++t) {
    if (last_use_[t] < op) continue;
    const int p = t == model_->input_tensor() ? -1 : model_->producer(t);
    if (p >= op) continue;
    const size_t n = tensor_elements(model_->tensor(t)) * dtype_size(DType(model_->tensor(t).dtype));
    std::memcpy(cache.data() + at, tensor_data(t, item), n);
    at += n;
  }
  return Status::kOk;
}

Status Engine::restore_boundary(int op, Span<const int8_t> cache, int item) {
  if (model_ == nullptr || op < 0 || op > model_->n_ops() || item < 0 || item >= batch_) return Status::kOutOfRange;
  if (!is_cut(op)) return Status::kInvalidArgument;
  if (cache.size() < boundary_size_bytes(op)) return Status::kInvalidArgument;
  size_t at = 0;
  for (int t = 0; t < model_->n_tensors(); ++t) {
    if (last_use_[t] < op) continue;
    const int p = t == model_->input_tensor() ? -1 : model_->producer(t);
    if (p >= op) continue;
    const size_t n = tensor_elements(model_->tensor(t)) * dtype_size(DType(model_->tensor(t).dtype));
    std::memcpy(tensor_data(t, item), cache.data() + at, n);
    at += n;
  }
  return Status::kOk;
}

uint64_t Engine::macs(int first_op, int end_op) const {
  uint64_t total = 0;
  for (int i = first_op; i < end_op; ++i) total += model_->op_macs(i);
  return total;
}

Status Engine::invoke_items(int first_op, int end_op, int item_begin, int item_end) {
  if (model_ == nullptr) return Status::kInvalidArgument;
  if (first_op < 0 || end_op > model_->n_ops() || first_op > end_op) return Status::kOutOfRange;
  if (item_begin < 0 || item_end > batch_ || item_begin >= item_end) return Status::kOutOfRange;
  if (!is_cut(first_op) || !is_cut(end_op)) return Status::kInvalidArgument;
  for (int i = first_op; i < end_op;) {
    const int k = block_of_ != nullptr ? block_of_[i] : -1;
    if (k >= 0) {
      TZ_RETURN_IF_ERROR(run_fused(k, item_begin, item_end));
      i = blocks_[k].end_op;
    } else {
      TZ_RETURN_IF_ERROR(run_op(i, item_begin, item_end));
      ++i;
    }
  }
  return Status::kOk;
}

// Output rows [a, e) of Conv2d op `op`, reading its input rows from `src`
// (which holds input rows from `src_lo` on, at least the ones these output
// rows read) and writing them to `dst` (the row-a position). The band is an
// ordinary kernel call over a shorter image: the input rows before the band
// become pad_top (only at the image top, where they are real padding) and
// the rows after it are implied bottom padding only when they are past the
// input, so every output element reads the same inputs as in the full op.
void Engine::run_rows(int op, int a, int e, const int8_t* src, int src_lo, int8_t* dst) {
  const ModelView& m = *model_;
  const TzmOp& o = m.op(op);
  ConvParams p = conv_params(m, o);
  int lo = 0, hi = 0;
  conv_input_rows(m, op, a, e, &lo, &hi);
  const int first_row = a * p.stride_h - p.pad_top;
  const size_t in_row = size_t(p.in_w) * size_t(p.in_c), out_row = size_t(p.out_w) * size_t(p.out_c);
  const bool pointwise = p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.groups == 1 &&
                         p.pad_top == 0 && p.pad_left == 0 && p.out_h == p.in_h && p.out_w == p.in_w;
  p.pad_top = lo - first_row;
  p.in_h = hi - lo;
  p.out_h = e - a;
  const auto* w = static_cast<const int8_t*>(param(op, 1));
  const auto* b = static_cast<const int32_t*>(param(op, 2));
  const auto* mult = p.fx_multiplier != nullptr ? nullptr : static_cast<const float*>(m.data(o.inputs[3]));
  const int8_t* x = src + size_t(lo - src_lo) * in_row;
  if (p.groups == p.in_c && p.in_c == p.out_c && p.groups > 1)
    kernels_->depthwise_conv2d(p, x, w, b, mult, dst);
  else if (pointwise)
    kernels_->pointwise_conv2d(p, x, w, b, mult, dst);
  else
    kernels_->conv2d(p, x, w, b, mult, dst);
  if (const int8_t* offsets = output_offsets_[op]) {
    const int8_t* off = offsets + size_t(a) * out_row;
    for (size_t k = 0, n = size_t(e - a) * out_row; k < n; ++k)
      dst[k] = static_cast<int8_t>(clamp_i32(int32_t(dst[k]) + off[k], -128, 127));
  }
}

const void* Engine::fused_scratch(int k) const {
  if (k < 0 || k >= n_blocks_ || model_ == nullptr || fused_scratch_bytes(*model_, blocks_[k]) == 0) return nullptr;
  return activations_ + offsets_[size_t(model_->n_tensors()) + size_t(k)];
}

// Fused block `k` over items [b0, b1), one item at a time (the windows are
// one item's). Level j is the output of op first + j - 1 (level 0 the block
// input, level n its output, both full tensors); levels 1..n-1 are windows
// in the block's scratch holding rows [lo[j], hi[j]). For each band of
// output rows, the rows every level needs are computed top-down; a window
// drops the rows no later band reads, moves the rest to its top and computes
// only the rows it does not hold yet.
Status Engine::run_fused(int k, int b0, int b1) {
  const ModelView& m = *model_;
  const FusedBlock& blk = blocks_[k];
  const int n = blk.end_op - blk.first_op;
  int rows[kMaxFusedOps];
  TZ_RETURN_IF_ERROR(fused_window_rows(m, blk, Span<int>(rows, kMaxFusedOps)));
  int8_t* win[kMaxFusedOps + 1] = {};
  size_t row_bytes[kMaxFusedOps + 1];
  uint8_t* at = activations_ + offsets_[size_t(m.n_tensors()) + size_t(k)];
  for (int j = 0; j <= n; ++j) {
    const TzmTensor& t = m.tensor(j == 0 ? m.op(blk.first_op).inputs[0] : m.op(blk.first_op + j - 1).output);
    row_bytes[j] = size_t(t.dims[1]) * size_t(t.dims[2]);
    if (j > 0 && j < n) {
      win[j] = reinterpret_cast<int8_t*>(at);
      at += (size_t(rows[j - 1]) * row_bytes[j] + kPlanAlign - 1) & ~(kPlanAlign - 1);
    }
  }
  const int in_t = m.op(blk.first_op).inputs[0], out_t = m.op(blk.end_op - 1).output;
  const int h_out = m.tensor(out_t).dims[0];
  for (int item = b0; item < b1; ++item) {
    win[0] = static_cast<int8_t*>(tensor_data(in_t, item));
    auto* y = static_cast<int8_t*>(tensor_data(out_t, item));
    int lo[kMaxFusedOps + 1] = {}, hi[kMaxFusedOps + 1] = {};
    for (int o0 = 0; o0 < h_out; o0 += blk.band_rows) {
      int need_lo[kMaxFusedOps + 1], need_hi[kMaxFusedOps + 1];
      need_lo[n] = o0;
      need_hi[n] = o0 + blk.band_rows < h_out ? o0 + blk.band_rows : h_out;
      for (int j = n; j >= 1; --j)
        conv_input_rows(m, blk.first_op + j - 1, need_lo[j], need_hi[j], &need_lo[j - 1], &need_hi[j - 1]);
      for (int j = 1; j < n; ++j) {
        if (need_lo[j] >= hi[j]) {
          lo[j] = hi[j] = need_lo[j];
        } else if (need_lo[j] > lo[j]) {
          // Rows two bands share are kept (moved up), not recomputed.
          std::memmove(win[j], win[j] + size_t(need_lo[j] - lo[j]) * row_bytes[j],
                       size_t(hi[j] - need_lo[j]) * row_bytes[j]);
          lo[j] = need_lo[j];
        }
        if (need_hi[j] > hi[j]) {
          run_rows(blk.first_op + j - 1, hi[j], need_hi[j], win[j - 1], lo[j - 1],
                   win[j] + size_t(hi[j] - lo[j]) * row_bytes[j]);
          hi[j] = need_hi[j];
        }
      }
      run_rows(blk.end_op - 1, need_lo[n], need_hi[n], win[n - 1], lo[n - 1],
               y + size_t(need_lo[n]) * row_bytes[n]);
    }
  }
  if (observer_ != nullptr)
    observer_(observer_ctx_, blk.end_op - 1, tensor_data(out_t, b0), item_bytes(out_t) * size_t(b1 - b0));
  return Status::kOk;
}

// Runs op i over items [b0, b1). Items of a tensor are contiguous, so an op
// that computes every pixel (or element) independently with the same
// parameters sees the items as one taller image (or one longer vector).
Status Engine::run_op(int i, int b0, int b1) {
  const ModelView& m = *model_;
  const TzmOp& op = m.op(i);
  const TzmTensor& yt = m.tensor(op.output);
  const int n_items = b1 - b0;
  void* y = tensor_data(op.output, b0);
  const void* x = tensor_data(op.inputs[0], b0);
  const size_t x_item = item_bytes(op.inputs[0]), y_item = item_bytes(op.output);
  switch (static_cast<OpType>(op.type)) {
    case OpType::kConv2d: {
      ConvParams p = conv_params(m, op);
      const auto* w = static_cast<const int8_t*>(param(i, 1));
      const auto* b = static_cast<const int32_t*>(param(i, 2));
      // The float-scale multipliers, or null for the fixed-point rule (p.fx_* set by conv_params).
      const auto* mult = p.fx_multiplier != nullptr ? nullptr : static_cast<const float*>(m.data(op.inputs[3]));
      ConvFn fn = kernels_->conv2d;
      if (p.groups == p.in_c && p.in_c == p.out_c && p.groups > 1) {
        fn = kernels_->depthwise_conv2d;
      } else if (p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.groups == 1 &&
                 p.pad_top == 0 && p.pad_left == 0 && p.out_h == p.in_h && p.out_w == p.in_w) {
        // Pixels are independent: the items are one image n_items times taller.
        p.in_h *= n_items;
        p.out_h *= n_items;
        kernels_->pointwise_conv2d(p, static_cast<const int8_t*>(x), w, b, mult, static_cast<int8_t*>(y));
        break;
      }
      for (int k = 0; k < n_items; ++k)
        fn(p, static_cast<const int8_t*>(x) + k * x_item, w, b, mult, static_cast<int8_t*>(y) + k * y_item);
      break;
    }
    case OpType::kFullyConnected: {
      // A fully-connected layer is a 1x1 conv over a 1x1 map; the items are
      // n_items pixels of one column.
      const TzmTensor& xt = m.tensor(op.inputs[0]);
      ConvParams p;
      p.in_w = p.out_w = 1;
      p.in_h = p.out_h = n_items;
      p.in_c = static_cast<int>(tensor_elements(xt));
      p.out_c = static_cast<int>(tensor_elements(yt));
      p.x_zero = xt.zero_point;
      p.y_scale = yt.scale;
      p.y_zero = yt.zero_point;
      p.act_min = op.params[kFcActMin];
      p.act_max = op.params[kFcActMax];
      const float* mult = nullptr;
      if (op.params[kFcRequant] == kRequantFixedPoint) {
        const auto* q = static_cast<const int32_t*>(m.data(op.inputs[3]));  // [2, C_out]
        p.fx_multiplier = q;
        p.fx_shift = q + p.out_c;
      } else {
        mult = static_cast<const float*>(m.data(op.inputs[3]));
      }
      kernels_->pointwise_conv2d(p, static_cast<const int8_t*>(x), static_cast<const int8_t*>(param(i, 1)),
                                 static_cast<const int32_t*>(param(i, 2)), mult, static_cast<int8_t*>(y));
      break;
    }
    case OpType::kAdd: {
      const TzmTensor& a = m.tensor(op.inputs[0]);
      const TzmTensor& b = m.tensor(op.inputs[1]);
      AddParams p;
      p.x1_zero = a.zero_point;
      p.x1_scale = a.scale;
      p.x2_zero = b.zero_point;
      p.x2_scale = b.scale;
      p.y_zero = yt.zero_point;
      p.y_scale = yt.scale;
      p.act_min = op.params[0];
      p.act_max = op.params[1];
      kernels_->add(p, static_cast<const int8_t*>(x), static_cast<const int8_t*>(tensor_data(op.inputs[1], b0)),
                    static_cast<int8_t*>(y), tensor_elements(yt) * size_t(n_items));
      break;
    }
    case OpType::kGlobalAvgPool: {
      const TzmTensor& xt = m.tensor(op.inputs[0]);
      for (int k = 0; k < n_items; ++k)
        kernels_->global_avg_pool(xt.dims[0] * xt.dims[1], xt.dims[2], static_cast<const int8_t*>(x) + k * x_item,
                                  static_cast<int8_t*>(y) + k * y_item);
      break;
    }
    case OpType::kMaxPool2d:
    case OpType::kAvgPool2d: {
      const PoolFn fn = static_cast<OpType>(op.type) == OpType::kMaxPool2d ? kernels_->max_pool2d
                                                                           : kernels_->avg_pool2d;
      const PoolParams p = pool_params(m, op);
      for (int k = 0; k < n_items; ++k)
        fn(p, static_cast<const int8_t*>(x) + k * x_item, static_cast<int8_t*>(y) + k * y_item);
      break;
    }
    case OpType::kLinearF32: {
      const TzmTensor& xt = m.tensor(op.inputs[0]);
      LinearF32Params p;
      p.in_features = static_cast<int>(tensor_elements(xt));
      p.out_features = static_cast<int>(tensor_elements(yt));
      p.x_zero = xt.zero_point;
      p.x_scale = xt.scale;
      for (int k = 0; k < n_items; ++k)
        kernels_->linear_f32(p, static_cast<const int8_t*>(x) + k * x_item, static_cast<const float*>(param(i, 1)),
                             static_cast<const float*>(param(i, 2)),
                             reinterpret_cast<float*>(static_cast<uint8_t*>(y) + k * y_item));
      break;
    }
    case OpType::kDequantize: {
      const TzmTensor& xt = m.tensor(op.inputs[0]);
      const auto* q = static_cast<const int8_t*>(x);
      auto* f = static_cast<float*>(y);
      for (size_t k = 0, n = tensor_elements(xt) * size_t(n_items); k < n; ++k)
        f[k] = static_cast<float>(int32_t(q[k]) - xt.zero_point) * xt.scale;
      break;
    }
    case OpType::kAddTfl: {
      const int32_t* q = op.params;
      TflAddParams p;
      p.x1_offset = -m.tensor(op.inputs[0]).zero_point;
      p.x2_offset = -m.tensor(op.inputs[1]).zero_point;
      p.y_offset = yt.zero_point;
      p.left_shift = q[kTflAddLeftShift];
      p.x1_mult = q[kTflAddX1Mult];
      p.x1_shift = q[kTflAddX1Shift];
      p.x2_mult = q[kTflAddX2Mult];
      p.x2_shift = q[kTflAddX2Shift];
      p.y_mult = q[kTflAddYMult];
      p.y_shift = q[kTflAddYShift];
      p.act_min = q[kTflAddActMin];
      p.act_max = q[kTflAddActMax];
      kernels_->add_tfl(p, static_cast<const int8_t*>(x), static_cast<const int8_t*>(tensor_data(op.inputs[1], b0)),
                        static_cast<int8_t*>(y), tensor_elements(yt) * size_t(n_items));
      break;
    }
    case OpType::kAvgPool2dTfl: {
      const PoolParams p = pool_params(m, op);
      for (int k = 0; k < n_items; ++k)
        kernels_->avg_pool2d_tfl(p, static_cast<const int8_t*>(x) + k * x_item, static_cast<int8_t*>(y) + k * y_item);
      break;
    }
    case OpType::kMeanTfl: {
      const TzmTensor& xt = m.tensor(op.inputs[0]);
      TflMeanParams p;
      p.rows = xt.dims[0] * xt.dims[1];
      p.c = xt.dims[2];
      p.x_zero = xt.zero_point;
      p.y_zero = yt.zero_point;
      p.mult = op.params[kTflMeanMult];
      p.shift = op.params[kTflMeanShift];
      for (int k = 0; k < n_items; ++k)
        kernels_->mean_tfl(p, static_cast<const int8_t*>(x) + k * x_item, static_cast<int8_t*>(y) + k * y_item);
      break;
    }
    case OpType::kPad: {
      const PadParams p = pad_params(m, op);
      for (int k = 0; k < n_items; ++k)
        kernels_->pad(p, static_cast<const int8_t*>(x) + k * x_item, static_cast<int8_t*>(y) + k * y_item);
      break;
    }
    case OpType::kReshape:
      // Same bytes, new dims. memmove: a planner may one day alias the two.
      std::memmove(y, x, y_item * size_t(n_items));
      break;
    case OpType::kTranspose: {
      const TransposeParams p = transpose_params(m, op);
      for (int k = 0; k < n_items; ++k)
        kernels_->transpose(p, static_cast<const int8_t*>(x) + k * x_item, static_cast<int8_t*>(y) + k * y_item);
      break;
    }
    case OpType::kSoftmaxTfl: {
      // Rows of the last axis are independent: the items are more rows.
      const TzmTensor& xt = m.tensor(op.inputs[0]);
      TflSoftmaxParams p;
      p.depth = xt.dims[xt.rank - 1];
      p.outer = static_cast<int>(tensor_elements(xt) / size_t(p.depth)) * n_items;
      p.input_multiplier = op.params[kTflSoftmaxMult];
      p.input_left_shift = op.params[kTflSoftmaxLeftShift];
      p.diff_min = op.params[kTflSoftmaxDiffMin];
      kernels_->softmax_tfl(p, static_cast<const int8_t*>(x), static_cast<int8_t*>(y));
      break;
    }
    case OpType::kQuantize: {
      const TzmTensor& xt = m.tensor(op.inputs[0]);
      QuantizeParams p;
      p.x_zero = xt.zero_point;
      p.y_zero = yt.zero_point;
      p.mult = op.params[kQuantizeMult];
      p.shift = op.params[kQuantizeShift];
      p.y_scale = yt.scale;
      const size_t n = tensor_elements(yt) * size_t(n_items);
      if (xt.dtype == uint8_t(DType::kFloat32))
        kernels_->quantize_f32(p, static_cast<const float*>(x), static_cast<int8_t*>(y), n);
      else
        kernels_->requantize(p, static_cast<const int8_t*>(x), static_cast<int8_t*>(y), n);
      break;
    }
  }
  if (const int8_t* offsets = output_offsets_[i]) {
    // Node perturbation: y + offset, saturated to int8 (METHOD §3.2 clamps the
    // perturbed output to the int8 range).
    const size_t n = tensor_elements(yt);
    for (int item = 0; item < n_items; ++item) {
      auto* q = static_cast<int8_t*>(y) + item * n;
      for (size_t k = 0; k < n; ++k) q[k] = static_cast<int8_t>(clamp_i32(int32_t(q[k]) + offsets[k], -128, 127));
    }
  }
  if (observer_ != nullptr) observer_(observer_ctx_, i, y, y_item * size_t(n_items));
  return Status::kOk;
}

}  // namespace tinyzo
