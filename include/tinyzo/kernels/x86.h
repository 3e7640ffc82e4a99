// x86 kernels: three kernel tables chosen at run time by CPU features, each bit for bit equal to
// ref:: (docs/semantics.md; design and exactness argument in docs/kernels.md).
//
//   portable    plain C++ shaped for the compiler's auto-vectorizer at the baseline ISA (SSE2)
//   avx2        AVX2 (vpmaddwd on int16): needs cpu_features().avx2
//   avx512vnni  AVX-512 F/BW/VL + VNNI (vpdpbusd, vpdpwssd): needs cpu_features().avx512vnni
//
// Calling a table's kernels on a CPU without its features is undefined (illegal instruction);
// find_table() and best_kernels() only hand out tables the CPU supports. The kernels take no
// scratch from the caller and never allocate: each uses at most kMaxStackBytes of stack and falls
// back to a slower exact path (ultimately ref::) for shapes its fixed buffers cannot hold.
// This header is declarations only; the definitions exist only in x86_64 builds.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/kernels/kernels.h"

namespace tinyzo::x86 {

// Upper bound of the stack any x86 kernel uses for its fixed buffers (packed weights, staged
// input rows), in bytes. Host threads that run kernels need at least this much stack free.
inline constexpr size_t kMaxStackBytes = 96 * 1024;

// What the CPU and the OS support (AVX state enabled in XCR0, as reported by libgcc's
// __builtin_cpu_supports). avx512vnni is true only with AVX-512 F, BW and VL as well.
struct CpuFeatures {
  bool avx2 = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
};
CpuFeatures cpu_features();

// The tables. Each has name "portable", "avx2" or "avx512vnni". portable_table() runs anywhere on
// x86_64; the other two only where cpu_features() says so.
const KernelTable& portable_table();
const KernelTable& avx2_table();
const KernelTable& avx512vnni_table();

// True when this CPU can run `table` (ref and portable always).
bool table_supported(const KernelTable& table);

// The table called `name` ("ref", "portable", "avx2", "avx512vnni"), or nullptr when the name is
// unknown or the CPU lacks the features. `name` may be nullptr (returns nullptr).
const KernelTable* find_table(const char* name);

// The fastest supported table: avx512vnni > avx2 > portable. Not cached (best_kernels() caches
// this choice and applies the TINYZO_KERNELS override).
const KernelTable& fastest_table();

// The individual kernels, for benchmarks and tests. Signatures and contracts as in kernels.h
// (ConvFn, AddFn, ...); pointwise is conv2d_1x1_s8 and requires kh = kw = 1, stride 1, no
// padding, groups 1, out_h*out_w == in_h*in_w.
#define TZ_X86_DECLARE_KERNELS                                                                         \
  void conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,           \
                 const float* mult, int8_t* y);                                                        \
  void depthwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias, \
                           const float* mult, int8_t* y);                                              \
  void conv2d_1x1_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,       \
                     const float* mult, int8_t* y);                                                    \
  void add_s8(const AddParams& p, const int8_t* x1, const int8_t* x2, int8_t* y, size_t n);            \
  void global_avg_pool_s8(int hw, int c, const int8_t* x, int8_t* y);                                  \
  void max_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y);                                 \
  void avg_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y);                                 \
  void linear_f32(const LinearF32Params& p, const int8_t* x, const float* w, const float* b, float* y);

namespace portable {
TZ_X86_DECLARE_KERNELS
}  // namespace portable
namespace avx2 {
TZ_X86_DECLARE_KERNELS
}  // namespace avx2
namespace avx512vnni {
TZ_X86_DECLARE_KERNELS
}  // namespace avx512vnni

#undef TZ_X86_DECLARE_KERNELS

}  // namespace tinyzo::x86
