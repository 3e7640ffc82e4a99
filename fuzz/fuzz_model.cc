// libFuzzer target: the .tzm model reader (ModelView::init) and, for every
// model it accepts, the engine (Engine::init + invoke) with every kernel table
// this machine runs, which must agree bit for bit with the ref kernels.
//
// The harness repairs the header's CRC-32 before validation (in a copy), so
// mutations reach the table, shape and parameter checks instead of dying at
// the checksum; a stale CRC is covered by the unit tests. Models whose arena
// or work exceeds small caps are validated but not run (a fuzzer must stay
// fast; size limits are the format's business, not the harness's).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/model.h"
#include "tinyzo/model_format.h"
#if defined(__x86_64__)
#include "tinyzo/kernels/x86.h"
#endif
#include "kernels/armv7em/armv7em.h"

namespace {

using namespace tinyzo;

constexpr size_t kArenaBytes = 1 << 20;  // per engine
constexpr uint64_t kMaxMacs = 1 << 20;   // per forward

alignas(64) uint8_t g_arena[kArenaBytes];

// The CRC field covers [header_size, size); repair it when the header says
// where that starts.
void repair_crc(uint8_t* b, size_t size) {
  if (size < sizeof(TzmHeader)) return;
  TzmHeader h;
  std::memcpy(&h, b, sizeof h);
  if (h.header_size < sizeof(TzmHeader) || h.header_size > size) return;
  h.crc32 = crc32_update(0, b + h.header_size, size - h.header_size);
  std::memcpy(b, &h, sizeof h);
}

// Runs the model with `kernels` on a fixed input; false when it could not run
// (then nothing is compared). The output bytes go to `out`, float outputs with
// every NaN as one canonical NaN: finite constants can still overflow to
// inf - inf, and a NaN's payload follows the operand order of one addition,
// which kernels need not share (every other value must match bit for bit).
bool run(const ModelView& m, const KernelTable& kernels, const uint8_t* seed, size_t seed_n,
         std::vector<uint8_t>* out) {
  Arena arena(g_arena, sizeof g_arena);
  Engine e;
  if (e.init(m, arena, kernels) != Status::kOk) return false;
  Span<int8_t> in = e.input();
  for (size_t i = 0; i < in.size(); ++i) in[i] = int8_t(seed_n ? seed[i % seed_n] ^ uint8_t(i * 131) : i);
  if (e.invoke() != Status::kOk) return false;
  const TzmTensor& t = e.output_info();
  if (t.dtype == uint8_t(DType::kFloat32)) {
    const Span<const float> y = e.output_f32();
    out->clear();
    for (float v : y) {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      if (v != v) bits = 0x7FC00000u;
      for (int k = 0; k < 4; ++k) out->push_back(uint8_t(bits >> (8 * k)));
    }
  } else {
    const Span<const int8_t> y = e.output_s8();
    out->assign(reinterpret_cast<const uint8_t*>(y.data()), reinterpret_cast<const uint8_t*>(y.data()) + y.size());
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An aligned copy, as a device would have the model in flash (ModelView
  // reads records in place).
  struct alignas(16) Block {
    uint8_t b[16];
  };
  std::vector<Block> blocks(size / 16 + 1);
  uint8_t* bytes = blocks.data()->b;
  if (size) std::memcpy(bytes, data, size);
  repair_crc(bytes, size);

  ModelView m;
  if (m.init(bytes, size) != Status::kOk) {
    if (m.error() == nullptr || m.error()[0] == 0) __builtin_trap();  // a rejection must say why
    return 0;
  }
  uint64_t macs = 0;
  for (int i = 0; i < m.n_ops(); ++i) macs += m.op_macs(i);
  if (macs > kMaxMacs) return 0;

  std::vector<uint8_t> want, got;
  if (!run(m, ref::table(), data, size, &want)) return 0;
  const KernelTable* others[] = {
#if defined(__x86_64__)
      &x86::portable_table(), &x86::avx2_table(), &x86::avx512vnni_table(),
#endif
      &armv7em::table()};
  for (const KernelTable* t : others) {
#if defined(__x86_64__)
    if (t != &armv7em::table() && !x86::table_supported(*t)) continue;
#endif
    // The same model that ran with ref must run with every table, to the same bits.
    if (!run(m, *t, data, size, &got) || got != want) __builtin_trap();
  }
  return 0;
}
