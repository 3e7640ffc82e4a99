// Converting a model's requantization from the paper's float-scale rule to TFLite's fixed-point
// rule (docs/semantics.md, "Fixed-point requantization (TFLite)"; `tinyzo convert --requant fixed`).
#pragma once
#include <cstdint>
#include <vector>

#include "tinyzo/model.h"

namespace tinyzo {

// TFLite's QuantizeMultiplier: m = q * 2^(shift - 31) with q in [2^30, 2^31), computed as TFLite
// does (frexp, std::round half away from zero, the carry q = 2^31 -> 2^30 with shift + 1, and
// shift < -31 flushed to q = 0, shift = 0). m = 0 gives (0, 0). A private copy until the shared
// one (host/models/tflite_params.h, branch tflite-ops) is merged.
void quantize_multiplier_tflite(double m, int32_t* quantized, int* shift);

struct RequantConversion {
  std::vector<uint8_t> bytes;  // the converted model (format 1.1)
  int converted_ops = 0;       // conv and fully-connected ops rewritten
  int kept_ops = 0;            // every other op (unchanged)
};

// The model `m` with every Conv2d and FullyConnected op that uses the float-scale rule rewritten
// to the fixed-point rule: its f32 multiplier operand mult [Co] replaced by an int32 [2, Co]
// constant of the same name holding QuantizeMultiplier(double(mult[o]) / double(s_y)) (s_y the
// op's output scale). Tensor and op order, names, weights, biases, scales and every other op stay
// as they are. Ops already fixed-point are kept. Throws CliError naming the op when a multiplier
// is shared by two ops or a ratio is negative, not finite, or needs a shift above 30.
RequantConversion convert_to_fixed_point(const ModelView& m);

}  // namespace tinyzo
