// `tinyzo dump --model M --first F --count N --out FILE`: every op's output
// for N test images, for a bit-exact regression check against the Python
// reference. File layout (little-endian), documented in docs/data.md:
//   "TZD1", u32 n_images, u32 n_ops,
//   per image: u8 label, then per op in execution order: u32 nbytes, the bytes.
// Written to a temporary file and renamed into place only when complete.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "commands.h"
#include "data/data_dir.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "models/model_store.h"
#include "options.h"
#include "data/preprocess.h"

namespace tinyzo::cli {

namespace {

struct DumpOptions {
  std::string model;
  std::string images;
  std::string out;
  std::string kernels = "ref";
  size_t first = 0;
  size_t count = 1;
};

// Collects one image's op outputs. The observer runs inside the device
// library (built without exceptions), so it must not throw: failures are
// recorded and reported after invoke() returns.
struct Recorder {
  int n_ops = 0;
  int next_op = 0;
  bool failed = false;
  std::string error;
  std::vector<std::vector<uint8_t>> outputs;

  static void observe(void* ctx, int op_index, const void* out, size_t size_bytes) {
    Recorder* r = static_cast<Recorder*>(ctx);
    if (r->failed) return;
    if (op_index != r->next_op || op_index >= r->n_ops) {
      r->failed = true;
      r->error = "engine reported op " + std::to_string(op_index) + ", expected op " + std::to_string(r->next_op);
      return;
    }
    try {
      const uint8_t* p = static_cast<const uint8_t*>(out);
      r->outputs[size_t(op_index)].assign(p, p + size_bytes);
    } catch (...) {
      r->failed = true;
      r->error = "out of memory while recording op outputs";
      return;
    }
    ++r->next_op;
  }
};

void run_dump(const DumpOptions& o) {
  const LoadedModel model = load_model_arg(o.model);
  const ModelView& view = model.view();
  const InputPreprocessor prep(view.tensor(view.input_tensor()));
  const std::string images = o.images.empty() ? cifar10_test_batch_path(resolve_data_dir()) : o.images;
  const Cifar10Set data = load_cifar10(images);
  if (o.first >= data.size() || o.count > data.size() - o.first)
    throw CliError("--first " + std::to_string(o.first) + " --count " + std::to_string(o.count) + ": the set has " +
                   std::to_string(data.size()) + " images");
  EngineInstance inst(view, kernels_by_name(o.kernels));
  if (inst.engine().input().size() != prep.output_elements())
    throw CliError(model.path() + ": the model input holds " + std::to_string(inst.engine().input().size()) +
                   " values, the preprocessing makes " + std::to_string(prep.output_elements()));

  Recorder rec;
  rec.n_ops = view.n_ops();
  rec.outputs.resize(size_t(rec.n_ops));
  inst.engine().set_observer(&Recorder::observe, &rec);

  AtomicFileWriter w(o.out);
  w.write("TZD1", 4);
  w.write_u32(static_cast<uint32_t>(o.count));
  w.write_u32(static_cast<uint32_t>(rec.n_ops));
  for (size_t k = 0; k < o.count; ++k) {
    const size_t i = o.first + k;
    prep.run(data.image(i), inst.engine().input().data());
    rec.next_op = 0;
    inst.invoke();
    if (rec.failed) throw CliError("dump: " + rec.error);
    if (rec.next_op != rec.n_ops)
      throw CliError("dump: the engine reported " + std::to_string(rec.next_op) + " of " +
                     std::to_string(rec.n_ops) + " ops");
    w.write_u8(data.labels[i]);
    for (const std::vector<uint8_t>& bytes : rec.outputs) {
      w.write_u32(static_cast<uint32_t>(bytes.size()));
      w.write(bytes.data(), bytes.size());
    }
  }
  w.commit();
  std::fprintf(stderr, "dump: wrote %zu image%s x %d ops to %s\n", o.count, o.count == 1 ? "" : "s", rec.n_ops,
               o.out.c_str());
}

}  // namespace

void register_dump_command(CLI::App& app) {
  auto opts = std::make_shared<DumpOptions>();
  CLI::App* cmd = app.add_subcommand("dump", "write every op's output for some test images (regression check)");
  cmd->add_option("--model,-m", opts->model, "a .tzm file or a reference model name (mcunet-cifar10, ...)")
      ->required();
  cmd->add_option("--images", opts->images,
                  "a CIFAR-10 binary file, plain or gzip (default: <data>/cifar10/test_batch.bin.gz)");
  add_int_option(cmd, "--first", &opts->first, 0, INT64_MAX, "index of the first image (default 0)");
  cmd->add_option("--count,-n", opts->count, "number of images (default 1)")->check(CLI::Range(1, 1000000));
  cmd->add_option("--out,-o", opts->out, "output file (written atomically)")->required();
  cmd->add_option("--kernels", opts->kernels, "kernel set: ref (default) or best")
      ->check(CLI::IsMember({"best", "ref"}));
  cmd->callback([opts]() { run_dump(*opts); });
}

}  // namespace tinyzo::cli
