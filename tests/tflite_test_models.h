// Synthetic TensorFlow Lite models for tests and the fuzz seed corpus (header-only), written with
// the FlatBuffers builder code that flatc generates from tinyzo's schema subset
// (host/models/tflite/tflite_subset.fbs), so they carry TensorFlow Lite's field ids: the same
// bytes a TFLite converter would write for these fields. Small and deterministic.
#pragma once
#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tflite_subset_generated.h"

namespace tinyzo::tflite_testing {

namespace tfl = tinyzo::tfl;

class TflBuilder {
 public:
  TflBuilder() { buffers_.push_back(tfl::CreateBuffer(fbb_)); }  // buffer 0: the empty sentinel

  flatbuffers::FlatBufferBuilder& fbb() { return fbb_; }

  // An activation (no data) or, with `data`, a constant. `scales` empty = no quantization.
  int tensor(const std::string& name, tfl::TensorType type, const std::vector<int32_t>& shape,
             const std::vector<float>& scales = {}, const std::vector<int64_t>& zeros = {}, int32_t qdim = 0,
             const std::vector<uint8_t>& data = {}, bool is_variable = false) {
    uint32_t buffer = 0;
    if (!data.empty()) {
      fbb_.ForceVectorAlignment(data.size(), 1, 16);
      buffers_.push_back(tfl::CreateBuffer(fbb_, fbb_.CreateVector(data)));
      buffer = uint32_t(buffers_.size() - 1);
    }
    flatbuffers::Offset<tfl::QuantizationParameters> q = 0;
    if (!scales.empty()) {
      std::vector<int64_t> z = zeros.empty() ? std::vector<int64_t>(scales.size(), 0) : zeros;
      q = tfl::CreateQuantizationParameters(fbb_, fbb_.CreateVector(scales), fbb_.CreateVector(z), 0, qdim);
    }
    tensors_.push_back(tfl::CreateTensor(fbb_, fbb_.CreateVector(shape), type, buffer, fbb_.CreateString(name), q,
                                         is_variable));
    return int(tensors_.size() - 1);
  }
  int int8_act(const std::string& name, const std::vector<int32_t>& shape, float scale, int64_t zero) {
    return tensor(name, tfl::TensorType_INT8, shape, {scale}, {zero});
  }
  int int8_const(const std::string& name, const std::vector<int32_t>& shape, const std::vector<int8_t>& v,
                 const std::vector<float>& scales, int32_t qdim = 0) {
    return tensor(name, tfl::TensorType_INT8, shape, scales, {}, qdim, std::vector<uint8_t>(v.begin(), v.end()));
  }
  int int32_const(const std::string& name, const std::vector<int32_t>& shape, const std::vector<int32_t>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    for (size_t i = 0; i < v.size(); ++i)
      for (int k = 0; k < 4; ++k) b[4 * i + size_t(k)] = uint8_t(uint32_t(v[i]) >> (8 * k));
    return tensor(name, tfl::TensorType_INT32, shape, {}, {}, 0, b);
  }

  void op(int32_t builtin, const std::vector<int32_t>& inputs, const std::vector<int32_t>& outputs,
          tfl::BuiltinOptions options_type = tfl::BuiltinOptions_NONE, flatbuffers::Offset<void> options = 0,
          const std::string& custom_code = "") {
    auto it = codes_.find(builtin);
    int index;
    if (it == codes_.end() || builtin == 32) {
      const int8_t small = int8_t(builtin < 127 ? builtin : 127);
      code_list_.push_back(tfl::CreateOperatorCode(fbb_, small, custom_code.empty() ? 0 : fbb_.CreateString(custom_code),
                                                   1, builtin));
      index = int(code_list_.size() - 1);
      codes_[builtin] = index;
    } else {
      index = it->second;
    }
    ops_.push_back(tfl::CreateOperator(fbb_, uint32_t(index), fbb_.CreateVector(inputs), fbb_.CreateVector(outputs),
                                       options_type, options));
  }

  std::vector<uint8_t> finish(const std::vector<int32_t>& inputs, const std::vector<int32_t>& outputs,
                              uint32_t version = 3) {
    auto sg = tfl::CreateSubGraph(fbb_, fbb_.CreateVector(tensors_), fbb_.CreateVector(inputs),
                                  fbb_.CreateVector(outputs), fbb_.CreateVector(ops_), fbb_.CreateString("main"));
    std::vector<flatbuffers::Offset<tfl::SubGraph>> sgs{sg};
    auto model = tfl::CreateModel(fbb_, version, fbb_.CreateVector(code_list_), fbb_.CreateVector(sgs),
                                  fbb_.CreateString("tinyzo test model"), fbb_.CreateVector(buffers_));
    tfl::FinishModelBuffer(fbb_, model);
    return std::vector<uint8_t>(fbb_.GetBufferPointer(), fbb_.GetBufferPointer() + fbb_.GetSize());
  }

 private:
  flatbuffers::FlatBufferBuilder fbb_;
  std::vector<flatbuffers::Offset<tfl::Buffer>> buffers_;
  std::vector<flatbuffers::Offset<tfl::Tensor>> tensors_;
  std::vector<flatbuffers::Offset<tfl::Operator>> ops_;
  std::vector<flatbuffers::Offset<tfl::OperatorCode>> code_list_;
  std::map<int32_t, int> codes_;
};

inline std::vector<int8_t> ramp(size_t n, int seed = 1) {
  std::vector<int8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = int8_t(int((i * 37 + size_t(seed) * 11) % 61) - 30);
  return v;
}

// Options for the knobs the tests vary.
struct ConvNetOptions {
  int input_h = 6, input_w = 5, input_c = 2;
  float input_scale = 0.05f;
  int input_zero_point = -3;
  tfl::Padding conv_padding = tfl::Padding_SAME;
  int conv_stride = 2;
  int dilation = 1;
  int depth_multiplier = 2;
  int batch = 1;
  tfl::ActivationFunctionType conv_act = tfl::ActivationFunctionType_RELU6;
};

// input int8 [1, H, W, 2] -> CONV_2D 3x3 (4 channels, per-channel) -> DEPTHWISE_CONV_2D 3x3 SAME
// (multiplier m) -> ADD (itself) -> MAX_POOL 2x2 VALID -> AVERAGE_POOL 2x2 SAME -> MEAN [1, 2]
// (keep dims) -> RESHAPE -> FULLY_CONNECTED (3) -> SOFTMAX -> int8 [1, 3].
inline std::vector<uint8_t> conv_net(const ConvNetOptions& o = {}) {
  TflBuilder b;
  auto& f = b.fbb();
  const int H = o.input_h, W = o.input_w;
  const int C = o.input_c;
  const int x = b.tensor("input", tfl::TensorType_INT8, {o.batch, H, W, C}, {o.input_scale}, {o.input_zero_point});
  const int w1 = b.int8_const("conv/w", {4, 3, 3, C}, ramp(size_t(36 * C), 1), {0.01f, 0.02f, 0.015f, 0.03f}, 0);
  const int b1 = b.int32_const("conv/b", {4}, {100, -50, 7, 0});
  auto out = [](int in, int k, int s, bool same) { return same ? (in + s - 1) / s : (in - k + s) / s; };
  const int h1 = out(H, 3, o.conv_stride, o.conv_padding == tfl::Padding_SAME);
  const int ww1 = out(W, 3, o.conv_stride, o.conv_padding == tfl::Padding_SAME);
  const int y1 = b.int8_act("conv/y", {1, h1, ww1, 4}, 0.04f, -128);
  b.op(3, {x, w1, b1}, {y1}, tfl::BuiltinOptions_Conv2DOptions,
       tfl::CreateConv2DOptions(f, o.conv_padding, o.conv_stride, o.conv_stride, o.conv_act, o.dilation, o.dilation).Union());
  const int c2 = 4 * o.depth_multiplier;
  std::vector<float> s2(static_cast<size_t>(c2));
  for (int i = 0; i < c2; ++i) s2[size_t(i)] = 0.01f + 0.002f * float(i);
  const int w2 = b.int8_const("dw/w", {1, 3, 3, c2}, ramp(size_t(9 * c2), 2), s2, 3);
  std::vector<int32_t> bias2(static_cast<size_t>(c2));
  for (int i = 0; i < c2; ++i) bias2[size_t(i)] = 30 * i - 60;
  const int b2 = b.int32_const("dw/b", {c2}, bias2);
  const int y2 = b.int8_act("dw/y", {1, h1, ww1, c2}, 0.06f, 5);
  b.op(4, {y1, w2, b2}, {y2}, tfl::BuiltinOptions_DepthwiseConv2DOptions,
       tfl::CreateDepthwiseConv2DOptions(f, tfl::Padding_SAME, 1, 1, o.depth_multiplier).Union());
  const int y3 = b.int8_act("add/y", {1, h1, ww1, c2}, 0.1f, -2);
  b.op(0, {y2, y2}, {y3}, tfl::BuiltinOptions_AddOptions, tfl::CreateAddOptions(f).Union());
  const int h4 = (h1 - 2) / 1 + 1, w4 = (ww1 - 2) / 1 + 1;
  const int y4 = b.int8_act("max/y", {1, h4, w4, c2}, 0.1f, -2);
  b.op(17, {y3}, {y4}, tfl::BuiltinOptions_Pool2DOptions,
       tfl::CreatePool2DOptions(f, tfl::Padding_VALID, 1, 1, 2, 2).Union());
  const int h5 = (h4 + 1) / 2, w5 = (w4 + 1) / 2;
  const int y5 = b.int8_act("avg/y", {1, h5, w5, c2}, 0.1f, -2);
  b.op(1, {y4}, {y5}, tfl::BuiltinOptions_Pool2DOptions,
       tfl::CreatePool2DOptions(f, tfl::Padding_SAME, 2, 2, 2, 2).Union());
  const int axes = b.int32_const("mean/axes", {2}, {1, 2});
  const int y6 = b.int8_act("mean/y", {1, 1, 1, c2}, 0.05f, -1);
  b.op(40, {y5, axes}, {y6}, tfl::BuiltinOptions_ReducerOptions, tfl::CreateReducerOptions(f, true).Union());
  const int shape = b.int32_const("reshape/shape", {2}, {1, c2});
  const int y7 = b.int8_act("reshape/y", {1, c2}, 0.05f, -1);
  b.op(22, {y6, shape}, {y7}, tfl::BuiltinOptions_ReshapeOptions, tfl::CreateReshapeOptions(f).Union());
  const int w8 = b.int8_const("fc/w", {3, c2}, ramp(size_t(3 * c2), 3), {0.02f});
  const int b8 = b.int32_const("fc/b", {3}, {10, -10, 0});
  const int y8 = b.int8_act("fc/y", {1, 3}, 0.08f, 4);
  b.op(9, {y7, w8, b8}, {y8}, tfl::BuiltinOptions_FullyConnectedOptions, tfl::CreateFullyConnectedOptions(f).Union());
  const int y9 = b.int8_act("softmax/y", {1, 3}, 1.f / 256.f, -128);
  b.op(25, {y8}, {y9}, tfl::BuiltinOptions_SoftmaxOptions, tfl::CreateSoftmaxOptions(f, 1.f).Union());
  return b.finish({x}, {y9});
}

// input int8 [1, 2, 4, 4] (NCHW) -> TRANSPOSE [0, 2, 3, 1] -> PAD [[0,0],[1,1],[0,1],[0,0]] ->
// QUANTIZE (new scale) -> DEQUANTIZE -> float32 [1, 5, 5, 2].
inline std::vector<uint8_t> layout_net() {
  TflBuilder b;
  auto& f = b.fbb();
  const int x = b.int8_act("input", {1, 2, 4, 4}, 0.02f, 3);
  const int perm = b.int32_const("perm", {4}, {0, 2, 3, 1});
  const int y1 = b.int8_act("nhwc", {1, 4, 4, 2}, 0.02f, 3);
  b.op(39, {x, perm}, {y1}, tfl::BuiltinOptions_TransposeOptions, tfl::CreateTransposeOptions(f).Union());
  const int pads = b.int32_const("pads", {4, 2}, {0, 0, 1, 1, 0, 1, 0, 0});
  const int y2 = b.int8_act("padded", {1, 6, 5, 2}, 0.02f, 3);
  b.op(34, {y1, pads}, {y2}, tfl::BuiltinOptions_PadOptions, tfl::CreatePadOptions(f).Union());
  const int y3 = b.int8_act("requant", {1, 6, 5, 2}, 0.03f, -7);
  b.op(114, {y2}, {y3}, tfl::BuiltinOptions_QuantizeOptions, tfl::CreateQuantizeOptions(f).Union());
  const int y4 = b.tensor("real", tfl::TensorType_FLOAT32, {1, 6, 5, 2});
  b.op(6, {y3}, {y4}, tfl::BuiltinOptions_DequantizeOptions, tfl::CreateDequantizeOptions(f).Union());
  return b.finish({x}, {y4});
}

}  // namespace tinyzo::tflite_testing
