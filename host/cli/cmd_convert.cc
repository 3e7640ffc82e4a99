// `tinyzo convert IN --requant fixed -o OUT`: rewrites a model's conv and fully-connected ops from
// the paper's float-scale requantization to TFLite's fixed-point rule (host/models/requant_convert.h,
// docs/semantics.md). Every other op is copied unchanged. `--tflite` (implies --requant fixed) also
// rewrites the ops TFLite cannot express (residual add, global average pool, float head) to TFLite
// op types, so that `tinyzo export OUT --tflite X.tflite` can write the model; the result is checked
// by building that .tflite in memory. The output is written atomically.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "data/cifar10.h"
#include "data/data_dir.h"
#include "data/data_source.h"
#include "data/preprocess.h"
#include "models/model_store.h"
#include "models/requant_convert.h"
#include "models/tflite_writer.h"
#include "models/tzm_writer.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo::cli {

namespace {

struct ConvertArgs {
  std::string model;
  std::string requant;
  std::string out;
  bool clamp_bias = false;
  bool tflite = false;
  size_t calib = 0;
  std::string data;
  std::string bad_images = "stop";
};

// The int8 quantization of the float logits a TFLite converter would choose from a representative
// data set: the source model's logits over the first `n` images of the set (the CIFAR-10 test
// batch of the data directory, or --data), range widened to contain 0, scale = range / 255,
// zero = round(-128 - min / scale).
void calibrate_head(const ModelView& view, const ConvertArgs& o, tinyzo::ConvertOptions* opts) {
  const TzmTensor& out = view.tensor(view.output_tensor());
  if (out.dtype != uint8_t(DType::kFloat32)) throw CliError("--calib: the model output is not float32 logits");
  std::unique_ptr<DataSource> source =
      o.data.empty() ? open_cifar10_files({cifar10_test_batch_path(resolve_data_dir())})
                     : open_data_source(o.data, parse_bad_images(o.bad_images));
  if (o.calib > source->size())
    throw CliError("--calib " + std::to_string(o.calib) + ": the set has only " + std::to_string(source->size()) + " images");
  const ImagePreprocessor prep(view.tensor(view.input_tensor()));
  EngineInstance inst(view, kernels_by_name("best"));
  if (inst.engine().input().size() != prep.output_elements())
    throw CliError("--calib: the model input holds " + std::to_string(inst.engine().input().size()) +
                   " values, the preprocessing makes " + std::to_string(prep.output_elements()));
  double lo = 0.0, hi = 0.0;
  std::vector<float> logits;
  for (size_t i = 0; i < o.calib; ++i) {
    const PlanarImage im = source->image(i);
    prep.run(view_of(im), inst.engine().input().data());
    inst.invoke();
    inst.logits(&logits);
    for (float v : logits) {
      lo = std::min(lo, double(v));
      hi = std::max(hi, double(v));
    }
  }
  const double scale = (hi - lo) / 255.0;
  if (!(scale > 0.0)) throw CliError("--calib: the logits are all 0 on the calibration images");
  opts->head_scale = float(scale);
  opts->head_zero = int32_t(std::max(-128.0, std::min(127.0, std::round(-128.0 - lo / double(opts->head_scale)))));
  std::printf("--calib: logits of %zu images in [%.6g, %.6g]\n", o.calib, lo, hi);
}

void run_convert(const ConvertArgs& o) {
  if (o.requant.empty() && !o.tflite) throw CliError("convert: give --requant fixed or --tflite (see tinyzo --help)", 2);
  if (!o.requant.empty() && o.requant != "fixed")
    throw CliError("--requant: only 'fixed' is supported, got '" + o.requant + "'");
  const LoadedModel model = load_model_arg(o.model);
  tinyzo::ConvertOptions opts;
  opts.clamp_bias = o.clamp_bias;
  opts.tflite = o.tflite;
  if (o.calib > 0) {
    if (!o.tflite) throw CliError("--calib: only with --tflite (it quantizes the float head)");
    calibrate_head(model.view(), o, &opts);
  }
  const RequantConversion c = convert_to_fixed_point(model.view(), opts);
  if (o.tflite) {
    // The promise of --tflite: the result exports. Checked before anything is written.
    AlignedModelBytes aligned(c.bytes);
    ModelView v;
    if (v.init(aligned.data(), aligned.size()) != Status::kOk)
      throw CliError("convert --tflite: internal: the converted model is invalid: " + std::string(v.error()));
    write_tflite(v, o.out);
  }
  write_file_atomic(o.out, c.bytes.data(), c.bytes.size());
  std::printf("%s: %d conv/fully-connected ops converted to fixed-point requantization, %d ops kept -> %s\n",
              model.path().c_str(), c.converted_ops, c.kept_ops, o.out.c_str());
  if (o.tflite) {
    std::printf("--tflite: %d ops rewritten to TFLite op types", c.remapped_ops);
    if (c.head_scale > 0.f) std::printf("; float head quantized to int8, output scale %.9g, zero point %d", c.head_scale, c.head_zero);
    std::printf("\n");
  }
  if (c.wrapping_channels > 0)
    std::printf("note: %d channels have a bias for which acc + bias can wrap in int32 (TFLite arithmetic); %s\n",
                c.wrapping_channels,
                o.clamp_bias ? (std::to_string(c.clamped_biases) + " biases clamped (--clamp-bias)").c_str()
                             : "--clamp-bias clamps them so they saturate as in the float-scale model");
}

}  // namespace

void register_convert_command(CLI::App& app) {
  auto o = std::make_shared<ConvertArgs>();
  CLI::App* cmd =
      app.add_subcommand("convert", "rewrite a model's conv/FC requantization as TFLite fixed-point (format 1.1), --tflite: fully TFLite-expressible");
  cmd->add_option("model", o->model, "a .tzm file or a reference model name (mcunet-cifar10, ...)")->required();
  cmd->add_option("--requant", o->requant, "the requantization to convert to: fixed");
  cmd->add_flag("--tflite", o->tflite,
                "also rewrite add / global average pool / float head to TFLite op types, so tinyzo export can write it "
                "as a new .tflite (implies --requant fixed)");
  cmd->add_option("-o,--out", o->out, "the output .tzm")->required();
  cmd->add_option("--calib", o->calib,
                  "--tflite: choose the quantized head's output range from the model's logits on the first N images "
                  "(of --data, default the CIFAR-10 test batch) instead of the data-free weight bound");
  cmd->add_option("--data", o->data, "--calib: an image folder or CIFAR-10 files");
  cmd->add_option("--bad-images", o->bad_images, "--calib with --data: stop (default) or skip unreadable images");
  cmd->add_flag("--clamp-bias", o->clamp_bias,
                "clamp biases for which acc + bias could wrap in int32 (the float-scale model's dead channels)");
  cmd->callback([o] { run_convert(*o); });
}

}  // namespace tinyzo::cli
