// libFuzzer target: the TensorFlow Lite reader (tflite::parse_tflite, host/models/tflite_reader.cc:
// flatbuffers::Verifier, then index / shape / size checks) and, for every model it reads, the
// importer (import_tflite, host/models/tflite_import.cc). Every input must be read or refused
// with a CliError; a mapped model must be a valid .tzm (ModelView), and a small one must run
// with the ref kernels. Seeds: synthetic models from tests/tflite_test_models.h.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "models/model_store.h"
#include "models/tflite_import.h"
#include "models/tflite_reader.h"
#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/kernels/kernels.h"
#include "util/errors.h"

namespace {
constexpr uint64_t kMaxMacs = 1 << 20;
constexpr size_t kArenaBytes = 1 << 20;
alignas(64) uint8_t g_arena[kArenaBytes];
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tinyzo;
  tflite::TfliteModel m;
  try {
    m = tflite::parse_tflite(std::vector<uint8_t>(data, data + size), "fuzz");
  } catch (const CliError&) {
    return 0;
  }
  TfliteImport imp;
  try {
    imp = import_tflite(m, "fuzz");
  } catch (const CliError&) {
    return 0;
  }
  // The importer validated its output with ModelView already; a second, independent load of the
  // bytes must agree.
  LoadedModel lm = LoadedModel::from_bytes(imp.tzm.data(), imp.tzm.size(), "fuzz");
  const ModelView& v = lm.view();
  uint64_t macs = 0;
  for (int i = 0; i < v.n_ops(); ++i) macs += v.op_macs(i);
  if (macs > kMaxMacs) return 0;
  Arena arena(g_arena, sizeof g_arena);
  Engine e;
  if (e.init(v, arena, ref::table()) != Status::kOk) return 0;
  Span<int8_t> in = e.input();
  for (size_t i = 0; i < in.size(); ++i) in[i] = int8_t(i * 131);
  if (e.invoke() != Status::kOk) __builtin_trap();  // a valid model must run
  return 0;
}
