#include "tinyzo/train/weight_slots.h"

#include <cmath>
#include <cstring>

#include "tinyzo/model.h"  // crc32_update

namespace tinyzo {

namespace {

struct LayerEntry {
  int32_t op;
  uint32_t mode;
  uint32_t d_w;
  uint32_t c_out;
};
static_assert(sizeof(LayerEntry) == 16, "payload layer entry");

constexpr uint32_t kPad = 4;
uint32_t padded(size_t n) { return uint32_t((n + kPad - 1) / kPad * kPad); }

// Visits every layer of every trainer in payload order.
template <class Fn>
Status for_each_layer(const ZoTrainer* const* trainers, int groups, Fn&& fn) {
  for (int g = 0; g < groups; ++g)
    for (int i = 0; i < trainers[g]->n_layers(); ++i) TZ_RETURN_IF_ERROR(fn(*trainers[g], i));
  return Status::kOk;
}

LayerEntry entry_of(const ZoTrainer& t, int i) {
  return LayerEntry{int32_t(t.layer(i).op), uint32_t(t.layer(i).mode), uint32_t(t.weights(i).size()),
                    uint32_t(t.biases(i).size())};
}

}  // namespace

uint32_t weights_payload_bytes(const ZoTrainer* const* trainers, int groups) {
  uint64_t n = 8;
  (void)for_each_layer(trainers, groups, [&](const ZoTrainer& t, int i) {
    n += sizeof(LayerEntry) + padded(t.weights(i).size()) + t.biases(i).size_bytes();
    return Status::kOk;
  });
  return n > 0xFFFFFFFFu ? 0xFFFFFFFFu : uint32_t(n);
}

uint32_t weights_crc32(const ZoTrainer* const* trainers, int groups) {
  uint32_t crc = 0;
  (void)for_each_layer(trainers, groups, [&](const ZoTrainer& t, int i) {
    crc = crc32_update(crc, reinterpret_cast<const uint8_t*>(t.weights(i).data()), t.weights(i).size());
    crc = crc32_update(crc, reinterpret_cast<const uint8_t*>(t.biases(i).data()), t.biases(i).size_bytes());
    return Status::kOk;
  });
  return crc;
}

Status save_weights(SlotStore& store, const ZoTrainer* const* trainers, int groups, const uint32_t meta[3]) {
  if (groups < 1 || trainers == nullptr) return Status::kInvalidArgument;
  if (weights_payload_bytes(trainers, groups) > store.payload_capacity()) return Status::kOutOfRange;
  TZ_RETURN_IF_ERROR(store.begin_write());
  uint32_t n_layers = 0;
  for (int g = 0; g < groups; ++g) n_layers += uint32_t(trainers[g]->n_layers());
  const uint32_t head[2] = {kWeightsMagic, n_layers};
  TZ_RETURN_IF_ERROR(store.append(head, sizeof head));
  TZ_RETURN_IF_ERROR(for_each_layer(trainers, groups, [&](const ZoTrainer& t, int i) {
    const LayerEntry e = entry_of(t, i);
    return store.append(&e, sizeof e);
  }));
  TZ_RETURN_IF_ERROR(for_each_layer(trainers, groups, [&](const ZoTrainer& t, int i) {
    const Span<int8_t> w = t.weights(i);
    if (!w.empty()) TZ_RETURN_IF_ERROR(store.append(w.data(), uint32_t(w.size())));  // bias-only: none
    const uint8_t zeros[kPad] = {0, 0, 0, 0};
    TZ_RETURN_IF_ERROR(store.append(zeros, padded(w.size()) - uint32_t(w.size())));
    return store.append(t.biases(i).data(), uint32_t(t.biases(i).size_bytes()));
  }));
  return store.commit(meta);
}

Status load_weights(const SlotStore& store, int slot, ZoTrainer* const* trainers, int groups) {
  if (groups < 1 || trainers == nullptr || slot < 0 || slot >= SlotStore::kSlots || !store.info(slot).valid)
    return Status::kInvalidArgument;
  const ZoTrainer* const* ct = trainers;
  const SlotInfo& info = store.info(slot);
  if (info.payload_bytes != weights_payload_bytes(ct, groups)) return Status::kCorruptData;
  // Pass 1: the layer table must be the trainers', and the payload's CRC must
  // still hold, before anything is copied.
  uint32_t head[2];
  TZ_RETURN_IF_ERROR(store.read_payload(slot, 0, head, sizeof head));
  uint32_t n_layers = 0;
  for (int g = 0; g < groups; ++g) n_layers += uint32_t(trainers[g]->n_layers());
  if (head[0] != kWeightsMagic || head[1] != n_layers) return Status::kCorruptData;
  uint32_t at = sizeof head;
  TZ_RETURN_IF_ERROR(for_each_layer(ct, groups, [&](const ZoTrainer& t, int i) {
    LayerEntry stored;
    TZ_RETURN_IF_ERROR(store.read_payload(slot, at, &stored, sizeof stored));
    at += sizeof stored;
    const LayerEntry want = entry_of(t, i);
    return std::memcmp(&stored, &want, sizeof want) == 0 ? Status::kOk : Status::kCorruptData;
  }));
  uint8_t buf[128];
  uint32_t crc = 0;
  for (uint32_t done = 0; done < info.payload_bytes;) {
    const uint32_t n = info.payload_bytes - done < sizeof buf ? info.payload_bytes - done : uint32_t(sizeof buf);
    TZ_RETURN_IF_ERROR(store.read_payload(slot, done, buf, n));
    crc = crc32_update(crc, buf, n);
    done += n;
  }
  if (crc != info.payload_crc32) return Status::kCorruptData;
  // Pass 2: straight into the trainable copies (flash reads cannot fail halfway
  // on a part that just read the same bytes; if one does, say so loudly).
  const Status s = for_each_layer(ct, groups, [&](const ZoTrainer& t, int i) {
    const Span<int8_t> w = t.weights(i);
    const Span<int32_t> b = t.biases(i);
    if (!w.empty()) TZ_RETURN_IF_ERROR(store.read_payload(slot, at, w.data(), uint32_t(w.size())));
    at += padded(w.size());
    TZ_RETURN_IF_ERROR(store.read_payload(slot, at, b.data(), uint32_t(b.size_bytes())));
    at += uint32_t(b.size_bytes());
    return Status::kOk;
  });
  return s == Status::kOk ? s : Status::kIoError;
}

DivergenceGuard::Action DivergenceGuard::observe(float loss) {
  if (!std::isfinite(loss)) {
    if (has_best_ && margin_ >= 0.f) {
      ++n_restores_;
      return Action::kRestoreBest;
    }
    return Action::kNone;
  }
  if (!has_best_ || loss < best_) {
    best_ = loss;
    has_best_ = true;
    return Action::kSaveBest;
  }
  if (margin_ >= 0.f && loss > best_ + margin_) {
    ++n_restores_;
    return Action::kRestoreBest;
  }
  return Action::kNone;
}

void DivergenceGuard::set_best(float loss) {
  if (!std::isfinite(loss)) return;
  best_ = loss;
  has_best_ = true;
}

}  // namespace tinyzo
