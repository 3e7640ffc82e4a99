// Every non-conv TFLite operator of the real models in the shared data
// directory (models/tflite/goldens, TFLM's reference kernels), one op at a
// time: the op's TFLM input (the model input or an earlier op's recorded
// output) goes through a one-op .tzm built with the tflite_params derivations
// and run by the Engine; the result must equal TFLM's recorded output byte for
// byte. Reads the data at run time ($TINYZO_DATA or ../shared/data); nothing
// from it is committed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "models/tflite_params.h"
#include "models/tzm_writer.h"
#include "tflite_golden_support.h"
#include "tinyzo/engine.h"

namespace tinyzo {
namespace {

namespace fs = std::filesystem;
using testing::GoldenArray;
using testing::GoldenModel;
using testing::GoldenOp;
using testing::GoldenTensor;

std::string data_dir() {
  const char* env = std::getenv("TINYZO_DATA");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(TINYZO_SOURCE_DIR) + "/../shared/data";
}

// TFLite builtin codes of the operators tested here.
enum : int32_t {
  kAdd = 0, kAvgPool = 1, kDequantize = 6, kMaxPool = 17, kReshape = 22, kSoftmax = 25, kPad = 34,
  kTranspose = 39, kMean = 40, kQuantize = 114
};
const char* builtin_label(int32_t b) {
  switch (b) {
    case kAdd: return "ADD";
    case kAvgPool: return "AVERAGE_POOL_2D";
    case kDequantize: return "DEQUANTIZE";
    case kMaxPool: return "MAX_POOL_2D";
    case kReshape: return "RESHAPE";
    case kSoftmax: return "SOFTMAX";
    case kPad: return "PAD";
    case kTranspose: return "TRANSPOSE";
    case kMean: return "MEAN";
    case kQuantize: return "QUANTIZE";
  }
  return nullptr;
}

// TFLite tensor type -> tinyzo dtype (int8 / float32 only), or false.
bool tzm_dtype(int type, DType* dt) {
  if (type == 9) *dt = DType::kInt8;
  else if (type == 0) *dt = DType::kFloat32;
  else return false;
  return true;
}

// The tinyzo dims of a TFLite activation shape: the leading batch 1 dropped.
bool tzm_dims(const std::vector<int32_t>& shape, std::vector<int32_t>* dims) {
  if (shape.size() < 2 || shape.size() > 5 || shape[0] != 1) return false;
  dims->assign(shape.begin() + 1, shape.end());
  return true;
}

std::vector<int32_t> const_i32(const GoldenTensor& t) {
  std::vector<int32_t> v(t.data.size() / 4);
  if (!v.empty()) std::memcpy(v.data(), t.data.data(), v.size() * 4);
  return v;
}

struct OneOpRun {
  std::string skip;          // why this op could not be mapped (empty when it ran)
  std::vector<uint8_t> out;  // the engine's output bytes
};

// Builds and runs the one-op model of TFLite op `op` on the given input arrays.
OneOpRun run_op(const GoldenModel& g, const GoldenOp& op, const std::vector<const GoldenArray*>& in) {
  OneOpRun r;
  const GoldenTensor& xt = g.tensors[op.inputs[0]];
  const GoldenTensor& yt = g.tensors[op.outputs[0]];
  DType xd, yd;
  std::vector<int32_t> xdims, ydims;
  if (!tzm_dtype(xt.type, &xd) || !tzm_dtype(yt.type, &yd)) return {"tensor type other than int8/float32", {}};
  if (!tzm_dims(xt.shape, &xdims) || !tzm_dims(yt.shape, &ydims)) return {"shape without a batch of 1", {}};
  if (xdims.size() > 4 || ydims.size() > 4) return {"rank above 4 after the batch", {}};
  TzmBuilder b;
  const float xs = xt.scale > 0 ? xt.scale : 1.f, ys = yt.scale > 0 ? yt.scale : 1.f;
  const int x = b.add_tensor("x", xd, xdims, 0, xs, int32_t(xt.zero_point));
  b.set_input(x);
  const int y = b.add_tensor("y", yd, ydims, 0, ys, int32_t(yt.zero_point));
  int second = -1;  // ADD's second input: produced by a Reshape, then overwritten
  switch (op.builtin) {
    case kAdd: {
      const GoldenTensor& x2t = g.tensors[op.inputs[1]];
      second = b.add_tensor("x2", DType::kInt8, xdims, 0, x2t.scale, int32_t(x2t.zero_point));
      b.add_op("copy", OpType::kReshape, {x}, second, {});
      b.add_op("add", OpType::kAddTfl, {x, second}, y,
               tflite_add_params(xt.scale, x2t.scale, yt.scale, int32_t(yt.zero_point), op.activation));
      break;
    }
    case kAvgPool:
    case kMaxPool: {
      if (xdims.size() != 3) return {"pool input not [H, W, C]", {}};
      const WindowAxis h = tflite_window_axis(op.padding == 0, xdims[0], op.filter_h, op.stride_h);
      const WindowAxis w = tflite_window_axis(op.padding == 0, xdims[1], op.filter_w, op.stride_w);
      b.add_op("pool", op.builtin == kAvgPool ? OpType::kAvgPool2dTfl : OpType::kMaxPool2d, {x}, y,
               tflite_pool_params(op.filter_h, op.filter_w, op.stride_h, op.stride_w, h, w, op.activation, yt.scale,
                                  int32_t(yt.zero_point)));
      break;
    }
    case kMean: {
      std::vector<int32_t> axis = const_i32(g.tensors[op.inputs[1]]);
      if (xdims.size() != 3 || axis.size() != 2 || !((axis[0] == 1 && axis[1] == 2) || (axis[0] == 2 && axis[1] == 1)))
        return {"MEAN not over H and W of a 4-D tensor", {}};
      b.add_op("mean", OpType::kMeanTfl, {x}, y,
               tflite_mean_params(xt.scale, yt.scale, int64_t(xdims[0]) * xdims[1]));
      break;
    }
    case kPad: {
      const std::vector<int32_t> pads = const_i32(g.tensors[op.inputs[1]]);
      if (pads.size() != 2 * xt.shape.size() || pads[0] != 0 || pads[1] != 0) return {"PAD of the batch axis", {}};
      std::vector<int32_t> before, after;
      for (size_t k = 1; k < xt.shape.size(); ++k) {
        before.push_back(pads[2 * k]);
        after.push_back(pads[2 * k + 1]);
      }
      b.add_op("pad", OpType::kPad, {x}, y, tflite_pad_params(before, after, int32_t(yt.zero_point)));
      break;
    }
    case kReshape:
      b.add_op("reshape", OpType::kReshape, {x}, y, {});
      break;
    case kTranspose: {
      const std::vector<int32_t> perm = const_i32(g.tensors[op.inputs[1]]);
      if (perm.size() != xt.shape.size() || perm[0] != 0) return {"TRANSPOSE moving the batch axis", {}};
      std::vector<int32_t> p;
      for (size_t k = 1; k < perm.size(); ++k) p.push_back(perm[k] - 1);
      b.add_op("transpose", OpType::kTranspose, {x}, y, tflite_transpose_params(p));
      break;
    }
    case kSoftmax:
      b.add_op("softmax", OpType::kSoftmaxTfl, {x}, y,
               tflite_softmax_params(op.beta, xt.scale, yt.scale, int32_t(yt.zero_point)));
      break;
    case kQuantize:
      b.add_op("quantize", OpType::kQuantize, {x}, y,
               xd == DType::kInt8 ? tflite_requantize_params(xt.scale, yt.scale) : std::vector<int32_t>{});
      break;
    case kDequantize:
      b.add_op("dequantize", OpType::kDequantize, {x}, y, {});
      break;
    default: return {"not a tested operator", {}};
  }
  b.set_output(y);
  AlignedModelBytes bytes(b.serialize());
  ModelView view;
  if (view.init(bytes.data(), bytes.size()) != Status::kOk) throw std::runtime_error(view.error());
  std::vector<uint8_t> arena_mem(size_t(16) << 20);
  Arena arena(arena_mem.data() + (16 - reinterpret_cast<uintptr_t>(arena_mem.data()) % 16) % 16,
              arena_mem.size() - 16);
  Engine e;
  if (e.init(view, arena) != Status::kOk) throw std::runtime_error("engine init failed");
  void* xin = e.tensor_data(x);
  if (in[0]->data.size() != tensor_elements(view.tensor(x)) * dtype_size(xd)) throw std::runtime_error("input size");
  std::memcpy(xin, in[0]->data.data(), in[0]->data.size());
  if (second >= 0) {
    if (e.invoke_range(0, 1) != Status::kOk) throw std::runtime_error("copy op failed");
    if (in[1]->data.size() != tensor_elements(view.tensor(second))) throw std::runtime_error("second input size");
    std::memcpy(e.tensor_data(second), in[1]->data.data(), in[1]->data.size());
    if (e.invoke_range(1, 2) != Status::kOk) throw std::runtime_error("invoke failed");
  } else if (e.invoke() != Status::kOk) {
    throw std::runtime_error("invoke failed");
  }
  const auto* out = static_cast<const uint8_t*>(e.tensor_data(y));
  r.out.assign(out, out + tensor_elements(view.tensor(y)) * dtype_size(yd));
  return r;
}

struct Tally {
  int ops = 0, exact = 0;
  uint64_t elements = 0, mismatched = 0;
};

TEST(TfliteOpGoldensTest, EveryNonConvOperatorMatchesTflmExactly) {
  const fs::path root = fs::path(data_dir()) / "models" / "tflite";
  if (!fs::exists(root / "goldens")) FAIL() << "the TFLite goldens are missing (set $TINYZO_DATA): " << root;
  const std::vector<std::pair<std::string, std::string>> models = {
      {"person_detect", "person_detect.tflite"},
      {"mobilenet_v2_quantized_1x3x224x224", "mobilenet_v2_quantized_1x3x224x224.tflite"},
      {"micro_speech_quantized", "micro_speech_quantized.tflite"},
      {"keyword_scrambled", "keyword_scrambled.tflite"},
      {"hello_world_int8", "hello_world_int8.tflite"}};
  std::map<std::string, Tally> by_op;
  std::map<std::string, int> skipped;
  for (const auto& [name, file] : models) {
    const GoldenModel g = testing::parse_golden_tflite(testing::read_file_bytes((root / file).string()));
    std::vector<std::string> labels;
    for (const auto& entry : fs::directory_iterator(root / "goldens" / name)) {
      const std::string f = entry.path().filename().string();
      if (f.rfind("intermediates_", 0) == 0 && entry.path().extension() == ".npz")
        labels.push_back(f.substr(14, f.size() - 14 - 4));
    }
    std::sort(labels.begin(), labels.end());
    ASSERT_FALSE(labels.empty()) << name;
    for (const std::string& label : labels) {
      const auto inter = testing::read_npz((root / "goldens" / name / ("intermediates_" + label + ".npz")).string());
      const GoldenArray model_in = testing::read_npy((root / "goldens" / name / ("input_" + label + ".npy")).string());
      // Which recorded array holds tensor t: "op<k>_t<t>".
      std::map<int, const GoldenArray*> produced;
      for (const auto& [key, arr] : inter) produced[std::atoi(key.c_str() + key.find("_t") + 2)] = &arr;
      for (size_t k = 0; k < g.ops.size(); ++k) {
        const GoldenOp& op = g.ops[k];
        const char* what = builtin_label(op.builtin);
        if (what == nullptr) continue;  // conv / fully-connected / SVDF: other tests
        const int n_act = op.builtin == kAdd ? 2 : 1;
        std::vector<const GoldenArray*> in;
        for (int a = 0; a < n_act; ++a) {
          const int t = op.inputs[a];
          if (t == g.inputs[0]) in.push_back(&model_in);
          else if (produced.count(t)) in.push_back(produced[t]);
        }
        char key[32];
        std::snprintf(key, sizeof key, "op%03zu_t%d", k, op.outputs[0]);
        ASSERT_TRUE(inter.count(key)) << name << " " << label << " has no " << key;
        if (int(in.size()) != n_act) {
          ++skipped[std::string(what) + " (input not recorded)"];
          continue;
        }
        const OneOpRun r = run_op(g, op, in);
        if (!r.skip.empty()) {
          ++skipped[std::string(what) + " in " + name + ": " + r.skip];
          continue;
        }
        const std::vector<uint8_t>& want = inter.at(key).data;
        ASSERT_EQ(r.out.size(), want.size()) << name << " " << label << " " << key;
        Tally& t = by_op[what];
        ++t.ops;
        const size_t item = g.tensors[op.outputs[0]].type == 0 ? 4 : 1;
        uint64_t bad = 0;
        for (size_t i = 0; i < want.size(); i += item)
          if (std::memcmp(&r.out[i], &want[i], item) != 0) ++bad;
        t.elements += want.size() / item;
        t.mismatched += bad;
        if (bad == 0) ++t.exact;
        EXPECT_EQ(bad, 0u) << name << " " << label << " op " << k << " (" << what << "): " << bad << " of "
                           << want.size() / item << " elements differ from TFLM";
      }
    }
  }
  int total_ops = 0, total_exact = 0;
  for (const auto& [what, t] : by_op) {
    std::cout << "[goldens] " << what << ": " << t.exact << " / " << t.ops << " op runs bit-exact, " << t.mismatched
              << " of " << t.elements << " elements differ\n";
    total_ops += t.ops;
    total_exact += t.exact;
  }
  for (const auto& [why, n] : skipped) std::cout << "[goldens] not run: " << why << " (" << n << ")\n";
  std::cout << "[goldens] total: " << total_exact << " / " << total_ops << " op runs bit-exact\n";
  // The data holds these operators: each must have been exercised.
  for (const char* must : {"ADD", "AVERAGE_POOL_2D", "MEAN", "PAD", "RESHAPE", "SOFTMAX", "TRANSPOSE"})
    EXPECT_GT(by_op[must].ops, 0) << must << " was never run";
}

}  // namespace
}  // namespace tinyzo
