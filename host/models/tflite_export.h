// Imported .tzm models -> TensorFlow Lite (tinyzo export MODEL.tzm --tflite OUT --from ORIG.tflite;
// docs/import.md, "Export to TFLite").
//
// The exported file is the original .tflite with the adapted conv / fully-connected weights and
// biases written over the original bytes in place: the graph, the operator options, the
// quantization, the metadata and every other byte stay as the converter wrote them. To be sure the
// model is an adaptation of the original, ORIG is imported again (the importer is deterministic)
// and the result must equal MODEL in everything but the values of the trainable conv / FC weight
// and bias constants: same ops with the same parameters, same tensors (names, types, shapes,
// flags, quantization, per-channel scales), same non-trainable constants (requantization,
// ...).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "models/tflite_reader.h"
#include "tinyzo/model.h"

namespace tinyzo {

struct TfliteExport {
  std::vector<uint8_t> bytes;   // the exported .tflite (same size as the original)
  int n_tensors_changed = 0;    // TFLite weight / bias tensors whose values differ from ORIG's
  size_t n_bytes_changed = 0;   // bytes that differ from ORIG's
};

// Writes `model`'s conv / FC weights and biases into a copy of `orig`'s bytes. Throws CliError:
//   "<model_what> is not an adaptation of <orig.what>: <first difference>" when re-importing
//   `orig` does not give `model`'s graph;
//   "<orig_what>: ..." when `orig` cannot be imported, or when a value has nowhere to go in the
//   original (a trained bias of an op that has no bias tensor; two differing values for one
//   shared TFLite buffer).
// `orig` must have been read by tflite::parse_tflite / read_tflite_file (which refuse buffers
// stored outside the FlatBuffer, so every constant's bytes are inside orig.bytes).
TfliteExport export_tflite(const ModelView& model, const std::string& model_what, const tflite::TfliteModel& orig,
                           const std::string& orig_what);

// Reads MODEL (.tzm) and ORIG (.tflite), exports, and writes OUT through a temporary file and a
// rename (never a partial file).
TfliteExport export_tflite_file(const std::string& model_path, const std::string& orig_path,
                                const std::string& out_path);

}  // namespace tinyzo
