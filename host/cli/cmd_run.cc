// `tinyzo run --model M --input X.npy --output Y.npy [--intermediates P]`: runs any model on raw
// input tensors and writes its raw outputs, for comparisons with other runtimes (TensorFlow
// Lite Micro's goldens, docs/import.md). The input has the model input's dtype and stored dims,
// optionally with a leading batch axis: each item runs on its own (a batch-1 engine), and the
// outputs keep the same axis. --intermediates writes every op's output per item, keyed
// "op<k>_<tensor name>" (TFLM's goldens' keys for an imported .tflite), into one .npz (a path
// ending in .npz) or a directory of .npy files.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "models/model_store.h"
#include "models/tflite_import.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "util/npy.h"

namespace tinyzo::cli {

namespace {

struct RunOptions {
  std::string model;
  std::string input;
  std::string output;
  std::string intermediates;
  std::string kernels = "best";
};

NpyType npy_type_of(DType t) { return t == DType::kInt8 ? NpyType::kInt8 : t == DType::kInt32 ? NpyType::kInt32 : NpyType::kFloat32; }

std::vector<int64_t> dims_of(const TzmTensor& t) {
  std::vector<int64_t> d;
  for (int k = 0; k < t.rank; ++k) d.push_back(t.dims[k]);
  return d;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Collects each op's output bytes of the item being run (engine observer).
struct Recorder {
  std::vector<std::vector<uint8_t>>* per_op = nullptr;  // [op] -> bytes of all items so far
  static void observe(void* ctx, int op, const void* out, size_t size_bytes) {
    auto* r = static_cast<Recorder*>(ctx);
    const auto* p = static_cast<const uint8_t*>(out);
    (*r->per_op)[size_t(op)].insert((*r->per_op)[size_t(op)].end(), p, p + size_bytes);
  }
};

void run_run(const RunOptions& o) {
  if (is_directory(o.output)) throw CliError("--output " + o.output + ": is a directory");
  const LoadedModel model = load_model_arg(o.model);
  const ModelView& view = model.view();
  const KernelTable& kernels = kernels_by_name(o.kernels);
  const TzmTensor& in_t = view.tensor(view.input_tensor());
  const TzmTensor& out_t = view.tensor(view.output_tensor());
  const std::vector<int64_t> in_dims = dims_of(in_t);

  const NpyArray x = read_npy_file(o.input);
  if (x.type != npy_type_of(DType(in_t.dtype)))
    throw CliError(o.input + ": dtype " + npy_type_name(x.type) + ", the model input is " +
                   npy_type_name(npy_type_of(DType(in_t.dtype))));
  // Either exactly the input's dims (one item) or a leading batch axis.
  bool batched = false;
  int64_t n_items = 1;
  if (x.shape == in_dims) {
    batched = false;
  } else if (x.shape.size() == in_dims.size() + 1 && std::vector<int64_t>(x.shape.begin() + 1, x.shape.end()) == in_dims) {
    batched = true;
    n_items = x.shape[0];
  } else {
    throw CliError(o.input + ": shape " + npy_shape_string(x.shape) + ", the model input is " + npy_shape_string(in_dims) +
                   " (optionally with a leading batch axis)");
  }
  if (n_items < 1) throw CliError(o.input + ": an empty batch");

  EngineInstance inst(view, kernels, 1);
  Engine& e = inst.engine();
  std::vector<std::vector<uint8_t>> per_op(size_t(view.n_ops()));
  Recorder rec{&per_op};
  if (!o.intermediates.empty()) e.set_observer(&Recorder::observe, &rec);

  const size_t in_bytes = tensor_elements(in_t) * dtype_size(DType(in_t.dtype));
  const size_t out_bytes = tensor_elements(out_t) * dtype_size(DType(out_t.dtype));
  NpyArray y;
  y.type = npy_type_of(DType(out_t.dtype));
  y.shape = dims_of(out_t);
  if (batched) y.shape.insert(y.shape.begin(), n_items);
  y.data.reserve(out_bytes * size_t(n_items));
  for (int64_t i = 0; i < n_items; ++i) {
    Span<int8_t> dst = e.input();
    std::memcpy(dst.data(), x.data.data() + size_t(i) * in_bytes, in_bytes);
    inst.invoke();
    const auto* out = static_cast<const uint8_t*>(e.tensor_data(view.output_tensor()));
    y.data.insert(y.data.end(), out, out + out_bytes);
  }
  write_npy_file(o.output, y);

  if (!o.intermediates.empty()) {
    NpzArchive archive;
    for (int k = 0; k < view.n_ops(); ++k) {
      const TzmTensor& t = view.tensor(view.op(k).output);
      NpyArray a;
      a.type = npy_type_of(DType(t.dtype));
      a.shape = dims_of(t);
      if (batched) a.shape.insert(a.shape.begin(), n_items);
      a.data = std::move(per_op[size_t(k)]);
      const std::string key = intermediate_key(k, std::string(t.name, strnlen(t.name, kTzmNameLen)));
      archive.names.push_back(key);
      archive.arrays.emplace(key, std::move(a));
    }
    if (ends_with(o.intermediates, ".npz")) {
      write_npz_file(o.intermediates, archive);
    } else {
      make_directories(o.intermediates);
      for (const std::string& key : archive.names) write_npy_file(o.intermediates + "/" + key + ".npy", archive.arrays[key]);
    }
  }
  std::printf("ran %s on %lld item%s: wrote %s %s%s%s\n", model.path().c_str(), static_cast<long long>(n_items),
              n_items == 1 ? "" : "s", o.output.c_str(), npy_shape_string(y.shape).c_str(),
              o.intermediates.empty() ? "" : ", intermediates of every op to ", o.intermediates.c_str());
}

}  // namespace

void register_run_command(CLI::App& app) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "run a model on raw input tensors (.npy) and write its raw outputs");
  cmd->add_option("--model,-m", opts->model, "a .tzm or .tflite file, or a reference model name")->required();
  cmd->add_option("--input,-i", opts->input,
                  "input tensor (.npy, the model input's dtype and dims, optionally with a leading batch axis)")
      ->required();
  cmd->add_option("--output,-o", opts->output, "where to write the output tensor (.npy)")->required();
  cmd->add_option("--intermediates", opts->intermediates,
                  "also write every op's output: a .npz file, or a directory of .npy files (keys op<k>_<tensor>)");
  cmd->add_option("--kernels", opts->kernels, "kernel set: best (default) or ref")->check(CLI::IsMember({"best", "ref"}));
  cmd->callback([opts]() { run_run(*opts); });
}

}  // namespace tinyzo::cli
