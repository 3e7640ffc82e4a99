#include "tinyzo/slot_store.h"

#include <cstring>

#include "tinyzo/model.h"  // crc32_update

namespace tinyzo {

namespace {

uint32_t round_up(uint32_t v, uint32_t unit) { return (v + unit - 1) / unit * unit; }

// Serial-number order (RFC 1982) of 32-bit sequences: a is ahead of b.
bool ahead(uint32_t a, uint32_t b) { return int32_t(a - b) > 0; }

}  // namespace

uint32_t slot_header_crc32(const SlotHeader& h) {
  return crc32_update(0, reinterpret_cast<const uint8_t*>(&h), offsetof(SlotHeader, header_crc32));
}

Status SlotStore::init(const FlashDevice& flash, uint32_t base, uint32_t slot_bytes, uint32_t tag) {
  *this = SlotStore();
  const FlashGeometry& g = flash.geometry;
  if (flash.read == nullptr || flash.program == nullptr || flash.erase == nullptr) return Status::kInvalidArgument;
  TZ_RETURN_IF_ERROR(check_flash_geometry(g));
  if (g.program_bytes > kMaxProgramBytes || slot_bytes == 0 || slot_bytes % g.erase_bytes != 0 ||
      base % g.erase_bytes != 0)
    return Status::kInvalidArgument;
  if (uint64_t(base) + uint64_t(kSlots) * slot_bytes > g.size_bytes) return Status::kOutOfRange;
  const uint32_t header_area = round_up(uint32_t(sizeof(SlotHeader)), g.program_bytes);
  if (slot_bytes < header_area + g.program_bytes) return Status::kInvalidArgument;
  flash_ = flash;
  base_ = base;
  slot_bytes_ = slot_bytes;
  header_area_ = header_area;
  tag_ = tag;
  initialized_ = true;
  return Status::kOk;
}

// Fills `out` for one slot; an invalid slot is kOk with out->valid false.
Status SlotStore::check_slot(int slot, SlotInfo* out) const {
  *out = SlotInfo();
  SlotHeader h;
  TZ_RETURN_IF_ERROR(flash_.read(flash_.ctx, slot_offset(slot), &h, sizeof h));
  if (h.magic != kSlotMagic || h.version != kSlotVersion || h.header_bytes != sizeof(SlotHeader) ||
      h.header_crc32 != slot_header_crc32(h) || h.tag != tag_ || h.payload_bytes > payload_capacity())
    return Status::kOk;
  // The payload, through a small stack buffer (no RAM for a copy of the slot).
  uint8_t buf[128];
  uint32_t crc = 0;
  for (uint32_t done = 0; done < h.payload_bytes;) {
    const uint32_t n = h.payload_bytes - done < sizeof buf ? h.payload_bytes - done : uint32_t(sizeof buf);
    TZ_RETURN_IF_ERROR(flash_.read(flash_.ctx, slot_offset(slot) + header_area_ + done, buf, n));
    crc = crc32_update(crc, buf, n);
    done += n;
  }
  if (crc != h.payload_crc32) return Status::kOk;
  out->valid = true;
  out->sequence = h.sequence;
  out->payload_bytes = h.payload_bytes;
  out->payload_crc32 = h.payload_crc32;
  std::memcpy(out->meta, h.meta, sizeof out->meta);
  return Status::kOk;
}

Status SlotStore::scan() {
  if (!initialized_) return Status::kInvalidArgument;
  writing_ = false;
  scanned_ = false;
  newest_ = -1;
  for (int s = 0; s < kSlots; ++s) {
    const Status st = check_slot(s, &info_[s]);
    if (st != Status::kOk) {
      info_[0] = info_[1] = SlotInfo();
      newest_ = -1;
      return st;
    }
    if (info_[s].valid && (newest_ < 0 || ahead(info_[s].sequence, info_[newest_].sequence))) newest_ = s;
  }
  scanned_ = true;
  return Status::kOk;
}

Status SlotStore::read_payload(int slot, uint32_t offset, void* out, uint32_t n) const {
  if (slot < 0 || slot >= kSlots || !info_[slot].valid) return Status::kInvalidArgument;
  if (offset > info_[slot].payload_bytes || n > info_[slot].payload_bytes - offset) return Status::kOutOfRange;
  return flash_.read(flash_.ctx, slot_offset(slot) + header_area_ + offset, out, n);
}

Status SlotStore::begin_write() {
  // Without a scan the store does not know which slot holds the newest record.
  if (!initialized_ || !scanned_) return Status::kInvalidArgument;
  writing_ = false;
  // Never the newest valid slot: with two slots, the other one (A when none is valid).
  target_ = newest_ < 0 ? 0 : 1 - newest_;
  // From here on the target holds nothing valid, whatever happens.
  info_[target_] = SlotInfo();
  // Block by block from the header's block: a cut erase invalidates the header first.
  const uint32_t block = flash_.geometry.erase_bytes;
  for (uint32_t at = 0; at < slot_bytes_; at += block)
    TZ_RETURN_IF_ERROR(flash_.erase(flash_.ctx, slot_offset(target_) + at, block));
  written_ = 0;
  crc_ = 0;
  unit_fill_ = 0;
  writing_ = true;
  return Status::kOk;
}

// Programs the full unit buffer at the payload position it belongs to.
Status SlotStore::flush_unit() {
  const uint32_t unit = flash_.geometry.program_bytes;
  const uint32_t at = slot_offset(target_) + header_area_ + (written_ - unit_fill_);
  unit_fill_ = 0;
  return flash_.program(flash_.ctx, at, unit_, unit);
}

Status SlotStore::append(const void* data, uint32_t n) {
  if (!writing_) return Status::kInvalidArgument;
  if (n > payload_capacity() - written_) {
    writing_ = false;
    return Status::kOutOfRange;
  }
  const uint8_t* p = static_cast<const uint8_t*>(data);
  crc_ = crc32_update(crc_, p, n);
  const uint32_t unit = flash_.geometry.program_bytes;
  while (n > 0) {
    Status s = Status::kOk;
    if (unit_fill_ == 0 && n >= unit) {
      // Whole units straight from the caller's memory.
      const uint32_t whole = n / unit * unit;
      s = flash_.program(flash_.ctx, slot_offset(target_) + header_area_ + written_, p, whole);
      written_ += whole;
      p += whole;
      n -= whole;
    } else {
      const uint32_t take = unit - unit_fill_ < n ? unit - unit_fill_ : n;
      std::memcpy(unit_ + unit_fill_, p, take);
      unit_fill_ += take;
      written_ += take;
      p += take;
      n -= take;
      if (unit_fill_ == unit) s = flush_unit();
    }
    if (s != Status::kOk) {
      writing_ = false;
      return s;
    }
  }
  return Status::kOk;
}

Status SlotStore::commit(const uint32_t meta[3]) {
  if (!writing_) return Status::kInvalidArgument;
  writing_ = false;
  const FlashGeometry& g = flash_.geometry;
  if (unit_fill_ > 0) {
    std::memset(unit_ + unit_fill_, g.erased_byte, g.program_bytes - unit_fill_);
    TZ_RETURN_IF_ERROR(flush_unit());
  }
  SlotHeader h;
  std::memset(&h, 0, sizeof h);
  h.magic = kSlotMagic;
  h.version = kSlotVersion;
  h.header_bytes = uint16_t(sizeof(SlotHeader));
  h.sequence = next_sequence();
  h.payload_bytes = written_;
  h.payload_crc32 = crc_;
  h.tag = tag_;
  if (meta != nullptr) std::memcpy(h.meta, meta, sizeof h.meta);
  h.header_crc32 = slot_header_crc32(h);
  // The commit: the header area in one program (header_area_ <= kMaxProgramBytes
  // because sizeof(SlotHeader) <= 64 and the unit is at most 64).
  static_assert(sizeof(SlotHeader) <= kMaxProgramBytes, "header area fits the unit buffer");
  std::memset(unit_, g.erased_byte, header_area_);
  std::memcpy(unit_, &h, sizeof h);
  TZ_RETURN_IF_ERROR(flash_.program(flash_.ctx, slot_offset(target_), unit_, header_area_));
  // Read back: a part that silently dropped a program must not look committed.
  SlotInfo check;
  TZ_RETURN_IF_ERROR(check_slot(target_, &check));
  if (!check.valid || check.sequence != h.sequence || check.payload_crc32 != crc_) return Status::kIoError;
  info_[target_] = check;
  newest_ = target_;
  return Status::kOk;
}

}  // namespace tinyzo
