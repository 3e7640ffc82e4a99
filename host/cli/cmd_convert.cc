// `tinyzo convert IN --requant fixed -o OUT`: rewrites a model's conv and fully-connected ops from
// the paper's float-scale requantization to TFLite's fixed-point rule (host/models/requant_convert.h,
// docs/semantics.md). Every other op is copied unchanged. The output is written atomically.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "models/model_store.h"
#include "models/requant_convert.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo::cli {

namespace {

struct ConvertArgs {
  std::string model;
  std::string requant;
  std::string out;
  bool clamp_bias = false;
};

void run_convert(const ConvertArgs& o) {
  if (o.requant != "fixed") throw CliError("--requant: only 'fixed' is supported, got '" + o.requant + "'");
  const LoadedModel model = load_model_arg(o.model);
  tinyzo::ConvertOptions opts;
  opts.clamp_bias = o.clamp_bias;
  const RequantConversion c = convert_to_fixed_point(model.view(), opts);
  write_file_atomic(o.out, c.bytes.data(), c.bytes.size());
  std::printf("%s: %d conv/fully-connected ops converted to fixed-point requantization, %d ops kept -> %s\n",
              model.path().c_str(), c.converted_ops, c.kept_ops, o.out.c_str());
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
      app.add_subcommand("convert", "rewrite a model's conv/FC requantization as TFLite fixed-point (format 1.1)");
  cmd->add_option("model", o->model, "a .tzm file or a reference model name (mcunet-cifar10, ...)")->required();
  cmd->add_option("--requant", o->requant, "the requantization to convert to: fixed")->required();
  cmd->add_option("-o,--out", o->out, "the output .tzm")->required();
  cmd->add_flag("--clamp-bias", o->clamp_bias,
                "clamp biases for which acc + bias could wrap in int32 (the float-scale model's dead channels)");
  cmd->callback([o] { run_convert(*o); });
}

}  // namespace tinyzo::cli
