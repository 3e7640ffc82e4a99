// `tinyzo split`: the protocol's corrupted split (METHOD §6, docs/training.md)
// as files, so that other tools (python/baselines) train and test on exactly
// the pixels and labels `tinyzo train` uses.
//
//   tinyzo split [--corruption gaussian_noise] [--severity 5] [--corruption-seed 0]
//                [--split-seed 0] [--train-per-class 100] [--val-per-class 10]
//                [--test-per-class 90] --out DIR
//
// DIR receives train.bin, val.bin and test.bin in the CIFAR-10 binary layout
// (per image: label byte + 3072 planar R, G, B bytes, 32x32), in the order
// `tinyzo train` holds them (ascending test-batch index), and split.json with
// the settings and the test-batch index of every image. Every file is written
// to a temporary file first and all four are renamed into place only after all
// of them were written completely, so a failure leaves no torn file.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "commands.h"
#include "data/data_dir.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "options.h"
#include "data/protocol.h"
#include "train/train_config.h"

namespace tinyzo::cli {

namespace {

struct SplitOptions {
  std::unique_ptr<SettingFlags> flags;  // the split's settings, as `train` takes them
  std::string out;
  int threads = 0;
};

void write_records(AtomicFileWriter& w, const Cifar10Set& set) {
  for (size_t i = 0; i < set.size(); ++i) {
    w.write_u8(set.labels[i]);
    w.write(set.image(i), kCifar10ImageBytes);
  }
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
  validate_config(cfg, &sources);
  ProtocolSpec spec;
  spec.corruption = cfg.corruption;
  spec.severity = cfg.severity;
  spec.corruption_seed = cfg.corruption_seed;
  spec.split = SplitSpec{cfg.train_per_class, cfg.val_per_class, cfg.test_per_class, cfg.split_seed};
  make_directories(o.out);
  const ProtocolData data = load_protocol_data(resolve_data_dir(), spec, o.threads);

  const SplitSpec& s = spec.split;
  std::string meta =
      "{\"corruption\":\"" + spec.corruption + "\",\"severity\":" + std::to_string(spec.severity) +
      ",\"corruption_seed\":" + std::to_string(spec.corruption_seed) +
      ",\"split_seed\":" + std::to_string(s.seed) +
      ",\"train_per_class\":" + std::to_string(s.train_per_class) +
      ",\"val_per_class\":" + std::to_string(s.val_per_class) +
      ",\"test_per_class\":" + std::to_string(s.test_per_class) +
      ",\"layout\":\"cifar10-binary: label byte + 3072 planar bytes\"" +
      ",\"indices\":{\"train\":" + json_indices(data.indices.train) +
      ",\"val\":" + json_indices(data.indices.val) + ",\"test\":" + json_indices(data.indices.test) + "}}\n";

  // All four files are complete before the first rename.
  AtomicFileWriter train(o.out + "/train.bin"), val(o.out + "/val.bin"), test(o.out + "/test.bin"),
      json(o.out + "/split.json");
  write_records(train, data.train);
  write_records(val, data.val);
  write_records(test, data.test);
  json.write(meta.data(), meta.size());
  train.commit();
  val.commit();
  test.commit();
  json.commit();
  std::printf("wrote %s/{train,val,test}.bin (%zu / %zu / %zu images, %s severity %d) and split.json\n",
              o.out.c_str(), data.train.size(), data.val.size(), data.test.size(), spec.corruption.c_str(),
              spec.severity);
}

}  // namespace

void register_split_command(CLI::App& app) {
  auto o = std::make_shared<SplitOptions>();
  CLI::App* cmd = app.add_subcommand(
      "split", "write the protocol's corrupted train/val/test split (CIFAR-10 binary layout) into a directory");
  o->flags = std::make_unique<SettingFlags>(cmd);
  for (const char* key : {"corruption", "severity", "corruption_seed", "split_seed", "train_per_class",
                          "val_per_class", "test_per_class"})
    o->flags->add(key);
  add_int_option(cmd, "--threads", &o->threads, 0, 1024,
                 "corruption threads (default 0 = all cores; no effect on the bytes)");
  cmd->add_option("--out", o->out, "output directory (created if missing)")->required();
  cmd->callback([o] { run_split(*o); });
}

}  // namespace tinyzo::cli
