#include "board.h"

#include <stdio.h>
#include <string.h>

#include "semihost.h"

enum { kStackPattern = 0xA5 };

void board_vprintf(const char* fmt, va_list ap) {
  // newlib's vsnprintf formats integers and strings without touching the
  // heap (floats would need dtoa, which allocates: hence board_fixed()).
  char line[256];
  vsnprintf(line, sizeof line, fmt, ap);
  sh_write0(line);
}

void board_printf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  board_vprintf(fmt, ap);
  va_end(ap);
}

const char* board_u64(char* buf, uint64_t v) {
  char rev[24];
  int n = 0;
  do {
    rev[n++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v);
  for (int i = 0; i < n; ++i) buf[i] = rev[n - 1 - i];
  buf[n] = 0;
  return buf;
}

uint32_t board_float_bits(float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}

const char* board_fixed(char* buf, float v, int decimals) {
  if (v != v) return strcpy(buf, "nan");
  if (decimals < 0) decimals = 0;
  if (decimals > 9) decimals = 9;
  const int negative = v < 0.f;
  const double a = negative ? -(double)v : (double)v;
  if (a >= 1e15) return strcpy(buf, negative ? "-huge" : "huge");
  uint64_t scale = 1;
  for (int i = 0; i < decimals; ++i) scale *= 10;
  uint64_t scaled = (uint64_t)(a * (double)scale + 0.5);
  // Digits from the last one backwards, then reversed into buf.
  char rev[32];
  int n = 0;
  for (int i = 0; i < decimals; ++i, scaled /= 10) rev[n++] = (char)('0' + (int)(scaled % 10));
  if (decimals) rev[n++] = '.';
  do {
    rev[n++] = (char)('0' + (int)(scaled % 10));
    scaled /= 10;
  } while (scaled);
  if (negative) rev[n++] = '-';
  for (int i = 0; i < n; ++i) buf[i] = rev[n - 1 - i];
  buf[n] = 0;
  return buf;
}

void board_paint_stack(void) {
  char* sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  char* lo = __stack_limit__;
  // Leave the live frame (and what a call made from here pushes) alone.
  for (char* p = lo; p < sp - 128; ++p) *(volatile char*)p = (char)kStackPattern;
}

size_t board_stack_peak_bytes(void) {
  const char* p = __stack_limit__;
  while (p < __stack_top__ && *(const volatile char*)p == (char)kStackPattern) ++p;
  return (size_t)(__stack_top__ - p);
}

size_t board_stack_usable_bytes(void) { return (size_t)(__stack_top__ - __stack_limit__); }

void board_fail(int code, const char* message) {
  board_printf("FAIL: %s\n", message);
  sh_exit(code);
}

const char* board_core_name(void) {
#if defined(__ARM_ARCH_7EM__) && defined(__ARM_FP) && (__ARM_FP & 8)
  return "cortex-m7";  // fpv5-d16: double-precision FPU
#elif defined(__ARM_ARCH_7EM__)
  return "cortex-m4f";
#elif defined(__ARM_ARCH_7M__) && !defined(__ARM_FP)
  return "cortex-m3";  // Armv7-M, no FPU, no DSP extension: soft-float
#else
  return "unknown";
#endif
}
