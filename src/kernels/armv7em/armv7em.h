// Cortex-M4/M7 kernels using the DSP extension (SXTB16, SMLAD, SMLAxy): the "armv7em-dsp" table.
// Each function matches ref:: bit for bit (docs/kernels.md, "armv7em"). The source is also
// compiled on the host, with exact C models of the DSP instructions (acle_compat.h), so that
// tests/armv7em_kernels_test.cc can check it against ref:: there; best_kernels() returns this
// table only when the compiler targets the DSP extension (__ARM_FEATURE_DSP).
//
// Memory: no heap, no static buffers, no caller scratch. Stack buffers: depthwise 392 B of packed
// weights, general conv 384 B of im2col rows; pointwise none. Shapes beyond those buffers
// (depthwise kernels over 49 taps, general convs with kh*kw*C_in/groups > 96, or an input zero
// point outside int8 for the general conv) take the exact ref:: kernel.
#pragma once
#include <cstdint>

#include "tinyzo/kernels/kernels.h"

namespace tinyzo::armv7em {

void conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias, const float* mult,
               int8_t* y);
void depthwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y);
void pointwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y);

// Largest depthwise kernel (kh * kw) and general-conv reduction (kh * kw * C_in / groups, rounded up
// to 4) the fast paths take; larger ones run ref::.
constexpr int kDepthwiseMaxTaps = 49;
constexpr int kConvMaxReduction = 96;

// "armv7em-dsp": the three convolutions above; add, pools and the float head are ref:: (they are
// float or byte-wise work the DSP extension does not speed up, and < 1 % of a forward).
const KernelTable& table();

}  // namespace tinyzo::armv7em
