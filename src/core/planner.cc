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

bool plan_is_valid(Span<const BufferRequest> r, Span<const size_t> offsets, size_t total_bytes) {
  const int n = static_cast<int>(r.size());
  for (int a = 0; a < n; ++a) {
    if (r[a].size_bytes == 0) continue;
    if (offsets[a] % kPlanAlign != 0 || offsets[a] + r[a].size_bytes > total_bytes) return false;
    for (int b = a + 1; b < n; ++b) {
      if (r[b].size_bytes == 0 || !lifetimes_overlap(r, a, b)) continue;
      if (!bytes_overlap(offsets[a], r[a].size_bytes, offsets[b], r[b].size_bytes)) continue;
      if (is_inplace_pair(r, a, b) && offsets[a] == offsets[b]) continue;
      return false;
    }
  }
  return true;
}

Status plan_buffers(Span<const BufferRequest> r, Span<size_t> offsets, Span<int> order, size_t* total_bytes) {
  const int n = static_cast<int>(r.size());
  if (offsets.size() < r.size() || order.size() < r.size() || total_bytes == nullptr)
    return Status::kInvalidArgument;
  for (int i = 0; i < n; ++i) {
    if (r[i].last_use < r[i].first_use) return Status::kInvalidArgument;
    if (r[i].share_with >= n) return Status::kInvalidArgument;
  }
  // Largest first; ties by first use, then index, so the plan is deterministic.
  // Insertion sort: n is the tensor count (a few hundred at most) and it needs no heap.
  for (int i = 0; i < n; ++i) {
    int j = i;
    while (j > 0) {
      const BufferRequest& a = r[order[j - 1]];
      const BufferRequest& b = r[i];
      const bool later = a.size_bytes < b.size_bytes ||
                         (a.size_bytes == b.size_bytes && a.first_use > b.first_use);
      if (!later) break;
      order[j] = order[j - 1];
      --j;
    }
    order[j] = i;
  }
  constexpr size_t kUnplaced = ~size_t(0);
  for (int i = 0; i < n; ++i) offsets[i] = r[i].size_bytes == 0 ? 0 : kUnplaced;

  size_t total = 0;
  auto conflicts = [&](int self, size_t at, int skip) {
    for (int k = 0; k < n; ++k) {
      if (k == self || k == skip || offsets[k] == kUnplaced || r[k].size_bytes == 0) continue;
      if (lifetimes_overlap(r, self, k) && bytes_overlap(at, r[self].size_bytes, offsets[k], r[k].size_bytes))
        return k;
    }
    return -1;
  };
  for (int oi = 0; oi < n; ++oi) {
    const int i = order[oi];
    if (r[i].size_bytes == 0) continue;
    const int partner = r[i].share_with;
    // In place: take the partner's memory when nothing else alive sits there.
    if (partner >= 0 && offsets[partner] != kUnplaced && is_inplace_pair(r, i, partner) &&
        conflicts(i, offsets[partner], partner) < 0) {
      offsets[i] = offsets[partner];
    } else {
      // First fit: bump past every conflicting buffer until none is left.
      size_t at = 0;
      for (int k = conflicts(i, at, -1); k >= 0; k = conflicts(i, at, -1))
        at = align_up(offsets[k] + r[k].size_bytes);
      offsets[i] = at;
    }
    const size_t end = offsets[i] + r[i].size_bytes;
    if (end > total) total = end;
  }
  *total_bytes = align_up(total);
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
    if (static_cast<OpType>(op.type) != OpType::kAdd) continue;
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
