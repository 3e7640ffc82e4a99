#include "tinyzo/model.h"

#include <cfloat>
#include <cstring>

namespace tinyzo {
namespace {

constexpr uint32_t kMaxTensors = 4096;
constexpr uint32_t kMaxOps = 4096;
constexpr uint64_t kMaxElements = 1ull << 28;
constexpr int64_t kMaxFanIn = 65536;  // 255 * 128 * 65536 < 2^31  // far above any MCU model, keeps products in range

bool finite_positive(float v) { return v > 0.f && v < 3.0e38f; }
bool aligned(uint64_t v, uint64_t a) { return (v & (a - 1)) == 0; }

// Expected input count of each op type (index = type).
int expected_inputs(OpType t) {
  switch (t) {
    case OpType::kConv2d: return 4;
    case OpType::kFullyConnected: return 4;
    case OpType::kAdd:
    case OpType::kAddTfl: return 2;
    case OpType::kLinearF32: return 3;
    case OpType::kGlobalAvgPool:
    case OpType::kMaxPool2d:
    case OpType::kAvgPool2d:
    case OpType::kDequantize:
    case OpType::kAvgPool2dTfl:
    case OpType::kMeanTfl:
    case OpType::kPad:
    case OpType::kReshape:
    case OpType::kTranspose:
    case OpType::kSoftmaxTfl:
    case OpType::kQuantize: return 1;
  }
  return -1;
}

}  // namespace

size_t dtype_size(DType t) { return t == DType::kInt8 ? 1 : 4; }

size_t tensor_elements(const TzmTensor& t) {
  size_t n = 1;
  for (int d = 0; d < kTzmMaxDims; ++d) n *= static_cast<size_t>(t.dims[d]);
  return n;
}

Status ModelView::fail(const char* why) {
  header_ = nullptr;
  tensors_ = nullptr;
  ops_ = nullptr;
  error_ = why;
  return Status::kCorruptModel;
}

Status ModelView::init(const uint8_t* bytes, size_t size) {
  header_ = nullptr;
  error_ = "";
  bytes_ = bytes;
  size_ = size;
  if (bytes == nullptr || size < sizeof(TzmHeader)) return fail("file shorter than the 64-byte header");
  if (!aligned(reinterpret_cast<uintptr_t>(bytes), kTzmAlign)) return fail("model bytes not 16-byte aligned");
  const auto* h = reinterpret_cast<const TzmHeader*>(bytes);
  if (h->magic != kTzmMagic) return fail("bad magic (not a .tzm file)");
  if (h->version_major != kTzmVersionMajor) {
    error_ = "unsupported major version";
    return Status::kUnsupported;
  }
  if (h->header_size != sizeof(TzmHeader)) return fail("bad header size");
  if (h->file_size != size) return fail(h->file_size > size ? "truncated file" : "file size mismatch");
  if (crc32_update(0, bytes + sizeof(TzmHeader), size - sizeof(TzmHeader)) != h->crc32)
    return fail("CRC mismatch");
  if (h->n_tensors < 1 || h->n_tensors > kMaxTensors) return fail("tensor count out of range");
  if (h->n_ops < 1 || h->n_ops > kMaxOps) return fail("op count out of range");
  const uint64_t tensor_end = uint64_t(h->tensor_table_offset) + uint64_t(h->n_tensors) * sizeof(TzmTensor);
  const uint64_t op_end = uint64_t(h->op_table_offset) + uint64_t(h->n_ops) * sizeof(TzmOp);
  if (h->tensor_table_offset < sizeof(TzmHeader) || tensor_end > size || !aligned(h->tensor_table_offset, 4))
    return fail("tensor table outside the file or misaligned");
  if (h->op_table_offset < sizeof(TzmHeader) || op_end > size || !aligned(h->op_table_offset, 4))
    return fail("op table outside the file or misaligned");
  if (!aligned(h->data_offset, kTzmAlign) || uint64_t(h->data_offset) + h->data_size > size)
    return fail("data section outside the file or misaligned");
  header_ = h;
  tensors_ = reinterpret_cast<const TzmTensor*>(bytes + h->tensor_table_offset);
  ops_ = reinterpret_cast<const TzmOp*>(bytes + h->op_table_offset);
  TZ_RETURN_IF_ERROR(validate_tensors());
  return validate_ops();
}

Status ModelView::validate_tensors() {
  const uint64_t data_size = header_->data_size;
  for (int i = 0; i < n_tensors(); ++i) {
    const TzmTensor& t = tensors_[i];
    if (std::memchr(t.name, 0, kTzmNameLen) == nullptr) return fail("tensor name not NUL-terminated");
    if (t.dtype > static_cast<uint8_t>(DType::kFloat32)) return fail("unknown tensor dtype");
    if (t.rank < 1 || t.rank > kTzmMaxDims) return fail("tensor rank out of range");
    uint64_t n = 1;
    for (int d = 0; d < kTzmMaxDims; ++d) {
      if (t.dims[d] < 1 || (d >= t.rank && t.dims[d] != 1)) return fail("tensor dims out of range");
      n *= uint64_t(t.dims[d]);
      if (n > kMaxElements) return fail("tensor too large");
    }
    const DType dt = static_cast<DType>(t.dtype);
    if (t.flags & kTensorConstant) {
      if (!aligned(t.data_offset, kTzmAlign) || uint64_t(t.data_offset) + t.data_size > data_size)
        return fail("constant blob outside the data section or misaligned");
      if (t.data_size != n * dtype_size(dt)) return fail("constant blob size does not match its dims");
      if (t.flags & (kTensorInput | kTensorOutput)) return fail("a constant cannot be a model input/output");
      if (dt == DType::kFloat32) {
        // Float weights, biases and multipliers: a NaN or infinity is damage, not a model (and
        // the kernels could not agree on it bit for bit: NaN payloads depend on operand order).
        const uint8_t* blob = bytes_ + header_->data_offset + t.data_offset;
        for (uint64_t k = 0; k < n; ++k) {
          float v;
          std::memcpy(&v, blob + 4 * k, 4);
          if (!(v >= -FLT_MAX && v <= FLT_MAX)) return fail("float32 constant not finite");
        }
      }
    } else if (dt == DType::kInt8) {
      if (!finite_positive(t.scale)) return fail("activation scale not positive and finite");
      if (t.zero_point < -128 || t.zero_point > 127) return fail("activation zero point outside int8");
    }
    if (t.flags & kTensorPerChannel) {
      if (!aligned(t.quant_offset, 4) || uint64_t(t.quant_offset) + uint64_t(t.quant_count) * 4 > data_size)
        return fail("per-channel scales outside the data section");
      if (t.quant_count != uint32_t(t.dims[0])) return fail("per-channel scale count != dims[0]");
      const float* s = channel_scales(i);
      for (uint32_t c = 0; c < t.quant_count; ++c)
        if (!finite_positive(s[c])) return fail("per-channel scale not positive and finite");
    }
  }
  const int in = header_->input_tensor, out = header_->output_tensor;
  if (in < 0 || in >= n_tensors() || out < 0 || out >= n_tensors()) return fail("input/output tensor index out of range");
  const TzmTensor& ti = tensors_[in];
  // A float32 input is allowed for TFLite models that start with QUANTIZE (validate_ops checks
  // that only Quantize ops read it).
  if ((ti.flags & kTensorConstant) || ti.dtype == uint8_t(DType::kInt32) || !(ti.flags & kTensorInput))
    return fail("model input must be a non-constant int8 (or float32) tensor flagged input");
  if ((tensors_[out].flags & kTensorConstant) || !(tensors_[out].flags & kTensorOutput))
    return fail("model output must be a non-constant tensor flagged output");
  return Status::kOk;
}

const float* ModelView::channel_scales(int i) const {
  const TzmTensor& t = tensors_[i];
  if (!(t.flags & kTensorPerChannel)) return nullptr;
  return reinterpret_cast<const float*>(bytes_ + header_->data_offset + t.quant_offset);
}

int ModelView::producer(int tensor) const {
  for (int i = 0; i < n_ops(); ++i)
    if (ops_[i].output == tensor) return i;
  return -1;
}

namespace {

bool is(const TzmTensor& t, DType dt) { return t.dtype == static_cast<uint8_t>(dt); }
bool is_const(const TzmTensor& t) { return (t.flags & kTensorConstant) != 0; }
bool act_range_ok(int32_t lo, int32_t hi) { return lo >= -128 && hi <= 127 && lo <= hi; }
bool same_dims(const TzmTensor& a, const TzmTensor& b) {
  if (a.rank != b.rank) return false;
  for (int d = 0; d < kTzmMaxDims; ++d)
    if (a.dims[d] != b.dims[d]) return false;
  return true;
}
// A TFLite Q31 multiplier (>= 0) with a shift in [lo, hi].
bool multiplier_ok(int32_t mult, int32_t shift, int32_t lo, int32_t hi) { return mult >= 0 && shift >= lo && shift <= hi; }
// |v| * 2^max(shift, 0) stays below 2^31 for |v| <= bound (TFLite's left shift never overflows);
// shift <= 31 (callers check the range first).
bool left_shift_fits(int64_t bound, int32_t shift) { return bound < ((int64_t(1) << 31) >> (shift > 0 ? shift : 0)); }
bool window_ok(const int32_t* p) {
  const int32_t kh = p[kPoolKh], kw = p[kPoolKw];
  return kh >= 1 && kw >= 1 && p[kPoolStrideH] >= 1 && p[kPoolStrideW] >= 1 && p[kPoolPadTop] >= 0 &&
         p[kPoolPadLeft] >= 0 && p[kPoolPadBottom] >= 0 && p[kPoolPadRight] >= 0 && p[kPoolPadTop] < kh &&
         p[kPoolPadBottom] < kh && p[kPoolPadLeft] < kw && p[kPoolPadRight] < kw;
}

// The requantization operand inputs[3] of a conv / fully-connected op with `co` outputs, for the
// rule `kind` (kConvRequant / kFcRequant): null when it is valid, else why not. Fixed-point:
// int32 constant [2, co], multipliers 0 or in [2^30, 2^31), shifts in [-31, 30], and a file of
// format 1.1 or later (a 1.0 reader would not know the rule).
const char* requant_operand_error(const TzmHeader& h, const uint8_t* data, const TzmTensor& m, int32_t kind,
                                  int32_t co) {
  if (kind == kRequantFloatScale) {
    if (!is(m, DType::kFloat32) || !is_const(m) || tensor_elements(m) != size_t(co))
      return "float-scale multiplier must be a constant float32 [Co]";
    return nullptr;
  }
  if (kind != kRequantFixedPoint) return "unknown requantization kind";
  if (h.version_minor < 1) return "fixed-point requantization needs format 1.1";
  if (!is(m, DType::kInt32) || !is_const(m) || m.rank != 2 || m.dims[0] != 2 || m.dims[1] != co)
    return "fixed-point requantization operand must be a constant int32 [2, Co]";
  const uint8_t* blob = data + m.data_offset;
  for (int32_t o = 0; o < co; ++o) {
    int32_t mult, shift;
    std::memcpy(&mult, blob + 4 * size_t(o), 4);
    std::memcpy(&shift, blob + 4 * (size_t(co) + size_t(o)), 4);
    if (mult != 0 && mult < (int32_t{1} << 30)) return "fixed-point multiplier outside 0 or [2^30, 2^31)";
    if (shift < -31 || shift > 30) return "fixed-point shift outside [-31, 30]";
  }
  return nullptr;
}
// Output size of a sliding window, or 0 when the window does not fit.
int32_t window_out(int32_t in, int32_t k, int32_t stride, int32_t pad_a, int32_t pad_b) {
  const int64_t span = int64_t(in) + pad_a + pad_b - k;
  if (span < 0 || stride < 1) return 0;
  return static_cast<int32_t>(span / stride + 1);
}

}  // namespace

Status ModelView::validate_ops() {
  // Which non-constant tensors hold data when op i runs: the model input, and
  // outputs of earlier ops. Checked without allocation by scanning producers.
  for (int i = 0; i < n_ops(); ++i) {
    const TzmOp& op = ops_[i];
    if (std::memchr(op.name, 0, kTzmNameLen) == nullptr) return fail("op name not NUL-terminated");
    if (op.type < 1 || op.type > kOpTypeMax) return fail("unknown op type");
    const OpType type = static_cast<OpType>(op.type);
    if (op.n_inputs != expected_inputs(type)) return fail("op has the wrong number of inputs");
    if (op.n_outputs != 1) return fail("op must have exactly one output");
    for (int k = 0; k < kTzmMaxOpInputs; ++k) {
      const int32_t t = op.inputs[k];
      if (k >= op.n_inputs) {
        if (t != -1) return fail("unused op input slot must be -1");
        continue;
      }
      if (t < 0 || t >= n_tensors()) return fail("op input tensor index out of range");
      // Activation slots (slot 0, and both inputs of an add) read the arena:
      // a constant there has no arena buffer.
      const bool activation_slot = k == 0 || ((type == OpType::kAdd || type == OpType::kAddTfl) && k == 1);
      if (activation_slot && is_const(tensors_[t])) return fail("op reads a constant where it needs an activation");
      if (t == input_tensor() && tensors_[t].dtype == uint8_t(DType::kFloat32) && type != OpType::kQuantize)
        return fail("a float32 model input may only feed Quantize ops");
      if (is_const(tensors_[t]) || t == input_tensor()) continue;
      int p = -1;
      for (int j = 0; j < i && p < 0; ++j)
        if (ops_[j].output == t) p = j;
      if (p < 0) return fail("op reads a tensor no earlier op produces");
    }
    if (op.output < 0 || op.output >= n_tensors()) return fail("op output tensor index out of range");
    const TzmTensor& y = tensors_[op.output];
    if (is_const(y) || op.output == input_tensor()) return fail("op writes a constant or the model input");
    for (int j = 0; j < i; ++j)
      if (ops_[j].output == op.output) return fail("tensor produced by two ops");

    const TzmTensor& x = tensors_[op.inputs[0]];
    const int32_t* p = op.params;
    switch (type) {
      case OpType::kConv2d: {
        const TzmTensor& w = tensors_[op.inputs[1]];
        const TzmTensor& b = tensors_[op.inputs[2]];
        const TzmTensor& m = tensors_[op.inputs[3]];
        if (!is(x, DType::kInt8) || x.rank != 3 || !is(y, DType::kInt8) || y.rank != 3)
          return fail("conv input/output must be int8 [H, W, C]");
        if (!is(w, DType::kInt8) || !is_const(w) || w.rank != 4 || !(w.flags & kTensorPerChannel))
          return fail("conv weight must be a constant per-channel int8 [Co, kh, kw, Ci/g]");
        if (!is(b, DType::kInt32) || !is_const(b)) return fail("conv bias must be constant int32");
        const int32_t kh = p[kConvKh], kw = p[kConvKw], g = p[kConvGroups];
        if (kh < 1 || kw < 1 || kh > 64 || kw > 64 || p[kConvStrideH] < 1 || p[kConvStrideW] < 1)
          return fail("conv kernel or stride out of range");
        if (p[kConvPadTop] < 0 || p[kConvPadLeft] < 0 || p[kConvPadBottom] < 0 || p[kConvPadRight] < 0 ||
            p[kConvPadTop] >= kh || p[kConvPadBottom] >= kh || p[kConvPadLeft] >= kw || p[kConvPadRight] >= kw)
          return fail("conv padding out of range");
        const int32_t ci = x.dims[2], co = y.dims[2];
        if (g < 1 || ci % g != 0 || co % g != 0) return fail("conv groups do not divide the channels");
        if (w.dims[0] != co || w.dims[1] != kh || w.dims[2] != kw || w.dims[3] != ci / g)
          return fail("conv weight shape does not match the op");
        // |acc| <= 255 * 128 * fan_in must fit int32.
        if (int64_t(kh) * kw * (ci / g) > kMaxFanIn) return fail("conv fan-in too large for int32 accumulation");
        if (b.dims[0] != co || tensor_elements(b) != size_t(co)) return fail("conv bias/multiplier length != output channels");
        if (const char* why = requant_operand_error(*header_, bytes_ + header_->data_offset, m, p[kConvRequant], co))
          return fail(why);
        if (y.dims[0] != window_out(x.dims[0], kh, p[kConvStrideH], p[kConvPadTop], p[kConvPadBottom]) ||
            y.dims[1] != window_out(x.dims[1], kw, p[kConvStrideW], p[kConvPadLeft], p[kConvPadRight]))
          return fail("conv output shape does not chain");
        if (!act_range_ok(p[kConvActMin], p[kConvActMax])) return fail("conv activation range outside int8");
        break;
      }
      case OpType::kFullyConnected: {
        const TzmTensor& w = tensors_[op.inputs[1]];
        const TzmTensor& b = tensors_[op.inputs[2]];
        const TzmTensor& m = tensors_[op.inputs[3]];
        if (!is(x, DType::kInt8) || !is(y, DType::kInt8)) return fail("fully-connected input/output must be int8");
        if (!is(w, DType::kInt8) || !is_const(w) || w.rank != 2 || !(w.flags & kTensorPerChannel))
          return fail("fully-connected weight must be a constant per-channel int8 [Co, Ci]");
        if (!is(b, DType::kInt32) || !is_const(b)) return fail("fully-connected bias must be constant int32");
        if (size_t(w.dims[1]) != tensor_elements(x) || size_t(w.dims[0]) != tensor_elements(y) ||
            tensor_elements(b) != size_t(w.dims[0]))
          return fail("fully-connected shapes do not chain");
        if (const char* why =
                requant_operand_error(*header_, bytes_ + header_->data_offset, m, p[kFcRequant], w.dims[0]))
          return fail(why);
        if (w.dims[1] > kMaxFanIn) return fail("fully-connected fan-in too large for int32 accumulation");
        if (!act_range_ok(p[kFcActMin], p[kFcActMax])) return fail("fully-connected activation range outside int8");
        break;
      }
      case OpType::kAdd: {
        const TzmTensor& x2 = tensors_[op.inputs[1]];
        if (!is(x, DType::kInt8) || !is(x2, DType::kInt8) || !is(y, DType::kInt8)) return fail("add needs int8 tensors");
        for (int d = 0; d < kTzmMaxDims; ++d)
          if (x.dims[d] != x2.dims[d] || x.dims[d] != y.dims[d]) return fail("add shapes do not chain");
        if (!act_range_ok(p[0], p[1])) return fail("add activation range outside int8");
        break;
      }
      case OpType::kGlobalAvgPool:
        if (!is(x, DType::kInt8) || x.rank != 3 || !is(y, DType::kInt8) || y.dims[0] != 1 || y.dims[1] != 1 ||
            y.dims[2] != x.dims[2])
          return fail("global average pool shapes do not chain");
        if (y.scale != x.scale || y.zero_point != x.zero_point)
          return fail("global average pool must keep the input quantization");
        break;
      case OpType::kLinearF32: {
        const TzmTensor& w = tensors_[op.inputs[1]];
        const TzmTensor& b = tensors_[op.inputs[2]];
        if (!is(x, DType::kInt8) || !is(y, DType::kFloat32)) return fail("float head maps int8 to float32");
        if (!is(w, DType::kFloat32) || !is_const(w) || w.rank != 2 || !is(b, DType::kFloat32) || !is_const(b))
          return fail("float head weight/bias must be constant float32");
        if (size_t(w.dims[1]) != tensor_elements(x) || size_t(w.dims[0]) != tensor_elements(y) ||
            tensor_elements(b) != size_t(w.dims[0]))
          return fail("float head shapes do not chain");
        break;
      }
      case OpType::kMaxPool2d:
      case OpType::kAvgPool2d: {
        const int32_t kh = p[kPoolKh], kw = p[kPoolKw];
        if (!is(x, DType::kInt8) || x.rank != 3 || !is(y, DType::kInt8) || y.rank != 3 || y.dims[2] != x.dims[2])
          return fail("pool input/output must be int8 [H, W, C]");
        if (kh < 1 || kw < 1 || p[kPoolStrideH] < 1 || p[kPoolStrideW] < 1 || p[kPoolPadTop] < 0 ||
            p[kPoolPadLeft] < 0 || p[kPoolPadBottom] < 0 || p[kPoolPadRight] < 0 || p[kPoolPadTop] >= kh ||
            p[kPoolPadBottom] >= kh || p[kPoolPadLeft] >= kw || p[kPoolPadRight] >= kw)
          return fail("pool window out of range");
        if (y.dims[0] != window_out(x.dims[0], kh, p[kPoolStrideH], p[kPoolPadTop], p[kPoolPadBottom]) ||
            y.dims[1] != window_out(x.dims[1], kw, p[kPoolStrideW], p[kPoolPadLeft], p[kPoolPadRight]))
          return fail("pool output shape does not chain");
        if (y.scale != x.scale || y.zero_point != x.zero_point) return fail("pool must keep the input quantization");
        if (!act_range_ok(p[kPoolActMin], p[kPoolActMax])) return fail("pool activation range outside int8");
        break;
      }
      case OpType::kDequantize:
        if (!is(x, DType::kInt8) || !is(y, DType::kFloat32) || tensor_elements(x) != tensor_elements(y))
          return fail("dequantize maps int8 to float32 of the same size");
        break;
      case OpType::kAddTfl: {
        const TzmTensor& x2 = tensors_[op.inputs[1]];
        if (!is(x, DType::kInt8) || !is(x2, DType::kInt8) || !is(y, DType::kInt8)) return fail("add needs int8 tensors");
        if (!same_dims(x, x2) || !same_dims(x, y)) return fail("add shapes do not chain");
        if (p[kTflAddLeftShift] < 0 || p[kTflAddLeftShift] > 20 ||
            !multiplier_ok(p[kTflAddX1Mult], p[kTflAddX1Shift], -31, 0) ||
            !multiplier_ok(p[kTflAddX2Mult], p[kTflAddX2Shift], -31, 0) ||
            !multiplier_ok(p[kTflAddYMult], p[kTflAddYShift], -31, 0))
          return fail("add fixed-point parameters out of range");
        if (!act_range_ok(p[kTflAddActMin], p[kTflAddActMax])) return fail("add activation range outside int8");
        break;
      }
      case OpType::kAvgPool2dTfl:
        if (!is(x, DType::kInt8) || x.rank != 3 || !is(y, DType::kInt8) || y.rank != 3 || y.dims[2] != x.dims[2])
          return fail("pool input/output must be int8 [H, W, C]");
        if (!window_ok(p)) return fail("pool window out of range");
        if (y.dims[0] != window_out(x.dims[0], p[kPoolKh], p[kPoolStrideH], p[kPoolPadTop], p[kPoolPadBottom]) ||
            y.dims[1] != window_out(x.dims[1], p[kPoolKw], p[kPoolStrideW], p[kPoolPadLeft], p[kPoolPadRight]))
          return fail("pool output shape does not chain");
        // |sum| <= 128 * kh * kw must fit int32.
        if (int64_t(p[kPoolKh]) * p[kPoolKw] > kMaxFanIn) return fail("pool window too large");
        if (!act_range_ok(p[kPoolActMin], p[kPoolActMax])) return fail("pool activation range outside int8");
        break;
      case OpType::kMeanTfl: {
        if (!is(x, DType::kInt8) || x.rank != 3 || !is(y, DType::kInt8)) return fail("mean maps int8 [H, W, C] to int8");
        const bool keep_dims = y.rank == 3 && y.dims[0] == 1 && y.dims[1] == 1 && y.dims[2] == x.dims[2];
        if (!keep_dims && !(y.rank == 1 && y.dims[0] == x.dims[2])) return fail("mean output must be [1, 1, C] or [C]");
        const int64_t rows = int64_t(x.dims[0]) * x.dims[1];
        if (!multiplier_ok(p[kTflMeanMult], p[kTflMeanShift], -31, 30) ||
            !left_shift_fits(255 * rows, p[kTflMeanShift]))
          return fail("mean fixed-point parameters out of range");
        break;
      }
      case OpType::kPad: {
        if (!is(x, DType::kInt8) || !is(y, DType::kInt8) || x.rank != y.rank) return fail("pad maps int8 to int8 of the same rank");
        for (int d = 0; d < kTzmMaxDims; ++d) {
          const int32_t before = p[kPadBefore + d], after = p[kPadAfter + d];
          if (before < 0 || after < 0 || (d >= x.rank && (before != 0 || after != 0)))
            return fail("pad amounts out of range");
          if (int64_t(y.dims[d]) != int64_t(x.dims[d]) + before + after) return fail("pad output shape does not chain");
        }
        if (p[kPadValue] < -128 || p[kPadValue] > 127) return fail("pad value outside int8");
        break;
      }
      case OpType::kReshape:
        if (x.dtype != y.dtype || tensor_elements(x) != tensor_elements(y))
          return fail("reshape keeps the dtype and the element count");
        break;
      case OpType::kTranspose: {
        if (!is(x, DType::kInt8) || !is(y, DType::kInt8) || x.rank != y.rank)
          return fail("transpose maps int8 to int8 of the same rank");
        bool seen[kTzmMaxDims] = {false, false, false, false};
        for (int d = 0; d < kTzmMaxDims; ++d) {
          const int32_t from = p[d];
          if (d >= x.rank) {
            if (from != 0) return fail("transpose permutation out of range");
            continue;
          }
          if (from < 0 || from >= x.rank || seen[from]) return fail("transpose permutation out of range");
          seen[from] = true;
          if (y.dims[d] != x.dims[from]) return fail("transpose output shape does not chain");
        }
        break;
      }
      case OpType::kSoftmaxTfl: {
        if (!is(x, DType::kInt8) || !is(y, DType::kInt8) || !same_dims(x, y)) return fail("softmax maps int8 to int8 of the same dims");
        if (y.zero_point != -128 || y.scale != 1.f / 256) return fail("softmax output must have scale 1/256 and zero point -128");
        // The sum of exps (each <= 2^19 in Q12.19) must fit int32.
        if (x.dims[x.rank - 1] > 4095) return fail("softmax axis longer than 4095");
        const int32_t ls = p[kTflSoftmaxLeftShift], diff_min = p[kTflSoftmaxDiffMin];
        if (p[kTflSoftmaxMult] < 0 || ls < 0 || ls > 31 || diff_min > 0 ||
            (-int64_t(diff_min) << ls) > (int64_t(31) << 26))
          return fail("softmax fixed-point parameters out of range");
        break;
      }
      case OpType::kQuantize:
        if (!is(y, DType::kInt8) || tensor_elements(x) != tensor_elements(y)) return fail("quantize maps to int8 of the same size");
        if (is(x, DType::kInt8)) {
          if (!multiplier_ok(p[kQuantizeMult], p[kQuantizeShift], -31, 30) || !left_shift_fits(255, p[kQuantizeShift]))
            return fail("quantize fixed-point parameters out of range");
        } else if (!is(x, DType::kFloat32)) {
          return fail("quantize reads int8 or float32");
        }
        break;
    }
  }
  // The model output must be produced by some op.
  if (producer(output_tensor()) < 0) return fail("no op produces the model output");
  return Status::kOk;
}

uint64_t ModelView::op_macs(int i) const {
  const TzmOp& op = ops_[i];
  const TzmTensor& y = tensors_[op.output];
  switch (static_cast<OpType>(op.type)) {
    case OpType::kConv2d: {
      const TzmTensor& w = tensors_[op.inputs[1]];
      return uint64_t(tensor_elements(y)) * uint64_t(w.dims[1]) * uint64_t(w.dims[2]) * uint64_t(w.dims[3]);
    }
    case OpType::kFullyConnected:
    case OpType::kLinearF32: {
      const TzmTensor& w = tensors_[op.inputs[1]];
      return uint64_t(w.dims[0]) * uint64_t(w.dims[1]);
    }
    default: return 0;
  }
}

}  // namespace tinyzo
