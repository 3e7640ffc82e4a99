#include "tinyzo/arena.h"

#include <cstdint>

namespace tinyzo {

Arena::Arena(void* base, size_t size_bytes) : base_(static_cast<uint8_t*>(base)), size_(size_bytes) {}

void* Arena::allocate(size_t size_bytes, size_t align) {
  // Align the absolute address, so the caller's base alignment doesn't matter.
  const uintptr_t base = reinterpret_cast<uintptr_t>(base_);
  const uintptr_t start = (base + used_ + (align - 1)) & ~static_cast<uintptr_t>(align - 1);
  const size_t new_used = static_cast<size_t>(start - base) + size_bytes;
  // Record the need even on failure so callers can report how much was missing.
  if (new_used > high_water_) high_water_ = new_used;
  if (base_ == nullptr || new_used > size_) return nullptr;
  used_ = new_used;
  return reinterpret_cast<void*>(start);
}

}  // namespace tinyzo
