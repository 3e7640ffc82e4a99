// Reset and fault handling for the QEMU mps2 boards (ARMv7-M: an386 Cortex-M4F,
// an500 Cortex-M7). Register addresses are the architecture's System Control
// Space (no CMSIS headers exist on the build machine).
//
// At reset: copy .data, zero .bss, enable the FPU, enable the configurable
// fault exceptions, trap integer division by zero, and program the MPU:
//   region 0: the __stack_guard_size__ bytes just below RAM, no access (the stack
//             sits at the bottom of RAM, so an overflow runs into it; QEMU silently
//             drops writes below RAM, so without it nothing would trap; it costs
//             no RAM);
//   region 1: the whole flash region, read-only (the model is `const` in flash
//             as on a real part, where QEMU's "flash" is really writable RAM).
// With TZ_BOARD_STM32F405 (the Netduino Plus 2, QEMU netduinoplus2; ld/stm32f405.ld)
// the stack is at the bottom of CCM instead, so region 0 lies just below CCM;
// the vector table is the part's (16 + 82 entries, VTOR set to flash), and
// the clock tree is programmed for 168 MHz from the 25 MHz crystal, as far as
// the chip answers (board_clock_init below).
// Every fault prints its cause through semihosting and exits with status 99.
// The fault handlers turn the MPU off and run on the bottom of the stack: see below.
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "semihost.h"

extern uint32_t __data_load__[];
extern void __libc_init_array(void);
extern int main(void);

void _init(void) {}  // -nostartfiles: no crti.o
void _fini(void) {}
void* __dso_handle = 0;  // normally from crtbegin.o

#define REG(addr) (*(volatile uint32_t*)(addr))
#define SCB_CCR REG(0xE000ED14u)
#define SCB_SHCSR REG(0xE000ED24u)
#define SCB_CFSR REG(0xE000ED28u)
#define SCB_HFSR REG(0xE000ED2Cu)
#define SCB_MMFAR REG(0xE000ED34u)
#define SCB_BFAR REG(0xE000ED38u)
#define SCB_CPACR REG(0xE000ED88u)
#define MPU_CTRL REG(0xE000ED94u)
#define MPU_RNR REG(0xE000ED98u)
#define MPU_RBAR REG(0xE000ED9Cu)
#define MPU_RASR REG(0xE000EDA0u)

enum { kFaultExit = 99, kFaultStackBytes = 512 /* the fault handlers' stack: see TZ_FAULT_HANDLER */ };

// log2 of the smallest power of two >= n (n >= 32).
static uint32_t log2_ceil(uint32_t n) {
  uint32_t l = 31u - (uint32_t)__builtin_clz(n);
  return (1u << l) < n ? l + 1 : l;
}

// RASR: XN bit 28, AP bits 26:24, TEX/S/C/B bits 21:16, SIZE bits 5:1 (2^(SIZE+1) bytes), ENABLE bit 0.
static void mpu_region(uint32_t number, uint32_t base, uint32_t size_bytes, uint32_t ap, int execute_never) {
  MPU_RNR = number;
  MPU_RBAR = base;
  MPU_RASR = ((uint32_t)(execute_never ? 1 : 0) << 28) | (ap << 24) | (1u << 17) /* C: normal memory */ |
             ((log2_ceil(size_bytes) - 1u) << 1) | 1u;
}

static void mpu_init(void) {
  const uint32_t guard = (uint32_t)(uintptr_t)__stack_guard_size__;
  mpu_region(0, (uint32_t)(uintptr_t)__stack_limit__ - guard, guard, 0u /* no access */, 1);
  mpu_region(1, (uint32_t)(uintptr_t)__flash_origin__, (uint32_t)(uintptr_t)__flash_size__,
             6u /* read-only, privileged and unprivileged */, 0);
  MPU_CTRL = (1u << 2) /* PRIVDEFENA: default map elsewhere */ | 1u /* ENABLE */;
  __asm__ volatile("dsb\n isb" ::: "memory");
}

#if defined(TZ_BOARD_STM32F405)
#define SCB_VTOR REG(0xE000ED08u)
#define RCC_CR REG(0x40023800u)
#define RCC_PLLCFGR REG(0x40023804u)
#define RCC_CFGR REG(0x40023808u)
#define FLASH_ACR REG(0x40023C00u)

enum { kClockPollLimit = 100000 };  // a real HSE starts in ~2 ms (HSE_STARTUP_TIMEOUT in ST's code)

static int poll_set(volatile uint32_t* reg, uint32_t mask, uint32_t want) {
  for (int i = 0; i < kClockPollLimit; ++i)
    if ((*reg & mask) == want) return 1;
  return 0;
}

// SYSCLK 168 MHz from the Netduino Plus 2's 25 MHz crystal: PLL M = 25, N = 336,
// P = 2 (VCO 336 MHz), Q = 7 (48 MHz USB); AHB /1, APB1 /4 (42 MHz), APB2 /2
// (84 MHz); flash 5 wait states with prefetch and caches (RM0090 table 10, 2.7-3.6 V).
// Every wait is bounded: a part whose HSE or PLL never reports ready stays on
// the 16 MHz HSI, and `info` says which. QEMU 7.2's STM32F405 has no RCC model
// (the block reads as zero), so there the wait for HSERDY runs out; QEMU
// itself clocks the core (and SysTick) at a fixed 168 MHz.
static const char* g_clock = "not set up";

static void board_clock_init(void) {
  RCC_CR |= 1u << 16;  // HSEON
  if (!poll_set(&RCC_CR, 1u << 17, 1u << 17)) {
    RCC_CR &= ~(1u << 16);
    g_clock = "HSI 16 MHz: HSE never ready (RCC not modelled?)";
    return;
  }
  FLASH_ACR = 5u | (1u << 8) /* PRFTEN */ | (1u << 9) /* ICEN */ | (1u << 10) /* DCEN */;
  RCC_PLLCFGR = 25u | (336u << 6) | (0u << 16) /* P = 2 */ | (1u << 22) /* HSE */ | (7u << 24);
  RCC_CR |= 1u << 24;  // PLLON
  if (!poll_set(&RCC_CR, 1u << 25, 1u << 25)) {
    g_clock = "HSE 25 MHz: PLL never locked";
    RCC_CFGR = (RCC_CFGR & ~3u) | 1u;  // SW = HSE
    return;
  }
  RCC_CFGR = (RCC_CFGR & ~0xFCF3u) | (5u << 10) /* APB1 /4 */ | (4u << 13) /* APB2 /2 */ | 2u /* SW = PLL */;
  g_clock = poll_set(&RCC_CFGR, 0xCu, 0x8u) ? "PLL 168 MHz (HSE 25 MHz)" : "PLL locked, switch not confirmed";
}

const char* board_clock_name(void) { return g_clock; }
#else
const char* board_clock_name(void) { return "fixed by the board"; }
#endif

void Reset_Handler(void) {
  uint32_t* dst = (uint32_t*)__data_start__;
  const uint32_t* src = __data_load__;
  while (dst < (uint32_t*)__data_end__) *dst++ = *src++;
  for (dst = (uint32_t*)__bss_start__; dst < (uint32_t*)__bss_end__;) *dst++ = 0;
#if defined(__ARM_FP)
  SCB_CPACR |= 0xFu << 20;  // CP10, CP11: full access to the FPU
  __asm__ volatile("dsb\n isb" ::: "memory");
#endif
#if defined(TZ_BOARD_STM32F405)
  SCB_VTOR = (uint32_t)(uintptr_t)__flash_origin__;  // booted through the 0x0 alias of flash
  board_clock_init();
#endif
  SCB_SHCSR |= 7u << 16;  // MemManage, BusFault, UsageFault get their own handlers
  SCB_CCR |= 1u << 4;     // DIV_0_TRP: integer division by zero faults instead of giving 0
  mpu_init();
  __libc_init_array();
  sh_exit(main());
}

// ------------------------------------------------------------------ faults

static const char* fault_cause(uint32_t cfsr, uint32_t hfsr, uint32_t mmfar) {
  const uint32_t guard_hi = (uint32_t)(uintptr_t)__stack_limit__;
  const uint32_t guard_lo = guard_hi - (uint32_t)(uintptr_t)__stack_guard_size__;
  const uint32_t flash_lo = (uint32_t)(uintptr_t)__flash_origin__;
  const uint32_t flash_hi = flash_lo + (uint32_t)(uintptr_t)__flash_size__;
  if (cfsr & (1u << 4)) return "stack overflow: exception entry hit the MPU stack guard (MSTKERR)";
  if ((cfsr & (1u << 7)) && mmfar >= guard_lo && mmfar < guard_hi)
    return "stack overflow into the MPU stack guard";
  if ((cfsr & (1u << 7)) && (cfsr & 2u) && mmfar >= flash_lo && mmfar < flash_hi)
    return "write to flash (read-only: the model and code are const)";
  if (cfsr & 2u) return "MPU data access violation";
  if (cfsr & 1u) return "MPU instruction access violation";
  if (cfsr & (1u << 12)) return "bus fault while stacking";
  if (cfsr & (1u << 9)) return "precise data bus error";
  if (cfsr & (1u << 10)) return "imprecise data bus error";
  if (cfsr & (1u << 8)) return "instruction bus error";
  if (cfsr & (1u << 25)) return "integer division by zero";
  if (cfsr & (1u << 24)) return "unaligned access";
  if (cfsr & (1u << 16)) return "undefined instruction";
  if (cfsr & (1u << 17)) return "invalid state (Thumb bit clear)";
  if (cfsr & (1u << 18)) return "invalid exception return";
  if (cfsr & (1u << 19)) return "coprocessor access (FPU disabled?)";
  if (hfsr & (1u << 1)) return "vector table read error";
  if (hfsr & (1u << 30)) return "escalated fault";
  return "unknown";
}

static const char* const kFaultNames[] = {"HardFault", "MemManage", "BusFault", "UsageFault"};

// Appends "<name>=<8 hex digits> " to buf at *at (no printf: a fault handler
// must not depend on newlib's formatting or its stack appetite).
static void put_hex(char* buf, int* at, const char* name, uint32_t v) {
  while (*name) buf[(*at)++] = *name++;
  buf[(*at)++] = '=';
  for (int shift = 28; shift >= 0; shift -= 4) buf[(*at)++] = "0123456789abcdef"[(v >> shift) & 0xFu];
  buf[(*at)++] = ' ';
  buf[*at] = 0;
}

// Runs on the fault stack (see below) with the faulting context's stack
// pointer and EXC_RETURN; prints the cause and the stacked PC when the frame
// is readable, then ends the run with status 99.
void tz_fault_entry(uint32_t* frame, uint32_t exc_return, uint32_t kind) {
  const uint32_t cfsr = SCB_CFSR, hfsr = SCB_HFSR, mmfar = SCB_MMFAR, bfar = SCB_BFAR;
  sh_write0("FAULT ");
  sh_write0(kFaultNames[kind & 3u]);
  sh_write0(": ");
  sh_write0(fault_cause(cfsr, hfsr, mmfar));
  sh_write0("\n  ");
  char line[160];
  int at = 0;
  put_hex(line, &at, "CFSR", cfsr);
  put_hex(line, &at, "HFSR", hfsr);
  put_hex(line, &at, "MMFAR", mmfar);
  put_hex(line, &at, "BFAR", bfar);
  put_hex(line, &at, "SP", (uint32_t)(uintptr_t)frame);
  put_hex(line, &at, "EXC_RETURN", exc_return);
  const uintptr_t lo = (uintptr_t)__stack_limit__ + kFaultStackBytes;  // below: the handler's own stack
  if ((uintptr_t)frame >= lo && (uintptr_t)frame + 32 <= (uintptr_t)__stack_top__) {
    put_hex(line, &at, "PC", frame[6]);  // stacked r0-r3, r12, lr, pc, xpsr
    put_hex(line, &at, "LR", frame[5]);
  }
  line[at++] = '\n';
  line[at] = 0;
  sh_write0(line);
  sh_exit(kFaultExit);
}

// The faulting stack may be the one that overflowed. The handlers turn the MPU
// off and run on the lowest kFaultStackBytes of the stack region: no RAM is set
// aside for fault handling, and a faulting frame above that stays readable (a
// fault that deep in the stack is an overflow, whose frame is lost anyway).
#define TZ_FAULT_HANDLER(name, kind)        \
  __attribute__((naked)) void name(void) {  \
    __asm__ volatile(                       \
        "ldr r0, =0xE000ED94\n"             \
        "movs r1, #0\n"                     \
        "str r1, [r0]\n" /* MPU_CTRL = 0 */ \
        "dsb\n"                             \
        "isb\n"                             \
        "mrs r0, msp\n"                     \
        "mov r1, lr\n"                      \
        "ldr r2, =__stack_limit__ + 512\n"  \
        "mov sp, r2\n"                      \
        "movs r2, #" #kind                  \
        "\n"                                \
        "b tz_fault_entry\n");              \
  }
TZ_FAULT_HANDLER(HardFault_Handler, 0)
TZ_FAULT_HANDLER(MemManage_Handler, 1)
TZ_FAULT_HANDLER(BusFault_Handler, 2)
TZ_FAULT_HANDLER(UsageFault_Handler, 3)

void Default_Handler(void) { board_fail(98, "unexpected exception or interrupt"); }

typedef void (*Vector)(void);
#if defined(TZ_BOARD_STM32F405)
enum { kDeviceVectors = 82 };  // STM32F405: IRQ 0 (WWDG) .. 81 (FPU), RM0090 table 61
#else
enum { kDeviceVectors = 16 };
#endif
__attribute__((section(".isr_vector"), used)) const Vector tz_vectors[16 + kDeviceVectors] = {
    (Vector)(uintptr_t)__stack_top__,  // initial MSP
    Reset_Handler,
    Default_Handler,  // NMI
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0,
    0,
    0,
    0,
    Default_Handler,  // SVCall
    Default_Handler,  // DebugMonitor
    0,
    Default_Handler,  // PendSV
    Default_Handler,  // SysTick
    [16 ... 16 + kDeviceVectors - 1] = Default_Handler,  // device interrupts: none enabled
};
