// The activation plan of an engine with fused row-band blocks
// (EngineOptions::fuse), as the host tools report and account it: `tinyzo
// plan` (its fused rows) and the trainer's memory prediction
// (predict_training_memory with --fuse) read the same plan from here.
#pragma once
#include <cstddef>
#include <vector>

#include "tinyzo/fusion.h"
#include "tinyzo/model.h"
#include "tinyzo/planner.h"
#include "tinyzo/span.h"

namespace tinyzo {

struct FusedPlan {
  std::vector<FusedBlock> blocks;        // the blocks the engine chose
  std::vector<BufferRequest> requests;   // tensors, then one scratch request per block (build_fused_requests)
  std::vector<size_t> offsets;           // plan_buffers' offsets of `requests` (what the engine plans)
  size_t activation_bytes = 0;           // the engine's activation arena
  size_t required_bytes = 0;             // everything its init takes (activations + tables)
  Span<const BufferRequest> req() const { return Span<const BufferRequest>(requests.data(), requests.size()); }
  Span<const size_t> offs() const { return Span<const size_t>(offsets.data(), offsets.size()); }
};

// Initializes a fused engine over `model` with the `unfused` ops kept out of
// the blocks (the trained layers: the trainer needs their input boundary and
// full output) and returns its plan. Throws CliError when the model cannot be
// planned.
FusedPlan plan_fused(const ModelView& model, const std::vector<int>& unfused);

}  // namespace tinyzo
