#include "models/requant_convert.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "models/tflite_params.h"
#include "models/tzm_writer.h"
#include "util/errors.h"

namespace tinyzo {

namespace {

std::string name_of(const char* fixed_name) { return std::string(fixed_name, strnlen(fixed_name, kTzmNameLen)); }

std::vector<int32_t> dims_of(const TzmTensor& t) { return std::vector<int32_t>(t.dims, t.dims + t.rank); }

bool float_scale_conv_or_fc(const TzmOp& op) {
  const OpType t = static_cast<OpType>(op.type);
  if (t == OpType::kConv2d) return op.params[kConvRequant] == kRequantFloatScale;
  if (t == OpType::kFullyConnected) return op.params[kFcRequant] == kRequantFloatScale;
  return false;
}

// Per-channel weight scales of a conv / FC op (a per-tensor scale repeated).
std::vector<float> weight_scales(const ModelView& m, const TzmOp& op) {
  const TzmTensor& w = m.tensor(op.inputs[1]);
  const size_t co = size_t(w.dims[0]);
  if (const float* s = m.channel_scales(op.inputs[1])) return std::vector<float>(s, s + co);
  if (!(w.scale > 0.f))
    throw CliError("convert --tflite: op '" + name_of(op.name) + "': the weight has no scale to derive the multipliers from");
  return std::vector<float>(co, w.scale);
}

// The TFLite fused activation whose act range for y is [lo, hi] (NONE first).
int fused_activation(const TzmOp& op, int32_t lo, int32_t hi, const TzmTensor& y) {
  for (int a : {0, 1, 3, 2}) {
    try {
      const ActivationRange r = tflite_activation_range(a, y.scale, y.zero_point);
      if (r.min == lo && r.max == hi) return a;
    } catch (const CliError&) {
    }
  }
  throw CliError("convert --tflite: op '" + name_of(op.name) + "': act range [" + std::to_string(lo) + ", " +
                 std::to_string(hi) + "] is no TFLite fused activation (NONE, RELU, RELU6, RELU_N1_TO_1) of its output");
}

int32_t round_away_s32(double v, const std::string& what) {
  const double r = std::round(v);
  if (!(r >= double(INT32_MIN) && r <= double(INT32_MAX))) throw CliError(what + ": " + std::to_string(v) + " does not fit int32");
  return int32_t(r);
}

// A LinearF32 head quantized to an int8 FullyConnected (ConvertOptions::tflite).
struct Head {
  int op = -1;
  std::vector<int8_t> weight;
  std::vector<float> w_scales;
  std::vector<int32_t> bias;
  std::vector<int32_t> requant;  // [2, N]
  float y_scale = 0.f;
  int32_t y_zero = 0;
  int mult_tensor = -1, out_tensor = -1;  // the tensors appended for it
};

Head quantize_head(const ModelView& m, int op_index, const ConvertOptions& options) {
  const TzmOp& op = m.op(op_index);
  const std::string what = "convert --tflite: op '" + name_of(op.name) + "'";
  const TzmTensor& x = m.tensor(op.inputs[0]);
  const TzmTensor& wt = m.tensor(op.inputs[1]);
  const int32_t n = wt.dims[0], c = wt.dims[1];
  const auto* w = static_cast<const float*>(m.data(op.inputs[1]));
  const auto* bias = static_cast<const float*>(m.data(op.inputs[2]));
  Head h;
  h.op = op_index;
  h.weight.resize(size_t(n) * size_t(c));
  h.w_scales.resize(size_t(n));
  h.bias.resize(size_t(n));
  const double dx = std::max(127.0 - x.zero_point, x.zero_point + 128.0);
  // One weight scale for the whole head (per-tensor), as TFLite's converter quantizes
  // FULLY_CONNECTED weights: runtimes without per-channel FC (Arm NN 20.08, older TFLM) load it.
  double amax = 0.0;
  for (size_t i = 0; i < size_t(n) * size_t(c); ++i) amax = std::max(amax, std::fabs(double(w[i])));
  const float s = amax > 0.0 ? float(amax / 127.0) : 1.f;
  double bound = 0.0;
  for (int32_t o = 0; o < n; ++o) {
    double sum = 0.0;
    for (int32_t k = 0; k < c; ++k) sum += std::fabs(double(w[size_t(o) * c + k]));
    h.w_scales[size_t(o)] = s;
    for (int32_t k = 0; k < c; ++k)
      h.weight[size_t(o) * c + k] =
          int8_t(std::max(-127.0, std::min(127.0, std::round(double(w[size_t(o) * c + k]) / double(s)))));
    h.bias[size_t(o)] = round_away_s32(double(bias[o]) / (double(x.scale) * double(s)), what + ": bias of class " + std::to_string(o));
    bound = std::max(bound, double(x.scale) * sum * dx + std::fabs(double(bias[o])));
  }
  if (options.head_scale > 0.f) {
    h.y_scale = options.head_scale;
    h.y_zero = options.head_zero;
  } else {
    h.y_scale = float(bound > 0.0 ? bound / 127.0 : 1.0);
    h.y_zero = 0;
  }
  if (!(h.y_scale > 0.f) || !std::isfinite(h.y_scale) || h.y_zero < -128 || h.y_zero > 127)
    throw CliError(what + ": head output quantization (" + std::to_string(h.y_scale) + ", " + std::to_string(h.y_zero) + ") is not valid");
  h.requant.resize(2 * size_t(n));
  for (int32_t o = 0; o < n; ++o) {
    const QuantizedMultiplier q = quantize_multiplier(double(x.scale) * double(h.w_scales[size_t(o)]) / double(h.y_scale));
    if (q.shift > 30) throw CliError(what + ": the head multiplier of class " + std::to_string(o) + " needs a left shift above 30");
    h.requant[size_t(o)] = q.multiplier;
    h.requant[size_t(n + o)] = q.shift;
  }
  return h;
}

}  // namespace

// max |acc| of each output channel of a conv / fully-connected op: sum |w| * max |x - z_x|.
std::vector<int64_t> max_abs_acc(const ModelView& m, const TzmOp& op) {
  const TzmTensor& w = m.tensor(op.inputs[1]);
  const int64_t co = w.dims[0];
  const int64_t per = int64_t(tensor_elements(w)) / co;
  const int32_t zx = m.tensor(op.inputs[0]).zero_point;
  const int64_t dx = std::max<int64_t>(127 - int64_t(zx), int64_t(zx) + 128);
  const auto* wv = static_cast<const int8_t*>(m.data(op.inputs[1]));
  std::vector<int64_t> out(size_t(co), 0);
  for (int64_t o = 0; o < co; ++o)
    for (int64_t k = 0; k < per; ++k) out[size_t(o)] += std::abs(int64_t(wv[o * per + k])) * dx;
  return out;
}

RequantConversion convert_to_fixed_point(const ModelView& m, const ConvertOptions& options) {
  if (!m.valid()) throw CliError("convert: the model is not valid");
  RequantConversion out;
  // Biases clamped so that acc + bias stays in int32 (tensor index -> new values).
  std::map<int, std::vector<int32_t>> new_bias;
  // Which op converts each multiplier tensor.
  std::vector<int> converter(size_t(m.n_tensors()), -1);
  for (int i = 0; i < m.n_ops(); ++i) {
    const TzmOp& op = m.op(i);
    if (!float_scale_conv_or_fc(op)) {
      ++out.kept_ops;
      continue;
    }
    ++out.converted_ops;
    const std::vector<int64_t> amax = max_abs_acc(m, op);
    const auto* bias = static_cast<const int32_t*>(m.data(op.inputs[2]));
    std::vector<int32_t> clamped(bias, bias + amax.size());
    bool any = false;
    for (size_t o = 0; o < amax.size(); ++o) {
      const int64_t lo = int64_t(INT32_MIN) + amax[o], hi = int64_t(INT32_MAX) - amax[o];
      if (int64_t(bias[o]) >= lo && int64_t(bias[o]) <= hi) continue;
      ++out.wrapping_channels;
      any = true;
      clamped[o] = static_cast<int32_t>(bias[o] < lo ? lo : hi);
    }
    if (any && options.clamp_bias) {
      if (new_bias.count(op.inputs[2]))
        throw CliError("convert --clamp-bias: op '" + name_of(op.name) + "' shares its bias tensor");
      for (size_t o = 0; o < amax.size(); ++o) out.clamped_biases += clamped[o] != bias[o];
      new_bias[op.inputs[2]] = clamped;
    }
    const int mt = op.inputs[3];
    if (converter[size_t(mt)] >= 0)
      throw CliError("convert: op '" + name_of(op.name) + "' shares its multiplier tensor with op '" +
                     name_of(m.op(converter[size_t(mt)]).name) + "'");
    converter[size_t(mt)] = i;
  }

  // The float heads to quantize (options.tflite).
  std::vector<Head> heads;
  std::vector<int> head_of(size_t(m.n_tensors()), -1);  // weight / bias tensor -> heads index
  if (options.tflite) {
    std::vector<int> readers(size_t(m.n_tensors()), 0);
    for (int i = 0; i < m.n_ops(); ++i)
      for (int k = 0; k < m.op(i).n_inputs; ++k) ++readers[size_t(m.op(i).inputs[k])];
    for (int i = 0; i < m.n_ops(); ++i) {
      const TzmOp& op = m.op(i);
      if (static_cast<OpType>(op.type) != OpType::kLinearF32) continue;
      if (readers[size_t(op.inputs[1])] != 1 || readers[size_t(op.inputs[2])] != 1)
        throw CliError("convert --tflite: op '" + name_of(op.name) + "': the float head's weight or bias is shared with another op");
      heads.push_back(quantize_head(m, i, options));
      head_of[size_t(op.inputs[1])] = head_of[size_t(op.inputs[2])] = int(heads.size()) - 1;
    }
  }

  TzmBuilder b;
  for (int i = 0; i < m.n_tensors(); ++i) {
    const TzmTensor& t = m.tensor(i);
    const std::string name = name_of(t.name);
    const uint16_t flags = t.flags & ~(kTensorConstant | kTensorPerChannel | kTensorInput | kTensorOutput);
    if (!(t.flags & kTensorConstant)) {
      b.add_tensor(name, DType(t.dtype), dims_of(t), flags, t.scale, t.zero_point);
      continue;
    }
    std::vector<float> channel_scales;
    if (const float* s = m.channel_scales(i)) channel_scales.assign(s, s + t.quant_count);
    const int op_index = converter[size_t(i)];
    const auto nb = new_bias.find(i);
    if (head_of[size_t(i)] >= 0) {
      const Head& h = heads[size_t(head_of[size_t(i)])];
      if (i == m.op(h.op).inputs[1])
        b.add_constant_s8(name, dims_of(t), h.weight, h.w_scales, kTensorTrainable);
      else
        b.add_constant_s32(name, dims_of(t), h.bias, kTensorTrainable);
    } else if (nb != new_bias.end()) {
      b.add_constant(name, DType(t.dtype), dims_of(t), nb->second.data(), nb->second.size() * 4, flags,
                     channel_scales);
    } else if (op_index < 0) {
      b.add_constant(name, DType(t.dtype), dims_of(t), m.data(i), t.data_size, flags, channel_scales);
    } else {
      const TzmOp& op = m.op(op_index);
      const double s_y = static_cast<double>(m.tensor(op.output).scale);
      const size_t co = tensor_elements(t);
      std::vector<int32_t> q(2 * co);
      const auto* mult = static_cast<const float*>(m.data(i));
      const std::vector<float> ws = options.tflite ? weight_scales(m, op) : std::vector<float>();
      const double s_x = static_cast<double>(m.tensor(op.inputs[0]).scale);
      for (size_t o = 0; o < co; ++o) {
        // TFLite's Prepare: double(s_x) * double(s_w) / double(s_y); the default keeps the
        // paper's stored product f32(s_x s_w) (docs/semantics.md).
        const double ratio = options.tflite ? s_x * static_cast<double>(ws[o]) / s_y : static_cast<double>(mult[o]) / s_y;
        int shift = 0;
        if (!(ratio >= 0.0) || !std::isfinite(ratio))
          throw CliError("convert: op '" + name_of(op.name) + "': multiplier / output scale of channel " +
                         std::to_string(o) + " is negative or not finite");
        const QuantizedMultiplier qm = quantize_multiplier(ratio);
        q[o] = qm.multiplier;
        shift = qm.shift;
        if (shift > 30)
          throw CliError("convert: op '" + name_of(op.name) + "': multiplier / output scale of channel " +
                         std::to_string(o) + " needs a left shift above 30");
        q[co + o] = shift;
      }
      b.add_constant(name, DType::kInt32, {2, static_cast<int32_t>(co)}, q.data(), q.size() * 4, flags);
    }
  }
  for (Head& h : heads) {
    const TzmOp& op = m.op(h.op);
    const int32_t n = int32_t(h.bias.size());
    std::string base = name_of(op.name);
    h.mult_tensor = b.add_constant_s32(base.substr(0, 26) + ".mult", {2, n}, h.requant);
    h.out_tensor = b.add_tensor(base, DType::kInt8, {n}, 0, h.y_scale, h.y_zero);
    out.head_scale = h.y_scale;
    out.head_zero = h.y_zero;
  }
  for (int i = 0; i < m.n_ops(); ++i) {
    const TzmOp& op = m.op(i);
    std::vector<int> inputs(op.inputs, op.inputs + op.n_inputs);
    std::vector<int32_t> params(op.params, op.params + kTzmMaxOpParams);
    OpType type = static_cast<OpType>(op.type);
    if (float_scale_conv_or_fc(op)) {
      if (type == OpType::kConv2d)
        params[kConvRequant] = kRequantFixedPoint;
      else
        params[kFcRequant] = kRequantFixedPoint;
    }
    if (options.tflite) {
      const TzmTensor& x = m.tensor(op.inputs[0]);
      const TzmTensor& y = m.tensor(op.output);
      if (type == OpType::kAdd) {
        const int act = fused_activation(op, params[0], params[1], y);
        params = tflite_add_params(x.scale, m.tensor(op.inputs[1]).scale, y.scale, y.zero_point, act);
        type = OpType::kAddTfl;
        ++out.remapped_ops;
      } else if (type == OpType::kGlobalAvgPool) {
        params = tflite_mean_params(x.scale, y.scale, int64_t(x.dims[0]) * x.dims[1]);
        type = OpType::kMeanTfl;
        ++out.remapped_ops;
      } else if (type == OpType::kAvgPool2d) {
        type = OpType::kAvgPool2dTfl;  // same params layout; rounding half away from zero
        ++out.remapped_ops;
      } else if (type == OpType::kLinearF32) {
        const Head* h = nullptr;
        for (const Head& c : heads)
          if (c.op == i) h = &c;
        std::vector<int32_t> p(kTzmMaxOpParams, 0);
        p[kFcActMin] = -128;
        p[kFcActMax] = 127;
        p[kFcRequant] = kRequantFixedPoint;
        b.add_op(name_of(op.name), OpType::kFullyConnected, {op.inputs[0], op.inputs[1], op.inputs[2], h->mult_tensor},
                 h->out_tensor, p);
        b.add_op("dequantize", OpType::kDequantize, {h->out_tensor}, op.output, std::vector<int32_t>(kTzmMaxOpParams, 0));
        ++out.remapped_ops;
        continue;
      }
      params.resize(kTzmMaxOpParams, 0);
    }
    b.add_op(name_of(op.name), type, inputs, op.output, params);
  }
  b.set_input(m.input_tensor());
  b.set_output(m.output_tensor());
  out.bytes = b.serialize();
  return out;
}

}  // namespace tinyzo
