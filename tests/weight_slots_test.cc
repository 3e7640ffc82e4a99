// Tests of the trained-weights payload of the slot store and the divergence
// guard (tinyzo/train/weight_slots.h): round trip, all-or-nothing restore,
// every torn-write prefix of a weights save restores the old or the new
// weights bit for bit, and the guard's decisions.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "test_models.h"
#include "tinyzo/engine.h"
#include "tinyzo/flash.h"
#include "tinyzo/slot_store.h"
#include "tinyzo/train/weight_slots.h"
#include "tinyzo/train/zo_trainer.h"
#include "models/tzm_writer.h"

namespace tinyzo {
namespace {

// The tiny CNN of test_models.h with a trainer over conv0 (WP), pw2 (WP) and
// conv4 (NP): three layers, 592 weights and biases.
struct Net {
  explicit Net(std::vector<TrainLayer> layers = {{0, PerturbMode::kWeight}, {2, PerturbMode::kWeight},
                                                 {4, PerturbMode::kNode}})
      : cnn(testing::make_tiny_cnn()), bytes(cnn.builder.serialize()), memory(1 << 18) {
    EXPECT_EQ(view.init(bytes.data(), bytes.size()), Status::kOk);
    arena = Arena(memory.data(), memory.size());
    EXPECT_EQ(engine.init(view, arena, ref::table()), Status::kOk);
    ZoConfig cfg;
    cfg.n_queries_w = cfg.n_queries_b = cfg.n_queries_np = 2;
    EXPECT_EQ(trainer.init(engine, Span<const TrainLayer>(layers.data(), layers.size()), cfg, arena), Status::kOk);
  }
  ZoTrainer* const* group() { return &ptr; }
  const ZoTrainer* const* cgroup() const { return &cptr; }
  // Sets every trainable value from `gen`.
  void fill(uint32_t gen) {
    testing::TestRng rng(gen);
    for (int i = 0; i < trainer.n_layers(); ++i) {
      for (auto& w : trainer.weights(i)) w = int8_t(rng.next() >> 56);
      for (auto& b : trainer.biases(i)) b = int32_t(rng.next() >> 32);
    }
  }
  std::vector<uint8_t> snapshot() const {
    std::vector<uint8_t> out;
    for (int i = 0; i < trainer.n_layers(); ++i) {
      const auto w = trainer.weights(i);
      const auto b = trainer.biases(i);
      out.insert(out.end(), reinterpret_cast<const uint8_t*>(w.data()),
                 reinterpret_cast<const uint8_t*>(w.data()) + w.size());
      out.insert(out.end(), reinterpret_cast<const uint8_t*>(b.data()),
                 reinterpret_cast<const uint8_t*>(b.data()) + b.size_bytes());
    }
    return out;
  }

  testing::TinyCnn cnn;
  AlignedModelBytes bytes;
  ModelView view;
  std::vector<uint8_t> memory;
  Arena arena;
  Engine engine;
  ZoTrainer trainer;
  ZoTrainer* ptr = &trainer;
  const ZoTrainer* cptr = &trainer;
};

struct Flash {
  explicit Flash(uint32_t slot_bytes = 4096) : slot(slot_bytes), mem(2 * slot_bytes, 0xFF) {
    EXPECT_EQ(ram.init(Span<uint8_t>(mem.data(), mem.size()), 512, 8), Status::kOk);
  }
  Status boot(SlotStore* s, uint32_t tag = 77) {
    TZ_RETURN_IF_ERROR(s->init(ram.device(), 0, slot, tag));
    return s->scan();
  }
  uint32_t slot;
  std::vector<uint8_t> mem;
  RamFlash ram;
};

TEST(WeightSlots, SaveAndRestoreRoundTrip) {
  Net net;
  Flash flash;
  SlotStore store;
  ASSERT_EQ(flash.boot(&store), Status::kOk);
  const uint32_t bytes = weights_payload_bytes(net.cgroup(), 1);
  // 8 + 3 x 16 + conv0 (216 w + 8 b) + pw2 (64 w + 8 b) + conv4 (288 w + 8 b).
  EXPECT_EQ(bytes, 8u + 3u * 16u + 216u + 32u + 64u + 32u + 288u + 32u);
  net.fill(1);
  const std::vector<uint8_t> gen1 = net.snapshot();
  const uint32_t crc1 = weights_crc32(net.cgroup(), 1);
  const uint32_t meta[3] = {5, 0x3f800000u, 0};
  ASSERT_EQ(save_weights(store, net.cgroup(), 1, meta), Status::kOk);
  EXPECT_EQ(store.info(store.newest()).payload_bytes, bytes);
  net.fill(2);
  EXPECT_NE(net.snapshot(), gen1);
  SlotStore boot;
  ASSERT_EQ(flash.boot(&boot), Status::kOk);
  ASSERT_EQ(boot.newest(), 0);
  EXPECT_EQ(boot.info(0).meta[0], 5u);
  ASSERT_EQ(load_weights(boot, 0, net.group(), 1), Status::kOk);
  EXPECT_EQ(net.snapshot(), gen1);
  EXPECT_EQ(weights_crc32(net.cgroup(), 1), crc1);
}

TEST(WeightSlots, RestoreIsAllOrNothing) {
  Net net;
  Flash flash;
  SlotStore store;
  ASSERT_EQ(flash.boot(&store), Status::kOk);
  net.fill(1);
  ASSERT_EQ(save_weights(store, net.cgroup(), 1, nullptr), Status::kOk);

  // Other layers (another layer set of the same model): refused, weights untouched.
  Net other({{0, PerturbMode::kWeight}, {2, PerturbMode::kNode}, {4, PerturbMode::kNode}});
  other.fill(9);
  const std::vector<uint8_t> before = other.snapshot();
  EXPECT_EQ(load_weights(store, 0, other.group(), 1), Status::kCorruptData) << "pw2's mode differs";
  EXPECT_EQ(other.snapshot(), before);
  Net fewer({{0, PerturbMode::kWeight}, {2, PerturbMode::kWeight}});
  EXPECT_EQ(load_weights(store, 0, fewer.group(), 1), Status::kCorruptData);

  // A payload that changed after the boot scan (the CRC is checked again first).
  SlotStore boot;
  ASSERT_EQ(flash.boot(&boot), Status::kOk);
  flash.mem[40 + 200] ^= 0x01;  // inside the weights, after the layer table
  net.fill(3);
  const std::vector<uint8_t> gen3 = net.snapshot();
  EXPECT_EQ(load_weights(boot, 0, net.group(), 1), Status::kCorruptData);
  EXPECT_EQ(net.snapshot(), gen3);
  EXPECT_EQ(load_weights(boot, 1, net.group(), 1), Status::kInvalidArgument) << "B is empty";
  EXPECT_EQ(load_weights(boot, 0, net.group(), 0), Status::kInvalidArgument);
}

TEST(WeightSlots, TooLargeForTheSlot) {
  Net net;
  Flash flash(512);  // 472 payload bytes: the weights need 720
  SlotStore store;
  ASSERT_EQ(flash.boot(&store), Status::kOk);
  EXPECT_EQ(save_weights(store, net.cgroup(), 1, nullptr), Status::kOutOfRange);
  EXPECT_EQ(store.newest(), -1);
}

// A power cut after every flash operation of a weights save, with a clean
// tear (the operation did not happen) or a half-erased block / half-written
// unit: a boot restores the old weights or the new ones, bit for bit.
TEST(WeightSlots, EveryTornSaveRestoresOldOrNewWeights) {
  Net net;
  Flash base;
  {
    SlotStore s;
    ASSERT_EQ(base.boot(&s), Status::kOk);
    net.fill(1);
    ASSERT_EQ(save_weights(s, net.cgroup(), 1, nullptr), Status::kOk);
    net.fill(2);
    ASSERT_EQ(save_weights(s, net.cgroup(), 1, nullptr), Status::kOk);  // A: gen1, B: gen2 (the old)
  }
  const std::vector<uint8_t> old = net.snapshot();
  net.fill(3);
  const std::vector<uint8_t> next = net.snapshot();

  struct Counter {
    FlashDevice inner;
    long budget, ops = 0;
    bool half;
  };
  auto device = [](Counter& c) {
    FlashDevice d = c.inner;
    d.ctx = &c;
    d.read = [](void* p, uint32_t o, void* out, uint32_t n) {
      auto& c = *static_cast<Counter*>(p);
      return c.inner.read(c.inner.ctx, o, out, n);
    };
    d.program = [](void* p, uint32_t o, const void* data, uint32_t n) {
      auto& c = *static_cast<Counter*>(p);
      for (uint32_t at = 0; at < n; at += 8) {
        if (c.ops++ == c.budget) {
          if (c.half) {  // the first 4 bytes of the unit made it
            RamFlash* ram = static_cast<RamFlash*>(c.inner.ctx);
            std::memcpy(ram->memory().data() + o + at, static_cast<const uint8_t*>(data) + at, 4);
          }
          return Status::kIoError;
        }
        if (c.budget >= 0 && c.ops > c.budget) return Status::kIoError;
        TZ_RETURN_IF_ERROR(c.inner.program(c.inner.ctx, o + at, static_cast<const uint8_t*>(data) + at, 8));
      }
      return Status::kOk;
    };
    d.erase = [](void* p, uint32_t o, uint32_t n) {
      auto& c = *static_cast<Counter*>(p);
      for (uint32_t at = 0; at < n; at += 512) {
        if (c.ops++ == c.budget) {
          if (c.half) {
            RamFlash* ram = static_cast<RamFlash*>(c.inner.ctx);
            std::memset(ram->memory().data() + o + at, 0xFF, 256);
          }
          return Status::kIoError;
        }
        if (c.budget >= 0 && c.ops > c.budget) return Status::kIoError;
        TZ_RETURN_IF_ERROR(c.inner.erase(c.inner.ctx, o + at, 512));
      }
      return Status::kOk;
    };
    return d;
  };
  long total = 0;
  {
    Flash f = base;
    ASSERT_EQ(f.ram.init(Span<uint8_t>(f.mem.data(), f.mem.size()), 512, 8), Status::kOk);
    Counter c{f.ram.device(), -1, 0, false};
    SlotStore s;
    ASSERT_EQ(s.init(device(c), 0, f.slot, 77), Status::kOk);
    ASSERT_EQ(s.scan(), Status::kOk);
    ASSERT_EQ(save_weights(s, net.cgroup(), 1, nullptr), Status::kOk);
    total = c.ops;
  }
  int olds = 0, news = 0;
  for (bool half : {false, true}) {
    for (long cut = 0; cut <= total; ++cut) {
      SCOPED_TRACE("cut after " + std::to_string(cut) + " of " + std::to_string(total) + (half ? ", half" : ""));
      Flash f = base;
      ASSERT_EQ(f.ram.init(Span<uint8_t>(f.mem.data(), f.mem.size()), 512, 8), Status::kOk);
      Counter c{f.ram.device(), cut, 0, half};
      SlotStore s;
      ASSERT_EQ(s.init(device(c), 0, f.slot, 77), Status::kOk);
      ASSERT_EQ(s.scan(), Status::kOk);
      net.fill(3);
      EXPECT_EQ(save_weights(s, net.cgroup(), 1, nullptr) == Status::kOk, cut == total);
      // Reboot: the weights start as something else and come from the newest slot.
      net.fill(99);
      SlotStore boot;
      ASSERT_EQ(f.boot(&boot), Status::kOk);
      ASSERT_GE(boot.newest(), 0);
      ASSERT_EQ(load_weights(boot, boot.newest(), net.group(), 1), Status::kOk);
      const std::vector<uint8_t> got = net.snapshot();
      if (got == old) {
        ++olds;
      } else if (got == next) {
        ++news;
      } else {
        ADD_FAILURE() << "restored weights are neither the old nor the new ones";
      }
    }
  }
  EXPECT_EQ(news, 2) << "only the complete save shows the new weights";
  EXPECT_EQ(olds, 2 * int(total));
}

// ------------------------------------------------------------------ guard

using Action = DivergenceGuard::Action;

TEST(DivergenceGuard, SavesImprovementsAndRestoresOnDivergence) {
  DivergenceGuard g(0.25f);
  EXPECT_FALSE(g.has_best());
  EXPECT_EQ(g.observe(2.0f), Action::kSaveBest) << "the first loss is the best so far";
  EXPECT_EQ(g.observe(1.5f), Action::kSaveBest);
  EXPECT_EQ(g.observe(1.5f), Action::kNone) << "equal is not better";
  EXPECT_EQ(g.observe(1.75f), Action::kNone) << "within the margin";
  EXPECT_EQ(g.observe(1.7500001f), Action::kRestoreBest) << "above best + margin";
  EXPECT_EQ(g.best(), 1.5f) << "restoring keeps the best";
  EXPECT_EQ(g.observe(1.4f), Action::kSaveBest);
  EXPECT_EQ(g.observe(std::numeric_limits<float>::quiet_NaN()), Action::kRestoreBest) << "NaN diverged";
  EXPECT_EQ(g.observe(std::numeric_limits<float>::infinity()), Action::kRestoreBest);
  EXPECT_EQ(g.n_restores(), 3);
  EXPECT_EQ(g.best(), 1.4f);
}

TEST(DivergenceGuard, NothingToRestoreBeforeABest) {
  DivergenceGuard g(0.f);
  EXPECT_EQ(g.observe(std::numeric_limits<float>::quiet_NaN()), Action::kNone);
  EXPECT_FALSE(g.has_best());
  EXPECT_EQ(g.observe(3.f), Action::kSaveBest);
  EXPECT_EQ(g.observe(3.0000002f), Action::kRestoreBest) << "margin 0: any rise";
}

TEST(DivergenceGuard, NegativeMarginOnlyTracksTheBest) {
  DivergenceGuard g(-1.f);
  EXPECT_EQ(g.observe(1.f), Action::kSaveBest);
  EXPECT_EQ(g.observe(100.f), Action::kNone);
  EXPECT_EQ(g.observe(std::numeric_limits<float>::quiet_NaN()), Action::kNone);
  EXPECT_EQ(g.observe(0.5f), Action::kSaveBest);
  EXPECT_EQ(g.n_restores(), 0);
}

TEST(DivergenceGuard, ResumesFromAPersistedBest) {
  DivergenceGuard g(0.1f);
  g.set_best(std::numeric_limits<float>::quiet_NaN());
  EXPECT_FALSE(g.has_best()) << "a non-finite best is ignored";
  g.set_best(1.0f);
  EXPECT_EQ(g.observe(1.05f), Action::kNone);
  EXPECT_EQ(g.observe(1.2f), Action::kRestoreBest);
  EXPECT_EQ(g.observe(0.9f), Action::kSaveBest);
}

}  // namespace
}  // namespace tinyzo
