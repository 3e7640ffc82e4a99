// `tinyzo export MODEL.tzm --tflite OUT.tflite [--from ORIG.tflite]`: writes a model as TensorFlow
// Lite. With --from: an imported, adapted model back into ORIG's bytes (MODEL's conv /
// fully-connected weights and biases in place, host/models/tflite_export.h; MODEL must be ORIG
// imported, then trained). Without: a new .tflite built from MODEL's graph
// (host/models/tflite_writer.h), for any model whose arithmetic TFLite computes bit for bit.
// Anything else is refused before OUT is touched, and OUT is written through a temporary file.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "models/model_store.h"
#include "models/tflite_export.h"
#include "models/tflite_writer.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo::cli {

namespace {

struct ExportOptions {
  std::string model;
  std::string tflite_out;
  std::string from;
};

void run_export(const ExportOptions& o) {
  if (is_directory(o.tflite_out)) throw CliError("--tflite " + o.tflite_out + ": is a directory");
  if (o.from.empty()) {
    const LoadedModel model = load_model_arg(o.model);
    const TfliteWrite w = write_tflite_file(model.view(), model.path(), o.tflite_out);
    std::printf("wrote %s: %zu bytes, %d operators (%d PAD inserted), %d tensors (new file)\n", o.tflite_out.c_str(),
                w.bytes.size(), w.n_operators, w.n_pads, w.n_tensors);
    return;
  }
  const TfliteExport e = export_tflite_file(o.model, o.from, o.tflite_out);
  std::printf("wrote %s: %zu bytes, %d weight / bias tensors changed (%zu bytes) from %s\n", o.tflite_out.c_str(),
              e.bytes.size(), e.n_tensors_changed, e.n_bytes_changed, o.from.c_str());
}

}  // namespace

void register_export_command(CLI::App& app) {
  auto opts = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export",
      "write a model as TensorFlow Lite: a new .tflite, or (--from) the original .tflite with the adapted weights and biases");
  cmd->add_option("model", opts->model, "the model (.tzm or a reference name; with --from: imported from it, then trained)")->required();
  cmd->add_option("--tflite", opts->tflite_out, "the .tflite file to write")->required();
  cmd->add_option("--from", opts->from, "the original .tflite the model was imported from (then only weights and biases change)");
  cmd->callback([opts]() { run_export(*opts); });
}

}  // namespace tinyzo::cli
