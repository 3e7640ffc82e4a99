// A flash-like storage device, as the slot store (slot_store.h) sees it, and a
// RAM backend of it for host tests (and for a device that keeps the slots in
// retained RAM). Device-safe: no heap; the backend's memory is the caller's.
//
// The model is NOR flash with the strictest common rules (ECC'd internal flash
// such as an STM32L4's, or a QSPI NOR part):
//   - read: any byte range;
//   - erase: whole, aligned erase blocks (sectors / pages); every byte of the
//     block becomes `erased_byte` (0xFF);
//   - program: whole, aligned program units, each written AT MOST ONCE between
//     two erases of its block, and only over erased bytes (bits can only go
//     from erased to programmed; ECC flash refuses a second write outright).
// An operation cut by a power loss leaves the unit or block it was working on
// in an unknown state; every unit or block before it is done, every one after
// it untouched.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/span.h"
#include "tinyzo/status.h"

namespace tinyzo {

struct FlashGeometry {
  uint32_t size_bytes = 0;     // the device (or partition) size, a multiple of erase_bytes
  uint32_t erase_bytes = 0;    // erase block, a power of two
  uint32_t program_bytes = 0;  // program unit, a power of two dividing erase_bytes
  uint8_t erased_byte = 0xFF;  // what an erased byte reads as
};

// Checks the geometry's rules above; kInvalidArgument when one fails.
Status check_flash_geometry(const FlashGeometry& g);

// The device: three operations on byte offsets of the device, with an opaque
// context (a plain function table, like the kernel tables: no virtual calls,
// so neither side needs RTTI or a C++ ABI for it). Each returns kOk, or:
// kOutOfRange (outside the device), kInvalidArgument (misaligned, or a program
// over bytes that are not erased), kIoError (the storage failed).
struct FlashDevice {
  void* ctx = nullptr;
  FlashGeometry geometry;
  Status (*read)(void* ctx, uint32_t offset, void* out, uint32_t n) = nullptr;
  // `offset` and `n` multiples of program_bytes.
  Status (*program)(void* ctx, uint32_t offset, const void* data, uint32_t n) = nullptr;
  // `offset` and `n` multiples of erase_bytes.
  Status (*erase)(void* ctx, uint32_t offset, uint32_t n) = nullptr;
};

// Flash emulated in a caller-owned byte array. It enforces every rule of the
// model (alignment, program only erased bytes, once per erase), so a host test
// catches a protocol that would fail on a real part. The memory must outlive
// the RamFlash and its FlashDevice.
class RamFlash {
 public:
  // `memory` starts as it is (fill it with 0xFF for a new, erased part).
  Status init(Span<uint8_t> memory, uint32_t erase_bytes, uint32_t program_bytes);
  FlashDevice device();
  Span<uint8_t> memory() const { return memory_; }

  static Status read(void* ctx, uint32_t offset, void* out, uint32_t n);
  static Status program(void* ctx, uint32_t offset, const void* data, uint32_t n);
  static Status erase(void* ctx, uint32_t offset, uint32_t n);

 private:
  Span<uint8_t> memory_;
  FlashGeometry geometry_;
};

}  // namespace tinyzo
