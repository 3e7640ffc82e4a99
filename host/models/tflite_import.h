// TensorFlow Lite int8 models -> .tzm (tinyzo import, --model x.tflite; docs/import.md).
//
// Each TFLite operator of subgraph 0 becomes exactly one .tzm op, in the same order, so .tzm op k
// is TFLite operator k, and every activation keeps its TFLite tensor index in its name ("t<index>"):
// TFLM's per-operator outputs (goldens "op<k>_t<tensor>") compare one to one. Activations drop the
// batch axis (which must be 1): [1, H, W, C] -> [H, W, C], [1, N] -> [N].
//
// Mapping (TensorFlow Lite Micro's reference-kernel semantics, integer parameters derived on the
// host exactly as TFLM's Prepare does, host/models/tflite_params.h):
//   CONV_2D, DEPTHWISE_CONV_2D (any depth multiplier: a grouped conv), FULLY_CONNECTED
//       -> kConv2d / kFullyConnected with fixed-point requantization (format 1.1: an int32
//          [2, C_out] multiplier/shift tensor, TFLite's QuantizeMultiplier of
//          double(s_x) * double(s_w[o]) / double(s_y)); per-channel or per-tensor int8 weights,
//          int32 bias (absent = zeros); fused NONE / RELU / RELU6 / RELU_N1_TO_1 as an act range
//   ADD -> kAddTfl; AVERAGE_POOL_2D -> kAvgPool2dTfl; MAX_POOL_2D -> kMaxPool2d; MEAN over H, W
//   -> kMeanTfl; PAD -> kPad; RESHAPE -> kReshape; TRANSPOSE (batch axis fixed) -> kTranspose;
//   SOFTMAX -> kSoftmaxTfl; QUANTIZE -> kQuantize; DEQUANTIZE -> kDequantize.
// SAME / VALID padding becomes explicit pads as TFLite computes them (extra pixel after).
// Anything else (another operator, int16 / float tensors where int8 is needed, dilation,
// broadcasting ADD, variable tensors, several inputs / outputs, ...) is refused with one line
// "<file>: operator <k> (<NAME>): <reason>".
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/tflite_reader.h"

namespace tinyzo {

struct TfliteImport {
  std::vector<uint8_t> tzm;            // the serialized, ModelView-checked .tzm
  int n_ops = 0;
  int n_tensors = 0;
  std::map<std::string, int> op_counts;  // TFLite operator name -> count
};

// Maps a read TFLite model to a .tzm. Throws CliError "<what>: ..." naming the operator (index
// and name) and the reason for anything unsupported.
TfliteImport import_tflite(const tflite::TfliteModel& model, const std::string& what);

// Reads `src` (.tflite) and imports it.
TfliteImport import_tflite_file(const std::string& src);

// True when `path` ends in ".tflite" (case-insensitive) or its first bytes carry the TFLite
// identifier "TFL3": the model arguments treat such files as TensorFlow Lite models.
bool looks_like_tflite(const std::string& path);

// The key of op `op_index`'s output in an intermediates archive, as TFLM's goldens name them:
// "op<k, 3 digits>_<output tensor name>" (for an imported model "op007_t61").
std::string intermediate_key(int op_index, const std::string& tensor_name);

}  // namespace tinyzo
