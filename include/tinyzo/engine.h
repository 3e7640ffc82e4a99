// Engine: runs a ModelView's ops over activation buffers planned into one
// caller-owned arena. No heap, no exceptions. Also carries the two hooks the
// ZO trainer needs: a parameter override per op (weight perturbation) and an
// int8 offset vector added to one op's output (node perturbation).
//
// Batches (host): an engine initialised with batch N holds N items of every
// activation tensor, item k of tensor t at tensor_data(t) + k * (its bytes),
// and runs ops over a range of items at once. Ops whose kernel is the same
// computation per pixel (pointwise convs, fully-connected, adds, dequantize,
// quantize, reshape, softmax rows) get all items in one kernel call (the
// weights are loaded once per call, not once per image); the others loop over
// the items. Every item's result is bitwise what a batch-1 engine computes
// for it. A device uses batch 1.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/arena.h"
#include "tinyzo/fusion.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/model.h"
#include "tinyzo/span.h"
#include "tinyzo/status.h"

namespace tinyzo {

// The kernel parameters of a Conv2d op of `m` (shapes, window, zero points,
// output scale, activation range), as the engine passes them to the kernels.
ConvParams conv_params(const ModelView& m, const TzmOp& op);

// Called after every op (debugging, per-layer dumps). `out` is the op's
// output tensor, valid only during the call.
using OpObserver = void (*)(void* ctx, int op_index, const void* out, size_t size_bytes);

// How Engine::init plans the model.
struct EngineOptions {
  // Fused row-band blocks (fusion.h, docs/memory.md "Fused blocks"): chains of
  // convolutions chosen by choose_fused_blocks where that lowers the planned
  // arena; results are bitwise those of the unfused ops. A fused block's
  // intermediate tensors never exist in full: tensor_data() is null for them,
  // a run may not start or stop inside a block (is_cut), and the observer
  // sees only a block's last op.
  bool fuse = false;
  // Bytes the planned peak may exceed its minimum by for taller bands
  // (choose_fused_blocks' slack_bytes): fewer kernel calls, less time.
  size_t band_slack_bytes = 0;
  // Explicit blocks instead of choose_fused_blocks' (tests, benchmarks):
  // used as given when non-empty (fused_blocks_valid, else kInvalidArgument),
  // with or without `fuse`.
  Span<const FusedBlock> blocks;
  // Ops kept outside every fused block (e.g. trainable layers, whose input
  // boundary and full output the trainer needs). Read only during init().
  Span<const int> unfused_ops;
};

class Engine {
 public:
  Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Plans the activation buffers of `model` and takes them, plus the engine's
  // own tables, from `arena`. kOutOfMemory when the arena is too small
  // (required_arena_bytes() then tells how much is needed). `model` must
  // outlive the engine.
  // `batch` (>= 1) items per tensor; the arena need grows about N times.
  Status init(const ModelView& model, Arena& arena, const KernelTable& kernels = best_kernels(), int batch = 1,
              const EngineOptions& options = EngineOptions());

  // Bytes of arena that init() takes for `model` (activations + tables),
  // measured by a trial init() in `scratch` (which must be large enough; it is
  // left as it was). The planner's temporaries reuse the activation space, so
  // the need is max(tables + planner scratch, tables + activations).
  static Status required_arena_bytes(const ModelView& model, Arena& scratch, size_t* bytes, int batch = 1,
                                     const EngineOptions& options = EngineOptions());

  // The int8 input tensor, to be filled before every invoke(): the planner
  // reuses its bytes for later tensors once the input is dead, so a run
  // overwrites it.
  // Empty when the model input is not int8.
  Span<int8_t> input(int item = 0);
  // The float32 input of a model that starts with a Quantize op (empty otherwise).
  Span<float> input_f32(int item = 0);
  // Runs every op over every item.
  Status invoke() { return invoke_range(0, model_->n_ops()); }
  // Runs ops [first_op, end_op) over every item. Every tensor live across
  // `first_op` must hold what an earlier run wrote (restore_boundary() puts it
  // back). kInvalidArgument when first_op or end_op is not a cut (is_cut).
  Status invoke_range(int first_op, int end_op) { return invoke_items(first_op, end_op, 0, batch_); }
  // Runs ops [first_op, end_op) over items [item_begin, item_end) only. As
  // with any run, memory of tensors dead at those ops may be reused, in every
  // item: other items' tensors survive only while they are live.
  Status invoke_items(int first_op, int end_op, int item_begin, int item_end);
  // True when a run may start or stop before op `op` (0 <= op <= n_ops): op
  // is not strictly inside a fused block.
  bool is_cut(int op) const;
  // The next cut after op `op` (a cut): the end of the fused block that
  // starts at op, else op + 1.
  int next_cut(int op) const;
  // The fused blocks init() chose (none unless options.fuse).
  int n_fused_blocks() const { return n_blocks_; }
  const FusedBlock& fused_block(int k) const { return blocks_[k]; }
  // Where fused block `k`'s scratch (its windows) lives in the arena; null
  // for a block without scratch or k out of range.
  const void* fused_scratch(int k) const;
  // Index of the fused block containing op `op`, or -1.
  int fused_block_of(int op) const { return block_of_ ? block_of_[op] : -1; }
  // Items per tensor (1 unless init() was given a batch).
  int batch() const { return batch_; }

  // The model output after invoke(): float logits (LinearF32 / Dequantize
  // heads), or int8 (then dequantize with the output tensor's scale).
  const TzmTensor& output_info() const { return model_->tensor(model_->output_tensor()); }
  Span<const float> output_f32(int item = 0) const;
  Span<const int8_t> output_s8(int item = 0) const;

  // The arena memory of item `item` of a non-constant tensor (valid while it
  // is live); null for a fused block's intermediate tensors.
  void* tensor_data(int tensor, int item = 0) const;

  // Bytes of all tensors alive across the boundary before `op` (produced
  // before it and read at or after it): what a suffix run from `op` needs.
  // save/restore_boundary return kInvalidArgument when op is not a cut.
  size_t boundary_size_bytes(int op) const;
  // Copies those tensors of item `item` to / from `cache`
  // (boundary_size_bytes(op) bytes). save_boundary(op) is meaningful right
  // after invoke_range(0, op) (or a restore): after a full invoke() later ops
  // may have reused those bytes. Restoring one cache into several items starts
  // them all from the same point (a batch of queries of one sample).
  Status save_boundary(int op, Span<int8_t> cache, int item = 0) const;
  Status restore_boundary(int op, Span<const int8_t> cache, int item = 0);

  // Weight perturbation: op `op` reads `data` instead of its input `slot`
  // (1 = weight, 2 = bias for Conv2d/FullyConnected; 1 = weight, 2 = bias for
  // LinearF32). `data` must have the same dtype and element count and outlive
  // its use. nullptr restores the model's tensor.
  Status set_param_override(int op, int slot, const void* data);
  const void* param(int op, int slot) const;

  // Node perturbation: after op `op` runs, its int8 output gets `offsets`
  // added element-wise with saturation to [-128, 127], before any later op
  // reads it. `offsets` holds the output's element count; nullptr clears.
  // Several ops may carry offsets at once (model-wise node perturbation).
  Status set_output_offset(int op, const int8_t* offsets);

  // The observer sees each op once per invoke, with the items it ran back to
  // back (out = item_begin's output, size_bytes = all of them).
  void set_observer(OpObserver fn, void* ctx) { observer_ = fn; observer_ctx_ = ctx; }

  const ModelView& model() const { return *model_; }
  const KernelTable& kernels() const { return *kernels_; }
  // Planned activation bytes (the part of the arena that holds tensors).
  size_t activation_bytes() const { return activation_bytes_; }
  // Everything init() took from the arena (activations + tables).
  size_t arena_bytes() const { return arena_bytes_; }
  // Multiply-accumulates of ops [first_op, end_op) for one item.
  uint64_t macs(int first_op, int end_op) const;

 private:
  Status run_op(int i, int item_begin, int item_end);
  Status run_fused(int block, int item_begin, int item_end);
  void run_rows(int op, int a, int e, const int8_t* src, int src_lo, int8_t* dst);
  size_t item_bytes(int tensor) const;

  const ModelView* model_ = nullptr;
  const KernelTable* kernels_ = nullptr;
  uint8_t* activations_ = nullptr;
  size_t activation_bytes_ = 0;
  size_t arena_bytes_ = 0;
  int batch_ = 1;
  size_t* offsets_ = nullptr;             // per tensor: offset in activations_ (non-constants)
  int* last_use_ = nullptr;               // per tensor: last op reading it (-1 if none)
  const void** overrides_ = nullptr;      // per op: [slot 1, slot 2]
  const int8_t** output_offsets_ = nullptr;  // per op: node-perturbation offsets or nullptr
  FusedBlock* blocks_ = nullptr;          // fused blocks (sorted), n_blocks_ of them
  int n_blocks_ = 0;
  int* block_of_ = nullptr;               // per op: its fused block or -1 (null without fusion)
  OpObserver observer_ = nullptr;
  void* observer_ctx_ = nullptr;
};

}  // namespace tinyzo
