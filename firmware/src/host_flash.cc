#include "host_flash.h"

#include "semihost.h"

using tinyzo::FlashDevice;
using tinyzo::Status;

namespace {

// Semihosting's ISO C open modes: "r+b" (read/write, no truncation) and "w+b".
constexpr int kShModeReadWrite = 3, kShModeCreate = 7;

const uint8_t kErased[HostFileFlash::kEraseChunkBytes] = {
#define TZ_FF8 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
#define TZ_FF64 TZ_FF8, TZ_FF8, TZ_FF8, TZ_FF8, TZ_FF8, TZ_FF8, TZ_FF8, TZ_FF8
    TZ_FF64, TZ_FF64, TZ_FF64, TZ_FF64
#undef TZ_FF64
#undef TZ_FF8
};

bool inside(uint32_t offset, uint32_t n, uint32_t size) { return offset <= size && n <= size - offset; }

}  // namespace

Status HostFileFlash::open(const char* path, uint32_t size_bytes) {
  close();
  if (size_bytes == 0 || size_bytes % kEraseBytes != 0) return Status::kInvalidArgument;
  handle_ = sh_open(path, kShModeReadWrite);
  if (handle_ < 0) handle_ = sh_open(path, kShModeCreate);
  if (handle_ < 0) return Status::kIoError;
  size_ = size_bytes;
  position_ = 0xFFFFFFFFu;
  const long length = sh_flen(handle_);
  if (length == 0) {
    // A new part comes erased.
    if (sh_seek(handle_, 0) != 0) return Status::kIoError;
    for (uint32_t at = 0; at < size_bytes; at += kEraseChunkBytes)
      if (sh_write(handle_, kErased, kEraseChunkBytes) != 0) return Status::kIoError;
    position_ = size_bytes;
    return Status::kOk;
  }
  if (length != long(size_bytes)) {
    close();
    return Status::kInvalidArgument;
  }
  return Status::kOk;
}

void HostFileFlash::close() {
  if (handle_ >= 0) sh_close(handle_);
  handle_ = -1;
}

FlashDevice HostFileFlash::device() {
  FlashDevice d;
  d.ctx = this;
  d.geometry.size_bytes = size_;
  d.geometry.erase_bytes = kEraseBytes;
  d.geometry.program_bytes = kProgramBytes;
  d.read = &HostFileFlash::read;
  d.program = &HostFileFlash::program;
  d.erase = &HostFileFlash::erase;
  return d;
}

Status HostFileFlash::seek(uint32_t offset) {
  if (position_ == offset) return Status::kOk;
  if (sh_seek(handle_, offset) != 0) {
    position_ = 0xFFFFFFFFu;
    return Status::kIoError;
  }
  position_ = offset;
  return Status::kOk;
}

Status HostFileFlash::read(void* ctx, uint32_t offset, void* out, uint32_t n) {
  HostFileFlash& f = *static_cast<HostFileFlash*>(ctx);
  if (f.handle_ < 0) return Status::kIoError;
  if (!inside(offset, n, f.size_)) return Status::kOutOfRange;
  if (n == 0) return Status::kOk;
  TZ_RETURN_IF_ERROR(f.seek(offset));
  const long got = sh_read(f.handle_, out, n);
  f.position_ = got == long(n) ? offset + n : 0xFFFFFFFFu;
  return got == long(n) ? Status::kOk : Status::kIoError;
}

Status HostFileFlash::program(void* ctx, uint32_t offset, const void* data, uint32_t n) {
  HostFileFlash& f = *static_cast<HostFileFlash*>(ctx);
  if (f.handle_ < 0) return Status::kIoError;
  if (!inside(offset, n, f.size_)) return Status::kOutOfRange;
  if (offset % kProgramBytes != 0 || n % kProgramBytes != 0) return Status::kInvalidArgument;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (uint32_t at = 0; at < n; at += kProgramBytes) {
    if (f.hook_) f.hook_();
    TZ_RETURN_IF_ERROR(f.seek(offset + at));
    if (sh_write(f.handle_, p + at, kProgramBytes) != 0) {
      f.position_ = 0xFFFFFFFFu;
      return Status::kIoError;
    }
    f.position_ += kProgramBytes;
  }
  return Status::kOk;
}

Status HostFileFlash::erase(void* ctx, uint32_t offset, uint32_t n) {
  HostFileFlash& f = *static_cast<HostFileFlash*>(ctx);
  if (f.handle_ < 0) return Status::kIoError;
  if (!inside(offset, n, f.size_)) return Status::kOutOfRange;
  if (offset % kEraseBytes != 0 || n % kEraseBytes != 0) return Status::kInvalidArgument;
  for (uint32_t at = 0; at < n; at += kEraseChunkBytes) {
    if (f.hook_) f.hook_();
    TZ_RETURN_IF_ERROR(f.seek(offset + at));
    if (sh_write(f.handle_, kErased, kEraseChunkBytes) != 0) {
      f.position_ = 0xFFFFFFFFu;
      return Status::kIoError;
    }
    f.position_ += kEraseChunkBytes;
  }
  return Status::kOk;
}
