// Chooses the kernel table once. x86 paths are added by src/kernels/x86 (run-time
// CPU detection); Cortex-M builds pick the DSP table at compile time.
#include "tinyzo/kernels/kernels.h"

namespace tinyzo {

const KernelTable& best_kernels() { return ref::table(); }

}  // namespace tinyzo
