// Converting a model's requantization from the paper's float-scale rule to TFLite's fixed-point
// rule (docs/semantics.md, "Fixed-point requantization (TFLite)"; `tinyzo convert --requant fixed`).
#pragma once
#include <cstdint>
#include <vector>

#include "tinyzo/model.h"

namespace tinyzo {

struct RequantConversion {
  std::vector<uint8_t> bytes;  // the converted model (format 1.1)
  int converted_ops = 0;       // conv and fully-connected ops rewritten
  int kept_ops = 0;            // every other op (unchanged)
  // Channels of converted ops whose bias is so large that acc + bias can leave int32 for some
  // input (|bias| + max |acc| > 2^31 - 1; max |acc| = sum |w| * max |x - z_x|). The float-scale
  // rule adds them in binary32 and saturates; TFLite's int32 addition wraps, so these channels'
  // outputs differ (the "dead" channels of the paper's checkpoints carry bias +-2^31).
  int wrapping_channels = 0;
  int clamped_biases = 0;      // of those, biases clamped (ConvertOptions::clamp_bias)
  // ConvertOptions::tflite: ops rewritten to a TFLite op type (Add -> AddTfl, GlobalAvgPool ->
  // MeanTfl, AvgPool2d -> AvgPool2dTfl, LinearF32 -> FullyConnected + Dequantize).
  int remapped_ops = 0;
  // The int8 output quantization given to a quantized float head (0 when there was none).
  float head_scale = 0.f;
  int32_t head_zero = 0;
};

struct ConvertOptions {
  // Clamp each such bias to [INT32_MIN + max |acc|, INT32_MAX - max |acc|], so acc + bias never
  // wraps and the channel saturates as under the float-scale rule. Changes those bias tensors
  // (every other byte of them stays); off by default: the conversion then only rewrites the
  // requantization operands.
  bool clamp_bias = false;
  // Produce a model TFLite computes bit for bit (tinyzo export --tflite without --from):
  // * every conv / FC multiplier is derived from the scales exactly as TFLite's Prepare does,
  //   QuantizeMultiplier(double(s_x) * double(s_w[o]) / double(s_y)) (instead of from the stored
  //   f32 m[o] = f32(s_x s_w[o]), which can differ in the last bits of M);
  // * Add -> AddTfl (TFLite ADD), GlobalAvgPool -> MeanTfl (MEAN over H, W, keep dims),
  //   AvgPool2d -> AvgPool2dTfl, with params from the scales as TFLite derives them
  //   (host/models/tflite_params.h); act ranges kept (they must be a TFLite fused activation);
  // * a LinearF32 head -> int8 FullyConnected (fixed point) + Dequantize to the same float32
  //   output tensor: one weight scale s_w = max |W| / 127 (per tensor, as TFLite's converter
  //   quantizes FC weights), w = round(W / s_w) (half away from zero), bias = round(b / (s_x s_w))
  //   int32, output quantization
  //   (head_scale, head_zero) when head_scale > 0, else symmetric over the largest logit
  //   magnitude the weights allow (data-free: s_x * sum_c |W[n,c]| * max|q - z_x| + |b[n]|,
  //   over n, / 127).
  // These ops compute TFLite's rounding, so outputs may differ from the paper's by a step.
  bool tflite = false;
  float head_scale = 0.f;
  int32_t head_zero = 0;
};

// The model `m` with every Conv2d and FullyConnected op that uses the float-scale rule rewritten
// to the fixed-point rule: its f32 multiplier operand mult [Co] replaced by an int32 [2, Co]
// constant of the same name holding TFLite's QuantizeMultiplier(double(mult[o]) / double(s_y))
// (quantize_multiplier of host/models/tflite_params.h; s_y the
// op's output scale). Tensor and op order, names, weights, biases, scales and every other op stay
// as they are. Ops already fixed-point are kept. Throws CliError naming the op when a multiplier
// is shared by two ops or a ratio is negative, not finite, or needs a shift above 30. With
// options.clamp_bias, the wrapping biases are clamped (a bias tensor shared by two ops: error).
// With options.tflite, also rewrites the ops listed there (throws CliError naming the op when an
// act range is no TFLite fused activation or the float head's weights or tensors are shared).
RequantConversion convert_to_fixed_point(const ModelView& m, const ConvertOptions& options = {});

}  // namespace tinyzo
