// Host-side writer of .tzm models (docs/format.md): a builder that assembles a
// model from tensors and ops, and the exporter that rewrites an existing model
// with new constant blobs (trained weights). Host code: uses the STL, throws
// CliError whose message names the tensor/op at fault.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tinyzo/model.h"
#include "tinyzo/model_format.h"

namespace tinyzo {

// Sliding-window geometry shared by Conv2d and the pools.
struct WindowParams {
  int32_t kh = 1, kw = 1;
  int32_t stride_h = 1, stride_w = 1;
  int32_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
};

// Output size of a window op along one axis: (in + pad_a + pad_b - k) / stride + 1,
// or 0 when the window does not fit (the builder then throws).
int32_t window_output_size(int32_t in, int32_t k, int32_t stride, int32_t pad_a, int32_t pad_b);

// The stored conv/fully-connected multipliers: m[o] = f32(double(s_x) * double(s_w[o]))
// (docs/semantics.md, "Requantization").
std::vector<float> conv_multipliers(float x_scale, const std::vector<float>& weight_scales);

// The lowest minor version of format 1 that describes `ops`: 1 when an op uses the fixed-point
// requantization or a TFLite op type (9 and up; format 1.1), else 0 (so files without them stay
// byte-identical to 1.0 files).
uint16_t tzm_minor_version_needed(const std::vector<TzmOp>& ops);

// Builds a model in memory, then serializes it. Tensor and op indices are
// assigned in call order (tensor i is the i-th add_*), and ops run in the order
// they are added. The op helpers create their output tensor (shape computed
// from the inputs and params) and return its index.
//
// serialize() checks the result with ModelView::init and throws when it is not
// a valid model; serialize_unchecked() skips that (tests build malformed
// models with it). The records stay editable through tensor()/op() until then.
class TzmBuilder {
 public:
  // A non-constant tensor (an activation). `dims` has 1..4 entries; scale and
  // zero point describe int8 activations (ignored by readers for float32).
  int add_tensor(const std::string& name, DType dtype, const std::vector<int32_t>& dims, uint16_t flags = 0,
                 float scale = 1.f, int32_t zero_point = 0);
  // A constant tensor; `size_bytes` must equal the element count times the
  // dtype size. Non-empty `channel_scales` makes it per-channel (one scale per
  // dims[0] entry, stored as float32 in the data section).
  int add_constant(const std::string& name, DType dtype, const std::vector<int32_t>& dims, const void* data,
                   size_t size_bytes, uint16_t flags = 0, const std::vector<float>& channel_scales = {});
  // Typed conveniences over add_constant.
  int add_constant_s8(const std::string& name, const std::vector<int32_t>& dims, const std::vector<int8_t>& values,
                      const std::vector<float>& channel_scales = {}, uint16_t flags = 0);
  int add_constant_s32(const std::string& name, const std::vector<int32_t>& dims,
                       const std::vector<int32_t>& values, uint16_t flags = 0);
  int add_constant_f32(const std::string& name, const std::vector<int32_t>& dims, const std::vector<float>& values,
                       uint16_t flags = 0);

  // Conv2d over x [H, W, Ci] with weight [Co, kh, kw, Ci/groups] (the kernel
  // size is taken from the weight; window.kh/kw are ignored), bias int32 [Co]
  // and multiplier f32 [Co] (the float-scale rule) or int32 [2, Co] (TFLite's
  // fixed-point rule: multipliers, then shifts; the op's kConvRequant is set
  // from the multiplier's dtype). Output: int8 [Ho, Wo, Co] with (y_scale, y_zero).
  int add_conv2d(const std::string& name, int x, int weight, int bias, int multiplier, const WindowParams& window,
                 int32_t groups, float y_scale, int32_t y_zero, int32_t act_min = -128, int32_t act_max = 127);
  // Residual add: x1 + x2 (same shape), requantized to (y_scale, y_zero).
  int add_add(const std::string& name, int x1, int x2, float y_scale, int32_t y_zero, int32_t act_min = -128,
              int32_t act_max = 127);
  // Global average pool [H, W, C] -> [1, 1, C], keeping x's quantization.
  int add_global_avg_pool(const std::string& name, int x);
  // Float head: int8 x (C elements) -> float32 [N] with weight f32 [N, C], bias f32 [N].
  int add_linear_f32(const std::string& name, int x, int weight, int bias);
  // int8 fully-connected: x (Ci elements) -> int8 [Co], weight int8 [Co, Ci] per-channel;
  // multiplier as add_conv2d's (f32 [Co] or fixed-point int32 [2, Co]).
  int add_fully_connected(const std::string& name, int x, int weight, int bias, int multiplier, float y_scale,
                          int32_t y_zero, int32_t act_min = -128, int32_t act_max = 127);
  // Pools over x [H, W, C], keeping x's quantization.
  int add_max_pool(const std::string& name, int x, const WindowParams& window, int32_t act_min = -128,
                   int32_t act_max = 127);
  int add_avg_pool(const std::string& name, int x, const WindowParams& window, int32_t act_min = -128,
                   int32_t act_max = 127);
  // int8 -> float32 real values, same dims as x.
  int add_dequantize(const std::string& name, int x);
  // Any op from raw fields (no shape inference): `inputs` has <= 4 entries,
  // `params` <= 12. Returns the op index.
  int add_op(const std::string& name, OpType type, const std::vector<int>& inputs, int output,
             const std::vector<int32_t>& params);

  // Marks the model input (non-constant int8, or float32 feeding Quantize ops) / output; sets the tensor flag.
  void set_input(int tensor);
  void set_output(int tensor);

  // Valid, checked model bytes; throws CliError naming the failed check.
  std::vector<uint8_t> serialize() const;
  // The same layout without the final ModelView check.
  std::vector<uint8_t> serialize_unchecked() const;
  // serialize() written to `path` through a temporary file and a rename, so a
  // failure never leaves a partial model behind.
  void write_atomic(const std::string& path) const;

  int n_tensors() const { return static_cast<int>(tensors_.size()); }
  int n_ops() const { return static_cast<int>(ops_.size()); }
  // Editable records (offsets are assigned by serialize and overwritten there).
  TzmTensor& tensor(int i);
  TzmOp& op(int i);
  const std::vector<uint8_t>& tensor_bytes(int i) const { return blobs_.at(i); }

 private:
  int push_tensor(const std::string& name, DType dtype, const std::vector<int32_t>& dims, uint16_t flags);
  const TzmTensor& checked(int tensor, const char* what) const;
  int add_window_op(const std::string& name, OpType type, int x, const WindowParams& w, int32_t act_min,
                    int32_t act_max);

  std::vector<TzmTensor> tensors_;
  std::vector<std::vector<uint8_t>> blobs_;           // per tensor: constant bytes (empty otherwise)
  std::vector<std::vector<float>> channel_scales_;    // per tensor: per-channel scales (empty otherwise)
  std::vector<TzmOp> ops_;
  int input_ = -1;
  int output_ = -1;
};

// Copies `bytes` into 16-byte-aligned storage (ModelView reads in place and
// requires that alignment; std::vector gives no such promise).
class AlignedModelBytes {
 public:
  AlignedModelBytes() = default;
  explicit AlignedModelBytes(const std::vector<uint8_t>& bytes) { assign(bytes.data(), bytes.size()); }
  void assign(const uint8_t* data, size_t size);
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(storage_.data()); }
  uint8_t* data() { return reinterpret_cast<uint8_t*>(storage_.data()); }
  size_t size() const { return size_; }

 private:
  struct alignas(16) Block {
    uint8_t b[16];
  };
  std::vector<Block> storage_;
  size_t size_ = 0;
};

// Recomputes header.crc32 over [header_size, file_size) of a serialized model
// in place (tests that patch a field use it to reach the intended check).
void update_tzm_crc(std::vector<uint8_t>& bytes);

// Export: a copy of `model` where each constant tensor listed in `replacements`
// (tensor index -> new blob, exactly the tensor's data_size bytes) gets the new
// bytes; every other byte stays identical and the CRC is recomputed. Throws
// CliError for an invalid model, a non-constant index or a size mismatch.
std::vector<uint8_t> rewrite_with_constants(const ModelView& model,
                                            const std::map<int, std::vector<uint8_t>>& replacements);

}  // namespace tinyzo
