// Imported .tzm -> .tflite: the original bytes with the adapted weights and biases. See
// tflite_export.h.
#include "models/tflite_export.h"

#include <cstring>
#include <map>
#include <set>

#include "models/model_store.h"
#include "models/tflite_import.h"
#include "models/tzm_writer.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {

namespace {

using tflite::TflTensor;
using tflite::TfliteModel;

std::string tensor_text(const ModelView& v, int i) { return "tensor " + std::to_string(i) + " '" + v.tensor(i).name + "'"; }

std::string dims_text(const TzmTensor& t) {
  std::string s = "[";
  for (int d = 0; d < t.rank; ++d) s += (d ? ", " : "") + std::to_string(t.dims[d]);
  return s + "]";
}

// The first way `m` (the model) differs from `r` (ORIG re-imported), ignoring the data of the
// tensors in `free_data`; empty when there is none.
std::string first_difference(const ModelView& m, const ModelView& r, const std::set<int>& free_data) {
  if (m.n_ops() != r.n_ops())
    return std::to_string(m.n_ops()) + " ops, the original has " + std::to_string(r.n_ops());
  if (m.n_tensors() != r.n_tensors())
    return std::to_string(m.n_tensors()) + " tensors, the original has " + std::to_string(r.n_tensors());
  if (m.input_tensor() != r.input_tensor() || m.output_tensor() != r.output_tensor())
    return "input / output tensors differ";
  for (int i = 0; i < m.n_ops(); ++i) {
    const TzmOp &a = m.op(i), &b = r.op(i);
    if (std::strncmp(a.name, b.name, kTzmNameLen) != 0)
      return "op " + std::to_string(i) + " is '" + std::string(a.name) + "', the original's is '" + b.name + "'";
    const std::string ot = "op " + std::to_string(i) + " '" + a.name + "': ";
    if (a.type != b.type) return ot + "type " + std::to_string(a.type) + ", the original's is " + std::to_string(b.type);
    if (a.n_inputs != b.n_inputs || a.n_outputs != b.n_outputs || std::memcmp(a.inputs, b.inputs, sizeof a.inputs) != 0 ||
        a.output != b.output)
      return ot + "inputs or output differ";
    if (std::memcmp(a.params, b.params, sizeof a.params) != 0) return ot + "parameters differ";
    if (std::memcmp(&a, &b, sizeof a) != 0) return ot + "record differs";
  }
  for (int i = 0; i < m.n_tensors(); ++i) {
    const TzmTensor &a = m.tensor(i), &b = r.tensor(i);
    const std::string at = tensor_text(m, i);
    if (std::strncmp(a.name, b.name, kTzmNameLen) != 0)
      return "tensor " + std::to_string(i) + " is '" + std::string(a.name) + "', the original's is '" + b.name + "'";
    if (a.dtype != b.dtype) return at + ": dtype differs";
    if (a.rank != b.rank || std::memcmp(a.dims, b.dims, sizeof a.dims) != 0)
      return at + ": shape " + dims_text(a) + ", the original's is " + dims_text(b);
    if (a.flags != b.flags) return at + ": flags differ";
    if (std::memcmp(&a.scale, &b.scale, sizeof a.scale) != 0 || a.zero_point != b.zero_point)
      return at + ": quantization differs";
    if (a.quant_count != b.quant_count ||
        (a.quant_count > 0 && std::memcmp(m.channel_scales(i), r.channel_scales(i), 4 * size_t(a.quant_count)) != 0))
      return at + ": per-channel scales differ";
    if (a.data_size != b.data_size) return at + ": " + std::to_string(a.data_size) + " data bytes, the original has " + std::to_string(b.data_size);
    if ((a.flags & kTensorConstant) != 0 && free_data.count(i) == 0 &&
        std::memcmp(m.data(i), r.data(i), a.data_size) != 0)
      return at + ": constant values differ (only conv / fully-connected weights and biases may change)";
  }
  return {};
}

// One pending write: TFLite tensor `tensor` gets `bytes` (its data size).
struct Write {
  int tensor = 0;
  int op = 0;  // the operator whose .tzm copy it comes from
  std::vector<uint8_t> bytes;
};

}  // namespace

TfliteExport export_tflite(const ModelView& model, const std::string& model_what, const TfliteModel& orig,
                           const std::string& orig_what) {
  // The importer is deterministic: ORIG imported again is MODEL before training.
  const TfliteImport imp = import_tflite(orig, orig_what);
  const LoadedModel ref = LoadedModel::from_bytes(imp.tzm.data(), imp.tzm.size(), orig_what + " (imported)");
  const ModelView& r = ref.view();
  auto not_adaptation = [&](const std::string& why) -> CliError {
    return CliError(model_what + " is not an adaptation of " + orig_what + ": " + why);
  };
  if (size_t(r.n_ops()) != orig.ops.size()) throw CliError(orig_what + ": internal: import gave " + std::to_string(r.n_ops()) + " ops");

  // The trainable constants and where each goes in the TFLite file. .tzm op k is TFLite
  // operator k (tflite_import.h); its inputs 1 and 2 are the weight and the bias.
  std::set<int> free_data;
  std::vector<Write> writes;
  for (int k = 0; k < r.n_ops(); ++k) {
    const tflite::TflOperator& op = orig.ops[size_t(k)];
    const bool depthwise = op.builtin == tflite::kOpDepthwiseConv2d;
    if (op.builtin != tflite::kOpConv2d && !depthwise && op.builtin != tflite::kOpFullyConnected) continue;
    if (k >= model.n_ops()) break;  // first_difference reports the op count
    const TzmOp& rop = r.op(k);
    const TzmOp& mop = model.op(k);
    if (std::memcmp(&rop, &mop, sizeof rop) != 0) continue;  // first_difference reports it
    const int wi = rop.inputs[1], bi = rop.inputs[2];
    free_data.insert(wi);
    free_data.insert(bi);
    auto same_constant = [&](int i) {
      return i >= 0 && i < model.n_tensors() && (model.tensor(i).flags & kTensorConstant) != 0 &&
             model.tensor(i).data_size == r.tensor(i).data_size;
    };
    if (!same_constant(wi) || !same_constant(bi)) continue;  // first_difference reports it
    const std::string where = orig_what + ": operator " + std::to_string(k) + " (" + tflite::builtin_name(op.builtin) + ")";

    // Weight: TFLite's OHWI / [C_out, C_in] is tinyzo's layout; a depthwise [1, kh, kw, C_out]
    // was transposed to [C_out, kh, kw, 1] by the importer and is transposed back.
    const int wt = op.inputs[1];
    const TflTensor& w = orig.tensors[size_t(wt)];
    const uint8_t* mw = static_cast<const uint8_t*>(model.data(wi));
    Write ww{wt, k, std::vector<uint8_t>(w.data_size)};
    if (ww.bytes.size() != model.tensor(wi).data_size) throw CliError(where + ": internal: weight size mismatch");
    if (depthwise) {
      const int32_t kh = w.shape[1], kw = w.shape[2], co = w.shape[3];
      for (int32_t oc = 0; oc < co; ++oc)
        for (int32_t y = 0; y < kh; ++y)
          for (int32_t x = 0; x < kw; ++x) ww.bytes[size_t((y * kw + x) * co + oc)] = mw[size_t((oc * kh + y) * kw + x)];
    } else {
      std::memcpy(ww.bytes.data(), mw, ww.bytes.size());
    }
    writes.push_back(std::move(ww));

    // Bias: int32 little-endian in both files; an absent TFLite bias was imported as zeros.
    const uint8_t* mb = static_cast<const uint8_t*>(model.data(bi));
    const size_t nb = model.tensor(bi).data_size;
    if (op.inputs.size() > 2 && op.inputs[2] >= 0) {
      writes.push_back(Write{op.inputs[2], k, std::vector<uint8_t>(mb, mb + nb)});
    } else if (std::memcmp(mb, r.data(bi), nb) != 0) {
      throw CliError(where + " has no bias tensor, so the adapted bias of " + tensor_text(model, bi) +
                     " cannot be written back (export supports changed values, not new tensors)");
    }
  }

  const std::string diff = first_difference(model, r, free_data);
  if (!diff.empty()) throw not_adaptation(diff);

  // Each TFLite buffer gets at most one new content; a buffer shared with a tensor that is not
  // written keeps its original bytes (else that other tensor would change too).
  std::map<uint32_t, const Write*> by_buffer;
  std::set<int> written;
  for (const Write& wr : writes) {
    written.insert(wr.tensor);
    const uint32_t buf = orig.tensors[size_t(wr.tensor)].buffer;
    auto [it, fresh] = by_buffer.emplace(buf, &wr);
    if (!fresh && it->second->bytes != wr.bytes) {
      if (it->second->tensor == wr.tensor)
        throw CliError(orig_what + ": tensor " + std::to_string(wr.tensor) + " is shared by operators " +
                       std::to_string(it->second->op) + " and " + std::to_string(wr.op) +
                       ", whose copies were adapted to different values");
      throw CliError(orig_what + ": tensors " + std::to_string(it->second->tensor) + " and " + std::to_string(wr.tensor) +
                     " share buffer " + std::to_string(buf) + " but were adapted to different values");
    }
  }
  TfliteExport out;
  out.bytes = orig.bytes;
  for (const auto& [buf, wr] : by_buffer) {
    const TflTensor& t = orig.tensors[size_t(wr->tensor)];
    if (t.data == nullptr || t.data_size != wr->bytes.size())
      throw CliError(orig_what + ": internal: tensor " + std::to_string(wr->tensor) + " has no data of the expected size");
    if (std::memcmp(t.data, wr->bytes.data(), t.data_size) == 0) continue;
    for (size_t i = 0; i < orig.tensors.size(); ++i)
      if (orig.tensors[i].buffer == buf && orig.tensors[i].is_constant() && written.count(int(i)) == 0)
        throw CliError(orig_what + ": buffer " + std::to_string(buf) + " of adapted tensor " + std::to_string(wr->tensor) +
                       " is shared with tensor " + std::to_string(i) + ", which would change too");
    // The verified reader's data pointer is inside orig.bytes (no external buffers).
    const size_t at = size_t(t.data - orig.bytes.data());
    if (at + t.data_size > out.bytes.size()) throw CliError(orig_what + ": internal: data outside the file");
    for (size_t i = 0; i < t.data_size; ++i) out.n_bytes_changed += out.bytes[at + i] != wr->bytes[i];
    std::memcpy(out.bytes.data() + at, wr->bytes.data(), t.data_size);
    ++out.n_tensors_changed;
  }
  return out;
}

TfliteExport export_tflite_file(const std::string& model_path, const std::string& orig_path,
                                const std::string& out_path) {
  const LoadedModel model = LoadedModel::load(model_path);
  const TfliteModel orig = tflite::read_tflite_file(orig_path);
  TfliteExport e = export_tflite(model.view(), model_path, orig, orig_path);
  write_file_atomic(out_path, e.bytes.data(), e.bytes.size());
  return e;
}

}  // namespace tinyzo
