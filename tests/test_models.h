// Small synthetic models built with TzmBuilder, shared by the model-view,
// planner and engine tests (header-only: tests/CMakeLists.txt builds *_test.cc). Weights come from a fixed-seed generator whose
// output does not depend on the standard library (std::uniform_*_distribution
// is implementation-defined), so every platform builds the same bytes.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "tinyzo/model.h"
#include "tinyzo/model_format.h"
#include "models/tflite_params.h"
#include "models/model_store.h"
#include "models/tzm_writer.h"

namespace tinyzo::testing {

// xorshift64*: tiny, portable, deterministic.
class TestRng {
 public:
  explicit TestRng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }
  // Uniform integer in [lo, hi] (the modulo bias is irrelevant for tests).
  int32_t uniform(int32_t lo, int32_t hi) {
    return lo + static_cast<int32_t>(next() % uint64_t(int64_t(hi) - lo + 1));
  }
  float uniform_f(float lo, float hi) { return lo + (hi - lo) * float(next() >> 40) / float(1u << 24); }
  std::vector<int8_t> s8(size_t n, int lo = -128, int hi = 127) {
    std::vector<int8_t> v(n);
    for (auto& e : v) e = static_cast<int8_t>(uniform(lo, hi));
    return v;
  }

 private:
  uint64_t state_;
};

// Indices of the constants of one conv / fully-connected layer.
struct ConvConsts {
  int weight = -1, bias = -1, multiplier = -1;
};

// Adds random int8 weights [dims], per-channel scales, int32 biases and the
// matching multipliers (for an input of scale x_scale) as constants.
inline ConvConsts add_random_conv_consts(TzmBuilder& b, const std::string& name, const std::vector<int32_t>& weight_dims,
                                  float x_scale, TestRng& rng);

// A 10-op CNN touching every int8 op type and the float head:
//   0 conv0   3x3 stride 2 pad 1, [8,8,3] -> [4,4,8], act [-128, 100]
//   1 dw1     depthwise 3x3 pad 1 -> [4,4,8]
//   2 pw2     pointwise 1x1 -> [4,4,8]
//   3 add3    conv0 + pw2 (conv0 dies here: planned in place)
//   4 conv4   3x3 groups 2, no padding -> [2,2,8]
//   5 max5    max pool 2x2 stride 1 pad bottom/right 1 -> [2,2,8]
//   6 avg6    avg pool 3x3 stride 1 pad 1 -> [2,2,8]
//   7 gap7    global average pool -> [1,1,8]
//   8 fc8     fully-connected 8 -> 6
//   9 head9   LinearF32 6 -> 4 (the model output, float logits)
// The fields are tensor indices (op k writes the tensor named like it).
struct TinyCnn {
  // Activation scales (zero points: input -3, conv0 -128 (ReLU), dw1 5, pw2 -2,
  // add3 1, conv4 0 (kept by the pools and gap7), fc8 -4).
  static constexpr float kInputScale = 0.05f, kConv0Scale = 0.1f, kDw1Scale = 0.08f, kPw2Scale = 0.08f,
                         kAdd3Scale = 0.1f, kConv4Scale = 0.1f, kFc8Scale = 0.05f;
  TzmBuilder builder;
  int input = -1;
  int conv0 = -1, dw1 = -1, pw2 = -1, add3 = -1, conv4 = -1, max5 = -1, avg6 = -1, gap7 = -1, fc8 = -1,
      head9 = -1;
  ConvConsts conv0_c, dw1_c, pw2_c, conv4_c, fc8_c;
  int head_w = -1, head_b = -1;
};
constexpr int kTinyCnnOps = 10;
inline TinyCnn make_tiny_cnn(uint64_t seed = 1);

// input int8 [4,4,2] -> conv 3x3 pad 1 (int8 [4,4,3], the model output).
// With `dequantize_head` a Dequantize op follows and the float tensor is the output.
inline TzmBuilder make_small_conv(uint64_t seed = 2, bool dequantize_head = false);

// Serialized model in 16-byte-aligned storage plus its validated view.
struct LoadedModel {
  AlignedModelBytes bytes;
  ModelView view;
  Status status = Status::kInternal;
  explicit LoadedModel(const std::vector<uint8_t>& b) : bytes(b) { status = view.init(bytes.data(), bytes.size()); }
};

// Record editing on serialized bytes; each helper recomputes the CRC afterwards
// so the edit reaches the check it targets (not the CRC check).
template <class Fn>
void edit_header(std::vector<uint8_t>& bytes, Fn fn, bool fix_crc = true) {
  TzmHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  fn(h);
  std::memcpy(bytes.data(), &h, sizeof h);
  if (fix_crc) update_tzm_crc(bytes);
}
inline size_t tensor_record_offset(const std::vector<uint8_t>& bytes, int i);
inline size_t op_record_offset(const std::vector<uint8_t>& bytes, int i);
template <class Fn>
void edit_tensor(std::vector<uint8_t>& bytes, int i, Fn fn) {
  TzmTensor t;
  const size_t at = tensor_record_offset(bytes, i);
  std::memcpy(&t, bytes.data() + at, sizeof t);
  fn(t);
  std::memcpy(bytes.data() + at, &t, sizeof t);
  update_tzm_crc(bytes);
}
template <class Fn>
void edit_op(std::vector<uint8_t>& bytes, int i, Fn fn) {
  TzmOp op;
  const size_t at = op_record_offset(bytes, i);
  std::memcpy(&op, bytes.data() + at, sizeof op);
  fn(op);
  std::memcpy(bytes.data() + at, &op, sizeof op);
  update_tzm_crc(bytes);
}

// ---- definitions ----

inline ConvConsts add_random_conv_consts(TzmBuilder& b, const std::string& name, const std::vector<int32_t>& weight_dims,
                                  float x_scale, TestRng& rng) {
  size_t n = 1;
  for (int32_t d : weight_dims) n *= size_t(d);
  const int32_t co = weight_dims[0];
  // Weights uniform in [-60, 60] (rms about 35) with scales near
  // 1 / (35 sqrt(fan-in)): the real-valued layer roughly keeps the rms of its
  // input (He-style), so with the output scales below most outputs stay
  // inside int8 instead of saturating or collapsing to the zero point.
  const size_t fan_in = n / size_t(co);
  std::vector<float> w_scales(co);
  for (auto& s : w_scales) s = rng.uniform_f(0.7f, 1.3f) / (35.f * std::sqrt(float(fan_in)));
  ConvConsts c;
  c.weight = b.add_constant_s8(name + ".w", weight_dims, rng.s8(n, -60, 60), w_scales);
  std::vector<int32_t> bias(co);
  for (auto& v : bias) v = rng.uniform(-400, 400);
  c.bias = b.add_constant_s32(name + ".b", {co}, bias);
  c.multiplier = b.add_constant_f32(name + ".m", {co}, conv_multipliers(x_scale, w_scales));
  return c;
}

inline TinyCnn make_tiny_cnn(uint64_t seed) {
  TinyCnn m;
  TzmBuilder& b = m.builder;
  TestRng rng(seed);
  m.input = b.add_tensor("input", DType::kInt8, {8, 8, 3}, 0, TinyCnn::kInputScale, -3);
  b.set_input(m.input);

  WindowParams w3s2p1;
  w3s2p1.stride_h = w3s2p1.stride_w = 2;
  w3s2p1.pad_top = w3s2p1.pad_left = w3s2p1.pad_bottom = w3s2p1.pad_right = 1;
  m.conv0_c = add_random_conv_consts(b, "conv0", {8, 3, 3, 3}, TinyCnn::kInputScale, rng);
  m.conv0 = b.add_conv2d("conv0", m.input, m.conv0_c.weight, m.conv0_c.bias, m.conv0_c.multiplier, w3s2p1, 1, TinyCnn::kConv0Scale,
                         -128, -128, 100);

  WindowParams w3p1;
  w3p1.pad_top = w3p1.pad_left = w3p1.pad_bottom = w3p1.pad_right = 1;
  m.dw1_c = add_random_conv_consts(b, "dw1", {8, 3, 3, 1}, TinyCnn::kConv0Scale, rng);
  m.dw1 = b.add_conv2d("dw1", m.conv0, m.dw1_c.weight, m.dw1_c.bias, m.dw1_c.multiplier, w3p1, 8, TinyCnn::kDw1Scale, 5);

  m.pw2_c = add_random_conv_consts(b, "pw2", {8, 1, 1, 8}, TinyCnn::kDw1Scale, rng);
  m.pw2 = b.add_conv2d("pw2", m.dw1, m.pw2_c.weight, m.pw2_c.bias, m.pw2_c.multiplier, WindowParams{}, 1, TinyCnn::kPw2Scale, -2);

  m.add3 = b.add_add("add3", m.conv0, m.pw2, TinyCnn::kAdd3Scale, 1);

  m.conv4_c = add_random_conv_consts(b, "conv4", {8, 3, 3, 4}, TinyCnn::kAdd3Scale, rng);
  m.conv4 = b.add_conv2d("conv4", m.add3, m.conv4_c.weight, m.conv4_c.bias, m.conv4_c.multiplier, WindowParams{}, 2,
                         TinyCnn::kConv4Scale, 0);

  WindowParams max_w;
  max_w.kh = max_w.kw = 2;
  max_w.pad_bottom = max_w.pad_right = 1;
  m.max5 = b.add_max_pool("max5", m.conv4, max_w);

  WindowParams avg_w;
  avg_w.kh = avg_w.kw = 3;
  avg_w.pad_top = avg_w.pad_left = avg_w.pad_bottom = avg_w.pad_right = 1;
  m.avg6 = b.add_avg_pool("avg6", m.max5, avg_w);

  m.gap7 = b.add_global_avg_pool("gap7", m.avg6);

  m.fc8_c = add_random_conv_consts(b, "fc8", {6, 8}, TinyCnn::kConv4Scale, rng);
  m.fc8 = b.add_fully_connected("fc8", m.gap7, m.fc8_c.weight, m.fc8_c.bias, m.fc8_c.multiplier,
                                TinyCnn::kFc8Scale, -4);

  std::vector<float> hw(4 * 6), hb(4);
  for (auto& v : hw) v = rng.uniform_f(-1.f, 1.f);
  for (auto& v : hb) v = rng.uniform_f(-0.5f, 0.5f);
  m.head_w = b.add_constant_f32("head.w", {4, 6}, hw, kTensorTrainable);
  m.head_b = b.add_constant_f32("head.b", {4}, hb, kTensorTrainable);
  m.head9 = b.add_linear_f32("head9", m.fc8, m.head_w, m.head_b);
  b.set_output(m.head9);
  return m;
}

inline TzmBuilder make_small_conv(uint64_t seed, bool dequantize_head) {
  TzmBuilder b;
  TestRng rng(seed);
  const int x = b.add_tensor("x", DType::kInt8, {4, 4, 2}, 0, 0.1f, 3);
  b.set_input(x);
  const ConvConsts c = add_random_conv_consts(b, "conv", {3, 3, 3, 2}, 0.1f, rng);
  WindowParams w;
  w.pad_top = w.pad_left = w.pad_bottom = w.pad_right = 1;
  const int y = b.add_conv2d("conv", x, c.weight, c.bias, c.multiplier, w, 1, 0.2f, -7);
  if (dequantize_head) {
    b.set_output(b.add_dequantize("dequant", y));
  } else {
    b.set_output(y);
  }
  return b;
}

// Every TFLite op type in one chain (params from host/models/tflite_params.h):
//   0 transpose (1, 2, 0)   [2, 4, 4] -> [4, 4, 2]      (an NCHW input made NHWC)
//   1 pad H, W by 1 with 3  -> [6, 6, 2]
//   2 avg_pool_tfl 2x2/2    -> [3, 3, 2]
//   3 add_tfl (x + x), RELU -> [3, 3, 2] (0.08, -7)
//   4 mean_tfl over H, W    -> [2] (0.03, 2)
//   5 reshape               -> [1, 2]
//   6 softmax_tfl           -> [1, 2] (1/256, -128)
//   7 quantize (requantize) -> [2] (1/128, 0)
inline TzmBuilder make_tflite_ops_model() {
  TzmBuilder b;
  const int in = b.add_tensor("in", DType::kInt8, {2, 4, 4}, 0, 0.05f, 3);
  b.set_input(in);
  const int tr = b.add_tensor("tr", DType::kInt8, {4, 4, 2}, 0, 0.05f, 3);
  b.add_op("transpose", OpType::kTranspose, {in}, tr, tflite_transpose_params({1, 2, 0}));
  const int pad = b.add_tensor("pad", DType::kInt8, {6, 6, 2}, 0, 0.05f, 3);
  b.add_op("pad", OpType::kPad, {tr}, pad, tflite_pad_params({1, 1, 0}, {1, 1, 0}, 3));
  const int pool = b.add_tensor("pool", DType::kInt8, {3, 3, 2}, 0, 0.05f, 3);
  b.add_op("pool", OpType::kAvgPool2dTfl, {pad}, pool,
           tflite_pool_params(2, 2, 2, 2, WindowAxis{3, 0, 0}, WindowAxis{3, 0, 0}, 0, 0.05f, 3));
  const int add = b.add_tensor("add", DType::kInt8, {3, 3, 2}, 0, 0.08f, -7);
  b.add_op("add", OpType::kAddTfl, {pool, pool}, add, tflite_add_params(0.05f, 0.05f, 0.08f, -7, 1));
  const int mean = b.add_tensor("mean", DType::kInt8, {2}, 0, 0.03f, 2);
  b.add_op("mean", OpType::kMeanTfl, {add}, mean, tflite_mean_params(0.08f, 0.03f, 9));
  const int rs = b.add_tensor("rs", DType::kInt8, {1, 2}, 0, 0.03f, 2);
  b.add_op("reshape", OpType::kReshape, {mean}, rs, {});
  const int sm = b.add_tensor("sm", DType::kInt8, {1, 2}, 0, 1.f / 256, -128);
  b.add_op("softmax", OpType::kSoftmaxTfl, {rs}, sm, tflite_softmax_params(1.f, 0.03f, 1.f / 256, -128));
  const int out = b.add_tensor("out", DType::kInt8, {2}, 0, 1.f / 128, 0);
  b.add_op("quantize", OpType::kQuantize, {sm}, out, tflite_requantize_params(1.f / 256, 1.f / 128));
  b.set_output(out);
  return b;
}

inline size_t tensor_record_offset(const std::vector<uint8_t>& bytes, int i) {
  TzmHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  const size_t at = size_t(h.tensor_table_offset) + size_t(i) * sizeof(TzmTensor);
  if (at + sizeof(TzmTensor) > bytes.size()) throw std::out_of_range("tensor record outside the bytes");
  return at;
}

inline size_t op_record_offset(const std::vector<uint8_t>& bytes, int i) {
  TzmHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  const size_t at = size_t(h.op_table_offset) + size_t(i) * sizeof(TzmOp);
  if (at + sizeof(TzmOp) > bytes.size()) throw std::out_of_range("op record outside the bytes");
  return at;
}

// ---- a trainable model and data for the training tests (train_run_test,
// run_dir_test, cli_train_test)

// input [8,8,3] (the paper's input quantization) -> "0" conv 3x3/2 -> [4,4,8]
// -> "1.1.conv.0" pw -> [4,4,16] -> "1.1.conv.1" dw 3x3 -> "1.1.conv.2" pw
// -> [4,4,8] -> "1.2.conv.0" pw -> [4,4,12] -> gap -> "head" linear -> 10.
inline std::vector<uint8_t> trainable_model_bytes() {
  TzmBuilder b;
  TestRng rng(5);
  const float s_in = 1.f / 127.5f;
  const int x = b.add_tensor("input", DType::kInt8, {8, 8, 3}, 0, s_in, 0);
  b.set_input(x);
  WindowParams w3s2;
  w3s2.stride_h = w3s2.stride_w = 2;
  w3s2.pad_top = w3s2.pad_left = w3s2.pad_bottom = w3s2.pad_right = 1;
  WindowParams w3;
  w3.pad_top = w3.pad_left = w3.pad_bottom = w3.pad_right = 1;
  const float s6 = 6.f / 255.f;  // ReLU6 outputs: zero point -128
  auto c0 = add_random_conv_consts(b, "0", {8, 3, 3, 3}, s_in, rng);
  int t = b.add_conv2d("0", x, c0.weight, c0.bias, c0.multiplier, w3s2, 1, s6, -128, -128, 127);
  auto c1 = add_random_conv_consts(b, "1.1.conv.0", {16, 1, 1, 8}, s6, rng);
  t = b.add_conv2d("1.1.conv.0", t, c1.weight, c1.bias, c1.multiplier, WindowParams{}, 1, s6, -128, -128,
                   127);
  auto c2 = add_random_conv_consts(b, "1.1.conv.1", {16, 3, 3, 1}, s6, rng);
  t = b.add_conv2d("1.1.conv.1", t, c2.weight, c2.bias, c2.multiplier, w3, 16, s6, -128, -128, 127);
  auto c3 = add_random_conv_consts(b, "1.1.conv.2", {8, 1, 1, 16}, s6, rng);
  t = b.add_conv2d("1.1.conv.2", t, c3.weight, c3.bias, c3.multiplier, WindowParams{}, 1, 0.05f, 0);
  auto c4 = add_random_conv_consts(b, "1.2.conv.0", {12, 1, 1, 8}, 0.05f, rng);
  t = b.add_conv2d("1.2.conv.0", t, c4.weight, c4.bias, c4.multiplier, WindowParams{}, 1, s6, -128, -128,
                   127);
  t = b.add_global_avg_pool("pool", t);
  std::vector<float> hw(10 * 12), hb(10);
  for (auto& v : hw) v = rng.uniform_f(-2.f, 2.f);
  for (auto& v : hb) v = rng.uniform_f(-0.2f, 0.2f);
  const int w = b.add_constant_f32("head.w", {10, 12}, hw);
  const int bias = b.add_constant_f32("head.b", {10}, hb);
  b.set_output(b.add_linear_f32("head", t, w, bias));
  return b.serialize();
}

// per_class images of each of the 10 classes (label i % 10), each a
// class-dependent colour plus noise, so there is something to learn.
inline Cifar10Set coloured_cifar_images(int per_class, uint64_t seed) {
  Cifar10Set s;
  TestRng rng(seed);
  const size_t n = size_t(per_class) * kCifar10Classes;
  for (size_t i = 0; i < n; ++i) s.labels.push_back(uint8_t(i % kCifar10Classes));
  s.pixels.resize(n * kCifar10ImageBytes);
  for (size_t i = 0; i < n; ++i) {
    const int label = s.labels[i];
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p)
        s.pixels[i * kCifar10ImageBytes + size_t(c) * 1024 + p] =
            uint8_t(std::clamp(40 + 17 * ((label + c * 3) % 10) + rng.uniform(-40, 40), 0, 255));
  }
  return s;
}

// The set as a CIFAR-10 binary file's bytes (label + 3072 planar bytes each).
inline std::vector<uint8_t> cifar_file_bytes(const Cifar10Set& s) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < s.size(); ++i) {
    out.push_back(s.labels[i]);
    out.insert(out.end(), s.image(i), s.image(i) + kCifar10ImageBytes);
  }
  return out;
}

// A reference model of the data directory (converted on first use), or
// nullptr with the reason in *why when the shared data or the importer is not
// available: the tests that need one skip then.
inline std::unique_ptr<::tinyzo::LoadedModel> load_reference_model(const std::string& name, std::string* why = nullptr) {
  try {
    return std::make_unique<::tinyzo::LoadedModel>(::tinyzo::LoadedModel::load(resolve_model_path(name)));
  } catch (const std::exception& e) {
    if (why != nullptr) *why = e.what();
    return nullptr;
  }
}

}  // namespace tinyzo::testing
