// TensorFlow Lite -> .tzm mapping. See tflite_import.h.
#include "models/tflite_import.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "models/tflite_params.h"
#include "models/tzm_writer.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {

namespace {

using tflite::TflOperator;
using tflite::TflTensor;
using tflite::TflType;

// Contract 1 (docs/format.md, format 1.1): the params entry that marks a conv / fully-connected
// op as fixed-point, and the value that means so.
constexpr int kConvRequantParam = kConvRequant;
constexpr int kFcRequantParam = kFcRequant;

bool supported_builtin(int32_t code) {
  switch (code) {
    case tflite::kOpConv2d: case tflite::kOpDepthwiseConv2d: case tflite::kOpFullyConnected: case tflite::kOpAdd:
    case tflite::kOpAveragePool2d: case tflite::kOpMaxPool2d: case tflite::kOpMean: case tflite::kOpPad:
    case tflite::kOpReshape: case tflite::kOpTranspose: case tflite::kOpSoftmax: case tflite::kOpQuantize:
    case tflite::kOpDequantize:
      return true;
    default:
      return false;
  }
}

constexpr const char* kSupportedList =
    "CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, PAD, RESHAPE, "
    "TRANSPOSE, SOFTMAX, QUANTIZE, DEQUANTIZE";

class Importer {
 public:
  Importer(const tflite::TfliteModel& m, const std::string& what) : m_(m), what_(what) {}

  TfliteImport run() {
    // Refuse an unsupported operator before anything else: the most useful single line.
    for (size_t k = 0; k < m_.ops.size(); ++k) {
      const TflOperator& op = m_.ops[k];
      k_ = int(k);
      if (op.builtin == tflite::kOpCustom)
        op_fail("custom operator '" + op.custom_code + "' is not supported (tinyzo supports " + kSupportedList + ")");
      if (!supported_builtin(op.builtin))
        op_fail("operator not supported by tinyzo (supported: " + std::string(kSupportedList) + ")");
    }
    k_ = -1;
    if (m_.n_subgraphs != 1)
      fail("model has " + std::to_string(m_.n_subgraphs) + " subgraphs; tinyzo imports single-graph models");
    if (m_.inputs.size() != 1 || m_.outputs.size() != 1)
      fail("model has " + std::to_string(m_.inputs.size()) + " inputs and " + std::to_string(m_.outputs.size()) +
           " outputs; tinyzo models have one of each");
    if (m_.ops.empty()) fail("model has no operators");
    const int in = m_.inputs[0];
    const TflTensor& it = m_.tensors[size_t(in)];
    if (it.is_constant()) fail(tensor_label(in) + ": the model input is a constant");
    if (it.type != int(TflType::kInt8))
      fail("model input " + tensor_label(in) + " is " + tflite::type_name(it.type) +
           "; tinyzo runs models with an int8 input");
    tz_input_ = activation(in, "model input");
    b_.set_input(tz_input_);

    for (size_t k = 0; k < m_.ops.size(); ++k) {
      k_ = int(k);
      map_op(m_.ops[k]);
    }
    k_ = -1;
    const int out = m_.outputs[0];
    const auto found = produced_.find(out);
    if (found == produced_.end()) fail("model output " + tensor_label(out) + " is not produced by any operator");
    b_.set_output(found->second);

    TfliteImport r;
    try {
      r.tzm = b_.serialize();
    } catch (const CliError& e) {
      fail(std::string("the mapped model fails validation: ") + e.what());
    }
    r.n_ops = b_.n_ops();
    r.n_tensors = b_.n_tensors();
    for (const TflOperator& op : m_.ops) ++r.op_counts[tflite::builtin_name(op.builtin)];
    return r;
  }

 private:
  [[noreturn]] void fail(const std::string& reason) const { throw CliError(what_ + ": " + reason); }
  [[noreturn]] void op_fail(const std::string& reason) const {
    if (k_ < 0) fail(reason);
    const TflOperator& op = m_.ops[size_t(k_)];
    throw CliError(what_ + ": operator " + std::to_string(k_) + " (" + tflite::builtin_name(op.builtin) + "): " + reason);
  }
  std::string tensor_label(int t) const {
    const TflTensor& x = m_.tensors[size_t(t)];
    return "tensor " + std::to_string(t) + (x.name.empty() ? std::string() : " '" + x.name + "'");
  }
  // The current operator's .tzm name: its output tensor's TFLite name when that is a short,
  // plain name (at most 31 characters of [A-Za-z0-9_.-], as tinyzo's own names are, e.g. the
  // "1.4.conv.0" of an exported MCUNet) used by no other operator's output, else
  // "op<k>.<OPERATOR>". Converter names ("model/conv2d/Relu6;...", "StatefulPartitionedCall:0")
  // contain other characters, so imports of converter files keep the "op<k>" names.
  std::string op_name() const {
    const TflOperator& op = m_.ops[size_t(k_)];
    if (op.outputs.size() == 1 && op.outputs[0] >= 0) {
      const std::string& n = m_.tensors[size_t(op.outputs[0])].name;
      if (plain_name(n) && output_name_count(n) == 1 && !generated_name(n)) return n;
    }
    return "op" + std::to_string(k_) + "." + tflite::builtin_name(op.builtin);
  }
  static bool plain_name(const std::string& n) {
    if (n.empty() || n.size() >= size_t(kTzmNameLen)) return false;
    for (char c : n)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return false;
    return true;
  }
  // Names of the form op<digits>.<anything>: reserved for the generated names.
  static bool generated_name(const std::string& n) {
    if (n.size() < 3 || n.compare(0, 2, "op") != 0 || !std::isdigit(static_cast<unsigned char>(n[2]))) return false;
    size_t i = 2;
    while (i < n.size() && std::isdigit(static_cast<unsigned char>(n[i]))) ++i;
    return i < n.size() && n[i] == '.';
  }
  int output_name_count(const std::string& n) const {
    if (name_counts_.empty())
      for (const TflOperator& o : m_.ops)
        for (int32_t t : o.outputs)
          if (t >= 0) ++name_counts_[m_.tensors[size_t(t)].name];
    const auto it = name_counts_.find(n);
    return it == name_counts_.end() ? 0 : it->second;
  }
  std::string shape_text(const std::vector<int32_t>& s) const {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
  }

  // The stored dims of a TFLite activation: the batch axis (1) dropped from rank >= 2.
  std::vector<int32_t> stored_dims(int t, const char* role) const {
    const TflTensor& x = m_.tensors[size_t(t)];
    std::vector<int32_t> d = x.shape;
    if (d.empty()) return {1};
    if (d.size() >= 2) {
      if (d[0] != 1) (k_ >= 0 ? op_fail(std::string(role) + " " + tensor_label(t) + " has batch " + std::to_string(d[0]) + "; tinyzo runs batch 1 (the engine batches items itself)")
                              : fail(std::string(role) + " " + tensor_label(t) + " has batch " + std::to_string(d[0]) + "; expected 1"));
      d.erase(d.begin());
    }
    if (d.size() > size_t(kTzmMaxDims)) op_fail(std::string(role) + " " + tensor_label(t) + " " + shape_text(x.shape) + ": rank above 5 is not supported");
    for (int32_t v : d)
      if (v < 1) op_fail(std::string(role) + " " + tensor_label(t) + " " + shape_text(x.shape) + " has an empty dimension");
    return d;
  }

  // Per-tensor (scale, zero point) of an int8 activation.
  void activation_quant(int t, const char* role, float* scale, int32_t* zero) const {
    const TflTensor& x = m_.tensors[size_t(t)];
    if (x.scales.size() != 1) {
      const std::string why = x.scales.empty() ? "has no quantization" : "is quantized per channel";
      if (k_ >= 0) op_fail(std::string(role) + " " + tensor_label(t) + " " + why + "; int8 activations need one scale and zero point");
      fail(std::string(role) + " " + tensor_label(t) + " " + why);
    }
    if (!(x.scales[0] > 0.f) || !(x.scales[0] < 3.0e38f))
      op_fail(std::string(role) + " " + tensor_label(t) + ": scale " + std::to_string(x.scales[0]) + " is not a positive finite number");
    if (x.zero_points[0] < -128 || x.zero_points[0] > 127)
      op_fail(std::string(role) + " " + tensor_label(t) + ": zero point " + std::to_string(x.zero_points[0]) + " outside int8");
    *scale = x.scales[0];
    *zero = int32_t(x.zero_points[0]);
  }

  // The .tzm tensor of TFLite activation `t`, created at its first use (model input) or by
  // the operator that produces it.
  int activation(int t, const char* role) {
    const TflTensor& x = m_.tensors[size_t(t)];
    if (x.is_variable) op_fail(std::string(role) + " " + tensor_label(t) + " is a variable tensor (state); not supported");
    const std::vector<int32_t> dims = stored_dims(t, role);
    const std::string name = "t" + std::to_string(t);
    if (x.type == int(TflType::kInt8)) {
      float s = 1.f;
      int32_t z = 0;
      activation_quant(t, role, &s, &z);
      return b_.add_tensor(name, DType::kInt8, dims, 0, s, z);
    }
    if (x.type == int(TflType::kFloat32)) return b_.add_tensor(name, DType::kFloat32, dims, 0);
    op_fail(std::string(role) + " " + tensor_label(t) + " is " + tflite::type_name(x.type) +
            "; tinyzo activations are int8 (float32 only after DEQUANTIZE)");
  }

  // Input slot `slot` of the current operator as an activation that an earlier op produced
  // (or the model input).
  int input_activation(const TflOperator& op, size_t slot, const char* role) {
    if (slot >= op.inputs.size() || op.inputs[slot] < 0) op_fail(std::string("missing ") + role);
    const int t = op.inputs[slot];
    if (m_.tensors[size_t(t)].is_constant())
      op_fail(std::string(role) + " " + tensor_label(t) + " is a constant; tinyzo needs an activation there");
    if (t == m_.inputs[0]) return tz_input_;
    const auto it = produced_.find(t);
    if (it == produced_.end()) op_fail(std::string(role) + " " + tensor_label(t) + " is not produced by an earlier operator");
    return it->second;
  }

  const TflTensor& input_constant(const TflOperator& op, size_t slot, const char* role) const {
    if (slot >= op.inputs.size() || op.inputs[slot] < 0) op_fail(std::string("missing ") + role);
    const TflTensor& c = m_.tensors[size_t(op.inputs[slot])];
    if (!c.is_constant())
      op_fail(std::string(role) + " " + tensor_label(op.inputs[slot]) + " is not a constant; tinyzo needs it stored in the model");
    return c;
  }

  // Integer values of a constant int32 / int64 tensor (axes, paddings, permutations, shapes).
  std::vector<int64_t> int_values(const TflTensor& c, int t, const char* role) const {
    std::vector<int64_t> v(size_t(c.n_elements));
    if (c.type == int(TflType::kInt32)) {
      for (size_t i = 0; i < v.size(); ++i) {
        int32_t x;
        std::memcpy(&x, c.data + 4 * i, 4);
        v[i] = x;
      }
    } else if (c.type == int(TflType::kInt64)) {
      for (size_t i = 0; i < v.size(); ++i) std::memcpy(&v[i], c.data + 8 * i, 8);
    } else {
      op_fail(std::string(role) + " " + tensor_label(t) + " is " + tflite::type_name(c.type) + ", expected int32 or int64");
    }
    return v;
  }

  // Creates the output activation of the current operator (slot 0) and records it.
  int output_activation(const TflOperator& op, const char* role = "output") {
    if (op.outputs.size() != 1) op_fail(std::to_string(op.outputs.size()) + " outputs; tinyzo ops have one");
    const int t = op.outputs[0];
    if (m_.tensors[size_t(t)].is_constant()) op_fail("output " + tensor_label(t) + " is a constant");
    if (produced_.count(t) != 0 || t == m_.inputs[0]) op_fail("output " + tensor_label(t) + " is written twice");
    const int y = activation(t, role);
    produced_[t] = y;
    return y;
  }

  void require_type(int t, TflType type, const char* role) const {
    const TflTensor& x = m_.tensors[size_t(t)];
    if (x.type != int(type))
      op_fail(std::string(role) + " " + tensor_label(t) + " is " + tflite::type_name(x.type) + ", expected " +
              tflite::type_name(int(type)));
  }

  void require_activation(tflite::TflActivation a) const {
    if (a != tflite::TflActivation::kNone && a != tflite::TflActivation::kRelu &&
        a != tflite::TflActivation::kRelu6 && a != tflite::TflActivation::kReluN1To1)
      op_fail("fused activation " + std::to_string(int(a)) + " (TANH / SIGN_BIT) is not supported");
  }

  void require_options(const TflOperator& op, int type) const {
    if (op.options.options_type != type)
      op_fail("builtin options of type " + std::to_string(op.options.options_type) + ", expected " + std::to_string(type));
  }

  // Wraps a params derivation of tflite_params.h so its refusal names the operator.
  template <typename F>
  auto derived(const char* what, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const CliError& e) {
      op_fail(std::string(what) + ": " + e.what());
    }
  }

  void map_op(const TflOperator& op) {
    for (size_t s = 0; s < op.inputs.size(); ++s)
      if (op.inputs[s] >= 0 && m_.tensors[size_t(op.inputs[s])].is_variable)
        op_fail("input " + tensor_label(op.inputs[s]) + " is a variable tensor (state); not supported");
    switch (op.builtin) {
      case tflite::kOpConv2d: return map_conv(op, false);
      case tflite::kOpDepthwiseConv2d: return map_conv(op, true);
      case tflite::kOpFullyConnected: return map_fc(op);
      case tflite::kOpAdd: return map_add(op);
      case tflite::kOpAveragePool2d: return map_pool(op, OpType::kAvgPool2dTfl);
      case tflite::kOpMaxPool2d: return map_pool(op, OpType::kMaxPool2d);
      case tflite::kOpMean: return map_mean(op);
      case tflite::kOpPad: return map_pad(op);
      case tflite::kOpReshape: return map_reshape(op);
      case tflite::kOpTranspose: return map_transpose(op);
      case tflite::kOpSoftmax: return map_softmax(op);
      case tflite::kOpQuantize: return map_quantize(op);
      case tflite::kOpDequantize: return map_dequantize(op);
      default: op_fail("operator not supported by tinyzo");
    }
  }

  // Weight scales of a conv / FC weight, one per output channel (a per-tensor scale repeated).
  // `axis` is the TFLite quantized dimension that holds the output channels.
  std::vector<float> weight_scales(int t, int axis, int32_t co) const {
    const TflTensor& w = m_.tensors[size_t(t)];
    if (w.scales.empty()) op_fail("weight " + tensor_label(t) + " has no quantization");
    for (int64_t z : w.zero_points)
      if (z != 0) op_fail("weight " + tensor_label(t) + " has zero point " + std::to_string(z) + "; TFLite int8 weights are symmetric (0)");
    for (float s : w.scales)
      if (!(s > 0.f) || !(s < 3.0e38f)) op_fail("weight " + tensor_label(t) + ": scale " + std::to_string(s) + " is not a positive finite number");
    if (w.scales.size() == 1) return std::vector<float>(size_t(co), w.scales[0]);
    if (w.quantized_dimension != axis || w.scales.size() != size_t(co))
      op_fail("weight " + tensor_label(t) + ": " + std::to_string(w.scales.size()) + " scales along dimension " +
              std::to_string(w.quantized_dimension) + ", expected " + std::to_string(co) + " along dimension " + std::to_string(axis));
    return w.scales;
  }

  // The bias (input slot 2, optional) as an int32 [co] constant; zeros when absent.
  int bias_constant(const TflOperator& op, int32_t co) {
    std::vector<int32_t> v(size_t(co), 0);
    std::string name = "op" + std::to_string(k_) + ".bias";  // short: op names can reach 24 chars
    if (op.inputs.size() > 2 && op.inputs[2] >= 0) {
      const int t = op.inputs[2];
      const TflTensor& b = input_constant(op, 2, "bias");
      if (b.type != int(TflType::kInt32))
        op_fail("bias " + tensor_label(t) + " is " + tflite::type_name(b.type) + "; int8 models have int32 biases");
      if (b.n_elements != co) op_fail("bias " + tensor_label(t) + " has " + std::to_string(b.n_elements) + " values for " + std::to_string(co) + " channels");
      std::memcpy(v.data(), b.data, size_t(co) * 4);
      name = "t" + std::to_string(t);
    }
    return b_.add_constant_s32(name, {co}, v, kTensorTrainable);
  }

  // TFLM's per-channel requantization: QuantizeMultiplier(double(s_x) * double(s_w[o]) / double(s_y)).
  int requant_constant(float x_scale, const std::vector<float>& w_scales, float y_scale) {
    const int32_t co = int32_t(w_scales.size());
    std::vector<int32_t> v(size_t(2 * co));
    for (int32_t o = 0; o < co; ++o) {
      const double real = double(x_scale) * double(w_scales[size_t(o)]) / double(y_scale);
      const QuantizedMultiplier q = derived("output multiplier", [&] { return quantize_multiplier(real); });
      v[size_t(o)] = q.multiplier;
      v[size_t(co + o)] = q.shift;
    }
    return b_.add_constant_s32("op" + std::to_string(k_) + ".requant", {2, co}, v);
  }

  void map_conv(const TflOperator& op, bool depthwise) {
    require_options(op, depthwise ? tflite::kOptDepthwiseConv2d : tflite::kOptConv2d);
    const tflite::TflOptions& o = op.options;
    require_activation(o.activation);
    if (o.dilation_w != 1 || o.dilation_h != 1)
      op_fail("dilation " + std::to_string(o.dilation_h) + "x" + std::to_string(o.dilation_w) + " is not supported (1 only)");
    if (o.quantized_bias_type != 0 && o.quantized_bias_type != int8_t(TflType::kInt32))
      op_fail("quantized bias type " + tflite::type_name(o.quantized_bias_type) + " is not supported");
    const int x = input_activation(op, 0, "input");
    const int xt = op.inputs[0];
    require_type(xt, TflType::kInt8, "input");
    if (op.inputs.size() < 2) op_fail("missing weight");
    const int wt = op.inputs[1];
    const TflTensor& w = input_constant(op, 1, "weight");
    require_type(wt, TflType::kInt8, "weight");
    if (w.shape.size() != 4) op_fail("weight " + tensor_label(wt) + " " + shape_text(w.shape) + " is not 4-D");
    const std::vector<int32_t> xd = stored_dims(xt, "input");
    if (xd.size() != 3) op_fail("input " + tensor_label(xt) + " " + shape_text(m_.tensors[size_t(xt)].shape) + " is not [1, H, W, C]");
    const int32_t ci = xd[2];
    const int32_t kh = w.shape[1], kw = w.shape[2];
    int32_t co = 0, groups = 1;
    std::vector<int8_t> weight(size_t(w.n_elements));
    if (depthwise) {
      // TFLite [1, kh, kw, C_out] with C_out = C_in * m; output o reads input channel o / m:
      // tinyzo's grouped conv with C_in groups and weight [C_out, kh, kw, 1].
      co = w.shape[3];
      if (w.shape[0] != 1) op_fail("depthwise weight " + tensor_label(wt) + " " + shape_text(w.shape) + " is not [1, kh, kw, C]");
      if (ci < 1 || co % ci != 0) op_fail("depthwise output channels " + std::to_string(co) + " are not a multiple of the input's " + std::to_string(ci));
      if (o.depth_multiplier != 0 && int64_t(o.depth_multiplier) * ci != co)
        op_fail("depth multiplier " + std::to_string(o.depth_multiplier) + " does not match " + std::to_string(ci) + " -> " + std::to_string(co) + " channels");
      groups = ci;
      const int8_t* src = reinterpret_cast<const int8_t*>(w.data);
      for (int32_t oc = 0; oc < co; ++oc)
        for (int32_t y = 0; y < kh; ++y)
          for (int32_t xx = 0; xx < kw; ++xx) weight[size_t((oc * kh + y) * kw + xx)] = src[size_t((y * kw + xx) * co + oc)];
    } else {
      // TFLite's OHWI is tinyzo's layout; fewer filter channels than input channels = groups.
      co = w.shape[0];
      const int32_t cig = w.shape[3];
      if (cig < 1 || ci % cig != 0) op_fail("weight " + tensor_label(wt) + " " + shape_text(w.shape) + " does not fit " + std::to_string(ci) + " input channels");
      groups = ci / cig;
      if (co % groups != 0) op_fail(std::to_string(co) + " output channels do not divide into " + std::to_string(groups) + " groups");
      std::memcpy(weight.data(), w.data, weight.size());
    }
    const std::vector<float> ws = weight_scales(wt, depthwise ? 3 : 0, co);
    const int yt = op.outputs.empty() ? -1 : op.outputs[0];
    if (yt < 0) op_fail("missing output");
    require_type(yt, TflType::kInt8, "output");
    float sx, sy;
    int32_t zx, zy;
    activation_quant(xt, "input", &sx, &zx);
    activation_quant(yt, "output", &sy, &zy);
    if (o.stride_h < 1 || o.stride_w < 1) op_fail("stride " + std::to_string(o.stride_h) + "x" + std::to_string(o.stride_w));
    const bool same = o.padding == tflite::TflPadding::kSame;
    const WindowAxis ah = derived("window", [&] { return tflite_window_axis(same, xd[0], kh, o.stride_h, 1); });
    const WindowAxis aw = derived("window", [&] { return tflite_window_axis(same, xd[1], kw, o.stride_w, 1); });
    const std::vector<int32_t> yd = stored_dims(yt, "output");
    if (yd != std::vector<int32_t>{ah.out, aw.out, co})
      op_fail("output " + tensor_label(yt) + " " + shape_text(m_.tensors[size_t(yt)].shape) + " does not match the window (" +
              std::to_string(ah.out) + "x" + std::to_string(aw.out) + "x" + std::to_string(co) + ")");
    const ActivationRange act = derived("activation", [&] { return tflite_activation_range(int(o.activation), sy, zy); });

    const int wi = b_.add_constant_s8("t" + std::to_string(wt), {co, kh, kw, ci / groups}, weight, ws, kTensorTrainable);
    const int bi = bias_constant(op, co);
    const int mi = requant_constant(sx, ws, sy);
    const int y = output_activation(op);
    std::vector<int32_t> p(kTzmMaxOpParams, 0);
    p[kConvKh] = kh;
    p[kConvKw] = kw;
    p[kConvStrideH] = o.stride_h;
    p[kConvStrideW] = o.stride_w;
    p[kConvPadTop] = ah.pad_before;
    p[kConvPadLeft] = aw.pad_before;
    p[kConvPadBottom] = ah.pad_after;
    p[kConvPadRight] = aw.pad_after;
    p[kConvGroups] = groups;
    p[kConvActMin] = act.min;
    p[kConvActMax] = act.max;
    p[kConvRequantParam] = kRequantFixedPoint;
    b_.add_op(op_name(), OpType::kConv2d, {x, wi, bi, mi}, y, p);
  }

  void map_fc(const TflOperator& op) {
    require_options(op, tflite::kOptFullyConnected);
    const tflite::TflOptions& o = op.options;
    require_activation(o.activation);
    if (o.weights_format != 0) op_fail("shuffled weights format is not supported");
    if (o.quantized_bias_type != 0 && o.quantized_bias_type != int8_t(TflType::kInt32))
      op_fail("quantized bias type " + tflite::type_name(o.quantized_bias_type) + " is not supported");
    const int x = input_activation(op, 0, "input");
    const int xt = op.inputs[0];
    require_type(xt, TflType::kInt8, "input");
    if (op.inputs.size() < 2) op_fail("missing weight");
    const int wt = op.inputs[1];
    const TflTensor& w = input_constant(op, 1, "weight");
    require_type(wt, TflType::kInt8, "weight");
    if (w.shape.size() != 2) op_fail("weight " + tensor_label(wt) + " " + shape_text(w.shape) + " is not [C_out, C_in]");
    const int32_t co = w.shape[0], ci = w.shape[1];
    if (m_.tensors[size_t(xt)].n_elements != ci)
      op_fail("input " + tensor_label(xt) + " " + shape_text(m_.tensors[size_t(xt)].shape) + " has " +
              std::to_string(m_.tensors[size_t(xt)].n_elements) + " values for " + std::to_string(ci) +
              " weight columns (tinyzo runs batch 1)");
    const std::vector<float> ws = weight_scales(wt, 0, co);
    const int yt = op.outputs.empty() ? -1 : op.outputs[0];
    if (yt < 0) op_fail("missing output");
    require_type(yt, TflType::kInt8, "output");
    if (m_.tensors[size_t(yt)].n_elements != co)
      op_fail("output " + tensor_label(yt) + " " + shape_text(m_.tensors[size_t(yt)].shape) + " is not " + std::to_string(co) + " values");
    float sx, sy;
    int32_t zx, zy;
    activation_quant(xt, "input", &sx, &zx);
    activation_quant(yt, "output", &sy, &zy);
    const ActivationRange act = derived("activation", [&] { return tflite_activation_range(int(o.activation), sy, zy); });
    std::vector<int8_t> weight(reinterpret_cast<const int8_t*>(w.data), reinterpret_cast<const int8_t*>(w.data) + w.n_elements);
    const int wi = b_.add_constant_s8("t" + std::to_string(wt), {co, ci}, weight, ws, kTensorTrainable);
    const int bi = bias_constant(op, co);
    const int mi = requant_constant(sx, ws, sy);
    const int y = output_activation(op);
    std::vector<int32_t> p(kTzmMaxOpParams, 0);
    p[0] = act.min;
    p[1] = act.max;
    p[kFcRequantParam] = kRequantFixedPoint;
    b_.add_op(op_name(), OpType::kFullyConnected, {x, wi, bi, mi}, y, p);
  }

  void map_add(const TflOperator& op) {
    require_options(op, tflite::kOptAdd);
    require_activation(op.options.activation);
    if (op.inputs.size() != 2) op_fail(std::to_string(op.inputs.size()) + " inputs, expected 2");
    const int x1 = input_activation(op, 0, "first input");
    const int x2 = input_activation(op, 1, "second input");
    const int t1 = op.inputs[0], t2 = op.inputs[1], yt = op.outputs.empty() ? -1 : op.outputs[0];
    if (yt < 0) op_fail("missing output");
    require_type(t1, TflType::kInt8, "first input");
    require_type(t2, TflType::kInt8, "second input");
    require_type(yt, TflType::kInt8, "output");
    if (m_.tensors[size_t(t1)].shape != m_.tensors[size_t(t2)].shape || m_.tensors[size_t(t1)].shape != m_.tensors[size_t(yt)].shape)
      op_fail("shapes " + shape_text(m_.tensors[size_t(t1)].shape) + " + " + shape_text(m_.tensors[size_t(t2)].shape) + " -> " +
              shape_text(m_.tensors[size_t(yt)].shape) + ": broadcasting is not supported");
    float s1, s2, sy;
    int32_t z1, z2, zy;
    activation_quant(t1, "first input", &s1, &z1);
    activation_quant(t2, "second input", &s2, &z2);
    activation_quant(yt, "output", &sy, &zy);
    const std::vector<int32_t> p = derived("params", [&] { return tflite_add_params(s1, s2, sy, zy, int(op.options.activation)); });
    const int y = output_activation(op);
    b_.add_op(op_name(), OpType::kAddTfl, {x1, x2}, y, p);
  }

  void map_pool(const TflOperator& op, OpType type) {
    require_options(op, tflite::kOptPool2d);
    const tflite::TflOptions& o = op.options;
    require_activation(o.activation);
    const int x = input_activation(op, 0, "input");
    const int xt = op.inputs[0], yt = op.outputs.empty() ? -1 : op.outputs[0];
    if (yt < 0) op_fail("missing output");
    require_type(xt, TflType::kInt8, "input");
    require_type(yt, TflType::kInt8, "output");
    const std::vector<int32_t> xd = stored_dims(xt, "input");
    if (xd.size() != 3) op_fail("input " + tensor_label(xt) + " is not [1, H, W, C]");
    float sx, sy;
    int32_t zx, zy;
    activation_quant(xt, "input", &sx, &zx);
    activation_quant(yt, "output", &sy, &zy);
    if (sx != sy || zx != zy) op_fail("input and output quantization differ; TFLite pools keep the input's");
    if (o.filter_h < 1 || o.filter_w < 1 || o.stride_h < 1 || o.stride_w < 1)
      op_fail("filter " + std::to_string(o.filter_h) + "x" + std::to_string(o.filter_w) + ", stride " +
              std::to_string(o.stride_h) + "x" + std::to_string(o.stride_w));
    const bool same = o.padding == tflite::TflPadding::kSame;
    const WindowAxis ah = derived("window", [&] { return tflite_window_axis(same, xd[0], o.filter_h, o.stride_h, 1); });
    const WindowAxis aw = derived("window", [&] { return tflite_window_axis(same, xd[1], o.filter_w, o.stride_w, 1); });
    if (stored_dims(yt, "output") != std::vector<int32_t>{ah.out, aw.out, xd[2]})
      op_fail("output " + tensor_label(yt) + " " + shape_text(m_.tensors[size_t(yt)].shape) + " does not match the window");
    const std::vector<int32_t> p = derived("params", [&] {
      return tflite_pool_params(o.filter_h, o.filter_w, o.stride_h, o.stride_w, ah, aw, int(o.activation), sy, zy);
    });
    const int y = output_activation(op);
    b_.add_op(op_name(), type, {x}, y, p);
  }

  void map_mean(const TflOperator& op) {
    const int x = input_activation(op, 0, "input");
    const int xt = op.inputs[0], yt = op.outputs.empty() ? -1 : op.outputs[0];
    if (yt < 0) op_fail("missing output");
    require_type(xt, TflType::kInt8, "input");
    require_type(yt, TflType::kInt8, "output");
    const TflTensor& xs = m_.tensors[size_t(xt)];
    if (xs.shape.size() != 4) op_fail("input " + tensor_label(xt) + " " + shape_text(xs.shape) + " is not [1, H, W, C]");
    const TflTensor& ax = input_constant(op, 1, "axes");
    std::vector<int64_t> axes = int_values(ax, op.inputs[1], "axes");
    for (int64_t& a : axes)
      if (a < 0) a += 4;
    std::sort(axes.begin(), axes.end());
    if (axes != std::vector<int64_t>{1, 2}) op_fail("reduces axes other than H and W ([1, 2]); not supported");
    const bool keep = op.options.options_type == tflite::kOptReducer && op.options.keep_dims;
    const std::vector<int32_t> want = keep ? std::vector<int32_t>{1, 1, 1, xs.shape[3]} : std::vector<int32_t>{1, xs.shape[3]};
    if (m_.tensors[size_t(yt)].shape != want)
      op_fail("output " + tensor_label(yt) + " " + shape_text(m_.tensors[size_t(yt)].shape) + ", expected " + shape_text(want));
    float sx, sy;
    int32_t zx, zy;
    activation_quant(xt, "input", &sx, &zx);
    activation_quant(yt, "output", &sy, &zy);
    const std::vector<int32_t> p =
        derived("params", [&] { return tflite_mean_params(sx, sy, int64_t(xs.shape[1]) * xs.shape[2]); });
    const int y = output_activation(op);
    b_.add_op(op_name(), OpType::kMeanTfl, {x}, y, p);
  }

  void map_pad(const TflOperator& op) {
    if (op.inputs.size() != 2) op_fail(std::to_string(op.inputs.size()) + " inputs; PAD takes 2 (PADV2 is not supported)");
    const int x = input_activation(op, 0, "input");
    const int xt = op.inputs[0], yt = op.outputs.empty() ? -1 : op.outputs[0];
    if (yt < 0) op_fail("missing output");
    require_type(xt, TflType::kInt8, "input");
    require_type(yt, TflType::kInt8, "output");
    const TflTensor& xs = m_.tensors[size_t(xt)];
    const size_t rank = xs.shape.size();
    const TflTensor& pc = input_constant(op, 1, "paddings");
    if (pc.shape != std::vector<int32_t>{int32_t(rank), 2})
      op_fail("paddings " + tensor_label(op.inputs[1]) + " " + shape_text(pc.shape) + ", expected [" + std::to_string(rank) + ", 2]");
    const std::vector<int64_t> v = int_values(pc, op.inputs[1], "paddings");
    float sx, sy;
    int32_t zx, zy;
    activation_quant(xt, "input", &sx, &zx);
    activation_quant(yt, "output", &sy, &zy);
    if (sx != sy || zx != zy) op_fail("input and output quantization differ; PAD keeps the input's");
    // The batch axis (rank >= 2) is dropped: it must not be padded.
    const size_t first = rank >= 2 ? 1 : 0;
    if (first == 1 && (v[0] != 0 || v[1] != 0)) op_fail("pads the batch axis; not supported");
    std::vector<int32_t> before, after;
    for (size_t a = first; a < rank; ++a) {
      if (v[2 * a] < 0 || v[2 * a + 1] < 0 || v[2 * a] > 1 << 16 || v[2 * a + 1] > 1 << 16)
        op_fail("padding " + std::to_string(v[2 * a]) + ", " + std::to_string(v[2 * a + 1]) + " out of range");
      before.push_back(int32_t(v[2 * a]));
      after.push_back(int32_t(v[2 * a + 1]));
    }
    // TFLite PAD fills with the output zero point (the quantized 0).
    const std::vector<int32_t> p = derived("params", [&] { return tflite_pad_params(before, after, zy); });
    const int y = output_activation(op);
    b_.add_op(op_name(), OpType::kPad, {x}, y, p);
  }

  void map_reshape(const TflOperator& op) {
    const int x = input_activation(op, 0, "input");
    const int xt = op.inputs[0], yt = op.outputs.empty() ? -1 : op.outputs[0];
    if (yt < 0) op_fail("missing output");
    const TflTensor& xs = m_.tensors[size_t(xt)];
    const TflTensor& ys = m_.tensors[size_t(yt)];
    if (xs.type != ys.type) op_fail("input " + tflite::type_name(xs.type) + " and output " + tflite::type_name(ys.type) + " types differ");
    if (xs.n_elements != ys.n_elements)
      op_fail("input " + shape_text(xs.shape) + " and output " + shape_text(ys.shape) + " differ in size");
    if (xs.type == int(TflType::kInt8)) {
      float sx, sy;
      int32_t zx, zy;
      activation_quant(xt, "input", &sx, &zx);
      activation_quant(yt, "output", &sy, &zy);
      if (sx != sy || zx != zy) op_fail("input and output quantization differ; RESHAPE keeps the bytes");
    }
    const int y = output_activation(op);
    b_.add_op(op_name(), OpType::kReshape, {x}, y, std::vector<int32_t>(kTzmMaxOpParams, 0));
  }

  void map_transpose(const TflOperator& op) {
    const int x = input_activation(op, 0, "input");
    const int xt = op.inputs[0], yt = op.outputs.empty() ? -1 : op.outputs[0];
    if (yt < 0) op_fail("missing output");
    require_type(xt, TflType::kInt8, "input");
    require_type(yt, TflType::kInt8, "output");
    const TflTensor& xs = m_.tensors[size_t(xt)];
    const TflTensor& pc = input_constant(op, 1, "permutation");
    const std::vector<int64_t> perm = int_values(pc, op.inputs[1], "permutation");
    if (perm.size() != xs.shape.size()) op_fail("permutation of " + std::to_string(perm.size()) + " axes for a rank-" + std::to_string(xs.shape.size()) + " input");
    std::vector<int32_t> stored;
    if (xs.shape.size() >= 2) {
      // The batch axis is dropped from the stored tensors, so it must stay in place.
      if (perm[0] != 0) op_fail("moves the batch axis; not supported");
    }
    // Range-checked before narrowing: an int64 entry must not wrap into a valid axis.
    const size_t first = xs.shape.size() >= 2 ? 1 : 0;
    for (size_t a = first; a < perm.size(); ++a) {
      const int64_t axis = perm[a] - int64_t(first);
      if (axis < 0 || axis >= int64_t(perm.size() - first)) op_fail("permutation entry " + std::to_string(perm[a]) + " out of range");
      stored.push_back(int32_t(axis));
    }
    float sx, sy;
    int32_t zx, zy;
    activation_quant(xt, "input", &sx, &zx);
    activation_quant(yt, "output", &sy, &zy);
    if (sx != sy || zx != zy) op_fail("input and output quantization differ; TRANSPOSE keeps the bytes");
    const std::vector<int32_t> p = derived("params", [&] { return tflite_transpose_params(stored); });
    const int y = output_activation(op);
    b_.add_op(op_name(), OpType::kTranspose, {x}, y, p);
  }

  void map_softmax(const TflOperator& op) {
    require_options(op, tflite::kOptSoftmax);
    const int x = input_activation(op, 0, "input");
    const int xt = op.inputs[0], yt = op.outputs.empty() ? -1 : op.outputs[0];
    if (yt < 0) op_fail("missing output");
    require_type(xt, TflType::kInt8, "input");
    require_type(yt, TflType::kInt8, "output");
    if (m_.tensors[size_t(xt)].shape != m_.tensors[size_t(yt)].shape) op_fail("input and output shapes differ");
    float sx, sy;
    int32_t zx, zy;
    activation_quant(xt, "input", &sx, &zx);
    activation_quant(yt, "output", &sy, &zy);
    const std::vector<int32_t> p = derived("params", [&] { return tflite_softmax_params(op.options.beta, sx, sy, zy); });
    const int y = output_activation(op);
    b_.add_op(op_name(), OpType::kSoftmaxTfl, {x}, y, p);
  }

  void map_quantize(const TflOperator& op) {
    const int xt = op.inputs.empty() ? -1 : op.inputs[0];
    if (xt < 0) op_fail("missing input");
    const TflTensor& xs = m_.tensors[size_t(xt)];
    if (xs.type != int(TflType::kInt8) && xs.type != int(TflType::kFloat32))
      op_fail("input " + tensor_label(xt) + " is " + tflite::type_name(xs.type) + "; tinyzo quantizes int8 or float32 to int8");
    const int x = input_activation(op, 0, "input");
    const int yt = op.outputs.empty() ? -1 : op.outputs[0];
    if (yt < 0) op_fail("missing output");
    require_type(yt, TflType::kInt8, "output");
    if (xs.n_elements != m_.tensors[size_t(yt)].n_elements) op_fail("input and output sizes differ");
    float sy;
    int32_t zy;
    activation_quant(yt, "output", &sy, &zy);
    std::vector<int32_t> p(kTzmMaxOpParams, 0);
    if (xs.type == int(TflType::kInt8)) {
      float sx;
      int32_t zx;
      activation_quant(xt, "input", &sx, &zx);
      p = derived("params", [&] { return tflite_requantize_params(sx, sy); });
    }
    const int y = output_activation(op);
    b_.add_op(op_name(), OpType::kQuantize, {x}, y, p);
  }

  void map_dequantize(const TflOperator& op) {
    const int x = input_activation(op, 0, "input");
    const int xt = op.inputs[0], yt = op.outputs.empty() ? -1 : op.outputs[0];
    if (yt < 0) op_fail("missing output");
    require_type(xt, TflType::kInt8, "input");
    require_type(yt, TflType::kFloat32, "output");
    const int y = output_activation(op);
    b_.add_op(op_name(), OpType::kDequantize, {x}, y, std::vector<int32_t>(kTzmMaxOpParams, 0));
  }

  const tflite::TfliteModel& m_;
  const std::string& what_;
  TzmBuilder b_;
  int k_ = -1;                  // the operator being mapped (-1: none)
  int tz_input_ = -1;
  std::map<int, int> produced_; // TFLite tensor -> .tzm tensor, for operator outputs
  mutable std::map<std::string, int> name_counts_;  // operator output name -> operators writing it
};

}  // namespace

TfliteImport import_tflite(const tflite::TfliteModel& model, const std::string& what) {
  return Importer(model, what).run();
}

TfliteImport import_tflite_file(const std::string& src) {
  const tflite::TfliteModel m = tflite::read_tflite_file(src);
  return import_tflite(m, src);
}

bool looks_like_tflite(const std::string& path) {
  std::string lower = path;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (lower.size() >= 7 && lower.compare(lower.size() - 7, 7, ".tflite") == 0) return true;
  if (!is_regular_file(path)) return false;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  uint8_t head[8] = {};
  const size_t got = std::fread(head, 1, sizeof head, f);
  std::fclose(f);
  return tflite::has_tflite_identifier(head, got);
}

std::string intermediate_key(int op_index, const std::string& tensor_name) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "op%03d_", op_index);
  return buf + tensor_name;
}

}  // namespace tinyzo
