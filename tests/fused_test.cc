// Fused row-band execution (fusion.h, docs/memory.md "Fused blocks"): bitwise
// the unfused result for every kernel table and both requantization rules,
// on random inverted bottlenecks with every block split and band height, and
// on the reference models with the blocks the planner chooses; the plan with
// blocks reaches its live-bytes bound; runs may not cut a block; the ZO
// trainer over a fused engine ends with bitwise the same weights.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/armv7em/armv7em.h"
#include "models/model_store.h"
#include "models/requant_convert.h"
#include "models/tzm_writer.h"
#include "test_models.h"
#include "tinyzo/engine.h"
#include "tinyzo/fusion.h"
#include "tinyzo/kernels/x86.h"
#include "tinyzo/planner.h"
#include "tinyzo/train/zo_trainer.h"

namespace tinyzo {
namespace {

using testing::add_random_conv_consts;
using testing::TestRng;

// Every kernel table this build can run here: ref, the x86 tables the CPU
// supports, and the Armv7E-M DSP table (on the host: its C models of the DSP
// instructions).
std::vector<const KernelTable*> all_tables() {
  std::vector<const KernelTable*> t = {&ref::table(), &armv7em::table()};
#if defined(__x86_64__)
  for (const char* name : {"portable", "avx2", "avx512vnni"})
    if (const KernelTable* k = x86::find_table(name)) t.push_back(k);
#endif
  return t;
}

struct Model {
  AlignedModelBytes aligned;
  ModelView view;
  void load(const std::vector<uint8_t>& b) {
    aligned.assign(b.data(), b.size());
    ASSERT_EQ(view.init(aligned.data(), aligned.size()), Status::kOk) << view.error();
  }
};

// A random chain: optional stem conv (3x3, stride 1 or 2), pointwise expand,
// depthwise k x k (k in 3, 5, 7; stride 1 or 2; "same" or TFLite-style
// bottom/right-only padding), pointwise project, and a residual add when the
// shapes allow. Output int8.
std::vector<uint8_t> random_bottleneck(uint64_t seed, bool* has_stem) {
  TestRng rng(seed);
  TzmBuilder b;
  const int h = rng.uniform(1, 13), w = rng.uniform(1, 9), ci = rng.uniform(1, 9);
  float sx = 0.05f;
  int x = b.add_tensor("x", DType::kInt8, {h, w, ci}, 0, sx, rng.uniform(-5, 5));
  b.set_input(x);
  int cur = x, cur_h = h, cur_w = w, cur_c = ci;
  *has_stem = rng.uniform(0, 1) == 1;
  if (*has_stem) {
    WindowParams s;
    s.stride_h = s.stride_w = rng.uniform(1, 2);
    s.pad_top = s.pad_left = s.pad_bottom = s.pad_right = 1;
    const int co = rng.uniform(1, 8);
    const auto c = add_random_conv_consts(b, "stem", {co, 3, 3, cur_c}, sx, rng);
    cur = b.add_conv2d("stem", cur, c.weight, c.bias, c.multiplier, s, 1, 0.04f, rng.uniform(-3, 3));
    cur_h = (cur_h + 2 - 3) / s.stride_h + 1;
    cur_w = (cur_w + 2 - 3) / s.stride_w + 1;
    cur_c = co;
    sx = 0.04f;
  }
  const int block_in = cur, in_h = cur_h, in_w = cur_w, in_c = cur_c;
  const int ce = rng.uniform(1, 24);
  const auto e = add_random_conv_consts(b, "expand", {ce, 1, 1, cur_c}, sx, rng);
  cur = b.add_conv2d("expand", cur, e.weight, e.bias, e.multiplier, WindowParams{}, 1, 0.03f, -128 + rng.uniform(0, 5),
                     -128, 127 - rng.uniform(0, 30));
  const int k = 3 + 2 * rng.uniform(0, 2), st = rng.uniform(1, 2);
  WindowParams d;
  d.stride_h = d.stride_w = st;
  if (rng.uniform(0, 3) == 0 && st == 2 && cur_h >= 2 && cur_w >= 2) {
    d.pad_top = d.pad_left = k / 2 - 1;  // asymmetric "SAME" of an even input
    d.pad_bottom = d.pad_right = k / 2;
  } else {
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = k / 2;
  }
  const auto dw = add_random_conv_consts(b, "dw", {ce, k, k, 1}, 0.03f, rng);
  cur = b.add_conv2d("dw", cur, dw.weight, dw.bias, dw.multiplier, d, ce, 0.02f, rng.uniform(-4, 4));
  cur_h = (cur_h + d.pad_top + d.pad_bottom - k) / st + 1;
  cur_w = (cur_w + d.pad_left + d.pad_right - k) / st + 1;
  const int co = rng.uniform(0, 1) ? in_c : rng.uniform(1, 8);
  const auto p = add_random_conv_consts(b, "project", {co, 1, 1, ce}, 0.02f, rng);
  cur = b.add_conv2d("project", cur, p.weight, p.bias, p.multiplier, WindowParams{}, 1, 0.05f, rng.uniform(-3, 3));
  if (cur_h == in_h && cur_w == in_w && co == in_c) cur = b.add_add("add", block_in, cur, 0.06f, 1);
  b.set_output(cur);
  return b.serialize();
}

// Runs `v` on `input` with `options` (or unfused) and returns the output bytes.
std::vector<uint8_t> run(const ModelView& v, const KernelTable& k, const std::vector<int8_t>& input,
                         const EngineOptions& options, Status* status = nullptr) {
  std::vector<uint8_t> mem(8 << 20);
  Arena arena(mem.data(), mem.size());
  Engine e;
  const Status s = e.init(v, arena, k, 1, options);
  if (status) *status = s;
  if (s != Status::kOk) return {};
  std::memcpy(e.input().data(), input.data(), input.size());
  EXPECT_EQ(e.invoke(), Status::kOk);
  const auto* out = static_cast<const uint8_t*>(e.tensor_data(v.output_tensor()));
  const TzmTensor& t = v.tensor(v.output_tensor());
  return std::vector<uint8_t>(out, out + tensor_elements(t) * dtype_size(DType(t.dtype)));
}

TEST(Fused, RandomBottlenecksBitExactEverySplitAndBand) {
  int cases = 0, blocks_run = 0, overlapped = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    bool stem = false;
    const std::vector<uint8_t> bytes = random_bottleneck(seed, &stem);
    for (int rule = 0; rule < 2; ++rule) {
      Model m;
      if (rule == 0) {
        m.load(bytes);
      } else {
        Model f;
        f.load(bytes);
        m.load(convert_to_fixed_point(f.view).bytes);
      }
      const ModelView& v = m.view;
      TestRng rng(seed * 7 + rule);
      const std::vector<int8_t> input = rng.s8(tensor_elements(v.tensor(v.input_tensor())));
      const int n_conv = stem ? 4 : 3;
      for (const KernelTable* k : all_tables()) {
        const std::vector<uint8_t> want = run(v, *k, input, EngineOptions{});
        ASSERT_FALSE(want.empty());
        for (int a = 0; a < n_conv; ++a)
          for (int e = a + 2; e <= n_conv; ++e) {
            const int h_out = v.tensor(v.op(e - 1).output).dims[0];
            for (int band = 1; band <= h_out; ++band) {
              const FusedBlock blk{a, e, band};
              EngineOptions o;
              o.blocks = Span<const FusedBlock>(&blk, 1);
              if (!fused_blocks_valid(v, o.blocks)) {  // e.g. a stem output the residual add reads too
                Status s = Status::kOk;
                run(v, *k, input, o, &s);
                ASSERT_EQ(s, Status::kInvalidArgument);
                continue;
              }
              ++blocks_run;
              // Where the planner put the output: over the dying input at
              // exactly fused_output_offset when the pair saves bytes.
              std::vector<BufferRequest> req(size_t(v.n_tensors()) + 1);
              ASSERT_EQ(build_fused_requests(v, o.blocks, Span<BufferRequest>(req.data(), req.size())), Status::kOk);
              const int out_t = v.op(e - 1).output, in_t = v.op(a).inputs[0];
              if (req[size_t(out_t)].overlap_with == in_t) {
                ptrdiff_t off = 0;
                ASSERT_TRUE(fused_output_offset(v, blk, &off));
                EXPECT_EQ(req[size_t(out_t)].overlap_offset, off);
                std::vector<uint8_t> mem(8 << 20);
                Arena arena(mem.data(), mem.size());
                Engine eng;
                ASSERT_EQ(eng.init(v, arena, *k, 1, o), Status::kOk);
                const auto* pin = static_cast<const uint8_t*>(eng.tensor_data(in_t));
                const auto* pout = static_cast<const uint8_t*>(eng.tensor_data(out_t));
                overlapped += pout - pin == off;
              }
              ASSERT_EQ(run(v, *k, input, o), want)
                  << "seed " << seed << " rule " << rule << " table " << k->name << " block [" << a << "," << e
                  << ") band " << band;
            }
          }
        ++cases;
      }
    }
  }
  // Many of those runs wrote the block output over its input (bit-exact above).
  EXPECT_GT(overlapped, blocks_run / 8);
  std::printf("[ INFO     ] %d model x table cases, %d fused runs, %d with the output over the input\n", cases,
              blocks_run, overlapped);
}

// Node-perturbation offsets on every op of a block and a weight override on
// its first op act exactly as in the unfused engine.
TEST(Fused, OffsetsAndOverridesBitExact) {
  for (uint64_t seed = 100; seed < 120; ++seed) {
    bool stem = false;
    Model m;
    m.load(random_bottleneck(seed, &stem));
    const ModelView& v = m.view;
    const int first = stem ? 1 : 0, end = first + 3;
    TestRng rng(seed);
    const std::vector<int8_t> input = rng.s8(tensor_elements(v.tensor(v.input_tensor())));
    std::vector<std::vector<int8_t>> offs;
    for (int i = first; i < end; ++i) offs.push_back(rng.s8(tensor_elements(v.tensor(v.op(i).output)), -20, 20));
    const TzmTensor& wt = v.tensor(v.op(first).inputs[1]);
    std::vector<int8_t> w2 = rng.s8(tensor_elements(wt));
    for (const KernelTable* k : all_tables()) {
      std::vector<uint8_t> out[2];
      for (int fused = 0; fused < 2; ++fused) {
        std::vector<uint8_t> mem(4 << 20);
        Arena arena(mem.data(), mem.size());
        Engine e;
        const FusedBlock blk{first, end, 1 + int(seed % 3)};
        EngineOptions o;
        if (fused) o.blocks = Span<const FusedBlock>(&blk, 1);
        ASSERT_EQ(e.init(v, arena, *k, 1, o), Status::kOk);
        for (int i = first; i < end; ++i) ASSERT_EQ(e.set_output_offset(i, offs[size_t(i - first)].data()), Status::kOk);
        ASSERT_EQ(e.set_param_override(first, 1, w2.data()), Status::kOk);
        std::memcpy(e.input().data(), input.data(), input.size());
        ASSERT_EQ(e.invoke(), Status::kOk);
        const auto* y = static_cast<const uint8_t*>(e.tensor_data(v.output_tensor()));
        out[fused].assign(y, y + tensor_elements(v.tensor(v.output_tensor())));
      }
      EXPECT_EQ(out[0], out[1]) << "seed " << seed << " table " << k->name;
    }
  }
}

TEST(Fused, RunsMayNotCutABlock) {
  bool stem = false;
  Model m;
  m.load(random_bottleneck(3, &stem));
  const ModelView& v = m.view;
  const int first = stem ? 1 : 0;
  std::vector<uint8_t> mem(1 << 20);
  Arena arena(mem.data(), mem.size());
  Engine e;
  const FusedBlock blk{first, first + 3, 1};
  EngineOptions o;
  o.blocks = Span<const FusedBlock>(&blk, 1);
  ASSERT_EQ(e.init(v, arena, ref::table(), 1, o), Status::kOk);
  EXPECT_TRUE(e.is_cut(first));
  EXPECT_FALSE(e.is_cut(first + 1));
  EXPECT_FALSE(e.is_cut(first + 2));
  EXPECT_TRUE(e.is_cut(first + 3));
  EXPECT_EQ(e.next_cut(first), first + 3);
  EXPECT_EQ(e.fused_block_of(first + 1), 0);
  EXPECT_EQ(e.invoke_range(first + 1, v.n_ops()), Status::kInvalidArgument);
  EXPECT_EQ(e.invoke_range(0, first + 2), Status::kInvalidArgument);
  EXPECT_EQ(e.tensor_data(v.op(first).output), nullptr);  // the expanded tensor never exists
  EXPECT_EQ(e.tensor_data(v.op(first + 1).output), nullptr);
  EXPECT_NE(e.tensor_data(v.op(first + 2).output), nullptr);
  std::vector<int8_t> cache(e.boundary_size_bytes(first + 1) + 1);
  EXPECT_EQ(e.save_boundary(first + 1, Span<int8_t>(cache.data(), cache.size())), Status::kInvalidArgument);
  // Invalid explicit blocks are refused.
  Engine bad;
  const FusedBlock over{first, first + 4 + (stem ? 0 : 0), 1};
  o.blocks = Span<const FusedBlock>(&over, 1);
  EXPECT_EQ(bad.init(v, arena, ref::table(), 1, o), Status::kInvalidArgument);
  const FusedBlock zero_band{first, first + 2, 0};
  o.blocks = Span<const FusedBlock>(&zero_band, 1);
  EXPECT_EQ(bad.init(v, arena, ref::table(), 1, o), Status::kInvalidArgument);
}

// A batch of items through a fused engine equals each item alone.
TEST(Fused, BatchItemsMatchSingle) {
  bool stem = false;
  Model m;
  m.load(random_bottleneck(11, &stem));
  const ModelView& v = m.view;
  const int first = stem ? 1 : 0;
  const FusedBlock blk{first, first + 3, 2};
  EngineOptions o;
  o.blocks = Span<const FusedBlock>(&blk, 1);
  std::vector<uint8_t> mem(4 << 20);
  Arena arena(mem.data(), mem.size());
  Engine e;
  ASSERT_EQ(e.init(v, arena, ref::table(), 3, o), Status::kOk);
  TestRng rng(5);
  std::vector<std::vector<int8_t>> in;
  for (int k = 0; k < 3; ++k) {
    in.push_back(rng.s8(e.input(k).size()));
    std::memcpy(e.input(k).data(), in.back().data(), in.back().size());
  }
  ASSERT_EQ(e.invoke(), Status::kOk);
  const size_t n = tensor_elements(v.tensor(v.output_tensor()));
  for (int k = 0; k < 3; ++k) {
    const auto* y = static_cast<const uint8_t*>(e.tensor_data(v.output_tensor(), k));
    EXPECT_EQ(std::vector<uint8_t>(y, y + n), run(v, ref::table(), in[size_t(k)], EngineOptions{})) << k;
  }
}

// ------------------------------------------------------------ reference models

const char* const kReferenceModels[] = {"mcunet-cifar10", "mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3"};

// The planner's blocks lower the arena on every reference model, the plan
// reaches its live-bytes bound (planned peak == measured peak), and every
// table computes bitwise the unfused logits, for both requantization rules.
TEST(Fused, ReferenceModelsBitExactAndSmaller) {
  int n_models = 0;
  for (const char* name : kReferenceModels) {
    const auto ref_model = testing::load_reference_model(name);
    if (!ref_model) continue;
    const LoadedModel& lm = *ref_model;
    ++n_models;
    for (int rule = 0; rule < 2; ++rule) {
      Model fx;
      const ModelView* v = &lm.view();
      if (rule == 1) {
        fx.load(convert_to_fixed_point(lm.view()).bytes);
        v = &fx.view;
      }
      std::vector<uint8_t> mem(4 << 20);
      Arena arena(mem.data(), mem.size());
      Engine plain, fused;
      ASSERT_EQ(plain.init(*v, arena, ref::table()), Status::kOk);
      EngineOptions o;
      o.fuse = true;
      ASSERT_EQ(fused.init(*v, arena, ref::table(), 1, o), Status::kOk);
      EXPECT_GT(fused.n_fused_blocks(), 0) << name;
      EXPECT_LT(fused.activation_bytes(), plain.activation_bytes()) << name;
      // The planned activations equal the live-bytes bound of the fused requests.
      std::vector<BufferRequest> req(size_t(v->n_tensors() + fused.n_fused_blocks()));
      std::vector<FusedBlock> blocks;
      for (int k = 0; k < fused.n_fused_blocks(); ++k) blocks.push_back(fused.fused_block(k));
      ASSERT_EQ(build_fused_requests(*v, Span<const FusedBlock>(blocks.data(), blocks.size()),
                                     Span<BufferRequest>(req.data(), req.size())),
                Status::kOk);
      EXPECT_EQ(fused.activation_bytes(), plan_lower_bound_bytes(Span<const BufferRequest>(req.data(), req.size())))
          << name;
      // The recorded fused arenas (docs/memory.md, "Fused blocks"): fail when one grows.
      const struct {
        const char* name;
        size_t bytes;
      } recorded[] = {{"mcunet-cifar10", 65024}, {"mcunet-5fps", 65024}, {"mbv2-w0.35", 68096},
                      {"proxyless-w0.3", 71680}};
      for (const auto& r : recorded)
        if (rule == 0 && std::string(r.name) == name) {
          EXPECT_LE(fused.activation_bytes(), r.bytes) << name;
        }
      if (rule == 0)
        std::printf("[ INFO     ] %s: activations %zu -> %zu bytes, %d fused blocks\n", name,
                    plain.activation_bytes(), fused.activation_bytes(), fused.n_fused_blocks());
      TestRng rng(42);
      const std::vector<int8_t> input = rng.s8(plain.input().size());
      for (const KernelTable* k : all_tables()) {
        // The costly tables run on one model only.
        if (k != &ref::table() && k != &armv7em::table() && std::string(name) != "mcunet-cifar10") {
          if (std::string(k->name) != "avx2" && std::string(k->name) != "portable") continue;
        }
        const std::vector<uint8_t> want = run(*v, *k, input, EngineOptions{});
        EXPECT_EQ(run(*v, *k, input, o), want) << name << " rule " << rule << " table " << k->name;
      }
    }
  }
  if (n_models == 0) GTEST_SKIP() << "no reference model available";
}

// Ops listed as unfused stay outside every block the planner chooses, and
// the choice still lowers the arena (on the reference models the paper's
// layers are after the chosen blocks). Without any fusable chain at the peak
// nothing is fused.
TEST(Fused, UnfusedOpsStayOutAndChoiceIsMinimal) {
  int n_models = 0;
  for (const char* name : kReferenceModels) {
    const auto ref_model = testing::load_reference_model(name);
    if (!ref_model) continue;
    ++n_models;
    const ModelView& v = ref_model->view();
    std::vector<int> keep;
    for (int i = 0; i < v.n_ops(); i += 3)
      if (static_cast<OpType>(v.op(i).type) == OpType::kConv2d) keep.push_back(i);
    std::vector<uint8_t> mem(4 << 20);
    Arena arena(mem.data(), mem.size());
    Engine plain, fused;
    ASSERT_EQ(plain.init(v, arena, ref::table()), Status::kOk);
    EngineOptions o;
    o.fuse = true;
    o.unfused_ops = Span<const int>(keep.data(), keep.size());
    ASSERT_EQ(fused.init(v, arena, ref::table(), 1, o), Status::kOk);
    for (int k = 0; k < fused.n_fused_blocks(); ++k)
      for (const int op : keep)
        EXPECT_FALSE(op >= fused.fused_block(k).first_op && op < fused.fused_block(k).end_op) << name << " op " << op;
    EXPECT_LE(fused.activation_bytes(), plain.activation_bytes()) << name;
    // Every chosen block is needed: removing any one raises the planned peak.
    std::vector<FusedBlock> blocks;
    for (int k = 0; k < fused.n_fused_blocks(); ++k) blocks.push_back(fused.fused_block(k));
    for (size_t drop = 0; drop < blocks.size(); ++drop) {
      std::vector<FusedBlock> fewer = blocks;
      fewer.erase(fewer.begin() + long(drop));
      std::vector<BufferRequest> req(size_t(v.n_tensors()) + fewer.size());
      ASSERT_EQ(build_fused_requests(v, Span<const FusedBlock>(fewer.data(), fewer.size()),
                                     Span<BufferRequest>(req.data(), req.size())),
                Status::kOk);
      EXPECT_GT(plan_lower_bound_bytes(Span<const BufferRequest>(req.data(), req.size())), fused.activation_bytes())
          << name << " block " << drop;
    }
  }
  if (n_models == 0) GTEST_SKIP() << "no reference model available";
  // A model whose peak is not inside a chain of convolutions: nothing to fuse.
  testing::TinyCnn tiny = testing::make_tiny_cnn(3);
  Model m;
  m.load(tiny.builder.serialize());
  std::vector<uint8_t> mem(1 << 20);
  Arena arena(mem.data(), mem.size());
  Engine plain, fused;
  ASSERT_EQ(plain.init(m.view, arena, ref::table()), Status::kOk);
  EngineOptions o;
  o.fuse = true;
  ASSERT_EQ(fused.init(m.view, arena, ref::table(), 1, o), Status::kOk);
  EXPECT_LE(fused.activation_bytes(), plain.activation_bytes());
  if (fused.n_fused_blocks() == 0) {
    EXPECT_EQ(fused.activation_bytes(), plain.activation_bytes());
  }
}

// Layer-wise ZO training through a fused engine (the trainable layers kept
// outside the blocks) ends with bitwise the weights of the unfused engine.
TEST(Fused, ZoTrainingSameWeightsAfterKSteps) {
  const auto ref_model = testing::load_reference_model("mcunet-cifar10");
  if (!ref_model) GTEST_SKIP() << "mcunet-cifar10 not available";
  const LoadedModel& lm = *ref_model;
  const ModelView& v = lm.view();
  // The paper's set: 1.4/1.5.conv.0 WP, 1.6/1.7.conv.0 NP.
  const TrainLayer layers[] = {
      {13, PerturbMode::kWeight}, {17, PerturbMode::kWeight}, {20, PerturbMode::kNode}, {24, PerturbMode::kNode}};
  const int unfused[] = {13, 17, 20, 24};
  ZoConfig cfg;
  cfg.n_queries_w = cfg.n_queries_b = 3;
  cfg.n_queries_np = 4;
  std::vector<std::vector<int64_t>> weights;
  size_t arena_bytes[2] = {0, 0};
  for (int fused = 0; fused < 2; ++fused) {
    std::vector<uint8_t> mem(4 << 20);
    Arena arena(mem.data(), mem.size());
    Engine e;
    EngineOptions o;
    o.fuse = fused == 1;
    o.unfused_ops = Span<const int>(unfused);
    ASSERT_EQ(e.init(v, arena, best_kernels(), 1, o), Status::kOk);
    if (fused) {
      EXPECT_GT(e.n_fused_blocks(), 0);
    }
    arena_bytes[fused] = e.activation_bytes();
    ZoTrainer t;
    ASSERT_EQ(t.init(e, Span<const TrainLayer>(layers), cfg, arena), Status::kOk);
    TestRng rng(9);
    for (int s = 0; s < 3; ++s) {
      ASSERT_EQ(t.begin_step(uint32_t(s)), Status::kOk);
      for (int i = 0; i < 3; ++i) {
        const std::vector<int8_t> x = rng.s8(e.input().size());
        ASSERT_EQ(t.accumulate_sample(Span<const int8_t>(x.data(), x.size()), i % 10), Status::kOk);
      }
      ASSERT_EQ(t.end_step(0.5f), Status::kOk);
    }
    std::vector<int64_t> all;
    for (int l = 0; l < t.n_layers(); ++l) {
      for (int8_t w : t.weights(l)) all.push_back(w);
      for (int32_t b : t.biases(l)) all.push_back(b);
    }
    weights.push_back(all);
  }
  EXPECT_EQ(weights[0], weights[1]);
  EXPECT_LT(arena_bytes[1], arena_bytes[0]);
  // A trainable op inside a fused block is refused (its boundary does not exist).
  std::vector<uint8_t> mem(4 << 20);
  Arena arena(mem.data(), mem.size());
  Engine e;
  EngineOptions o;
  o.fuse = true;
  ASSERT_EQ(e.init(v, arena, ref::table(), 1, o), Status::kOk);
  int inside = -1;
  for (int k = 0; k < e.n_fused_blocks() && inside < 0; ++k) inside = e.fused_block(k).first_op + 1;
  ASSERT_GE(inside, 0);
  if (static_cast<OpType>(v.op(inside).type) == OpType::kConv2d) {
    const TrainLayer bad[] = {{inside, PerturbMode::kWeight}};
    ZoTrainer t;
    EXPECT_EQ(t.init(e, Span<const TrainLayer>(bad), cfg, arena), Status::kInvalidArgument);
  }
}

TEST(Fused, PlusBiasesTrainInsideFusedBlocksAsUnfused) {
  // The paper's set beside a bias-only trainer on every other conv (the
  // plus-biases run, plus_bias_config): only the paper's layers are kept out
  // of the fused blocks, the bias-only trainer moves biases the bands read.
  // Three steps in fw::run_training's order give bitwise the weights and
  // biases of the unfused engine, in a smaller arena.
  const auto ref_model = testing::load_reference_model("mcunet-cifar10");
  if (!ref_model) GTEST_SKIP() << "mcunet-cifar10 not available";
  const ModelView& v = ref_model->view();
  const TrainLayer layers[] = {
      {13, PerturbMode::kWeight}, {17, PerturbMode::kWeight}, {20, PerturbMode::kNode}, {24, PerturbMode::kNode}};
  const int unfused[] = {13, 17, 20, 24};
  std::vector<TrainLayer> rest;
  for (int op = 0; op < v.n_ops(); ++op)
    if (static_cast<OpType>(v.op(op).type) == OpType::kConv2d && op != 13 && op != 17 && op != 20 && op != 24)
      rest.push_back(TrainLayer{op, PerturbMode::kWeight});
  ZoConfig cfg;
  cfg.n_queries_w = cfg.n_queries_b = 2;
  cfg.n_queries_np = 3;
  cfg.bias_mu = 0.25f;
  cfg.baseline = Baseline::kMean;
  const ZoConfig plus = plus_bias_config(cfg, 3);
  std::vector<std::vector<int64_t>> params;
  size_t arena_bytes[2] = {0, 0};
  int inside = 0;
  for (int fused = 0; fused < 2; ++fused) {
    std::vector<uint8_t> mem(8 << 20);
    Arena arena(mem.data(), mem.size());
    Engine e;
    EngineOptions o;
    o.fuse = fused == 1;
    o.unfused_ops = Span<const int>(unfused);
    ASSERT_EQ(e.init(v, arena, best_kernels(), 1, o), Status::kOk);
    arena_bytes[fused] = e.activation_bytes();
    if (fused)
      for (const TrainLayer& t : rest) inside += e.fused_block_of(t.op) >= 0 ? 1 : 0;
    ZoTrainer a, b;
    ASSERT_EQ(a.init(e, Span<const TrainLayer>(layers), cfg, arena), Status::kOk);
    ASSERT_EQ(b.init(e, Span<const TrainLayer>(rest.data(), rest.size()), plus, arena), Status::kOk);
    TestRng rng(21);
    for (int s = 0; s < 3; ++s) {
      ASSERT_EQ(a.begin_step(uint32_t(s)), Status::kOk);
      ASSERT_EQ(b.begin_step(uint32_t(s)), Status::kOk);
      for (int i = 0; i < 2; ++i) {
        const std::vector<int8_t> x = rng.s8(e.input().size());
        ASSERT_EQ(a.accumulate_sample(Span<const int8_t>(x.data(), x.size()), i % 10), Status::kOk);
        ASSERT_EQ(b.accumulate_sample(Span<const int8_t>(x.data(), x.size()), i % 10), Status::kOk);
      }
      ASSERT_EQ(a.end_step(0.5f), Status::kOk);
      ASSERT_EQ(b.end_step(0.5f), Status::kOk);
    }
    std::vector<int64_t> all;
    for (const ZoTrainer* t : {&a, &b})
      for (int l = 0; l < t->n_layers(); ++l) {
        for (int8_t w : t->weights(l)) all.push_back(w);
        for (int32_t bias : t->biases(l)) all.push_back(bias);
      }
    params.push_back(all);
  }
  EXPECT_GT(inside, 0);  // some of the bias-only layers really are inside blocks
  EXPECT_EQ(params[0], params[1]);
  EXPECT_LT(arena_bytes[1], arena_bytes[0]);
  // The biases moved (a bias-only trainer that trained nothing would pass the comparison).
  bool moved = false;
  size_t k = params[0].size();
  for (auto it = rest.rbegin(); it != rest.rend() && !moved; ++it) {
    const TzmOp& op = v.op(it->op);
    const int c_out = v.tensor(op.inputs[2]).dims[0];
    const auto* b0 = static_cast<const int32_t*>(v.data(op.inputs[2]));
    k -= size_t(c_out);
    for (int o = 0; o < c_out; ++o) moved = moved || params[0][k + size_t(o)] != b0[o];
  }
  EXPECT_TRUE(moved);
}

}  // namespace
}  // namespace tinyzo
