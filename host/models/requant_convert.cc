#include "models/requant_convert.h"

#include <cmath>
#include <cstring>
#include <string>

#include "models/tzm_writer.h"
#include "util/errors.h"

namespace tinyzo {

void quantize_multiplier_tflite(double m, int32_t* quantized, int* shift) {
  if (m == 0.0) {
    *quantized = 0;
    *shift = 0;
    return;
  }
  int e = 0;
  const double q = std::frexp(m, &e);  // m = q * 2^e, |q| in [0.5, 1)
  int64_t q_fixed = static_cast<int64_t>(std::round(q * static_cast<double>(int64_t{1} << 31)));
  if (q_fixed == (int64_t{1} << 31)) {  // q rounded up to 1: renormalize
    q_fixed /= 2;
    ++e;
  }
  if (e < -31) {  // every bit would be shifted out: TFLite flushes to zero
    e = 0;
    q_fixed = 0;
  }
  *quantized = static_cast<int32_t>(q_fixed);
  *shift = e;
}

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

RequantConversion convert_to_fixed_point(const ModelView& m) {
  if (!m.valid()) throw CliError("convert: the model is not valid");
  RequantConversion out;
  // Which op converts each multiplier tensor.
  std::vector<int> converter(size_t(m.n_tensors()), -1);
  for (int i = 0; i < m.n_ops(); ++i) {
    const TzmOp& op = m.op(i);
    if (!float_scale_conv_or_fc(op)) {
      ++out.kept_ops;
      continue;
    }
    ++out.converted_ops;
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
    if (op_index < 0) {
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
        quantize_multiplier_tflite(ratio, &q[o], &shift);
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
