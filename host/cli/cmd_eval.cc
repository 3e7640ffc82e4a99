// `tinyzo eval --model M`: top-1 accuracy on the CIFAR-10 test set with the
// eval preprocessing of METHOD §6 (docs/data.md), or on the user's own data
// (--data DIR: an image folder or CIFAR-10 files, docs/data.md "Your own
// data"), preprocessed for the model's input tensor (ImagePreprocessor). With --threads T, T
// independent engines (one arena each) run over contiguous slices; every
// image is processed the same way whatever T is, so the result does not
// depend on the thread count. With --batch N each engine runs N images at
// once (docs/bench.md); results are again the same.
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "data/cifar10.h"
#include "data/data_source.h"
#include "commands.h"
#include "data/data_dir.h"
#include "util/errors.h"
#include "models/model_store.h"
#include "options.h"
#include "data/preprocess.h"
#include "train/progress.h"

namespace tinyzo::cli {

namespace {

struct EvalOptions {
  std::string model;
  std::string images;  // a CIFAR-10 binary file; default: the data directory's test batch
  std::string data;    // an image folder or CIFAR-10 files (open_data_source)
  std::string bad_images = "stop";
  std::string kernels = "best";
  size_t first = 0;
  size_t limit = 0;  // 0 = all
  int threads = 1;
  int batch = 1;
  bool json = false;
};

void run_eval(const EvalOptions& o) {
  const LoadedModel model = load_model_arg(o.model);
  const ModelView& view = model.view();
  const KernelTable& kernels = kernels_by_name(o.kernels);
  const ImagePreprocessor prep(view.tensor(view.input_tensor()));
  const size_t n_out = tensor_elements(view.tensor(view.output_tensor()));
  if (!o.images.empty() && !o.data.empty()) throw CliError("--images and --data: give one of them");
  std::unique_ptr<DataSource> source;
  std::string images;
  if (!o.data.empty()) {
    source = open_data_source(o.data, parse_bad_images(o.bad_images));
    images = o.data;
  } else {
    images = o.images.empty() ? cifar10_test_batch_path(resolve_data_dir()) : o.images;
    source = open_cifar10_files({images});
  }
  if (o.data.empty() && n_out != size_t(kCifar10Classes))
    throw CliError(o.model + ": the model has " + std::to_string(n_out) +
                   " outputs; CIFAR-10 eval needs a 10-class model (e.g. mcunet-cifar10)");
  // Named as the user gave it (a .tflite, not the import cache's .tzm).
  check_class_count(*source, n_out, o.model);
  const std::string skipped = skipped_summary(*source);
  if (!skipped.empty()) std::fprintf(stderr, "tinyzo: %s\n", skipped.c_str());
  const DataSource& data = *source;
  if (o.first >= data.size())
    throw CliError("--first " + std::to_string(o.first) + ": the set has only " + std::to_string(data.size()) +
                   " images");
  const size_t n = o.limit == 0 ? data.size() - o.first : std::min(o.limit, data.size() - o.first);
  const int threads = static_cast<int>(std::min<size_t>(size_t(std::max(o.threads, 1)), n));

  // Engines are built before the clock starts: the timing covers inference only.
  std::vector<std::unique_ptr<EngineInstance>> engines;
  for (int t = 0; t < threads; ++t) engines.push_back(std::make_unique<EngineInstance>(view, kernels, o.batch));
  if (engines[0]->engine().input().size() != prep.output_elements())
    throw CliError(model.path() + ": the model input holds " + std::to_string(engines[0]->engine().input().size()) +
                   " values, the preprocessing makes " + std::to_string(prep.output_elements()));

  std::vector<int> predictions(n, -1);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
  Progress progress(n, "eval");
  auto worker = [&](int t, size_t begin, size_t end) {
    try {
      EngineInstance& inst = *engines[size_t(t)];
      std::vector<float> logits;
      for (size_t i = begin; i < end; i += size_t(o.batch)) {
        const int items = static_cast<int>(std::min(end - i, size_t(o.batch)));
        for (int k = 0; k < items; ++k) {
          const PlanarImage im = data.image(o.first + i + size_t(k));
          prep.run(view_of(im), inst.engine().input(k).data());
        }
        inst.invoke_items(items);
        for (int k = 0; k < items; ++k) {
          inst.logits(&logits, k);
          predictions[i + size_t(k)] = argmax(logits);
          progress.advance();
        }
      }
    } catch (...) {
      errors[size_t(t)] = std::current_exception();
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    const size_t begin = n * size_t(t) / size_t(threads), end = n * size_t(t + 1) / size_t(threads);
    if (t + 1 == threads) {
      worker(t, begin, end);  // the calling thread takes the last slice
    } else {
      pool.emplace_back(worker, t, begin, end);
    }
  }
  for (std::thread& th : pool) th.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.finish("");
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);

  size_t correct = 0;
  const size_t n_classes = size_t(data.n_classes());
  std::vector<size_t> class_total(n_classes, 0), class_correct(n_classes, 0);
  for (size_t i = 0; i < n; ++i) {
    const int label = data.label(o.first + i);
    ++class_total[size_t(label)];
    if (predictions[i] == label) {
      ++correct;
      ++class_correct[size_t(label)];
    }
  }
  const double top1 = 100.0 * double(correct) / double(n);
  const double rate = secs > 0 ? double(n) / secs : 0.0;
  if (o.json) {
    nlohmann::ordered_json per_class = nlohmann::ordered_json::array();
    for (size_t c = 0; c < n_classes; ++c)
      per_class.push_back({{"class", data.class_names()[c]},
                           {"images", class_total[size_t(c)]},
                           {"correct", class_correct[size_t(c)]}});
    nlohmann::ordered_json j = {{"model", model.path()},   {"images_file", images},   {"first", o.first},
                              {"images", n},             {"correct", correct},      {"top1", top1 / 100.0},
                              {"seconds", secs},         {"images_per_second", rate},
                              {"threads", threads},      {"batch", o.batch},        {"kernels", kernels.name},
                              {"per_class", per_class},
                              {"predictions", predictions}};
    if (!o.data.empty()) {
      j["data"] = data.description();
      j["skipped"] = data.skipped();
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("top-1 %.2f%% (%zu/%zu), %.1f img/s, %s kernels, %d thread%s, batch %d\n", top1, correct, n, rate,
              kernels.name, threads, threads == 1 ? "" : "s", o.batch);
}

}  // namespace

void register_eval_command(CLI::App& app) {
  auto opts = std::make_shared<EvalOptions>();
  CLI::App* cmd =
      app.add_subcommand("eval", "top-1 accuracy on the CIFAR-10 test set, or on your own data (--data DIR)");
  cmd->add_option("--model,-m", opts->model, "a .tzm file or a reference model name (mcunet-cifar10, ...)")
      ->required();
  cmd->add_option("--images", opts->images,
                  "a CIFAR-10 binary file, plain or gzip (default: <data>/cifar10/test_batch.bin.gz)");
  cmd->add_option("--data", opts->data,
                  "your own data: an image folder (DIR/<class>/<image>.png|jpg|bmp, classes = folder names, "
                  "sorted) or CIFAR-10 binary files (docs/data.md)");
  cmd->add_option("--bad-images", opts->bad_images,
                  "an unreadable image in --data: stop (default: fail naming it) or skip (leave it out, list it)")
      ->check(CLI::IsMember({"stop", "skip"}));
  add_int_option(cmd, "--first", &opts->first, 0, INT64_MAX, "index of the first image (default 0)");
  cmd->add_option("--limit,-n", opts->limit, "evaluate at most N images (default: all)")
      ->check(CLI::Range(1, 100000000));
  cmd->add_option("--batch", opts->batch, "images each engine runs at once (default 1; no effect on results)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--threads,-j", opts->threads, "independent engines running in parallel (default 1)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--kernels", opts->kernels, "kernel set: best (default) or ref")
      ->check(CLI::IsMember({"best", "ref"}));
  cmd->add_flag("--json", opts->json, "print JSON (with per-class counts and every prediction)");
  cmd->callback([opts]() { run_eval(*opts); });
}

}  // namespace tinyzo::cli
