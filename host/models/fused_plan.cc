#include "models/fused_plan.h"

#include "models/model_store.h"
#include "tinyzo/engine.h"
#include "tinyzo/kernels/kernels.h"
#include "util/errors.h"

namespace tinyzo {

FusedPlan plan_fused(const ModelView& model, const std::vector<int>& unfused) {
  EngineOptions o;
  o.fuse = true;
  o.unfused_ops = Span<const int>(unfused.data(), unfused.size());
  // The arena does not depend on the kernel table: the reference one serves.
  EngineInstance inst(model, ref::table(), 1, o);
  const Engine& e = inst.engine();
  FusedPlan p;
  for (int k = 0; k < e.n_fused_blocks(); ++k) p.blocks.push_back(e.fused_block(k));
  p.activation_bytes = e.activation_bytes();
  p.required_bytes = e.arena_bytes();
  p.requests.resize(size_t(model.n_tensors()) + p.blocks.size());
  auto check = [](Status s, const char* what) {
    if (s != Status::kOk) throw CliError(std::string("fused plan: ") + what + ": " + status_name(s));
  };
  check(build_fused_requests(model, Span<const FusedBlock>(p.blocks.data(), p.blocks.size()),
                             Span<BufferRequest>(p.requests.data(), p.requests.size())),
        "the fused requests");
  p.offsets.resize(p.requests.size());
  std::vector<int> scratch(plan_buffers_scratch_size(p.requests.size()));
  size_t planned = 0;
  check(plan_buffers(p.req(), Span<size_t>(p.offsets.data(), p.offsets.size()),
                     Span<int>(scratch.data(), scratch.size()), &planned),
        "planning the fused requests");
  return p;
}

}  // namespace tinyzo
