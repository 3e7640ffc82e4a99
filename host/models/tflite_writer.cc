// .tzm -> new .tflite. See tflite_writer.h.
#include "models/tflite_writer.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "models/tflite_import.h"
#include "models/tflite_params.h"
#include "models/tflite_reader.h"
#include "tflite_subset_generated.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {

namespace {

namespace fb = flatbuffers;
namespace tfl = tinyzo::tfl;

std::string name_of(const char* fixed) { return std::string(fixed, strnlen(fixed, kTzmNameLen)); }

const char* op_type_name(OpType t) {
  switch (t) {
    case OpType::kConv2d: return "Conv2d";
    case OpType::kAdd: return "Add";
    case OpType::kGlobalAvgPool: return "GlobalAvgPool";
    case OpType::kLinearF32: return "LinearF32";
    case OpType::kFullyConnected: return "FullyConnected";
    case OpType::kMaxPool2d: return "MaxPool2d";
    case OpType::kAvgPool2d: return "AvgPool2d";
    case OpType::kDequantize: return "Dequantize";
    case OpType::kAddTfl: return "AddTfl";
    case OpType::kAvgPool2dTfl: return "AvgPool2dTfl";
    case OpType::kMeanTfl: return "MeanTfl";
    case OpType::kPad: return "Pad";
    case OpType::kReshape: return "Reshape";
    case OpType::kTranspose: return "Transpose";
    case OpType::kSoftmaxTfl: return "SoftmaxTfl";
    case OpType::kQuantize: return "Quantize";
  }
  return "?";
}

// The fused activations TFLite offers for int8 outputs, in the order they are tried (NONE first:
// a full int8 range is written as NONE).
constexpr int kActivations[] = {int(TflActivation::kNone), int(TflActivation::kRelu), int(TflActivation::kRelu6),
                                int(TflActivation::kReluN1To1)};

// Conventional operator versions of int8 kernels in TensorFlow Lite's op registry (what the
// converter writes for these int8 operators); TFLM ignores versions, the full runtime checks them.
int op_version(int32_t code) {
  switch (code) {
    case tflite::kOpConv2d: return 3;
    case tflite::kOpDepthwiseConv2d: return 3;
    case tflite::kOpFullyConnected: return 4;
    case tflite::kOpAdd: return 2;
    case tflite::kOpAveragePool2d: return 2;
    case tflite::kOpMaxPool2d: return 2;
    case tflite::kOpMean: return 2;
    case tflite::kOpPad: return 2;
    case tflite::kOpReshape: return 1;
    case tflite::kOpTranspose: return 2;
    case tflite::kOpSoftmax: return 2;
    case tflite::kOpQuantize: return 2;
    case tflite::kOpDequantize: return 2;
    default: return 1;
  }
}

class Writer {
 public:
  Writer(const ModelView& m, const std::string& what) : m_(m), what_(what) {}

  TfliteWrite run() {
    if (!m_.valid()) throw CliError(what_ + ": the model is not valid");
    // Buffer 0 is TFLite's empty sentinel; activations use it.
    buffers_.push_back(tfl::CreateBuffer(fbb_));
    const int in = m_.input_tensor();
    const TzmTensor& it = m_.tensor(in);
    if (it.dtype != uint8_t(DType::kInt8))
      fail("the model input '" + name_of(it.name) + "' is float32; tinyzo exports models with an int8 input");
    tfl_of_[in] = activation(in);
    for (int k = 0; k < m_.n_ops(); ++k) {
      k_ = k;
      map_op(m_.op(k));
    }
    k_ = -1;
    const int out = m_.output_tensor();
    const auto found = tfl_of_.find(out);
    if (found == tfl_of_.end()) fail("the model output is not produced by an op");

    std::vector<fb::Offset<tfl::OperatorCode>> codes;
    for (const auto& [code, index] : opcode_list_) {
      (void)index;
      codes.push_back(tfl::CreateOperatorCode(fbb_, int8_t(code < 127 ? code : 127), 0, op_version(code), code));
    }
    const std::vector<int32_t> inputs{tfl_of_.at(in)}, outputs{found->second};
    const auto sg = tfl::CreateSubGraphDirect(fbb_, &tensors_, &inputs, &outputs, &ops_, "main");
    const std::vector<fb::Offset<tfl::SubGraph>> sgs{sg};
    const auto model = tfl::CreateModelDirect(fbb_, 3, &codes, &sgs, "tinyzo export", &buffers_);
    fbb_.Finish(model, tfl::ModelIdentifier());
    TfliteWrite r;
    r.bytes.assign(fbb_.GetBufferPointer(), fbb_.GetBufferPointer() + fbb_.GetSize());
    r.n_operators = int(ops_.size());
    r.n_tensors = int(tensors_.size());
    r.n_pads = n_pads_;
    return r;
  }

 private:
  [[noreturn]] void fail(const std::string& reason) const {
    if (k_ < 0) throw CliError(what_ + ": " + reason);
    const TzmOp& op = m_.op(k_);
    throw CliError(what_ + ": op " + std::to_string(k_) + " '" + name_of(op.name) + "' (" +
                   op_type_name(OpType(op.type)) + "): " + reason);
  }

  std::vector<int32_t> dims(int t) const { return std::vector<int32_t>(m_.tensor(t).dims, m_.tensor(t).dims + m_.tensor(t).rank); }

  // A TFLite tensor; `data` (may be null) becomes its own buffer.
  int add_tensor(const std::string& name, tfl::TensorType type, const std::vector<int32_t>& shape, const void* data,
                 size_t size, const std::vector<float>& scales = {}, const std::vector<int64_t>& zeros = {},
                 int qdim = 0) {
    uint32_t buffer = 0;
    if (data != nullptr) {
      const std::vector<uint8_t> bytes(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
      buffer = uint32_t(buffers_.size());
      buffers_.push_back(tfl::CreateBufferDirect(fbb_, &bytes));
    }
    fb::Offset<tfl::QuantizationParameters> q = 0;
    if (!scales.empty()) q = tfl::CreateQuantizationParametersDirect(fbb_, &scales, &zeros, 0, qdim);
    tensors_.push_back(tfl::CreateTensorDirect(fbb_, &shape, type, buffer, name.c_str(), q));
    return int(tensors_.size()) - 1;
  }

  // The TFLite tensor of an activation (int8 or float32) with the batch axis in front.
  int activation(int t) {
    const TzmTensor& x = m_.tensor(t);
    std::vector<int32_t> shape = dims(t);
    shape.insert(shape.begin(), 1);
    if (x.dtype == uint8_t(DType::kInt8))
      return add_tensor(name_of(x.name), tfl::TensorType_INT8, shape, nullptr, 0, {x.scale}, {x.zero_point});
    if (x.dtype == uint8_t(DType::kFloat32)) return add_tensor(name_of(x.name), tfl::TensorType_FLOAT32, shape, nullptr, 0);
    fail("activation '" + name_of(x.name) + "' is int32; TFLite activations here are int8 or float32");
  }

  int input(const TzmOp& op, int slot) const {
    const auto it = tfl_of_.find(op.inputs[slot]);
    if (it == tfl_of_.end()) fail("input " + std::to_string(slot) + " '" + name_of(m_.tensor(op.inputs[slot]).name) + "' is not an activation");
    return it->second;
  }

  int output(const TzmOp& op) {
    const int y = activation(op.output);
    tfl_of_[op.output] = y;
    return y;
  }

  uint32_t opcode(int32_t code) {
    const auto it = opcode_index_.find(code);
    if (it != opcode_index_.end()) return it->second;
    const uint32_t i = uint32_t(opcode_list_.size());
    opcode_index_[code] = i;
    opcode_list_.emplace_back(code, i);
    return i;
  }

  void add_operator(int32_t code, const std::vector<int32_t>& inputs, int output, tfl::BuiltinOptions type,
                    fb::Offset<void> options) {
    const std::vector<int32_t> outputs{output};
    ops_.push_back(tfl::CreateOperatorDirect(fbb_, opcode(code), &inputs, &outputs, type, options));
  }

  // The fused activation whose TFLite act range for (y_scale, y_zero) is [lo, hi].
  int fused_activation(int32_t lo, int32_t hi, float y_scale, int32_t y_zero) const {
    for (int a : kActivations) {
      ActivationRange r;
      try {
        r = tflite_activation_range(a, y_scale, y_zero);
      } catch (const CliError&) {
        continue;
      }
      if (r.min == lo && r.max == hi) return a;
    }
    fail("act range [" + std::to_string(lo) + ", " + std::to_string(hi) +
         "] is no fused activation of TFLite (NONE, RELU, RELU6, RELU_N1_TO_1) for the output scale and zero point");
  }

  // TFLite's padding for one window axis with the same pad_before and output size, if any:
  // 0 SAME, 1 VALID, -1 none.
  static int padding_kind(int32_t in, int32_t k, int32_t stride, int32_t pad_before, int32_t out) {
    const WindowAxis same = tflite_window_axis(true, in, k, stride, 1);
    if (same.pad_before == pad_before && same.out == out) return 0;
    if (pad_before == 0 && in >= k && (in - k) / stride + 1 == out) return 1;
    return -1;
  }

  std::vector<int32_t> params_of(const TzmOp& op) const { return std::vector<int32_t>(op.params, op.params + kTzmMaxOpParams); }

  // Derived params equal to the stored ones for one of the fused activations; returns it.
  template <typename F>
  int matching_activation(const TzmOp& op, const char* what, F&& derive) const {
    const std::vector<int32_t> stored = params_of(op);
    std::string why;
    for (int a : kActivations) {
      std::vector<int32_t> p;
      try {
        p = derive(a);
      } catch (const CliError& e) {
        why = e.what();
        continue;
      }
      p.resize(kTzmMaxOpParams, 0);
      if (p == stored) return a;
    }
    fail(std::string(what) + " are not what TFLite derives from the tensors' scales for any fused activation" +
         (why.empty() ? std::string() : " (" + why + ")"));
  }

  void map_op(const TzmOp& op) {
    switch (OpType(op.type)) {
      case OpType::kConv2d: return map_conv(op);
      case OpType::kFullyConnected: return map_fc(op);
      case OpType::kAddTfl: return map_add(op);
      case OpType::kAvgPool2dTfl: return map_pool(op, tflite::kOpAveragePool2d);
      case OpType::kMaxPool2d: return map_pool(op, tflite::kOpMaxPool2d);
      case OpType::kMeanTfl: return map_mean(op);
      case OpType::kPad: return map_pad(op);
      case OpType::kReshape: return map_reshape(op);
      case OpType::kTranspose: return map_transpose(op);
      case OpType::kSoftmaxTfl: return map_softmax(op);
      case OpType::kQuantize: return map_quantize(op);
      case OpType::kDequantize: return map_dequantize(op);
      case OpType::kAdd:
        fail("the paper's residual add (float rescale) has no bit-exact TFLite form; run `tinyzo convert MODEL --tflite -o OUT.tzm` first (it becomes ADD)");
      case OpType::kGlobalAvgPool:
        fail("the paper's global average pool (rounded half to even) has no bit-exact TFLite form; run `tinyzo convert MODEL --tflite -o OUT.tzm` first (it becomes MEAN)");
      case OpType::kAvgPool2d:
        fail("the paper's average pool (rounded half to even) has no bit-exact TFLite form (AVERAGE_POOL_2D rounds half away from zero)");
      case OpType::kLinearF32:
        fail("the float head has no int8 TFLite form; run `tinyzo convert MODEL --tflite -o OUT.tzm` first (it becomes an int8 FULLY_CONNECTED + DEQUANTIZE)");
    }
    fail("op type " + std::to_string(op.type) + " has no TFLite form");
  }

  // Checks a conv / FC's stored fixed-point multipliers against TFLite's derivation from the
  // scales: QuantizeMultiplier(double(s_x) * double(s_w[o]) / double(s_y)).
  std::vector<float> checked_weight_scales(const TzmOp& op, int requant_param) const {
    if (op.params[requant_param] != kRequantFixedPoint)
      fail("uses the paper's float-scale requantization, which TFLite cannot express; run `tinyzo convert MODEL --tflite -o OUT.tzm` first");
    const TzmTensor& w = m_.tensor(op.inputs[1]);
    if (w.dtype != uint8_t(DType::kInt8)) fail("weight is not int8");
    const size_t co = size_t(w.dims[0]);
    std::vector<float> ws(co);
    if (const float* s = m_.channel_scales(op.inputs[1])) {
      ws.assign(s, s + co);
    } else {
      if (!(w.scale > 0.f)) fail("weight '" + name_of(w.name) + "' has no scale");
      ws.assign(co, w.scale);
    }
    const float sx = m_.tensor(op.inputs[0]).scale, sy = m_.tensor(op.output).scale;
    const auto* q = static_cast<const int32_t*>(m_.data(op.inputs[3]));
    for (size_t o = 0; o < co; ++o) {
      if (!(ws[o] > 0.f)) fail("weight scale of channel " + std::to_string(o) + " is not positive");
      const QuantizedMultiplier d = quantize_multiplier(double(sx) * double(ws[o]) / double(sy));
      if (d.multiplier != q[o] || d.shift != q[co + o])
        fail("the fixed-point multiplier of channel " + std::to_string(o) + " (" + std::to_string(q[o]) + ", shift " +
             std::to_string(q[co + o]) + ") is not TFLite's QuantizeMultiplier(s_x * s_w / s_y) = (" +
             std::to_string(d.multiplier) + ", shift " + std::to_string(d.shift) +
             "); run `tinyzo convert MODEL --tflite -o OUT.tzm` to derive the multipliers as TFLite does");
    }
    return ws;
  }

  // Per-tensor quantization when every channel has the same scale (what converters write for
  // fully-connected weights; older runtimes such as Arm NN 20.08 take FC weights only that way),
  // else per channel; the importer reads both back to the same per-channel scales.
  static std::vector<float> compact(const std::vector<float>& s) {
    for (float v : s)
      if (v != s[0]) return s;
    return {s[0]};
  }

  // The bias as TFLite int32 [C_out] with the scales s_x * s_w[o] that the converter writes.
  int bias_tensor(const TzmOp& op, float sx, const std::vector<float>& ws) {
    const int b = op.inputs[2];
    const TzmTensor& bt = m_.tensor(b);
    if (bt.dtype != uint8_t(DType::kInt32)) fail("bias is not int32");
    std::vector<float> scales(ws.size());
    for (size_t o = 0; o < ws.size(); ++o) scales[o] = float(double(sx) * double(ws[o]));
    scales = compact(scales);
    return add_tensor(name_of(bt.name), tfl::TensorType_INT32, {int32_t(ws.size())}, m_.data(b), bt.data_size, scales,
                      std::vector<int64_t>(scales.size(), 0), 0);
  }

  void map_conv(const TzmOp& op) {
    const std::vector<float> ws = checked_weight_scales(op, kConvRequant);
    const TzmTensor& x = m_.tensor(op.inputs[0]);
    const TzmTensor& y = m_.tensor(op.output);
    const TzmTensor& w = m_.tensor(op.inputs[1]);
    const int32_t ci = x.dims[2], co = w.dims[0], kh = w.dims[1], kw = w.dims[2];
    const int32_t groups = op.params[kConvGroups];
    const bool depthwise = groups > 1 && groups == ci && w.dims[3] == 1;
    if (groups != 1 && !depthwise) fail("grouped conv (" + std::to_string(groups) + " groups) that is not depthwise; TFLite kernels take groups 1 or depthwise");
    const int act = fused_activation(op.params[kConvActMin], op.params[kConvActMax], y.scale, y.zero_point);
    const int32_t sh = op.params[kConvStrideH], sw = op.params[kConvStrideW];
    const int32_t pt = op.params[kConvPadTop], pl = op.params[kConvPadLeft];
    int xin = input(op, 0);
    int ph = padding_kind(x.dims[0], kh, sh, pt, y.dims[0]);
    int pw = padding_kind(x.dims[1], kw, sw, pl, y.dims[1]);
    tfl::Padding padding = tfl::Padding_SAME;
    if (ph == 0 && pw == 0) {
      padding = tfl::Padding_SAME;
    } else if (ph == 1 && pw == 1) {
      padding = tfl::Padding_VALID;
    } else {
      // PAD with the input zero point (a conv reads padding as z_x, i.e. 0 after - z_x), then VALID.
      const int32_t pb = std::max(0, (y.dims[0] - 1) * sh + kh - x.dims[0] - pt);
      const int32_t pr = std::max(0, (y.dims[1] - 1) * sw + kw - x.dims[1] - pl);
      const std::vector<int32_t> pads{0, 0, pt, pb, pl, pr, 0, 0};
      std::string name = name_of(y.name) + ".pad";
      if (name.size() >= size_t(kTzmNameLen)) name = "op" + std::to_string(k_) + ".pad";
      const int pc = add_tensor(name + "s", tfl::TensorType_INT32, {4, 2}, pads.data(), pads.size() * 4);
      const int xp = add_tensor(name, tfl::TensorType_INT8, {1, x.dims[0] + pt + pb, x.dims[1] + pl + pr, ci}, nullptr, 0,
                                {x.scale}, {x.zero_point});
      add_operator(tflite::kOpPad, {xin, pc}, xp, tfl::BuiltinOptions_PadOptions, tfl::CreatePadOptions(fbb_).Union());
      ++n_pads_;
      xin = xp;
      padding = tfl::Padding_VALID;
    }
    const auto* wv = static_cast<const int8_t*>(m_.data(op.inputs[1]));
    const std::vector<float> wq = compact(ws);
    const std::vector<int64_t> zeros(wq.size(), 0);
    int wt;
    if (depthwise) {
      // tinyzo [C_out, kh, kw, 1] -> TFLite [1, kh, kw, C_out] (quantized along dimension 3).
      std::vector<int8_t> t(size_t(co) * kh * kw);
      for (int32_t o = 0; o < co; ++o)
        for (int32_t i = 0; i < kh * kw; ++i) t[size_t(i) * co + o] = wv[size_t(o) * kh * kw + i];
      wt = add_tensor(name_of(w.name), tfl::TensorType_INT8, {1, kh, kw, co}, t.data(), t.size(), wq, zeros, 3);
    } else {
      wt = add_tensor(name_of(w.name), tfl::TensorType_INT8, {co, kh, kw, w.dims[3]}, wv, w.data_size, wq, zeros, 0);
    }
    const int bt = bias_tensor(op, x.scale, ws);
    const int yt = output(op);
    if (depthwise) {
      add_operator(tflite::kOpDepthwiseConv2d, {xin, wt, bt}, yt, tfl::BuiltinOptions_DepthwiseConv2DOptions,
                   tfl::CreateDepthwiseConv2DOptions(fbb_, padding, sw, sh, co / ci, tfl::ActivationFunctionType(act)).Union());
    } else {
      add_operator(tflite::kOpConv2d, {xin, wt, bt}, yt, tfl::BuiltinOptions_Conv2DOptions,
                   tfl::CreateConv2DOptions(fbb_, padding, sw, sh, tfl::ActivationFunctionType(act)).Union());
    }
  }

  void map_fc(const TzmOp& op) {
    const std::vector<float> ws = checked_weight_scales(op, kFcRequant);
    const TzmTensor& x = m_.tensor(op.inputs[0]);
    const TzmTensor& y = m_.tensor(op.output);
    const TzmTensor& w = m_.tensor(op.inputs[1]);
    const int act = fused_activation(op.params[kFcActMin], op.params[kFcActMax], y.scale, y.zero_point);
    const int xin = input(op, 0);
    const int32_t co = w.dims[0];
    const std::vector<float> wq = compact(ws);
    const int wt = add_tensor(name_of(w.name), tfl::TensorType_INT8, {co, w.dims[1]}, m_.data(op.inputs[1]), w.data_size,
                              wq, std::vector<int64_t>(wq.size(), 0), 0);
    const int bt = bias_tensor(op, x.scale, ws);
    const int yt = output(op);
    add_operator(tflite::kOpFullyConnected, {xin, wt, bt}, yt, tfl::BuiltinOptions_FullyConnectedOptions,
                 tfl::CreateFullyConnectedOptions(fbb_, tfl::ActivationFunctionType(act)).Union());
  }

  void map_add(const TzmOp& op) {
    const TzmTensor& a = m_.tensor(op.inputs[0]);
    const TzmTensor& b = m_.tensor(op.inputs[1]);
    const TzmTensor& y = m_.tensor(op.output);
    const int act = matching_activation(op, "the ADD params", [&](int a_) {
      return tflite_add_params(a.scale, b.scale, y.scale, y.zero_point, a_);
    });
    const int x1 = input(op, 0), x2 = input(op, 1);
    const int yt = output(op);
    add_operator(tflite::kOpAdd, {x1, x2}, yt, tfl::BuiltinOptions_AddOptions,
                 tfl::CreateAddOptions(fbb_, tfl::ActivationFunctionType(act)).Union());
  }

  void map_pool(const TzmOp& op, int32_t code) {
    const TzmTensor& x = m_.tensor(op.inputs[0]);
    const TzmTensor& y = m_.tensor(op.output);
    if (x.scale != y.scale || x.zero_point != y.zero_point)
      fail("input and output quantization differ; TFLite pools keep the input's");
    const int32_t kh = op.params[kPoolKh], kw = op.params[kPoolKw], sh = op.params[kPoolStrideH], sw = op.params[kPoolStrideW];
    const int ph = padding_kind(x.dims[0], kh, sh, op.params[kPoolPadTop], y.dims[0]);
    const int pw = padding_kind(x.dims[1], kw, sw, op.params[kPoolPadLeft], y.dims[1]);
    if (ph < 0 || pw < 0 || ph != pw)
      fail("padding (top " + std::to_string(op.params[kPoolPadTop]) + ", left " + std::to_string(op.params[kPoolPadLeft]) +
           ") is neither TFLite's SAME nor VALID (a pool ignores padding, so no PAD can stand in)");
    const WindowAxis ah = tflite_window_axis(ph == 0, x.dims[0], kh, sh, 1);
    const WindowAxis aw = tflite_window_axis(pw == 0, x.dims[1], kw, sw, 1);
    const int act = matching_activation(op, "the pool's window and act range", [&](int a) {
      return tflite_pool_params(kh, kw, sh, sw, ah, aw, a, y.scale, y.zero_point);
    });
    const int xin = input(op, 0);
    const int yt = output(op);
    add_operator(code, {xin}, yt, tfl::BuiltinOptions_Pool2DOptions,
                 tfl::CreatePool2DOptions(fbb_, ph == 0 ? tfl::Padding_SAME : tfl::Padding_VALID, sw, sh, kw, kh,
                                          tfl::ActivationFunctionType(act))
                     .Union());
  }

  void map_mean(const TzmOp& op) {
    const TzmTensor& x = m_.tensor(op.inputs[0]);
    const TzmTensor& y = m_.tensor(op.output);
    std::vector<int32_t> p = tflite_mean_params(x.scale, y.scale, int64_t(x.dims[0]) * x.dims[1]);
    p.resize(kTzmMaxOpParams, 0);
    if (p != params_of(op)) fail("the MEAN params are not what TFLite derives from the scales");
    const int xin = input(op, 0);
    const std::vector<int32_t> axes{1, 2};
    const int at = add_tensor(name_of(y.name).substr(0, 24) + ".axes", tfl::TensorType_INT32, {2}, axes.data(), 8);
    const bool keep = y.rank == 3;
    const int yt = output(op);
    add_operator(tflite::kOpMean, {xin, at}, yt, tfl::BuiltinOptions_ReducerOptions,
                 tfl::CreateReducerOptions(fbb_, keep).Union());
  }

  void map_pad(const TzmOp& op) {
    const TzmTensor& x = m_.tensor(op.inputs[0]);
    const TzmTensor& y = m_.tensor(op.output);
    if (x.dtype != uint8_t(DType::kInt8)) fail("PAD of a non-int8 tensor");
    if (x.scale != y.scale || x.zero_point != y.zero_point) fail("input and output quantization differ; PAD keeps them");
    if (op.params[kPadValue] != y.zero_point)
      fail("pads with " + std::to_string(op.params[kPadValue]) + ", not the zero point " + std::to_string(y.zero_point) +
           " (TFLite PAD; PADV2 is not exported)");
    std::vector<int32_t> pads{0, 0};
    for (int a = 0; a < x.rank; ++a) {
      pads.push_back(op.params[kPadBefore + a]);
      pads.push_back(op.params[kPadAfter + a]);
    }
    const int xin = input(op, 0);
    const int pc = add_tensor(name_of(y.name).substr(0, 26) + ".pads", tfl::TensorType_INT32, {x.rank + 1, 2}, pads.data(), pads.size() * 4);
    const int yt = output(op);
    add_operator(tflite::kOpPad, {xin, pc}, yt, tfl::BuiltinOptions_PadOptions, tfl::CreatePadOptions(fbb_).Union());
  }

  void map_reshape(const TzmOp& op) {
    const TzmTensor& y = m_.tensor(op.output);
    const TzmTensor& x = m_.tensor(op.inputs[0]);
    if (x.dtype == uint8_t(DType::kInt8) && (x.scale != y.scale || x.zero_point != y.zero_point))
      fail("input and output quantization differ; RESHAPE keeps the bytes");
    const int xin = input(op, 0);
    std::vector<int32_t> shape = dims(op.output);
    shape.insert(shape.begin(), 1);
    const int st = add_tensor(name_of(y.name).substr(0, 25) + ".shape", tfl::TensorType_INT32, {int32_t(shape.size())},
                              shape.data(), shape.size() * 4);
    const int yt = output(op);
    add_operator(tflite::kOpReshape, {xin, st}, yt, tfl::BuiltinOptions_ReshapeOptions,
                 tfl::CreateReshapeOptionsDirect(fbb_, &shape).Union());
  }

  void map_transpose(const TzmOp& op) {
    const TzmTensor& x = m_.tensor(op.inputs[0]);
    const TzmTensor& y = m_.tensor(op.output);
    if (x.scale != y.scale || x.zero_point != y.zero_point) fail("input and output quantization differ; TRANSPOSE keeps the bytes");
    std::vector<int32_t> perm{0};
    for (int a = 0; a < x.rank; ++a) perm.push_back(op.params[a] + 1);
    const int xin = input(op, 0);
    const int pt = add_tensor(name_of(y.name).substr(0, 26) + ".perm", tfl::TensorType_INT32, {int32_t(perm.size())},
                              perm.data(), perm.size() * 4);
    const int yt = output(op);
    add_operator(tflite::kOpTranspose, {xin, pt}, yt, tfl::BuiltinOptions_TransposeOptions,
                 tfl::CreateTransposeOptions(fbb_).Union());
  }

  void map_softmax(const TzmOp& op) {
    const TzmTensor& x = m_.tensor(op.inputs[0]);
    const TzmTensor& y = m_.tensor(op.output);
    // The params come from beta * s_x; tinyzo stores no beta, so beta = 1 (what converters write)
    // must reproduce them.
    std::vector<int32_t> p = tflite_softmax_params(1.f, x.scale, y.scale, y.zero_point);
    p.resize(kTzmMaxOpParams, 0);
    if (p != params_of(op)) fail("the SOFTMAX params are not what TFLite derives with beta = 1 from the scales");
    const int xin = input(op, 0);
    const int yt = output(op);
    add_operator(tflite::kOpSoftmax, {xin}, yt, tfl::BuiltinOptions_SoftmaxOptions, tfl::CreateSoftmaxOptions(fbb_, 1.f).Union());
  }

  void map_quantize(const TzmOp& op) {
    const TzmTensor& x = m_.tensor(op.inputs[0]);
    const TzmTensor& y = m_.tensor(op.output);
    std::vector<int32_t> p(kTzmMaxOpParams, 0);
    if (x.dtype == uint8_t(DType::kInt8)) p = tflite_requantize_params(x.scale, y.scale);
    p.resize(kTzmMaxOpParams, 0);
    if (p != params_of(op)) fail("the QUANTIZE params are not what TFLite derives from the scales");
    const int xin = input(op, 0);
    const int yt = output(op);
    add_operator(tflite::kOpQuantize, {xin}, yt, tfl::BuiltinOptions_QuantizeOptions, tfl::CreateQuantizeOptions(fbb_).Union());
  }

  void map_dequantize(const TzmOp& op) {
    const int xin = input(op, 0);
    const int yt = output(op);
    add_operator(tflite::kOpDequantize, {xin}, yt, tfl::BuiltinOptions_DequantizeOptions,
                 tfl::CreateDequantizeOptions(fbb_).Union());
  }

  const ModelView& m_;
  const std::string& what_;
  fb::FlatBufferBuilder fbb_{1 << 20};
  std::vector<fb::Offset<tfl::Buffer>> buffers_;
  std::vector<fb::Offset<tfl::Tensor>> tensors_;
  std::vector<fb::Offset<tfl::Operator>> ops_;
  std::map<int32_t, uint32_t> opcode_index_;
  std::vector<std::pair<int32_t, uint32_t>> opcode_list_;
  std::map<int, int> tfl_of_;  // .tzm activation -> TFLite tensor
  int k_ = -1;
  int n_pads_ = 0;
};

}  // namespace

TfliteWrite write_tflite(const ModelView& model, const std::string& what) { return Writer(model, what).run(); }

TfliteWrite write_tflite_file(const ModelView& model, const std::string& what, const std::string& out_path) {
  TfliteWrite w = write_tflite(model, what);
  // The file must read back through tinyzo's own verified reader and importer before it is written.
  try {
    const tflite::TfliteModel back = tflite::parse_tflite(w.bytes, out_path);
    import_tflite(back, out_path);
  } catch (const CliError& e) {
    throw CliError(std::string("internal: the exported file does not import back: ") + e.what());
  }
  write_file_atomic(out_path, w.bytes.data(), w.bytes.size());
  return w;
}

}  // namespace tinyzo
