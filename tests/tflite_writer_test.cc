// New .tflite files from .tzm models (host/models/tflite_writer.h, `tinyzo export MODEL --tflite
// OUT` without --from) and `tinyzo convert --tflite` (host/models/requant_convert.h): the round
// trip import(export(m)) runs bit-exactly like m, every op output compared, on the synthetic
// TFLite nets and on MCUNet-CIFAR-10 converted for TFLite (the reference model from the shared
// data directory; the test fails when it is missing, like tflite_golden_test.cc); the exported
// file re-imports with MCUNet's layer names; `export --from` works on the re-imported model;
// refusals are one line and write nothing.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli_support.h"
#include "models/model_store.h"
#include "models/requant_convert.h"
#include "models/tflite_export.h"
#include "models/tflite_import.h"
#include "models/tflite_reader.h"
#include "models/tflite_writer.h"
#include "models/tzm_writer.h"
#include "test_models.h"
#include "tflite_test_models.h"
#include "tinyzo/kernels/kernels.h"
#include "train/train_config.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {
namespace {

using cli_testing::TempDir;

std::string name_of(const char* n) { return std::string(n, strnlen(n, kTzmNameLen)); }

std::vector<uint8_t> import_bytes(const std::vector<uint8_t>& tflite, const std::string& what) {
  return import_tflite(tflite::parse_tflite(std::vector<uint8_t>(tflite), what), what).tzm;
}

std::vector<uint8_t> export_bytes(const std::vector<uint8_t>& tzm) {
  const LoadedModel m = LoadedModel::from_bytes(tzm.data(), tzm.size(), "model.tzm");
  return write_tflite(m.view(), "model.tzm").bytes;
}

// Every op's output bytes of one run (engine observer).
struct Outputs {
  std::vector<std::vector<uint8_t>> per_op;
  static void observe(void* ctx, int op, const void* out, size_t size) {
    auto* o = static_cast<Outputs*>(ctx);
    const auto* p = static_cast<const uint8_t*>(out);
    o->per_op[size_t(op)].assign(p, p + size);
  }
};

Outputs run_all(const ModelView& v, const std::vector<int8_t>& x, const KernelTable& kernels) {
  EngineInstance inst(v, kernels, 1);
  Outputs o;
  o.per_op.resize(size_t(v.n_ops()));
  inst.engine().set_observer(&Outputs::observe, &o);
  Span<int8_t> in = inst.engine().input();
  EXPECT_EQ(in.size(), x.size());
  std::memcpy(in.data(), x.data(), x.size());
  inst.invoke();
  return o;
}

std::vector<int8_t> random_input(size_t n, uint32_t seed) {
  std::vector<int8_t> x(n);
  uint32_t s = seed * 2654435761u + 1;
  for (int8_t& v : x) {
    s = s * 1664525u + 1013904223u;
    v = int8_t(s >> 24);
  }
  return x;
}

// import(export(m)) against m on `n_inputs` random inputs, with the ref and the best kernels: the
// model output, and the output of every op of m that has a counterpart with the same name in the
// re-import (all ops when the export added no PAD), byte for byte. Returns the number of op
// outputs compared per input.
int expect_round_trip_exact(const std::vector<uint8_t>& tzm, int n_inputs, const std::string& label) {
  const std::vector<uint8_t> tfl = export_bytes(tzm);
  const std::vector<uint8_t> back = import_bytes(tfl, label + ".tflite");
  const LoadedModel a = LoadedModel::from_bytes(tzm.data(), tzm.size(), label);
  const LoadedModel b = LoadedModel::from_bytes(back.data(), back.size(), label + " re-imported");
  const ModelView& va = a.view();
  const ModelView& vb = b.view();
  std::map<std::string, int> by_name;
  for (int k = 0; k < vb.n_ops(); ++k) by_name[name_of(vb.op(k).name)] = k;
  std::vector<std::pair<int, int>> pairs;  // (op in a, op in b)
  // Without inserted PADs op k is TFLite operator k is op k of the re-import.
  if (va.n_ops() == vb.n_ops())
    for (int k = 0; k < va.n_ops(); ++k) pairs.emplace_back(k, k);
  for (int k = 0; k < va.n_ops() && va.n_ops() != vb.n_ops(); ++k) {
    const std::string n = name_of(va.op(k).name);
    // An op's name survives when it equals its output tensor's (tinyzo's own models name them so).
    if (n != name_of(va.tensor(va.op(k).output).name)) continue;
    const auto it = by_name.find(n);
    EXPECT_NE(it, by_name.end()) << label << ": op '" << n << "' has no counterpart in the re-import";
    if (it != by_name.end()) pairs.emplace_back(k, it->second);
  }
  const size_t in_size = tensor_elements(va.tensor(va.input_tensor()));
  for (const KernelTable* kt : {&kernels_by_name("ref"), &kernels_by_name("best")}) {
    for (int i = 0; i < n_inputs; ++i) {
      const std::vector<int8_t> x = random_input(in_size, uint32_t(i + 1));
      const Outputs oa = run_all(va, x, *kt);
      const Outputs ob = run_all(vb, x, *kt);
      EXPECT_EQ(oa.per_op.back(), ob.per_op.back()) << label << ": model output differs, input " << i << ", " << kt->name;
      for (const auto& [ka, kb] : pairs)
        EXPECT_EQ(oa.per_op[size_t(ka)], ob.per_op[size_t(kb)])
            << label << ": op '" << name_of(va.op(ka).name) << "' differs, input " << i << ", " << kt->name;
    }
  }
  return int(pairs.size());
}

TEST(TfliteWriter, SyntheticNetsRoundTripBitExact) {
  // conv_net: CONV_2D (RELU6), DEPTHWISE (multiplier 2), ADD, MAX_POOL, AVERAGE_POOL, MEAN,
  // RESHAPE, FULLY_CONNECTED, SOFTMAX; layout_net: TRANSPOSE, PAD, QUANTIZE, DEQUANTIZE.
  struct Case {
    const char* label;
    std::vector<uint8_t> tflite;
  };
  tflite_testing::ConvNetOptions valid;
  valid.conv_padding = tfl::Padding_VALID;
  valid.conv_stride = 1;
  valid.depth_multiplier = 1;
  valid.conv_act = tfl::ActivationFunctionType_RELU;
  const Case cases[] = {{"conv_net", tflite_testing::conv_net()},
                        {"conv_net_valid", tflite_testing::conv_net(valid)},
                        {"layout_net", tflite_testing::layout_net()}};
  for (const Case& c : cases) {
    const std::vector<uint8_t> m = import_bytes(c.tflite, std::string(c.label) + ".tflite");
    const std::vector<uint8_t> tfl = export_bytes(m);
    const std::vector<uint8_t> back = import_bytes(tfl, "back.tflite");
    // The importer is the inverse: same graph, same constants, same params (names are the
    // exported ones, i.e. the original import's "t<k>" ones come back as op names only).
    const LoadedModel a = LoadedModel::from_bytes(m.data(), m.size(), "a");
    const LoadedModel b = LoadedModel::from_bytes(back.data(), back.size(), "b");
    ASSERT_EQ(a.view().n_ops(), b.view().n_ops()) << c.label;
    for (int k = 0; k < a.view().n_ops(); ++k) {
      const TzmOp& oa = a.view().op(k);
      const TzmOp& ob = b.view().op(k);
      EXPECT_EQ(oa.type, ob.type) << c.label << " op " << k;
      EXPECT_EQ(std::memcmp(oa.params, ob.params, sizeof oa.params), 0) << c.label << " op " << k;
      for (int s = 0; s < oa.n_inputs; ++s) {
        const TzmTensor& ta = a.view().tensor(oa.inputs[s]);
        if (!(ta.flags & kTensorConstant)) continue;
        ASSERT_LT(s, ob.n_inputs);
        const TzmTensor& tb = b.view().tensor(ob.inputs[s]);
        ASSERT_EQ(ta.data_size, tb.data_size) << c.label << " op " << k << " input " << s;
        EXPECT_EQ(std::memcmp(a.view().data(oa.inputs[s]), b.view().data(ob.inputs[s]), ta.data_size), 0)
            << c.label << " op " << k << " input " << s;
      }
    }
    EXPECT_EQ(expect_round_trip_exact(m, 12, c.label), a.view().n_ops()) << c.label;
  }
}

// MCUNet-CIFAR-10 (the paper's model) through convert --tflite: every op TFLite-expressible, the
// export loads back with MCUNet's names, all 42 convs + FC and every other op run bit-exactly.
TEST(TfliteWriter, ConvertedMcunetRoundTripBitExact) {
  std::unique_ptr<LoadedModel> held;
  try {
    held = std::make_unique<LoadedModel>(load_model_arg("mcunet-cifar10"));
  } catch (const CliError& e) {
    FAIL() << "mcunet-cifar10 is needed (the shared data directory): " << e.what();
  }
  const LoadedModel& paper = *held;
  // The paper's model itself is refused, naming op 0 and what to do.
  try {
    write_tflite(paper.view(), "m.tzm");
    ADD_FAILURE() << "the float-scale model exported";
  } catch (const CliError& e) {
    EXPECT_NE(std::string(e.what()).find("m.tzm: op 0 '0' (Conv2d): uses the paper's float-scale requantization"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("tinyzo convert MODEL --tflite"), std::string::npos) << e.what();
  }
  // --requant fixed alone keeps the paper's multipliers (from f32(s_x s_w)), the add, pool and
  // float head: refused too.
  const RequantConversion fx = convert_to_fixed_point(paper.view());
  {
    const LoadedModel m = LoadedModel::from_bytes(fx.bytes.data(), fx.bytes.size(), "fx.tzm");
    try {
      write_tflite(m.view(), "fx.tzm");
      ADD_FAILURE() << "the --requant fixed model exported";
    } catch (const CliError& e) {
      EXPECT_NE(std::string(e.what()).find("fx.tzm: op "), std::string::npos) << e.what();
    }
  }
  ConvertOptions opts;
  opts.tflite = true;
  opts.clamp_bias = true;
  const RequantConversion c = convert_to_fixed_point(paper.view(), opts);
  EXPECT_EQ(c.converted_ops, 42);
  EXPECT_EQ(c.remapped_ops, 9);  // 7 adds, the pool, the head
  const LoadedModel conv = LoadedModel::from_bytes(c.bytes.data(), c.bytes.size(), "mcunet-tfl.tzm");
  int n_conv = 0;
  for (int k = 0; k < conv.view().n_ops(); ++k) {
    const OpType t = OpType(conv.view().op(k).type);
    EXPECT_TRUE(t == OpType::kConv2d || t == OpType::kAddTfl || t == OpType::kMeanTfl || t == OpType::kFullyConnected ||
                t == OpType::kDequantize)
        << "op " << k;
    n_conv += t == OpType::kConv2d;
  }
  EXPECT_EQ(n_conv, 42);
  const TfliteWrite w = write_tflite(conv.view(), "mcunet-tfl.tzm");
  EXPECT_EQ(w.n_pads, 5);  // the stride-2 convs pad k/2 on both sides, which SAME does not
  EXPECT_EQ(w.n_operators, conv.view().n_ops() + 5);
  const std::vector<uint8_t> back = import_bytes(w.bytes, "mcunet.tflite");
  const LoadedModel b = LoadedModel::from_bytes(back.data(), back.size(), "mcunet re-imported");
  // The paper's layer set resolves on the re-import (tinyzo train --layers paper).
  const std::vector<int> layers = paper_layer_ops(b.view(), "--layers");
  ASSERT_EQ(layers.size(), 4u);
  EXPECT_EQ(name_of(b.view().op(layers[0]).name), "1.4.conv.0");
  // Every op of the converted model has its counterpart: 42 + 7 + 1 + 1 + 1 - the FC/dequantize
  // pair counts twice (dequantize writes "logits", named "dequantize" in the .tzm: skipped).
  const int compared = expect_round_trip_exact(c.bytes, 6, "mcunet-tfl");
  EXPECT_EQ(compared, conv.view().n_ops() - 1);

  // export --from on the re-imported model (after "training": unchanged values) is the file itself.
  const tflite::TfliteModel orig = tflite::parse_tflite(std::vector<uint8_t>(w.bytes), "mcunet.tflite");
  const TfliteExport e = export_tflite(b.view(), "re.tzm", orig, "mcunet.tflite");
  EXPECT_EQ(e.bytes, w.bytes);
  EXPECT_EQ(e.n_tensors_changed, 0);
}

std::string tflite_dir() {
  const char* env = std::getenv("TINYZO_DATA");
  const std::string data = env != nullptr && *env != '\0' ? std::string(env) : std::string(TINYZO_SOURCE_DIR) + "/../shared/data";
  return data + "/models/tflite";
}

// The TFLM example models (read from the data directory at run time; missing = failure):
// imported, exported as new files, imported again: op for op, every output bit-exact.
TEST(TfliteWriter, RealModelsRoundTripBitExact) {
  for (const char* name : {"person_detect", "micro_speech_quantized", "hello_world_int8",
                           "mobilenet_v2_quantized_1x3x224x224"}) {
    const std::string path = tflite_dir() + "/" + name + ".tflite";
    ASSERT_TRUE(is_regular_file(path)) << path << " is missing (the shared data directory; set TINYZO_DATA)";
    const std::vector<uint8_t> m = import_tflite_file(path).tzm;
    const LoadedModel a = LoadedModel::from_bytes(m.data(), m.size(), name);
    EXPECT_EQ(expect_round_trip_exact(m, 3, name), a.view().n_ops()) << name;
  }
}

// convert --tflite refuses what stays inexpressible (an act range no fused activation gives, a
// grouped conv), and the writer refuses the paper's ops, one line each, naming the op.
TEST(TfliteWriter, RefusalsNameTheOp) {
  const std::vector<uint8_t> tiny = testing::make_tiny_cnn().builder.serialize();
  const LoadedModel m = LoadedModel::from_bytes(tiny.data(), tiny.size(), "tiny.tzm");
  auto error_of = [](auto&& f) {
    try {
      f();
    } catch (const CliError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string e1 = error_of([&] { write_tflite(m.view(), "tiny.tzm"); });
  EXPECT_EQ(e1.rfind("tiny.tzm: op 0 'conv0' (Conv2d): uses the paper's float-scale requantization", 0), 0u) << e1;
  EXPECT_EQ(e1.find('\n'), std::string::npos);
  // convert --tflite rewrites the ops, but conv0's act range [-128, 100] is no TFLite fused
  // activation and conv4 has 2 groups: the writer names the first (`tinyzo convert --tflite`
  // runs the writer and fails the same way, see CliExportNewFile).
  ConvertOptions opts;
  opts.tflite = true;
  const RequantConversion tc = convert_to_fixed_point(m.view(), opts);
  EXPECT_EQ(tc.remapped_ops, 4);  // add3, avg6, gap7, head9
  const LoadedModel t = LoadedModel::from_bytes(tc.bytes.data(), tc.bytes.size(), "t.tzm");
  const std::string e2 = error_of([&] { write_tflite(t.view(), "t.tzm"); });
  EXPECT_EQ(e2.rfind("t.tzm: op 0 'conv0' (Conv2d): act range [-128, 100] is no fused activation of TFLite", 0), 0u) << e2;

  // A fixed-point model whose act ranges are TFLite's but keeps the paper's Add: the writer names it.
  const RequantConversion fx = convert_to_fixed_point(m.view());
  const LoadedModel f = LoadedModel::from_bytes(fx.bytes.data(), fx.bytes.size(), "fx.tzm");
  const std::string e3 = error_of([&] { write_tflite(f.view(), "fx.tzm"); });
  EXPECT_EQ(e3.rfind("fx.tzm: op ", 0), 0u) << e3;
}

// The CLI: export without --from writes a file that imports; refusals are one line and leave
// no file (nor a temporary one) behind.
TEST(TfliteWriter, CliExportNewFile) {
  TempDir d;
  cli_testing::write_bytes(d.file("net.tflite"), tflite_testing::conv_net());
  auto r = cli_testing::run_tinyzo("import net.tflite -o net.tzm", d.path());
  ASSERT_EQ(r.code, 0) << r.err;
  r = cli_testing::run_tinyzo("export net.tzm --tflite out.tflite", d.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote out.tflite: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(new file)"), std::string::npos) << r.out;
  r = cli_testing::run_tinyzo("info --model out.tflite", d.path());
  EXPECT_EQ(r.code, 0) << r.err;

  testing::make_tiny_cnn().builder.write_atomic(d.file("tiny.tzm"));
  r = cli_testing::run_tinyzo("export tiny.tzm --tflite bad.tflite", d.path());
  cli_testing::expect_one_error_line(r, 1, "op 0 'conv0' (Conv2d): uses the paper's float-scale requantization");
  EXPECT_FALSE(is_regular_file(d.file("bad.tflite")));
  r = cli_testing::run_tinyzo("convert tiny.tzm --tflite -o bad.tzm", d.path());
  cli_testing::expect_one_error_line(r, 1, "act range");
  EXPECT_FALSE(is_regular_file(d.file("bad.tzm")));
}

}  // namespace
}  // namespace tinyzo
