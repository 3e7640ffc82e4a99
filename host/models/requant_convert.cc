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
    if (nb != new_bias.end()) {
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
      for (size_t o = 0; o < co; ++o) {
        const double ratio = static_cast<double>(mult[o]) / s_y;
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
  for (int i = 0; i < m.n_ops(); ++i) {
    const TzmOp& op = m.op(i);
    std::vector<int> inputs(op.inputs, op.inputs + op.n_inputs);
    std::vector<int32_t> params(op.params, op.params + kTzmMaxOpParams);
    if (float_scale_conv_or_fc(op)) {
      if (static_cast<OpType>(op.type) == OpType::kConv2d)
        params[kConvRequant] = kRequantFixedPoint;
      else
        params[kFcRequant] = kRequantFixedPoint;
    }
    b.add_op(name_of(op.name), static_cast<OpType>(op.type), inputs, op.output, params);
  }
  b.set_input(m.input_tensor());
  b.set_output(m.output_tensor());
  out.bytes = b.serialize();
  return out;
}

}  // namespace tinyzo
