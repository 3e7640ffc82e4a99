// Memory accounting on a small synthetic model whose every number can be
// computed by hand (the arithmetic is in the comments and in docs/memory.md).
#include "tinyzo/train/memory_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "util/errors.h"
#include "models/lifetime_chart.h"
#include "models/model_store.h"
#include "test_models.h"
#include "train_support.h"
#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/model.h"
#include "tinyzo/planner.h"
#include "tinyzo/train/zo_trainer.h"

namespace tinyzo {
namespace {

// A minimal in-memory .tzm builder (enough for this test; the full writer
// lives in host/). Weights are zero, scales 1: only shapes matter here.
class TinyBuilder {
 public:
  int activation(const char* name, int h, int w, int c, DType dt = DType::kInt8) {
    TzmTensor t = blank(name, dt, 3, h, w, c, 1);
    t.scale = 0.05f;
    tensors_.push_back(t);
    return int(tensors_.size()) - 1;
  }
  int constant(const char* name, DType dt, int rank, int d0, int d1 = 1, int d2 = 1, int d3 = 1,
               bool per_channel = false) {
    TzmTensor t = blank(name, dt, rank, d0, d1, d2, d3);
    t.flags = kTensorConstant;
    t.data_size = uint32_t(tensor_elements(t) * dtype_size(dt));
    t.data_offset = blob(t.data_size, dt == DType::kFloat32 ? 1.f : 0.f);
    if (per_channel) {
      t.flags |= kTensorPerChannel;
      t.quant_count = uint32_t(d0);
      t.quant_offset = blob(uint32_t(d0) * 4, 1.f);
    }
    tensors_.push_back(t);
    return int(tensors_.size()) - 1;
  }
  // Conv with "same" padding; groups == -1 means depthwise.
  int conv(const char* name, int x, int co, int k, int stride, int groups = 1) {
    const TzmTensor xi = tensors_[x];
    const int ci = xi.dims[2];
    if (groups < 0) groups = ci;
    const int pad = k / 2;
    const int oh = (xi.dims[0] + 2 * pad - k) / stride + 1, ow = (xi.dims[1] + 2 * pad - k) / stride + 1;
    const std::string n(name);
    const int w = constant((n + ".w").c_str(), DType::kInt8, 4, co, k, k, ci / groups, true);
    const int b = constant((n + ".b").c_str(), DType::kInt32, 1, co);
    const int m = constant((n + ".m").c_str(), DType::kFloat32, 1, co);
    const int y = activation((n + ".y").c_str(), oh, ow, co);
    TzmOp op = blank_op(name, OpType::kConv2d, {x, w, b, m}, y);
    const int32_t p[] = {k, k, stride, stride, pad, pad, pad, pad, groups, -128, 127};
    std::memcpy(op.params, p, sizeof(p));
    ops_.push_back(op);
    return y;
  }
  int add(const char* name, int x1, int x2) {
    const TzmTensor a = tensors_[x1];
    const int y = activation((std::string(name) + ".y").c_str(), a.dims[0], a.dims[1], a.dims[2]);
    TzmOp op = blank_op(name, OpType::kAdd, {x1, x2}, y);
    op.params[0] = -128;
    op.params[1] = 127;
    ops_.push_back(op);
    return y;
  }
  int global_avg_pool(const char* name, int x) {
    const int y = activation((std::string(name) + ".y").c_str(), 1, 1, tensors_[x].dims[2]);
    tensors_[y].scale = tensors_[x].scale;
    tensors_[y].zero_point = tensors_[x].zero_point;
    ops_.push_back(blank_op(name, OpType::kGlobalAvgPool, {x}, y));
    return y;
  }
  int linear(const char* name, int x, int n) {
    const int c = int(tensor_elements(tensors_[x]));
    const std::string s(name);
    const int w = constant((s + ".w").c_str(), DType::kFloat32, 2, n, c);
    const int b = constant((s + ".b").c_str(), DType::kFloat32, 1, n);
    TzmTensor t = blank((s + ".y").c_str(), DType::kFloat32, 1, n, 1, 1, 1);
    tensors_.push_back(t);
    const int y = int(tensors_.size()) - 1;
    ops_.push_back(blank_op(name, OpType::kLinearF32, {x, w, b}, y));
    return y;
  }

  // Serializes into 16-byte-aligned storage owned by the builder.
  Span<const uint8_t> finish(int input, int output) {
    tensors_[input].flags |= kTensorInput;
    tensors_[output].flags |= kTensorOutput;
    TzmHeader h{};
    h.magic = kTzmMagic;
    h.version_major = kTzmVersionMajor;
    h.version_minor = kTzmVersionMinor;
    h.header_size = sizeof(TzmHeader);
    h.n_tensors = uint32_t(tensors_.size());
    h.tensor_table_offset = sizeof(TzmHeader);
    h.n_ops = uint32_t(ops_.size());
    h.op_table_offset = h.tensor_table_offset + h.n_tensors * sizeof(TzmTensor);
    h.data_offset = align16(h.op_table_offset + h.n_ops * sizeof(TzmOp));
    h.data_size = uint32_t(data_.size());
    h.file_size = h.data_offset + h.data_size;
    h.input_tensor = input;
    h.output_tensor = output;
    storage_.assign((h.file_size + 15) / 16, Block{});
    uint8_t* p = storage_.data()->b;
    std::memcpy(p + h.tensor_table_offset, tensors_.data(), tensors_.size() * sizeof(TzmTensor));
    std::memcpy(p + h.op_table_offset, ops_.data(), ops_.size() * sizeof(TzmOp));
    if (!data_.empty()) std::memcpy(p + h.data_offset, data_.data(), data_.size());
    h.crc32 = crc32_update(0, p + sizeof(TzmHeader), h.file_size - sizeof(TzmHeader));
    std::memcpy(p, &h, sizeof(h));
    return Span<const uint8_t>(p, h.file_size);
  }

 private:
  struct alignas(16) Block {
    uint8_t b[16];
  };
  static uint32_t align16(size_t v) { return uint32_t((v + 15) & ~size_t(15)); }
  static TzmTensor blank(const char* name, DType dt, int rank, int d0, int d1, int d2, int d3) {
    TzmTensor t{};
    std::strncpy(t.name, name, kTzmNameLen - 1);
    t.dtype = uint8_t(dt);
    t.rank = uint8_t(rank);
    t.dims[0] = d0;
    t.dims[1] = d1;
    t.dims[2] = d2;
    t.dims[3] = d3;
    return t;
  }
  static TzmOp blank_op(const char* name, OpType type, std::initializer_list<int> inputs, int out) {
    TzmOp op{};
    std::strncpy(op.name, name, kTzmNameLen - 1);
    op.type = uint16_t(type);
    op.n_inputs = uint8_t(inputs.size());
    op.n_outputs = 1;
    for (int k = 0; k < kTzmMaxOpInputs; ++k) op.inputs[k] = -1;
    int k = 0;
    for (int i : inputs) op.inputs[k++] = i;
    op.output = out;
    return op;
  }
  uint32_t blob(uint32_t size, float fill) {
    const uint32_t at = align16(data_.size());
    data_.resize(at + size, 0);
    if (fill != 0.f)
      for (uint32_t i = 0; i + 4 <= size; i += 4) std::memcpy(&data_[at + i], &fill, 4);
    return at;
  }
  std::vector<TzmTensor> tensors_;
  std::vector<TzmOp> ops_;
  std::vector<uint8_t> data_;
  std::vector<Block> storage_;
};

// op0 conv0 3x3 4->8        x  [8,8,4]  256 B -> a1 [8,8,8]  512 B
// op1 b.conv.0 1x1 8->16    a1          -> a2 [8,8,16] 1024 B
// op2 b.conv.1 dw3x3 16     a2          -> a3 [8,8,16] 1024 B
// op3 b.conv.2 1x1 16->8    a3          -> a4 [8,8,8]  512 B
// op4 b.add (a1 + a4)                   -> a5 [8,8,8]  512 B (in place over a1)
// op5 pool (GAP)                        -> a6 [1,1,8]  8 B
// op6 head LinearF32 8->3               -> logits 3 x f32 = 12 B
struct TinyModel {
  TinyBuilder b;
  ModelView view;
  int x, a1, a2, a3, a4, a5, a6, logits;
  TinyModel() {
    x = b.activation("input", 8, 8, 4);
    a1 = b.conv("conv0", x, 8, 3, 1);
    a2 = b.conv("b.conv.0", a1, 16, 1, 1);
    a3 = b.conv("b.conv.1", a2, 16, 3, 1, -1);
    a4 = b.conv("b.conv.2", a3, 8, 1, 1);
    a5 = b.add("b.add", a1, a4);
    a6 = b.global_avg_pool("pool", a5);
    logits = b.linear("head", a6, 3);
    const Span<const uint8_t> bytes = b.finish(x, logits);
    const Status s = view.init(bytes.data(), bytes.size());
    EXPECT_EQ(s, Status::kOk) << view.error();
  }
};

struct Plan {
  std::vector<BufferRequest> requests;
  std::vector<size_t> offsets;
  std::vector<int> scratch;
  InferenceMemory mem;
  explicit Plan(const ModelView& m)
      : requests(m.n_tensors()), offsets(m.n_tensors()), scratch(plan_buffers_scratch_size(m.n_tensors())) {
    EXPECT_EQ(plan_inference(m, Span<BufferRequest>(requests.data(), requests.size()),
                             Span<size_t>(offsets.data(), offsets.size()),
                             Span<int>(scratch.data(), scratch.size()), &mem),
              Status::kOk);
  }
  Span<const BufferRequest> req() const { return Span<const BufferRequest>(requests.data(), requests.size()); }
};

TEST(MemoryModel, InferencePlanByHand) {
  TinyModel t;
  Plan p(t.view);
  // Alive at op2: a1 (0..4) + a2 (1..2) + a3 (2..3) = 512 + 1024 + 1024.
  EXPECT_EQ(live_bytes_at(p.req(), 2), 2560u);
  EXPECT_EQ(live_bytes_at(p.req(), 1), 512u + 1024u);
  EXPECT_EQ(live_bytes_at(p.req(), 3), 512u + 1024u + 512u);
  // op4 writes a5 over a1 in place: a1 + a4 only.
  EXPECT_EQ(live_bytes_at(p.req(), 4), 1024u);
  EXPECT_EQ(p.mem.peak_live_bytes, 2560u);
  EXPECT_EQ(p.mem.peak_op, 2);
  EXPECT_EQ(p.mem.activation_bytes, 2560u);  // the greedy plan reaches the bound here
  EXPECT_EQ(p.mem.sum_tensor_bytes, 256u + 512 + 1024 + 1024 + 512 + 512 + 8 + 12);
  EXPECT_TRUE(plan_is_valid(p.req(), Span<const size_t>(p.offsets.data(), p.offsets.size()),
                            p.mem.activation_bytes));
  // Boundaries: a suffix from op1 needs a1; from op3 needs a1 and a3.
  EXPECT_EQ(boundary_bytes(p.req(), 1), 512u);
  EXPECT_EQ(boundary_bytes(p.req(), 2), 512u + 1024u);
  EXPECT_EQ(boundary_bytes(p.req(), 3), 512u + 1024u);
  EXPECT_EQ(boundary_bytes(p.req(), 0), 256u);
}

TEST(MemoryModel, MatchesTheEngine) {
  TinyModel t;
  Plan p(t.view);
  std::vector<uint8_t> buf(1 << 20);
  Arena arena(buf.data(), buf.size());
  size_t required = 0;
  ASSERT_EQ(Engine::required_arena_bytes(t.view, arena, &required), Status::kOk);
  Engine e;
  ASSERT_EQ(e.init(t.view, arena), Status::kOk);
  EXPECT_EQ(e.activation_bytes(), p.mem.activation_bytes);
  EXPECT_EQ(e.arena_bytes(), required);
  EXPECT_GT(required, p.mem.activation_bytes);  // plus the engine's tables
  for (int op = 0; op <= t.view.n_ops(); ++op)
    EXPECT_EQ(e.boundary_size_bytes(op), boundary_bytes(p.req(), op)) << "op " << op;
}

TEST(MemoryModel, FlashByHand) {
  TinyModel t;
  FlashBreakdown f;
  ASSERT_EQ(flash_breakdown(t.view, &f), Status::kOk);
  EXPECT_EQ(f.weight_bytes, 288u + 128 + 144 + 128);  // 8x3x3x4, 16x8, 16x3x3x1, 8x16
  EXPECT_EQ(f.bias_bytes, (8u + 16 + 16 + 8) * 4);
  EXPECT_EQ(f.multiplier_bytes, (8u + 16 + 16 + 8) * 4);
  EXPECT_EQ(f.scale_bytes, (8u + 16 + 16 + 8) * 4);
  EXPECT_EQ(f.head_bytes, 3u * 8 * 4 + 3 * 4);
  EXPECT_EQ(f.other_const_bytes, 0u);
  EXPECT_EQ(f.file_bytes, t.view.bytes().size());
  EXPECT_EQ(f.file_bytes, f.table_bytes + f.weight_bytes + f.bias_bytes + f.multiplier_bytes + f.head_bytes +
                              f.scale_bytes + f.other_const_bytes + f.padding_bytes);
}

TEST(MemoryModel, WeightPerturbationByHand) {
  TinyModel t;
  Plan p(t.view);
  ZoSettings s;
  s.n_queries = 50;
  ZoLayerMemory m;
  ASSERT_EQ(zo_layer_memory(t.view, p.req(), 1, PerturbMode::kWeight, s, &m), Status::kOk);
  // WP extra = layer record + weights + biases + per-query loss sums
  // (persistent) + boundary + one perturbed tensor + the losses of one
  // tensor's queries (transient), each buffer rounded up to 16 bytes. No
  // d-sized gradient buffer. Q = 50 splits into 25 on W and 25 on b.
  const size_t rec = ZoTrainer::layer_record_bytes();
  EXPECT_EQ(rec % 16, 0u);
  EXPECT_EQ(m.record_bytes, rec);
  EXPECT_EQ(m.weight_bytes, 128u);
  EXPECT_EQ(m.bias_bytes, 64u);
  EXPECT_EQ(m.scalar_bytes, 112u + 112);  // 25 floats (100 B) per tensor, padded
  EXPECT_EQ(m.grad_bytes, 0u);
  EXPECT_EQ(m.persistent_bytes(), rec + 416);
  EXPECT_EQ(m.boundary_bytes, 512u);
  EXPECT_EQ(m.perturbed_bytes, 128u);
  EXPECT_EQ(m.query_loss_bytes, 112u);
  EXPECT_EQ(m.transient_bytes(), 512u + 128 + 112);
  EXPECT_EQ(m.extra_bytes(), rec + 1168);
  s.n_queries = 10;
  ASSERT_EQ(zo_layer_memory(t.view, p.req(), 1, PerturbMode::kWeight, s, &m), Status::kOk);
  EXPECT_EQ(m.scalar_bytes, 32u + 32);
  // Two-sided queries keep two sums (and two losses) per query.
  s.two_sided = true;
  ASSERT_EQ(zo_layer_memory(t.view, p.req(), 1, PerturbMode::kWeight, s, &m), Status::kOk);
  EXPECT_EQ(m.scalar_bytes, 48u + 48);
  EXPECT_EQ(m.query_loss_bytes, 48u);
  s.two_sided = false;
  ASSERT_EQ(zo_layer_memory(t.view, p.req(), 1, PerturbMode::kWeight, s, &m), Status::kOk);
  // The batch is streamed: it changes nothing.
  s.batch = 1000;
  ZoLayerMemory m2;
  ASSERT_EQ(zo_layer_memory(t.view, p.req(), 1, PerturbMode::kWeight, s, &m2), Status::kOk);
  EXPECT_EQ(m2.extra_bytes(), m.extra_bytes());
}

TEST(MemoryModel, NodePerturbationByHand) {
  TinyModel t;
  Plan p(t.view);
  ZoLayerMemory m;
  ASSERT_EQ(zo_layer_memory(t.view, p.req(), 1, PerturbMode::kNode, ZoSettings{}, &m), Status::kOk);
  EXPECT_EQ(m.n_outputs, 1024u);
  EXPECT_EQ(m.offset_bytes, 0u);           // the perturbation is written into y in place
  EXPECT_EQ(m.mask_bytes, 0u);             // saturation is read off the unperturbed y
  EXPECT_EQ(m.sample_scalar_bytes, 208u);  // Q floats instead of G (200 B, padded)
  EXPECT_EQ(m.node_grad_bytes, 0u);
  EXPECT_EQ(m.grad_bytes, (128u + 16) * 4);
  EXPECT_EQ(m.scalar_bytes, 0u);
  EXPECT_EQ(m.perturbed_bytes, 0u);
  EXPECT_EQ(m.query_loss_bytes, 0u);
  const size_t rec = ZoTrainer::layer_record_bytes();
  EXPECT_EQ(m.persistent_bytes(), rec + 128 + 64 + 576);
  EXPECT_EQ(m.transient_bytes(), 512u + 208);  // boundary + Q scalars
  EXPECT_EQ(m.extra_bytes(), rec + 1488);
  // A trainer that materializes G pays a float per output instead.
  ZoSettings g;
  g.np_materialize_grad = true;
  ASSERT_EQ(zo_layer_memory(t.view, p.req(), 1, PerturbMode::kNode, g, &m), Status::kOk);
  EXPECT_EQ(m.node_grad_bytes, 4u * 1024);
  EXPECT_EQ(m.sample_scalar_bytes, 0u);
  EXPECT_EQ(m.transient_bytes(), 512u + 4096);
}

TEST(MemoryModel, LayerSetSharesOneWorkspace) {
  TinyModel t;
  Plan p(t.view);
  const TrainLayer layers[] = {{3, PerturbMode::kNode}, {1, PerturbMode::kWeight}};
  ZoLayerMemory per[2];
  ZoMemory z;
  ASSERT_EQ(zo_memory(t.view, p.req(), Span<const TrainLayer>(layers), ZoSettings{}, Span<ZoLayerMemory>(per), &z),
            Status::kOk);
  // op3 NP: record + 128 + 32 + (128 + 8) * 4 = rec + 704 persistent;
  //         1536 boundary + 208 scalars = 1744 transient.
  // op1 WP: rec + 416 persistent, 752 transient (WeightPerturbationByHand).
  const size_t rec = ZoTrainer::layer_record_bytes();
  EXPECT_EQ(per[0].persistent_bytes(), rec + 704);
  EXPECT_EQ(per[0].transient_bytes(), 1744u);
  EXPECT_EQ(z.persistent_bytes, 2 * rec + 704 + 416);
  EXPECT_EQ(z.workspace_bytes, 1744u);  // one workspace, the larger layer's (not 1536 + 128 + 208 + 112)
  EXPECT_EQ(z.workspace_op, 3);
  EXPECT_EQ(z.extra_bytes, 2 * rec + 1120 + 1744);
  // The trainer takes exactly that: its layer table, the trainable copies and
  // sums, and one workspace of the larger layer's size.
  std::vector<uint8_t> mem(1 << 16);
  Arena arena(mem.data(), mem.size());
  Engine engine;
  ASSERT_EQ(engine.init(t.view, arena, ref::table()), Status::kOk);
  size_t trainer = 0;
  ASSERT_EQ(ZoTrainer::required_arena_bytes(engine, Span<const TrainLayer>(layers), zo_trainer_config(ZoSettings{}),
                                            arena, &trainer),
            Status::kOk);
  EXPECT_EQ(trainer, z.extra_bytes);
}

TEST(MemoryModel, WorkspaceGapByHand) {
  // Offsets 0..1024: a [0, 256) dies at op 1, b [256, 512) lives to op 5, c [512, 1024) from op 2
  // to op 3, d [0, 256) over a from op 4 on (a later tensor in a's bytes).
  std::vector<BufferRequest> r(4);
  r[0] = BufferRequest{256, -1, 1, -1};
  r[1] = BufferRequest{256, 0, 5, -1};
  r[2] = BufferRequest{512, 2, 3, -1};
  r[3] = BufferRequest{256, 4, 5, -1};
  const std::vector<size_t> off = {0, 256, 512, 0};
  const Span<const BufferRequest> req(r.data(), r.size());
  const Span<const size_t> o(off.data(), off.size());
  size_t at = 99;
  // From op 2: b, c, d alive: nothing free.
  EXPECT_FALSE(zo_workspace_gap(req, o, 2, 16, &at));
  // From op 4: c is dead: [512, 1024) free, the first 16-aligned fit is 512.
  EXPECT_TRUE(zo_workspace_gap(req, o, 4, 512, &at));
  EXPECT_EQ(at, 512u);
  EXPECT_FALSE(zo_workspace_gap(req, o, 4, 513, &at));  // never past the plan's end
  // From op 5 only b and d: the same. Origin-independent: shifted offsets shift the answer.
  const std::vector<size_t> off2 = {4096, 4352, 4608, 4096};
  EXPECT_TRUE(zo_workspace_gap(req, Span<const size_t>(off2.data(), off2.size()), 4, 100, &at));
  EXPECT_EQ(at, 4608u);
  // Everything dead from op 6 on: the lowest offset.
  EXPECT_TRUE(zo_workspace_gap(req, o, 6, 1024, &at));
  EXPECT_EQ(at, 0u);
  EXPECT_FALSE(zo_workspace_gap(req, o, 6, 1025, &at));
  // zo_place_workspace drops the workspace from the extra bytes only when it fits.
  ZoMemory z;
  z.persistent_bytes = 100;
  z.workspace_bytes = 512;
  ASSERT_EQ(zo_place_workspace(req, o, 4, &z), Status::kOk);
  EXPECT_TRUE(z.workspace_in_arena);
  EXPECT_EQ(z.extra_bytes, 100u);
  z.workspace_bytes = 600;
  ASSERT_EQ(zo_place_workspace(req, o, 4, &z), Status::kOk);
  EXPECT_FALSE(z.workspace_in_arena);
  EXPECT_EQ(z.extra_bytes, 700u);
}

TEST(MemoryModel, RejectsBadLayers) {
  TinyModel t;
  Plan p(t.view);
  ZoLayerMemory m;
  EXPECT_EQ(zo_layer_memory(t.view, p.req(), 4, PerturbMode::kWeight, ZoSettings{}, &m), Status::kInvalidArgument);
  EXPECT_EQ(zo_layer_memory(t.view, p.req(), 99, PerturbMode::kWeight, ZoSettings{}, &m), Status::kInvalidArgument);
  ZoSettings bad;
  bad.n_queries = 0;
  EXPECT_EQ(zo_layer_memory(t.view, p.req(), 1, PerturbMode::kWeight, bad, &m), Status::kInvalidArgument);
  const TrainLayer twice[] = {{1, PerturbMode::kWeight}, {1, PerturbMode::kNode}};
  ZoLayerMemory per[2];
  ZoMemory z;
  EXPECT_EQ(zo_memory(t.view, p.req(), Span<const TrainLayer>(twice), ZoSettings{}, Span<ZoLayerMemory>(per), &z),
            Status::kInvalidArgument);
}

TEST(MemoryModel, WorkspaceInTheArena) {
  TinyModel t;
  Plan p(t.view);
  const size_t n = p.requests.size() + 1;
  std::vector<BufferRequest> work(n);
  std::vector<size_t> offsets(n);
  std::vector<int> scratch(plan_buffers_scratch_size(n));
  auto plan = [&](int first_op, size_t bytes) {
    size_t arena = 0;
    EXPECT_EQ(zo_workspace_in_arena(t.view, p.req(), first_op, bytes, Span<BufferRequest>(work.data(), n),
                                    Span<size_t>(offsets.data(), n),
                                    Span<int>(scratch.data(), scratch.size()), &arena),
              Status::kOk);
    EXPECT_TRUE(plan_is_valid(Span<const BufferRequest>(work.data(), n), Span<const size_t>(offsets.data(), n), arena));
    return arena;
  };
  EXPECT_EQ(plan(1, 0), p.mem.activation_bytes);
  // From op5 on only a5 (512), a6 and the logits are alive: 1 KB of the
  // 2560-byte arena is free for the workspace.
  EXPECT_EQ(plan(5, 1024), p.mem.activation_bytes);
  // From op1 on, the peak (2560 at op2) is alive: the workspace adds itself.
  EXPECT_EQ(plan(1, 1024), p.mem.activation_bytes + 1024);
  size_t arena = 0;
  EXPECT_EQ(zo_workspace_in_arena(t.view, p.req(), 7, 16, Span<BufferRequest>(work.data(), n),
                                  Span<size_t>(offsets.data(), n), Span<int>(scratch.data(), scratch.size()),
                                  &arena),
            Status::kInvalidArgument);
}

TEST(LifetimeChart, RowsBarsAndPeak) {
  TinyModel t;
  Plan p(t.view);
  const std::vector<size_t> live = live_bytes_per_step(p.req(), t.view.n_ops());
  ASSERT_EQ(live.size(), 9u);  // steps -1 .. 7
  EXPECT_EQ(live[0], 256u);    // the input alone
  EXPECT_EQ(live[3], 2560u);   // op 2
  EXPECT_EQ(live[8], 12u);     // the logits after the last op
  const std::string chart = render_lifetime_chart(t.view, p.req(), Span<const size_t>(p.offsets.data(), p.offsets.size()),
                                                  p.mem.activation_bytes);
  // One row per activation: a2 is alive at ops 1..2 (columns 2..3 of -1..7).
  EXPECT_NE(chart.find("b.conv.0.y"), std::string::npos);
  EXPECT_NE(chart.find("|..##.....|"), std::string::npos) << chart;
  // a5 takes over a1 in place at op 4.
  EXPECT_NE(chart.find("|.....=#..|"), std::string::npos) << chart;
  EXPECT_NE(chart.find("[2048, 2560)"), std::string::npos) << chart;
  EXPECT_NE(chart.find("peak 2560 B at step 2 = op b.conv.1"), std::string::npos) << chart;
  EXPECT_EQ(format_bytes(10 * 1024), "10.0 KB");
  EXPECT_EQ(format_bytes(2560), "2560 B");
}

// The trainer and the memory model side by side on TinyModel: what ZoTrainer::init takes
// (required_arena_bytes) and what zo_memory() accounts for the same layers.
struct TinyTrainerAccounting {
  TinyModel t;
  Plan p{t.view};
  std::vector<uint8_t> buf = std::vector<uint8_t>(1 << 20);
  Arena arena{buf.data(), buf.size()};
  Engine e;
  TinyTrainerAccounting() { EXPECT_EQ(e.init(t.view, arena), Status::kOk); }
  size_t trainer_bytes(const std::vector<TrainLayer>& layers, const ZoConfig& cfg) {
    size_t bytes = 0;
    EXPECT_EQ(ZoTrainer::required_arena_bytes(e, Span<const TrainLayer>(layers.data(), layers.size()), cfg, arena,
                                              &bytes),
              Status::kOk);
    return bytes;
  }
  ZoMemory accounting(const std::vector<TrainLayer>& layers, const ZoSettings& s, std::vector<ZoLayerMemory>* per) {
    per->assign(layers.size(), ZoLayerMemory{});
    ZoMemory z;
    EXPECT_EQ(zo_memory(t.view, p.req(), Span<const TrainLayer>(layers.data(), layers.size()), s,
                        Span<ZoLayerMemory>(per->data(), per->size()), &z),
              Status::kOk);
    return z;
  }
};

// The accounting is a floor for the trainer as built: ZoTrainer::init never
// takes less than the model says (it may take more: see docs/memory.md,
// "The trainer as built").
TEST(MemoryModel, FloorOfTheTrainer) {
  TinyTrainerAccounting a;
  ZoConfig cfg;  // 25 + 25 WP queries, 50 NP queries
  ZoSettings s;
  s.n_queries = 50;
  const std::vector<std::vector<TrainLayer>> sets = {
      {{1, PerturbMode::kWeight}}, {{3, PerturbMode::kNode}}, {{1, PerturbMode::kWeight}, {3, PerturbMode::kNode}}};
  for (const auto& layers : sets) {
    std::vector<ZoLayerMemory> per;
    EXPECT_EQ(a.accounting(layers, s, &per).extra_bytes, a.trainer_bytes(layers, cfg))
        << layers.size() << " layers";  // the accounting is the trainer
  }
}

struct BpRun {
  std::vector<BufferRequest> work;
  std::vector<size_t> offsets;
  std::vector<int> scratch;
  BpMemory mem;
  Status status;
  BpRun(const ModelView& m, const Plan& p, Span<const TrainLayer> layers, BpKind kind)
      : work(bp_request_count(m)), offsets(work.size()), scratch(plan_buffers_scratch_size(work.size())) {
    status = bp_memory(m, p.req(), layers, kind, p.mem.activation_bytes,
                       Span<BufferRequest>(work.data(), work.size()), Span<size_t>(offsets.data(), offsets.size()),
                       Span<int>(scratch.data(), scratch.size()), &mem);
  }
};

TEST(MemoryModel, BackPropByHand) {
  TinyModel t;
  Plan p(t.view);
  const TrainLayer layers[] = {{1, PerturbMode::kWeight}};
  BpRun full(t.view, p, Span<const TrainLayer>(layers), BpKind::kFull);
  ASSERT_EQ(full.status, Status::kOk);
  // Every op from op1 on keeps its inputs: a1, a2, a3, a4, a5, a6.
  EXPECT_EQ(full.mem.saved_bytes, 512u + 1024 + 1024 + 512 + 512 + 8);
  EXPECT_EQ(full.mem.mask_bytes, 0u);
  EXPECT_EQ(full.mem.max_grad_bytes, 4u * 1024);
  EXPECT_EQ(full.mem.weight_bytes, 128u + 64);
  EXPECT_EQ(full.mem.weight_grad_bytes, (128u + 16) * 4);
  BpRun sparse(t.view, p, Span<const TrainLayer>(layers), BpKind::kSparse);
  ASSERT_EQ(sparse.status, Status::kOk);
  // Only op1's input a1; 1-bit masks of the outputs of op1..op4.
  EXPECT_EQ(sparse.mem.saved_bytes, 512u);
  EXPECT_EQ(sparse.mem.mask_bytes, (1024u + 1024 + 512 + 512) / 8);
  EXPECT_LE(sparse.mem.arena_bytes, full.mem.arena_bytes);
  // Both plans are valid over forward + backward time and hold at least the
  // gradient in and out of the widest layer.
  for (const BpRun* r : {&full, &sparse}) {
    EXPECT_TRUE(plan_is_valid(Span<const BufferRequest>(r->work.data(), r->work.size()),
                              Span<const size_t>(r->offsets.data(), r->offsets.size()), r->mem.arena_bytes));
    EXPECT_GE(r->mem.arena_bytes, p.mem.activation_bytes);
    EXPECT_GE(r->mem.arena_bytes, 2 * r->mem.max_grad_bytes);
  }
}

TEST(MemoryModel, BackPropCostsMoreThanZo) {
  TinyModel t;
  Plan p(t.view);
  for (int op : {0, 1, 2, 3}) {
    const TrainLayer layers[] = {{op, PerturbMode::kWeight}};
    ZoLayerMemory wp;
    ASSERT_EQ(zo_layer_memory(t.view, p.req(), op, PerturbMode::kWeight, ZoSettings{}, &wp), Status::kOk);
    BpRun full(t.view, p, Span<const TrainLayer>(layers), BpKind::kFull);
    BpRun sparse(t.view, p, Span<const TrainLayer>(layers), BpKind::kSparse);
    ASSERT_EQ(full.status, Status::kOk);
    EXPECT_GT(full.mem.extra_bytes, wp.extra_bytes()) << "op " << op;
    EXPECT_GT(sparse.mem.extra_bytes, wp.extra_bytes()) << "op " << op;
    EXPECT_GE(full.mem.extra_bytes, sparse.mem.extra_bytes) << "op " << op;
  }
}

// The recorded figures of docs/memory.md: a test fails when the planned
// arena of a reference model, or the paper set's ZO total, grows past them.
// Skipped when the shared data (or the Python importer) is not available.
// The workspace in a gap of the engine's activations changes where bytes live,
// never what is computed: two steps of the paper set give bitwise the same
// weights with it in the activations and in the trainer's own arena, and the
// trainer's arena differs by exactly the workspace.
TEST(MemoryModel, WorkspaceInTheActivationsTrainsBitwiseTheSame) {
  std::string why;
  const auto loaded = testing::load_reference_model("mcunet-cifar10", &why);
  if (!loaded) GTEST_SKIP() << "mcunet-cifar10 not available: " << why;
  const LoadedModel& model = *loaded;
  const TrainLayer layers[] = {
      {13, PerturbMode::kWeight}, {17, PerturbMode::kWeight}, {20, PerturbMode::kNode}, {24, PerturbMode::kNode}};
  struct Result {
    std::vector<double> state;  // weights, biases
    std::vector<int8_t> w;
    size_t trainer_bytes = 0;
  };
  auto run = [&](bool in_activations) {
    Result res;
    ZoConfig cfg;
    cfg.n_queries_w = 2;
    cfg.n_queries_b = 2;
    cfg.n_queries_np = 3;
    cfg.seed = 9;
    cfg.workspace_in_activations = in_activations;
    testing::TrainRig rig(model.view(), std::vector<TrainLayer>(std::begin(layers), std::end(layers)), cfg);
    const ZoTrainer& t = rig.trainer;
    res.trainer_bytes = t.arena_bytes();
    for (uint32_t step = 0; step < 2; ++step) testing::train_step(rig.trainer, rig.inputs(2, 12345 + step), step, 0.05f, 10);
    res.state = testing::trained_state(t);
    for (int i = 0; i < t.n_layers(); ++i) res.w.insert(res.w.end(), t.weights(i).begin(), t.weights(i).end());
    return res;
  };
  const Result gap = run(true), own = run(false);
  EXPECT_EQ(gap.state, own.state);
  // The step moved weights (so equality says something).
  const std::vector<int8_t> w0 = [&] {
    std::vector<int8_t> v;
    for (const TrainLayer& l : layers) {
      const TzmOp& op = model.view().op(l.op);
      const auto* p = static_cast<const int8_t*>(model.view().data(op.inputs[1]));
      v.insert(v.end(), p, p + tensor_elements(model.view().tensor(op.inputs[1])));
    }
    return v;
  }();
  ASSERT_EQ(w0.size(), gap.w.size());
  EXPECT_NE(w0, gap.w);
  // The trainer's own arena is smaller by exactly the workspace: the largest per-layer sum,
  // recomputed here.
  size_t ws = 0;
  testing::TrainRig rig(model.view());
  const Engine& engine = rig.engine;
  ZoConfig cfg;
  cfg.n_queries_w = 2;
  cfg.n_queries_b = 2;
  cfg.n_queries_np = 3;
  for (const TrainLayer& l : layers) {
    const TzmOp& op = model.view().op(l.op);
    ws = std::max(ws, ZoTrainer::workspace_bytes_for(engine.boundary_size_bytes(l.op), l.mode,
                                                     tensor_elements(model.view().tensor(op.inputs[1])),
                                                     tensor_elements(model.view().tensor(op.inputs[2])), cfg));
  }
  EXPECT_GT(ws, 0u);
  EXPECT_EQ(own.trainer_bytes, gap.trainer_bytes + ws);
}

TEST(MemoryModel, EveryLayerAloneInitsInAnArenaOfExactlyTheRequiredSize) {
  // The workspace search in init() takes a temporary table of one record per
  // tensor; for a layer whose own buffers are small and whose workspace fits a
  // gap of the activations, that table is larger than everything the trainer
  // keeps, so the required size is the table's peak, not the final use
  // (tinyzo select --method test-pick, which trains each conv alone, ran out
  // of memory on such candidates). An arena of exactly that size must do, for
  // every conv of the model alone.
  std::string why;
  const auto loaded = testing::load_reference_model("mcunet-cifar10", &why);
  if (!loaded) GTEST_SKIP() << "mcunet-cifar10 not available: " << why;
  const LoadedModel& model = *loaded;
  const ModelView& m = model.view();
  std::vector<uint8_t> mem(2 << 20);
  Arena arena(mem.data(), mem.size());
  Engine engine;
  ASSERT_EQ(engine.init(m, arena, ref::table()), Status::kOk);
  int peak_above_final = 0;
  for (int op = 0; op < m.n_ops(); ++op) {
    if (static_cast<OpType>(m.op(op).type) != OpType::kConv2d) continue;
    for (PerturbMode mode : {PerturbMode::kWeight, PerturbMode::kNode}) {
      const TrainLayer layer[] = {{op, mode}};
      size_t need = 0;
      ASSERT_EQ(ZoTrainer::required_arena_bytes(engine, Span<const TrainLayer>(layer), ZoConfig{}, arena, &need),
                Status::kOk);
      std::vector<uint8_t> exact_mem(need + 16);
      Arena exact(exact_mem.data() + (16 - reinterpret_cast<uintptr_t>(exact_mem.data()) % 16) % 16, need);
      ZoTrainer t;
      ASSERT_EQ(t.init(engine, Span<const TrainLayer>(layer), ZoConfig{}, exact), Status::kOk)
          << m.op(op).name << " " << perturb_mode_name(mode) << ": " << need << " bytes";
      EXPECT_EQ(exact.used(), t.arena_bytes());
      EXPECT_LE(t.arena_bytes(), need);
      peak_above_final += t.arena_bytes() < need;
      for (int k = 1; k <= 2; ++k) (void)engine.set_param_override(op, k, nullptr);
    }
  }
  EXPECT_GT(peak_above_final, 0) << "no layer exercised the case of a peak above the final use";
}

TEST(MemoryModel, ReferenceModelsDoNotGrow) {
  struct Recorded {
    const char* name;
    size_t activation_bytes;
  };
  // proxyless-w0.3 was 163840 with greedy by size alone (32 KB above its
  // live-bytes bound); the searched plan reaches the bound on all four.
  const Recorded recorded[] = {{"mcunet-cifar10", 163840},
                               {"mcunet-5fps", 163840},
                               {"mbv2-w0.35", 245760},
                               {"proxyless-w0.3", 131072}};
  for (const Recorded& r : recorded) {
    std::string why;
    const auto loaded = testing::load_reference_model(r.name, &why);
    if (!loaded) GTEST_SKIP() << r.name << " not available: " << why;
    const LoadedModel& model = *loaded;
    Plan p(model.view());
    EXPECT_LE(p.mem.activation_bytes, r.activation_bytes) << r.name;
    // No waste: the plan is the peak of simultaneously live bytes, which no
    // plan of these lifetimes can beat.
    EXPECT_EQ(p.mem.activation_bytes, p.mem.peak_live_bytes) << r.name;
    EXPECT_EQ(p.mem.activation_bytes, plan_lower_bound_bytes(p.req())) << r.name;
    if (std::string(r.name) != "mcunet-cifar10") continue;
    // The paper's set: 1.4/1.5.conv.0 WP, 1.6/1.7.conv.0 NP (ops 13, 17, 20, 24).
    const TrainLayer layers[] = {
        {13, PerturbMode::kWeight}, {17, PerturbMode::kWeight}, {20, PerturbMode::kNode}, {24, PerturbMode::kNode}};
    const char* names[] = {"1.4.conv.0", "1.5.conv.0", "1.6.conv.0", "1.7.conv.0"};
    for (int i = 0; i < 4; ++i) ASSERT_STREQ(model.view().op(layers[i].op).name, names[i]);
    ZoLayerMemory per[4];
    ZoMemory z;
    ASSERT_EQ(zo_memory(model.view(), p.req(), Span<const TrainLayer>(layers), ZoSettings{}, Span<ZoLayerMemory>(per), &z),
              Status::kOk);
    // 73,728 B of buffers (weights 2,880 + 2,880 + 6,400 + 6,400, biases 480 +
    // 480 + 640 + 640, WP sums 4 x 112, NP dW/db 2 x (25,600 + 640)) + 4 layer records.
    EXPECT_EQ(z.persistent_bytes, 73728u + 4 * ZoTrainer::layer_record_bytes());
    EXPECT_EQ(z.workspace_bytes, 9136u);  // 1.4.conv.0 WP: boundary 6,144 + perturbed 2,880 + losses 112
    EXPECT_EQ(z.extra_bytes, z.persistent_bytes + z.workspace_bytes);
    // From op 13 on only small tensors are alive: the plan's early 160 KB have room for the workspace.
    const Span<const size_t> offs(p.offsets.data(), p.offsets.size());
    ASSERT_EQ(zo_place_workspace(p.req(), offs, 13, &z), Status::kOk);
    EXPECT_TRUE(z.workspace_in_arena) << r.name;
    EXPECT_EQ(z.extra_bytes, z.persistent_bytes);
    EXPECT_LE(p.mem.activation_bytes + z.extra_bytes, 256u * 1024 - 12544) << "the paper set no longer fits 256 KB";
    // The trainer as built, measured: the engine's arena plus the trainer's
    // buffers for the paper's configuration (25 + 25 WP queries, 50 NP).
    std::vector<uint8_t> mem(2 << 20);
    Arena arena(mem.data(), mem.size());
    Engine engine;
    ASSERT_EQ(engine.init(model.view(), arena, ref::table()), Status::kOk);
    size_t trainer = 0;
    ASSERT_EQ(ZoTrainer::required_arena_bytes(engine, Span<const TrainLayer>(layers), ZoConfig{}, arena, &trainer),
              Status::kOk);
    // The planned inference peak is exactly what the engine takes for activations.
    EXPECT_EQ(engine.activation_bytes(), p.mem.activation_bytes) << r.name;
    // The accounting is the trainer, byte for byte (docs/memory.md §2).
    EXPECT_EQ(trainer, z.extra_bytes) << r.name;
    EXPECT_LE(engine.arena_bytes() + trainer, 256u * 1024) << r.name << ": paper set outside 256 KB";
    // Other configurations, still byte for byte: every conv WP (the dense
    // set, whose largest boundary cache and largest perturbed copy belong to
    // different layers: the trainer once paid both), and the paper set with
    // uneven, two-sided query counts.
    {
      std::vector<TrainLayer> all;
      for (int op = 0; op < model.view().n_ops(); ++op)
        if (static_cast<OpType>(model.view().op(op).type) == OpType::kConv2d) all.push_back({op, PerturbMode::kWeight});
      std::vector<ZoLayerMemory> pa(all.size());
      ZoMemory za;
      ASSERT_EQ(zo_memory(model.view(), p.req(), Span<const TrainLayer>(all.data(), all.size()), ZoSettings{},
                          Span<ZoLayerMemory>(pa.data(), pa.size()), &za),
                Status::kOk);
      size_t dense = 0;
      ASSERT_EQ(ZoTrainer::required_arena_bytes(engine, Span<const TrainLayer>(all.data(), all.size()), ZoConfig{},
                                                arena, &dense),
                Status::kOk);
      // Op 0 is trained: every tensor is alive from the first trained op on, no gap.
      ASSERT_EQ(zo_place_workspace(p.req(), offs, 0, &za), Status::kOk);
      EXPECT_FALSE(za.workspace_in_arena);
      EXPECT_EQ(dense, za.extra_bytes) << r.name << ": dense set";
      ZoSettings odd;
      odd.n_queries_w = 7;
      odd.n_queries_b = 3;
      odd.n_queries_np = 13;
      odd.two_sided = true;
      ZoMemory zo;
      ASSERT_EQ(zo_memory(model.view(), p.req(), Span<const TrainLayer>(layers), odd, Span<ZoLayerMemory>(per), &zo),
                Status::kOk);
      size_t odd_bytes = 0;
      ASSERT_EQ(ZoTrainer::required_arena_bytes(engine, Span<const TrainLayer>(layers), zo_trainer_config(odd), arena,
                                                &odd_bytes),
                Status::kOk);
      ASSERT_EQ(zo_place_workspace(p.req(), offs, 13, &zo), Status::kOk);
      EXPECT_EQ(odd_bytes, zo.extra_bytes) << r.name << ": 7/3/13 queries, two-sided";
      EXPECT_NE(odd_bytes, trainer);
      // One layer per pass: one NP accumulator (1.6 and 1.7.conv.0 have the
      // same shape: 25,600 + 640 B) and 1.6.conv.0's updated W and b (6,400 +
      // 640 B) instead of the second accumulator: 19,200 B less, still the
      // trainer byte for byte.
      ZoSettings pass;
      pass.one_layer_per_pass = true;
      ZoMemory zp;
      ASSERT_EQ(zo_memory(model.view(), p.req(), Span<const TrainLayer>(layers), pass, Span<ZoLayerMemory>(per), &zp),
                Status::kOk);
      EXPECT_EQ(zp.shared_grad_bytes, 25600u + 640);
      EXPECT_EQ(per[2].pending_bytes, 6400u + 640);
      EXPECT_EQ(per[3].pending_bytes, 0u);
      EXPECT_EQ(z.persistent_bytes - zp.persistent_bytes, 19200u);
      size_t pass_bytes = 0;
      ASSERT_EQ(ZoTrainer::required_arena_bytes(engine, Span<const TrainLayer>(layers), zo_trainer_config(pass), arena,
                                                &pass_bytes),
                Status::kOk);
      ASSERT_EQ(zo_place_workspace(p.req(), offs, 13, &zp), Status::kOk);
      EXPECT_EQ(pass_bytes, zp.extra_bytes) << r.name << ": one layer per pass";
      // Momentum: one float32 per trained weight and bias (19,120 parameters
      // of the paper set: 76,480 B), with and without one layer per pass.
      for (bool one_pass : {false, true}) {
        ZoSettings mom;
        mom.momentum = 0.9f;
        mom.one_layer_per_pass = one_pass;
        ZoMemory zm;
        ASSERT_EQ(zo_memory(model.view(), p.req(), Span<const TrainLayer>(layers), mom, Span<ZoLayerMemory>(per), &zm),
                  Status::kOk);
        size_t mom_extra = 0;
        for (const ZoLayerMemory& l : per) mom_extra += l.momentum_bytes;
        EXPECT_EQ(mom_extra, 4u * 19120);
        EXPECT_EQ(zm.persistent_bytes - (one_pass ? zp : z).persistent_bytes, mom_extra);
        size_t mom_bytes = 0;
        ASSERT_EQ(ZoTrainer::required_arena_bytes(engine, Span<const TrainLayer>(layers), zo_trainer_config(mom), arena,
                                                  &mom_bytes),
                  Status::kOk);
        ASSERT_EQ(zo_place_workspace(p.req(), offs, 13, &zm), Status::kOk);
        EXPECT_EQ(mom_bytes, zm.extra_bytes) << r.name << ": momentum, one layer per pass " << one_pass;
      }
    }
    std::printf("[ INFO     ] %s paper set: engine %zu + trainer %zu = %zu bytes (accounting %zu)\n", r.name,
                engine.arena_bytes(), trainer, engine.arena_bytes() + trainer, p.mem.activation_bytes + z.extra_bytes);
  }
}

TEST(MemoryModel, BiasOnlyTrainerByteForByte) {
  // ZoConfig::bias_only keeps per layer the biases (perturbed in place) and
  // a float db accumulator (with momentum one more float per bias), plus the
  // sample's Q_b coefficients: no weight copy, no workspace.
  TinyTrainerAccounting a;
  for (const float momentum : {0.f, 0.9f}) {
    ZoConfig cfg;
    cfg.bias_only = true;
    cfg.estimation = Estimation::kModelWise;
    cfg.n_queries_b = 13;
    cfg.momentum = momentum;
    ZoSettings s;
    s.n_queries_b = 13;
    s.bias_only = true;
    s.momentum = momentum;
    const std::vector<TrainLayer> layers = {{1, PerturbMode::kWeight}, {3, PerturbMode::kNode}};
    std::vector<ZoLayerMemory> per;
    const ZoMemory z = a.accounting(layers, s, &per);
    EXPECT_EQ(z.extra_bytes, a.trainer_bytes(layers, cfg)) << momentum;  // the accounting is the trainer
    EXPECT_EQ(z.workspace_bytes, 0u);
    EXPECT_EQ(z.bias_coef_bytes, 64u);  // 13 floats, rounded up to 16 bytes
    for (const ZoLayerMemory& l : per) {
      EXPECT_EQ(l.weight_bytes, 0u);
      const size_t b = (l.n_bias * 4 + 15) / 16 * 16;
      EXPECT_EQ(l.persistent_bytes(), l.record_bytes + b * (momentum > 0.f ? 3 : 2)) << l.op;
    }
  }
}


}  // namespace
}  // namespace tinyzo
