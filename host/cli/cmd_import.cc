// `tinyzo import SRC -o OUT.tzm`: converts an original model (the .pth / .pkl
// files of the tiny-training repositories) with the Python importer, or a
// TensorFlow Lite int8 model (.tflite) with the C++ importer
// (host/models/tflite_import.h), checks the result with ModelView and only
// then puts it at OUT.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "data/data_dir.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "models/model_store.h"
#include "models/tflite_import.h"
#include "models/tzm_writer.h"

namespace tinyzo::cli {

namespace {

struct ImportOptions {
  std::string src;
  std::string out;
  int input_size = 0;  // 0: the source's resolution
};

void run_import(const ImportOptions& o) {
  std::string src = o.src;
  // A reference model name stands for its original file in the data directory.
  if (!is_regular_file(src)) {
    if (const KnownModel* known = find_known_model(src)) {
      src = require_data_file(resolve_data_dir(), std::string(kModelsRelDir) + "/" + known->file,
                              std::string("the original ") + known->name + " model");
    } else {
      throw CliError(src + ": no such file");
    }
  }
  if (is_directory(o.out)) throw CliError("-o " + o.out + ": is a directory");
  if (looks_like_tflite(src)) {
    if (o.input_size > 0) throw CliError("--input-size: only for .pth/.pkl models (a .tflite graph keeps its shapes)");
    const auto t0 = std::chrono::steady_clock::now();
    const TfliteImport imp = import_tflite_file(src);
    write_file_atomic(o.out, imp.tzm.data(), imp.tzm.size());
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::string ops;
    for (const auto& [name, count] : imp.op_counts) ops += (ops.empty() ? "" : ", ") + name + " " + std::to_string(count);
    std::printf("wrote %s: %zu bytes, %d ops (%s), %d tensors (%.1f s)\n", o.out.c_str(), imp.tzm.size(), imp.n_ops,
                ops.c_str(), imp.n_tensors, secs);
    return;
  }
  const double secs = run_importer(src, o.out, o.input_size);
  const LoadedModel m = LoadedModel::load(o.out);
  std::printf("wrote %s: %zu bytes, %d ops, %d tensors (%.1f s)\n", o.out.c_str(), m.size_bytes(), m.view().n_ops(),
              m.view().n_tensors(), secs);
}

}  // namespace

void register_import_command(CLI::App& app) {
  auto opts = std::make_shared<ImportOptions>();
  CLI::App* cmd = app.add_subcommand("import", "convert an original model (.pth/.pkl, a reference name, or TensorFlow Lite int8 .tflite) to .tzm");
  cmd->add_option("src", opts->src, "the original model file (.pth, .pkl, .tflite), or a reference model name (mcunet-cifar10, ...)")
      ->required();
  cmd->add_option("-o,--out", opts->out, "the .tzm file to write")->required();
  cmd->add_option("--input-size", opts->input_size,
                  "build the graph for an S x S input instead of the source's resolution (.pth/.pkl: the "
                  "convolutions and the global pool work at any size; the same weights), 32..1024")
      ->check(CLI::Range(32, 1024));
  cmd->callback([opts]() { run_import(*opts); });
}

}  // namespace tinyzo::cli
