// `tinyzo info --model M [--json]`: the ops of a model with their shapes,
// parameter counts and multiply-accumulates, and the totals.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "models/model_store.h"

namespace tinyzo::cli {

namespace {

struct InfoOptions {
  std::string model;
  bool json = false;
};

std::vector<int> shape_of(const TzmTensor& t) {
  std::vector<int> dims;
  for (int d = 0; d < t.rank && d < kTzmMaxDims; ++d) dims.push_back(t.dims[d]);
  return dims;
}

std::string shape_text(const TzmTensor& t) {
  std::string s;
  for (int d : shape_of(t)) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

const char* dtype_text(uint8_t dtype) {
  switch (static_cast<DType>(dtype)) {
    case DType::kInt8: return "int8";
    case DType::kInt32: return "int32";
    case DType::kFloat32: return "float32";
  }
  return "?";
}

// A short op description: the type plus the window geometry where it matters.
std::string op_kind(const ModelView& m, const TzmOp& op) {
  const int32_t* p = op.params;
  switch (static_cast<OpType>(op.type)) {
    case OpType::kConv2d: {
      const TzmTensor& x = m.tensor(op.inputs[0]);
      const TzmTensor& y = m.tensor(op.output);
      const int ci = x.dims[x.rank - 1], co = y.dims[y.rank - 1];
      const char* kind = (p[kConvGroups] == ci && ci == co && p[kConvGroups] > 1) ? "dwconv"
                         : (p[kConvKh] == 1 && p[kConvKw] == 1)                   ? "pwconv"
                                                                                  : "conv";
      std::string s = std::string(kind) + " " + std::to_string(p[kConvKh]) + "x" + std::to_string(p[kConvKw]);
      if (p[kConvStrideH] != 1 || p[kConvStrideW] != 1) s += "/" + std::to_string(p[kConvStrideH]);
      if (p[kConvGroups] > 1 && std::string(kind) != "dwconv") s += " g" + std::to_string(p[kConvGroups]);
      return s;
    }
    case OpType::kAdd: return "add";
    case OpType::kGlobalAvgPool: return "global_avg_pool";
    case OpType::kLinearF32: return "linear_f32";
    case OpType::kFullyConnected: return "fully_connected";
    case OpType::kMaxPool2d:
      return "max_pool " + std::to_string(p[kPoolKh]) + "x" + std::to_string(p[kPoolKw]) + "/" +
             std::to_string(p[kPoolStrideH]);
    case OpType::kAvgPool2d:
      return "avg_pool " + std::to_string(p[kPoolKh]) + "x" + std::to_string(p[kPoolKw]) + "/" +
             std::to_string(p[kPoolStrideH]);
    case OpType::kDequantize: return "dequantize";
    case OpType::kAddTfl: return "add (tflite)";
    case OpType::kAvgPool2dTfl:
      return "avg_pool (tflite) " + std::to_string(p[kPoolKh]) + "x" + std::to_string(p[kPoolKw]) + "/" +
             std::to_string(p[kPoolStrideH]);
    case OpType::kMeanTfl: return "mean (tflite)";
    case OpType::kPad: return "pad";
    case OpType::kReshape: return "reshape";
    case OpType::kTranspose: return "transpose";
    case OpType::kSoftmaxTfl: return "softmax (tflite)";
    case OpType::kQuantize: return "quantize";
  }
  return "op" + std::to_string(op.type);
}

// Weights + biases: the constant inputs in slots 1 and 2 (slot 3 holds the
// requantization multipliers, which are not parameters).
uint64_t op_params(const ModelView& m, const TzmOp& op) {
  uint64_t n = 0;
  for (int slot = 1; slot <= 2 && slot < op.n_inputs; ++slot) {
    const int t = op.inputs[slot];
    if (t >= 0 && (m.tensor(t).flags & kTensorConstant) != 0) n += tensor_elements(m.tensor(t));
  }
  return n;
}

std::string name_of(const char* fixed) { return std::string(fixed, strnlen(fixed, kTzmNameLen)); }

std::string with_commas(uint64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(size_t(i), ",");
  return s;
}

void run_info(const InfoOptions& o) {
  const LoadedModel model = load_model_arg(o.model);
  const ModelView& m = model.view();
  uint64_t total_params = 0, total_macs = 0;
  nlohmann::ordered_json ops = nlohmann::ordered_json::array();
  struct Row {
    std::string idx, name, kind, shapes, params, macs;
  };
  std::vector<Row> rows;
  for (int i = 0; i < m.n_ops(); ++i) {
    const TzmOp& op = m.op(i);
    const TzmTensor& x = m.tensor(op.inputs[0]);
    const TzmTensor& y = m.tensor(op.output);
    const uint64_t params = op_params(m, op);
    const uint64_t macs = m.op_macs(i);
    total_params += params;
    total_macs += macs;
    if (o.json) {
      ops.push_back({{"index", i},
                     {"name", name_of(op.name)},
                     {"type", op_kind(m, op)},
                     {"input_shape", shape_of(x)},
                     {"output_shape", shape_of(y)},
                     {"output_dtype", dtype_text(y.dtype)},
                     {"params", params},
                     {"macs", macs}});
    } else {
      rows.push_back({std::to_string(i), name_of(op.name), op_kind(m, op), shape_text(x) + " -> " + shape_text(y),
                      with_commas(params), with_commas(macs)});
    }
  }
  const TzmTensor& in = m.tensor(m.input_tensor());
  const TzmTensor& out = m.tensor(m.output_tensor());
  const size_t arena_bytes = required_arena_bytes(m);
  if (o.json) {
    nlohmann::ordered_json j = {
        {"model", model.path()},
        {"model_bytes", model.size_bytes()},
        {"version", std::to_string(m.header().version_major) + "." + std::to_string(m.header().version_minor)},
        {"n_tensors", m.n_tensors()},
        {"n_ops", m.n_ops()},
        {"parameters", total_params},
        {"macs", total_macs},
        {"input", {{"shape", shape_of(in)}, {"dtype", dtype_text(in.dtype)}, {"scale", in.scale},
                   {"zero_point", in.zero_point}}},
        {"output", {{"shape", shape_of(out)}, {"dtype", dtype_text(out.dtype)}}},
        {"arena_bytes", arena_bytes},
        {"ops", ops}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  size_t w[6] = {3, 4, 4, 6, 6, 4};
  const Row header{"#", "name", "type", "shape", "params", "MACs"};
  auto widen = [&](const Row& r) {
    const std::string* f[6] = {&r.idx, &r.name, &r.kind, &r.shapes, &r.params, &r.macs};
    for (int k = 0; k < 6; ++k) w[k] = std::max(w[k], f[k]->size());
  };
  widen(header);
  for (const Row& r : rows) widen(r);
  auto print = [&](const Row& r) {
    std::printf("%*s  %-*s  %-*s  %-*s  %*s  %*s\n", int(w[0]), r.idx.c_str(), int(w[1]), r.name.c_str(), int(w[2]),
                r.kind.c_str(), int(w[3]), r.shapes.c_str(), int(w[4]), r.params.c_str(), int(w[5]), r.macs.c_str());
  };
  std::printf("model %s (format %u.%u)\n", model.path().c_str(), unsigned(m.header().version_major),
              unsigned(m.header().version_minor));
  std::printf("input %s %s (scale %.9g, zero point %d) -> output %s %s\n", shape_text(in).c_str(),
              dtype_text(in.dtype), double(in.scale), int(in.zero_point), shape_text(out).c_str(),
              dtype_text(out.dtype));
  print(header);
  for (const Row& r : rows) print(r);
  std::printf("total: %d ops, %s parameters, %s MACs, %s model bytes", m.n_ops(), with_commas(total_params).c_str(),
              with_commas(total_macs).c_str(), with_commas(model.size_bytes()).c_str());
  std::printf(", %s arena bytes\n", with_commas(arena_bytes).c_str());
}

}  // namespace

void register_info_command(CLI::App& app) {
  auto opts = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand("info", "list a model's ops: shapes, parameters, MACs, totals");
  cmd->add_option("--model,-m", opts->model, "a .tzm file or a reference model name (mcunet-cifar10, ...)")
      ->required();
  cmd->add_flag("--json", opts->json, "print JSON instead of a table");
  cmd->callback([opts]() { run_info(*opts); });
}

}  // namespace tinyzo::cli
