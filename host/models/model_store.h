// Finding, converting and loading models for the host tools. A `--model`
// argument is either a path to a .tzm file or the name of a reference model
// from the data directory, converted on first use by the Python importer into
// the cache directory. See docs/data.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "data/data_dir.h"
#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/model.h"

namespace tinyzo {

// The largest .tzm file: its header holds the size as a u32.
constexpr uint64_t kMaxModelBytes = UINT32_MAX;

// A model file held in memory (16-byte aligned, as the format requires) and
// its validated view. Movable (the view points into heap storage that moves
// with it), not copyable.
class LoadedModel {
 public:
  // Reads and validates `path`. Throws CliError "<path>: <reason>" for a
  // missing file or one that is not a regular file, and "<path>: corrupt
  // model: <ModelView::error()>" for bytes that fail validation. The size
  // (at most kMaxModelBytes) and the 64-byte header (magic, size field) are
  // checked before the rest of the file is read.
  static LoadedModel load(const std::string& path);
  // Validates bytes already in memory; `what` names them in errors.
  static LoadedModel from_bytes(const uint8_t* data, size_t size, const std::string& what);

  LoadedModel(LoadedModel&&) = default;
  LoadedModel& operator=(LoadedModel&&) = default;
  LoadedModel(const LoadedModel&) = delete;
  LoadedModel& operator=(const LoadedModel&) = delete;

  const ModelView& view() const { return view_; }
  const std::string& path() const { return path_; }
  size_t size_bytes() const { return size_; }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(storage_.data()); }

 private:
  struct alignas(16) Block {
    uint8_t b[16];
  };
  LoadedModel() = default;
  void validate();  // ModelView::init over storage_, throwing CliError

  std::vector<Block> storage_;
  size_t size_ = 0;
  ModelView view_;
  std::string path_;
};

// A reference model that `--model <name>` accepts.
struct KnownModel {
  const char* name;         // "mcunet-cifar10"
  const char* file;         // under <data>/models/original/
  const char* description;  // one line
};
const std::vector<KnownModel>& known_models();
// The kernel table named `name`: "best" (best_kernels()) or "ref". Throws
// CliError for anything else.
const KernelTable& kernels_by_name(const std::string& name);

// Bytes of arena Engine::init() needs for `model` (probed in a temporary
// scratch arena). Throws CliError when the model cannot be planned.
size_t required_arena_bytes(const ModelView& model, int batch = 1, const EngineOptions& options = EngineOptions());

// An Engine with its own heap-backed arena of exactly
// Engine::required_arena_bytes(). One per thread; `model` must outlive it.
class EngineInstance {
 public:
  // Throws CliError "<what>: engine: <status>" when init fails.
  // `batch` items per tensor (Engine::init's batch).
  // `options` as Engine::init's (e.g. fused blocks).
  EngineInstance(const ModelView& model, const KernelTable& kernels, int batch = 1,
                 const EngineOptions& options = EngineOptions());
  EngineInstance(const EngineInstance&) = delete;
  EngineInstance& operator=(const EngineInstance&) = delete;

  Engine& engine() { return engine_; }
  // invoke(), throwing CliError on a non-ok status.
  void invoke();
  // The model output as float logits: output_f32() for a float32 output,
  // otherwise the int8 output dequantized with its scale and zero point.
  void logits(std::vector<float>* out, int item = 0) const;
  // invoke_items(0, n_ops, 0, n_items), throwing CliError on a non-ok status.
  void invoke_items(int n_items);

 private:
  struct alignas(16) Block {
    uint8_t b[16];
  };
  std::vector<Block> memory_;
  Arena arena_;
  Engine engine_;
};

// Index of the largest value (the first one on ties); -1 for an empty input.
int argmax(const std::vector<float>& v);

// The entry for `name`, or nullptr.
const KnownModel* find_known_model(const std::string& name);

// Resolves a --model argument to a .tzm path: an existing .tzm file is returned as
// is, a .tflite file is imported into the cache (import_tflite_to_cache); a known name maps to <cache>/<name>.tzm, (re)converted from
// <data>/models/original/<file> when the cache is missing, older than the
// source or the importer, or fails validation. Progress of a conversion goes
// to stderr. Throws CliError for an unknown name, a missing file or a failed
// conversion.
std::string resolve_model_path(const std::string& arg, const PathOptions& options = global_path_options());

// A TensorFlow Lite model (looks_like_tflite) imported into <cache>/tflite/<stem>-<crc32>-<size>-v<N>.tzm
// (host/models/tflite_import.h), reused while that file validates. Progress goes to stderr.
// Throws CliError naming the file and the unsupported operator.
std::string import_tflite_to_cache(const std::string& src, const PathOptions& options = global_path_options());

// The version of the TFLite mapping, part of the cache key: bump it whenever the .tzm that
// import_tflite() makes for a given file changes.
constexpr int kTfliteImporterVersion = 2;  // 2: op names from short output tensor names

// resolve_model_path() then LoadedModel::load().
LoadedModel load_model_arg(const std::string& arg, const PathOptions& options = global_path_options());

// Runs the Python importer (python/tinyzo/importer.py under TINYZO_SOURCE_DIR,
// or $TINYZO_IMPORTER): `importer.py SRC -o TMP`, then validates TMP with
// ModelView and renames it to `out`. Nothing is left at `out` (or beside it)
// when anything fails. The interpreter is $TINYZO_PYTHON if set; otherwise
// python3 from PATH, then /usr/bin/python3 when the first is missing or
// fails (Debian's python3-torch imports only under /usr/bin/python3). Throws
// CliError with the importer's last line of output. Returns the seconds the
// conversion took. `input_size` > 0 builds the graph for an S x S input
// instead of the source's resolution (the importer's --input-size).
double run_importer(const std::string& src, const std::string& out, int input_size = 0);

// The importer script that run_importer() uses.
std::string importer_script_path();

}  // namespace tinyzo
