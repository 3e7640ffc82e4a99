#include "models/tzm_writer.h"

#include <zlib.h>

#include <cstring>

#include "util/errors.h"
#include "util/file_util.h"

// The records are written by copying the in-memory structs, which is the file
// layout only on a little-endian host (every host tinyzo builds on).
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tzm_writer assumes a little-endian host"
#endif

namespace tinyzo {
namespace {

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

void copy_name(char (&dst)[kTzmNameLen], const std::string& name, const char* what) {
  if (name.size() >= size_t(kTzmNameLen))
    throw CliError(std::string(what) + " name '" + name + "' is longer than " + std::to_string(kTzmNameLen - 1) +
                   " bytes");
  std::memset(dst, 0, sizeof dst);
  std::memcpy(dst, name.data(), name.size());
}

uint32_t checked_u32(size_t v, const char* what) {
  if (v > 0xFFFFFFFFu) throw CliError(std::string("model too large: ") + what + " exceeds 4 GiB");
  return static_cast<uint32_t>(v);
}

uint32_t crc_of(const uint8_t* data, size_t n) {
  // zlib's crc32 takes uInt lengths: feed it in chunks.
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const uInt chunk = n > (1u << 30) ? (1u << 30) : static_cast<uInt>(n);
    crc = crc32(crc, data, chunk);
    data += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

uint16_t tzm_minor_version_needed(const std::vector<TzmOp>& ops) {
  for (const TzmOp& op : ops) {
    if (op.type > static_cast<uint16_t>(OpType::kDequantize)) return 1;  // the TFLite op types
    const OpType t = static_cast<OpType>(op.type);
    if ((t == OpType::kConv2d && op.params[kConvRequant] != kRequantFloatScale) ||
        (t == OpType::kFullyConnected && op.params[kFcRequant] != kRequantFloatScale))
      return 1;
  }
  return 0;
}

int32_t window_output_size(int32_t in, int32_t k, int32_t stride, int32_t pad_a, int32_t pad_b) {
  const int64_t span = int64_t(in) + pad_a + pad_b - k;
  if (span < 0 || stride < 1) return 0;
  return static_cast<int32_t>(span / stride + 1);
}

std::vector<float> conv_multipliers(float x_scale, const std::vector<float>& weight_scales) {
  std::vector<float> m(weight_scales.size());
  for (size_t o = 0; o < m.size(); ++o) m[o] = static_cast<float>(double(x_scale) * double(weight_scales[o]));
  return m;
}

// ---- TzmBuilder ----

int TzmBuilder::push_tensor(const std::string& name, DType dtype, const std::vector<int32_t>& dims,
                            uint16_t flags) {
  if (dims.empty() || dims.size() > size_t(kTzmMaxDims))
    throw CliError("tensor '" + name + "': rank must be 1.." + std::to_string(kTzmMaxDims));
  TzmTensor t;
  std::memset(&t, 0, sizeof t);
  copy_name(t.name, name, "tensor");
  t.dtype = static_cast<uint8_t>(dtype);
  t.rank = static_cast<uint8_t>(dims.size());
  t.flags = flags;
  for (int d = 0; d < kTzmMaxDims; ++d) t.dims[d] = d < int(dims.size()) ? dims[d] : 1;
  t.scale = 1.f;
  tensors_.push_back(t);
  blobs_.emplace_back();
  channel_scales_.emplace_back();
  return n_tensors() - 1;
}

int TzmBuilder::add_tensor(const std::string& name, DType dtype, const std::vector<int32_t>& dims, uint16_t flags,
                           float scale, int32_t zero_point) {
  if (flags & kTensorConstant) throw CliError("tensor '" + name + "': use add_constant for constants");
  const int i = push_tensor(name, dtype, dims, flags);
  tensors_[i].scale = scale;
  tensors_[i].zero_point = zero_point;
  return i;
}

int TzmBuilder::add_constant(const std::string& name, DType dtype, const std::vector<int32_t>& dims,
                             const void* data, size_t size_bytes, uint16_t flags,
                             const std::vector<float>& channel_scales) {
  // Check everything before adding, so a throw leaves the builder unchanged.
  size_t expected = dtype_size(dtype);
  for (int32_t d : dims) expected *= size_t(d > 0 ? d : 0);
  if (size_bytes != expected)
    throw CliError("constant '" + name + "': " + std::to_string(size_bytes) + " bytes given, dims need " +
                   std::to_string(expected));
  if (!channel_scales.empty() && (dims.empty() || channel_scales.size() != size_t(dims[0])))
    throw CliError("constant '" + name + "': " + std::to_string(channel_scales.size()) +
                   " per-channel scales, dims[0] must match");
  const int i = push_tensor(name, dtype, dims, flags | kTensorConstant);
  const auto* p = static_cast<const uint8_t*>(data);
  blobs_[i].assign(p, p + size_bytes);
  if (!channel_scales.empty()) {
    tensors_[i].flags |= kTensorPerChannel;
    channel_scales_[i] = channel_scales;
  }
  return i;
}

int TzmBuilder::add_constant_s8(const std::string& name, const std::vector<int32_t>& dims,
                                const std::vector<int8_t>& values, const std::vector<float>& channel_scales,
                                uint16_t flags) {
  return add_constant(name, DType::kInt8, dims, values.data(), values.size(), flags, channel_scales);
}

int TzmBuilder::add_constant_s32(const std::string& name, const std::vector<int32_t>& dims,
                                 const std::vector<int32_t>& values, uint16_t flags) {
  return add_constant(name, DType::kInt32, dims, values.data(), values.size() * 4, flags);
}

int TzmBuilder::add_constant_f32(const std::string& name, const std::vector<int32_t>& dims,
                                 const std::vector<float>& values, uint16_t flags) {
  return add_constant(name, DType::kFloat32, dims, values.data(), values.size() * 4, flags);
}

const TzmTensor& TzmBuilder::checked(int tensor, const char* what) const {
  if (tensor < 0 || tensor >= n_tensors())
    throw CliError(std::string(what) + ": tensor index " + std::to_string(tensor) + " out of range");
  return tensors_[tensor];
}

TzmTensor& TzmBuilder::tensor(int i) { return const_cast<TzmTensor&>(checked(i, "tensor()")); }

TzmOp& TzmBuilder::op(int i) {
  if (i < 0 || i >= n_ops()) throw CliError("op index " + std::to_string(i) + " out of range");
  return ops_[i];
}

int TzmBuilder::add_op(const std::string& name, OpType type, const std::vector<int>& inputs, int output,
                       const std::vector<int32_t>& params) {
  if (inputs.size() > size_t(kTzmMaxOpInputs) || params.size() > size_t(kTzmMaxOpParams))
    throw CliError("op '" + name + "': too many inputs or params");
  TzmOp op;
  std::memset(&op, 0, sizeof op);
  copy_name(op.name, name, "op");
  op.type = static_cast<uint16_t>(type);
  op.n_inputs = static_cast<uint8_t>(inputs.size());
  op.n_outputs = 1;
  for (int k = 0; k < kTzmMaxOpInputs; ++k) op.inputs[k] = k < int(inputs.size()) ? inputs[k] : -1;
  op.output = output;
  for (size_t k = 0; k < params.size(); ++k) op.params[k] = params[k];
  ops_.push_back(op);
  return n_ops() - 1;
}

int TzmBuilder::add_conv2d(const std::string& name, int x, int weight, int bias, int multiplier,
                           const WindowParams& win, int32_t groups, float y_scale, int32_t y_zero,
                           int32_t act_min, int32_t act_max) {
  const TzmTensor& xt = checked(x, "conv input");
  const TzmTensor& wt = checked(weight, "conv weight");
  checked(bias, "conv bias");
  const int32_t requant =
      checked(multiplier, "conv multiplier").dtype == uint8_t(DType::kInt32) ? kRequantFixedPoint : kRequantFloatScale;
  const int32_t kh = wt.dims[1], kw = wt.dims[2], co = wt.dims[0];
  const int32_t oh = window_output_size(xt.dims[0], kh, win.stride_h, win.pad_top, win.pad_bottom);
  const int32_t ow = window_output_size(xt.dims[1], kw, win.stride_w, win.pad_left, win.pad_right);
  if (oh < 1 || ow < 1) throw CliError("conv '" + name + "': the window does not fit the input");
  const int y = add_tensor(name, DType::kInt8, {oh, ow, co}, 0, y_scale, y_zero);
  add_op(name, OpType::kConv2d, {x, weight, bias, multiplier}, y,
         {kh, kw, win.stride_h, win.stride_w, win.pad_top, win.pad_left, win.pad_bottom, win.pad_right, groups,
          act_min, act_max, requant});
  return y;
}

int TzmBuilder::add_add(const std::string& name, int x1, int x2, float y_scale, int32_t y_zero, int32_t act_min,
                        int32_t act_max) {
  const TzmTensor& a = checked(x1, "add input");
  checked(x2, "add input");
  const std::vector<int32_t> dims(a.dims, a.dims + a.rank);
  const int y = add_tensor(name, DType::kInt8, dims, 0, y_scale, y_zero);
  add_op(name, OpType::kAdd, {x1, x2}, y, {act_min, act_max});
  return y;
}

int TzmBuilder::add_global_avg_pool(const std::string& name, int x) {
  const TzmTensor& xt = checked(x, "global average pool input");
  const float s = xt.scale;
  const int32_t z = xt.zero_point, c = xt.dims[2];
  const int y = add_tensor(name, DType::kInt8, {1, 1, c}, 0, s, z);
  add_op(name, OpType::kGlobalAvgPool, {x}, y, {});
  return y;
}

int TzmBuilder::add_linear_f32(const std::string& name, int x, int weight, int bias) {
  checked(x, "float head input");
  checked(bias, "float head bias");
  const int32_t n = checked(weight, "float head weight").dims[0];
  const int y = add_tensor(name, DType::kFloat32, {n});
  add_op(name, OpType::kLinearF32, {x, weight, bias}, y, {});
  return y;
}

int TzmBuilder::add_fully_connected(const std::string& name, int x, int weight, int bias, int multiplier,
                                    float y_scale, int32_t y_zero, int32_t act_min, int32_t act_max) {
  checked(x, "fully-connected input");
  checked(bias, "fully-connected bias");
  const int32_t requant = checked(multiplier, "fully-connected multiplier").dtype == uint8_t(DType::kInt32)
                              ? kRequantFixedPoint
                              : kRequantFloatScale;
  const int32_t co = checked(weight, "fully-connected weight").dims[0];
  const int y = add_tensor(name, DType::kInt8, {co}, 0, y_scale, y_zero);
  add_op(name, OpType::kFullyConnected, {x, weight, bias, multiplier}, y, {act_min, act_max, requant});
  return y;
}

int TzmBuilder::add_window_op(const std::string& name, OpType type, int x, const WindowParams& w, int32_t act_min,
                              int32_t act_max) {
  const TzmTensor& xt = checked(x, "pool input");
  const int32_t oh = window_output_size(xt.dims[0], w.kh, w.stride_h, w.pad_top, w.pad_bottom);
  const int32_t ow = window_output_size(xt.dims[1], w.kw, w.stride_w, w.pad_left, w.pad_right);
  if (oh < 1 || ow < 1) throw CliError("pool '" + name + "': the window does not fit the input");
  const float s = xt.scale;
  const int32_t z = xt.zero_point, c = xt.dims[2];
  const int y = add_tensor(name, DType::kInt8, {oh, ow, c}, 0, s, z);
  add_op(name, type, {x}, y,
         {w.kh, w.kw, w.stride_h, w.stride_w, w.pad_top, w.pad_left, w.pad_bottom, w.pad_right, act_min, act_max});
  return y;
}

int TzmBuilder::add_max_pool(const std::string& name, int x, const WindowParams& w, int32_t act_min,
                             int32_t act_max) {
  return add_window_op(name, OpType::kMaxPool2d, x, w, act_min, act_max);
}

int TzmBuilder::add_avg_pool(const std::string& name, int x, const WindowParams& w, int32_t act_min,
                             int32_t act_max) {
  return add_window_op(name, OpType::kAvgPool2d, x, w, act_min, act_max);
}

int TzmBuilder::add_dequantize(const std::string& name, int x) {
  const TzmTensor& xt = checked(x, "dequantize input");
  const std::vector<int32_t> dims(xt.dims, xt.dims + xt.rank);
  const int y = add_tensor(name, DType::kFloat32, dims);
  add_op(name, OpType::kDequantize, {x}, y, {});
  return y;
}

void TzmBuilder::set_input(int tensor) {
  checked(tensor, "set_input");
  input_ = tensor;
  tensors_[tensor].flags |= kTensorInput;
}

void TzmBuilder::set_output(int tensor) {
  checked(tensor, "set_output");
  output_ = tensor;
  tensors_[tensor].flags |= kTensorOutput;
}

std::vector<uint8_t> TzmBuilder::serialize_unchecked() const {
  // Layout: header | tensor table | op table | (pad to 16) data section. In
  // the data section every constant blob and every per-channel scale array
  // starts on a 16-byte boundary; padding bytes are zero.
  const size_t tensor_table = sizeof(TzmHeader);
  const size_t op_table = tensor_table + tensors_.size() * sizeof(TzmTensor);
  const size_t data_offset = align_up(op_table + ops_.size() * sizeof(TzmOp), kTzmAlign);

  std::vector<TzmTensor> records = tensors_;
  size_t data_size = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].flags & kTensorConstant) {
      records[i].data_offset = checked_u32(data_size, "data section");
      records[i].data_size = checked_u32(blobs_[i].size(), "constant");
      data_size = align_up(data_size + blobs_[i].size(), kTzmAlign);
    }
    if (!channel_scales_[i].empty()) {
      records[i].quant_offset = checked_u32(data_size, "data section");
      records[i].quant_count = checked_u32(channel_scales_[i].size(), "scales");
      data_size = align_up(data_size + channel_scales_[i].size() * sizeof(float), kTzmAlign);
    }
  }

  std::vector<uint8_t> out(data_offset + data_size, 0);
  TzmHeader h;
  std::memset(&h, 0, sizeof h);
  h.magic = kTzmMagic;
  h.version_major = kTzmVersionMajor;
  h.version_minor = tzm_minor_version_needed(ops_);
  h.header_size = sizeof(TzmHeader);
  h.file_size = checked_u32(out.size(), "file");
  h.n_tensors = checked_u32(records.size(), "tensor count");
  h.tensor_table_offset = static_cast<uint32_t>(tensor_table);
  h.n_ops = checked_u32(ops_.size(), "op count");
  h.op_table_offset = checked_u32(op_table, "op table");
  h.data_offset = checked_u32(data_offset, "data offset");
  h.data_size = checked_u32(data_size, "data section");
  h.input_tensor = input_;
  h.output_tensor = output_;
  if (!records.empty()) std::memcpy(out.data() + tensor_table, records.data(), records.size() * sizeof(TzmTensor));
  if (!ops_.empty()) std::memcpy(out.data() + op_table, ops_.data(), ops_.size() * sizeof(TzmOp));
  uint8_t* data = out.data() + data_offset;
  for (size_t i = 0; i < records.size(); ++i) {
    if ((records[i].flags & kTensorConstant) && !blobs_[i].empty())
      std::memcpy(data + records[i].data_offset, blobs_[i].data(), blobs_[i].size());
    if (!channel_scales_[i].empty())
      std::memcpy(data + records[i].quant_offset, channel_scales_[i].data(), channel_scales_[i].size() * 4);
  }
  std::memcpy(out.data(), &h, sizeof h);
  update_tzm_crc(out);
  return out;
}

std::vector<uint8_t> TzmBuilder::serialize() const {
  std::vector<uint8_t> out = serialize_unchecked();
  AlignedModelBytes aligned(out);
  ModelView view;
  const Status s = view.init(aligned.data(), aligned.size());
  if (s != Status::kOk) throw CliError(std::string("the built model is invalid: ") + view.error());
  return out;
}

void TzmBuilder::write_atomic(const std::string& path) const {
  const std::vector<uint8_t> bytes = serialize();
  write_file_atomic(path, bytes.data(), bytes.size());
}

// ---- helpers ----

void AlignedModelBytes::assign(const uint8_t* data, size_t size) {
  storage_.assign((size + sizeof(Block) - 1) / sizeof(Block), Block{});
  size_ = size;
  if (size != 0) std::memcpy(storage_.data(), data, size);
}

void update_tzm_crc(std::vector<uint8_t>& bytes) {
  if (bytes.size() < sizeof(TzmHeader)) throw CliError("model shorter than its header");
  TzmHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  const size_t begin = h.header_size, end = h.file_size;
  if (begin > end || end > bytes.size()) throw CliError("model header sizes outside the buffer");
  h.crc32 = crc_of(bytes.data() + begin, end - begin);
  std::memcpy(bytes.data() + offsetof(TzmHeader, crc32), &h.crc32, sizeof h.crc32);
}

std::vector<uint8_t> rewrite_with_constants(const ModelView& model,
                                            const std::map<int, std::vector<uint8_t>>& replacements) {
  if (!model.valid()) throw CliError("cannot export: the source model is not a validated model");
  const Span<const uint8_t> src = model.bytes();
  std::vector<uint8_t> out(src.begin(), src.end());
  for (const auto& [index, blob] : replacements) {
    if (index < 0 || index >= model.n_tensors())
      throw CliError("cannot export: tensor index " + std::to_string(index) + " out of range");
    const TzmTensor& t = model.tensor(index);
    if (!(t.flags & kTensorConstant))
      throw CliError(std::string("cannot export: tensor '") + t.name + "' is not a constant");
    if (blob.size() != t.data_size)
      throw CliError(std::string("cannot export: tensor '") + t.name + "' needs " + std::to_string(t.data_size) +
                     " bytes, got " + std::to_string(blob.size()));
    const size_t at = size_t(model.header().data_offset) + t.data_offset;
    if (!blob.empty()) std::memcpy(out.data() + at, blob.data(), blob.size());
  }
  update_tzm_crc(out);
  // Only blob bytes changed, so the result validates whenever the source did,
  // unless a new blob overlaps per-channel scales the reader checks (the format
  // does not forbid overlapping regions): validate before handing it out.
  AlignedModelBytes aligned(out);
  ModelView check;
  if (check.init(aligned.data(), aligned.size()) != Status::kOk)
    throw CliError(std::string("cannot export: the rewritten model is invalid: ") + check.error());
  return out;
}

}  // namespace tinyzo
