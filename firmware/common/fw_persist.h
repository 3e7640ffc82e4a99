// Power-safe weights for a `train` run (docs/mcu.md, "Power-safe weights"):
// the options, the boot restore, the validation loss and the divergence guard,
// shared like fw_protocol.h by the firmware and the host reference
// (`tinyzo fw-ref train`), so both run the same decisions and write the same
// slot-store bytes.
//
// With store=PATH the run keeps its best weights in the A/B slots of a
// SlotStore (tinyzo/slot_store.h) on a flash-like device of kStoreEraseBytes
// erase blocks and kStoreProgramBytes program units (the firmware: a host file
// through semihosting; the host: the same file layout). At start it restores
// the newest valid slot, if any (a rebooted device continues from its last
// saved weights). With val=FIRST:N it computes the mean loss of stream
// records [FIRST, FIRST + N) before training and every val_every steps; a
// loss below the best so far is saved as a new record, and with margin=X a
// loss above best + X (or a non-finite one) restores the best record
// (DivergenceGuard).
//
// Device-safe: no heap, no exceptions, no stdio.
#pragma once
#include <cstdint>
#include <cstring>

#include "fw_protocol.h"
#include "tinyzo/slot_store.h"
#include "tinyzo/train/weight_slots.h"

namespace tinyzo::fw {

// The store's flash geometry (firmware/src/host_flash.h emulates it).
constexpr uint32_t kStoreEraseBytes = 4096;
constexpr uint32_t kStoreProgramBytes = 8;

struct PersistConfig {
  char store[kMaxSpecChars] = "";  // the slots' host file (at most 95 characters); "" = no persistence
  uint32_t slot_kb = 32;           // bytes per slot / 1024, a multiple of 4 (whole erase blocks)
  uint32_t val_first = 0;          // validation records [val_first, val_first + val_n) of the stream
  uint32_t val_n = 0;              // 0 = no validation
  uint32_t val_every = 1;          // steps between validations
  float margin = -1.f;             // divergence margin in loss units; < 0 = never restore
};

inline uint32_t store_bytes(const PersistConfig& p) { return 2u * p.slot_kb * 1024u; }
// The store's tag: the model's CRC-32, so weights of another model are never restored.
inline uint32_t store_tag(const ModelView& m) { return m.header().crc32; }

// Applies one persistence token: store=PATH, slot_kb=N (4..1024, a multiple
// of 4), val=FIRST:N (N >= 1), val_every=N (>= 1), margin=X (>= 0) or
// margin=off. False for anything else (then try apply_token()).
inline bool apply_persist_token(PersistConfig* p, const char* token) {
  const char* eq = std::strchr(token, '=');
  if (eq == nullptr) return false;
  const size_t klen = size_t(eq - token);
  const char* v = eq + 1;
  auto is = [&](const char* k) { return std::strlen(k) == klen && std::strncmp(token, k, klen) == 0; };
  int32_t i = 0;
  if (is("store")) {
    if (*v == 0 || std::strlen(v) + 1 > sizeof p->store) return false;
    std::memset(p->store, 0, sizeof p->store);
    std::memcpy(p->store, v, std::strlen(v));
    return true;
  }
  if (is("slot_kb")) {
    if (!detail::parse_i32(v, 4, 1024, &i) || i % 4 != 0) return false;
    p->slot_kb = uint32_t(i);
    return true;
  }
  if (is("val")) {
    const char* colon = std::strchr(v, ':');
    char first[16];
    if (colon == nullptr || size_t(colon - v) >= sizeof first) return false;
    std::memcpy(first, v, size_t(colon - v));
    first[colon - v] = 0;
    int32_t n = 0;
    if (!detail::parse_i32(first, 0, 0x7fffffff, &i) || !detail::parse_i32(colon + 1, 1, 1 << 20, &n)) return false;
    p->val_first = uint32_t(i);
    p->val_n = uint32_t(n);
    return true;
  }
  if (is("val_every")) {
    if (!detail::parse_i32(v, 1, 1 << 20, &i)) return false;
    p->val_every = uint32_t(i);
    return true;
  }
  if (is("margin")) {
    if (std::strcmp(v, "off") == 0) {
      p->margin = -1.f;
      return true;
    }
    float m = 0.f;
    if (!detail::parse_float(v, &m) || !(m >= 0.f) || m > 1e30f) return false;
    p->margin = m;
    return true;
  }
  return false;
}

inline float float_of_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline uint32_t bits_of_float(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Record metadata: meta[0] = steps done when saved, meta[1] = the validation
// loss's float bits, meta[2] = 0 (reserved).
inline void record_meta(uint32_t steps_done, float loss, uint32_t meta[3]) {
  meta[0] = steps_done;
  meta[1] = bits_of_float(loss);
  meta[2] = 0;
}

// What boot found.
struct BootReport {
  int slot = -1;          // the slot restored (0 = A, 1 = B), -1 none
  uint32_t sequence = 0;  // its sequence number
  uint32_t steps = 0;     // its meta: steps done, validation loss
  float loss = 0.f;
  Status restore = Status::kOk;  // load_weights' status when a slot was valid
};

// Scans the store and restores the newest valid record into the trainers (a
// record for other layers is left alone: report->restore says why and the
// trainers keep the model's weights). Errors only when the flash fails.
inline Status boot_weights(SlotStore& store, ZoTrainer* const* trainers, int groups, BootReport* report) {
  *report = BootReport();
  TZ_RETURN_IF_ERROR(store.scan());
  const int slot = store.newest();
  if (slot < 0) return Status::kOk;
  report->restore = load_weights(store, slot, trainers, groups);
  if (report->restore != Status::kOk) return report->restore == Status::kIoError ? Status::kIoError : Status::kOk;
  report->slot = slot;
  report->sequence = store.info(slot).sequence;
  report->steps = store.info(slot).meta[0];
  report->loss = float_of_bits(store.info(slot).meta[1]);
  return Status::kOk;
}

// The mean loss of the validation records (in record order; one forward
// each). `load(index, input, &label)` as in run_training, into engine.input().
template <class Load>
Status validation_loss(Engine& engine, ZoTrainer& trainer, const PersistConfig& p, uint32_t n_samples, Load&& load,
                       float* out) {
  if (p.val_n == 0 || n_samples == 0) return Status::kInvalidArgument;
  float sum = 0.f;
  for (uint32_t i = 0; i < p.val_n; ++i) {
    const uint32_t index = uint32_t((uint64_t(p.val_first) + i) % n_samples);
    int label = -1;
    TZ_RETURN_IF_ERROR(load(index, engine.input(), &label));
    float l = 0.f;
    TZ_RETURN_IF_ERROR(trainer.loss(Span<const int8_t>(engine.input().data(), engine.input().size()), label, &l));
    sum += l;
  }
  *out = sum / float(p.val_n);
  return Status::kOk;
}

// One validation result through the guard: saves a new best (when a store is
// open) or restores the best record. `store` may be nullptr (then nothing is
// saved or restored; the guard still tracks the best).
struct GuardEvent {
  DivergenceGuard::Action action = DivergenceGuard::Action::kNone;
  uint32_t sequence = 0;  // the record saved or restored
};
inline const char* action_name(DivergenceGuard::Action a) {
  return a == DivergenceGuard::Action::kSaveBest ? "save" : a == DivergenceGuard::Action::kRestoreBest ? "restore" : "none";
}
inline Status guard_step(SlotStore* store, DivergenceGuard& guard, ZoTrainer* const* trainers, int groups,
                         uint32_t steps_done, float val_loss, GuardEvent* ev) {
  *ev = GuardEvent();
  ev->action = guard.observe(val_loss);
  if (store == nullptr) return Status::kOk;
  if (ev->action == DivergenceGuard::Action::kSaveBest) {
    uint32_t meta[3];
    record_meta(steps_done, val_loss, meta);
    TZ_RETURN_IF_ERROR(save_weights(*store, trainers, groups, meta));
    ev->sequence = store->info(store->newest()).sequence;
  } else if (ev->action == DivergenceGuard::Action::kRestoreBest) {
    // Only bests are ever saved, so the newest record is the best.
    if (store->newest() < 0) return Status::kInternal;
    TZ_RETURN_IF_ERROR(load_weights(*store, store->newest(), trainers, groups));
    ev->sequence = store->info(store->newest()).sequence;
  }
  return Status::kOk;
}

}  // namespace tinyzo::fw
