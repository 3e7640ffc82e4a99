// The trained weights of one or more ZoTrainers (their trainable int8 weights
// and int32 biases) as the payload of a SlotStore record (slot_store.h), and
// the divergence guard that decides when to save them and when to go back to
// them. Device-safe: no heap; weights stream between the trainers' arena
// copies and flash through a small stack buffer.
//
// Payload (little-endian): u32 kWeightsMagic, u32 n_layers, n_layers x
// {i32 op, u32 mode (PerturbMode), u32 d_w, u32 c_out}, then per layer int8
// weights[d_w] zero-padded to a multiple of 4, int32 biases[c_out]. Layers in
// trainer order (each trainer's layers sorted by op), as fw::LayerRecord.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/slot_store.h"
#include "tinyzo/status.h"
#include "tinyzo/train/zo_trainer.h"

namespace tinyzo {

constexpr uint32_t kWeightsMagic = 0x50575A54u;  // "TZWP"

// Payload bytes of the trainers' layers.
uint32_t weights_payload_bytes(const ZoTrainer* const* trainers, int groups);

// CRC-32 of the trainers' current weights and biases, layer by layer (weights,
// then biases; no padding): a fingerprint for reports and tests.
uint32_t weights_crc32(const ZoTrainer* const* trainers, int groups);

// Writes the trainers' weights as a new record (begin_write, append, commit
// with `meta`). On any error the store's previous newest record stays the
// newest. kOutOfRange when they do not fit a slot.
Status save_weights(SlotStore& store, const ZoTrainer* const* trainers, int groups, const uint32_t meta[3]);

// Copies the record in `slot` (one scan() found valid) into the trainers'
// weights. All or nothing: the layer table must match the trainers (same ops,
// modes and sizes: else kCorruptData) and the payload's CRC is checked again
// before the first weight is touched, so on any error the weights are as they
// were.
Status load_weights(const SlotStore& store, int slot, ZoTrainer* const* trainers, int groups);

// Watches the validation loss of a run (METHOD: the paper keeps the best
// validation checkpoint) and says what to do with the persisted weights:
//   - kSaveBest: the first finite loss, and every loss below the best so far:
//     it becomes the best; persist the current weights.
//   - kRestoreBest: a loss above best + margin, or a non-finite loss (the run
//     diverged): go back to the persisted best weights. The best stays.
//   - kNone: anything else (including everything before there is a best).
// `margin` is in loss units (nats of the cross-entropy), >= 0; a negative
// margin turns restoring off (the guard then only tracks the best).
class DivergenceGuard {
 public:
  enum class Action : uint8_t { kNone = 0, kSaveBest = 1, kRestoreBest = 2 };

  explicit DivergenceGuard(float margin = -1.f) : margin_(margin) {}
  Action observe(float loss);
  // Starts from a best found earlier (a resumed run: the persisted record's loss).
  void set_best(float loss);
  bool has_best() const { return has_best_; }
  float best() const { return best_; }
  float margin() const { return margin_; }
  int n_restores() const { return n_restores_; }

 private:
  float margin_;
  float best_ = 0.f;
  bool has_best_ = false;
  int n_restores_ = 0;
};

}  // namespace tinyzo
