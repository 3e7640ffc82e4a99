// Arena planner: hand cases (reuse along a chain, in-place sharing and when it
// must be refused, the ProxylessNAS pattern greedy-by-size misses), argument
// checks, property tests over random lifetimes (plans are valid, never below
// the live-bytes lower bound, never above the greedy-by-size plan, equal to the
// optimum where it is known: brute force on small sets, perfect tilings), and
// the plan of a synthetic model against what the Engine actually takes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <vector>

#include "test_models.h"
#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/planner.h"

namespace tinyzo {
namespace {

using testing::LoadedModel;
using testing::TestRng;

BufferRequest req(size_t size, int first, int last, int share_with = -1) {
  BufferRequest r;
  r.size_bytes = size;
  r.first_use = first;
  r.last_use = last;
  r.share_with = share_with;
  return r;
}

struct Plan {
  Status status = Status::kInternal;
  std::vector<size_t> offsets;
  size_t total = 0;
};

Plan plan(const std::vector<BufferRequest>& r) {
  Plan p;
  p.offsets.assign(r.size(), 12345);
  std::vector<int> scratch(plan_buffers_scratch_size(r.size()));
  p.status = plan_buffers(Span<const BufferRequest>(r.data(), r.size()), Span<size_t>(p.offsets.data(), r.size()),
                          Span<int>(scratch.data(), scratch.size()), &p.total);
  return p;
}

bool valid(const std::vector<BufferRequest>& r, const Plan& p) {
  return plan_is_valid(Span<const BufferRequest>(r.data(), r.size()),
                       Span<const size_t>(p.offsets.data(), p.offsets.size()), p.total);
}

// Max over ops of the bytes alive at that op, counting each in-place pair
// once (a valid plan can overlap only those): no plan can be smaller.
size_t live_bytes_lower_bound(const std::vector<BufferRequest>& r) {
  const Span<const BufferRequest> s(r.data(), r.size());
  int t_min = 0, t_max = 0;
  for (const auto& q : r) {
    t_min = std::min(t_min, q.first_use);
    t_max = std::max(t_max, q.last_use);
  }
  size_t best = 0;
  for (int t = t_min; t <= t_max; ++t) {
    size_t live = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      if (r[i].size_bytes == 0 || r[i].first_use > t || r[i].last_use < t) continue;
      live += r[i].size_bytes;
      const int p = r[i].share_with;
      if (p >= 0 && r[p].size_bytes > 0 && is_inplace_pair(s, int(i), p) && r[p].last_use == t)
        live -= std::min(r[i].size_bytes, r[p].size_bytes);
    }
    best = std::max(best, live);
  }
  return best;
}

// The planner before the search (greedy by size, first fit, an output taking
// over its share_with partner when that one was placed first): the search
// starts from this order, so it never does worse.
size_t greedy_by_size_total(const std::vector<BufferRequest>& r) {
  const Span<const BufferRequest> s(r.data(), r.size());
  const int n = int(r.size());
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return r[a].size_bytes != r[b].size_bytes ? r[a].size_bytes > r[b].size_bytes
                                              : r[a].first_use < r[b].first_use;
  });
  std::vector<long long> off(n, -1);
  size_t total = 0;
  auto conflict = [&](int i, size_t at, int skip) {
    for (int k = 0; k < n; ++k) {
      if (k == i || k == skip || off[k] < 0 || r[k].size_bytes == 0 || !lifetimes_overlap(s, i, k)) continue;
      if (at < size_t(off[k]) + r[k].size_bytes && size_t(off[k]) < at + r[i].size_bytes) return k;
    }
    return -1;
  };
  for (int i : order) {
    if (r[i].size_bytes == 0) continue;
    const int p = r[i].share_with;
    size_t at = 0;
    if (p >= 0 && off[p] >= 0 && is_inplace_pair(s, i, p) && conflict(i, size_t(off[p]), p) < 0) {
      at = size_t(off[p]);
    } else {
      for (int k = conflict(i, at, -1); k >= 0; k = conflict(i, at, -1))
        at = (size_t(off[k]) + r[k].size_bytes + kPlanAlign - 1) / kPlanAlign * kPlanAlign;
    }
    off[i] = (long long)at;
    total = std::max(total, at + r[i].size_bytes);
  }
  return (total + kPlanAlign - 1) / kPlanAlign * kPlanAlign;
}

// The smallest valid plan, by exhaustive search (small n only): an optimal
// plan pushed down until no buffer can move lower has every buffer at 0, at
// the aligned end of a buffer below it that is alive with it, or on its
// in-place partner; placing buffers in offset order and trying every such
// position finds it.
size_t brute_force_optimum(const std::vector<BufferRequest>& r) {
  const Span<const BufferRequest> s(r.data(), r.size());
  const int n = int(r.size());
  size_t best = 0;
  for (const auto& q : r) best += (q.size_bytes + kPlanAlign - 1) / kPlanAlign * kPlanAlign;  // no reuse
  std::vector<long long> off(n, -1);
  auto fits = [&](int i, size_t at) {
    for (int k = 0; k < n; ++k) {
      if (k == i || off[k] < 0 || r[k].size_bytes == 0 || !lifetimes_overlap(s, i, k)) continue;
      if (!(at < size_t(off[k]) + r[k].size_bytes && size_t(off[k]) < at + r[i].size_bytes)) continue;
      if (is_inplace_pair(s, i, k) && size_t(off[k]) == at) continue;
      return false;
    }
    return true;
  };
  auto align = [](size_t v) { return (v + kPlanAlign - 1) / kPlanAlign * kPlanAlign; };
  std::function<void(int, size_t, size_t)> search = [&](int placed, size_t total, size_t lowest) {
    if (total >= best) return;
    if (placed == n) {
      best = total;
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (off[i] >= 0) continue;
      if (r[i].size_bytes == 0) {  // takes no space: place it and go on
        off[i] = 0;
        search(placed + 1, total, lowest);
        off[i] = -1;
        return;
      }
      std::vector<size_t> at = {0};
      for (int k = 0; k < n; ++k) {
        if (off[k] < 0 || r[k].size_bytes == 0 || !lifetimes_overlap(s, i, k)) continue;
        at.push_back(align(size_t(off[k]) + r[k].size_bytes));
        if (is_inplace_pair(s, i, k)) at.push_back(size_t(off[k]));
      }
      for (size_t a : at) {
        if (a < lowest || !fits(i, a)) continue;  // offset order: no plan is searched twice
        off[i] = (long long)a;
        search(placed + 1, std::max(total, align(a + r[i].size_bytes)), a);
        off[i] = -1;
      }
    }
  };
  search(0, 0, 0);
  return best;
}

TEST(PlannerTest, ChainReusesMemory) {
  // t0 -> op0 -> t1 -> op1 -> t2 -> op2 -> t3: only two buffers live at once.
  const std::vector<BufferRequest> r = {req(100, -1, 0), req(100, 0, 1), req(100, 1, 2), req(100, 2, 3)};
  const Plan p = plan(r);
  ASSERT_EQ(p.status, Status::kOk);
  EXPECT_TRUE(valid(r, p));
  EXPECT_EQ(p.total, 224u);  // 2 x 100, the second one starting at 112 (16-aligned)
  EXPECT_EQ(p.offsets[0], p.offsets[2]);
  EXPECT_EQ(p.offsets[1], p.offsets[3]);
  EXPECT_NE(p.offsets[0], p.offsets[1]);
}

TEST(PlannerTest, InPlaceAddSharesItsDyingInput) {
  // x dies at op 1, which writes y element-wise over it; z is alive throughout.
  const std::vector<BufferRequest> r = {req(64, 0, 1), req(64, 1, 2, /*share_with=*/0), req(32, -1, 2)};
  const Span<const BufferRequest> s(r.data(), r.size());
  EXPECT_TRUE(is_inplace_pair(s, 0, 1));
  EXPECT_TRUE(is_inplace_pair(s, 1, 0));
  EXPECT_FALSE(is_inplace_pair(s, 0, 2));
  const Plan p = plan(r);
  ASSERT_EQ(p.status, Status::kOk);
  EXPECT_TRUE(valid(r, p));
  EXPECT_EQ(p.offsets[1], p.offsets[0]);
  EXPECT_EQ(p.total, 96u);  // 64 shared + 32, instead of 160
  EXPECT_EQ(p.total, live_bytes_lower_bound(r));
}

// An overlap pair (a fused block's output over its dying input): placed at
// exactly its offset, counted as the bytes the pair spans, and refused when
// it would save nothing or its offset is not 16-aligned.
TEST(PlannerTest, OverlapPairSitsAtItsOffset) {
  for (const ptrdiff_t off : {ptrdiff_t(0), ptrdiff_t(32), ptrdiff_t(-32)}) {
    std::vector<BufferRequest> r = {req(96, -1, 2), req(64, 0, 4), req(48, 3, 4)};
    r[1].overlap_with = 0;
    r[1].overlap_offset = off;
    const Span<const BufferRequest> s(r.data(), r.size());
    ASSERT_TRUE(is_overlap_pair(s, 1)) << off;
    const size_t span = size_t(std::max<ptrdiff_t>(96, off + 64) - std::min<ptrdiff_t>(0, off));
    EXPECT_EQ(overlap_saving(s, 1, true), 96 + 64 - span) << off;
    EXPECT_EQ(live_contribution(s, 1, 1, true), span - 96) << off;  // partner alive
    EXPECT_EQ(live_contribution(s, 1, 3, true), 64u) << off;        // partner dead
    // Op 0..2: the pair; op 3..4: 64 + 48.
    EXPECT_EQ(plan_lower_bound_bytes(s), std::max<size_t>(span, 112)) << off;
    const Plan p = plan(r);
    ASSERT_EQ(p.status, Status::kOk);
    EXPECT_TRUE(valid(r, p)) << off;
    EXPECT_EQ(ptrdiff_t(p.offsets[1]) - ptrdiff_t(p.offsets[0]), off) << off;
    EXPECT_GE(p.total, std::max<size_t>(span, 112)) << off;
    // The pair alone takes exactly its span.
    const std::vector<BufferRequest> pair(r.begin(), r.begin() + 2);
    const Plan q = plan(pair);
    EXPECT_TRUE(valid(pair, q)) << off;
    EXPECT_EQ(q.total, span) << off;
    // Any other overlapping position is invalid.
    std::vector<size_t> bad = p.offsets;
    bad[1] += 16;
    EXPECT_FALSE(plan_is_valid(s, Span<const size_t>(bad.data(), bad.size()), p.total + 16)) << off;
  }
  std::vector<BufferRequest> r = {req(96, -1, 2), req(64, 0, 4)};
  r[1].overlap_with = 0;
  r[1].overlap_offset = 8;  // not aligned
  EXPECT_FALSE(is_overlap_pair(Span<const BufferRequest>(r.data(), r.size()), 1));
  r[1].overlap_offset = 96;  // past the partner: saves nothing
  EXPECT_FALSE(is_overlap_pair(Span<const BufferRequest>(r.data(), r.size()), 1));
  r[1].overlap_offset = 0;
  r[0].last_use = -1;  // lifetimes apart: no pair
  r[1].first_use = 0;
  EXPECT_FALSE(is_overlap_pair(Span<const BufferRequest>(r.data(), r.size()), 1));
}

TEST(PlannerTest, InPlaceRefusedWhenPartnerOutlivesTheOp) {
  // x is still read after op 1, so y cannot overwrite it.
  const std::vector<BufferRequest> r = {req(64, 0, 2), req(64, 1, 3, 0)};
  EXPECT_FALSE(is_inplace_pair(Span<const BufferRequest>(r.data(), r.size()), 0, 1));
  const Plan p = plan(r);
  ASSERT_EQ(p.status, Status::kOk);
  EXPECT_TRUE(valid(r, p));
  EXPECT_NE(p.offsets[0], p.offsets[1]);
  EXPECT_EQ(p.total, 128u);
}

TEST(PlannerTest, InPlaceRefusedWhenPartnerIsSmaller) {
  const std::vector<BufferRequest> r = {req(32, 0, 1), req(64, 1, 2, 0)};
  EXPECT_FALSE(is_inplace_pair(Span<const BufferRequest>(r.data(), r.size()), 0, 1));
  const Plan p = plan(r);
  ASSERT_EQ(p.status, Status::kOk);
  EXPECT_TRUE(valid(r, p));
  EXPECT_EQ(p.total, 96u);
}

TEST(PlannerTest, InPlaceFallsBackWhenAnotherBufferSitsThere) {
  // w (placed first, largest) takes [0, 128) from op 2 on; x fits there before
  // that, but y (alive at op 2) must not follow x into w's bytes.
  const std::vector<BufferRequest> r = {req(128, 2, 3), req(64, 0, 1), req(64, 1, 2, 1)};
  const Plan p = plan(r);
  ASSERT_EQ(p.status, Status::kOk);
  EXPECT_TRUE(valid(r, p));
  EXPECT_EQ(p.offsets[0], 0u);
  EXPECT_EQ(p.offsets[1], 0u);
  EXPECT_EQ(p.offsets[2], 128u);
}

TEST(PlannerTest, ZeroSizedRequestsTakeNoSpace) {
  const std::vector<BufferRequest> r = {req(0, 0, 5), req(48, 0, 1), req(0, -1, 0), req(16, 1, 2)};
  const Plan p = plan(r);
  ASSERT_EQ(p.status, Status::kOk);
  EXPECT_EQ(p.offsets[0], 0u);
  EXPECT_EQ(p.offsets[2], 0u);
  EXPECT_EQ(p.total, 64u);
  EXPECT_TRUE(valid(r, p));
  const Plan empty = plan({});
  EXPECT_EQ(empty.status, Status::kOk);
  EXPECT_EQ(empty.total, 0u);
}

TEST(PlannerTest, OffsetsAndTotalAre16Aligned) {
  const std::vector<BufferRequest> r = {req(1, 0, 3), req(17, 0, 3), req(33, 0, 3), req(5, 1, 2)};
  const Plan p = plan(r);
  ASSERT_EQ(p.status, Status::kOk);
  for (size_t o : p.offsets) EXPECT_EQ(o % kPlanAlign, 0u);
  EXPECT_EQ(p.total % kPlanAlign, 0u);
  EXPECT_EQ(p.total, 48u + 32u + 16u + 16u);
  EXPECT_TRUE(valid(r, p));
}

TEST(PlannerTest, RejectsInconsistentInput) {
  std::vector<BufferRequest> r = {req(16, 3, 2)};  // ends before it starts
  EXPECT_EQ(plan(r).status, Status::kInvalidArgument);
  r = {req(16, 0, 1), req(16, 1, 2, /*share_with=*/2)};  // partner index out of range
  EXPECT_EQ(plan(r).status, Status::kInvalidArgument);
  r = {req(16, 0, 1), req(16, 1, 2)};
  std::vector<size_t> offsets(1);
  const size_t need = plan_buffers_scratch_size(2);
  std::vector<int> scratch(need);
  size_t total = 0;
  const Span<const BufferRequest> s(r.data(), r.size());
  EXPECT_EQ(plan_buffers(s, Span<size_t>(offsets.data(), 1), Span<int>(scratch.data(), need), &total),
            Status::kInvalidArgument);
  offsets.resize(2);
  EXPECT_EQ(plan_buffers(s, Span<size_t>(offsets.data(), 2), Span<int>(scratch.data(), need - 1), &total),
            Status::kInvalidArgument);
  EXPECT_EQ(plan_buffers(s, Span<size_t>(offsets.data(), 2), Span<int>(scratch.data(), need), nullptr),
            Status::kInvalidArgument);
  EXPECT_EQ(plan_buffers(s, Span<size_t>(offsets.data(), 2), Span<int>(scratch.data(), need), &total),
            Status::kOk);
}

TEST(PlannerTest, NegativeShareWithIsIgnored) {
  const std::vector<BufferRequest> r = {req(16, 0, 1), req(16, 1, 2, -7)};
  const Plan p = plan(r);
  ASSERT_EQ(p.status, Status::kOk);
  EXPECT_TRUE(valid(r, p));
  EXPECT_NE(p.offsets[0], p.offsets[1]);
}

TEST(PlannerTest, PlanIsValidCatchesBadPlans) {
  const std::vector<BufferRequest> r = {req(64, 0, 1), req(64, 1, 2), req(64, 3, 4)};
  const Span<const BufferRequest> s(r.data(), r.size());
  auto check = [&](std::vector<size_t> offsets, size_t total) {
    return plan_is_valid(s, Span<const size_t>(offsets.data(), offsets.size()), total);
  };
  EXPECT_TRUE(check({0, 64, 0}, 128));
  EXPECT_FALSE(check({0, 32, 0}, 128));   // 0 and 1 alive together at op 1, bytes overlap
  EXPECT_FALSE(check({0, 0, 64}, 128));   // same offset but not an in-place pair
  EXPECT_FALSE(check({0, 64, 0}, 127));   // does not fit the total
  EXPECT_FALSE(check({0, 72, 0}, 256));   // misaligned
  EXPECT_TRUE(check({64, 0, 64}, 128));   // 0 and 2 never alive together
  // The in-place pair is allowed exactly at the same offset, not partially overlapping.
  const std::vector<BufferRequest> pair = {req(64, 0, 1), req(64, 1, 2, 0)};
  const Span<const BufferRequest> ps(pair.data(), pair.size());
  const size_t same[2] = {0, 0}, shifted[2] = {0, 16};
  EXPECT_TRUE(plan_is_valid(ps, Span<const size_t>(same, 2), 64));
  EXPECT_FALSE(plan_is_valid(ps, Span<const size_t>(shifted, 2), 80));
}

TEST(PlannerTest, LifetimesOverlapIsInclusive) {
  const std::vector<BufferRequest> r = {req(1, 0, 2), req(1, 2, 4), req(1, 3, 3), req(1, -1, -1)};
  const Span<const BufferRequest> s(r.data(), r.size());
  EXPECT_TRUE(lifetimes_overlap(s, 0, 1));
  EXPECT_TRUE(lifetimes_overlap(s, 1, 0));
  EXPECT_FALSE(lifetimes_overlap(s, 0, 2));
  EXPECT_TRUE(lifetimes_overlap(s, 1, 2));
  EXPECT_FALSE(lifetimes_overlap(s, 3, 0));
}

// Random request sets with fixed seeds: chains, long-lived buffers, zero
// sizes, and in-place pairs (valid and invalid ones).
std::vector<BufferRequest> random_requests(TestRng& rng) {
  const int n = rng.uniform(1, 40);
  const int n_ops = rng.uniform(1, 30);
  std::vector<BufferRequest> r(n);
  for (int i = 0; i < n; ++i) {
    const int kind = rng.uniform(0, 9);
    const size_t size = kind == 0 ? 0 : size_t(rng.uniform(1, kind < 5 ? 256 : 4096));
    const int first = rng.uniform(-1, n_ops - 1);
    const int last = rng.uniform(0, 3) == 0 ? n_ops : std::min(n_ops, first + rng.uniform(0, 4));
    r[i] = req(size, first, std::max(first, last));
  }
  for (int i = 0; i < n; ++i) {
    if (rng.uniform(0, 2) != 0) continue;
    const int j = rng.uniform(0, n - 1);
    if (j == i) continue;
    if (rng.uniform(0, 3) != 0) {
      // Make it a genuine in-place pair: i starts where j ends and is not larger.
      r[i].first_use = r[j].last_use;
      r[i].last_use = std::max(r[i].last_use, r[i].first_use);
      r[i].size_bytes = std::min(r[i].size_bytes, r[j].size_bytes);
    }
    r[i].share_with = j;  // otherwise a partner that does not qualify
  }
  return r;
}

TEST(PlannerTest, RandomPlansAreValidAndAboveTheLiveBytesBound) {
  int shared = 0;
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    TestRng rng(seed);
    const std::vector<BufferRequest> r = random_requests(rng);
    const Plan p = plan(r);
    ASSERT_EQ(p.status, Status::kOk) << "seed " << seed;
    ASSERT_TRUE(valid(r, p)) << "seed " << seed;
    const size_t bound = live_bytes_lower_bound(r);
    EXPECT_GE(p.total, bound) << "seed " << seed;
    size_t sum_aligned = 0;
    for (const auto& q : r) sum_aligned += (q.size_bytes + kPlanAlign - 1) / kPlanAlign * kPlanAlign;
    EXPECT_LE(p.total, sum_aligned) << "seed " << seed;  // never worse than no reuse at all
    EXPECT_LE(p.total, greedy_by_size_total(r)) << "seed " << seed;  // nor than the search's start
    EXPECT_EQ(p.total % kPlanAlign, 0u);
    for (size_t i = 0; i < r.size(); ++i) {
      if (r[i].size_bytes == 0) {
        EXPECT_EQ(p.offsets[i], 0u);
      } else if (r[i].share_with >= 0 && p.offsets[i] == p.offsets[r[i].share_with] &&
                 is_inplace_pair(Span<const BufferRequest>(r.data(), r.size()), int(i), r[i].share_with)) {
        ++shared;
      }
    }
    // Deterministic: the same requests give the same plan.
    const Plan again = plan(r);
    EXPECT_EQ(again.offsets, p.offsets);
    EXPECT_EQ(again.total, p.total);
  }
  EXPECT_GT(shared, 50);  // the generator really exercises in-place sharing
}

TEST(PlannerTest, FindsThePlanGreedyBySizeMisses) {
  // The first six activations of ProxylessNAS-w0.3 (bytes / 1024): input 48
  // (op -1..0), first conv 64 (0..1), depthwise 64 (1..2), project 32 (2..3),
  // expand 96 (3..4), depthwise 24 (4..5). At most 128 KB are alive at once.
  // Greedy by size puts the expand at 0, the first conv under it and the
  // project above both: 160 KB. The plan that reaches 128 KB puts the project
  // above the expand and the depthwise below it.
  const size_t k = 1024;
  const std::vector<BufferRequest> r = {req(48 * k, -1, 0), req(64 * k, 0, 1), req(64 * k, 1, 2),
                                        req(32 * k, 2, 3),  req(96 * k, 3, 4), req(24 * k, 4, 5)};
  EXPECT_EQ(greedy_by_size_total(r), 160 * k);
  const Plan p = plan(r);
  ASSERT_EQ(p.status, Status::kOk);
  EXPECT_TRUE(valid(r, p));
  EXPECT_EQ(live_bytes_lower_bound(r), 128 * k);
  EXPECT_EQ(plan_lower_bound_bytes(Span<const BufferRequest>(r.data(), r.size())), 128 * k);
  EXPECT_EQ(p.total, 128 * k);
  EXPECT_EQ(brute_force_optimum(r), 128 * k);
}

TEST(PlannerTest, LowerBoundRoundsSizesAndCountsInPlacePairsOnce) {
  // Alive together at op 1: 17 B (-> 32), 1 B (-> 16) and y over x (64, once).
  const std::vector<BufferRequest> r = {req(17, 0, 2), req(1, 1, 1), req(64, 0, 1), req(64, 1, 3, 2)};
  const Span<const BufferRequest> s(r.data(), r.size());
  EXPECT_EQ(plan_lower_bound_bytes(s), 32u + 16 + 64);
  EXPECT_EQ(plan(r).total, 32u + 16 + 64);
  EXPECT_EQ(plan_lower_bound_bytes(Span<const BufferRequest>()), 0u);
}

// Small sets for the exhaustive search: sizes in 16-byte steps (so the lower
// bound is exact live bytes) and in-place pairs as the engine makes them
// (an op's output over one of its inputs that dies at that op, so was
// produced earlier; at most one output per input, never larger).
std::vector<BufferRequest> small_requests(TestRng& rng) {
  const int n = rng.uniform(2, 7);
  const int n_ops = rng.uniform(1, 8);
  std::vector<BufferRequest> r(n);
  for (int i = 0; i < n; ++i) {
    const int first = rng.uniform(-1, n_ops - 1);
    const int last = std::min(n_ops, first + rng.uniform(0, 4));
    r[i] = req(16 * size_t(rng.uniform(1, 8)), first, last);
  }
  std::vector<bool> taken(n, false);
  for (int i = 0; i < n; ++i) {
    const int j = rng.uniform(0, n - 1);
    if (rng.uniform(0, 3) != 0 || j == i || taken[j] || r[j].share_with == i ||
        r[j].first_use == r[j].last_use)
      continue;
    taken[j] = true;
    r[i].first_use = r[j].last_use;
    r[i].last_use = std::max(r[i].last_use, r[i].first_use);
    r[i].size_bytes = std::min(r[i].size_bytes, r[j].size_bytes);
    r[i].share_with = j;
  }
  return r;
}

TEST(PlannerTest, SmallRandomPlansAreOptimal) {
  int below_bound = 0, beats_greedy = 0;
  for (uint64_t seed = 1; seed <= 600; ++seed) {
    TestRng rng(seed);
    const std::vector<BufferRequest> r = small_requests(rng);
    const Plan p = plan(r);
    ASSERT_EQ(p.status, Status::kOk) << "seed " << seed;
    ASSERT_TRUE(valid(r, p)) << "seed " << seed;
    const size_t optimum = brute_force_optimum(r);
    EXPECT_EQ(p.total, optimum) << "seed " << seed;
    if (p.total != optimum)
      for (const auto& q : r)
        std::printf("  %zu %d %d %d\n", q.size_bytes, q.first_use, q.last_use, q.share_with);
    below_bound += optimum > live_bytes_lower_bound(r);
    beats_greedy += p.total < greedy_by_size_total(r);
  }
  // The sets are not trivial: greedy by size misses the optimum on some, and
  // on some the optimum is above the live-bytes bound (so the search ran out).
  EXPECT_GT(beats_greedy, 10);
  EXPECT_GT(below_bound, 3);
}

// Perfect tilings: the rectangle [0, height) bytes x [-1, n_ops] ops is cut
// recursively, across time or across the address range, into rectangles
// that become the buffers (16-byte multiples). At every op the whole
// rectangle is alive, so the lower bound is the height, and the plan the
// cuts describe reaches it: the optimum is known.
void tile(TestRng& rng, size_t base_units, size_t units, int first, int last, int depth,
          std::vector<BufferRequest>* r) {
  const bool cut_time = last > first && rng.uniform(0, 1) == 0;
  const bool cut_bytes = units > 1;
  if (depth == 0 || (!cut_time && !cut_bytes) || rng.uniform(0, 5) == 0) {
    r->push_back(req(16 * units, first, last));
    return;
  }
  if (cut_time) {
    const int mid = rng.uniform(first, last - 1);
    tile(rng, base_units, units, first, mid, depth - 1, r);
    tile(rng, base_units, units, mid + 1, last, depth - 1, r);
  } else {
    const size_t lower = size_t(rng.uniform(1, int(units) - 1));
    tile(rng, base_units, lower, first, last, depth - 1, r);
    tile(rng, base_units + lower, units - lower, first, last, depth - 1, r);
  }
}

std::vector<BufferRequest> tiling_requests(TestRng& rng, size_t* height) {
  const size_t units = size_t(rng.uniform(2, 64));
  const int n_ops = rng.uniform(2, 16);
  std::vector<BufferRequest> r;
  tile(rng, 0, units, -1, n_ops, 7, &r);
  *height = 16 * units;
  // Shuffle, so the index order says nothing about the cuts.
  for (size_t i = r.size(); i > 1; --i) std::swap(r[i - 1], r[size_t(rng.uniform(0, int(i) - 1))]);
  return r;
}

TEST(PlannerTest, PerfectTilingsArePlannedAtTheirHeight) {
  // The search is a heuristic (planning offsets is NP-hard in general) and
  // these sets are the hardest kind: no byte may be wasted at any op. On these
  // 300 tilings (2..81 buffers) it reaches the height on all but two, which
  // it misses by one 16-byte step; greedy by size alone misses 51. A change
  // that does worse fails here.
  int beats_greedy = 0, missed = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    TestRng rng(seed);
    size_t height = 0;
    const std::vector<BufferRequest> r = tiling_requests(rng, &height);
    ASSERT_EQ(live_bytes_lower_bound(r), height);
    const Plan p = plan(r);
    ASSERT_EQ(p.status, Status::kOk);
    ASSERT_TRUE(valid(r, p)) << "seed " << seed;
    EXPECT_GE(p.total, height);
    EXPECT_LE(p.total, height + kPlanAlign) << "seed " << seed;
    missed += p.total != height;
    beats_greedy += p.total < greedy_by_size_total(r);
  }
  EXPECT_LE(missed, 2);
  EXPECT_GE(beats_greedy, 49);
}

// ---- the plan of a model ----

class PlannerModelTest : public ::testing::Test {
 protected:
  PlannerModelTest() : cnn_(testing::make_tiny_cnn()), model_(cnn_.builder.serialize()) {}
  std::vector<BufferRequest> requests() {
    std::vector<BufferRequest> r(model_.view.n_tensors());
    EXPECT_EQ(build_buffer_requests(model_.view, Span<BufferRequest>(r.data(), r.size())), Status::kOk);
    return r;
  }
  testing::TinyCnn cnn_;
  LoadedModel model_;
};

TEST_F(PlannerModelTest, BuildsRequestsFromTheModel) {
  ASSERT_EQ(model_.status, Status::kOk);
  const std::vector<BufferRequest> r = requests();
  EXPECT_EQ(r[cnn_.input].size_bytes, 8u * 8 * 3);
  EXPECT_EQ(r[cnn_.input].first_use, -1);
  EXPECT_EQ(r[cnn_.input].last_use, 0);
  EXPECT_EQ(r[cnn_.conv0].first_use, 0);
  EXPECT_EQ(r[cnn_.conv0].last_use, 3);  // read by dw1 (op 1) and add3 (op 3)
  EXPECT_EQ(r[cnn_.add3].share_with, cnn_.conv0);
  EXPECT_EQ(r[cnn_.head9].size_bytes, 4u * sizeof(float));
  EXPECT_EQ(r[cnn_.head9].last_use, testing::kTinyCnnOps);  // survives invoke()
  EXPECT_EQ(r[cnn_.conv0_c.weight].size_bytes, 0u);
  EXPECT_EQ(r[cnn_.head_w].size_bytes, 0u);
  std::vector<BufferRequest> too_short(3);
  EXPECT_EQ(build_buffer_requests(model_.view, Span<BufferRequest>(too_short.data(), too_short.size())),
            Status::kInvalidArgument);
}

TEST_F(PlannerModelTest, AddRunsInPlaceOverItsDyingInput) {
  const std::vector<BufferRequest> r = requests();
  const Plan p = plan(r);
  ASSERT_EQ(p.status, Status::kOk);
  EXPECT_TRUE(valid(r, p));
  EXPECT_EQ(p.offsets[cnn_.add3], p.offsets[cnn_.conv0]);
  EXPECT_GE(p.total, live_bytes_lower_bound(r));
}

TEST_F(PlannerModelTest, ModelInputIsNeverOverwrittenInPlace) {
  // An Add whose dying input is the model input must not take it over (the
  // caller owns the input): build input -> add(input, conv(input)).
  TzmBuilder b;
  const int x = b.add_tensor("x", DType::kInt8, {4, 4, 2}, 0, 0.1f, 0);
  b.set_input(x);
  TestRng rng(4);
  const auto c = testing::add_random_conv_consts(b, "c", {2, 1, 1, 2}, 0.1f, rng);
  const int y = b.add_conv2d("c", x, c.weight, c.bias, c.multiplier, WindowParams{}, 1, 0.1f, 0);
  b.set_output(b.add_add("add", x, y, 0.1f, 0));
  LoadedModel m(b.serialize());
  ASSERT_EQ(m.status, Status::kOk);
  std::vector<BufferRequest> r(m.view.n_tensors());
  ASSERT_EQ(build_buffer_requests(m.view, Span<BufferRequest>(r.data(), r.size())), Status::kOk);
  const int out = m.view.output_tensor();
  EXPECT_EQ(r[out].share_with, y);  // the other operand dies here too
}

TEST_F(PlannerModelTest, PlanEqualsEngineActivationBytes) {
  const std::vector<BufferRequest> r = requests();
  const Plan p = plan(r);
  ASSERT_EQ(p.status, Status::kOk);
  alignas(16) static uint8_t arena_mem[1 << 16];
  Arena arena(arena_mem, sizeof arena_mem);
  Engine engine;
  ASSERT_EQ(engine.init(model_.view, arena), Status::kOk);
  EXPECT_EQ(engine.activation_bytes(), p.total);
  // And the engine put every tensor where the plan says (relative to the input).
  const auto* base = static_cast<const uint8_t*>(engine.tensor_data(cnn_.input));
  for (int t = 0; t < model_.view.n_tensors(); ++t) {
    if (r[t].size_bytes == 0) continue;
    const auto* at = static_cast<const uint8_t*>(engine.tensor_data(t));
    EXPECT_EQ(at - base, std::ptrdiff_t(p.offsets[t]) - std::ptrdiff_t(p.offsets[cnn_.input])) << "tensor " << t;
  }
}

// Regression guard (STYLE.md: a test fails when the planned arena for a
// reference model grows): the tiny CNN's plan, recorded when the planner was
// written. Lower is fine (update the number); higher is a planner regression.
TEST_F(PlannerModelTest, TinyCnnArenaDoesNotGrow) {
  const Plan p = plan(requests());
  ASSERT_EQ(p.status, Status::kOk);
  constexpr size_t kRecordedBytes = 448;  // input 192 | conv0/add3 128 | dw1, pw2 reuse the input's bytes
  EXPECT_LE(p.total, kRecordedBytes);
}

}  // namespace
}  // namespace tinyzo
