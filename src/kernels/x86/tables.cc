// CPU feature detection and the three x86 kernel tables.
#include <cstring>

#include "tinyzo/kernels/x86.h"

namespace tinyzo::x86 {

CpuFeatures cpu_features() {
  // libgcc's detection also checks that the OS saves the AVX / AVX-512 register state (XGETBV).
  __builtin_cpu_init();
  CpuFeatures f;
  f.avx2 = __builtin_cpu_supports("avx2");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512vnni = f.avx2 && f.avx512f && f.avx512bw && f.avx512vl && __builtin_cpu_supports("avx512vnni");
  return f;
}

const KernelTable& portable_table() {
  static const KernelTable kTable = {"portable",
                                     portable::conv2d_s8,
                                     portable::depthwise_conv2d_s8,
                                     portable::conv2d_1x1_s8,
                                     portable::add_s8,
                                     portable::global_avg_pool_s8,
                                     portable::max_pool2d_s8,
                                     portable::avg_pool2d_s8,
                                     portable::linear_f32, TZ_REF_TFLITE_KERNELS};
  return kTable;
}

const KernelTable& avx2_table() {
  static const KernelTable kTable = {
      "avx2",          avx2::conv2d_s8,          avx2::depthwise_conv2d_s8, avx2::conv2d_1x1_s8,
      avx2::add_s8,    avx2::global_avg_pool_s8, avx2::max_pool2d_s8,       avx2::avg_pool2d_s8,
      avx2::linear_f32, TZ_REF_TFLITE_KERNELS};
  return kTable;
}

const KernelTable& avx512vnni_table() {
  static const KernelTable kTable = {"avx512vnni",
                                     avx512vnni::conv2d_s8,
                                     avx512vnni::depthwise_conv2d_s8,
                                     avx512vnni::conv2d_1x1_s8,
                                     avx512vnni::add_s8,
                                     avx512vnni::global_avg_pool_s8,
                                     avx512vnni::max_pool2d_s8,
                                     avx512vnni::avg_pool2d_s8,
                                     avx512vnni::linear_f32, TZ_REF_TFLITE_KERNELS};
  return kTable;
}

bool table_supported(const KernelTable& table) {
  if (&table == &avx2_table()) return cpu_features().avx2;
  if (&table == &avx512vnni_table()) return cpu_features().avx512vnni;
  return true;
}

const KernelTable* find_table(const char* name) {
  if (name == nullptr) return nullptr;
  const KernelTable* all[] = {&ref::table(), &portable_table(), &avx2_table(), &avx512vnni_table()};
  for (const KernelTable* t : all)
    if (std::strcmp(name, t->name) == 0) return table_supported(*t) ? t : nullptr;
  return nullptr;
}

const KernelTable& fastest_table() {
  const CpuFeatures f = cpu_features();
  if (f.avx512vnni) return avx512vnni_table();
  if (f.avx2) return avx2_table();
  return portable_table();
}

}  // namespace tinyzo::x86
