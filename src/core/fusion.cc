#include "tinyzo/fusion.h"

#include <cstdint>

namespace tinyzo {
namespace {

size_t align16(size_t v) { return (v + kPlanAlign - 1) & ~(kPlanAlign - 1); }

bool is_s8_image(const TzmTensor& t) { return t.dtype == uint8_t(DType::kInt8) && t.rank == 3; }

// A Conv2d op over int8 [H, W, C] tensors (what the band executor runs).
bool conv_ok(const ModelView& m, int op) {
  if (op < 0 || op >= m.n_ops()) return false;
  const TzmOp& o = m.op(op);
  if (static_cast<OpType>(o.type) != OpType::kConv2d) return false;
  return is_s8_image(m.tensor(o.inputs[0])) && is_s8_image(m.tensor(o.output));
}

int out_rows(const ModelView& m, int op) { return m.tensor(m.op(op).output).dims[0]; }

bool listed(Span<const int> ops, int op) {
  for (const int v : ops)
    if (v == op) return true;
  return false;
}

}  // namespace

bool fusable_link(const ModelView& m, int op) {
  if (!conv_ok(m, op) || !conv_ok(m, op + 1)) return false;
  const int t = m.op(op).output;
  if (m.op(op + 1).inputs[0] != t || t == m.output_tensor()) return false;
  int readers = 0;
  for (int i = 0; i < m.n_ops(); ++i) {
    const TzmOp& o = m.op(i);
    for (int k = 0; k < o.n_inputs; ++k) readers += o.inputs[k] == t;
  }
  return readers == 1;
}

void conv_input_rows(const ModelView& m, int op, int a, int e, int* lo, int* hi) {
  const TzmOp& o = m.op(op);
  const int s = o.params[kConvStrideH], pt = o.params[kConvPadTop], kh = o.params[kConvKh];
  const int in_h = m.tensor(o.inputs[0]).dims[0];
  int l = a * s - pt, h = (e - 1) * s - pt + kh;
  if (l < 0) l = 0;
  if (h > in_h) h = in_h;
  if (h < l) h = l;
  *lo = l;
  *hi = h;
}

bool fused_blocks_valid(const ModelView& m, Span<const FusedBlock> blocks) {
  int prev_end = 0;
  for (const FusedBlock& b : blocks) {
    const int n = b.end_op - b.first_op;
    if (b.first_op < prev_end || n < 2 || n > kMaxFusedOps || b.end_op > m.n_ops() || b.band_rows < 1) return false;
    for (int i = b.first_op; i + 1 < b.end_op; ++i)
      if (!fusable_link(m, i)) return false;
    prev_end = b.end_op;
  }
  return true;
}

Status fused_window_rows(const ModelView& m, const FusedBlock& b, Span<int> rows) {
  const int n = b.end_op - b.first_op;
  if (!fused_blocks_valid(m, Span<const FusedBlock>(&b, 1)) || rows.size() < size_t(n - 1))
    return Status::kInvalidArgument;
  for (int j = 0; j < n - 1; ++j) rows[j] = 0;
  // The executor's band loop, row ranges only: level j is the output of op
  // first_op + j - 1 (level 0 the block input); after a band, window j holds
  // exactly the rows [lo, hi) that the band needed of it.
  const int h_out = out_rows(m, b.end_op - 1);
  int lo[kMaxFusedOps + 1], hi[kMaxFusedOps + 1];
  for (int o0 = 0; o0 < h_out; o0 += b.band_rows) {
    lo[n] = o0;
    hi[n] = o0 + b.band_rows < h_out ? o0 + b.band_rows : h_out;
    for (int j = n; j >= 1; --j) conv_input_rows(m, b.first_op + j - 1, lo[j], hi[j], &lo[j - 1], &hi[j - 1]);
    for (int j = 1; j < n; ++j)
      if (hi[j] - lo[j] > rows[j - 1]) rows[j - 1] = hi[j] - lo[j];
  }
  return Status::kOk;
}

size_t fused_scratch_bytes(const ModelView& m, const FusedBlock& b) {
  int rows[kMaxFusedOps];
  if (fused_window_rows(m, b, Span<int>(rows, kMaxFusedOps)) != Status::kOk) return 0;
  size_t total = 0;
  for (int j = 0; j + 1 < b.end_op - b.first_op; ++j) {
    const TzmTensor& t = m.tensor(m.op(b.first_op + j).output);
    total += align16(size_t(rows[j]) * size_t(t.dims[1]) * size_t(t.dims[2]));
  }
  return total;
}

bool fused_output_offset(const ModelView& m, const FusedBlock& b, ptrdiff_t* offset) {
  if (offset == nullptr || !fused_blocks_valid(m, Span<const FusedBlock>(&b, 1))) return false;
  const int n = b.end_op - b.first_op;
  const TzmTensor& xt = m.tensor(m.op(b.first_op).inputs[0]);
  const TzmTensor& yt = m.tensor(m.op(b.end_op - 1).output);
  const ptrdiff_t in_row = ptrdiff_t(xt.dims[1]) * xt.dims[2], out_row = ptrdiff_t(yt.dims[1]) * yt.dims[2];
  const ptrdiff_t in_bytes = in_row * xt.dims[0], out_bytes = out_row * yt.dims[0];
  const int h_out = yt.dims[0];
  // Replay run_fused's schedule (row ranges only) twice: band t reads input
  // rows [read_lo, ...) through its level-1 run_rows and, after that, writes
  // output rows [need_lo[n], need_hi[n]). The output may start `d` bytes after
  // the input when every band's write ends at or before the first input byte
  // any later band reads: d + write_hi(t) <= min over t' > t of read_lo(t').
  // A band reads before it writes, so its own reads do not count.
  ptrdiff_t best = PTRDIFF_MAX;
  ptrdiff_t later_read_lo = PTRDIFF_MAX;  // min read_lo over the bands after the current one
  // Walk the bands backwards: collect each band's read and write first.
  const int n_bands = (h_out + b.band_rows - 1) / b.band_rows;
  for (int band = n_bands - 1; band >= 0; --band) {
    // The window state before this band: replay from the start (h_out / band_rows
    // bands, so quadratic in bands; a few thousand steps at most).
    int lo[kMaxFusedOps + 1] = {}, hi[kMaxFusedOps + 1] = {};
    int read_lo = -1, w_hi = 0;
    for (int t = 0; t <= band; ++t) {
      int need_lo[kMaxFusedOps + 1], need_hi[kMaxFusedOps + 1];
      const int o0 = t * b.band_rows;
      need_lo[n] = o0;
      need_hi[n] = o0 + b.band_rows < h_out ? o0 + b.band_rows : h_out;
      for (int j = n; j >= 1; --j)
        conv_input_rows(m, b.first_op + j - 1, need_lo[j], need_hi[j], &need_lo[j - 1], &need_hi[j - 1]);
      read_lo = -1;
      for (int j = 1; j < n; ++j) {
        if (need_lo[j] >= hi[j]) {
          lo[j] = hi[j] = need_lo[j];
        } else if (need_lo[j] > lo[j]) {
          lo[j] = need_lo[j];
        }
        if (need_hi[j] > hi[j]) {
          if (j == 1) {
            int rl = 0, rh = 0;
            conv_input_rows(m, b.first_op, hi[j], need_hi[j], &rl, &rh);
            if (rh > rl) read_lo = rl;
          }
          hi[j] = need_hi[j];
        }
      }
      w_hi = need_hi[n];
    }
    if (later_read_lo != PTRDIFF_MAX && later_read_lo - w_hi * out_row < best) best = later_read_lo - w_hi * out_row;
    if (read_lo >= 0 && read_lo * in_row < later_read_lo) later_read_lo = read_lo * in_row;
  }
  // Any offset up to `best` is safe; past in_bytes - out_bytes the output
  // sticks out of the input's end for nothing.
  ptrdiff_t d = best;
  const ptrdiff_t flush = in_bytes - out_bytes > 0 ? in_bytes - out_bytes : 0;
  if (d > flush) d = flush;
  // Round down to kPlanAlign (towards minus infinity).
  const ptrdiff_t a = ptrdiff_t(kPlanAlign);
  d = d >= 0 ? d / a * a : -((-d + a - 1) / a) * a;
  *offset = d;
  return true;
}

Status build_fused_requests(const ModelView& m, Span<const FusedBlock> blocks, Span<BufferRequest> r) {
  const size_t nt = size_t(m.n_tensors());
  if (r.size() < nt + blocks.size() || !fused_blocks_valid(m, blocks)) return Status::kInvalidArgument;
  TZ_RETURN_IF_ERROR(build_buffer_requests(m, r.subspan(0, nt)));
  for (size_t k = 0; k < blocks.size(); ++k) {
    const FusedBlock& b = blocks[k];
    for (int i = b.first_op; i + 1 < b.end_op; ++i) r[size_t(m.op(i).output)] = BufferRequest{};
    // The bands read the input and write the output from the first op to the
    // last: both are alive over the whole block.
    const int in_t = m.op(b.first_op).inputs[0], out_t = m.op(b.end_op - 1).output;
    BufferRequest& in = r[size_t(in_t)];
    const bool in_dies = in.last_use <= b.first_op && in_t != m.output_tensor();
    if (in.last_use < b.end_op - 1) in.last_use = b.end_op - 1;
    BufferRequest& out = r[size_t(out_t)];
    out.first_use = b.first_op;
    // An input that dies at the block may take the output over the rows the
    // bands are done with (fused_output_offset).
    ptrdiff_t off = 0;
    if (in_dies && fused_output_offset(m, b, &off)) {
      out.overlap_with = in_t;
      out.overlap_offset = off;
      if (!is_overlap_pair(Span<const BufferRequest>(r.data(), nt), out_t)) out.overlap_with = -1;
    }
    BufferRequest& s = r[nt + k];
    s = BufferRequest{};
    s.size_bytes = fused_scratch_bytes(m, b);
    s.first_use = b.first_op;
    s.last_use = b.end_op - 1;
  }
  return Status::kOk;
}

namespace {

// How good a plan of these blocks can be: its live-bytes peak (the planner's
// lower bound), the first op where it is reached and at how many ops. Fewer
// peak ops is progress too: a peak reached at two ops falls only once both
// are fixed.
struct Peak {
  size_t bytes = ~size_t(0);
  int at = 0;
  int count = 0;
  bool better_than(const Peak& o) const { return bytes < o.bytes || (bytes == o.bytes && count < o.count); }
};

Peak fused_peak(const ModelView& m, Span<const FusedBlock> blocks, Span<BufferRequest> work) {
  Peak p;
  const size_t nt = size_t(m.n_tensors());
  if (build_fused_requests(m, blocks, work) != Status::kOk) return p;
  const Span<const BufferRequest> r(work.data(), nt + blocks.size());
  p.bytes = plan_lower_bound_at(r, &p.at);
  // Distinct ops reaching the peak: live bytes only grow at a first use.
  const int n = static_cast<int>(r.size());
  for (int t = -1; t <= m.n_ops(); ++t) {
    bool born = false;
    for (int i = 0; i < n && !born; ++i) born = r[i].size_bytes != 0 && r[i].first_use == t;
    if (!born) continue;
    size_t live = 0;
    for (int i = 0; i < n; ++i) live += live_contribution(r, i, t, true);
    p.count += live == p.bytes;
  }
  return p;
}

// `blocks` with [a, e) added (band_rows 1), merged with the blocks it
// overlaps (all in the same chain); false when the result would
// exceed kMaxFusedOps or the capacity.
bool with_block(Span<const FusedBlock> blocks, int a, int e, Span<FusedBlock> out, int* n_out) {
  int n = 0;
  bool placed = false;
  for (const FusedBlock& b : blocks) {
    if (b.end_op <= a || b.first_op >= e) {  // apart (touching blocks stay two blocks)
      if (!placed && b.first_op >= e) {
        if (size_t(n) >= out.size()) return false;
        out[n++] = FusedBlock{a, e, 1};
        placed = true;
      }
      if (size_t(n) >= out.size()) return false;
      out[n++] = b;
      continue;
    }
    if (b.first_op < a) a = b.first_op;
    if (b.end_op > e) e = b.end_op;
  }
  if (e - a > kMaxFusedOps) return false;
  if (!placed) {
    if (size_t(n) >= out.size()) return false;
    out[n++] = FusedBlock{a, e, 1};
  }
  // A merge may have grown the new block over an earlier neighbour: keep it sorted.
  for (int i = n - 1; i > 0 && out[i].first_op < out[i - 1].first_op; --i) {
    const FusedBlock t = out[i];
    out[i] = out[i - 1];
    out[i - 1] = t;
  }
  *n_out = n;
  return true;
}

}  // namespace

Status choose_fused_blocks(const ModelView& m, Span<const int> unfused, Span<BufferRequest> work,
                           Span<FusedBlock> candidate, Span<FusedBlock> blocks, int* n_blocks,
                           size_t slack_bytes) {
  const int no = m.n_ops();
  const size_t cap = size_t(no) / 2 + 1;
  if (!m.valid() || n_blocks == nullptr || work.size() < choose_fused_requests_size(size_t(m.n_tensors()), size_t(no)) ||
      candidate.size() < cap || blocks.size() < cap)
    return Status::kInvalidArgument;
  int nb = 0;
  Peak peak = fused_peak(m, Span<const FusedBlock>(blocks.data(), 0), work);
  const size_t unfused_peak = peak.bytes;
  auto in_chain = [&](int op) { return conv_ok(m, op) && !listed(unfused, op); };
  for (int iter = 0; iter < 4 * no; ++iter) {
    const int p = peak.at;
    if (p < 0 || !in_chain(p)) break;
    // The maximal chain of fusable links around the peak op.
    int c0 = p, c1 = p + 1;
    while (c0 > 0 && in_chain(c0 - 1) && fusable_link(m, c0 - 1)) --c0;
    while (c1 < no && in_chain(c1) && fusable_link(m, c1 - 1)) ++c1;
    // Only a block that contains op p removes a tensor alive at p (the output
    // of p - 1 or of p); try every one and keep the best (shortest among equals).
    Peak best = peak;
    int best_a = -1, best_e = -1;
    for (int a = c0; a <= p; ++a)
      for (int e = p + 1; e <= c1; ++e) {
        if (e - a < 2 || e - a > kMaxFusedOps) continue;
        int n = 0;
        if (!with_block(Span<const FusedBlock>(blocks.data(), size_t(nb)), a, e, candidate, &n)) continue;
        const Peak v = fused_peak(m, Span<const FusedBlock>(candidate.data(), size_t(n)), work);
        if (v.better_than(best) ||
            (best_a >= 0 && !best.better_than(v) && v.bytes == best.bytes && e - a < best_e - best_a)) {
          best = v;
          best_a = a;
          best_e = e;
        }
      }
    if (best_a < 0) break;
    int n = 0;
    (void)with_block(Span<const FusedBlock>(blocks.data(), size_t(nb)), best_a, best_e, candidate, &n);
    for (int k = 0; k < n; ++k) blocks[k] = candidate[k];
    nb = n;
    peak = best;
  }
  // Fusion costs time: drop the blocks whose removal keeps the peak (those
  // that only cut a peak op that another op still reaches), and none at all
  // when the peak did not fall.
  if (peak.bytes >= unfused_peak) nb = 0;
  for (int k = nb - 1; k >= 0; --k) {
    int n = 0;
    for (int i = 0; i < nb; ++i)
      if (i != k) candidate[n++] = blocks[i];
    if (fused_peak(m, Span<const FusedBlock>(candidate.data(), size_t(n)), work).bytes <= peak.bytes) {
      for (int i = 0; i < n; ++i) blocks[i] = candidate[i];
      nb = n;
    }
  }
  // Larger bands: fewer kernel calls and window moves, while the peak holds
  // (within the slack the caller grants).
  for (int k = 0; k < nb; ++k) {
    const int h = out_rows(m, blocks[k].end_op - 1);
    while (blocks[k].band_rows < h) {
      const int prev = blocks[k].band_rows;
      blocks[k].band_rows = prev * 2 < h ? prev * 2 : h;
      if (fused_peak(m, Span<const FusedBlock>(blocks.data(), size_t(nb)), work).bytes > peak.bytes + slack_bytes) {
        blocks[k].band_rows = prev;
        break;
      }
    }
  }
  *n_blocks = nb;
  return Status::kOk;
}

}  // namespace tinyzo
