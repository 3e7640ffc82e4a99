// `tinyzo export MODEL.tzm --tflite OUT.tflite --from ORIG.tflite`: writes an imported, adapted
// model back as TensorFlow Lite: ORIG's bytes with MODEL's conv / fully-connected weights and
// biases in place (host/models/tflite_export.h). MODEL must be ORIG imported (then trained);
// anything else is refused before OUT is touched, and OUT is written through a temporary file.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "models/tflite_export.h"
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
  const TfliteExport e = export_tflite_file(o.model, o.from, o.tflite_out);
  std::printf("wrote %s: %zu bytes, %d weight / bias tensors changed (%zu bytes) from %s\n", o.tflite_out.c_str(),
              e.bytes.size(), e.n_tensors_changed, e.n_bytes_changed, o.from.c_str());
}

}  // namespace

void register_export_command(CLI::App& app) {
  auto opts = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export", "write an imported (and trained) .tzm back as TensorFlow Lite: the original .tflite with the adapted weights and biases");
  cmd->add_option("model", opts->model, "the .tzm model (imported from --from, then trained)")->required();
  cmd->add_option("--tflite", opts->tflite_out, "the .tflite file to write")->required();
  cmd->add_option("--from", opts->from, "the original .tflite the model was imported from")->required();
  cmd->callback([opts]() { run_export(*opts); });
}

}  // namespace tinyzo::cli
