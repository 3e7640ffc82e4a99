// ModelView::init: a valid model passes; every malformed case is rejected
// with the right status and a message naming the problem; random corruption
// never crashes. Each malformed model is built from the valid tiny CNN by
// changing one thing (records edited after serialization get a fresh CRC, so
// the edit reaches the check it targets rather than the CRC check).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "test_models.h"
#include "tinyzo/arena.h"
#include "tinyzo/engine.h"

namespace tinyzo {
namespace {

using testing::edit_header;
using testing::edit_op;
using testing::edit_tensor;
using testing::LoadedModel;
using testing::make_tiny_cnn;
using testing::TinyCnn;

// Loads `bytes`; returns the status and the view's error text.
struct Outcome {
  Status status;
  std::string error;
};
Outcome load(const std::vector<uint8_t>& bytes) {
  LoadedModel m(bytes);
  return {m.status, m.view.error()};
}

#define EXPECT_REJECTED(bytes, status_, text)                                                \
  do {                                                                                       \
    const Outcome o_ = load(bytes);                                                          \
    EXPECT_EQ(o_.status, status_) << "error(): " << o_.error;                                \
    EXPECT_NE(o_.error.find(text), std::string::npos) << "error() is \"" << o_.error << "\""; \
  } while (0)
#define EXPECT_CORRUPT(bytes, text) EXPECT_REJECTED(bytes, Status::kCorruptModel, text)

class ModelViewTest : public ::testing::Test {
 protected:
  ModelViewTest() : cnn_(make_tiny_cnn()), bytes_(cnn_.builder.serialize()) {}
  // A builder-level edit, serialized without the builder's own check.
  template <class Fn>
  std::vector<uint8_t> built_with(Fn fn) {
    TinyCnn m = make_tiny_cnn();
    fn(m);
    return m.builder.serialize_unchecked();
  }
  TzmHeader header() const {
    TzmHeader h;
    std::memcpy(&h, bytes_.data(), sizeof h);
    return h;
  }

  TinyCnn cnn_;
  std::vector<uint8_t> bytes_;
};

// Op indices of the tiny CNN (see test_models.h).
constexpr int kConv0 = 0, kDw1 = 1, kPw2 = 2, kAdd3 = 3, kConv4 = 4, kMax5 = 5, kAvg6 = 6, kFc8 = 8, kHead9 = 9;

TEST_F(ModelViewTest, ValidModelPasses) {
  LoadedModel m(bytes_);
  ASSERT_EQ(m.status, Status::kOk) << m.view.error();
  EXPECT_TRUE(m.view.valid());
  EXPECT_STREQ(m.view.error(), "");
  EXPECT_EQ(m.view.n_ops(), testing::kTinyCnnOps);
  EXPECT_EQ(m.view.n_tensors(), cnn_.builder.n_tensors());
  EXPECT_EQ(m.view.input_tensor(), cnn_.input);
  EXPECT_EQ(m.view.output_tensor(), cnn_.head9);
  EXPECT_EQ(m.view.producer(cnn_.add3), kAdd3);
  EXPECT_EQ(m.view.producer(cnn_.input), -1);
  EXPECT_EQ(m.view.producer(cnn_.conv0_c.weight), -1);
  EXPECT_STREQ(m.view.tensor(cnn_.conv4).name, "conv4");
  EXPECT_STREQ(m.view.op(kConv4).name, "conv4");
  // conv0: 4x4x8 outputs, 3x3x3 window each.
  EXPECT_EQ(m.view.op_macs(kConv0), uint64_t(4 * 4 * 8) * 27);
  EXPECT_EQ(m.view.op_macs(kHead9), uint64_t(4 * 6));
  ASSERT_NE(m.view.channel_scales(cnn_.conv0_c.weight), nullptr);
  EXPECT_EQ(m.view.channel_scales(cnn_.conv0_c.bias), nullptr);
  // Constant blobs read back what the builder stored, 16-aligned.
  const auto& w = cnn_.builder.tensor_bytes(cnn_.conv4_c.weight);
  ASSERT_EQ(m.view.tensor(cnn_.conv4_c.weight).data_size, w.size());
  EXPECT_EQ(std::memcmp(m.view.data(cnn_.conv4_c.weight), w.data(), w.size()), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m.view.data(cnn_.conv4_c.weight)) % 16, 0u);
}

TEST_F(ModelViewTest, ErrorIsClearedByALaterValidInit) {
  AlignedModelBytes good(bytes_);
  std::vector<uint8_t> bad = bytes_;
  bad[0] ^= 1;
  AlignedModelBytes b(bad);
  ModelView v;
  EXPECT_EQ(v.init(b.data(), b.size()), Status::kCorruptModel);
  EXPECT_FALSE(v.valid());
  EXPECT_EQ(v.init(good.data(), good.size()), Status::kOk);
  EXPECT_STREQ(v.error(), "");
}

TEST_F(ModelViewTest, NullOrMisalignedBytesRejected) {
  ModelView v;
  EXPECT_EQ(v.init(nullptr, 0), Status::kCorruptModel);
  std::vector<uint8_t> shifted(bytes_.size() + 1);
  AlignedModelBytes storage(shifted);
  std::memcpy(storage.data() + 1, bytes_.data(), bytes_.size());
  EXPECT_EQ(v.init(storage.data() + 1, bytes_.size()), Status::kCorruptModel);
  EXPECT_NE(std::string(v.error()).find("aligned"), std::string::npos) << v.error();
}

// ---- truncation ----

TEST_F(ModelViewTest, TruncatedInsideHeader) {
  for (size_t n : {size_t(0), size_t(1), size_t(4), size_t(32), size_t(63)}) {
    SCOPED_TRACE(n);
    EXPECT_CORRUPT(std::vector<uint8_t>(bytes_.begin(), bytes_.begin() + n), "header");
  }
}

TEST_F(ModelViewTest, TruncatedInsideTensorTable) {
  for (size_t n : {size_t(64), size_t(64 + 40), size_t(64 + 80 * 3 + 7)}) {
    SCOPED_TRACE(n);
    EXPECT_CORRUPT(std::vector<uint8_t>(bytes_.begin(), bytes_.begin() + n), "truncated");
  }
}

TEST_F(ModelViewTest, TruncatedInsideOpTable) {
  const size_t ops = header().op_table_offset;
  for (size_t n : {ops + 1, ops + 104 + 50}) {
    SCOPED_TRACE(n);
    EXPECT_CORRUPT(std::vector<uint8_t>(bytes_.begin(), bytes_.begin() + n), "truncated");
  }
}

TEST_F(ModelViewTest, TruncatedInsideData) {
  const size_t data = header().data_offset;
  for (size_t n : {data, data + 10, bytes_.size() - 1}) {
    SCOPED_TRACE(n);
    EXPECT_CORRUPT(std::vector<uint8_t>(bytes_.begin(), bytes_.begin() + n), "truncated");
  }
}

TEST_F(ModelViewTest, TrailingBytesRejected) {
  std::vector<uint8_t> b = bytes_;
  b.resize(b.size() + 16, 0);
  EXPECT_CORRUPT(b, "size");
}

// ---- header ----

TEST_F(ModelViewTest, WrongMagic) {
  edit_header(bytes_, [](TzmHeader& h) { h.magic = 0x324D5A54u; });  // "TZM2"
  EXPECT_CORRUPT(bytes_, "magic");
}

TEST_F(ModelViewTest, WrongMajorVersionIsUnsupported) {
  for (uint16_t major : {uint16_t(0), uint16_t(2), uint16_t(0xFFFF)}) {
    std::vector<uint8_t> b = bytes_;
    edit_header(b, [&](TzmHeader& h) { h.version_major = major; });
    SCOPED_TRACE(major);
    EXPECT_REJECTED(b, Status::kUnsupported, "version");
  }
}

TEST_F(ModelViewTest, NewerMinorVersionAccepted) {
  edit_header(bytes_, [](TzmHeader& h) { h.version_minor = 7; });
  EXPECT_EQ(load(bytes_).status, Status::kOk);
}

TEST_F(ModelViewTest, NonZeroReservedHeaderWordsAccepted) {
  // A later minor version may put fields there; old readers ignore them.
  edit_header(bytes_, [](TzmHeader& h) { h.reserved[0] = 1; h.version_minor = 1; });
  EXPECT_EQ(load(bytes_).status, Status::kOk);
}

TEST_F(ModelViewTest, BadHeaderSize) {
  edit_header(bytes_, [](TzmHeader& h) { h.header_size = 60; });
  EXPECT_CORRUPT(bytes_, "header size");
}

TEST_F(ModelViewTest, CrcMismatch) {
  // Flip one bit of a data byte (the last weight blob byte) and keep the header CRC.
  bytes_[header().data_offset + 3] ^= 0x10;
  EXPECT_CORRUPT(bytes_, "CRC");
}

TEST_F(ModelViewTest, CrcMismatchInTables) {
  bytes_[64 + 5] ^= 0x01;  // a tensor name byte
  EXPECT_CORRUPT(bytes_, "CRC");
}

TEST_F(ModelViewTest, TensorTableOffsetOutOfRange) {
  const uint32_t size = uint32_t(bytes_.size());
  for (uint32_t off : {size, size - 40, 0u, 0xFFFFFFF0u}) {
    std::vector<uint8_t> b = bytes_;
    edit_header(b, [&](TzmHeader& h) { h.tensor_table_offset = off; });
    SCOPED_TRACE(off);
    EXPECT_CORRUPT(b, "tensor table");
  }
}

TEST_F(ModelViewTest, TensorTableMisaligned) {
  edit_header(bytes_, [](TzmHeader& h) { h.tensor_table_offset += 2; });
  EXPECT_CORRUPT(bytes_, "tensor table");
}

TEST_F(ModelViewTest, OpTableOffsetOutOfRange) {
  const uint32_t size = uint32_t(bytes_.size());
  for (uint32_t off : {size, size - 104, 8u, 0xFFFFFFFCu}) {
    std::vector<uint8_t> b = bytes_;
    edit_header(b, [&](TzmHeader& h) { h.op_table_offset = off; });
    SCOPED_TRACE(off);
    EXPECT_CORRUPT(b, "op table");
  }
}

TEST_F(ModelViewTest, DataSectionOutOfRange) {
  const uint32_t size = uint32_t(bytes_.size());
  std::vector<uint8_t> b = bytes_;
  edit_header(b, [&](TzmHeader& h) { h.data_size = size; });
  EXPECT_CORRUPT(b, "data section");
  b = bytes_;
  edit_header(b, [&](TzmHeader& h) { h.data_offset = 0xFFFFFFF0u; });
  EXPECT_CORRUPT(b, "data section");
  b = bytes_;
  edit_header(b, [&](TzmHeader& h) { h.data_offset += 8; });  // misaligned
  EXPECT_CORRUPT(b, "data section");
}

TEST_F(ModelViewTest, TensorCountZero) {
  edit_header(bytes_, [](TzmHeader& h) { h.n_tensors = 0; });
  EXPECT_CORRUPT(bytes_, "tensor count");
}

TEST_F(ModelViewTest, TensorCountHuge) {
  for (uint32_t n : {4097u, 0x10000000u, 0xFFFFFFFFu}) {
    std::vector<uint8_t> b = bytes_;
    edit_header(b, [&](TzmHeader& h) { h.n_tensors = n; });
    SCOPED_TRACE(n);
    EXPECT_CORRUPT(b, "tensor count");
  }
}

TEST_F(ModelViewTest, TensorCountPastTheTable) {
  // Within the limit, but the table would run past the file end.
  edit_header(bytes_, [](TzmHeader& h) { h.n_tensors = 4096; });
  EXPECT_CORRUPT(bytes_, "tensor table");
}

TEST_F(ModelViewTest, OpCountZero) {
  edit_header(bytes_, [](TzmHeader& h) { h.n_ops = 0; });
  EXPECT_CORRUPT(bytes_, "op count");
}

TEST_F(ModelViewTest, OpCountHuge) {
  for (uint32_t n : {4097u, 0x80000000u, 0xFFFFFFFFu}) {
    std::vector<uint8_t> b = bytes_;
    edit_header(b, [&](TzmHeader& h) { h.n_ops = n; });
    SCOPED_TRACE(n);
    EXPECT_CORRUPT(b, "op count");
  }
}

TEST_F(ModelViewTest, InputOrOutputIndexOutOfRange) {
  std::vector<uint8_t> b = bytes_;
  edit_header(b, [](TzmHeader& h) { h.input_tensor = -1; });
  EXPECT_CORRUPT(b, "input/output tensor index out of range");
  b = bytes_;
  edit_header(b, [](TzmHeader& h) { h.output_tensor = int32_t(h.n_tensors); });
  EXPECT_CORRUPT(b, "input/output tensor index out of range");
}

TEST_F(ModelViewTest, InputMustBeANonConstantInt8Input) {
  std::vector<uint8_t> b = bytes_;
  edit_header(b, [&](TzmHeader& h) { h.input_tensor = cnn_.conv0; });  // not flagged input
  EXPECT_CORRUPT(b, "model input");
  b = bytes_;
  edit_header(b, [&](TzmHeader& h) { h.input_tensor = cnn_.conv0_c.weight; });  // a constant
  EXPECT_CORRUPT(b, "model input");
}

TEST_F(ModelViewTest, OutputMustBeFlaggedOutput) {
  edit_header(bytes_, [&](TzmHeader& h) { h.output_tensor = cnn_.fc8; });
  EXPECT_CORRUPT(bytes_, "model output");
}

TEST_F(ModelViewTest, OutputMustBeProduced) {
  // A flagged, non-constant output that no op writes.
  auto b = built_with([](TinyCnn& m) {
    const int orphan = m.builder.add_tensor("orphan", DType::kFloat32, {4});
    m.builder.set_output(orphan);
  });
  EXPECT_CORRUPT(b, "no op produces the model output");
}

// ---- tensor records ----

TEST_F(ModelViewTest, UnknownDtype) {
  for (uint8_t dt : {uint8_t(3), uint8_t(0xFF)}) {
    std::vector<uint8_t> b = bytes_;
    edit_tensor(b, cnn_.dw1, [&](TzmTensor& t) { t.dtype = dt; });
    SCOPED_TRACE(int(dt));
    EXPECT_CORRUPT(b, "unknown tensor dtype");
  }
}

TEST_F(ModelViewTest, TensorNameNotTerminated) {
  edit_tensor(bytes_, cnn_.dw1, [](TzmTensor& t) { std::memset(t.name, 'a', sizeof t.name); });
  EXPECT_CORRUPT(bytes_, "name");
}

TEST_F(ModelViewTest, RankOutOfRange) {
  for (uint8_t rank : {uint8_t(0), uint8_t(5)}) {
    std::vector<uint8_t> b = bytes_;
    edit_tensor(b, cnn_.dw1, [&](TzmTensor& t) { t.rank = rank; });
    EXPECT_CORRUPT(b, "rank");
  }
}

TEST_F(ModelViewTest, DimsZeroOrNegative) {
  for (int32_t d : {0, -1, std::numeric_limits<int32_t>::min()}) {
    std::vector<uint8_t> b = bytes_;
    edit_tensor(b, cnn_.dw1, [&](TzmTensor& t) { t.dims[1] = d; });
    SCOPED_TRACE(d);
    EXPECT_CORRUPT(b, "dims");
  }
}

TEST_F(ModelViewTest, UnusedDimNotOne) {
  edit_tensor(bytes_, cnn_.dw1, [](TzmTensor& t) { t.dims[3] = 2; });  // rank 3
  EXPECT_CORRUPT(bytes_, "dims");
}

TEST_F(ModelViewTest, TensorTooLarge) {
  edit_tensor(bytes_, cnn_.dw1, [](TzmTensor& t) {
    t.rank = 4;
    t.dims[0] = t.dims[1] = t.dims[2] = t.dims[3] = 0x7FFFFFFF;
  });
  EXPECT_CORRUPT(bytes_, "too large");
}

TEST_F(ModelViewTest, ConstantBlobOffsetOutOfRange) {
  const uint32_t data_size = header().data_size;
  for (uint32_t off : {data_size, data_size + 16, 0xFFFFFFF0u}) {
    std::vector<uint8_t> b = bytes_;
    edit_tensor(b, cnn_.conv4_c.weight, [&](TzmTensor& t) { t.data_offset = off; });
    SCOPED_TRACE(off);
    EXPECT_CORRUPT(b, "constant blob outside the data section");
  }
}

TEST_F(ModelViewTest, ConstantBlobSizeOutOfRange) {
  edit_tensor(bytes_, cnn_.conv4_c.weight, [](TzmTensor& t) { t.data_size = 0xFFFFFF00u; });
  EXPECT_CORRUPT(bytes_, "constant blob outside the data section");
}

TEST_F(ModelViewTest, ConstantBlobMisaligned) {
  edit_tensor(bytes_, cnn_.conv4_c.weight, [](TzmTensor& t) { t.data_offset += 4; });
  EXPECT_CORRUPT(bytes_, "misaligned");
}

TEST_F(ModelViewTest, ConstantBlobSizeDoesNotMatchDims) {
  edit_tensor(bytes_, cnn_.conv4_c.weight, [](TzmTensor& t) { t.data_size -= 1; });
  EXPECT_CORRUPT(bytes_, "does not match its dims");
}

TEST_F(ModelViewTest, ConstantCannotBeFlaggedInputOrOutput) {
  edit_tensor(bytes_, cnn_.conv4_c.bias, [](TzmTensor& t) { t.flags |= kTensorOutput; });
  EXPECT_CORRUPT(bytes_, "constant cannot be a model input/output");
}

TEST_F(ModelViewTest, PerChannelScalesOutOfRange) {
  const uint32_t data_size = header().data_size;
  for (uint32_t off : {data_size, data_size - 4, 0xFFFFFFFCu}) {
    std::vector<uint8_t> b = bytes_;
    edit_tensor(b, cnn_.conv4_c.weight, [&](TzmTensor& t) { t.quant_offset = off; });
    SCOPED_TRACE(off);
    EXPECT_CORRUPT(b, "per-channel scales outside the data section");
  }
  std::vector<uint8_t> b = bytes_;
  edit_tensor(b, cnn_.conv4_c.weight, [](TzmTensor& t) { t.quant_count = 0x40000000u; });
  EXPECT_CORRUPT(b, "per-channel scales outside the data section");
  b = bytes_;
  edit_tensor(b, cnn_.conv4_c.weight, [](TzmTensor& t) { t.quant_offset += 2; });  // misaligned
  EXPECT_CORRUPT(b, "per-channel scales outside the data section");
}

TEST_F(ModelViewTest, PerChannelScaleCountNotDims0) {
  edit_tensor(bytes_, cnn_.conv4_c.weight, [](TzmTensor& t) { t.quant_count -= 1; });
  EXPECT_CORRUPT(bytes_, "per-channel scale count");
}

TEST_F(ModelViewTest, PerChannelScaleNotPositive) {
  for (float s : {0.f, -0.5f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> scales(8, 0.01f);
    scales[5] = s;
    auto b = built_with([&](TinyCnn& m) {
      // Rebuild conv4's weight with one bad scale (same dims and bytes).
      const auto& w = m.builder.tensor_bytes(m.conv4_c.weight);
      const int bad = m.builder.add_constant("bad.w", DType::kInt8, {8, 3, 3, 4}, w.data(), w.size(), 0, scales);
      m.builder.op(kConv4).inputs[1] = bad;
    });
    SCOPED_TRACE(s);
    EXPECT_CORRUPT(b, "per-channel scale not positive");
  }
}

TEST_F(ModelViewTest, ActivationScaleNotPositiveOrNotFinite) {
  for (float s : {0.f, -0.05f, -0.f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::denorm_min() * -1.f}) {
    std::vector<uint8_t> b = bytes_;
    edit_tensor(b, cnn_.pw2, [&](TzmTensor& t) { t.scale = s; });
    SCOPED_TRACE(s);
    EXPECT_CORRUPT(b, "scale not positive and finite");
  }
}

// Found by tz_fuzz_model (fuzz/): NaN float-head weights passed validation,
// and the kernels then disagreed on the NaN payload of the logits.
TEST_F(ModelViewTest, FloatConstantNotFinite) {
  const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity()};
  for (float v : bad_values) {
    for (int which = 0; which < 3; ++which) {
      auto b = built_with([&](TinyCnn& m) {
        if (which == 0) {  // a float-head weight
          std::vector<float> w(4 * 6, 0.25f);
          w[7] = v;
          m.builder.op(kHead9).inputs[1] = m.builder.add_constant_f32("bad.w", {4, 6}, w);
        } else if (which == 1) {  // a float-head bias
          std::vector<float> bias(4, 0.f);
          bias[3] = v;
          m.builder.op(kHead9).inputs[2] = m.builder.add_constant_f32("bad.b", {4}, bias);
        } else {  // a conv multiplier
          std::vector<float> mult(8, 0.01f);
          mult[2] = v;
          m.builder.op(kConv4).inputs[3] = m.builder.add_constant_f32("bad.m", {8}, mult);
        }
      });
      SCOPED_TRACE(std::to_string(v) + " in constant " + std::to_string(which));
      EXPECT_CORRUPT(b, "float32 constant not finite");
    }
  }
  // The largest finite values are fine.
  auto ok = built_with([&](TinyCnn& m) {
    std::vector<float> w(4 * 6, std::numeric_limits<float>::max());
    w[0] = -std::numeric_limits<float>::max();
    m.builder.op(kHead9).inputs[1] = m.builder.add_constant_f32("max.w", {4, 6}, w);
  });
  EXPECT_EQ(load(ok).status, Status::kOk) << load(ok).error;
}

TEST_F(ModelViewTest, ZeroPointOutsideInt8) {
  for (int32_t z : {128, -129, 1 << 30}) {
    std::vector<uint8_t> b = bytes_;
    edit_tensor(b, cnn_.input, [&](TzmTensor& t) { t.zero_point = z; });
    SCOPED_TRACE(z);
    EXPECT_CORRUPT(b, "zero point outside int8");
  }
}

// ---- op records ----

TEST_F(ModelViewTest, UnknownOpType) {
  for (uint16_t type : {uint16_t(0), uint16_t(kOpTypeMax + 1), uint16_t(0xFFFF)}) {
    std::vector<uint8_t> b = bytes_;
    edit_op(b, kDw1, [&](TzmOp& op) { op.type = type; });
    SCOPED_TRACE(type);
    EXPECT_CORRUPT(b, "unknown op type");
  }
}

TEST_F(ModelViewTest, OpNameNotTerminated) {
  edit_op(bytes_, kDw1, [](TzmOp& op) { std::memset(op.name, 'x', sizeof op.name); });
  EXPECT_CORRUPT(bytes_, "name");
}

TEST_F(ModelViewTest, WrongInputCount) {
  edit_op(bytes_, kAdd3, [](TzmOp& op) { op.n_inputs = 3; });
  EXPECT_CORRUPT(bytes_, "number of inputs");
}

TEST_F(ModelViewTest, UnusedInputSlotNotMinusOne) {
  edit_op(bytes_, kAdd3, [&](TzmOp& op) { op.inputs[2] = cnn_.input; });
  EXPECT_CORRUPT(bytes_, "unused op input slot");
}

TEST_F(ModelViewTest, WrongOutputCount) {
  edit_op(bytes_, kAdd3, [](TzmOp& op) { op.n_outputs = 2; });
  EXPECT_CORRUPT(bytes_, "exactly one output");
}

TEST_F(ModelViewTest, OpInputIndexOutOfRange) {
  for (int32_t t : {-1, -1000, 28, 1 << 30}) {
    std::vector<uint8_t> b = bytes_;
    edit_op(b, kPw2, [&](TzmOp& op) { op.inputs[0] = t; });
    SCOPED_TRACE(t);
    EXPECT_CORRUPT(b, "op input tensor index out of range");
  }
}

TEST_F(ModelViewTest, OpOutputIndexOutOfRange) {
  for (int32_t t : {-1, 28, 0x7FFFFFFF}) {
    std::vector<uint8_t> b = bytes_;
    edit_op(b, kPw2, [&](TzmOp& op) { op.output = t; });
    SCOPED_TRACE(t);
    EXPECT_CORRUPT(b, "op output tensor index out of range");
  }
}

TEST_F(ModelViewTest, OpReadsTensorProducedLater) {
  // Swap conv0 and dw1: dw1 now runs first and reads conv0's output.
  auto b = built_with([](TinyCnn& m) { std::swap(m.builder.op(kConv0), m.builder.op(kDw1)); });
  EXPECT_CORRUPT(b, "op reads a tensor no earlier op produces");
}

TEST_F(ModelViewTest, OpReadsTensorNobodyProduces) {
  auto b = built_with([](TinyCnn& m) {
    const int orphan = m.builder.add_tensor("orphan", DType::kInt8, {4, 4, 8}, 0, 0.1f, 0);
    m.builder.op(kAdd3).inputs[1] = orphan;
  });
  EXPECT_CORRUPT(b, "op reads a tensor no earlier op produces");
}

TEST_F(ModelViewTest, TensorProducedTwice) {
  // pw2 writes dw1's tensor (same shape) instead of its own.
  auto b = built_with([](TinyCnn& m) { m.builder.op(kPw2).output = m.dw1; });
  EXPECT_CORRUPT(b, "tensor produced by two ops");
}

TEST_F(ModelViewTest, OpWritesAConstantOrTheInput) {
  std::vector<uint8_t> b = bytes_;
  edit_op(b, kConv0, [&](TzmOp& op) { op.output = cnn_.conv0_c.weight; });
  EXPECT_CORRUPT(b, "op writes a constant or the model input");
  b = bytes_;
  edit_op(b, kMax5, [&](TzmOp& op) { op.output = cnn_.input; });
  EXPECT_CORRUPT(b, "op writes a constant or the model input");
}

// ---- shapes that do not chain ----

TEST_F(ModelViewTest, ConvOutputShapeWrong) {
  auto b = built_with([](TinyCnn& m) { m.builder.tensor(m.conv0).dims[0] = 5; });  // (8+2-3)/2+1 = 4
  EXPECT_CORRUPT(b, "conv output shape does not chain");
}

TEST_F(ModelViewTest, ConvWeightShapeWrong) {
  // Same element count (so the blob still matches), wrong kernel layout.
  auto b = built_with([](TinyCnn& m) {
    TzmTensor& w = m.builder.tensor(m.conv0_c.weight);
    w.dims[1] = 1;
    w.dims[2] = 9;
  });
  EXPECT_CORRUPT(b, "conv weight shape does not match the op");
}

TEST_F(ModelViewTest, ConvBiasLengthWrong) {
  auto b = built_with([](TinyCnn& m) {
    const int bias = m.builder.add_constant_s32("short.b", {4}, {1, 2, 3, 4});
    m.builder.op(kConv4).inputs[2] = bias;
  });
  EXPECT_CORRUPT(b, "bias/multiplier length");
}

TEST_F(ModelViewTest, ConvWeightNotPerChannel) {
  auto b = built_with([](TinyCnn& m) {
    const auto& w = m.builder.tensor_bytes(m.conv4_c.weight);
    const int plain = m.builder.add_constant("plain.w", DType::kInt8, {8, 3, 3, 4}, w.data(), w.size());
    m.builder.op(kConv4).inputs[1] = plain;
  });
  EXPECT_CORRUPT(b, "conv weight must be a constant per-channel int8");
}

TEST_F(ModelViewTest, AddShapeMismatch) {
  auto b = built_with([](TinyCnn& m) { m.builder.op(kAdd3).inputs[1] = m.input; });  // [8,8,3] vs [4,4,8]
  EXPECT_CORRUPT(b, "add shapes do not chain");
}

TEST_F(ModelViewTest, LinearFeaturesMismatch) {
  auto b = built_with([](TinyCnn& m) {  // [4,6] -> [6,4]: 4 features for a 6-element input
    TzmTensor& w = m.builder.tensor(m.head_w);
    std::swap(w.dims[0], w.dims[1]);
  });
  EXPECT_CORRUPT(b, "float head shapes do not chain");
}

TEST_F(ModelViewTest, FullyConnectedFeaturesMismatch) {
  auto b = built_with([](TinyCnn& m) { m.builder.tensor(m.fc8).dims[0] = 5; });  // weight says 6 outputs
  EXPECT_CORRUPT(b, "fully-connected shapes do not chain");
}

TEST_F(ModelViewTest, PoolOutputShapeWrong) {
  auto b = built_with([](TinyCnn& m) { m.builder.tensor(m.max5).dims[1] = 3; });
  EXPECT_CORRUPT(b, "pool output shape does not chain");
}

TEST_F(ModelViewTest, GlobalAvgPoolShapeWrong) {
  auto b = built_with([](TinyCnn& m) { m.builder.tensor(m.gap7).dims[0] = 2; });
  EXPECT_CORRUPT(b, "global average pool shapes do not chain");
}

TEST_F(ModelViewTest, PoolMustKeepQuantization) {
  auto b = built_with([](TinyCnn& m) { m.builder.tensor(m.avg6).scale *= 2.f; });
  EXPECT_CORRUPT(b, "pool must keep the input quantization");
}

TEST_F(ModelViewTest, DequantizeSizeMismatch) {
  auto b = built_with([](TinyCnn& m) {
    const int y = m.builder.add_tensor("deq", DType::kFloat32, {5});
    m.builder.add_op("deq", OpType::kDequantize, {m.fc8}, y, {});  // fc8 has 6 elements
  });
  EXPECT_CORRUPT(b, "dequantize");
}

// ---- params ----

TEST_F(ModelViewTest, ConvStrideZero) {
  edit_op(bytes_, kConv0, [](TzmOp& op) { op.params[kConvStrideW] = 0; });
  EXPECT_CORRUPT(bytes_, "conv kernel or stride out of range");
}

TEST_F(ModelViewTest, ConvKernelZero) {
  edit_op(bytes_, kConv0, [](TzmOp& op) { op.params[kConvKh] = 0; });
  EXPECT_CORRUPT(bytes_, "conv kernel or stride out of range");
}

TEST_F(ModelViewTest, ConvGroupsNotDividingChannels) {
  for (int32_t g : {3, 0, -2, 16}) {
    std::vector<uint8_t> b = bytes_;
    edit_op(b, kConv4, [&](TzmOp& op) { op.params[kConvGroups] = g; });
    SCOPED_TRACE(g);
    EXPECT_CORRUPT(b, "conv groups do not divide the channels");
  }
}

TEST_F(ModelViewTest, ConvPaddingNotBelowKernel) {
  for (int k : {kConvPadTop, kConvPadLeft, kConvPadBottom, kConvPadRight}) {
    std::vector<uint8_t> b = bytes_;
    edit_op(b, kConv0, [&](TzmOp& op) { op.params[k] = 3; });  // kernel 3x3
    SCOPED_TRACE(k);
    EXPECT_CORRUPT(b, "conv padding out of range");
  }
  edit_op(bytes_, kConv0, [](TzmOp& op) { op.params[kConvPadTop] = -1; });
  EXPECT_CORRUPT(bytes_, "conv padding out of range");
}

TEST_F(ModelViewTest, ConvActRangeOutsideInt8) {
  const std::pair<int32_t, int32_t> bad[] = {{-129, 127}, {-128, 128}, {10, 9}, {-1000, 1000}};
  for (auto [lo, hi] : bad) {
    std::vector<uint8_t> b = bytes_;
    edit_op(b, kConv0, [&](TzmOp& op) {
      op.params[kConvActMin] = lo;
      op.params[kConvActMax] = hi;
    });
    SCOPED_TRACE(lo);
    EXPECT_CORRUPT(b, "conv activation range outside int8");
  }
}

TEST_F(ModelViewTest, AddActRangeOutsideInt8) {
  edit_op(bytes_, kAdd3, [](TzmOp& op) { op.params[1] = 200; });
  EXPECT_CORRUPT(bytes_, "add activation range outside int8");
}

TEST_F(ModelViewTest, FullyConnectedActRangeOutsideInt8) {
  edit_op(bytes_, kFc8, [](TzmOp& op) { op.params[0] = -300; });
  EXPECT_CORRUPT(bytes_, "fully-connected activation range outside int8");
}

TEST_F(ModelViewTest, PoolActRangeOutsideInt8) {
  edit_op(bytes_, kMax5, [](TzmOp& op) { op.params[kPoolActMax] = 128; });
  EXPECT_CORRUPT(bytes_, "pool activation range outside int8");
}

TEST_F(ModelViewTest, PoolStrideOrKernelZero) {
  std::vector<uint8_t> b = bytes_;
  edit_op(b, kAvg6, [](TzmOp& op) { op.params[kPoolStrideH] = 0; });
  EXPECT_CORRUPT(b, "pool window out of range");
  b = bytes_;
  edit_op(b, kAvg6, [](TzmOp& op) { op.params[kPoolKw] = 0; });
  EXPECT_CORRUPT(b, "pool window out of range");
}

TEST_F(ModelViewTest, PoolPaddingNotBelowKernel) {
  edit_op(bytes_, kMax5, [](TzmOp& op) { op.params[kPoolPadBottom] = 2; });  // kernel 2x2
  EXPECT_CORRUPT(bytes_, "pool window out of range");
}

// ---- semantic gap found while writing these tests ----

// An op's activation input (slot 0, or Add's x2) must be a non-constant
// tensor: the engine reads activations from the arena, where constants have
// no buffer (Engine::tensor_data returns nullptr for them), so a model with a
// constant activation input must be rejected here rather than crash invoke().
TEST_F(ModelViewTest, ConstantActivationInputRejected) {
  auto b = built_with([](TinyCnn& m) {
    std::vector<int8_t> zeros(4 * 4 * 8, 0);
    const int k = m.builder.add_constant_s8("const.x", {4, 4, 8}, zeros);
    m.builder.op(kAdd3).inputs[1] = k;
  });
  const Outcome o = load(b);
  EXPECT_EQ(o.status, Status::kCorruptModel) << "a constant Add operand passes validation; Engine::run_op "
                                                 "then passes tensor_data() == nullptr to the add kernel";
}

TEST_F(ModelViewTest, ConstantConvInputRejected) {
  auto b = built_with([](TinyCnn& m) {
    std::vector<int8_t> x(4 * 4 * 8, 1);
    const int k = m.builder.add_constant_s8("const.x", {4, 4, 8}, x);
    m.builder.op(kDw1).inputs[0] = k;
  });
  EXPECT_EQ(load(b).status, Status::kCorruptModel)
      << "a constant conv input passes validation; Engine::run_op dereferences tensor_data() == nullptr";
}

// ---- fuzz ----

bool has_constant_activation_input(const ModelView& v) {
  for (int i = 0; i < v.n_ops(); ++i) {
    const TzmOp& op = v.op(i);
    if (v.tensor(op.inputs[0]).flags & kTensorConstant) return true;
    if (op.type == uint16_t(OpType::kAdd) && (v.tensor(op.inputs[1]).flags & kTensorConstant)) return true;
  }
  return false;
}

// 2,000 random corruptions of a valid model with a fixed seed: byte flips
// with and without a repaired CRC (the repaired ones reach the deep checks),
// truncations, and header-field stomps. init() must return (no crash, no
// out-of-bounds read under ASan) with either kOk or an error and a message.
TEST_F(ModelViewTest, FuzzNeverCrashes) {
  testing::TestRng rng(20261124);
  AlignedModelBytes engine_memory(std::vector<uint8_t>(1 << 20));
  int ok = 0, rejected = 0, ran = 0;
  std::vector<int> seen_kinds(4, 0);
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<uint8_t> b = bytes_;
    const int kind = static_cast<int>(rng.next() % 4);
    ++seen_kinds[kind];
    switch (kind) {
      case 0: {  // flips anywhere, CRC left stale
        const int n = rng.uniform(1, 8);
        for (int k = 0; k < n; ++k) b[rng.next() % b.size()] ^= uint8_t(1u << rng.uniform(0, 7));
        break;
      }
      case 1: {  // flips in the tables or data, CRC repaired
        const int n = rng.uniform(1, 4);
        for (int k = 0; k < n; ++k) {
          const size_t at = 64 + rng.next() % (b.size() - 64);
          b[at] = rng.uniform(0, 3) == 0 ? uint8_t(rng.next()) : uint8_t(b[at] ^ (1u << rng.uniform(0, 7)));
        }
        update_tzm_crc(b);
        break;
      }
      case 2:  // truncation
        b.resize(rng.next() % b.size());
        break;
      case 3: {  // a random 32-bit header word, CRC repaired when possible
        const size_t word = rng.next() % 16;
        uint32_t v = uint32_t(rng.next());
        if (rng.uniform(0, 1)) v &= 0xFFF;  // small values pass more of the checks
        std::memcpy(b.data() + word * 4, &v, 4);
        TzmHeader h;
        std::memcpy(&h, b.data(), sizeof h);
        if (h.header_size == 64 && h.file_size == b.size()) update_tzm_crc(b);
        break;
      }
    }
    LoadedModel m(b);
    if (m.status == Status::kOk) {
      ++ok;
      EXPECT_STREQ(m.view.error(), "");
      // Walk everything a consumer reads, so a bad "valid" view trips ASan.
      for (int i = 0; i < m.view.n_ops(); ++i) (void)m.view.op_macs(i);
      for (int t = 0; t < m.view.n_tensors(); ++t) (void)m.view.producer(t);
      // A model the reader accepts must also run. Constant activation inputs
      // are skipped: they crash the engine today (see ConstantActivationInputRejected).
      if (!has_constant_activation_input(m.view)) {
        Arena arena(engine_memory.data(), engine_memory.size());
        Engine engine;
        if (engine.init(m.view, arena, ref::table()) == Status::kOk) {
          ++ran;
          EXPECT_EQ(engine.invoke(), Status::kOk);
        }
      }
    } else {
      ++rejected;
      EXPECT_TRUE(m.status == Status::kCorruptModel || m.status == Status::kUnsupported);
      EXPECT_FALSE(m.view.valid());
      EXPECT_GT(std::strlen(m.view.error()), 0u) << "iteration " << iter;
    }
  }
  EXPECT_EQ(ok + rejected, 2000);
  EXPECT_GT(ran, 100);
  EXPECT_GT(rejected, 1000);
  for (int k : seen_kinds) EXPECT_GT(k, 300);
}

// ---- writer ----

TEST(TzmWriterTest, SerializeIsDeterministicAndAligned) {
  const auto a = make_tiny_cnn(5).builder.serialize();
  const auto b = make_tiny_cnn(5).builder.serialize();
  EXPECT_EQ(a, b);
  LoadedModel m(a);
  ASSERT_EQ(m.status, Status::kOk) << m.view.error();
  EXPECT_EQ(m.view.header().data_offset % 16, 0u);
  for (int t = 0; t < m.view.n_tensors(); ++t) {
    const TzmTensor& r = m.view.tensor(t);
    if (r.flags & kTensorConstant) {
      EXPECT_EQ(r.data_offset % 16, 0u) << r.name;
    }
    if (r.flags & kTensorPerChannel) {
      EXPECT_EQ(r.quant_offset % 16, 0u) << r.name;
      EXPECT_EQ(r.quant_count, uint32_t(r.dims[0])) << r.name;
    }
  }
  // CRC equals zlib's over [64, file_size) (crc32_update is zlib-compatible).
  EXPECT_EQ(m.view.header().crc32, crc32_update(0, a.data() + 64, a.size() - 64));
}

TEST(TzmWriterTest, SerializeThrowsOnInvalidModel) {
  TinyCnn m = make_tiny_cnn();
  m.builder.tensor(m.conv0).dims[0] = 5;
  try {
    (void)m.builder.serialize();
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("conv output shape"), std::string::npos) << e.what();
  }
}

TEST(TzmWriterTest, BuilderRejectsBadArguments) {
  TzmBuilder b;
  EXPECT_THROW(b.add_tensor(std::string(32, 'n'), DType::kInt8, {1}), std::exception);  // name too long
  EXPECT_THROW(b.add_tensor("x", DType::kInt8, {}), std::exception);
  EXPECT_THROW(b.add_tensor("x", DType::kInt8, {1, 1, 1, 1, 1}), std::exception);
  EXPECT_THROW(b.add_constant_s8("w", {2, 2}, {1, 2, 3}), std::exception);  // 3 bytes for 4 elements
  EXPECT_THROW(b.add_constant_s8("w", {2, 2}, {1, 2, 3, 4}, {0.1f}), std::exception);  // 1 scale, dims[0] = 2
  EXPECT_THROW(b.set_input(0), std::exception);
  EXPECT_THROW(b.add_global_avg_pool("g", 3), std::exception);
  const int x = b.add_tensor("x", DType::kInt8, {2, 2, 1}, 0, 1.f, 0);
  WindowParams big;
  big.kh = big.kw = 3;
  EXPECT_THROW(b.add_max_pool("p", x, big), std::exception);  // window larger than the input
  EXPECT_NO_THROW(b.add_tensor(std::string(31, 'n'), DType::kInt8, {1}));
}

TEST(TzmWriterTest, WriteAtomicRoundTrips) {
  const std::string path = ::testing::TempDir() + "tzm_writer_test_model.tzm";
  TinyCnn m = make_tiny_cnn(3);
  m.builder.write_atomic(path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::vector<uint8_t> read(1 << 16);
  read.resize(std::fread(read.data(), 1, read.size(), f));
  std::fclose(f);
  std::remove(path.c_str());
  EXPECT_EQ(read, m.builder.serialize());
}

TEST(TzmWriterTest, WriteAtomicLeavesNoFileOnInvalidModel) {
  const std::string path = ::testing::TempDir() + "tzm_writer_test_invalid.tzm";
  std::remove(path.c_str());
  TinyCnn m = make_tiny_cnn();
  m.builder.op(kAdd3).params[1] = 500;
  EXPECT_THROW(m.builder.write_atomic(path), std::exception);
  EXPECT_EQ(std::fopen(path.c_str(), "rb"), nullptr);
}

TEST(TzmWriterTest, RewriteWithConstantsChangesOnlyThoseBlobs) {
  TinyCnn cnn = make_tiny_cnn();
  const auto bytes = cnn.builder.serialize();
  LoadedModel src(bytes);
  ASSERT_EQ(src.status, Status::kOk);
  const TzmTensor& w = src.view.tensor(cnn.conv4_c.weight);
  std::vector<uint8_t> new_w(w.data_size);
  for (size_t i = 0; i < new_w.size(); ++i) new_w[i] = uint8_t(i * 7 + 1);
  std::vector<uint8_t> new_b(4 * 4);
  const float fb[4] = {1.f, -2.f, 0.5f, 3.25f};
  std::memcpy(new_b.data(), fb, sizeof fb);
  const auto out = rewrite_with_constants(src.view, {{cnn.conv4_c.weight, new_w}, {cnn.head_b, new_b}});
  ASSERT_EQ(out.size(), bytes.size());
  LoadedModel dst(out);
  ASSERT_EQ(dst.status, Status::kOk) << dst.view.error();
  EXPECT_EQ(std::memcmp(dst.view.data(cnn.conv4_c.weight), new_w.data(), new_w.size()), 0);
  EXPECT_EQ(std::memcmp(dst.view.data(cnn.head_b), fb, sizeof fb), 0);
  // Every byte outside the two blobs and the CRC is unchanged.
  const size_t data = dst.view.header().data_offset;
  const size_t w_at = data + w.data_offset, b_at = data + src.view.tensor(cnn.head_b).data_offset;
  size_t diffs_outside = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const bool in_w = i >= w_at && i < w_at + new_w.size();
    const bool in_b = i >= b_at && i < b_at + new_b.size();
    const bool in_crc = i >= offsetof(TzmHeader, crc32) && i < offsetof(TzmHeader, crc32) + 4;
    if (!in_w && !in_b && !in_crc && out[i] != bytes[i]) ++diffs_outside;
  }
  EXPECT_EQ(diffs_outside, 0u);
  // Rewriting with the original blobs gives the original file back.
  const auto same = rewrite_with_constants(
      dst.view, {{cnn.conv4_c.weight, cnn.builder.tensor_bytes(cnn.conv4_c.weight)},
                 {cnn.head_b, cnn.builder.tensor_bytes(cnn.head_b)}});
  EXPECT_EQ(same, bytes);
}

TEST(TzmWriterTest, RewriteWithConstantsRejectsBadReplacements) {
  TinyCnn cnn = make_tiny_cnn();
  LoadedModel src(cnn.builder.serialize());
  ASSERT_EQ(src.status, Status::kOk);
  EXPECT_THROW(rewrite_with_constants(src.view, {{cnn.conv0, std::vector<uint8_t>(4 * 4 * 8)}}), std::exception);
  EXPECT_THROW(rewrite_with_constants(src.view, {{cnn.head_b, std::vector<uint8_t>(3)}}), std::exception);
  EXPECT_THROW(rewrite_with_constants(src.view, {{999, std::vector<uint8_t>(4)}}), std::exception);
  ModelView empty;
  EXPECT_THROW(rewrite_with_constants(empty, {}), std::exception);
}

}  // namespace
}  // namespace tinyzo
