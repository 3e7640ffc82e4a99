// Greedy arena planner over buffer lifetimes (TFLite Micro's "greedy by size"
// idea): largest buffers first, each at the lowest offset that does not
// overlap a buffer whose lifetime intersects its own. Device-safe, no heap.
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
};

// Plans `requests` into one arena. Writes each buffer's byte offset to
// `offsets` (same length) and the arena size to `*total_bytes`. `scratch`
// needs requests.size() ints. Returns kInvalidArgument for inconsistent input.
Status plan_buffers(Span<const BufferRequest> requests, Span<size_t> offsets, Span<int> scratch,
                    size_t* total_bytes);

// True when requests ia and ib are alive at the same op (inclusive intervals).
bool lifetimes_overlap(Span<const BufferRequest> requests, int ia, int ib);
// True when ia and ib are an in-place pair (one may take the other's memory).
bool is_inplace_pair(Span<const BufferRequest> requests, int ia, int ib);
// Checks a plan: no two buffers that are alive at the same time share a byte,
// except an in-place pair placed at the same offset; all fit in total_bytes.
bool plan_is_valid(Span<const BufferRequest> requests, Span<const size_t> offsets, size_t total_bytes);

class ModelView;
// One request per tensor of `model` (constants get size 0): lifetime from its
// producing op (-1 for the model input) to its last reader (n_ops for the
// model output, so it survives invoke()); element-wise ops (Add) may take over
// an input that dies at that op. This is exactly what the Engine plans.
Status build_buffer_requests(const ModelView& model, Span<BufferRequest> requests);

}  // namespace tinyzo
