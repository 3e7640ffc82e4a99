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

// True when two requests are alive at the same op (inclusive intervals),
// ignoring a legal in-place hand-over between them.
bool lifetimes_overlap(const BufferRequest& a, const BufferRequest& b, int ia, int ib);

}  // namespace tinyzo
