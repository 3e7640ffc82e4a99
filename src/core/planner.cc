#include "tinyzo/planner.h"

#include "tinyzo/model.h"

namespace tinyzo {
namespace {

size_t align_up(size_t v) { return (v + kPlanAlign - 1) & ~(kPlanAlign - 1); }
bool bytes_overlap(size_t a, size_t as, size_t b, size_t bs) { return a < b + bs && b < a + as; }

}  // namespace

bool lifetimes_overlap(Span<const BufferRequest> r, int ia, int ib) {
  return r[ia].first_use <= r[ib].last_use && r[ib].first_use <= r[ia].last_use;
}

bool is_inplace_pair(Span<const BufferRequest> r, int ia, int ib) {
  auto takes_over = [&](int y, int x) {
    return r[y].share_with == x && r[x].last_use == r[y].first_use && r[x].size_bytes >= r[y].size_bytes;
  };
  return takes_over(ia, ib) || takes_over(ib, ia);
}

bool is_overlap_pair(Span<const BufferRequest> r, int y) {
  const int n = static_cast<int>(r.size());
  const int x = r[y].overlap_with;
  if (x < 0 || x >= n || x == y || r[x].size_bytes == 0 || r[y].size_bytes == 0) return false;
  if (r[y].overlap_offset % ptrdiff_t(kPlanAlign) != 0 || !lifetimes_overlap(r, x, y)) return false;
  return overlap_saving(r, y, true) > 0;
}

size_t overlap_saving(Span<const BufferRequest> r, int y, bool aligned) {
  const int n = static_cast<int>(r.size());
  const int x = r[y].overlap_with;
  if (x < 0 || x >= n || x == y || r[x].size_bytes == 0 || r[y].size_bytes == 0) return 0;
  const ptrdiff_t sx = ptrdiff_t(aligned ? align_up(r[x].size_bytes) : r[x].size_bytes);
  const ptrdiff_t sy = ptrdiff_t(aligned ? align_up(r[y].size_bytes) : r[y].size_bytes);
  const ptrdiff_t off = r[y].overlap_offset;
  const ptrdiff_t lo = off < 0 ? off : 0, hi = off + sy > sx ? off + sy : sx;
  return hi - lo < sx + sy ? size_t(sx + sy - (hi - lo)) : 0;
}

size_t live_contribution(Span<const BufferRequest> r, int i, int op, bool aligned) {
  const int n = static_cast<int>(r.size());
  if (r[i].size_bytes == 0 || r[i].first_use > op || r[i].last_use < op) return 0;
  const int p = r[i].share_with;
  if (p >= 0 && p < n && r[i].first_use == op && is_inplace_pair(r, i, p)) return 0;  // inside p
  size_t bytes = aligned ? align_up(r[i].size_bytes) : r[i].size_bytes;
  const int x = r[i].overlap_with;
  if (x >= 0 && x < n && r[x].first_use <= op && r[x].last_use >= op && is_overlap_pair(r, i))
    bytes -= overlap_saving(r, i, aligned);
  return bytes;
}

bool plan_is_valid(Span<const BufferRequest> r, Span<const size_t> offsets, size_t total_bytes) {
  const int n = static_cast<int>(r.size());
  for (int a = 0; a < n; ++a) {
    if (r[a].size_bytes == 0) continue;
    if (offsets[a] % kPlanAlign != 0 || offsets[a] + r[a].size_bytes > total_bytes) return false;
    for (int b = a + 1; b < n; ++b) {
      if (r[b].size_bytes == 0 || !lifetimes_overlap(r, a, b)) continue;
      if (!bytes_overlap(offsets[a], r[a].size_bytes, offsets[b], r[b].size_bytes)) continue;
      if (is_inplace_pair(r, a, b) && offsets[a] == offsets[b]) continue;
      if (r[a].overlap_with == b && is_overlap_pair(r, a) && ptrdiff_t(offsets[a] - offsets[b]) == r[a].overlap_offset)
        continue;
      if (r[b].overlap_with == a && is_overlap_pair(r, b) && ptrdiff_t(offsets[b] - offsets[a]) == r[b].overlap_offset)
        continue;
      return false;
    }
  }
  return true;
}

size_t plan_lower_bound_bytes(Span<const BufferRequest> r) {
  int at = 0;
  return plan_lower_bound_at(r, &at);
}

size_t plan_lower_bound_at(Span<const BufferRequest> r, int* at) {
  // Live bytes only grow when a buffer is born, so the max is at some first use.
  const int n = static_cast<int>(r.size());
  size_t best = 0;
  int best_t = 0;
  for (int a = 0; a < n; ++a) {
    if (r[a].size_bytes == 0) continue;
    const int t = r[a].first_use;
    size_t live = 0;
    for (int i = 0; i < n; ++i) live += live_contribution(r, i, t, true);
    if (live > best || (live == best && t < best_t)) {
      best = live;
      best_t = t;
    }
  }
  *at = best_t;
  return best;
}

namespace {

constexpr size_t kUnplaced = ~size_t(0);

// The starting orders of the search. 0 is TFLite Micro's greedy by size (the
// planner's only order before), the others break its typical failures: a big
// short-lived buffer placed before the longer-lived ones it should sit on.
bool before(Span<const BufferRequest> r, int kind, int a, int b) {
  const BufferRequest& x = r[a];
  const BufferRequest& y = r[b];
  const uint64_t lx = uint64_t(x.last_use - x.first_use) + 1, ly = uint64_t(y.last_use - y.first_use) + 1;
  switch (kind) {
    case 1:  // area in the lifetime chart (bytes x ops)
      if (uint64_t(x.size_bytes) * lx != uint64_t(y.size_bytes) * ly)
        return uint64_t(x.size_bytes) * lx > uint64_t(y.size_bytes) * ly;
      break;
    case 2:  // longest lifetime first
      if (lx != ly) return lx > ly;
      break;
    case 3:  // in time order (linear scan)
      if (x.first_use != y.first_use) return x.first_use < y.first_use;
      break;
    case 4:  // by size, later buffers first among equals
      if (x.size_bytes != y.size_bytes) return x.size_bytes > y.size_bytes;
      if (x.first_use != y.first_use) return x.first_use > y.first_use;
      break;
    default:
      break;
  }
  if (x.size_bytes != y.size_bytes) return x.size_bytes > y.size_bytes;
  if (x.first_use != y.first_use) return x.first_use < y.first_use;
  return a < b;
}

// Insertion sort (stable, no heap; n is the tensor count, a few hundred at most).
void sort_order(Span<const BufferRequest> r, int kind, int* order, int n) {
  for (int i = 0; i < n; ++i) order[i] = i;
  for (int i = 1; i < n; ++i) {
    const int v = order[i];
    int j = i;
    for (; j > 0 && before(r, kind, v, order[j - 1]); --j) order[j] = order[j - 1];
    order[j] = v;
  }
}

// First fit in `order`: each buffer at the lowest aligned offset free of the
// buffers placed before it that are alive at the same time, or over an
// in-place partner when nothing else alive sits there. `work` holds n ints.
// Returns the arena size (16-aligned).
size_t place(Span<const BufferRequest> r, const int* order, Span<size_t> offsets, int* work) {
  const int n = static_cast<int>(r.size());
  for (int i = 0; i < n; ++i) offsets[i] = r[i].size_bytes == 0 ? 0 : kUnplaced;
  size_t total = 0;
  for (int oi = 0; oi < n; ++oi) {
    const int i = order[oi];
    const size_t size = r[i].size_bytes;
    if (size == 0) continue;
    // The placed buffers alive with i, sorted by offset, and i's placed
    // in-place partner (either side of the pair may be placed first).
    // An overlap partner (either side) gives a fixed position relative to it.
    int nc = 0, partner = -1;
    size_t partner_at = kUnplaced;
    for (int k = 0; k < n; ++k) {
      if (k == i || offsets[k] == kUnplaced || r[k].size_bytes == 0 || !lifetimes_overlap(r, i, k)) continue;
      if (partner < 0 && (r[i].share_with == k || r[k].share_with == i) && is_inplace_pair(r, i, k)) {
        partner = k;
        partner_at = offsets[k];
      } else if (partner < 0 && r[i].overlap_with == k && is_overlap_pair(r, i)) {
        const ptrdiff_t v = ptrdiff_t(offsets[k]) + r[i].overlap_offset;
        if (v >= 0) {
          partner = k;
          partner_at = size_t(v);
        }
      } else if (partner < 0 && r[k].overlap_with == i && is_overlap_pair(r, k)) {
        const ptrdiff_t v = ptrdiff_t(offsets[k]) - r[k].overlap_offset;
        if (v >= 0) {
          partner = k;
          partner_at = size_t(v);
        }
      }
      int j = nc++;
      for (; j > 0 && offsets[work[j - 1]] > offsets[k]; --j) work[j] = work[j - 1];
      work[j] = k;
    }
    size_t at = kUnplaced;
    if (partner >= 0) {
      at = partner_at;
      for (int c = 0; c < nc && at != kUnplaced; ++c) {
        const int k = work[c];
        if (k != partner && bytes_overlap(at, size, offsets[k], r[k].size_bytes)) at = kUnplaced;
      }
    }
    if (at == kUnplaced) {
      // Sweep the conflicts by offset: the first gap that holds `size`.
      at = 0;
      for (int c = 0; c < nc; ++c) {
        const int k = work[c];
        if (offsets[k] >= at + size) break;
        const size_t end = align_up(offsets[k] + r[k].size_bytes);
        if (end > at) at = end;
      }
    }
    offsets[i] = at;
    if (at + size > total) total = at + size;
  }
  return align_up(total);
}

// Squeaky wheel: each buffer that ends above `target` gains `step` priority
// and `order` is re-sorted by priority, highest first (stable, so ties keep
// their order). Moving the culprits up gradually rather than straight to the
// front keeps the search from swinging between two bad plans.
void promote(Span<const BufferRequest> r, Span<const size_t> offsets, size_t target, int step, int* order,
             int* priority) {
  const int n = static_cast<int>(r.size());
  for (int i = 0; i < n; ++i)
    if (offsets[i] + r[i].size_bytes > target) priority[i] += step;
  for (int i = 1; i < n; ++i) {
    const int v = order[i];
    int j = i;
    for (; j > 0 && priority[order[j - 1]] < priority[v]; --j) order[j] = order[j - 1];
    order[j] = v;
  }
}

}  // namespace

Status plan_buffers(Span<const BufferRequest> r, Span<size_t> offsets, Span<int> scratch,
                    size_t* total_bytes) {
  const int n = static_cast<int>(r.size());
  if (offsets.size() < r.size() || scratch.size() < plan_buffers_scratch_size(r.size()) ||
      total_bytes == nullptr)
    return Status::kInvalidArgument;
  for (int i = 0; i < n; ++i) {
    if (r[i].last_use < r[i].first_use) return Status::kInvalidArgument;
    if (r[i].share_with >= n) return Status::kInvalidArgument;
  }
  int* order = scratch.data();
  int* best_order = order + n;
  int* work = best_order + n;
  int* priority = work + n;
  const size_t target = plan_lower_bound_bytes(r);
  // A quarter of the buffers that take space (constants in the engine's
  // requests have size 0 and do not count): how far a culprit moves up.
  int n_live = 0;
  for (int i = 0; i < n; ++i) n_live += r[i].size_bytes != 0;
  const int step = n_live / 4 > 1 ? n_live / 4 : 1;
  size_t best = kUnplaced;
  for (int kind = 0; kind < kPlanOrders; ++kind) {
    sort_order(r, kind, order, n);
    // Priorities from the rank in the starting order (zero-sized ones last).
    for (int oi = 0, rank = n_live; oi < n; ++oi) priority[order[oi]] = r[order[oi]].size_bytes ? rank-- : 0;
    for (int round = 0; round < kPlanRounds; ++round) {
      const size_t total = place(r, order, offsets, work);
      if (total <= target) {  // cannot be beaten: offsets hold this plan
        *total_bytes = total;
        return Status::kOk;
      }
      if (total < best) {
        best = total;
        for (int i = 0; i < n; ++i) best_order[i] = order[i];
      }
      promote(r, Span<const size_t>(offsets.data(), offsets.size()), target, step, order, priority);
    }
  }
  *total_bytes = place(r, best_order, offsets, work);
  return Status::kOk;
}

Status build_buffer_requests(const ModelView& model, Span<BufferRequest> requests) {
  const int nt = model.n_tensors(), no = model.n_ops();
  if (!model.valid() || requests.size() < size_t(nt)) return Status::kInvalidArgument;
  for (int t = 0; t < nt; ++t) {
    const TzmTensor& info = model.tensor(t);
    BufferRequest& q = requests[t];
    q = BufferRequest{};
    if (info.flags & kTensorConstant) continue;
    q.size_bytes = tensor_elements(info) * dtype_size(static_cast<DType>(info.dtype));
    q.first_use = t == model.input_tensor() ? -1 : model.producer(t);
    q.last_use = q.first_use;
  }
  for (int i = 0; i < no; ++i) {
    const TzmOp& op = model.op(i);
    for (int k = 0; k < op.n_inputs; ++k) {
      BufferRequest& q = requests[op.inputs[k]];
      if (q.size_bytes != 0 && i > q.last_use) q.last_use = i;
    }
  }
  requests[model.output_tensor()].last_use = no;  // readable after invoke()
  for (int i = 0; i < no; ++i) {
    const TzmOp& op = model.op(i);
    if (static_cast<OpType>(op.type) != OpType::kAdd && static_cast<OpType>(op.type) != OpType::kAddTfl) continue;
    // Add reads x1[e] and x2[e] before writing y[e]: it may run in place over
    // an input that dies here. Never over the model input: the caller fills it
    // before the run, so it must not be the add's output buffer as well.
    for (int k = 0; k < 2; ++k) {
      const int in = op.inputs[k];
      if (in != model.input_tensor() && requests[in].last_use == i) {
        requests[op.output].share_with = in;
        break;
      }
    }
  }
  return Status::kOk;
}

}  // namespace tinyzo
