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
};

struct ConvertOptions {
  // Clamp each such bias to [INT32_MIN + max |acc|, INT32_MAX - max |acc|], so acc + bias never
  // wraps and the channel saturates as under the float-scale rule. Changes those bias tensors
  // (every other byte of them stays); off by default: the conversion then only rewrites the
  // requantization operands.
  bool clamp_bias = false;
};

// The model `m` with every Conv2d and FullyConnected op that uses the float-scale rule rewritten
// to the fixed-point rule: its f32 multiplier operand mult [Co] replaced by an int32 [2, Co]
// constant of the same name holding TFLite's QuantizeMultiplier(double(mult[o]) / double(s_y))
// (quantize_multiplier of host/models/tflite_params.h; s_y the
// op's output scale). Tensor and op order, names, weights, biases, scales and every other op stay
// as they are. Ops already fixed-point are kept. Throws CliError naming the op when a multiplier
// is shared by two ops or a ratio is negative, not finite, or needs a shift above 30. With
// options.clamp_bias, the wrapping biases are clamped (a bias tensor shared by two ops: error).
RequantConversion convert_to_fixed_point(const ModelView& m, const ConvertOptions& options = {});

}  // namespace tinyzo
