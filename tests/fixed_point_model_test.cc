// TFLite's fixed-point requantization at the model level: QuantizeMultiplier (the converter's
// copy), `convert_to_fixed_point` on the 10-op TinyCnn, the engine running the converted model
// with every kernel table bit for bit, its outputs against the float-scale model, format 1.1
// validation (corrupt fixed-point operands rejected with kCorruptModel and a reason), and the
// `tinyzo convert` command.
#include <gtest/gtest.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "models/requant_convert.h"
#include "models/tflite_params.h"
#include "test_models.h"
#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/kernels/kernels.h"
#if defined(__x86_64__)
#include "tinyzo/kernels/x86.h"
#endif
#include "util/errors.h"

namespace tinyzo {
namespace {

using testing::edit_header;
using testing::edit_op;
using testing::make_tiny_cnn;

// The converter uses the shared TFLite QuantizeMultiplier (host/models/tflite_params.h); these are
// the values it must give for the conversion's inputs, by hand.
void quantize_multiplier_tflite(double m, int32_t* q, int* s) {
  const QuantizedMultiplier r = quantize_multiplier(m);
  *q = r.multiplier;
  *s = r.shift;
}

TEST(QuantizeMultiplierTflite, HandComputed) {
  int32_t q = -1;
  int s = -99;
  quantize_multiplier_tflite(0.0, &q, &s);
  EXPECT_EQ(q, 0);
  EXPECT_EQ(s, 0);
  quantize_multiplier_tflite(0.5, &q, &s);  // 0.5 * 2^0
  EXPECT_EQ(q, 1 << 30);
  EXPECT_EQ(s, 0);
  quantize_multiplier_tflite(1.0, &q, &s);  // 0.5 * 2^1
  EXPECT_EQ(q, 1 << 30);
  EXPECT_EQ(s, 1);
  quantize_multiplier_tflite(3.0, &q, &s);  // 0.75 * 2^2
  EXPECT_EQ(q, 1610612736);
  EXPECT_EQ(s, 2);
  quantize_multiplier_tflite(std::ldexp(1.0, -31), &q, &s);  // 0.5 * 2^-30
  EXPECT_EQ(q, 1 << 30);
  EXPECT_EQ(s, -30);
  quantize_multiplier_tflite(std::ldexp(1.0, -40), &q, &s);  // shift -39 < -31: flushed to 0
  EXPECT_EQ(q, 0);
  EXPECT_EQ(s, 0);
  // 1 - 2^-40: the mantissa rounds to 2^31, renormalized to 2^30 with the shift one higher.
  quantize_multiplier_tflite(1.0 - std::ldexp(1.0, -40), &q, &s);
  EXPECT_EQ(q, 1 << 30);
  EXPECT_EQ(s, 1);
  // 0.1 = 0.8 * 2^-3; 0.8 * 2^31 = 1717986918.4 -> 1717986918.
  quantize_multiplier_tflite(0.1, &q, &s);
  EXPECT_EQ(q, 1717986918);
  EXPECT_EQ(s, -3);
  // A tie rounds away from zero: (2^30 + 0.5) / 2^31 -> 2^30 + 1.
  quantize_multiplier_tflite((std::ldexp(1.0, 30) + 0.5) / std::ldexp(1.0, 31), &q, &s);
  EXPECT_EQ(q, (1 << 30) + 1);
  EXPECT_EQ(s, 0);
}

std::string op_name(const TzmOp& op) { return std::string(op.name); }

struct Converted {
  std::vector<uint8_t> float_bytes;
  RequantConversion conv;
};

Converted convert_tiny(uint64_t seed = 1) {
  Converted c;
  c.float_bytes = make_tiny_cnn(seed).builder.serialize();
  AlignedModelBytes b(c.float_bytes);
  ModelView v;
  EXPECT_EQ(v.init(b.data(), b.size()), Status::kOk) << v.error();
  c.conv = convert_to_fixed_point(v);
  return c;
}

TEST(ConvertToFixedPoint, TinyCnn) {
  const Converted c = convert_tiny();
  EXPECT_EQ(c.conv.converted_ops, 5);  // conv0, dw1, pw2, conv4, fc8
  EXPECT_EQ(c.conv.kept_ops, 5);
  testing::LoadedModel f(c.float_bytes), x(c.conv.bytes);
  ASSERT_EQ(f.status, Status::kOk);
  ASSERT_EQ(x.status, Status::kOk) << x.view.error();
  EXPECT_EQ(f.view.header().version_minor, 0);  // no fixed-point op: still written as 1.0
  EXPECT_EQ(x.view.header().version_minor, 1);
  ASSERT_EQ(x.view.n_ops(), f.view.n_ops());
  ASSERT_EQ(x.view.n_tensors(), f.view.n_tensors());
  for (int i = 0; i < f.view.n_ops(); ++i) {
    const TzmOp& a = f.view.op(i);
    const TzmOp& b = x.view.op(i);
    SCOPED_TRACE(op_name(a));
    EXPECT_EQ(op_name(a), op_name(b));
    EXPECT_EQ(a.type, b.type);
    EXPECT_EQ(0, std::memcmp(a.inputs, b.inputs, sizeof a.inputs));
    EXPECT_EQ(a.output, b.output);
    const OpType t = static_cast<OpType>(a.type);
    const int flag = t == OpType::kConv2d ? kConvRequant : t == OpType::kFullyConnected ? kFcRequant : -1;
    for (int k = 0; k < kTzmMaxOpParams; ++k)
      EXPECT_EQ(b.params[k], k == flag ? kRequantFixedPoint : a.params[k]) << "param " << k;
    if (flag < 0) continue;
    const TzmTensor& mt = x.view.tensor(b.inputs[3]);
    ASSERT_EQ(mt.dtype, uint8_t(DType::kInt32));
    const int co = static_cast<int>(tensor_elements(f.view.tensor(a.inputs[3])));
    ASSERT_EQ(mt.rank, 2);
    ASSERT_EQ(mt.dims[0], 2);
    ASSERT_EQ(mt.dims[1], co);
    const auto* mult = static_cast<const float*>(f.view.data(a.inputs[3]));
    const auto* q = static_cast<const int32_t*>(x.view.data(b.inputs[3]));
    const double s_y = f.view.tensor(a.output).scale;
    for (int o = 0; o < co; ++o) {
      int32_t want_q;
      int want_s;
      quantize_multiplier_tflite(double(mult[o]) / s_y, &want_q, &want_s);
      EXPECT_EQ(q[o], want_q) << o;
      EXPECT_EQ(q[co + o], want_s) << o;
      EXPECT_GE(q[o], 1 << 30);
      // M * 2^(shift - 31) is mult / s_y to within 2^-31 relative.
      const double back = std::ldexp(double(q[o]), q[co + o] - 31);
      EXPECT_NEAR(back, double(mult[o]) / s_y, 1e-9 * double(mult[o]) / s_y);
    }
  }
  // Every other tensor: same record fields and bytes.
  for (int i = 0; i < f.view.n_tensors(); ++i) {
    const TzmTensor& a = f.view.tensor(i);
    const TzmTensor& b = x.view.tensor(i);
    EXPECT_STREQ(a.name, b.name);
    if (a.dtype == uint8_t(DType::kFloat32) && b.dtype == uint8_t(DType::kInt32)) continue;  // a multiplier
    EXPECT_EQ(a.dtype, b.dtype);
    EXPECT_EQ(a.flags, b.flags) << a.name;
    EXPECT_EQ(0, std::memcmp(a.dims, b.dims, sizeof a.dims));
    EXPECT_EQ(a.scale, b.scale);
    EXPECT_EQ(a.zero_point, b.zero_point);
    if (a.flags & kTensorConstant) {
      EXPECT_EQ(0, std::memcmp(f.view.data(i), x.view.data(i), a.data_size)) << a.name;
    }
  }
  // Converting again keeps everything (nothing left to convert).
  const RequantConversion again = convert_to_fixed_point(x.view);
  EXPECT_EQ(again.converted_ops, 0);
  EXPECT_EQ(again.bytes, c.conv.bytes);
}

// Every op's output for one input, by table.
std::vector<std::vector<int8_t>> run_all_ops(const ModelView& v, const KernelTable& k, const std::vector<int8_t>& in) {
  std::vector<uint8_t> mem(1 << 20);
  Arena arena(mem.data(), mem.size());
  Engine e;
  EXPECT_EQ(e.init(v, arena, k), Status::kOk);
  std::vector<std::vector<int8_t>> out;
  auto dst = e.input();
  std::memcpy(dst.data(), in.data(), in.size());
  for (int i = 0; i < v.n_ops(); ++i) {
    EXPECT_EQ(e.invoke_range(i, i + 1), Status::kOk);
    const TzmTensor& t = v.tensor(v.op(i).output);
    const size_t n = tensor_elements(t) * dtype_size(DType(t.dtype));
    const auto* p = static_cast<const int8_t*>(e.tensor_data(v.op(i).output));
    out.emplace_back(p, p + n);
  }
  return out;
}

std::vector<const KernelTable*> tables() {
  std::vector<const KernelTable*> t = {&ref::table(), &best_kernels()};
#if defined(__x86_64__)
  for (const char* name : {"portable", "avx2", "avx512vnni"})
    if (const KernelTable* k = x86::find_table(name)) t.push_back(k);
#endif
  return t;
}

TEST(FixedPointEngine, EveryTableBitExactAndCloseToFloatScale) {
  const Converted c = convert_tiny(3);
  testing::LoadedModel f(c.float_bytes), x(c.conv.bytes);
  ASSERT_EQ(x.status, Status::kOk);
  testing::TestRng rng(11);
  int differ = 0, total = 0;
  for (int img = 0; img < 8; ++img) {
    const std::vector<int8_t> in = rng.s8(size_t(8 * 8 * 3));
    const auto want = run_all_ops(x.view, ref::table(), in);
    for (const KernelTable* k : tables()) {
      SCOPED_TRACE(k->name);
      const auto got = run_all_ops(x.view, *k, in);
      for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "op " << i;
    }
    // The first conv reads the same input in both models: the rules agree to one step
    // (M * 2^(shift-31) = mult / s_y to 2^-31; the float-scale rule rounds in binary32).
    const auto fl = run_all_ops(f.view, ref::table(), in);
    ASSERT_EQ(fl[0].size(), want[0].size());
    for (size_t j = 0; j < want[0].size(); ++j) {
      EXPECT_LE(std::abs(int(fl[0][j]) - int(want[0][j])), 1) << j;
      differ += fl[0][j] != want[0][j];
      ++total;
    }
  }
  // Not everything collapsed to a constant: the outputs spread.
  EXPECT_LT(differ, total / 4);
}

// Dead channels: biases at the int32 limits (as in the paper's checkpoints) make acc + bias wrap
// under TFLite's int32 arithmetic, where the float-scale rule saturates. The conversion counts
// them; clamp_bias clamps those biases so the fixed-point model saturates there too.
TEST(ConvertToFixedPoint, WrappingBiasesCountedAndClamped) {
  std::vector<uint8_t> fb = make_tiny_cnn(5).builder.serialize();
  {
    testing::LoadedModel m(fb);
    const TzmTensor& bt = m.view.tensor(m.view.op(0).inputs[2]);
    const size_t at = m.view.header().data_offset + bt.data_offset;
    const int32_t lo = INT32_MIN, hi = INT32_MAX;
    std::memcpy(fb.data() + at, &lo, 4);      // channel 0
    std::memcpy(fb.data() + at + 4, &hi, 4);  // channel 1
    update_tzm_crc(fb);
  }
  testing::LoadedModel f(fb);
  ASSERT_EQ(f.status, Status::kOk);
  const RequantConversion plain = convert_to_fixed_point(f.view);
  EXPECT_EQ(plain.wrapping_channels, 2);
  EXPECT_EQ(plain.clamped_biases, 0);
  ConvertOptions opts;
  opts.clamp_bias = true;
  const RequantConversion clamped = convert_to_fixed_point(f.view, opts);
  EXPECT_EQ(clamped.wrapping_channels, 2);
  EXPECT_EQ(clamped.clamped_biases, 2);
  testing::LoadedModel x(clamped.bytes), xp(plain.bytes);
  ASSERT_EQ(x.status, Status::kOk);
  const auto* b = static_cast<const int32_t*>(x.view.data(x.view.op(0).inputs[2]));
  const auto* b0 = static_cast<const int32_t*>(f.view.data(f.view.op(0).inputs[2]));
  // max |acc| of channel 0: sum |w| * max |x - z_x| (the input zero point is -3: 127 + 3 = 130).
  const TzmTensor& wt = f.view.tensor(f.view.op(0).inputs[1]);
  const auto* w = static_cast<const int8_t*>(f.view.data(f.view.op(0).inputs[1]));
  const int per = static_cast<int>(tensor_elements(wt)) / wt.dims[0];
  int64_t a0 = 0, a1 = 0;
  for (int k = 0; k < per; ++k) a0 += std::abs(int(w[k])) * 130, a1 += std::abs(int(w[per + k])) * 130;
  EXPECT_EQ(b[0], int64_t(INT32_MIN) + a0);
  EXPECT_EQ(b[1], int64_t(INT32_MAX) - a1);
  for (int o = 2; o < 8; ++o) EXPECT_EQ(b[o], b0[o]);
  // Clamped: channels 0 and 1 saturate at act_min / act_max ([-128, 100]) as in the float model.
  testing::TestRng rng(2);
  const std::vector<int8_t> in = rng.s8(8 * 8 * 3);
  const auto yf = run_all_ops(f.view, ref::table(), in)[0];
  const auto yx = run_all_ops(x.view, ref::table(), in)[0];
  const auto yp = run_all_ops(xp.view, ref::table(), in)[0];
  int wrapped = 0;
  for (size_t s = 0; s < yf.size(); s += 8) {
    EXPECT_EQ(yf[s], -128);
    EXPECT_EQ(yf[s + 1], 100);
    EXPECT_EQ(yx[s], -128);
    EXPECT_EQ(yx[s + 1], 100);
    wrapped += yp[s] != -128 || yp[s + 1] != 100;
  }
  // Unclamped, TFLite's wrap shows: some pixel's acc has the sign that wraps.
  EXPECT_GT(wrapped, 0);
}

// Corrupt fixed-point operands and flags are rejected with a reason.
class FixedPointValidation : public ::testing::Test {
 protected:
  FixedPointValidation() : c_(convert_tiny()) {}
  // The converted bytes with operand entry `k` of op `op` ([2, Co] flat) set to v, CRC fixed.
  std::vector<uint8_t> with_entry(int op, size_t k, int32_t v) {
    std::vector<uint8_t> b = c_.conv.bytes;
    testing::LoadedModel m(b);
    const TzmTensor& t = m.view.tensor(m.view.op(op).inputs[3]);
    const size_t at = m.view.header().data_offset + t.data_offset + 4 * k;
    std::memcpy(b.data() + at, &v, 4);
    update_tzm_crc(b);
    return b;
  }
  static void expect_corrupt(const std::vector<uint8_t>& b, const char* text) {
    testing::LoadedModel m(b);
    EXPECT_EQ(m.status, Status::kCorruptModel);
    EXPECT_NE(std::string(m.view.error()).find(text), std::string::npos) << m.view.error();
  }
  Converted c_;
};

TEST_F(FixedPointValidation, ConvertedModelValid) {
  EXPECT_EQ(testing::LoadedModel(c_.conv.bytes).status, Status::kOk);
  // The edges of the ranges are valid: M = 0, M = 2^31 - 1, shift -31 and 30.
  EXPECT_EQ(testing::LoadedModel(with_entry(0, 0, 0)).status, Status::kOk);
  EXPECT_EQ(testing::LoadedModel(with_entry(0, 0, INT32_MAX)).status, Status::kOk);
  EXPECT_EQ(testing::LoadedModel(with_entry(0, 0, 1 << 30)).status, Status::kOk);
  EXPECT_EQ(testing::LoadedModel(with_entry(0, 8, -31)).status, Status::kOk);  // conv0 has 8 outputs
  EXPECT_EQ(testing::LoadedModel(with_entry(0, 8, 30)).status, Status::kOk);
}

TEST_F(FixedPointValidation, MultiplierOutOfRange) {
  expect_corrupt(with_entry(0, 3, (1 << 30) - 1), "fixed-point multiplier");
  expect_corrupt(with_entry(1, 0, 1), "fixed-point multiplier");
  expect_corrupt(with_entry(2, 7, -5), "fixed-point multiplier");
  expect_corrupt(with_entry(8, 0, INT32_MIN), "fixed-point multiplier");  // fc8
}

TEST_F(FixedPointValidation, ShiftOutOfRange) {
  expect_corrupt(with_entry(0, 8, 31), "fixed-point shift");
  expect_corrupt(with_entry(0, 15, -32), "fixed-point shift");
  expect_corrupt(with_entry(8, 6 + 5, INT32_MIN), "fixed-point shift");  // fc8: 6 outputs
}

TEST_F(FixedPointValidation, UnknownRequantKind) {
  std::vector<uint8_t> b = c_.conv.bytes;
  edit_op(b, 0, [](TzmOp& op) { op.params[kConvRequant] = 2; });
  expect_corrupt(b, "unknown requantization kind");
  b = c_.conv.bytes;
  edit_op(b, 8, [](TzmOp& op) { op.params[kFcRequant] = -1; });
  expect_corrupt(b, "unknown requantization kind");
}

TEST_F(FixedPointValidation, FlagAndOperandMustAgree) {
  // Fixed-point operand under the float-scale rule.
  std::vector<uint8_t> b = c_.conv.bytes;
  edit_op(b, 4, [](TzmOp& op) { op.params[kConvRequant] = kRequantFloatScale; });
  expect_corrupt(b, "float-scale multiplier");
  b = c_.conv.bytes;
  edit_op(b, 8, [](TzmOp& op) { op.params[kFcRequant] = kRequantFloatScale; });
  expect_corrupt(b, "float-scale multiplier");
  // Float operand under the fixed-point rule (a 1.1 header, so the operand check is reached).
  b = c_.float_bytes;
  edit_header(b, [](TzmHeader& h) { h.version_minor = 1; });
  edit_op(b, 0, [](TzmOp& op) { op.params[kConvRequant] = kRequantFixedPoint; });
  expect_corrupt(b, "constant int32 [2, Co]");
  b = c_.float_bytes;
  edit_header(b, [](TzmHeader& h) { h.version_minor = 1; });
  edit_op(b, 8, [](TzmOp& op) { op.params[kFcRequant] = kRequantFixedPoint; });
  expect_corrupt(b, "constant int32 [2, Co]");
}

TEST_F(FixedPointValidation, OperandShapeWrong) {
  // The operand of conv0 (8 outputs) used by dw1 is fine; the one of fc8 (6 outputs) is not.
  std::vector<uint8_t> b = c_.conv.bytes;
  testing::LoadedModel m(b);
  const int fc_operand = m.view.op(8).inputs[3];
  edit_op(b, 0, [&](TzmOp& op) { op.inputs[3] = fc_operand; });
  expect_corrupt(b, "constant int32 [2, Co]");
}

TEST_F(FixedPointValidation, NeedsFormat11) {
  std::vector<uint8_t> b = c_.conv.bytes;
  edit_header(b, [](TzmHeader& h) { h.version_minor = 0; });
  expect_corrupt(b, "needs format 1.1");
}

}  // namespace
}  // namespace tinyzo
