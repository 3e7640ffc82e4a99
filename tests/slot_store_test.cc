// Tests of the power-safe slot store (tinyzo/slot_store.h) on the RAM flash
// backend (tinyzo/flash.h): the flash rules, A/B rotation, every torn-write
// prefix of a slot write (clean, half-written and garbage tears of the unit or
// block being worked on), corrupted CRCs, sequence wrap, tags, failing and
// lying flash. "Boot" is a fresh SlotStore over the same bytes, as after a
// reset.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "test_models.h"
#include "tinyzo/flash.h"
#include "tinyzo/model.h"
#include "tinyzo/slot_store.h"

namespace tinyzo {
namespace {

using testing::TestRng;

std::vector<uint8_t> pattern(size_t n, uint32_t gen) {
  std::vector<uint8_t> v(n);
  TestRng rng(gen);
  for (auto& b : v) b = uint8_t(rng.next() >> 56);
  return v;
}

// ------------------------------------------------------------------ RamFlash

TEST(RamFlash, EnforcesTheFlashRules) {
  std::vector<uint8_t> mem(1024, 0xFF);
  RamFlash ram;
  ASSERT_EQ(ram.init(Span<uint8_t>(mem.data(), mem.size()), 256, 8), Status::kOk);
  FlashDevice f = ram.device();
  EXPECT_EQ(f.geometry.size_bytes, 1024u);
  const uint8_t data[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  EXPECT_EQ(f.program(f.ctx, 8, data, 16), Status::kOk);
  EXPECT_EQ(f.program(f.ctx, 8, data, 8), Status::kInvalidArgument) << "programmed twice without an erase";
  EXPECT_EQ(f.program(f.ctx, 4, data, 8), Status::kInvalidArgument) << "misaligned offset";
  EXPECT_EQ(f.program(f.ctx, 32, data, 4), Status::kInvalidArgument) << "partial unit";
  EXPECT_EQ(f.program(f.ctx, 1024, data, 8), Status::kOutOfRange);
  EXPECT_EQ(f.program(f.ctx, 0xFFFFFFF8u, data, 16), Status::kOutOfRange) << "offset + n wraps";
  EXPECT_EQ(f.erase(f.ctx, 128, 256), Status::kInvalidArgument) << "misaligned erase";
  EXPECT_EQ(f.erase(f.ctx, 0, 100), Status::kInvalidArgument);
  EXPECT_EQ(f.erase(f.ctx, 768, 512), Status::kOutOfRange);
  uint8_t back[16];
  EXPECT_EQ(f.read(f.ctx, 8, back, 16), Status::kOk);
  EXPECT_EQ(std::memcmp(back, data, 16), 0);
  EXPECT_EQ(f.erase(f.ctx, 0, 256), Status::kOk);
  EXPECT_EQ(mem[8], 0xFF);
  EXPECT_EQ(f.program(f.ctx, 8, data, 8), Status::kOk) << "programmable again after the erase";
  EXPECT_EQ(f.read(f.ctx, 1020, back, 8), Status::kOutOfRange);
}

TEST(RamFlash, RejectsBadGeometry) {
  std::vector<uint8_t> mem(1000, 0xFF);
  RamFlash ram;
  EXPECT_EQ(ram.init(Span<uint8_t>(mem.data(), mem.size()), 256, 8), Status::kInvalidArgument) << "not whole blocks";
  EXPECT_EQ(ram.init(Span<uint8_t>(mem.data(), 768), 256, 12), Status::kInvalidArgument) << "unit not a power of two";
  EXPECT_EQ(ram.init(Span<uint8_t>(mem.data(), 768), 256, 512), Status::kInvalidArgument) << "unit above the block";
  EXPECT_EQ(ram.init(Span<uint8_t>(nullptr, 0), 256, 8), Status::kInvalidArgument);
}

// ------------------------------------------------------------------ a flash that loses power

// Wraps a RamFlash; every program unit and every erase block is one atomic
// operation. After `budget` operations the power goes: the operation in
// flight is torn as `tear` says and it and every later one fail.
class CutFlash {
 public:
  enum class Tear { kNone, kHalf, kGarbage };
  CutFlash(RamFlash& ram, long budget, Tear tear, uint64_t seed = 1)
      : ram_(ram), inner_(ram.device()), budget_(budget), tear_(tear), rng_(seed) {}

  FlashDevice device() {
    FlashDevice d = inner_;
    d.ctx = this;
    d.read = [](void* c, uint32_t o, void* out, uint32_t n) {
      auto& self = *static_cast<CutFlash*>(c);
      if (self.dead_) return Status::kIoError;
      return self.inner_.read(self.inner_.ctx, o, out, n);
    };
    d.program = [](void* c, uint32_t o, const void* data, uint32_t n) {
      auto& self = *static_cast<CutFlash*>(c);
      const uint32_t unit = self.inner_.geometry.program_bytes;
      if (o % unit || n % unit) return self.inner_.program(self.inner_.ctx, o, data, n);  // let it refuse
      for (uint32_t at = 0; at < n; at += unit) {
        if (self.dead_ || self.ops_ == self.budget_) return self.die(o + at, unit, static_cast<const uint8_t*>(data) + at);
        ++self.ops_;
        TZ_RETURN_IF_ERROR(self.inner_.program(self.inner_.ctx, o + at, static_cast<const uint8_t*>(data) + at, unit));
      }
      return Status::kOk;
    };
    d.erase = [](void* c, uint32_t o, uint32_t n) {
      auto& self = *static_cast<CutFlash*>(c);
      const uint32_t block = self.inner_.geometry.erase_bytes;
      if (o % block || n % block) return self.inner_.erase(self.inner_.ctx, o, n);
      for (uint32_t at = 0; at < n; at += block) {
        if (self.dead_ || self.ops_ == self.budget_) return self.die(o + at, block, nullptr);
        ++self.ops_;
        TZ_RETURN_IF_ERROR(self.inner_.erase(self.inner_.ctx, o + at, block));
      }
      return Status::kOk;
    };
    return d;
  }
  long ops() const { return ops_; }
  bool dead() const { return dead_; }

 private:
  // The operation on [o, o + n) is torn (data == nullptr: an erase).
  Status die(uint32_t o, uint32_t n, const uint8_t* data) {
    if (!dead_) {
      dead_ = true;
      uint8_t* p = ram_.memory().data() + o;
      if (tear_ == Tear::kHalf) {
        // The first half of the bytes made it (a program clears bits only).
        for (uint32_t i = 0; i < n / 2; ++i) p[i] = data ? uint8_t(p[i] & data[i]) : 0xFF;
        if (n == 1 && data) p[0] &= uint8_t(data[0] | 0xF0);  // half the bits of a 1-byte unit
      } else if (tear_ == Tear::kGarbage) {
        for (uint32_t i = 0; i < n; ++i) p[i] = uint8_t(rng_.next() >> 56);
      }
    }
    return Status::kIoError;
  }

  RamFlash& ram_;
  FlashDevice inner_;
  long budget_;
  Tear tear_;
  TestRng rng_;
  long ops_ = 0;
  bool dead_ = false;
};

// ------------------------------------------------------------------ helpers

struct Geometry {
  uint32_t erase_bytes, program_bytes, slot_bytes;
};

class Store {
 public:
  explicit Store(Geometry g, uint32_t tag = 0x1234u) : g_(g), tag_(tag), mem_(2 * g.slot_bytes + g.erase_bytes, 0xFF) {
    EXPECT_EQ(ram_.init(Span<uint8_t>(mem_.data(), mem_.size()), g.erase_bytes, g.program_bytes), Status::kOk);
  }
  // A fresh boot over the current bytes (base: one block in, so offsets are
  // not all zero-based).
  Status boot(SlotStore* s, FlashDevice dev) {
    TZ_RETURN_IF_ERROR(s->init(dev, g_.erase_bytes, g_.slot_bytes, tag_));
    return s->scan();
  }
  Status boot(SlotStore* s) { return boot(s, ram_.device()); }
  Status write(const std::vector<uint8_t>& payload, uint32_t meta0 = 0) {
    SlotStore s;
    TZ_RETURN_IF_ERROR(boot(&s));
    return write_with(s, payload, meta0);
  }
  static Status write_with(SlotStore& s, const std::vector<uint8_t>& payload, uint32_t meta0, size_t chunk = 7) {
    TZ_RETURN_IF_ERROR(s.begin_write());
    for (size_t at = 0; at < payload.size(); at += chunk)
      TZ_RETURN_IF_ERROR(s.append(payload.data() + at, uint32_t(std::min(chunk, payload.size() - at))));
    const uint32_t meta[3] = {meta0, meta0 + 1, ~meta0};
    return s.commit(meta);
  }
  // The payload boot takes, or {} with *found false.
  std::vector<uint8_t> newest(bool* found, uint32_t* seq = nullptr) {
    SlotStore s;
    EXPECT_EQ(boot(&s), Status::kOk);
    *found = s.newest() >= 0;
    if (!*found) return {};
    const SlotInfo& i = s.info(s.newest());
    if (seq) *seq = i.sequence;
    std::vector<uint8_t> out(i.payload_bytes);
    EXPECT_EQ(s.read_payload(s.newest(), 0, out.data(), uint32_t(out.size())), Status::kOk);
    return out;
  }
  RamFlash& ram() { return ram_; }
  std::vector<uint8_t>& mem() { return mem_; }
  const Geometry& geometry() const { return g_; }
  uint32_t slot_offset(int slot) const { return g_.erase_bytes + uint32_t(slot) * g_.slot_bytes; }

 private:
  Geometry g_;
  uint32_t tag_;
  std::vector<uint8_t> mem_;
  RamFlash ram_;
};

const Geometry kGeometries[] = {
    {256, 8, 1280},    // small sectors, 64-bit units (an STM32L4-like double word)
    {512, 1, 1024},    // byte-programmable (STM32F4/F7)
    {1024, 32, 2048},  // 256-bit flash words (STM32H7)
    {128, 64, 512},    // the largest unit the store takes
    {4096, 16, 8192},  // QSPI NOR subsectors
};

// ------------------------------------------------------------------ basics

TEST(SlotStore, RotatesBetweenTheSlots) {
  Store st({256, 8, 1280});
  bool found = true;
  EXPECT_TRUE(st.newest(&found).empty());
  EXPECT_FALSE(found) << "an erased part holds no record";
  for (uint32_t gen = 1; gen <= 5; ++gen) {
    const std::vector<uint8_t> p = pattern(300 + gen * 37, gen);
    ASSERT_EQ(st.write(p, gen), Status::kOk) << "write " << gen;
    SlotStore s;
    ASSERT_EQ(st.boot(&s), Status::kOk);
    EXPECT_EQ(s.newest(), int((gen - 1) % 2)) << "A, B, A, ...";
    EXPECT_EQ(s.info(s.newest()).sequence, gen);
    EXPECT_EQ(s.info(s.newest()).meta[0], gen);
    EXPECT_EQ(s.info(s.newest()).meta[2], ~gen);
    if (gen > 1) {
      EXPECT_TRUE(s.info(1 - s.newest()).valid) << "the previous record survives";
      EXPECT_EQ(s.info(1 - s.newest()).sequence, gen - 1);
    }
    uint32_t seq = 0;
    EXPECT_EQ(st.newest(&found, &seq), p);
    EXPECT_EQ(seq, gen);
  }
}

TEST(SlotStore, InitChecksTheLayout) {
  std::vector<uint8_t> mem(4096, 0xFF);
  RamFlash ram;
  ASSERT_EQ(ram.init(Span<uint8_t>(mem.data(), mem.size()), 256, 8), Status::kOk);
  SlotStore s;
  EXPECT_EQ(s.init(ram.device(), 0, 1024, 1), Status::kOk);
  EXPECT_EQ(s.payload_capacity(), 1024u - 40u);
  EXPECT_EQ(s.init(ram.device(), 0, 1000, 1), Status::kInvalidArgument) << "slot not whole blocks";
  EXPECT_EQ(s.init(ram.device(), 100, 1024, 1), Status::kInvalidArgument) << "base not on a block";
  EXPECT_EQ(s.init(ram.device(), 2048, 2048, 1), Status::kOutOfRange) << "B past the end";
  EXPECT_EQ(s.begin_write(), Status::kInvalidArgument) << "a failed init leaves nothing usable";
  FlashDevice no_ops = ram.device();
  no_ops.erase = nullptr;
  EXPECT_EQ(s.init(no_ops, 0, 1024, 1), Status::kInvalidArgument);
  std::vector<uint8_t> big(8192, 0xFF);
  RamFlash wide;
  ASSERT_EQ(wide.init(Span<uint8_t>(big.data(), big.size()), 1024, 128), Status::kOk);
  EXPECT_EQ(s.init(wide.device(), 0, 1024, 1), Status::kInvalidArgument) << "unit above kMaxProgramBytes";
  std::vector<uint8_t> tiny(512, 0xFF);
  RamFlash small;
  ASSERT_EQ(small.init(Span<uint8_t>(tiny.data(), tiny.size()), 64, 64), Status::kOk);
  EXPECT_EQ(s.init(small.device(), 0, 64, 1), Status::kInvalidArgument) << "no room for header + one unit";
}

TEST(SlotStore, WritesOnlyAfterAScan) {
  Store st({256, 8, 1280});
  ASSERT_EQ(st.write(pattern(50, 1)), Status::kOk);  // A
  ASSERT_EQ(st.write(pattern(50, 2)), Status::kOk);  // B, newest
  SlotStore s;
  ASSERT_EQ(s.init(st.ram().device(), 256, 1280, 0x1234u), Status::kOk);
  EXPECT_EQ(s.begin_write(), Status::kInvalidArgument) << "it does not know B is the newest yet";
  FlashDevice broken = st.ram().device();
  broken.read = [](void*, uint32_t, void*, uint32_t) { return Status::kIoError; };
  ASSERT_EQ(s.init(broken, 256, 1280, 0x1234u), Status::kOk);
  EXPECT_EQ(s.scan(), Status::kIoError);
  EXPECT_EQ(s.begin_write(), Status::kInvalidArgument) << "nor after a failed scan";
  bool found = false;
  EXPECT_EQ(st.newest(&found), pattern(50, 2));
}

TEST(SlotStore, EmptyAndFullPayloads) {
  Store st({256, 8, 1280});
  ASSERT_EQ(st.write({}), Status::kOk);
  bool found = false;
  EXPECT_TRUE(st.newest(&found).empty());
  EXPECT_TRUE(found) << "an empty payload is a valid record";
  SlotStore s;
  ASSERT_EQ(st.boot(&s), Status::kOk);
  const std::vector<uint8_t> full = pattern(s.payload_capacity(), 3);
  ASSERT_EQ(Store::write_with(s, full, 9), Status::kOk);
  EXPECT_EQ(st.newest(&found), full);
}

TEST(SlotStore, PayloadTooLargeKeepsTheOldRecord) {
  Store st({256, 8, 1280});
  const std::vector<uint8_t> old = pattern(500, 1);
  ASSERT_EQ(st.write(old), Status::kOk);
  SlotStore s;
  ASSERT_EQ(st.boot(&s), Status::kOk);
  ASSERT_EQ(s.begin_write(), Status::kOk);
  const std::vector<uint8_t> big = pattern(s.payload_capacity() + 1, 2);
  EXPECT_EQ(s.append(big.data(), uint32_t(big.size())), Status::kOutOfRange);
  const uint32_t meta[3] = {0, 0, 0};
  EXPECT_EQ(s.commit(meta), Status::kInvalidArgument) << "the write was abandoned";
  EXPECT_EQ(s.append(big.data(), 1), Status::kInvalidArgument);
  bool found = false;
  EXPECT_EQ(st.newest(&found), old);
  ASSERT_EQ(Store::write_with(s, pattern(20, 3), 1), Status::kOk) << "a new begin_write retries";
  EXPECT_EQ(st.newest(&found), pattern(20, 3));
}

TEST(SlotStore, ReadPayloadBounds) {
  Store st({256, 8, 1280});
  ASSERT_EQ(st.write(pattern(100, 1)), Status::kOk);
  SlotStore s;
  ASSERT_EQ(st.boot(&s), Status::kOk);
  uint8_t b[8];
  EXPECT_EQ(s.read_payload(0, 96, b, 4), Status::kOk);
  EXPECT_EQ(s.read_payload(0, 97, b, 4), Status::kOutOfRange);
  EXPECT_EQ(s.read_payload(0, 0xFFFFFFFFu, b, 2), Status::kOutOfRange);
  EXPECT_EQ(s.read_payload(1, 0, b, 1), Status::kInvalidArgument) << "B holds nothing";
  EXPECT_EQ(s.read_payload(2, 0, b, 1), Status::kInvalidArgument);
  EXPECT_EQ(s.read_payload(-1, 0, b, 1), Status::kInvalidArgument);
}

// ------------------------------------------------------------------ torn writes

// Every prefix of a slot write, for every geometry, starting from 0, 1 and 2
// records, with each kind of tear: boot must find the old record or the new
// one, intact, never anything else; and a write after the recovery must work.
TEST(SlotStore, EveryTornWritePrefixGivesOldOrNew) {
  int cuts = 0, olds = 0, news = 0;
  for (const Geometry& g : kGeometries) {
    for (int before = 0; before <= 2; ++before) {
      for (CutFlash::Tear tear : {CutFlash::Tear::kNone, CutFlash::Tear::kHalf, CutFlash::Tear::kGarbage}) {
        Store base(g);
        std::vector<uint8_t> old;
        for (int k = 1; k <= before; ++k) {
          old = pattern(g.slot_bytes / 2 + uint32_t(k) * 13, uint32_t(k));
          ASSERT_EQ(base.write(old, uint32_t(k)), Status::kOk);
        }
        const std::vector<uint8_t> next = pattern(g.slot_bytes / 2 + 77, 100);
        // The operations of an uncut write.
        long total = 0;
        {
          Store probe = base;
          ASSERT_EQ(probe.ram().init(Span<uint8_t>(probe.mem().data(), probe.mem().size()), g.erase_bytes,
                                     g.program_bytes),
                    Status::kOk);
          CutFlash never(probe.ram(), -1, CutFlash::Tear::kNone);
          SlotStore s;
          ASSERT_EQ(probe.boot(&s, never.device()), Status::kOk);
          ASSERT_EQ(Store::write_with(s, next, 7), Status::kOk);
          total = never.ops();
        }
        ASSERT_GT(total, 2);
        for (long cut = 0; cut <= total; ++cut) {
          SCOPED_TRACE("erase " + std::to_string(g.erase_bytes) + " unit " + std::to_string(g.program_bytes) +
                       ", " + std::to_string(before) + " records, tear " + std::to_string(int(tear)) + ", cut after " +
                       std::to_string(cut) + " of " + std::to_string(total) + " ops");
          Store st = base;
          ASSERT_EQ(st.ram().init(Span<uint8_t>(st.mem().data(), st.mem().size()), g.erase_bytes, g.program_bytes),
                    Status::kOk);
          CutFlash power(st.ram(), cut, tear, uint64_t(cut) * 31 + 7);
          SlotStore s;
          ASSERT_EQ(st.boot(&s, power.device()), Status::kOk);
          const Status w = Store::write_with(s, next, 7);
          EXPECT_EQ(w == Status::kOk, cut == total) << status_name(w);
          // Reset: boot on the bare flash.
          bool found = false;
          uint32_t seq = 0;
          const std::vector<uint8_t> got = st.newest(&found, &seq);
          ++cuts;
          if (found && got == next) {
            ++news;
            EXPECT_EQ(seq, uint32_t(before + 1));
          } else if (before > 0 && found && got == old) {
            ++olds;
            EXPECT_EQ(seq, uint32_t(before));
          } else if (before == 0 && !found) {
            ++olds;
          } else {
            ADD_FAILURE() << "boot found " << (found ? "a record that is neither old nor new" : "no record");
          }
          // The header is the commit: the new record cannot appear before its program starts.
          const long header_ops = long((40 + g.program_bytes - 1) / g.program_bytes);
          if (cut < total - header_ops) {
            EXPECT_FALSE(found && got == next) << "the new record appeared before its commit";
          }
          // The store recovers: a complete write after the cut is the newest.
          const std::vector<uint8_t> after = pattern(40, 200);
          ASSERT_EQ(st.write(after, 8), Status::kOk);
          EXPECT_EQ(st.newest(&found), after);
        }
      }
    }
  }
  std::printf("torn writes: %d cuts, %d old, %d new, 0 mixed\n", cuts, olds, news);
  EXPECT_GT(olds, 0);
  EXPECT_GT(news, 0);
}

// ------------------------------------------------------------------ corruption

TEST(SlotStore, AnyFlippedBitInvalidatesTheSlot) {
  Store st({256, 8, 1280});
  const std::vector<uint8_t> a = pattern(200, 1), b = pattern(180, 2);
  ASSERT_EQ(st.write(a), Status::kOk);
  ASSERT_EQ(st.write(b), Status::kOk);  // B newest
  const std::vector<uint8_t> clean = st.mem();
  const uint32_t b_at = st.slot_offset(1);
  const uint32_t header_area = 40;  // the unit (8) divides the header size
  // Every bit of B's header and payload.
  for (uint32_t byte = 0; byte < header_area + uint32_t(b.size()); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      st.mem() = clean;
      st.mem()[b_at + byte] ^= uint8_t(1u << bit);
      bool found = false;
      ASSERT_EQ(st.newest(&found), a) << "flip of bit " << bit << " of byte " << byte << " of B";
    }
  }
  // A damaged older record does not hide the newest.
  st.mem() = clean;
  st.mem()[st.slot_offset(0) + 50] ^= 0x10;
  bool found = false;
  EXPECT_EQ(st.newest(&found), b);
  // Both damaged: nothing.
  st.mem()[b_at + 60] ^= 0x01;
  EXPECT_TRUE(st.newest(&found).empty());
  EXPECT_FALSE(found);
}

TEST(SlotStore, HeaderFieldsAreChecked) {
  Store st({256, 8, 1280});
  ASSERT_EQ(st.write(pattern(64, 1)), Status::kOk);
  const std::vector<uint8_t> clean = st.mem();
  const uint32_t at = st.slot_offset(0);
  auto with_header = [&](auto edit) {
    st.mem() = clean;
    SlotHeader h;
    std::memcpy(&h, st.mem().data() + at, sizeof h);
    edit(h);
    h.header_crc32 = slot_header_crc32(h);  // a consistent header, wrong field
    std::memcpy(st.mem().data() + at, &h, sizeof h);
    bool found = true;
    st.newest(&found);
    return found;
  };
  EXPECT_TRUE(with_header([](SlotHeader&) {})) << "control: the re-signed header is valid";
  EXPECT_FALSE(with_header([](SlotHeader& h) { h.magic ^= 1; }));
  EXPECT_FALSE(with_header([](SlotHeader& h) { h.version = 2; }));
  EXPECT_FALSE(with_header([](SlotHeader& h) { h.header_bytes = 44; }));
  EXPECT_FALSE(with_header([](SlotHeader& h) { h.tag = 0x9999; })) << "a record for something else";
  EXPECT_FALSE(with_header([](SlotHeader& h) { h.payload_bytes = 1280; })) << "longer than the slot";
  EXPECT_FALSE(with_header([](SlotHeader& h) { h.payload_bytes = 0xFFFFFFFFu; }));
  EXPECT_FALSE(with_header([](SlotHeader& h) { h.payload_bytes = 63; })) << "the payload CRC no longer holds";
}

TEST(SlotStore, OtherTagsAreInvisibleAndOverwritten) {
  Store mine({256, 8, 1280}, 0xAAAA);
  ASSERT_EQ(mine.write(pattern(90, 1)), Status::kOk);
  Store other({256, 8, 1280}, 0xBBBB);
  other.mem() = mine.mem();
  bool found = true;
  other.newest(&found);
  EXPECT_FALSE(found) << "a record with another tag is not this store's";
  ASSERT_EQ(other.write(pattern(10, 2)), Status::kOk);
  ASSERT_EQ(other.write(pattern(11, 3)), Status::kOk);
  EXPECT_EQ(other.newest(&found), pattern(11, 3));
}

// ------------------------------------------------------------------ sequence numbers

// Writes a record with a chosen sequence number straight into the flash bytes.
void forge(Store& st, int slot, uint32_t seq, const std::vector<uint8_t>& payload, uint32_t tag = 0x1234u) {
  std::vector<uint8_t>& mem = st.mem();
  const uint32_t at = st.slot_offset(slot);
  std::fill(mem.begin() + at, mem.begin() + at + st.geometry().slot_bytes, 0xFF);
  SlotHeader h{};
  h.magic = kSlotMagic;
  h.version = kSlotVersion;
  h.header_bytes = sizeof(SlotHeader);
  h.sequence = seq;
  h.payload_bytes = uint32_t(payload.size());
  h.payload_crc32 = crc32_update(0, payload.data(), payload.size());
  h.tag = tag;
  h.header_crc32 = slot_header_crc32(h);
  std::memcpy(mem.data() + at, &h, sizeof h);
  std::memcpy(mem.data() + at + 40, payload.data(), payload.size());
}

TEST(SlotStore, SequenceWraps) {
  Store st({256, 8, 1280});
  forge(st, 0, 0xFFFFFFFEu, pattern(30, 1));
  forge(st, 1, 0xFFFFFFFFu, pattern(30, 2));
  bool found = false;
  uint32_t seq = 0;
  EXPECT_EQ(st.newest(&found, &seq), pattern(30, 2));
  EXPECT_EQ(seq, 0xFFFFFFFFu);
  // The next write goes to A (the older) with sequence 0, which is newer than 0xFFFFFFFF.
  ASSERT_EQ(st.write(pattern(30, 3)), Status::kOk);
  EXPECT_EQ(st.newest(&found, &seq), pattern(30, 3));
  EXPECT_EQ(seq, 0u);
  ASSERT_EQ(st.write(pattern(30, 4)), Status::kOk);
  EXPECT_EQ(st.newest(&found, &seq), pattern(30, 4));
  EXPECT_EQ(seq, 1u);
  SlotStore s;
  ASSERT_EQ(st.boot(&s), Status::kOk);
  EXPECT_EQ(s.newest(), 1);
  EXPECT_EQ(s.info(0).sequence, 0u);
  // The edges of serial-number order: ahead by up to 2^31 - 1 is newer; at
  // exactly 2^31 neither is ahead and A wins (two writes never get there).
  forge(st, 0, 0xFFFFFFFFu, pattern(30, 5));
  forge(st, 1, 0x7FFFFFFEu, pattern(30, 6));
  EXPECT_EQ(st.newest(&found, &seq), pattern(30, 6));
  forge(st, 1, 0x7FFFFFFFu, pattern(30, 6));
  EXPECT_EQ(st.newest(&found, &seq), pattern(30, 5));
  forge(st, 1, 0x80000000u, pattern(30, 6));
  EXPECT_EQ(st.newest(&found, &seq), pattern(30, 5));
}

TEST(SlotStore, EqualSequencesPickA) {
  Store st({256, 8, 1280});
  forge(st, 0, 5, pattern(30, 1));
  forge(st, 1, 5, pattern(30, 2));
  bool found = false;
  EXPECT_EQ(st.newest(&found), pattern(30, 1));
  ASSERT_EQ(st.write(pattern(30, 3)), Status::kOk);
  uint32_t seq = 0;
  EXPECT_EQ(st.newest(&found, &seq), pattern(30, 3));
  EXPECT_EQ(seq, 6u);
}

// ------------------------------------------------------------------ failing flash

TEST(SlotStore, AFlashThatDropsProgramsIsCaughtByTheReadBack) {
  Store st({256, 8, 1280});
  const std::vector<uint8_t> old = pattern(100, 1);
  ASSERT_EQ(st.write(old), Status::kOk);
  FlashDevice liar = st.ram().device();
  liar.program = [](void*, uint32_t, const void*, uint32_t) { return Status::kOk; };  // says ok, writes nothing
  SlotStore s;
  ASSERT_EQ(st.boot(&s, liar), Status::kOk);
  EXPECT_EQ(Store::write_with(s, pattern(100, 2), 1), Status::kIoError);
  EXPECT_EQ(s.newest(), 0) << "the store still points at the old record";
  bool found = false;
  EXPECT_EQ(st.newest(&found), old);
}

TEST(SlotStore, FlashErrorsPropagate) {
  Store st({256, 8, 1280});
  ASSERT_EQ(st.write(pattern(100, 1)), Status::kOk);
  FlashDevice broken = st.ram().device();
  broken.read = [](void*, uint32_t, void*, uint32_t) { return Status::kIoError; };
  SlotStore s;
  EXPECT_EQ(st.boot(&s, broken), Status::kIoError);
  EXPECT_EQ(s.newest(), -1);
  SlotStore fresh;
  EXPECT_EQ(fresh.scan(), Status::kInvalidArgument) << "scan before init";
}

}  // namespace
}  // namespace tinyzo
