// Kernel signatures and the dispatch table. Each ISA namespace (ref, x86,
// armv7em) provides functions with these signatures; the engine calls them
// through a KernelTable chosen once (at run time on x86, at compile time on
// Cortex-M). Every implementation matches ref:: bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/kernels/params.h"

namespace tinyzo {

// x: NHWC int8 [in_h][in_w][in_c]; w: [out_c][kh][kw][in_c/groups]; bias int32
// [out_c]; mult f32 [out_c]; y: [out_h][out_w][out_c]. No scratch.
using ConvFn = void (*)(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                        const float* mult, int8_t* y);
using AddFn = void (*)(const AddParams& p, const int8_t* x1, const int8_t* x2, int8_t* y, size_t n);
// Global average pool: x [h*w][c] -> y [c].
using GlobalAvgPoolFn = void (*)(int hw, int c, const int8_t* x, int8_t* y);
using PoolFn = void (*)(const PoolParams& p, const int8_t* x, int8_t* y);
// y[n] = sum_k (f32(x[k]-z)*s) * w[n][k] in index order, + b[n]
using LinearF32Fn = void (*)(const LinearF32Params& p, const int8_t* x, const float* w, const float* b,
                             float* y);

// TFLite ops (docs/semantics.md, "TFLite operators"): n elements for the
// element-wise ones; shapes in the params for the others.
using TflAddFn = void (*)(const TflAddParams& p, const int8_t* x1, const int8_t* x2, int8_t* y, size_t n);
using TflMeanFn = void (*)(const TflMeanParams& p, const int8_t* x, int8_t* y);
using TflSoftmaxFn = void (*)(const TflSoftmaxParams& p, const int8_t* x, int8_t* y);
using RequantizeFn = void (*)(const QuantizeParams& p, const int8_t* x, int8_t* y, size_t n);
using QuantizeF32Fn = void (*)(const QuantizeParams& p, const float* x, int8_t* y, size_t n);
using PadFn = void (*)(const PadParams& p, const int8_t* x, int8_t* y);
using TransposeFn = void (*)(const TransposeParams& p, const int8_t* x, int8_t* y);

struct KernelTable {
  const char* name;        // "ref", "avx2", "avx512vnni", "armv7em-dsp"
  ConvFn conv2d;           // general: any kernel/stride/padding/groups
  ConvFn depthwise_conv2d; // groups == in_c == out_c
  ConvFn pointwise_conv2d; // 1x1, stride 1, no padding, groups 1
  AddFn add;
  GlobalAvgPoolFn global_avg_pool;
  PoolFn max_pool2d;
  PoolFn avg_pool2d;
  LinearF32Fn linear_f32;
  // TFLite ops: every table may point at the ref:: versions (cheap, memory-bound ops).
  TflAddFn add_tfl;
  PoolFn avg_pool2d_tfl;
  TflMeanFn mean_tfl;
  TflSoftmaxFn softmax_tfl;
  RequantizeFn requantize;
  QuantizeF32Fn quantize_f32;
  PadFn pad;
  TransposeFn transpose;
};

namespace ref {
void conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
               const float* mult, int8_t* y);
void depthwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y);
void pointwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y);
void add_s8(const AddParams& p, const int8_t* x1, const int8_t* x2, int8_t* y, size_t n);
void global_avg_pool_s8(int hw, int c, const int8_t* x, int8_t* y);
void max_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y);
void avg_pool2d_s8(const PoolParams& p, const int8_t* x, int8_t* y);
void linear_f32(const LinearF32Params& p, const int8_t* x, const float* w, const float* b, float* y);
void add_tfl_s8(const TflAddParams& p, const int8_t* x1, const int8_t* x2, int8_t* y, size_t n);
void avg_pool2d_tfl_s8(const PoolParams& p, const int8_t* x, int8_t* y);
void mean_tfl_s8(const TflMeanParams& p, const int8_t* x, int8_t* y);
void softmax_tfl_s8(const TflSoftmaxParams& p, const int8_t* x, int8_t* y);
void requantize_s8(const QuantizeParams& p, const int8_t* x, int8_t* y, size_t n);
void quantize_f32_s8(const QuantizeParams& p, const float* x, int8_t* y, size_t n);
void pad_s8(const PadParams& p, const int8_t* x, int8_t* y);
void transpose_s8(const TransposeParams& p, const int8_t* x, int8_t* y);
const KernelTable& table();
}  // namespace ref

// The TFLite-op entries of a KernelTable (the last eight members) when a table
// uses the reference versions, as every table does today.
#define TZ_REF_TFLITE_KERNELS                                                                          \
  ::tinyzo::ref::add_tfl_s8, ::tinyzo::ref::avg_pool2d_tfl_s8, ::tinyzo::ref::mean_tfl_s8,             \
      ::tinyzo::ref::softmax_tfl_s8, ::tinyzo::ref::requantize_s8, ::tinyzo::ref::quantize_f32_s8,     \
      ::tinyzo::ref::pad_s8, ::tinyzo::ref::transpose_s8

// The best table for this machine (host: by CPU features; device: compile time).
const KernelTable& best_kernels();

}  // namespace tinyzo
