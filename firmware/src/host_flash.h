// A FlashDevice (tinyzo/flash.h) over a host file through semihosting: the
// emulated MCU's "external flash" for the weight slots, which survives QEMU
// being killed (every semihosting write is a synchronous host write). It keeps
// the flash model's granularity, one semihosting call per program unit and
// per erase chunk, so a power cut (the instruction-count plugin's cut=N) tears
// a write exactly where a real part would:
//   erase block 4 KB (a QSPI NOR subsector), erased in 256-byte chunks (a cut
//   erase leaves part of the block erased and part old, like a real one);
//   program unit 8 bytes (a 64-bit double word of ECC'd internal flash).
// No RAM beyond this object (a 256-byte erase pattern in flash).
#pragma once
#include <cstdint>

#include "tinyzo/flash.h"

class HostFileFlash {
 public:
  static constexpr uint32_t kEraseBytes = 4096;
  static constexpr uint32_t kProgramBytes = 8;
  static constexpr uint32_t kEraseChunkBytes = 256;

  // Opens the host file `path` as a part of `size_bytes` (a multiple of
  // kEraseBytes). A missing or empty file becomes a new, erased part (0xFF).
  // kInvalidArgument for a file of another size (another store layout);
  // kIoError when the host refuses.
  tinyzo::Status open(const char* path, uint32_t size_bytes);
  void close();
  tinyzo::FlashDevice device();
  // Called before every program unit and erase chunk (the firmware's
  // instruction-count marker during the fault-injection sweep), or nullptr.
  void set_op_hook(void (*hook)()) { hook_ = hook; }

 private:
  static tinyzo::Status read(void* ctx, uint32_t offset, void* out, uint32_t n);
  static tinyzo::Status program(void* ctx, uint32_t offset, const void* data, uint32_t n);
  static tinyzo::Status erase(void* ctx, uint32_t offset, uint32_t n);
  tinyzo::Status seek(uint32_t offset);

  int handle_ = -1;
  uint32_t size_ = 0;
  uint32_t position_ = 0xFFFFFFFFu;  // the host file position, when known
  void (*hook_)() = nullptr;
};
