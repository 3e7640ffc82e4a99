# CMake toolchain file: bare-metal Cortex-M with Debian's gcc-arm-none-eabi (12.2) and newlib.
#
#   cmake --preset m4f      # TINYZO_MCU=cortex-m4f  (mps2-an386 under QEMU)
#   cmake --preset m7       # TINYZO_MCU=cortex-m7   (mps2-an500 under QEMU)
#   cmake --preset m3       # TINYZO_MCU=cortex-m3   (mps2-an385 under QEMU: no FPU, no DSP extension)
#   cmake -B build/x -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake -DTINYZO_MCU=cortex-m7 ...
#
# Sets, for every target of the build: the core's -mcpu/-mfpu/-mfloat-abi, Thumb code, one section
# per function and per object (so firmware links can --gc-sections), and -O2 for Release (CMake's
# default -O3 grows code on an MCU for little gain). What the device library must not use (heap,
# exceptions, RTTI, stdio) is enforced by its own compile options and scripts/check_device_symbols.sh.
#
# Exported for firmware/ and tests: TINYZO_MCU, TINYZO_MCU_FLAGS, TINYZO_QEMU_MACHINE.

set(CMAKE_SYSTEM_NAME Generic)

if(NOT TINYZO_MCU)
  set(TINYZO_MCU cortex-m4f)
endif()
set(TINYZO_MCU "${TINYZO_MCU}" CACHE STRING "Target core: cortex-m4f, cortex-m7 or cortex-m3" FORCE)
set_property(CACHE TINYZO_MCU PROPERTY STRINGS cortex-m4f cortex-m7 cortex-m3)
# try_compile projects re-read this file; hand them the same core.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES TINYZO_MCU)

if(TINYZO_MCU STREQUAL "cortex-m4f")
  set(CMAKE_SYSTEM_PROCESSOR cortex-m4)
  set(TINYZO_MCU_FLAGS "-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard -mthumb")
  set(TINYZO_QEMU_MACHINE mps2-an386)
elseif(TINYZO_MCU STREQUAL "cortex-m7")
  set(CMAKE_SYSTEM_PROCESSOR cortex-m7)
  set(TINYZO_MCU_FLAGS "-mcpu=cortex-m7 -mfpu=fpv5-d16 -mfloat-abi=hard -mthumb")
  set(TINYZO_QEMU_MACHINE mps2-an500)
elseif(TINYZO_MCU STREQUAL "cortex-m3")
  # Armv7-M without the DSP extension and without an FPU: every float operation is a libgcc
  # soft-float call (__aeabi_fmul, ...), and best_kernels() is ref:: (src/core/dispatch.cc).
  set(CMAKE_SYSTEM_PROCESSOR cortex-m3)
  set(TINYZO_MCU_FLAGS "-mcpu=cortex-m3 -mfloat-abi=soft -mthumb")
  set(TINYZO_QEMU_MACHINE mps2-an385)
else()
  message(FATAL_ERROR "TINYZO_MCU='${TINYZO_MCU}': expected cortex-m4f, cortex-m7 or cortex-m3")
endif()

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
# No linker script exists while CMake probes the compiler: probe with a static library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(_tz_common "${TINYZO_MCU_FLAGS} -ffunction-sections -fdata-sections")
set(CMAKE_C_FLAGS_INIT "${_tz_common}")
set(CMAKE_CXX_FLAGS_INIT "${_tz_common}")
set(CMAKE_ASM_FLAGS_INIT "${TINYZO_MCU_FLAGS}")
# The *_INIT variables would only be prepended to CMake's own "-O3 -DNDEBUG"; a cache entry made
# here first is kept (and can still be overridden with -D).
foreach(_lang C CXX)
  set(CMAKE_${_lang}_FLAGS_RELEASE "-O2 -DNDEBUG" CACHE STRING "Release flags (Cortex-M: -O2)")
endforeach()
# Executables (firmware) add their own linker script, startup and --specs=rdimon.specs.
set(CMAKE_EXE_LINKER_FLAGS_INIT "${TINYZO_MCU_FLAGS} --specs=nano.specs -Wl,--gc-sections")

# Never pick up host libraries or headers.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
