// Engine on synthetic models: invoke() equals the reference kernels called by
// hand, suffix runs after restore_boundary() are bit-exact, the ZO hooks
// (parameter override, output offsets) change and restore the output exactly,
// the observer sees every op, and the arena accounting is exact (one byte
// less fails, guard bytes around the arena stay untouched).
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <vector>

#include "test_models.h"
#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/kernels/kernels.h"

namespace tinyzo {
namespace {

using testing::LoadedModel;
using testing::TestRng;
using testing::TinyCnn;
using V8 = std::vector<int8_t>;

constexpr int kOps = testing::kTinyCnnOps;

// 16-byte-aligned heap memory for an arena (plus optional guard zones).
class ArenaMemory {
 public:
  explicit ArenaMemory(size_t size, size_t guard = 0) : guard_(guard), bytes_(guard + size + guard) {
    storage_.resize((bytes_ + 15) / 16 + 1);
  }
  uint8_t* all() { return reinterpret_cast<uint8_t*>(storage_.data()); }
  uint8_t* base() { return all() + guard_; }
  size_t guard() const { return guard_; }
  size_t total() const { return bytes_; }

 private:
  struct alignas(16) Block {
    uint8_t b[16];
  };
  size_t guard_, bytes_;
  std::vector<Block> storage_;
};

// Records every observer call, with a copy of the op's output.
struct Recorder {
  struct Call {
    int op;
    const void* out;
    std::vector<uint8_t> bytes;
  };
  std::vector<Call> calls;
  static void observe(void* ctx, int op, const void* out, size_t size) {
    auto* r = static_cast<Recorder*>(ctx);
    const auto* p = static_cast<const uint8_t*>(out);
    r->calls.push_back({op, out, std::vector<uint8_t>(p, p + size)});
  }
};

std::vector<uint8_t> output_bytes(const Engine& e) {
  const TzmTensor& t = e.output_info();
  const size_t n = tensor_elements(t) * dtype_size(DType(t.dtype));
  const auto* p = static_cast<const uint8_t*>(e.tensor_data(e.model().output_tensor()));
  return std::vector<uint8_t>(p, p + n);
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() : cnn_(testing::make_tiny_cnn()), model_(cnn_.builder.serialize()), memory_(1 << 16) {}

  void SetUp() override {
    ASSERT_EQ(model_.status, Status::kOk) << model_.view.error();
    arena_ = Arena(memory_.base(), 1 << 16);
    ASSERT_EQ(engine_.init(model_.view, arena_, ref::table()), Status::kOk);
    TestRng rng(77);
    input_ = rng.s8(8 * 8 * 3);
    set_input(engine_, input_);
  }
  static void set_input(Engine& e, const V8& x) {
    Span<int8_t> in = e.input();
    ASSERT_EQ(in.size(), x.size());
    std::memcpy(in.data(), x.data(), x.size());
  }
  std::vector<uint8_t> run(const V8& x) {
    set_input(engine_, x);
    EXPECT_EQ(engine_.invoke(), Status::kOk);
    return output_bytes(engine_);
  }
  template <class T>
  const T* data(int tensor) const {
    return static_cast<const T*>(model_.view.data(tensor));
  }

  TinyCnn cnn_;
  LoadedModel model_;
  ArenaMemory memory_;
  Arena arena_;
  Engine engine_;
  V8 input_;
};

// Every op of the tiny CNN computed with the ref kernels and ConvParams
// written out by hand from the layer list in test_models.h.
struct HandRun {
  V8 conv0, dw1, pw2, add3, conv4, max5, avg6, gap7, fc8;
  std::vector<float> head9;
};

HandRun run_by_hand(const TinyCnn& m, const ModelView& v, const V8& x) {
  auto s8 = [&](int t) { return static_cast<const int8_t*>(v.data(t)); };
  auto s32 = [&](int t) { return static_cast<const int32_t*>(v.data(t)); };
  auto f32 = [&](int t) { return static_cast<const float*>(v.data(t)); };
  HandRun r;
  // conv0: [8,8,3] -> [4,4,8], 3x3 stride 2 pad 1; x (input, -3) -> y (conv0, -128), act [-128, 100]
  ConvParams c0;
  c0.in_h = c0.in_w = 8;
  c0.in_c = 3;
  c0.out_h = c0.out_w = 4;
  c0.out_c = 8;
  c0.kh = c0.kw = 3;
  c0.stride_h = c0.stride_w = 2;
  c0.pad_top = c0.pad_left = 1;
  c0.x_zero = -3;
  c0.y_scale = TinyCnn::kConv0Scale;
  c0.y_zero = -128;
  c0.act_min = -128;
  c0.act_max = 100;
  r.conv0.resize(4 * 4 * 8);
  ref::conv2d_s8(c0, x.data(), s8(m.conv0_c.weight), s32(m.conv0_c.bias), f32(m.conv0_c.multiplier), r.conv0.data());
  // dw1: depthwise 3x3 pad 1 (groups 8); x (conv0, -128) -> y (dw1, 5)
  ConvParams c1;
  c1.in_h = c1.in_w = c1.out_h = c1.out_w = 4;
  c1.in_c = c1.out_c = c1.groups = 8;
  c1.kh = c1.kw = 3;
  c1.pad_top = c1.pad_left = 1;
  c1.x_zero = -128;
  c1.y_scale = TinyCnn::kDw1Scale;
  c1.y_zero = 5;
  r.dw1.resize(128);
  ref::conv2d_s8(c1, r.conv0.data(), s8(m.dw1_c.weight), s32(m.dw1_c.bias), f32(m.dw1_c.multiplier), r.dw1.data());
  // pw2: 1x1; x (dw1, 5) -> y (pw2, -2)
  ConvParams c2;
  c2.in_h = c2.in_w = c2.out_h = c2.out_w = 4;
  c2.in_c = c2.out_c = 8;
  c2.x_zero = 5;
  c2.y_scale = TinyCnn::kPw2Scale;
  c2.y_zero = -2;
  r.pw2.resize(128);
  ref::conv2d_s8(c2, r.dw1.data(), s8(m.pw2_c.weight), s32(m.pw2_c.bias), f32(m.pw2_c.multiplier), r.pw2.data());
  // add3: conv0 (conv0, -128) + pw2 (pw2, -2) -> (add3, 1)
  AddParams a3;
  a3.x1_scale = TinyCnn::kConv0Scale;
  a3.x1_zero = -128;
  a3.x2_scale = TinyCnn::kPw2Scale;
  a3.x2_zero = -2;
  a3.y_scale = TinyCnn::kAdd3Scale;
  a3.y_zero = 1;
  r.add3.resize(128);
  ref::add_s8(a3, r.conv0.data(), r.pw2.data(), r.add3.data(), 128);
  // conv4: 3x3 groups 2, no padding: [4,4,8] -> [2,2,8]; x (add3, 1) -> y (conv4, 0)
  ConvParams c4;
  c4.in_h = c4.in_w = 4;
  c4.in_c = c4.out_c = 8;
  c4.out_h = c4.out_w = 2;
  c4.kh = c4.kw = 3;
  c4.groups = 2;
  c4.x_zero = 1;
  c4.y_scale = TinyCnn::kConv4Scale;
  c4.y_zero = 0;
  r.conv4.resize(32);
  ref::conv2d_s8(c4, r.add3.data(), s8(m.conv4_c.weight), s32(m.conv4_c.bias), f32(m.conv4_c.multiplier),
                 r.conv4.data());
  // max5: 2x2 stride 1, bottom/right padding 1: [2,2,8] -> [2,2,8]
  PoolParams p5;
  p5.in_h = p5.in_w = p5.out_h = p5.out_w = 2;
  p5.c = 8;
  p5.kh = p5.kw = 2;
  r.max5.resize(32);
  ref::max_pool2d_s8(p5, r.conv4.data(), r.max5.data());
  // avg6: 3x3 stride 1 pad 1: [2,2,8] -> [2,2,8]
  PoolParams p6 = p5;
  p6.kh = p6.kw = 3;
  p6.pad_top = p6.pad_left = 1;
  r.avg6.resize(32);
  ref::avg_pool2d_s8(p6, r.max5.data(), r.avg6.data());
  // gap7: 4 positions x 8 channels
  r.gap7.resize(8);
  ref::global_avg_pool_s8(4, 8, r.avg6.data(), r.gap7.data());
  // fc8: a 1x1 conv on a 1x1 map, 8 -> 6; x (conv4, 0) -> y (fc8, -4)
  ConvParams c8;
  c8.in_h = c8.in_w = c8.out_h = c8.out_w = 1;
  c8.in_c = 8;
  c8.out_c = 6;
  c8.x_zero = 0;
  c8.y_scale = TinyCnn::kFc8Scale;
  c8.y_zero = -4;
  r.fc8.resize(6);
  ref::conv2d_s8(c8, r.gap7.data(), s8(m.fc8_c.weight), s32(m.fc8_c.bias), f32(m.fc8_c.multiplier), r.fc8.data());
  // head9: 6 -> 4 floats; x (fc8, -4)
  LinearF32Params l9;
  l9.in_features = 6;
  l9.out_features = 4;
  l9.x_zero = -4;
  l9.x_scale = TinyCnn::kFc8Scale;
  r.head9.resize(4);
  ref::linear_f32(l9, r.fc8.data(), f32(m.head_w), f32(m.head_b), r.head9.data());
  return r;
}

template <class T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  return std::vector<uint8_t>(p, p + v.size() * sizeof(T));
}

TEST_F(EngineTest, InvokeMatchesRefKernelsCalledByHand) {
  Recorder rec;
  engine_.set_observer(&Recorder::observe, &rec);
  ASSERT_EQ(engine_.invoke(), Status::kOk);
  const HandRun h = run_by_hand(cnn_, model_.view, input_);
  ASSERT_EQ(rec.calls.size(), size_t(kOps));
  const std::vector<uint8_t> expected[kOps] = {as_bytes(h.conv0), as_bytes(h.dw1),  as_bytes(h.pw2),
                                               as_bytes(h.add3),  as_bytes(h.conv4), as_bytes(h.max5),
                                               as_bytes(h.avg6),  as_bytes(h.gap7),  as_bytes(h.fc8),
                                               as_bytes(h.head9)};
  for (int i = 0; i < kOps; ++i) EXPECT_EQ(rec.calls[i].bytes, expected[i]) << "op " << i;
  const Span<const float> out = engine_.output_f32();
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(std::memcmp(out.data(), h.head9.data(), 16), 0);
  EXPECT_EQ(engine_.output_s8().size(), 0u);  // the output is float
  // The model is not degenerate: the int8 layers are not saturated to a constant.
  EXPECT_GT(std::set<int8_t>(h.conv0.begin(), h.conv0.end()).size(), 8u);
  EXPECT_GT(std::set<int8_t>(h.add3.begin(), h.add3.end()).size(), 8u);
  EXPECT_GT(std::set<int8_t>(h.fc8.begin(), h.fc8.end()).size(), 2u);
}

// input() must be refilled before every invoke(): the plan gives the model
// input the lifetime [-1, last reader], so later tensors may reuse its bytes
// (in the tiny CNN dw1 lands on them). Keeping it alive would cost a whole
// input buffer at the peak (docs/memory.md); the model-wise trainer refills it.
TEST_F(EngineTest, InvokeIsRepeatable) {
  const auto a = run(input_);
  const auto b = run(input_);
  EXPECT_EQ(a, b);
  TestRng rng(78);
  const auto c = run(rng.s8(input_.size()));
  EXPECT_NE(a, c);
  EXPECT_EQ(run(input_), a);
}

TEST_F(EngineTest, BestKernelsMatchRefThroughTheEngine) {
  ArenaMemory mem(1 << 16);
  Arena arena(mem.base(), 1 << 16);
  Engine best;
  ASSERT_EQ(best.init(model_.view, arena), Status::kOk);  // best_kernels()
  Recorder rec_ref, rec_best;
  engine_.set_observer(&Recorder::observe, &rec_ref);
  best.set_observer(&Recorder::observe, &rec_best);
  TestRng rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    const V8 x = rng.s8(input_.size());
    set_input(engine_, x);
    set_input(best, x);
    ASSERT_EQ(engine_.invoke(), Status::kOk);
    ASSERT_EQ(best.invoke(), Status::kOk);
  }
  ASSERT_EQ(rec_ref.calls.size(), rec_best.calls.size());
  for (size_t i = 0; i < rec_ref.calls.size(); ++i)
    ASSERT_EQ(rec_ref.calls[i].bytes, rec_best.calls[i].bytes)
        << best.kernels().name << " differs from ref at op " << rec_ref.calls[i].op;
}

TEST_F(EngineTest, InvokeRangeAfterRestoreBoundaryReproducesInvoke) {
  const auto full = run(input_);
  TestRng rng(9);
  const V8 other = rng.s8(input_.size());
  for (int k = 0; k <= kOps; ++k) {
    SCOPED_TRACE(k);
    // Run the prefix on input_ and cache its boundary (the trainer's prefix
    // reuse), clobber every buffer with a full run on another input, then
    // restore and run only the suffix.
    set_input(engine_, input_);
    ASSERT_EQ(engine_.invoke_range(0, k), Status::kOk);
    V8 cache(engine_.boundary_size_bytes(k));
    ASSERT_EQ(engine_.save_boundary(k, Span<int8_t>(cache.data(), cache.size())), Status::kOk);
    const auto clobbered = run(other);
    ASSERT_NE(clobbered, full);
    ASSERT_EQ(engine_.restore_boundary(k, Span<const int8_t>(cache.data(), cache.size())), Status::kOk);
    ASSERT_EQ(engine_.invoke_range(k, kOps), Status::kOk);
    EXPECT_EQ(output_bytes(engine_), full);
  }
}

TEST_F(EngineTest, RestoredBoundarySupportsRepeatedSuffixRuns) {
  // One cached prefix, many suffix runs (as the ZO queries do): each one is
  // bit-exact, with or without a perturbation in between.
  const auto full = run(input_);
  const int k = 4;
  set_input(engine_, input_);
  ASSERT_EQ(engine_.invoke_range(0, k), Status::kOk);
  V8 cache(engine_.boundary_size_bytes(k));
  ASSERT_EQ(engine_.save_boundary(k, Span<int8_t>(cache.data(), cache.size())), Status::kOk);
  const V8 offsets(32, 9);
  for (int rep = 0; rep < 6; ++rep) {
    const bool perturb = rep % 2 == 1;
    ASSERT_EQ(engine_.set_output_offset(5, perturb ? offsets.data() : nullptr), Status::kOk);
    ASSERT_EQ(engine_.restore_boundary(k, Span<const int8_t>(cache.data(), cache.size())), Status::kOk);
    ASSERT_EQ(engine_.invoke_range(k, kOps), Status::kOk);
    if (perturb) {
      EXPECT_NE(output_bytes(engine_), full) << rep;
    } else {
      EXPECT_EQ(output_bytes(engine_), full) << rep;
    }
  }
}

TEST_F(EngineTest, BoundarySizes) {
  EXPECT_EQ(engine_.boundary_size_bytes(0), 8u * 8 * 3);  // just the input
  EXPECT_EQ(engine_.boundary_size_bytes(kOps), 4u * 4);   // just the logits
  EXPECT_EQ(engine_.boundary_size_bytes(2), 2u * 128);    // conv0 (read by add3) and dw1
  EXPECT_EQ(engine_.boundary_size_bytes(3), 2u * 128);    // conv0 and pw2
  EXPECT_EQ(engine_.boundary_size_bytes(4), 128u);        // add3
  EXPECT_EQ(engine_.boundary_size_bytes(9), 6u);          // fc8
  V8 small(engine_.boundary_size_bytes(3) - 1);
  EXPECT_EQ(engine_.save_boundary(3, Span<int8_t>(small.data(), small.size())), Status::kInvalidArgument);
  EXPECT_EQ(engine_.restore_boundary(3, Span<const int8_t>(small.data(), small.size())), Status::kInvalidArgument);
  EXPECT_EQ(engine_.save_boundary(-1, Span<int8_t>(small.data(), small.size())), Status::kOutOfRange);
  EXPECT_EQ(engine_.restore_boundary(kOps + 1, Span<const int8_t>(small.data(), small.size())),
            Status::kOutOfRange);
}

TEST_F(EngineTest, InvokeRangeRejectsBadRanges) {
  EXPECT_EQ(engine_.invoke_range(-1, kOps), Status::kOutOfRange);
  EXPECT_EQ(engine_.invoke_range(0, kOps + 1), Status::kOutOfRange);
  EXPECT_EQ(engine_.invoke_range(5, 4), Status::kOutOfRange);
  EXPECT_EQ(engine_.invoke_range(4, 4), Status::kOk);  // empty range
  Engine uninitialised;
  EXPECT_EQ(uninitialised.invoke_range(0, 0), Status::kInvalidArgument);
}

TEST_F(EngineTest, PrefixThenSuffixEqualsInvoke) {
  const auto full = run(input_);
  for (int k = 0; k <= kOps; ++k) {
    set_input(engine_, input_);
    ASSERT_EQ(engine_.invoke_range(0, k), Status::kOk);
    ASSERT_EQ(engine_.invoke_range(k, kOps), Status::kOk);
    EXPECT_EQ(output_bytes(engine_), full) << k;
  }
}

TEST_F(EngineTest, ParamOverrideChangesOutputAndNullptrRestoresIt) {
  const auto clean = run(input_);
  // conv0 weight (slot 1): flip the sign of every weight.
  const TzmTensor& w = model_.view.tensor(cnn_.conv0_c.weight);
  V8 w2(data<int8_t>(cnn_.conv0_c.weight), data<int8_t>(cnn_.conv0_c.weight) + w.data_size);
  for (auto& v : w2) v = static_cast<int8_t>(v == -128 ? 127 : -v);
  ASSERT_EQ(engine_.set_param_override(0, 1, w2.data()), Status::kOk);
  EXPECT_EQ(engine_.param(0, 1), w2.data());
  EXPECT_NE(run(input_), clean);
  ASSERT_EQ(engine_.set_param_override(0, 1, nullptr), Status::kOk);
  EXPECT_EQ(engine_.param(0, 1), model_.view.data(cnn_.conv0_c.weight));
  EXPECT_EQ(run(input_), clean);

  // fc8 bias (slot 2) of the fully-connected layer.
  std::vector<int32_t> b(data<int32_t>(cnn_.fc8_c.bias), data<int32_t>(cnn_.fc8_c.bias) + 6);
  for (auto& v : b) v += 5000;
  ASSERT_EQ(engine_.set_param_override(8, 2, b.data()), Status::kOk);
  EXPECT_NE(run(input_), clean);
  ASSERT_EQ(engine_.set_param_override(8, 2, nullptr), Status::kOk);
  EXPECT_EQ(run(input_), clean);

  // LinearF32 bias (slot 2): logits[n] = acc[n] + b'[n].
  std::vector<float> hb(data<float>(cnn_.head_b), data<float>(cnn_.head_b) + 4);
  for (auto& v : hb) v += 1.f;
  ASSERT_EQ(engine_.set_param_override(9, 2, hb.data()), Status::kOk);
  const auto shifted = run(input_);
  std::vector<float> a(4), c(4);
  std::memcpy(a.data(), shifted.data(), 16);
  std::memcpy(c.data(), clean.data(), 16);
  for (int n = 0; n < 4; ++n) EXPECT_NEAR(a[n], c[n] + 1.f, 1e-5f);
  ASSERT_EQ(engine_.set_param_override(9, 2, nullptr), Status::kOk);
  EXPECT_EQ(run(input_), clean);
}

TEST_F(EngineTest, ParamOverrideOnlyAffectsItsOp) {
  // Overriding with the model's own bytes (a copy elsewhere) changes nothing.
  const auto clean = run(input_);
  const TzmTensor& w = model_.view.tensor(cnn_.conv4_c.weight);
  V8 copy(data<int8_t>(cnn_.conv4_c.weight), data<int8_t>(cnn_.conv4_c.weight) + w.data_size);
  ASSERT_EQ(engine_.set_param_override(4, 1, copy.data()), Status::kOk);
  EXPECT_EQ(run(input_), clean);
  // A perturbed copy changes conv4's output but not conv0's.
  copy[0] = static_cast<int8_t>(copy[0] > 0 ? -100 : 100);
  Recorder rec;
  engine_.set_observer(&Recorder::observe, &rec);
  run(input_);
  engine_.set_observer(nullptr, nullptr);
  ASSERT_EQ(engine_.set_param_override(4, 1, nullptr), Status::kOk);
  const HandRun h = run_by_hand(cnn_, model_.view, input_);
  EXPECT_EQ(rec.calls[0].bytes, as_bytes(h.conv0));
  EXPECT_EQ(rec.calls[3].bytes, as_bytes(h.add3));
  EXPECT_NE(rec.calls[4].bytes, as_bytes(h.conv4));
}

TEST_F(EngineTest, ParamOverrideRejectsBadArguments) {
  int32_t dummy[8] = {};
  EXPECT_EQ(engine_.set_param_override(3, 1, dummy), Status::kInvalidArgument);  // Add has no params
  EXPECT_EQ(engine_.set_param_override(5, 1, dummy), Status::kInvalidArgument);  // max pool
  EXPECT_EQ(engine_.set_param_override(0, 3, dummy), Status::kOutOfRange);       // multiplier: not a slot
  EXPECT_EQ(engine_.set_param_override(0, 0, dummy), Status::kOutOfRange);
  EXPECT_EQ(engine_.set_param_override(-1, 1, dummy), Status::kOutOfRange);
  EXPECT_EQ(engine_.set_param_override(kOps, 1, dummy), Status::kOutOfRange);
}

class EngineOffsetTest : public ::testing::Test {
 protected:
  EngineOffsetTest() : model_(testing::make_small_conv(2).serialize()), memory_(1 << 14) {}
  void SetUp() override {
    ASSERT_EQ(model_.status, Status::kOk) << model_.view.error();
    arena_ = Arena(memory_.base(), 1 << 14);
    ASSERT_EQ(engine_.init(model_.view, arena_, ref::table()), Status::kOk);
    TestRng rng(3);
    const V8 x = rng.s8(4 * 4 * 2);
    std::memcpy(engine_.input().data(), x.data(), x.size());
  }
  V8 out() {
    EXPECT_EQ(engine_.invoke(), Status::kOk);
    const Span<const int8_t> y = engine_.output_s8();
    return V8(y.begin(), y.end());
  }
  LoadedModel model_;
  ArenaMemory memory_;
  Arena arena_;
  Engine engine_;
};

TEST_F(EngineOffsetTest, OutputOffsetAddsWithSaturationAndNullptrClears) {
  const V8 clean = out();
  ASSERT_EQ(clean.size(), size_t(4 * 4 * 3));
  EXPECT_EQ(engine_.output_f32().size(), 0u);  // the output is int8
  // Offsets that hit both rails: +127 / -128 saturate, small ones pass through.
  V8 offsets(clean.size());
  for (size_t i = 0; i < offsets.size(); ++i) {
    const int8_t choices[6] = {127, -128, 0, 5, -7, 100};
    offsets[i] = choices[i % 6];
  }
  ASSERT_EQ(engine_.set_output_offset(0, offsets.data()), Status::kOk);
  const V8 perturbed = out();
  int saturated = 0;
  for (size_t i = 0; i < clean.size(); ++i) {
    const int v = int(clean[i]) + int(offsets[i]);
    const int expected = v < -128 ? -128 : (v > 127 ? 127 : v);
    EXPECT_EQ(perturbed[i], expected) << i;
    saturated += v != expected;
  }
  EXPECT_GT(saturated, 0);
  ASSERT_EQ(engine_.set_output_offset(0, nullptr), Status::kOk);
  EXPECT_EQ(out(), clean);
}

TEST_F(EngineOffsetTest, OutputOffsetOnFloatOutputIsRejected) {
  LoadedModel m(testing::make_small_conv(2, /*dequantize_head=*/true).serialize());
  ASSERT_EQ(m.status, Status::kOk);
  ArenaMemory mem(1 << 14);
  Arena arena(mem.base(), 1 << 14);
  Engine e;
  ASSERT_EQ(e.init(m.view, arena, ref::table()), Status::kOk);
  V8 offsets(48, 1);
  EXPECT_EQ(e.set_output_offset(1, offsets.data()), Status::kInvalidArgument);  // Dequantize: float output
  EXPECT_EQ(e.set_output_offset(1, nullptr), Status::kOk);
  EXPECT_EQ(e.set_output_offset(2, offsets.data()), Status::kOutOfRange);
  EXPECT_EQ(e.set_output_offset(-1, nullptr), Status::kOutOfRange);
}

TEST_F(EngineOffsetTest, DequantizeHeadIsRealValueOfTheInt8Output) {
  const V8 q = out();
  LoadedModel m(testing::make_small_conv(2, /*dequantize_head=*/true).serialize());
  ASSERT_EQ(m.status, Status::kOk);
  ArenaMemory mem(1 << 14);
  Arena arena(mem.base(), 1 << 14);
  Engine e;
  ASSERT_EQ(e.init(m.view, arena, ref::table()), Status::kOk);
  std::memcpy(e.input().data(), engine_.input().data(), e.input().size());
  ASSERT_EQ(e.invoke(), Status::kOk);
  const Span<const float> f = e.output_f32();
  ASSERT_EQ(f.size(), q.size());
  const TzmTensor& yt = model_.view.tensor(model_.view.output_tensor());
  for (size_t i = 0; i < q.size(); ++i)
    EXPECT_EQ(f[i], static_cast<float>(int32_t(q[i]) - yt.zero_point) * yt.scale) << i;
}

TEST_F(EngineTest, OutputOffsetsOnSeveralOpsAtOnce) {
  const auto clean = run(input_);
  // Capture conv0's clean output, then perturb conv0 and dw1 together.
  Recorder rec;
  engine_.set_observer(&Recorder::observe, &rec);
  run(input_);
  const V8 off0(128, 3), off1(128, -2);
  ASSERT_EQ(engine_.set_output_offset(0, off0.data()), Status::kOk);
  ASSERT_EQ(engine_.set_output_offset(1, off1.data()), Status::kOk);
  run(input_);
  // conv0's observed output is the clean one + 3, saturated (offsets apply before the observer).
  ASSERT_EQ(rec.calls.size(), size_t(2 * kOps));
  const auto& c0_clean = rec.calls[0].bytes;
  const auto& c0_pert = rec.calls[kOps].bytes;
  for (size_t i = 0; i < c0_clean.size(); ++i) {
    const int v = int(int8_t(c0_clean[i])) + 3;
    EXPECT_EQ(int8_t(c0_pert[i]), v > 127 ? 127 : v) << i;
  }
  EXPECT_NE(output_bytes(engine_), clean);
  ASSERT_EQ(engine_.set_output_offset(0, nullptr), Status::kOk);
  EXPECT_NE(run(input_), clean);  // dw1's offsets are still set
  ASSERT_EQ(engine_.set_output_offset(1, nullptr), Status::kOk);
  EXPECT_EQ(run(input_), clean);
}

TEST_F(EngineTest, ObserverSeesEveryOpInOrder) {
  Recorder rec;
  engine_.set_observer(&Recorder::observe, &rec);
  ASSERT_EQ(engine_.invoke(), Status::kOk);
  ASSERT_EQ(rec.calls.size(), size_t(kOps));
  for (int i = 0; i < kOps; ++i) {
    const TzmOp& op = model_.view.op(i);
    const TzmTensor& y = model_.view.tensor(op.output);
    EXPECT_EQ(rec.calls[i].op, i);
    EXPECT_EQ(rec.calls[i].out, engine_.tensor_data(op.output)) << i;
    EXPECT_EQ(rec.calls[i].bytes.size(), tensor_elements(y) * dtype_size(DType(y.dtype))) << i;
  }
  rec.calls.clear();
  ASSERT_EQ(engine_.invoke_range(3, 7), Status::kOk);
  ASSERT_EQ(rec.calls.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rec.calls[i].op, 3 + i);
  rec.calls.clear();
  engine_.set_observer(nullptr, nullptr);
  ASSERT_EQ(engine_.invoke(), Status::kOk);
  EXPECT_TRUE(rec.calls.empty());
}

TEST_F(EngineTest, MacsSumOpMacs) {
  uint64_t sum = 0;
  for (int i = 0; i < kOps; ++i) sum += model_.view.op_macs(i);
  EXPECT_EQ(engine_.macs(0, kOps), sum);
  // conv0: 4*4*8 outputs x 27 + dw1 4*4*8 x 9 + pw2 4*4*8 x 8 + conv4 2*2*8 x 36 + fc 48 + head 24
  EXPECT_EQ(sum, uint64_t(128 * 27 + 128 * 9 + 128 * 8 + 32 * 36 + 48 + 24));
  EXPECT_EQ(engine_.macs(3, 3), 0u);
}

TEST_F(EngineTest, InitRejectsAnInvalidModel) {
  ModelView empty;
  ArenaMemory mem(1024);
  Arena arena(mem.base(), 1024);
  Engine e;
  EXPECT_EQ(e.init(empty, arena), Status::kInvalidArgument);
  size_t need = 99;
  EXPECT_EQ(Engine::required_arena_bytes(empty, arena, &need), Status::kInvalidArgument);
}

// ---- arena accounting ----

class EngineArenaTest : public ::testing::TestWithParam<int> {
 protected:
  // Param 0: the tiny CNN; 1: the small conv (int8 output); 2: small conv + Dequantize.
  EngineArenaTest()
      : model_(GetParam() == 0 ? testing::make_tiny_cnn().builder.serialize()
                               : testing::make_small_conv(2, GetParam() == 2).serialize()) {}
  size_t required() {
    ArenaMemory scratch_mem(1 << 16);
    Arena scratch(scratch_mem.base(), 1 << 16);
    size_t need = 0;
    EXPECT_EQ(Engine::required_arena_bytes(model_.view, scratch, &need), Status::kOk);
    EXPECT_EQ(scratch.used(), 0u);  // left as it was
    return need;
  }
  LoadedModel model_;
};

TEST_P(EngineArenaTest, ExactSizeWorksOneByteLessDoesNot) {
  ASSERT_EQ(model_.status, Status::kOk);
  const size_t need = required();
  ASSERT_GT(need, 0u);
  {
    ArenaMemory mem(need);
    Arena arena(mem.base(), need);
    Engine e;
    ASSERT_EQ(e.init(model_.view, arena, ref::table()), Status::kOk);
    EXPECT_EQ(e.arena_bytes(), need);
    EXPECT_EQ(arena.high_water(), need);  // what init took at its peak
    EXPECT_LE(arena.used(), need);
    EXPECT_GE(e.arena_bytes(), e.activation_bytes());
    EXPECT_EQ(e.invoke(), Status::kOk);
  }
  for (size_t less = 1; less <= 64 && less <= need; ++less) {
    ArenaMemory mem(need - less);
    Arena arena(mem.base(), need - less);
    Engine e;
    EXPECT_EQ(e.init(model_.view, arena, ref::table()), Status::kOutOfMemory) << "size " << need - less;
    EXPECT_EQ(arena.used(), 0u) << "a failed init must give its memory back";
  }
}

TEST_P(EngineArenaTest, RequiredBytesAfterEarlierAllocations) {
  // An arena that already holds something: init needs the same amount on top.
  const size_t need = required();
  ArenaMemory mem(64 + need);
  Arena arena(mem.base(), 64 + need);
  ASSERT_NE(arena.allocate(64), nullptr);
  Engine e;
  ASSERT_EQ(e.init(model_.view, arena, ref::table()), Status::kOk);
  EXPECT_EQ(e.arena_bytes(), need);
  Arena tight(mem.base(), 64 + need - 1);
  ASSERT_NE(tight.allocate(64), nullptr);
  Engine f;
  EXPECT_EQ(f.init(model_.view, tight, ref::table()), Status::kOutOfMemory);
  EXPECT_EQ(tight.used(), 64u);
}

TEST_P(EngineArenaTest, MisalignedArenaBaseCostsAtMost15Bytes) {
  // The arena aligns absolute addresses, so required_arena_bytes() (measured
  // in a 16-aligned scratch) is exact only for a 16-aligned base; any other
  // base needs the padding to the first 16-byte boundary on top.
  const size_t need = required();
  ArenaMemory mem(need + 32);
  for (size_t shift = 1; shift < 16; ++shift) {
    Arena arena(mem.base() + shift, need + 15);
    Engine e;
    EXPECT_EQ(e.init(model_.view, arena, ref::table()), Status::kOk) << "base + " << shift;
  }
}

TEST_P(EngineArenaTest, InitAndInvokeNeverWriteOutsideTheArena) {
  const size_t need = required();
  constexpr size_t kGuard = 256;
  constexpr uint8_t kPattern = 0xA5;
  ArenaMemory mem(need, kGuard);
  std::memset(mem.all(), kPattern, mem.total());
  Arena arena(mem.base(), need);
  Engine e;
  ASSERT_EQ(e.init(model_.view, arena, ref::table()), Status::kOk);
  TestRng rng(11);
  for (int trial = 0; trial < 5; ++trial) {
    const V8 x = rng.s8(e.input().size());
    std::memcpy(e.input().data(), x.data(), x.size());
    ASSERT_EQ(e.invoke(), Status::kOk);
    for (int k = 0; k <= model_.view.n_ops(); ++k) {
      V8 cache(e.boundary_size_bytes(k));
      ASSERT_EQ(e.save_boundary(k, Span<int8_t>(cache.data(), cache.size())), Status::kOk);
      ASSERT_EQ(e.restore_boundary(k, Span<const int8_t>(cache.data(), cache.size())), Status::kOk);
      ASSERT_EQ(e.invoke_range(k, model_.view.n_ops()), Status::kOk);
    }
  }
  for (size_t i = 0; i < kGuard; ++i) {
    ASSERT_EQ(mem.all()[i], kPattern) << "guard byte " << i << " before the arena was written";
    ASSERT_EQ(mem.base()[need + i], kPattern) << "guard byte " << i << " after the arena was written";
  }
  // Every tensor lies inside the arena.
  for (int t = 0; t < model_.view.n_tensors(); ++t) {
    const TzmTensor& r = model_.view.tensor(t);
    if (r.flags & kTensorConstant) continue;
    const auto* p = static_cast<const uint8_t*>(e.tensor_data(t));
    EXPECT_GE(p, mem.base());
    EXPECT_LE(p + tensor_elements(r) * dtype_size(DType(r.dtype)), mem.base() + need) << r.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, EngineArenaTest, ::testing::Values(0, 1, 2));

}  // namespace
}  // namespace tinyzo
