// Batched engine: N items per tensor, ops run over a range of items at once.
// Every op's output for every item equals what a batch-1 engine computes for
// that item's input, bit for bit, with the ref and the best kernels, on the
// synthetic CNN (every op kind) and on the real MCUNet when the data is there;
// item ranges, per-item boundaries and bad arguments behave as documented.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "models/model_store.h"
#include "test_models.h"
#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/kernels/kernels.h"

namespace tinyzo {
namespace {

using testing::TestRng;
using V8 = std::vector<int8_t>;
using Bytes = std::vector<uint8_t>;

// Every op's output bytes, in op order (the observer hands over all items run).
struct Recorder {
  std::vector<Bytes> outputs;
  static void observe(void* ctx, int /*op*/, const void* out, size_t size) {
    const auto* p = static_cast<const uint8_t*>(out);
    static_cast<Recorder*>(ctx)->outputs.emplace_back(p, p + size);
  }
};

struct Owned {
  explicit Owned(size_t bytes) : mem(bytes + 16) {
    const uintptr_t base = reinterpret_cast<uintptr_t>(mem.data());
    arena = Arena(mem.data() + (16 - base % 16) % 16, bytes);
  }
  Bytes mem;
  Arena arena;
};

size_t arena_need(const ModelView& v, int batch) {
  Owned scratch(size_t(64) << 20);
  size_t bytes = 0;
  EXPECT_EQ(Engine::required_arena_bytes(v, scratch.arena, &bytes, batch), Status::kOk);
  return bytes;
}

// Runs `inputs` one by one through a batch-1 engine and all at once through a
// batch-N engine (N = inputs.size()) and compares every op's output per item.
void expect_batch_equals_one_by_one(const ModelView& v, const KernelTable& k, const std::vector<V8>& inputs) {
  const int n = static_cast<int>(inputs.size());
  Owned m1(arena_need(v, 1)), mn(arena_need(v, n));
  Engine one, batch;
  ASSERT_EQ(one.init(v, m1.arena, k), Status::kOk);
  ASSERT_EQ(batch.init(v, mn.arena, k, n), Status::kOk);
  ASSERT_EQ(batch.batch(), n);
  Recorder rb;
  batch.set_observer(&Recorder::observe, &rb);
  for (int i = 0; i < n; ++i) std::memcpy(batch.input(i).data(), inputs[i].data(), inputs[i].size());
  ASSERT_EQ(batch.invoke(), Status::kOk);
  ASSERT_EQ(rb.outputs.size(), size_t(v.n_ops()));
  for (int i = 0; i < n; ++i) {
    Recorder r1;
    one.set_observer(&Recorder::observe, &r1);
    std::memcpy(one.input().data(), inputs[i].data(), inputs[i].size());
    ASSERT_EQ(one.invoke(), Status::kOk);
    for (int op = 0; op < v.n_ops(); ++op) {
      const Bytes& single = r1.outputs[size_t(op)];
      const Bytes& all = rb.outputs[size_t(op)];
      ASSERT_EQ(all.size(), single.size() * size_t(n)) << "op " << op;
      EXPECT_EQ(Bytes(all.begin() + long(i * single.size()), all.begin() + long((i + 1) * single.size())),
                single)
          << "op " << op << " item " << i << " kernels " << k.name;
    }
  }
}

std::vector<V8> random_inputs(int n, size_t size, uint64_t seed) {
  TestRng rng(seed);
  std::vector<V8> v;
  for (int i = 0; i < n; ++i) v.push_back(rng.s8(size));
  return v;
}

class EngineBatchTest : public ::testing::Test {
 protected:
  EngineBatchTest() : cnn_(testing::make_tiny_cnn()), model_(cnn_.builder.serialize()) {}
  void SetUp() override { ASSERT_EQ(model_.status, Status::kOk) << model_.view.error(); }
  testing::TinyCnn cnn_;
  testing::LoadedModel model_;
};

TEST_F(EngineBatchTest, EveryOpOfEveryItemEqualsBatchOne) {
  for (int n : {1, 2, 5, 16})
    for (const KernelTable* k : {&ref::table(), &best_kernels()})
      expect_batch_equals_one_by_one(model_.view, *k, random_inputs(n, 8 * 8 * 3, 100 + n));
}

TEST_F(EngineBatchTest, DequantizeHeadAndFullyConnectedBatch) {
  const testing::LoadedModel small(testing::make_small_conv(5, /*dequantize_head=*/true).serialize());
  ASSERT_EQ(small.status, Status::kOk);
  expect_batch_equals_one_by_one(small.view, best_kernels(), random_inputs(7, 4 * 4 * 2, 9));
}

// invoke_items runs exactly the items asked for: the observer sees two items'
// outputs, and items 1 and 2 hold the logits of the inputs they were given.
TEST_F(EngineBatchTest, ItemRangeRunsOnlyThoseItems) {
  const ModelView& v = model_.view;
  Owned mem(arena_need(v, 4));
  Engine e;
  ASSERT_EQ(e.init(v, mem.arena, ref::table(), 4), Status::kOk);
  const auto in = random_inputs(4, 8 * 8 * 3, 3);
  for (int i = 0; i < 4; ++i) std::memcpy(e.input(i).data(), in[i].data(), in[i].size());
  ASSERT_EQ(e.invoke(), Status::kOk);
  std::vector<std::vector<float>> before;
  for (int i = 0; i < 4; ++i) before.emplace_back(e.output_f32(i).begin(), e.output_f32(i).end());
  std::memcpy(e.input(1).data(), in[2].data(), in[2].size());
  std::memcpy(e.input(2).data(), in[1].data(), in[1].size());
  Recorder r;
  e.set_observer(&Recorder::observe, &r);
  ASSERT_EQ(e.invoke_items(0, v.n_ops(), 1, 3), Status::kOk);
  ASSERT_EQ(r.outputs.size(), size_t(v.n_ops()));
  for (int op = 0; op < v.n_ops(); ++op) {
    const TzmTensor& t = v.tensor(v.op(op).output);
    EXPECT_EQ(r.outputs[size_t(op)].size(), 2 * tensor_elements(t) * dtype_size(DType(t.dtype))) << op;
  }
  auto logits = [&](int i) { return std::vector<float>(e.output_f32(i).begin(), e.output_f32(i).end()); };
  EXPECT_EQ(logits(1), before[2]);
  EXPECT_EQ(logits(2), before[1]);
}

TEST_F(EngineBatchTest, OneBoundaryRestoredIntoEveryItemGivesEqualSuffixes) {
  const ModelView& v = model_.view;
  Owned mem(arena_need(v, 3));
  Engine e;
  ASSERT_EQ(e.init(v, mem.arena, best_kernels(), 3), Status::kOk);
  const auto in = random_inputs(3, 8 * 8 * 3, 4);
  for (int i = 0; i < 3; ++i) std::memcpy(e.input(i).data(), in[i].data(), in[i].size());
  ASSERT_EQ(e.invoke(), Status::kOk);
  const std::vector<float> want(e.output_f32(1).begin(), e.output_f32(1).end());
  for (int cut = 0; cut <= v.n_ops(); ++cut) {
    for (int i = 0; i < 3; ++i) std::memcpy(e.input(i).data(), in[i].data(), in[i].size());
    ASSERT_EQ(e.invoke_range(0, cut), Status::kOk);
    Bytes cache(e.boundary_size_bytes(cut) + 1);
    ASSERT_EQ(e.save_boundary(cut, Span<int8_t>(reinterpret_cast<int8_t*>(cache.data()), cache.size()), 1),
              Status::kOk);
    for (int i = 0; i < 3; ++i)
      ASSERT_EQ(e.restore_boundary(
                    cut, Span<const int8_t>(reinterpret_cast<int8_t*>(cache.data()), cache.size()), i),
                Status::kOk);
    ASSERT_EQ(e.invoke_range(cut, v.n_ops()), Status::kOk);
    for (int i = 0; i < 3; ++i)
      EXPECT_EQ(std::vector<float>(e.output_f32(i).begin(), e.output_f32(i).end()), want)
          << "cut " << cut << " item " << i;
  }
}

TEST_F(EngineBatchTest, BadBatchAndItemArguments) {
  const ModelView& v = model_.view;
  Owned mem(arena_need(v, 2));
  Engine e;
  EXPECT_EQ(e.init(v, mem.arena, ref::table(), 0), Status::kInvalidArgument);
  EXPECT_EQ(e.init(v, mem.arena, ref::table(), -3), Status::kInvalidArgument);
  ASSERT_EQ(e.init(v, mem.arena, ref::table(), 2), Status::kOk);
  EXPECT_EQ(e.invoke_items(0, v.n_ops(), 0, 3), Status::kOutOfRange);
  EXPECT_EQ(e.invoke_items(0, v.n_ops(), -1, 1), Status::kOutOfRange);
  EXPECT_EQ(e.invoke_items(0, v.n_ops(), 1, 1), Status::kOutOfRange);
  EXPECT_EQ(e.input(2).size(), 0u);
  EXPECT_EQ(e.output_f32(2).size(), 0u);
  EXPECT_EQ(e.tensor_data(v.input_tensor(), 2), nullptr);
  Bytes cache(e.boundary_size_bytes(1));
  EXPECT_EQ(e.save_boundary(1, Span<int8_t>(reinterpret_cast<int8_t*>(cache.data()), cache.size()), 2),
            Status::kOutOfRange);
  EXPECT_EQ(
      e.restore_boundary(1, Span<const int8_t>(reinterpret_cast<int8_t*>(cache.data()), cache.size()), -1),
      Status::kOutOfRange);
  // One byte less than the batch needs is out of memory, never a partial engine.
  Owned tight(arena_need(v, 2) - 1);
  Engine t;
  EXPECT_EQ(t.init(v, tight.arena, ref::table(), 2), Status::kOutOfMemory);
}

TEST_F(EngineBatchTest, OutputOffsetsApplyToEveryItem) {
  const ModelView& v = model_.view;
  Owned m1(arena_need(v, 1)), m3(arena_need(v, 3));
  Engine one, three;
  ASSERT_EQ(one.init(v, m1.arena, ref::table()), Status::kOk);
  ASSERT_EQ(three.init(v, m3.arena, ref::table(), 3), Status::kOk);
  const int op = 2;  // pw2
  TestRng rng(8);
  V8 offsets = rng.s8(tensor_elements(v.tensor(v.op(op).output)));
  ASSERT_EQ(one.set_output_offset(op, offsets.data()), Status::kOk);
  ASSERT_EQ(three.set_output_offset(op, offsets.data()), Status::kOk);
  const auto in = random_inputs(3, 8 * 8 * 3, 11);
  for (int i = 0; i < 3; ++i) std::memcpy(three.input(i).data(), in[i].data(), in[i].size());
  ASSERT_EQ(three.invoke(), Status::kOk);
  for (int i = 0; i < 3; ++i) {
    std::memcpy(one.input().data(), in[i].data(), in[i].size());
    ASSERT_EQ(one.invoke(), Status::kOk);
    EXPECT_EQ(std::vector<float>(three.output_f32(i).begin(), three.output_f32(i).end()),
              std::vector<float>(one.output_f32().begin(), one.output_f32().end()));
  }
}

// The real network: 16 images through the fastest kernels at once equal 16
// batch-1 runs, every layer. Needs the shared data (skipped without it, like
// the other reference-model tests).
TEST(EngineBatchMcunet, SixteenItemsEqualBatchOneEveryLayer) {
  std::string why;
  const auto loaded = testing::load_reference_model("mcunet-cifar10", &why);
  if (!loaded) GTEST_SKIP() << "mcunet-cifar10 not available: " << why;
  const LoadedModel& model = *loaded;
  const size_t in_size = tensor_elements(model.view().tensor(model.view().input_tensor()));
  expect_batch_equals_one_by_one(model.view(), best_kernels(), random_inputs(16, in_size, 21));
}

}  // namespace
}  // namespace tinyzo
