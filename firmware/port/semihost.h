// ARM semihosting (the debugger/emulator services reached through `bkpt 0xab`)
// for the QEMU mps2 boards: console, command line, host files, clock and exit
// status. No heap, no newlib stdio: every call is one trap with a parameter
// block on the stack. QEMU must run with
//   -semihosting-config enable=on,target=native[,arg=...]
// Host paths are relative to QEMU's working directory.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Host file open modes (the semihosting ISO C fopen mode index).
enum {
  kShModeRead = 1,    // "rb"
  kShModeWrite = 5,   // "wb": create or truncate
  kShModeAppend = 9,  // "ab"
};

// Opens a host file; returns a handle >= 0, or -1.
int sh_open(const char* path, int mode);
// Closes a handle; 0 on success.
int sh_close(int handle);
// Reads up to n bytes; returns the bytes read (0 at end of file), -1 on error.
long sh_read(int handle, void* buf, size_t n);
// Writes n bytes; returns 0 when all were written, -1 otherwise.
int sh_write(int handle, const void* buf, size_t n);
// Moves to absolute byte position pos; 0 on success.
int sh_seek(int handle, size_t pos);
// Length of an open file in bytes, or -1.
long sh_flen(int handle);
// Writes a NUL-terminated string to the emulator's console.
void sh_write0(const char* s);
// The command line QEMU was given (arg=... joined by spaces) into buf (len
// bytes including the NUL); returns its length or -1.
int sh_cmdline(char* buf, int len);
// Host time in centiseconds since the program started (wall time: says
// nothing about speed on a real MCU).
long sh_clock_cs(void);
// Ends the emulation with exit status `code` (0..255; SYS_EXIT_EXTENDED).
__attribute__((noreturn)) void sh_exit(int code);

#ifdef __cplusplus
}
#endif
