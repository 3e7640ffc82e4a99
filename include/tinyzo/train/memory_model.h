// Exact SRAM / flash accounting for inference, ZO training and (for
// comparison) back-propagation training, computed from the graph alone.
// The rules are written out, with a worked example, in docs/memory.md; every
// number here is what that page defines, byte for byte. Device-safe: no heap,
// the caller passes every table (one entry per tensor unless said otherwise).
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/model.h"
#include "tinyzo/planner.h"
#include "tinyzo/span.h"
#include "tinyzo/status.h"
#include "tinyzo/train/zo_trainer.h"

namespace tinyzo {

// ---------------------------------------------------------------- inference

// Flash held by a .tzm model (it is read in place), split by what the bytes are.
struct FlashBreakdown {
  size_t file_bytes = 0;        // the whole file: what the device keeps in flash
  size_t weight_bytes = 0;      // int8 weights of Conv2d / FullyConnected
  size_t bias_bytes = 0;        // int32 biases of Conv2d / FullyConnected
  size_t multiplier_bytes = 0;  // float32 requantization multipliers
  size_t head_bytes = 0;        // float32 weight + bias of LinearF32 heads
  size_t scale_bytes = 0;       // float32 per-channel weight scales (quant_count * 4)
  size_t other_const_bytes = 0; // any other constant blob
  size_t table_bytes = 0;       // header + tensor table + op table
  size_t padding_bytes = 0;     // alignment padding (the rest of the file)
};
Status flash_breakdown(const ModelView& model, FlashBreakdown* out);

// The activation plan of inference: exactly what the Engine plans (its
// requests come from build_buffer_requests, the offsets from plan_buffers).
struct InferenceMemory {
  size_t activation_bytes = 0;   // planned arena for activations (plan_buffers' total)
  size_t peak_live_bytes = 0;    // max over ops of the bytes alive at that op (no plan beats it)
  int peak_op = 0;               // the op where live bytes peak (first one)
  size_t sum_tensor_bytes = 0;   // every activation tensor without reuse
};
// Fills `requests`, `offsets` (n_tensors entries each; `scratch`
// plan_buffers_scratch_size(n_tensors) ints) and `*out`. kInvalidArgument
// for short tables or an invalid model.
Status plan_inference(const ModelView& model, Span<BufferRequest> requests, Span<size_t> offsets,
                      Span<int> scratch, InferenceMemory* out);

// Bytes of the requests alive at op `op` (first_use <= op <= last_use); an
// in-place pair (is_inplace_pair) that hands over at `op` is counted once.
size_t live_bytes_at(Span<const BufferRequest> requests, int op);
// Bytes of the requests alive across the cut before op `op` (first_use < op
// <= last_use): what a suffix run from `op` needs restored. Same definition
// as Engine::boundary_size_bytes.
size_t boundary_bytes(Span<const BufferRequest> requests, int op);

// ---------------------------------------------------------------- ZO training

// Trainable layers and their mode are the trainer's own types (TrainLayer,
// PerturbMode in zo_trainer.h), so a trainer configuration can be sized as is.
const char* perturb_mode_name(PerturbMode m);  // "WP" / "NP"
// The earlier names of this header, kept for existing callers.
using ZoMode = PerturbMode;
inline const char* zo_mode_name(PerturbMode m) { return perturb_mode_name(m); }

struct ZoSettings {
  int n_queries = 50;  // Q per layer (WP splits it between W and b, NP uses all Q on the output)
  int batch = 100;     // B; streamed one sample at a time, so it changes no buffer size
  // The trainer's own query counts; 0 = from Q: (Q + 1) / 2 on W, Q / 2 on b
  // (at least 1 each), Q for NP.
  int n_queries_w = 0, n_queries_b = 0, n_queries_np = 0;
  bool two_sided = false;  // antithetic queries: two losses per query
  // NP: keep the node gradient G of the sample as a float32 buffer of the
  // output's size. By default it is never materialized: the sample's Q
  // scalars (Lq[b] - L0[b]) / mu are kept and the in-layer backward
  // regenerates u_q at each output element (counter-based RNG, METHOD §3.7).
  bool np_materialize_grad = false;
  // ZoConfig::one_layer_per_pass: one layer per pass over the batch; the NP
  // layers share one dW/db accumulator (ZoMemory::shared_grad_bytes) and
  // every NP layer but the last keeps its updated int8 weights / int32 biases
  // until the step ends (ZoLayerMemory::pending_bytes).
  bool one_layer_per_pass = false;
  // ZoConfig::momentum (> 0: a float32 running average per trained weight and
  // bias, ZoLayerMemory::momentum_bytes).
  float momentum = 0.f;
  // ZoConfig::bias_only (model-wise, every layer at once): per layer the
  // int32 biases (perturbed in place) and a float32 db accumulator, for the
  // whole step; no weight copy and no workspace; plus the Q_b coefficients of
  // the sample (ZoMemory::bias_coef_bytes).
  bool bias_only = false;
};

// The ZoTrainer configuration these settings describe (query counts, sides;
// everything else default).
ZoConfig zo_trainer_config(const ZoSettings& settings);

// Extra SRAM of one trainable layer, beyond the inference arena. Every figure
// is what ZoTrainer takes from its arena, to the byte: each buffer is rounded
// up to the arena's 16-byte alignment.
// Persistent buffers live for a whole step (every layer is estimated at the
// same weights, then all are updated); transient ones only while this layer
// is estimated on one sample, in the shared ZO workspace.
struct ZoLayerMemory {
  int op = -1;
  PerturbMode mode = PerturbMode::kWeight;
  size_t n_weights = 0;          // d_w
  size_t n_bias = 0;             // C_out
  size_t n_outputs = 0;          // D: output elements per sample
  // persistent
  size_t record_bytes = 0;       // the trainer's layer-table record (ZoTrainer::layer_record_bytes())
  size_t weight_bytes = 0;       // SRAM copy of the int8 weights (d_w)
  size_t bias_bytes = 0;         // SRAM copy of the int32 bias (4 C_out)
  size_t scalar_bytes = 0;       // WP: float32 batch sums of Lq, one per query and side (4 Q_w + 4 Q_b)
  size_t grad_bytes = 0;         // NP: float32 dW and db accumulators (4 d_w + 4 C_out); 0 with one_layer_per_pass
  size_t pending_bytes = 0;      // NP, one_layer_per_pass, not the last NP layer: its updated W and b (d_w + 4 C_out)
  size_t momentum_bytes = 0;     // momentum > 0: float32 running averages of dW and db (4 d_w + 4 C_out)
  // transient (in the trainer's one workspace)
  size_t boundary_bytes = 0;     // cache of the tensors alive across the cut before `op`
  size_t perturbed_bytes = 0;    // WP: clamp(P + sigma u_q), max(d_w, 4 C_out): what the engine reads
  size_t query_loss_bytes = 0;   // WP: float32 loss of each query (and side) of the tensor being estimated
  size_t offset_bytes = 0;       // NP: 0, the perturbation is written into the layer output in place
  size_t sample_scalar_bytes = 0; // NP: float32 (Lq[b] - L0[b]) / mu of this sample, one per query (4 Q)
  size_t node_grad_bytes = 0;    // NP with np_materialize_grad: float32 G of this sample (4 D); hypothetical
  size_t mask_bytes = 0;         // NP: 0, saturation is read off the unperturbed output
  size_t loss_bytes = 0;         // 0: L0 of the sample is a scalar of the trainer's stack frame

  size_t persistent_bytes() const {
    return record_bytes + weight_bytes + bias_bytes + scalar_bytes + grad_bytes + pending_bytes + momentum_bytes;
  }
  size_t transient_bytes() const {
    return boundary_bytes + perturbed_bytes + query_loss_bytes + offset_bytes + sample_scalar_bytes +
           node_grad_bytes + mask_bytes + loss_bytes;
  }
  // Extra SRAM if this were the only trainable layer.
  size_t extra_bytes() const { return persistent_bytes() + transient_bytes(); }
};

// One layer. kInvalidArgument when `op` is not a Conv2d / FullyConnected op
// or the settings are out of range (Q < 1, B < 1).
Status zo_layer_memory(const ModelView& model, Span<const BufferRequest> requests, int op, PerturbMode mode,
                       const ZoSettings& settings, ZoLayerMemory* out);

struct ZoMemory {
  size_t persistent_bytes = 0;  // sum over layers of the persistent buffers (+ shared_grad_bytes)
  size_t shared_grad_bytes = 0; // one_layer_per_pass: the NP layers' one float32 dW/db accumulator
  size_t bias_coef_bytes = 0;   // bias_only: float32 loss differences of the sample, one per query (4 Q_b)
  size_t workspace_bytes = 0;   // max over layers of the transient buffers (one shared workspace)
  size_t extra_bytes = 0;       // persistent + workspace: what ZO adds to the inference SRAM
                                // (persistent only once zo_place_workspace found a gap for it)
  int workspace_op = -1;        // the layer that sizes the workspace
  bool workspace_in_arena = false;  // zo_place_workspace: the workspace sits in a gap of the plan
};
// A set of layers (distinct ops, any order). `per_layer` gets layers.size() entries.
Status zo_memory(const ModelView& model, Span<const BufferRequest> requests, Span<const TrainLayer> layers,
                 const ZoSettings& settings, Span<ZoLayerMemory> per_layer, ZoMemory* out);

// Where ZoTrainer puts its workspace (layer-wise estimation): inside the
// inference plan when the plan has a gap for it. The workspace holds nothing
// across samples, and the next sample's prefix [0, first_op) is the only run
// that writes tensors not alive at or after first_op, so the bytes of those
// tensors are free for it from first_op on. Finds the lowest 16-aligned
// offset o with [o, o + bytes) inside [lowest offset, highest end) of the
// planned (nonzero) requests and overlapping no request with last_use >=
// first_op; `offsets` may have any common origin (ZoTrainer passes the
// engine's addresses). Fused-block scratch requests (build_fused_requests,
// after the tensors) are treated like tensors: a block running at or after
// first_op is an obstacle, an earlier one prefix-only memory (the engine tells
// the trainer where each block's scratch is: Engine::fused_scratch). Returns
// false when there is no such gap (then the workspace is a buffer of its own
// beside the arena).
bool zo_workspace_gap(Span<const BufferRequest> requests, Span<const size_t> offsets, int first_op, size_t bytes,
                      size_t* offset);
// Applies that rule to a set's figures: `z` from zo_memory() for layers whose
// earliest op is `first_op`, `offsets` the inference plan (plan_inference).
// Sets z->workspace_in_arena and, when the gap exists, drops the workspace
// from z->extra_bytes (it costs no SRAM then).
Status zo_place_workspace(Span<const BufferRequest> requests, Span<const size_t> offsets, int first_op,
                          ZoMemory* z);

// The ZO workspace is per sample: nothing in it survives into the next
// sample's prefix run [0, first_op). So it may also sit in activation-arena
// bytes that only the prefix uses. This plans the inference requests plus one
// workspace request alive over [first_op, n_ops] (first_op = the earliest
// trained op) and returns the arena size in `*arena_bytes`: the growth over
// the inference plan is what the workspace then costs. `work` and `offsets`
// need n_tensors + 1 entries, `scratch` plan_buffers_scratch_size(n_tensors
// + 1) ints. (Using it needs the trainer to put its workspace at the planned
// offset inside the engine's activations.)
Status zo_workspace_in_arena(const ModelView& model, Span<const BufferRequest> requests, int first_op,
                             size_t workspace_bytes, Span<BufferRequest> work, Span<size_t> offsets,
                             Span<int> scratch, size_t* arena_bytes);

// ---------------------------------------------------------------- BP (comparison)

enum class BpKind : uint8_t {
  kFull = 0,    // autograd-style: every op from the earliest trained one on keeps its int8 inputs
  kSparse = 1,  // MIT tiny-training style: only trained layers keep their input; 1-bit clamp masks elsewhere
};
const char* bp_kind_name(BpKind k);  // "BP" / "sparse BP"

struct BpMemory {
  size_t arena_bytes = 0;         // plan over forward + backward time: activations, saved tensors,
                                  // masks and float32 activation gradients
  size_t saved_bytes = 0;         // int8 activations kept for the backward (sum, no reuse)
  size_t mask_bytes = 0;          // 1-bit clamp masks kept for the backward (sum)
  size_t max_grad_bytes = 0;      // largest float32 activation-gradient buffer
  size_t weight_bytes = 0;        // SRAM copies of trained int8 weights + int32 biases
  size_t weight_grad_bytes = 0;   // float32 dW + db of the trained layers (accumulated over the batch)
  size_t extra_bytes = 0;         // arena_bytes - inference activation plan + weight + weight_grad
};
// Number of requests bp_memory plans: (time steps are 0..2 n_ops).
size_t bp_request_count(const ModelView& model);
// Plans back-propagation for `layers` (their op indices; modes ignored).
// `work` needs bp_request_count() requests, `offsets` as many, `scratch`
// plan_buffers_scratch_size(bp_request_count()) ints.
// `inference_activation_bytes` is plan_inference's figure.
Status bp_memory(const ModelView& model, Span<const BufferRequest> requests, Span<const TrainLayer> layers,
                 BpKind kind, size_t inference_activation_bytes, Span<BufferRequest> work,
                 Span<size_t> offsets, Span<int> scratch, BpMemory* out);

}  // namespace tinyzo
