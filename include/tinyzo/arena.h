// A caller-owned bump arena. tinyzo never allocates from a heap: every buffer
// comes from an Arena the application gives it (a static array on a device).
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/span.h"

namespace tinyzo {

class Arena {
 public:
  Arena() = default;
  Arena(void* base, size_t size_bytes);

  // Returns `size_bytes` bytes aligned to `align` (a power of two), or nullptr
  // when the arena is exhausted. Never fails silently: used() reports the need.
  void* allocate(size_t size_bytes, size_t align = 16);
  template <class T>
  Span<T> allocate_array(size_t n) {
    return Span<T>(static_cast<T*>(allocate(n * sizeof(T), alignof(T) < 16 ? 16 : alignof(T))), n);
  }

  uint8_t* base() const { return base_; }
  size_t capacity() const { return size_; }
  size_t used() const { return used_; }
  // Highest used() ever reached (survives reset_to).
  size_t high_water() const { return high_water_; }
  size_t mark() const { return used_; }
  void reset_to(size_t mark) { used_ = mark; }

 private:
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  size_t used_ = 0;
  size_t high_water_ = 0;
};

}  // namespace tinyzo
