// Board support for the QEMU mps2 boards (an386: Cortex-M4F, an500: Cortex-M7):
// console, memory layout from the linker script, stack high-water mark, and
// the cause of a fault. The only board-specific code of the firmware; the
// training loop sees nothing of it but these functions.
#pragma once
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Symbols of firmware/ld/mps2.ld (addresses only; take their address).
extern char __flash_origin__[], __flash_size__[];
extern char __ram_origin__[], __ram_size__[];
extern char __stack_limit__[], __stack_top__[], __stack_guard_size__[];
extern char __arena_start__[], __arena_end__[];
extern char __data_start__[], __data_end__[], __bss_start__[], __bss_end__[];
extern char __text_end__[];

// The system clock set-up's outcome (port/startup.c): on the STM32F405 what the
// RCC reported ("PLL 168 MHz (HSE 25 MHz)", or which step never became ready);
// on the mps2 boards "fixed by the board".
const char* board_clock_name(void);

// printf-style output to the emulator console (no heap, no FILE; at most 255
// characters per call; no %f: use board_fixed()).
void board_printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void board_vprintf(const char* fmt, va_list ap);
// Writes `v` with `decimals` (0..9) digits after the point into buf (>= 24
// bytes); returns buf. Display only: exact values are printed as hex bits.
const char* board_fixed(char* buf, float v, int decimals);
// Decimal text of a 64-bit count into buf (>= 21 bytes); returns buf (newlib-nano's
// printf has no %llu).
const char* board_u64(char* buf, uint64_t v);
// The IEEE bits of a float (to print exact values).
uint32_t board_float_bits(float v);

// Fills the unused stack (below the current stack pointer) with a pattern; board_stack_peak_bytes() then finds the deepest
// point any code reached since.
void board_paint_stack(void);
size_t board_stack_peak_bytes(void);
// Usable stack bytes (the whole stack region: the MPU guard lies below RAM).
size_t board_stack_usable_bytes(void);

// Prints `message` and ends the emulation with `code` (non-zero).
__attribute__((noreturn)) void board_fail(int code, const char* message);

// The core this image was built for ("cortex-m4f", "cortex-m7", "cortex-m3").
const char* board_core_name(void);

#ifdef __cplusplus
}
#endif
