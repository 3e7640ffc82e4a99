// `tinyzo batches`: the training inputs of one epoch exactly as `tinyzo train`
// feeds them to the trainer (its epoch order, its augmentation or the eval
// preprocessing), as NumPy files, so that other trainers (the BP baselines in
// python/baselines) train on identical batches.
//
//   tinyzo batches --split DIR --epoch E [--seed 0] [--no-augment] [--order-only]
//                  [--model mcunet-cifar10] --out PREFIX
//
// DIR is a `tinyzo split` directory (its train.bin holds the training images
// in the order `tinyzo train` holds them). Writes PREFIX.order.npy (uint32
// [n]: the split's training-image index at each position of the epoch) and,
// unless --order-only, PREFIX.inputs.npy (int8 [n, S, S, 3], the model inputs
// in that order) and PREFIX.labels.npy (uint8 [n]). Step b of the epoch trains
// on positions [b B, (b + 1) B). Each file is written atomically.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "commands.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "models/model_store.h"
#include "options.h"
#include "data/preprocess.h"
#include "data/protocol.h"
#include "train/trainer_run.h"

namespace tinyzo::cli {

namespace {

struct BatchesOptions {
  std::string split, out, model = "mcunet-cifar10";
  int64_t epoch = -1;
  uint64_t seed = 0;
  bool augment = true, order_only = false;
};

// A NumPy .npy (format 1.0) header for a C-ordered array of `descr` ("|i1", "|u1", "<u4").
std::string npy_header(const char* descr, const std::vector<size_t>& shape) {
  std::string s = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) s += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? ", " : "");
  s += "), }";
  // magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in \n.
  const size_t total = (10 + s.size() + 1 + 63) / 64 * 64;
  s.append(total - 10 - s.size() - 1, ' ');
  s += '\n';
  const uint16_t len = static_cast<uint16_t>(s.size());
  std::string h("\x93NUMPY\x01\x00", 8);
  h += char(len & 0xff);
  h += char(len >> 8);
  return h + s;
}

void write_npy(const std::string& path, const char* descr, const std::vector<size_t>& shape, const void* data,
               size_t bytes) {
  AtomicFileWriter w(path);
  const std::string h = npy_header(descr, shape);
  w.write(h.data(), h.size());
  w.write(data, bytes);
  w.commit();
}

void run_batches(const BatchesOptions& o) {
  if (o.split.empty()) throw CliError("--split DIR is required (a directory written by tinyzo split)");
  if (o.out.empty()) throw CliError("--out PREFIX is required");
  if (o.epoch < 0 || o.epoch > 1000000) throw CliError("--epoch must be in 0..1000000");
  TrainData data;
  data.train = to_image_set(load_cifar10(o.split + "/train.bin"));
  const size_t n = data.train.size();
  const std::vector<uint32_t> order = epoch_order(n, o.seed, static_cast<uint32_t>(o.epoch));
  write_npy(o.out + ".order.npy", "<u4", {n}, order.data(), n * sizeof(uint32_t));
  if (o.order_only) {
    std::printf("wrote %s.order.npy (%zu images, epoch %lld)\n", o.out.c_str(), n, static_cast<long long>(o.epoch));
    return;
  }
  const LoadedModel model = load_model_arg(o.model);
  const ModelView& view = model.view();
  const InputPreprocessor prep(view.tensor(view.input_tensor()));
  data.input_size = prep.output_elements();
  data.input_side = prep.spec().crop;
  AugmentSpec augment;
  augment.enabled = o.augment;
  std::vector<int8_t> inputs(n * data.input_size);
  std::vector<uint8_t> labels(n);
  for (size_t k = 0; k < n; ++k) {
    train_input(data, view, augment, o.seed, static_cast<uint32_t>(o.epoch), order[k], inputs.data() + k * data.input_size);
    labels[k] = data.train.labels[order[k]];
  }
  const size_t side = size_t(data.input_side);
  write_npy(o.out + ".inputs.npy", "|i1", {n, side, side, 3}, inputs.data(), inputs.size());
  write_npy(o.out + ".labels.npy", "|u1", {n}, labels.data(), labels.size());
  std::printf("wrote %s.{order,inputs,labels}.npy (%zu images of %zux%zux3, epoch %lld, %s)\n", o.out.c_str(), n,
              side, side, static_cast<long long>(o.epoch), o.augment ? "augmented" : "eval preprocessing");
}

}  // namespace

void register_batches_command(CLI::App& app) {
  auto o = std::make_shared<BatchesOptions>();
  CLI::App* cmd = app.add_subcommand(
      "batches", "write one epoch's training inputs as tinyzo train feeds them (order, augmentation) as .npy files");
  cmd->add_option("--split", o->split, "a directory written by tinyzo split")->required();
  add_int_option(cmd, "--epoch", &o->epoch, 0, 1000000, "the epoch (0-based)")->required();
  add_u64_option(cmd, "--seed", &o->seed, "the run seed (tinyzo train --seed; default 0)");
  cmd->add_flag("--augment,!--no-augment", o->augment, "training augmentation (default on), as tinyzo train");
  cmd->add_flag("--order-only", o->order_only, "write only PREFIX.order.npy");
  cmd->add_option("--model,-m", o->model, "the model whose input the inputs are made for (default mcunet-cifar10)");
  cmd->add_option("--out", o->out, "output prefix: PREFIX.order.npy, PREFIX.inputs.npy, PREFIX.labels.npy")
      ->required();
  cmd->callback([o] { run_batches(*o); });
}

}  // namespace tinyzo::cli
