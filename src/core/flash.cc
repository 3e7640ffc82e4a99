#include "tinyzo/flash.h"

#include <cstring>

namespace tinyzo {

namespace {

bool power_of_two(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

// [offset, offset + n) inside a device of `size` bytes, without overflow.
bool inside(uint32_t offset, uint32_t n, uint32_t size) { return offset <= size && n <= size - offset; }

}  // namespace

Status check_flash_geometry(const FlashGeometry& g) {
  if (!power_of_two(g.erase_bytes) || !power_of_two(g.program_bytes) || g.program_bytes > g.erase_bytes ||
      g.size_bytes == 0 || g.size_bytes % g.erase_bytes != 0)
    return Status::kInvalidArgument;
  return Status::kOk;
}

Status RamFlash::init(Span<uint8_t> memory, uint32_t erase_bytes, uint32_t program_bytes) {
  FlashGeometry g;
  g.size_bytes = uint32_t(memory.size());
  g.erase_bytes = erase_bytes;
  g.program_bytes = program_bytes;
  if (memory.data() == nullptr || memory.size() > 0xFFFFFFFFu) return Status::kInvalidArgument;
  TZ_RETURN_IF_ERROR(check_flash_geometry(g));
  memory_ = memory;
  geometry_ = g;
  return Status::kOk;
}

FlashDevice RamFlash::device() {
  FlashDevice d;
  d.ctx = this;
  d.geometry = geometry_;
  d.read = &RamFlash::read;
  d.program = &RamFlash::program;
  d.erase = &RamFlash::erase;
  return d;
}

Status RamFlash::read(void* ctx, uint32_t offset, void* out, uint32_t n) {
  const RamFlash& f = *static_cast<const RamFlash*>(ctx);
  if (!inside(offset, n, f.geometry_.size_bytes)) return Status::kOutOfRange;
  if (n) std::memcpy(out, f.memory_.data() + offset, n);
  return Status::kOk;
}

Status RamFlash::program(void* ctx, uint32_t offset, const void* data, uint32_t n) {
  RamFlash& f = *static_cast<RamFlash*>(ctx);
  const FlashGeometry& g = f.geometry_;
  if (!inside(offset, n, g.size_bytes)) return Status::kOutOfRange;
  if (offset % g.program_bytes != 0 || n % g.program_bytes != 0) return Status::kInvalidArgument;
  uint8_t* p = f.memory_.data() + offset;
  for (uint32_t i = 0; i < n; ++i)
    if (p[i] != g.erased_byte) return Status::kInvalidArgument;  // programmed twice without an erase
  if (n) std::memcpy(p, data, n);
  return Status::kOk;
}

Status RamFlash::erase(void* ctx, uint32_t offset, uint32_t n) {
  RamFlash& f = *static_cast<RamFlash*>(ctx);
  const FlashGeometry& g = f.geometry_;
  if (!inside(offset, n, g.size_bytes)) return Status::kOutOfRange;
  if (offset % g.erase_bytes != 0 || n % g.erase_bytes != 0) return Status::kInvalidArgument;
  if (n) std::memset(f.memory_.data() + offset, g.erased_byte, n);
  return Status::kOk;
}

}  // namespace tinyzo
