// `tinyzo split`: the protocol's corrupted split (METHOD §6, docs/training.md)
// as files, so that other tools (python/baselines) train and test on exactly
// the pixels and labels `tinyzo train` uses.
//
//   tinyzo split [--corruption gaussian_noise] [--severity 5] [--corruption-seed 0]
//                [--split-seed 0] [--train-per-class 100] [--val-per-class 10]
//                [--test-per-class 90] [--data DIR [--bad-images stop|skip]] --out DIR
//
// With --data an image folder, DIR receives image folders instead of .bin
// files: DIR/{train,val,test}/<class>/<file>.png (the decoded pixels, lossless;
// <file> is the source's path below its class folder with '/' as '__' and
// .png appended), plus split.json with the source path of every image.
// DIR receives train.bin, val.bin and test.bin in the CIFAR-10 binary layout
// (per image: label byte + 3072 planar R, G, B bytes, 32x32), in the order
// `tinyzo train` holds them (ascending test-batch index), and split.json with
// the settings and the test-batch index of every image. Every file is written
// to a temporary file first and all four are renamed into place only after all
// of them were written completely, so a failure leaves no torn file.
//
// --inputs-for MODEL also writes what MODEL is fed: DIR/{val,test}_inputs.npy
// (int8 [N, H, W, C], the val / test images through the model's eval
// preprocessing, made by the very code `tinyzo train` measures its val / test
// accuracy with) and DIR/{val,test}_labels.npy (uint8 [N]), in split order, so
// another runtime (Arm NN, TFLM) scores a .tflite on exactly train's inputs
// (examples/tflite-journey).
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/cifar10.h"
#include "data/image_folder.h"
#include "data/image_io.h"
#include "commands.h"
#include "data/data_dir.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "models/model_store.h"
#include "options.h"
#include "util/npy.h"
#include "data/preprocess.h"
#include "data/protocol.h"
#include "train/train_config.h"
#include "train/trainer_run.h"

namespace tinyzo::cli {

namespace {

struct SplitOptions {
  std::unique_ptr<SettingFlags> flags;  // the split's settings, as `train` takes them
  std::string out;
  std::string inputs_for;  // a model: also write its val / test inputs as .npy
  int threads = 0;
};

void write_records(AtomicFileWriter& w, const ImageSet& set) {
  for (size_t i = 0; i < set.size(); ++i) {
    w.write_u8(set.labels[i]);
    w.write(set.image(i), kCifar10ImageBytes);
  }
}

// An image as interleaved 8-bit pixels for the PNG writer.
Image8 to_image8(const ImageView& v) {
  Image8 im;
  im.width = v.width;
  im.height = v.height;
  im.channels = v.channels;
  im.pixels.resize(size_t(v.width) * size_t(v.height) * size_t(v.channels));
  const size_t plane = size_t(v.width) * size_t(v.height);
  for (size_t i = 0; i < plane; ++i)
    for (int c = 0; c < v.channels; ++c) im.pixels[i * size_t(v.channels) + size_t(c)] = v.pixels[size_t(c) * plane + i];
  return im;
}

std::string json_string(const std::string& s) { return nlohmann::json(s).dump(); }

// One split of a folder source as DIR/<split>/<class>/<file>.png.
void write_folder_split(const std::string& dir, const ImageSet& set, const std::vector<uint32_t>& idx,
                        const ImageFolderSource& source) {
  for (size_t k = 0; k < set.size(); ++k) {
    const std::string cls = source.class_names()[set.labels[k]];
    std::string name = source.relative_path(idx[k]);
    for (size_t p; (p = name.find('/')) != std::string::npos;) name.replace(p, 1, "__");
    make_directories(dir + "/" + cls);
    write_png(dir + "/" + cls + "/" + name + ".png", to_image8(set.view(k)));
  }
}

// The val / test inputs of `model` (prepare_train_data, as `tinyzo train`) and labels as .npy
// arrays, keyed by file name.
std::vector<std::pair<std::string, NpyArray>> model_inputs(const ProtocolData& data, const ModelView& model) {
  ProtocolData eval_only;  // train's images are augmented per epoch, not written
  eval_only.val = data.val;
  eval_only.test = data.test;
  const TrainData d = prepare_train_data(std::move(eval_only), model);
  std::vector<int64_t> item_dims;
  const TzmTensor& in = model.tensor(model.input_tensor());
  for (int k = 0; k < in.rank; ++k) item_dims.push_back(in.dims[k]);
  std::vector<std::pair<std::string, NpyArray>> out;
  auto add = [&](const std::string& name, const std::vector<int8_t>& inputs, const std::vector<uint8_t>& labels) {
    NpyArray x;
    x.type = NpyType::kInt8;
    x.shape = item_dims;
    x.shape.insert(x.shape.begin(), int64_t(labels.size()));
    x.data.assign(reinterpret_cast<const uint8_t*>(inputs.data()),
                  reinterpret_cast<const uint8_t*>(inputs.data()) + inputs.size());
    NpyArray y;
    y.type = NpyType::kUint8;
    y.shape = {int64_t(labels.size())};
    y.data = labels;
    out.emplace_back(name + "_inputs.npy", std::move(x));
    out.emplace_back(name + "_labels.npy", std::move(y));
  };
  add("val", d.val_inputs, d.val_labels);
  add("test", d.test_inputs, d.test_labels);
  return out;
}

std::string json_indices(const std::vector<uint32_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(v[i]);
  }
  return s + "]";
}

void run_split(const SplitOptions& o) {
  if (o.out.empty()) throw CliError("--out: is empty (give the directory to write)");
  TrainConfig cfg;
  SettingSources sources;
  o.flags->apply(&cfg, &sources);
  apply_data_defaults(&cfg, sources);
  validate_config(cfg, &sources);
  const ProtocolSpec spec = protocol_spec(cfg);
  // The model is loaded and its input checked before anything is written.
  std::unique_ptr<LoadedModel> model;
  if (!o.inputs_for.empty()) {
    model = std::make_unique<LoadedModel>(load_model_arg(o.inputs_for));
    const ModelView& v = model->view();
    (void)ImagePreprocessor(v.tensor(v.input_tensor()));  // throws for an input it cannot feed
  }
  const std::string data_dir = protocol_needs_data_dir(spec) ? resolve_data_dir() : std::string();
  const std::unique_ptr<DataSource> source = open_protocol_source(data_dir, spec, o.threads);
  const ProtocolData data = make_protocol_data(*source, spec, data_dir, o.threads);
  if (!data.skipped_summary.empty()) std::fprintf(stderr, "tinyzo: %s\n", data.skipped_summary.c_str());
  const auto* folder = dynamic_cast<const ImageFolderSource*>(source.get());
  std::vector<std::pair<std::string, NpyArray>> inputs;
  std::string inputs_note;
  if (model) {
    const ModelView& v = model->view();
    check_class_count(data.description, data.class_names, tensor_elements(v.tensor(v.output_tensor())),
                      o.inputs_for);  // as the user named it
    inputs = model_inputs(data, v);
    inputs_note = " and {val,test}_{inputs,labels}.npy for " + o.inputs_for;
  }
  make_directories(o.out);

  const SplitSpec& s = spec.split;
  std::string meta =
      "{\"corruption\":\"" + spec.corruption + "\",\"severity\":" + std::to_string(spec.severity) +
      ",\"corruption_seed\":" + std::to_string(spec.corruption_seed) +
      ",\"split_seed\":" + std::to_string(s.seed) +
      ",\"train_per_class\":" + std::to_string(s.train_per_class) +
      ",\"val_per_class\":" + std::to_string(s.val_per_class) +
      ",\"test_per_class\":" + std::to_string(s.test_per_class) +
      (model ? ",\"inputs_for\":" + json_string(o.inputs_for) : std::string()) +
      (folder ? ",\"data\":" + json_string(spec.data) + ",\"classes\":" + nlohmann::json(data.class_names).dump() +
                    ",\"layout\":\"image folders: <split>/<class>/<file>.png\""
              : std::string(",\"layout\":\"cifar10-binary: label byte + 3072 planar bytes\"")) +
      ",\"indices\":{\"train\":" + json_indices(data.indices.train) +
      ",\"val\":" + json_indices(data.indices.val) + ",\"test\":" + json_indices(data.indices.test) + "}}\n";

  if (folder) {
    nlohmann::json files;
    for (auto [name, idx] : {std::pair{"train", &data.indices.train}, std::pair{"val", &data.indices.val},
                             std::pair{"test", &data.indices.test}}) {
      nlohmann::json list = nlohmann::json::array();
      for (uint32_t i : *idx) list.push_back(folder->item_name(i));
      files[name] = list;
    }
    meta.pop_back();  // "\n"
    meta.pop_back();  // "}"
    meta += ",\"files\":" + files.dump() + "}\n";
    write_folder_split(o.out + "/train", data.train, data.indices.train, *folder);
    write_folder_split(o.out + "/val", data.val, data.indices.val, *folder);
    write_folder_split(o.out + "/test", data.test, data.indices.test, *folder);
    for (const auto& [name, a] : inputs) write_npy_file(o.out + "/" + name, a);
    write_file_atomic(o.out + "/split.json", meta.data(), meta.size());
    std::printf("wrote %s/{train,val,test}/<class>/*.png (%zu / %zu / %zu images of %s), split.json%s\n",
                o.out.c_str(), data.train.size(), data.val.size(), data.test.size(), data.description.c_str(),
                inputs_note.c_str());
    return;
  }
  // CIFAR-10 records: every image must be 3x32x32.
  for (const ImageSet* set : {&data.train, &data.val, &data.test})
    for (const ImageSet::Dims& d : set->dims)
      if (d.channels != 3 || d.height != kCifar10Side || d.width != kCifar10Side)
        throw CliError("split: not a CIFAR-10 image");
  // All four files are complete before the first rename.
  AtomicFileWriter train(o.out + "/train.bin"), val(o.out + "/val.bin"), test(o.out + "/test.bin"),
      json(o.out + "/split.json");
  write_records(train, data.train);
  write_records(val, data.val);
  write_records(test, data.test);
  json.write(meta.data(), meta.size());
  for (const auto& [name, a] : inputs) write_npy_file(o.out + "/" + name, a);
  train.commit();
  val.commit();
  test.commit();
  json.commit();
  std::printf("wrote %s/{train,val,test}.bin (%zu / %zu / %zu images, %s severity %d), split.json%s\n",
              o.out.c_str(), data.train.size(), data.val.size(), data.test.size(), spec.corruption.c_str(),
              spec.severity, inputs_note.c_str());
}

}  // namespace

void register_split_command(CLI::App& app) {
  auto o = std::make_shared<SplitOptions>();
  CLI::App* cmd = app.add_subcommand(
      "split", "write the protocol's corrupted train/val/test split (CIFAR-10 binary layout) into a directory");
  o->flags = std::make_unique<SettingFlags>(cmd);
  for (const char* key : {"corruption", "severity", "corruption_seed", "split_seed", "train_per_class",
                          "val_per_class", "test_per_class", "data", "bad_images"})
    o->flags->add(key);
  add_int_option(cmd, "--threads", &o->threads, 0, 1024,
                 "corruption threads (default 0 = all cores; no effect on the bytes)");
  cmd->add_option("--out", o->out, "output directory (created if missing)")->required();
  cmd->add_option("--inputs-for", o->inputs_for,
                  "a model (.tzm, .tflite or a name): also write {val,test}_inputs.npy (its int8 inputs, exactly "
                  "as `tinyzo train` evaluates them) and {val,test}_labels.npy");
  cmd->callback([o] { run_split(*o); });
}

}  // namespace tinyzo::cli
