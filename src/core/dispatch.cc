// Chooses the kernel table once. On x86_64: the fastest table the CPU supports (avx512vnni >
// avx2 > portable, by run-time CPU detection), unless the environment variable TINYZO_KERNELS
// names another one ("ref", "portable", "avx2", "avx512vnni"; an unknown or unsupported name is
// ignored). Elsewhere the choice is made at compile time: the Armv7E-M DSP table ("armv7em-dsp")
// when the compiler targets the DSP extension (Cortex-M4/M7: __ARM_FEATURE_DSP), else ref. The
// armv7em kernels are compiled on every build (the host runs them with C models of the DSP
// instructions, for tests), but only a DSP target picks them. Defining TINYZO_KERNELS_REF
// (e.g. CXXFLAGS=-DTINYZO_KERNELS_REF for a firmware build) keeps ref on a DSP target, to measure
// the reference on the device.
#include "tinyzo/kernels/kernels.h"

#if defined(__x86_64__)
#include <atomic>
#include <cstdlib>

#include "tinyzo/kernels/x86.h"
#elif defined(__ARM_FEATURE_DSP) && !defined(TINYZO_KERNELS_REF)
#include "kernels/armv7em/armv7em.h"
#endif

namespace tinyzo {

const KernelTable& best_kernels() {
#if defined(__x86_64__)
  // Any thread may compute the choice; all compute the same one, so a relaxed atomic suffices
  // (no function-local static: the device library is built with -fno-threadsafe-statics).
  static std::atomic<const KernelTable*> chosen{nullptr};
  const KernelTable* t = chosen.load(std::memory_order_relaxed);
  if (t == nullptr) {
    t = x86::find_table(std::getenv("TINYZO_KERNELS"));
    if (t == nullptr) t = &x86::fastest_table();
    chosen.store(t, std::memory_order_relaxed);
  }
  return *t;
#elif defined(__ARM_FEATURE_DSP) && !defined(TINYZO_KERNELS_REF)
  return armv7em::table();
#else
  return ref::table();
#endif
}

}  // namespace tinyzo
