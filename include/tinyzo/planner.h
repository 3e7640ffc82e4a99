// Arena planner over buffer lifetimes. Each buffer is placed at the lowest
// 16-aligned offset that does not overlap a buffer whose lifetime intersects
// its own (first fit), in an order that is searched: TFLite Micro's "greedy
// by size" order first, then a few other fixed orders, each refined by
// "squeaky wheel" rounds (the buffers that stick out above the live-bytes
// lower bound move up the order and the plan is redone). The
// search stops at the first plan that reaches the lower bound (no plan can be
// smaller) and otherwise keeps the smallest plan it saw. Deterministic,
// integer only, no heap: the host and the device compute the same offsets.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/span.h"
#include "tinyzo/status.h"

namespace tinyzo {

constexpr size_t kPlanAlign = 16;  // every planned buffer starts on this boundary

struct BufferRequest {
  size_t size_bytes = 0;  // 0 = no buffer (offset reported as 0)
  int first_use = 0;      // index of the op that writes it (or -1: before op 0)
  int last_use = 0;       // index of the last op that reads it (inclusive)
  // Index of another request whose memory this one may take over in place:
  // the partner's last_use must equal this request's first_use and its size
  // must be at least this size (an element-wise op that reads element i before
  // writing element i). -1 for none.
  int share_with = -1;
  // Index of another request whose bytes this one may overlap while both are
  // alive, placed exactly `overlap_offset` bytes (a multiple of kPlanAlign,
  // may be negative) after the partner's start: the caller guarantees that
  // no byte of this buffer is written while the partner still needs it (a
  // fused block's output over its dying input, fusion.h). Honoured only when
  // the pair then spans fewer bytes than the two apart (is_overlap_pair).
  // -1 for none.
  int overlap_with = -1;
  ptrdiff_t overlap_offset = 0;
};

// Ints of scratch plan_buffers needs for `n_requests` requests: the order
// being tried, the best order so far, a work list and a priority per buffer.
constexpr size_t plan_buffers_scratch_size(size_t n_requests) { return 4 * n_requests; }

// Plans `requests` into one arena. Writes each buffer's byte offset to
// `offsets` (same length) and the arena size to `*total_bytes` (16-aligned).
// `scratch` needs plan_buffers_scratch_size(requests.size()) ints. Returns
// kInvalidArgument for inconsistent input.
// Cost: each trial is a first-fit placement, O(n^2) lifetime checks plus an
// insertion sort of each buffer's conflicts; at most kPlanOrders x
// kPlanRounds trials, and one when the greedy-by-size plan already reaches
// the lower bound.
Status plan_buffers(Span<const BufferRequest> requests, Span<size_t> offsets, Span<int> scratch,
                    size_t* total_bytes);

// The search budget of plan_buffers: starting orders, rounds per order.
constexpr int kPlanOrders = 5;
constexpr int kPlanRounds = 32;

// A lower bound on any valid plan of `requests` (so plan_buffers stops when it
// reaches it): the max over ops of the bytes alive at that op, each size
// rounded up to kPlanAlign (every buffer starts on that boundary) and an
// in-place pair (is_inplace_pair) that hands over at that op counted once.
// Equals the peak live bytes when every size is a multiple of kPlanAlign.
size_t plan_lower_bound_bytes(Span<const BufferRequest> requests);
// The same bound, and in `*at` the earliest op where it is reached (-1: before
// op 0; 0 when there are no buffers).
size_t plan_lower_bound_at(Span<const BufferRequest> requests, int* at);

// True when requests ia and ib are alive at the same op (inclusive intervals).
bool lifetimes_overlap(Span<const BufferRequest> requests, int ia, int ib);
// True when ia and ib are an in-place pair (one may take the other's memory).
bool is_inplace_pair(Span<const BufferRequest> requests, int ia, int ib);
// True when `y` may overlap its partner r[y].overlap_with (see BufferRequest)
// and that saves bytes.
bool is_overlap_pair(Span<const BufferRequest> requests, int y);
// Bytes an overlap pair saves over placing the two apart: size(x) + size(y)
// minus the bytes the pair spans (each size rounded up to kPlanAlign when
// `aligned`); 0 when `y` is no overlap pair.
size_t overlap_saving(Span<const BufferRequest> requests, int y, bool aligned);
// What request `i` adds to the bytes alive at op `op` (0 when it is not alive
// then): its size (rounded up to kPlanAlign when `aligned`), nothing when it
// takes over an in-place partner at that op, and less the overlap saving
// while its overlap partner is alive too. The sum over requests is what the
// planner's lower bound, `tinyzo plan` and the memory model count.
size_t live_contribution(Span<const BufferRequest> requests, int i, int op, bool aligned);
// Checks a plan: no two buffers that are alive at the same time share a byte,
// except an in-place pair placed at the same offset and an overlap pair placed
// at its offset; all fit in total_bytes.
bool plan_is_valid(Span<const BufferRequest> requests, Span<const size_t> offsets, size_t total_bytes);

class ModelView;
// One request per tensor of `model` (constants get size 0): lifetime from its
// producing op (-1 for the model input) to its last reader (n_ops for the
// model output, so it survives invoke()); element-wise ops (Add) may take over
// an input that dies at that op. This is exactly what the Engine plans.
Status build_buffer_requests(const ModelView& model, Span<BufferRequest> requests);

}  // namespace tinyzo
