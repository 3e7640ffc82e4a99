// Semihosting calls: operation number in r0, pointer to a parameter block in
// r1, `bkpt 0xab` (Thumb), result in r0. Operation numbers and block layouts
// are those of ARM's semihosting specification.
#include "semihost.h"

#include <string.h>

enum {
  kSysOpen = 0x01,
  kSysClose = 0x02,
  kSysWrite0 = 0x04,
  kSysWrite = 0x05,
  kSysRead = 0x06,
  kSysSeek = 0x0a,
  kSysFlen = 0x0c,
  kSysClock = 0x10,
  kSysGetCmdline = 0x15,
  kSysExitExtended = 0x20,
};

static long sh_call(int op, const void* arg) {
  register long r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  // "memory": the host reads and writes guest memory through the block.
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

int sh_open(const char* path, int mode) {
  const uintptr_t block[3] = {(uintptr_t)path, (uintptr_t)mode, (uintptr_t)strlen(path)};
  return (int)sh_call(kSysOpen, block);
}

int sh_close(int handle) {
  const uintptr_t block[1] = {(uintptr_t)handle};
  return (int)sh_call(kSysClose, block);
}

long sh_read(int handle, void* buf, size_t n) {
  const uintptr_t block[3] = {(uintptr_t)handle, (uintptr_t)buf, (uintptr_t)n};
  const long not_read = sh_call(kSysRead, block);  // bytes NOT read
  if (not_read < 0 || (size_t)not_read > n) return -1;
  return (long)(n - (size_t)not_read);
}

int sh_write(int handle, const void* buf, size_t n) {
  const uintptr_t block[3] = {(uintptr_t)handle, (uintptr_t)buf, (uintptr_t)n};
  return sh_call(kSysWrite, block) == 0 ? 0 : -1;  // returns bytes NOT written
}

int sh_seek(int handle, size_t pos) {
  const uintptr_t block[2] = {(uintptr_t)handle, (uintptr_t)pos};
  return sh_call(kSysSeek, block) == 0 ? 0 : -1;
}

long sh_flen(int handle) {
  const uintptr_t block[1] = {(uintptr_t)handle};
  return sh_call(kSysFlen, block);
}

void sh_write0(const char* s) { sh_call(kSysWrite0, s); }

int sh_cmdline(char* buf, int len) {
  uintptr_t block[2] = {(uintptr_t)buf, (uintptr_t)len};
  if (sh_call(kSysGetCmdline, block) != 0) return -1;
  return (int)block[1];
}

long sh_clock_cs(void) { return sh_call(kSysClock, 0); }

void sh_exit(int code) {
  // ADP_Stopped_ApplicationExit with the status: QEMU exits with `code`.
  const uintptr_t block[2] = {0x20026u, (uintptr_t)code};
  for (;;) sh_call(kSysExitExtended, block);
}
