// The tinyzo model file (.tzm), version 1.1: on-disk records, read in place.
// Byte-level description: docs/format.md. All integers little-endian; the
// device library reads these structs directly from flash, so every record is
// naturally aligned and every constant blob starts on a 16-byte boundary.
#pragma once
#include <cstdint>

namespace tinyzo {

constexpr uint32_t kTzmMagic = 0x314D5A54u;  // the bytes "TZM1"
constexpr uint16_t kTzmVersionMajor = 1;
constexpr uint16_t kTzmVersionMinor = 1;  // 1.1: fixed-point requantization (readers take 1.0 too)
constexpr uint32_t kTzmAlign = 16;      // alignment of the data section and every blob
constexpr int kTzmMaxDims = 4;
constexpr int kTzmMaxOpInputs = 4;
constexpr int kTzmMaxOpParams = 12;
constexpr int kTzmNameLen = 32;

enum class DType : uint8_t { kInt8 = 0, kInt32 = 1, kFloat32 = 2 };

// Tensor flags (bit set).
enum TensorFlag : uint16_t {
  kTensorConstant = 1u << 0,    // data lives in the file (flash)
  kTensorTrainable = 1u << 1,   // may be trained: a copy goes to SRAM when selected
  kTensorInput = 1u << 2,       // the model input
  kTensorOutput = 1u << 3,      // the model output
  kTensorPerChannel = 1u << 4,  // per-output-channel scales at quant_offset
};

enum class OpType : uint16_t {
  kConv2d = 1,            // int8 NHWC conv, any k/stride/pad/groups (depthwise when groups == C_in == C_out)
  kAdd = 2,               // int8 residual add, real-valued, requantized
  kGlobalAvgPool = 3,     // int8 mean over H x W, rounded half to even
  kLinearF32 = 4,         // float32 head on dequantized int8 features -> float32 logits
  kFullyConnected = 5,    // int8 fully-connected (a 1x1 conv on a vector)
  kMaxPool2d = 6,         // int8 max pool
  kAvgPool2d = 7,         // int8 average pool (count excludes padding), rounded half to even
  kDequantize = 8,        // int8 -> float32 real values (also TFLite DEQUANTIZE: the same arithmetic)
  // TensorFlow Lite Micro reference semantics (docs/semantics.md, "TFLite operators"). Every
  // integer TFLM derives in Prepare is computed on the host at import and stored in the params,
  // so the device needs no float for these int8 ops. TFLite MAX_POOL_2D maps to kMaxPool2d and
  // DEQUANTIZE to kDequantize (identical arithmetic).
  kAddTfl = 9,            // int8 ADD: TFLM's fixed-point rescale of both inputs (left shift 20)
  kAvgPool2dTfl = 10,     // int8 AVERAGE_POOL_2D: integer mean, rounded half away from zero
  kMeanTfl = 11,          // int8 MEAN over H and W: int32 sum, one fixed-point rescale
  kPad = 12,              // constant PAD of any axis with a stored int8 value
  kReshape = 13,          // same bytes, new dims (a copy)
  kTranspose = 14,        // permutation of the axes (rank <= 4)
  kSoftmaxTfl = 15,       // int8 SOFTMAX over the last axis, TFLM's fixed-point exp
  kQuantize = 16,         // int8 -> int8 requantize, or float32 -> int8
};
constexpr uint16_t kOpTypeMax = 16;

// Op params by type (unused entries are 0):
//   kConv2d:        [kh, kw, stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right, groups, act_min, act_max]
//                   inputs: [x, weight (int8 [Co][kh][kw][Ci/groups]), bias (int32 [Co]), multiplier (f32 [Co])]
//                   multiplier[o] = float32(double(s_x) * double(s_w[o])), see docs/semantics.md
//                   params[11] (kConvRequant): 0 = that float-scale rule; 1 = TFLite's fixed-point
//                   rule (format 1.1): inputs[3] is then an int32 constant [2, Co], row 0 the
//                   multipliers (0 or in [2^30, 2^31)), row 1 the shifts (> 0 left, in [-31, 30]);
//                   see docs/semantics.md, "Fixed-point requantization (TFLite)"
//   kFullyConnected: [act_min, act_max, requant]; inputs as kConv2d with weight [Co][Ci]; params[2]
//                   (kFcRequant) as kConvRequant
//   kAdd:           [act_min, act_max]; inputs [x1, x2]
//   kGlobalAvgPool: []; kDequantize: []
//   kLinearF32:     []; inputs [x (int8), weight (f32 [N][C]), bias (f32 [N])]
//   kMaxPool2d / kAvgPool2d: [kh, kw, stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right, act_min, act_max]
//
// TFLite ops (multipliers are TFLite's Q31 `quantized_multiplier`, >= 0; a shift > 0 shifts left):
//   kAddTfl:        [act_min, act_max, left_shift, x1_mult, x1_shift, x2_mult, x2_shift, y_mult, y_shift]
//                   inputs [x1, x2]: int8, same dims; y int8 of those dims. Offsets are the tensors'
//                   zero points. left_shift in [0, 20], x*/y shifts in [-31, 0].
//   kAvgPool2dTfl:  as kMaxPool2d; x, y int8 rank 3 [H, W, C].
//   kMeanTfl:       [mult, shift]; x int8 [H, W, C]; y int8 [1, 1, C] (keep_dims) or [C].
//                   mult/shift already include TFLM's 1/(H*W) fold (tflite_mean_params).
//   kPad:           [before_0..before_3, after_0..after_3, value]; x int8 of rank r, y int8 of rank r with
//                   y.dims[k] = before_k + x.dims[k] + after_k; entries for k >= r are 0; value in int8.
//   kReshape:       []; x, y of one dtype and element count (a byte copy).
//   kTranspose:     [perm_0..perm_3]; x, y int8 of one rank r, y.dims[k] = x.dims[perm_k];
//                   perm_0..perm_{r-1} a permutation of 0..r-1, entries for k >= r are 0.
//   kSoftmaxTfl:    [input_multiplier, input_left_shift, diff_min]; x, y int8 of the same dims, softmax
//                   over the last axis; y quantization must be scale 1/256, zero point -128.
//   kQuantize:      [mult, shift]; x int8 -> y int8 of the same element count (requantize), or
//                   x float32 -> y int8 (params unused, 0; divides by y.scale in float32).
enum TflAddParam : int {
  kTflAddActMin = 0, kTflAddActMax, kTflAddLeftShift, kTflAddX1Mult, kTflAddX1Shift, kTflAddX2Mult,
  kTflAddX2Shift, kTflAddYMult, kTflAddYShift
};
enum TflMeanParam : int { kTflMeanMult = 0, kTflMeanShift };
enum PadParam : int { kPadBefore = 0, kPadAfter = 4, kPadValue = 8 };  // kPadBefore + axis, kPadAfter + axis
enum TflSoftmaxParam : int { kTflSoftmaxMult = 0, kTflSoftmaxLeftShift, kTflSoftmaxDiffMin };
enum QuantizeParam : int { kQuantizeMult = 0, kQuantizeShift };
enum ConvParam : int {
  kConvKh = 0, kConvKw, kConvStrideH, kConvStrideW, kConvPadTop, kConvPadLeft, kConvPadBottom,
  kConvPadRight, kConvGroups, kConvActMin, kConvActMax, kConvRequant
};
enum FcParam : int { kFcActMin = 0, kFcActMax, kFcRequant };
// Values of kConvRequant / kFcRequant.
enum RequantKind : int32_t { kRequantFloatScale = 0, kRequantFixedPoint = 1 };
enum PoolParam : int {
  kPoolKh = 0, kPoolKw, kPoolStrideH, kPoolStrideW, kPoolPadTop, kPoolPadLeft, kPoolPadBottom,
  kPoolPadRight, kPoolActMin, kPoolActMax
};

// Every field is naturally aligned; the static_asserts pin the layout.
struct TzmHeader {                 // 64 bytes at offset 0
  uint32_t magic;                  // kTzmMagic
  uint16_t version_major;          // must equal kTzmVersionMajor
  uint16_t version_minor;          // newer minor versions stay readable
  uint32_t header_size;            // sizeof(TzmHeader)
  uint32_t file_size;              // total bytes
  uint32_t crc32;                  // CRC-32 (IEEE, reflected) of bytes [header_size, file_size)
  uint32_t n_tensors;
  uint32_t tensor_table_offset;    // n_tensors * sizeof(TzmTensor)
  uint32_t n_ops;
  uint32_t op_table_offset;        // n_ops * sizeof(TzmOp), in execution order
  uint32_t data_offset;            // start of the constant data section (16-aligned)
  uint32_t data_size;
  int32_t input_tensor;            // index of the model input
  int32_t output_tensor;           // index of the model output
  uint32_t reserved[3];            // zero
};

struct TzmTensor {                 // 80 bytes
  char name[kTzmNameLen];          // NUL-terminated
  uint8_t dtype;                   // DType
  uint8_t rank;                    // 1..kTzmMaxDims
  uint16_t flags;                  // TensorFlag bits
  int32_t dims[kTzmMaxDims];       // activations: [H, W, C] (batch 1, NHWC); unused dims are 1
  uint32_t data_offset;            // constants: offset of the blob within the data section
  uint32_t data_size;              // constants: byte size of the blob (= element count * dtype size)
  float scale;                     // int8 activations: real = scale * (q - zero_point)
  int32_t zero_point;
  uint32_t quant_offset;           // per-channel: offset of float32 scales within the data section
  uint32_t quant_count;            // per-channel: number of scales (= dims[0])
  uint32_t reserved;               // zero
};

struct TzmOp {                     // 104 bytes
  char name[kTzmNameLen];          // e.g. "1.4.conv.0" (the source model's layer name)
  uint16_t type;                   // OpType
  uint8_t n_inputs;
  uint8_t n_outputs;               // always 1 in version 1
  int32_t inputs[kTzmMaxOpInputs]; // tensor indices, -1 when absent
  int32_t output;
  int32_t params[kTzmMaxOpParams];
};

static_assert(sizeof(TzmHeader) == 64, "header layout");
static_assert(sizeof(TzmTensor) == 80, "tensor record layout");
static_assert(sizeof(TzmOp) == 104, "op record layout");

}  // namespace tinyzo
