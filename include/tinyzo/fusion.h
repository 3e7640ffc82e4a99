// Fused row-band execution of convolution chains (docs/memory.md, "Fused
// blocks"). A fused block is a run of consecutive Conv2d ops [first_op,
// end_op) where each op's output is read only by the next op; typically an
// inverted bottleneck (pointwise expand, depthwise, pointwise project). The
// block is computed `band_rows` rows of its last output at a time: each
// intermediate tensor lives only as a sliding window of the rows the next op
// still needs (rows that two bands share are kept and moved up, never
// recomputed), so the large expanded tensor never exists in full. Each band
// is an ordinary kernel call on a row range, so the result is bitwise what
// the unfused ops compute, for every kernel table.
//
// This header plans blocks; the Engine (engine.h) executes them. Device-safe:
// no heap, every table comes from the caller.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/model.h"
#include "tinyzo/planner.h"
#include "tinyzo/span.h"
#include "tinyzo/status.h"

namespace tinyzo {

struct FusedBlock {
  int first_op = 0;   // first op of the block
  int end_op = 0;     // one past its last op (end_op - first_op >= 2)
  int band_rows = 1;  // rows of the last op's output computed per band (>= 1)
};

// Most ops in one fused block (window levels of the executor).
constexpr int kMaxFusedOps = 8;

// True when op `op` and op `op` + 1 may sit in one fused block with op
// `op`'s output as a window: both are Conv2d over int8 rank-3 tensors, op + 1
// reads op's output as its data input, and nothing else reads it (nor is it
// the model output).
bool fusable_link(const ModelView& model, int op);

// Bytes of a block's windows (each 16-aligned): what its one scratch buffer
// takes. 0 for an invalid block.
size_t fused_scratch_bytes(const ModelView& model, const FusedBlock& block);

// Rows of each intermediate tensor the block keeps at once: `rows[j]` for
// the output of op first_op + j (j < end_op - first_op - 1). kInvalidArgument
// for an invalid block or a short table.
Status fused_window_rows(const ModelView& model, const FusedBlock& block, Span<int> rows);

// The input rows [*lo, *hi) of Conv2d op `op` that its output rows [a, e)
// read (clipped to the input; padding rows are not rows).
void conv_input_rows(const ModelView& model, int op, int a, int e, int* lo, int* hi);

// Checks a block list: sorted, disjoint, each block a valid chain of
// fusable_link ops with 2..kMaxFusedOps ops and band_rows >= 1.
bool fused_blocks_valid(const ModelView& model, Span<const FusedBlock> blocks);

// Where a block's output may start relative to its input when the input dies
// at the block: `*offset` bytes after the input's start (16-aligned, may be
// negative), the largest such offset, capped at in_bytes - out_bytes, for
// which no band writes an output byte that a later band still reads as
// input (replaying run_fused's schedule, items one at a time). False for an
// invalid block.
bool fused_output_offset(const ModelView& model, const FusedBlock& block, ptrdiff_t* offset);

// Requests for the model with `blocks` fused: build_buffer_requests' n_tensors
// requests, then one scratch request per block (index n_tensors + k). A
// block's intermediate tensors get size 0, its input lives to its last op,
// its output from its first op (both are in use while the bands run), its
// scratch from its first to its last op. When the block's input dies at the
// block, the output is an overlap pair with it (BufferRequest::overlap_with,
// fused_output_offset). `requests` needs n_tensors +
// blocks.size() entries.
Status build_fused_requests(const ModelView& model, Span<const FusedBlock> blocks, Span<BufferRequest> requests);

// Ints of scratch choose_fused_blocks needs, and its request table size.
constexpr size_t choose_fused_requests_size(size_t n_tensors, size_t n_ops) { return n_tensors + n_ops / 2 + 1; }

// Chooses the blocks to fuse: while the live-bytes peak of the plan
// (plan_lower_bound_bytes) sits inside a chain of fusable_link ops, it fuses
// the sub-chain around the peak op that lowers the peak most (the shortest
// among equals; it merges with blocks already chosen there), and stops when
// no block lowers it; blocks that then no longer lower the peak are dropped.
// Then each block's band_rows doubles as long as the peak stays within
// `slack_bytes` of that minimum (fewer kernel calls and window moves: time
// for memory, see docs/memory.md). Ops listed in `unfused_ops`
// stay outside every block. Writes the blocks (sorted) to `blocks`, which
// needs n_ops / 2 + 1 entries, and their count to `*n_blocks`; `work` needs
// choose_fused_requests_size() requests and `candidate` n_ops / 2 + 1
// blocks. Deterministic, integer only.
Status choose_fused_blocks(const ModelView& model, Span<const int> unfused_ops, Span<BufferRequest> work,
                           Span<FusedBlock> candidate, Span<FusedBlock> blocks, int* n_blocks,
                           size_t slack_bytes = 0);

}  // namespace tinyzo
