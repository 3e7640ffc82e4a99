// TensorFlow Lite reading and mapping on synthetic models (tests/tflite_test_models.h), the .npy /
// .npz reader and writer, and the CLI paths (`tinyzo import x.tflite`, `tinyzo run`). The real
// models and TFLM's goldens are in tflite_golden_test.cc.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "cli_support.h"
#include "models/model_store.h"
#include "models/tflite_import.h"
#include "models/tflite_reader.h"
#include "tflite_test_models.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "util/npy.h"

namespace tinyzo {
namespace {

using namespace tflite_testing;
using cli_testing::TempDir;

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    (void)import_tflite(tflite::parse_tflite(std::vector<uint8_t>(bytes), "m.tflite"), "m.tflite");
  } catch (const CliError& e) {
    return e.what();
  }
  return "";
}

TEST(TfliteReader, ReadsTensorsOperatorsAndOptions) {
  const tflite::TfliteModel m = tflite::parse_tflite(conv_net(), "m");
  ASSERT_EQ(m.ops.size(), 9u);
  EXPECT_EQ(m.schema_version, 3u);
  EXPECT_EQ(m.ops[0].builtin, tflite::kOpConv2d);
  EXPECT_EQ(m.ops[0].options.options_type, tflite::kOptConv2d);
  EXPECT_EQ(m.ops[0].options.stride_h, 2);
  EXPECT_EQ(m.ops[0].options.activation, tflite::TflActivation::kRelu6);
  EXPECT_EQ(m.ops[1].options.depth_multiplier, 2);
  EXPECT_EQ(m.ops[4].options.filter_w, 2);
  EXPECT_EQ(m.ops[4].options.padding, tflite::TflPadding::kSame);
  EXPECT_TRUE(m.ops[5].options.keep_dims);
  EXPECT_EQ(m.ops[8].options.beta, 1.f);
  const tflite::TflTensor& w = m.tensors[size_t(m.ops[0].inputs[1])];
  EXPECT_EQ(w.name, "conv/w");
  EXPECT_EQ(w.shape, (std::vector<int32_t>{4, 3, 3, 2}));
  ASSERT_TRUE(w.is_constant());
  EXPECT_EQ(w.data_size, 72u);
  EXPECT_EQ(int8_t(w.data[1]), ramp(72, 1)[1]);
  EXPECT_EQ(w.scales.size(), 4u);
  EXPECT_FALSE(m.tensors[size_t(m.inputs[0])].is_constant());
  EXPECT_EQ(m.tensors[size_t(m.inputs[0])].zero_points[0], -3);
}

TEST(TfliteReader, EveryTruncationIsOneCleanError) {
  const std::vector<uint8_t> bytes = conv_net();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(n));
    EXPECT_THROW((void)tflite::parse_tflite(std::move(cut), "cut"), CliError) << n;
  }
}

TEST(TfliteReader, DamagedBytesNeverCrash) {
  // Every single-byte change at every position, a few values each: refused with a CliError or
  // read (then mapped or refused); never a crash (ASan / UBSan builds check the reads).
  const std::vector<uint8_t> bytes = layout_net();
  size_t refused = 0, read = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t v : {uint8_t(0x00), uint8_t(0xFF), uint8_t(0x7F), uint8_t(bytes[i] ^ 0x10)}) {
      std::vector<uint8_t> b = bytes;
      b[i] = v;
      try {
        const tflite::TfliteModel m = tflite::parse_tflite(std::move(b), "x");
        ++read;
        try {
          (void)import_tflite(m, "x");
        } catch (const CliError&) {
        }
      } catch (const CliError&) {
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(read, 0u);
}

TEST(TfliteReader, RefusesWhatIsNotTflite) {
  auto msg = [](std::vector<uint8_t> b) {
    try {
      (void)tflite::parse_tflite(std::move(b), "f");
    } catch (const CliError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg({1, 2, 3}).find("not a TensorFlow Lite model"), std::string::npos);
  std::vector<uint8_t> b = conv_net();
  b[5] = 'X';
  EXPECT_NE(msg(b).find("no \"TFL3\" identifier"), std::string::npos);
  TflBuilder old;
  const int x = old.int8_act("x", {1, 4}, 1.f, 0);
  EXPECT_NE(msg(old.finish({x}, {x}, 2)).find("schema version 2, expected 3"), std::string::npos);
  TflBuilder neg;
  const int t = neg.tensor("dyn", tfl::TensorType_INT8, {1, -1}, {1.f}, {0});
  EXPECT_NE(msg(neg.finish({t}, {t})).find("dynamic shapes"), std::string::npos);
  TflBuilder bad;
  const int y = bad.tensor("c", tfl::TensorType_INT8, {4}, {}, {}, 0, {1, 2, 3});
  EXPECT_NE(msg(bad.finish({y}, {y})).find("constant data of 3 bytes, its shape and type need 4"), std::string::npos);
}

TEST(TfliteImport, MapsEveryOperatorWithTfliteParameters) {
  const TfliteImport imp = import_tflite(tflite::parse_tflite(conv_net(), "m"), "m");
  const LoadedModel lm = LoadedModel::from_bytes(imp.tzm.data(), imp.tzm.size(), "m");
  const ModelView& v = lm.view();
  ASSERT_EQ(v.n_ops(), 9);
  const OpType want[] = {OpType::kConv2d,  OpType::kConv2d,  OpType::kAddTfl,         OpType::kMaxPool2d, OpType::kAvgPool2dTfl,
                         OpType::kMeanTfl, OpType::kReshape, OpType::kFullyConnected, OpType::kSoftmaxTfl};
  for (int k = 0; k < 9; ++k) EXPECT_EQ(v.op(k).type, uint16_t(want[k])) << k;
  // SAME, 3x3, stride 2 on 6 x 5: out 3 x 3, pads as TFLite: total 1 (rows: 0 before, 1 after),
  // total 2 (columns: 1 and 1).
  const int32_t* p = v.op(0).params;
  EXPECT_EQ(p[kConvPadTop], 0);
  EXPECT_EQ(p[kConvPadBottom], 1);
  EXPECT_EQ(p[kConvPadLeft], 1);
  EXPECT_EQ(p[kConvPadRight], 1);
  EXPECT_EQ(p[kConvGroups], 1);
  EXPECT_EQ(p[11], 1);  // fixed-point requantization (contract 1)
  // RELU6 on (0.04, -128): [-128, min(127, -128 + round(6 / 0.04))] = [-128, 22].
  EXPECT_EQ(p[kConvActMin], -128);
  EXPECT_EQ(p[kConvActMax], 22);
  // Depthwise with multiplier 2: a grouped conv with 4 groups of 2 outputs, weight
  // [8, 3, 3, 1] taken from TFLite's [1, 3, 3, 8] (output channel innermost there).
  const TzmOp& dw = v.op(1);
  EXPECT_EQ(dw.params[kConvGroups], 4);
  const TzmTensor& w = v.tensor(dw.inputs[1]);
  EXPECT_EQ(w.dims[0], 8);
  EXPECT_EQ(w.dims[3], 1);
  const int8_t* wd = static_cast<const int8_t*>(v.data(dw.inputs[1]));
  const std::vector<int8_t> src = ramp(72, 2);
  for (int o = 0; o < 8; ++o)
    for (int yx = 0; yx < 9; ++yx) ASSERT_EQ(wd[o * 9 + yx], src[size_t(yx * 8 + o)]) << o << " " << yx;
  // The requant tensor: int32 [2, C_out], multipliers in [2^30, 2^31), shifts in [-31, 30].
  const TzmTensor& rq = v.tensor(dw.inputs[3]);
  EXPECT_EQ(rq.dtype, uint8_t(DType::kInt32));
  ASSERT_EQ(rq.dims[0], 2);
  ASSERT_EQ(rq.dims[1], 8);
  const int32_t* r = static_cast<const int32_t*>(v.data(dw.inputs[3]));
  for (int o = 0; o < 8; ++o) {
    EXPECT_GE(r[o], 1 << 30);
    EXPECT_LE(r[8 + o], 30);
    EXPECT_GE(r[8 + o], -31);
  }
  // Activations keep their TFLite tensor index in their names and drop the batch axis.
  const TzmTensor& in = v.tensor(v.input_tensor());
  EXPECT_STREQ(in.name, "t0");
  EXPECT_EQ(in.rank, 3);
  EXPECT_EQ(in.dims[0], 6);
  EXPECT_EQ(in.zero_point, -3);
  EXPECT_EQ(v.tensor(v.output_tensor()).rank, 1);
  EXPECT_EQ(v.tensor(v.output_tensor()).dims[0], 3);
  EXPECT_EQ(imp.op_counts.at("CONV_2D"), 1);
  EXPECT_EQ(imp.op_counts.at("DEPTHWISE_CONV_2D"), 1);
}

TEST(TfliteImport, LayoutOperatorsDropTheBatchAxis) {
  const TfliteImport imp = import_tflite(tflite::parse_tflite(layout_net(), "m"), "m");
  const LoadedModel lm = LoadedModel::from_bytes(imp.tzm.data(), imp.tzm.size(), "m");
  const ModelView& v = lm.view();
  ASSERT_EQ(v.n_ops(), 4);
  EXPECT_EQ(v.op(0).type, uint16_t(OpType::kTranspose));
  EXPECT_EQ(v.op(0).params[0], 1);  // [0, 2, 3, 1] without the batch axis: [1, 2, 0]
  EXPECT_EQ(v.op(0).params[1], 2);
  EXPECT_EQ(v.op(0).params[2], 0);
  EXPECT_EQ(v.op(1).type, uint16_t(OpType::kPad));
  EXPECT_EQ(v.op(1).params[kPadBefore + 0], 1);
  EXPECT_EQ(v.op(1).params[kPadAfter + 0], 1);
  EXPECT_EQ(v.op(1).params[kPadBefore + 1], 0);
  EXPECT_EQ(v.op(1).params[kPadAfter + 1], 1);
  EXPECT_EQ(v.op(1).params[kPadValue], 3);  // the zero point
  EXPECT_EQ(v.op(2).type, uint16_t(OpType::kQuantize));
  EXPECT_EQ(v.op(3).type, uint16_t(OpType::kDequantize));
  EXPECT_EQ(v.tensor(v.output_tensor()).dtype, uint8_t(DType::kFloat32));
}

TEST(TfliteImport, RefusalsNameTheOperatorAndTheReason) {
  ConvNetOptions o;
  o.dilation = 2;
  EXPECT_NE(error_of(conv_net(o)).find("m.tflite: operator 0 (CONV_2D): dilation 2x2 is not supported"), std::string::npos)
      << error_of(conv_net(o));
  o = {};
  o.batch = 2;
  EXPECT_NE(error_of(conv_net(o)).find("batch 2"), std::string::npos) << error_of(conv_net(o));
  o = {};
  o.conv_act = tfl::ActivationFunctionType_TANH;
  EXPECT_NE(error_of(conv_net(o)).find("operator 0 (CONV_2D): fused activation 4"), std::string::npos);

  TflBuilder tanh;
  const int x = tanh.int8_act("x", {1, 4}, 0.1f, 0);
  const int y = tanh.int8_act("y", {1, 4}, 1.f / 128, 0);
  tanh.op(28, {x}, {y});
  EXPECT_NE(error_of(tanh.finish({x}, {y})).find("operator 0 (TANH): operator not supported by tinyzo"), std::string::npos);

  TflBuilder custom;
  const int cx = custom.int8_act("x", {1, 4}, 0.1f, 0);
  const int cy = custom.int8_act("y", {1, 4}, 0.1f, 0);
  custom.op(32, {cx}, {cy}, tfl::BuiltinOptions_NONE, 0, "MyOp");
  EXPECT_NE(error_of(custom.finish({cx}, {cy})).find("operator 0 (CUSTOM): custom operator 'MyOp'"), std::string::npos);

  TflBuilder i16;
  const int qx = i16.tensor("x", tfl::TensorType_INT16, {1, 4}, {0.1f}, {0});
  const int qy = i16.int8_act("y", {1, 4}, 0.1f, 0);
  i16.op(114, {qx}, {qy}, tfl::BuiltinOptions_QuantizeOptions, tfl::CreateQuantizeOptions(i16.fbb()).Union());
  EXPECT_NE(error_of(i16.finish({qx}, {qy})).find("model input tensor 0 'x' is INT16"), std::string::npos)
      << error_of(i16.finish({qx}, {qy}));

  TflBuilder bc;
  const int a = bc.int8_act("a", {1, 2, 2, 3}, 0.1f, 0);
  const int c = bc.int8_const("c", {1, 1, 1, 3}, {1, 2, 3}, {0.1f});
  const int s = bc.int8_act("s", {1, 2, 2, 3}, 0.1f, 0);
  bc.op(0, {a, c}, {s}, tfl::BuiltinOptions_AddOptions, tfl::CreateAddOptions(bc.fbb()).Union());
  EXPECT_NE(error_of(bc.finish({a}, {s})).find("operator 0 (ADD): second input tensor 1 'c' is a constant"),
            std::string::npos);
}

// Found by tz_fuzz_tflite: a depth multiplier whose product with C_in overflows int32 (UBSan;
// 1073741825 * 4 wraps to 4 = C_out and was accepted). Also: an int64 permutation entry that
// would narrow into a valid axis.
TEST(TfliteImport, HugeOptionValuesAreRefusedNotWrapped) {
  TflBuilder b;
  const int x = b.int8_act("x", {1, 2, 2, 4}, 0.1f, 0);
  const int w = b.int8_const("w", {1, 1, 1, 4}, {1, 2, 3, 4}, {0.1f});
  const int y = b.int8_act("y", {1, 2, 2, 4}, 0.1f, 0);
  b.op(4, {x, w}, {y}, tfl::BuiltinOptions_DepthwiseConv2DOptions,
       tfl::CreateDepthwiseConv2DOptions(b.fbb(), tfl::Padding_VALID, 1, 1, 1073741825).Union());
  EXPECT_NE(error_of(b.finish({x}, {y})).find("operator 0 (DEPTHWISE_CONV_2D): depth multiplier 1073741825 does not match"),
            std::string::npos);

  TflBuilder t;
  const int tx = t.int8_act("x", {1, 2, 3, 4}, 0.1f, 0);
  std::vector<uint8_t> perm(32, 0);
  const int64_t entries[4] = {0, (int64_t(1) << 32) + 2, (int64_t(1) << 32) + 3, (int64_t(1) << 32) + 1};
  std::memcpy(perm.data(), entries, 32);
  const int tp = t.tensor("perm", tfl::TensorType_INT64, {4}, {}, {}, 0, perm);
  const int ty = t.int8_act("y", {1, 3, 4, 2}, 0.1f, 0);
  t.op(39, {tx, tp}, {ty}, tfl::BuiltinOptions_TransposeOptions, tfl::CreateTransposeOptions(t.fbb()).Union());
  EXPECT_NE(error_of(t.finish({tx}, {ty})).find("operator 0 (TRANSPOSE): permutation entry 4294967298 out of range"),
            std::string::npos) << error_of(t.finish({tx}, {ty}));
}

TEST(Npy, RoundTripsAndRefusesMalformedFiles) {
  NpyArray a;
  a.type = NpyType::kInt32;
  a.shape = {2, 3};
  for (int32_t v : {1, -2, 3, 400000, -5, 6}) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    a.data.insert(a.data.end(), p, p + 4);
  }
  const std::vector<uint8_t> bytes = serialize_npy(a);
  EXPECT_EQ(bytes.size() % 64, 24u % 64);  // 64-byte header, then 24 data bytes
  const NpyArray b = parse_npy(bytes.data(), bytes.size(), "a");
  EXPECT_EQ(b.type, a.type);
  EXPECT_EQ(b.shape, a.shape);
  EXPECT_EQ(b.data, a.data);
  for (size_t n = 0; n + 1 < bytes.size(); ++n) EXPECT_THROW(parse_npy(bytes.data(), n, "cut"), CliError) << n;
  auto with_header = [](const std::string& h, size_t data_bytes) {
    std::vector<uint8_t> f = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, uint8_t(h.size()), uint8_t(h.size() >> 8)};
    f.insert(f.end(), h.begin(), h.end());
    f.resize(f.size() + data_bytes);
    return f;
  };
  auto err = [](const std::vector<uint8_t>& f) {
    try {
      (void)parse_npy(f.data(), f.size(), "f");
    } catch (const CliError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(err(with_header("{'descr': '|i1', 'fortran_order': False, 'shape': (2, 2), }\n", 4)), "");
  EXPECT_NE(err(with_header("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }\n", 8)).find("big-endian"), std::string::npos);
  EXPECT_NE(err(with_header("{'descr': '<i2', 'fortran_order': True, 'shape': (2,), }\n", 4)).find("Fortran"), std::string::npos);
  EXPECT_NE(err(with_header("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n", 8)).find("not supported"), std::string::npos);
  EXPECT_NE(err(with_header("{'descr': '|i1', 'fortran_order': False, 'shape': (99999999999, 99999999999), }\n", 0)).find("more than"), std::string::npos);
  EXPECT_NE(err(with_header("{'descr': '|i1', 'shape': (1,), }\n", 1)).find("malformed"), std::string::npos);
  EXPECT_NE(err(with_header("{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }\n", 2)).find("needs 3 data bytes"), std::string::npos);
  // A scalar: shape ().
  EXPECT_EQ(err(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", 4)), "");
}

TEST(Npy, NpzRoundTripAndDamage) {
  TempDir dir;
  NpzArchive z;
  for (int k = 0; k < 3; ++k) {
    NpyArray a;
    a.type = NpyType::kInt8;
    a.shape = {1, k + 1};
    a.data.assign(size_t(k + 1), uint8_t(k * 7));
    z.names.push_back("op00" + std::to_string(k) + "_t" + std::to_string(10 + k));
    z.arrays.emplace(z.names.back(), a);
  }
  const std::string path = dir.file("x.npz");
  write_npz_file(path, z);
  const NpzArchive r = read_npz_file(path);
  EXPECT_EQ(r.names, z.names);
  for (const std::string& n : z.names) EXPECT_EQ(r.arrays.at(n).data, z.arrays.at(n).data);
  const std::vector<uint8_t> bytes = read_file_bytes(path, 1 << 20);
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_THROW(parse_npz(bytes.data(), n, "cut"), CliError) << n;
  std::vector<uint8_t> flipped = bytes;
  flipped[40 + 64] ^= 1;  // inside the first member's data: the CRC catches it
  EXPECT_THROW(parse_npz(flipped.data(), flipped.size(), "flip"), CliError);
}

TEST(TfliteCli, ImportRunAndRefuse) {
  TempDir dir;
  cli_testing::write_bytes(dir.file("net.tflite"), conv_net());
  cli_testing::RunResult r = cli_testing::run_tinyzo("import net.tflite -o net.tzm", dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("9 ops"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DEPTHWISE_CONV_2D 1"), std::string::npos) << r.out;
  // Two items with a batch axis, then one without.
  NpyArray x;
  x.type = NpyType::kInt8;
  x.shape = {2, 6, 5, 2};
  x.data.resize(120);
  for (size_t i = 0; i < x.data.size(); ++i) x.data[i] = uint8_t(i * 13);
  write_npy_file(dir.file("x.npy"), x);
  r = cli_testing::run_tinyzo("run --model net.tflite --input x.npy --output y.npy --intermediates inter.npz --cache-dir cache",
                              dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const NpyArray y = read_npy_file(dir.file("y.npy"));
  EXPECT_EQ(y.shape, (std::vector<int64_t>{2, 3}));
  const NpzArchive inter = read_npz_file(dir.file("inter.npz"));
  ASSERT_EQ(inter.names.size(), 9u);
  EXPECT_EQ(inter.names[8].rfind("op008_t", 0), 0u) << inter.names[8];
  EXPECT_EQ(inter.arrays.at(inter.names[8]).data, y.data);  // the last op's output is the model output
  // The same through the .tzm and one item at a time: the same bytes.
  NpyArray x1 = x;
  x1.shape = {6, 5, 2};
  x1.data.resize(60);
  write_npy_file(dir.file("x1.npy"), x1);
  r = cli_testing::run_tinyzo("run --model net.tzm --input x1.npy --output y1.npy --kernels ref", dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const NpyArray y1 = read_npy_file(dir.file("y1.npy"));
  EXPECT_EQ(y1.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(y1.data, std::vector<uint8_t>(y.data.begin(), y.data.begin() + 3));

  x1.shape = {5, 6, 2};
  write_npy_file(dir.file("bad.npy"), x1);
  cli_testing::expect_one_error_line(cli_testing::run_tinyzo("run -m net.tzm -i bad.npy -o z.npy", dir.path()), 1,
                                     "bad.npy: shape (5, 6, 2), the model input is (6, 5, 2)");
  ConvNetOptions o;
  o.dilation = 3;
  cli_testing::write_bytes(dir.file("dil.tflite"), conv_net(o));
  cli_testing::expect_one_error_line(cli_testing::run_tinyzo("import dil.tflite -o dil.tzm", dir.path()), 1,
                                     "dil.tflite: operator 0 (CONV_2D): dilation 3x3 is not supported");
  EXPECT_FALSE(is_regular_file(dir.file("dil.tzm")));
  const std::vector<uint8_t> whole = conv_net();
  cli_testing::write_bytes(dir.file("cut.tflite"), std::vector<uint8_t>(whole.begin(), whole.begin() + 300));
  cli_testing::expect_one_error_line(cli_testing::run_tinyzo("info --model cut.tflite --cache-dir cache", dir.path()), 1,
                                     "cut.tflite: corrupt TensorFlow Lite model");
}

}  // namespace
}  // namespace tinyzo
