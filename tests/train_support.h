// Test support for the ZO trainer: an engine and trainer in their own arena, random int8 inputs,
// one training step over a batch (every pass of a one-layer-per-pass trainer included), and the
// trained state as one vector to compare runs bit for bit.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/model.h"
#include "tinyzo/train/zo_trainer.h"

namespace tinyzo {
namespace testing {

// n random int8 inputs of `size` bytes.
inline std::vector<std::vector<int8_t>> make_inputs(int n, size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-128, 127);
  std::vector<std::vector<int8_t>> v(n, std::vector<int8_t>(size));
  for (auto& img : v)
    for (auto& p : img) p = static_cast<int8_t>(d(rng));
  return v;
}

// An engine (reference kernels) on a model in its own arena and, given layers and a config, a
// trainer on it.
struct TrainRig {
  std::vector<uint8_t> mem;
  Arena arena;
  Engine engine;
  ZoTrainer trainer;
  explicit TrainRig(const ModelView& view, size_t arena_bytes = 1 << 20)
      : mem(arena_bytes), arena(mem.data(), mem.size()) {
    EXPECT_EQ(engine.init(view, arena, ref::table()), Status::kOk);
  }
  TrainRig(const ModelView& view, const std::vector<TrainLayer>& layers, const ZoConfig& cfg,
           size_t arena_bytes = 1 << 20)
      : TrainRig(view, arena_bytes) {
    EXPECT_EQ(init(trainer, layers, cfg), Status::kOk);
  }
  // Another trainer on the same engine and arena (what init returns is the test's to check).
  Status init(ZoTrainer& t, const std::vector<TrainLayer>& layers, const ZoConfig& cfg) {
    return t.init(engine, Span<const TrainLayer>(layers.data(), layers.size()), cfg, arena);
  }
  Status required_bytes(const std::vector<TrainLayer>& layers, const ZoConfig& cfg, size_t* bytes) {
    return ZoTrainer::required_arena_bytes(engine, Span<const TrainLayer>(layers.data(), layers.size()), cfg, arena,
                                           bytes);
  }
  std::vector<std::vector<int8_t>> inputs(int n, uint32_t seed) {
    return make_inputs(n, engine.input().size(), seed);
  }
};

// Streams `inputs` through step `step` of t, every pass of a one-layer-per-pass trainer included;
// sample i has label i % labels.
inline void accumulate_step(ZoTrainer& t, const std::vector<std::vector<int8_t>>& inputs, uint32_t step, float lr,
                     int labels = 4) {
  EXPECT_EQ(t.begin_step(step), Status::kOk);
  for (int p = 0; p < t.n_passes(); ++p) {
    if (p > 0) {
      EXPECT_EQ(t.next_pass(lr), Status::kOk);
    }
    for (size_t i = 0; i < inputs.size(); ++i)
      EXPECT_EQ(t.accumulate_sample(Span<const int8_t>(inputs[i].data(), inputs[i].size()), int(i) % labels),
                Status::kOk);
  }
}

// Layer l's estimate of the step being accumulated (ZoTrainer::gradient) with what its QAS update
// reads from the model: enough for a test to compute the expected update itself.
struct LayerEstimate {
  std::vector<float> gw, gb;
  const float* s_w = nullptr;  // per output channel
  float s_x = 0.f;             // the input's scale
  size_t per_ch = 1;           // weights per output channel
  const int8_t* w0 = nullptr;  // the model's weights and biases (what training started from)
  const int32_t* b0 = nullptr;
  // The QAS, round-to-nearest update of weight i from w by lr and the estimate g, and of bias o.
  int8_t qas_weight(size_t i, int8_t w, float lr, float g) const {
    return ZoTrainer::updated_weight(w, ZoTrainer::weight_step(lr, g, true, s_w[i / per_ch]),
                                     Rounding::kNearest, 0.f);
  }
  int32_t qas_bias(size_t o, int32_t b, float lr, float g) const {
    return ZoTrainer::updated_bias(b, ZoTrainer::bias_step(lr, g, true, s_x, s_w[o]), Rounding::kNearest,
                                   0.f);
  }
};
inline LayerEstimate layer_estimate(const ZoTrainer& t, const ModelView& m, int op, int l) {
  LayerEstimate e;
  e.gw.resize(t.weights(l).size());
  e.gb.resize(t.biases(l).size());
  EXPECT_EQ(t.gradient(l, Span<float>(e.gw.data(), e.gw.size()), Span<float>(e.gb.data(), e.gb.size())),
            Status::kOk);
  const TzmOp& o = m.op(op);
  e.s_w = m.channel_scales(o.inputs[1]);
  e.s_x = m.tensor(o.inputs[0]).scale;
  e.per_ch = e.gw.size() / e.gb.size();
  e.w0 = static_cast<const int8_t*>(m.data(o.inputs[1]));
  e.b0 = static_cast<const int32_t*>(m.data(o.inputs[2]));
  return e;
}

// One full step: accumulate_step, then end_step at lr.
inline void train_step(ZoTrainer& t, const std::vector<std::vector<int8_t>>& inputs, uint32_t step, float lr,
                int labels = 4) {
  accumulate_step(t, inputs, step, lr, labels);
  EXPECT_EQ(t.end_step(lr), Status::kOk);
}

// Everything training changes, in one vector: every layer's weights, biases
// and (with momentum) momentum buffers. double holds int32 and float exactly.
inline std::vector<double> trained_state(const ZoTrainer& t) {
  std::vector<double> v;
  for (int l = 0; l < t.n_layers(); ++l) {
    for (int8_t x : t.weights(l)) v.push_back(x);
    for (int32_t x : t.biases(l)) v.push_back(x);
    for (float x : t.momentum_w(l)) v.push_back(x);
    for (float x : t.momentum_b(l)) v.push_back(x);
  }
  return v;
}

}  // namespace testing
}  // namespace tinyzo
