// Power-safe storage of one record (the trained weights) in two flash slots,
// A and B: the pattern of embedded bootloaders' dual banks and of flash file
// systems' superblocks. Device-safe: no heap, no stdio; a few hundred bytes of
// stack at most.
//
// Each slot is a whole number of erase blocks of a FlashDevice (flash.h):
//
//   [ SlotHeader, padded to a program unit | payload ... | erased ]
//
// A write never touches the newest valid slot. It goes to the other slot:
//   1. erase the slot (from its first block, which holds the header),
//   2. program the payload after the header area,
//   3. program the header last: sequence = newest + 1, payload size, payload
//      CRC-32, caller's tag and metadata, and the header's own CRC-32;
//   4. read the slot back and check it.
// The header is the commit record. A power cut anywhere before step 3
// completes leaves that slot without a valid header (erased, partly erased,
// or a torn header that fails its CRC), and a cut inside step 1 can leave old
// bytes under a stale header, which fail the payload CRC. So at boot the
// other slot, untouched, is still the newest valid one: the old record or the
// new one, intact, never a mix.
//
// Boot (scan()): a slot is valid when its header has the magic, version and
// geometry, its CRC matches, its tag is the store's, and the payload's CRC-32
// matches. The newest valid slot is the one whose sequence number is ahead in
// serial-number arithmetic (RFC 1982: int32_t(a - b) > 0), so the 32-bit
// sequence may wrap. Two slots never hold the same sequence (each write is
// newest + 1); if they did, A would win.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/flash.h"
#include "tinyzo/status.h"

namespace tinyzo {

// The on-flash header (little-endian, as both ends are). 40 bytes; a slot
// reserves it rounded up to the program unit.
struct SlotHeader {
  uint32_t magic;          // kSlotMagic ("TZSL")
  uint16_t version;        // kSlotVersion
  uint16_t header_bytes;   // sizeof(SlotHeader)
  uint32_t sequence;       // newest + 1 at each write; wraps
  uint32_t payload_bytes;  // bytes of payload after the header area
  uint32_t payload_crc32;  // CRC-32 (IEEE, zlib's) of the payload
  uint32_t tag;            // the store's tag (what the payload belongs to, e.g. a model's CRC)
  uint32_t meta[3];        // the caller's metadata (e.g. step, validation loss)
  uint32_t header_crc32;   // CRC-32 of every byte above
};
static_assert(sizeof(SlotHeader) == 40, "slot header layout");

constexpr uint32_t kSlotMagic = 0x4C535A54u;  // "TZSL"
constexpr uint16_t kSlotVersion = 1;

// CRC-32 of a header's bytes before header_crc32.
uint32_t slot_header_crc32(const SlotHeader& h);

// What scan() found in one slot.
struct SlotInfo {
  bool valid = false;
  uint32_t sequence = 0;
  uint32_t payload_bytes = 0;
  uint32_t payload_crc32 = 0;
  uint32_t meta[3] = {0, 0, 0};
};

class SlotStore {
 public:
  static constexpr int kSlots = 2;
  // Largest program unit the store can buffer (a 256-bit flash word is 32 B).
  static constexpr uint32_t kMaxProgramBytes = 64;

  // Uses flash bytes [base, base + 2 * slot_bytes): slot A, then slot B.
  // `slot_bytes` and `base` must be multiples of the erase block, the slot
  // must hold the header area plus at least one program unit, and the
  // geometry must pass check_flash_geometry() with a program unit of at most
  // kMaxProgramBytes. Only slots with this `tag` are ever valid. Does not
  // touch the flash: call scan().
  Status init(const FlashDevice& flash, uint32_t base, uint32_t slot_bytes, uint32_t tag);

  // Reads and checks both slots (headers and payload CRCs) and finds the
  // newest valid one. kOk also when no slot is valid (newest() is then -1);
  // an error only when the flash itself fails.
  Status scan();
  // 0 (A), 1 (B) or -1: the slot boot should use.
  int newest() const { return newest_; }
  const SlotInfo& info(int slot) const { return info_[slot]; }
  // Largest payload a slot holds.
  uint32_t payload_capacity() const { return slot_bytes_ - header_area_; }
  uint32_t slot_bytes() const { return slot_bytes_; }
  uint32_t tag() const { return tag_; }

  // Reads payload bytes [offset, offset + n) of a slot that scan() found
  // valid. kOutOfRange outside the payload; kInvalidArgument for an invalid
  // slot. (The CRC was checked by scan(); read_payload does not re-check it.)
  Status read_payload(int slot, uint32_t offset, void* out, uint32_t n) const;

  // A write, streamed: begin_write() erases the target slot (never the newest
  // valid one; an invalid slot first, else the older); append() programs
  // payload bytes as they come (any sizes: whole program units go to flash,
  // the rest waits in a unit-sized buffer); commit() pads the last unit with
  // erased bytes, programs the header with sequence newest + 1 and `meta`,
  // reads the slot back and rescans. After commit() the new record is the
  // newest. Any error (or a power cut) before commit() returns leaves the
  // previous newest record in place; call begin_write() again to retry.
  // kOutOfRange when the payload outgrows the slot; kInvalidArgument for a
  // begin_write before a successful scan() or an append/commit without
  // begin_write; kIoError when the read-back disagrees.
  Status begin_write();
  Status append(const void* data, uint32_t n);
  Status commit(const uint32_t meta[3]);
  // The slot a write in progress goes to (-1 when none).
  int write_target() const { return writing_ ? target_ : -1; }
  // The sequence the next commit will write.
  uint32_t next_sequence() const { return newest_ >= 0 ? info_[newest_].sequence + 1u : 1u; }

 private:
  uint32_t slot_offset(int slot) const { return base_ + uint32_t(slot) * slot_bytes_; }
  Status check_slot(int slot, SlotInfo* out) const;
  Status flush_unit();

  FlashDevice flash_;
  uint32_t base_ = 0, slot_bytes_ = 0, header_area_ = 0, tag_ = 0;
  SlotInfo info_[kSlots];
  int newest_ = -1;
  bool initialized_ = false;
  bool scanned_ = false;  // a scan() succeeded since init(): newest_ is known
  // The write in progress.
  bool writing_ = false;
  int target_ = -1;
  uint32_t written_ = 0;    // payload bytes appended
  uint32_t crc_ = 0;        // CRC-32 of them so far
  uint32_t unit_fill_ = 0;  // bytes waiting in unit_
  uint8_t unit_[kMaxProgramBytes];
};

}  // namespace tinyzo
