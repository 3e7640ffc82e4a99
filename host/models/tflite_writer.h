// .tzm models -> new TensorFlow Lite files (tinyzo export MODEL.tzm --tflite OUT.tflite, without
// --from; docs/import.md, "Export to TFLite").
//
// Writes a complete .tflite (FlatBuffers, schema version 3, file identifier "TFL3") through the
// builder code flatc generates from tinyzo's schema subset (host/models/tflite/tflite_subset.fbs,
// TensorFlow Lite's field ids), for any model whose arithmetic TFLite's int8 kernels compute bit
// for bit. The op mapping is the importer's (host/models/tflite_import.h) read backwards:
//   Conv2d (fixed-point)        -> CONV_2D, or DEPTHWISE_CONV_2D when groups == C_in > 1
//                                  (weight [C_out, kh, kw, 1] -> [1, kh, kw, C_out])
//   FullyConnected (fixed-point) -> FULLY_CONNECTED
//   AddTfl -> ADD, AvgPool2dTfl -> AVERAGE_POOL_2D, MaxPool2d -> MAX_POOL_2D, MeanTfl -> MEAN (axes
//   [1, 2]), Pad -> PAD, Reshape -> RESHAPE, Transpose -> TRANSPOSE, SoftmaxTfl -> SOFTMAX,
//   Quantize -> QUANTIZE, Dequantize -> DEQUANTIZE.
// Every activation gets the batch axis back ([H, W, C] -> [1, H, W, C], [N] -> [1, N]); every
// tensor keeps its .tzm name (the importer turns short, unique output names back into op names).
// A conv whose padding is neither TFLite's SAME nor VALID (the paper's stride-2 convs pad k/2 on
// both sides, SAME pads the odd pixel after) becomes PAD (with the input zero point, which the
// conv reads as 0, so the result is identical) + a VALID conv; the PAD's output is named
// "<conv output name>.pad" when that fits.
//
// Exactness is checked, not assumed: for every op the integers TFLite's Prepare derives from the
// written scales and options (host/models/tflite_params.h) must equal the ones the .tzm stores
// (conv / FC multipliers and shifts per channel, ADD / MEAN / SOFTMAX / QUANTIZE params, act
// ranges as a fused activation, pool windows as SAME / VALID). Anything else is refused with one
// line naming the op, e.g. the paper's float-scale requantization, residual Add, GlobalAvgPool,
// AvgPool2d or float head: "run tinyzo convert MODEL --tflite -o OUT.tzm first".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tinyzo/model.h"

namespace tinyzo {

struct TfliteWrite {
  std::vector<uint8_t> bytes;  // the .tflite file
  int n_operators = 0;         // TFLite operators written
  int n_tensors = 0;           // TFLite tensors written
  int n_pads = 0;              // PAD operators inserted before convs with non-TFLite padding
};

// Builds the .tflite of `model`. Throws CliError "<what>: op <k> '<name>' (<type>): <reason>"
// for an op TFLite cannot express exactly (nothing is built then).
TfliteWrite write_tflite(const ModelView& model, const std::string& what);

// Builds, checks that the result reads back through tinyzo's TFLite reader and importer, and
// writes OUT through a temporary file and a rename (never a partial file).
TfliteWrite write_tflite_file(const ModelView& model, const std::string& what, const std::string& out_path);

}  // namespace tinyzo
