#include "train/train_config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <system_error>
#include <type_traits>

#include "data/cifar10.h"
#include "data/corruptions.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "models/fused_plan.h"
#include "models/model_store.h"
#include "util/rng.h"
#include "tinyzo/engine.h"
#include "tinyzo/fusion.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/planner.h"
#include "tinyzo/train/memory_model.h"

namespace tinyzo {

namespace {

using Json = nlohmann::json;

constexpr double kIntMax = double(INT32_MAX);

}  // namespace

void check_status(Status s, const std::string& what) {
  if (s != Status::kOk) throw CliError(what + ": " + status_name(s));
}

const std::vector<Setting>& train_settings() {
  // The order is config_to_json's, hence part of every run's fingerprint.
  static const std::vector<Setting> kSettings = {
      {"model", "--model,-m", &TrainConfig::model, 0, 0, nullptr,
       "a .tzm file or a reference model name (default mcunet-cifar10)"},
      {"kernels", "--kernels", &TrainConfig::kernels, 0, 0, "best|ref", "kernel set: best (default) or ref"},
      {"corruption", "--corruption,-c", &TrainConfig::corruption, 0, 0, nullptr,
       "a CIFAR-10-C corruption (gaussian_noise, ..., see tinyzo corrupt) or none (default gaussian_noise)"},
      {"severity", "--severity", &TrainConfig::severity, 1, 5, nullptr,
       "corruption severity 1..5 (default 5)"},
      {"corruption_seed", "--corruption-seed", &TrainConfig::corruption_seed, 0, 0, nullptr,
       "seed of the random corruptions (default 0)"},
      // The CIFAR-10 test batch holds 1,000 images per class.
      {"train_per_class", "--train-per-class", &TrainConfig::train_per_class, 1, 1000, nullptr,
       "training images per class, 1..1000 (default 100)"},
      {"val_per_class", "--val-per-class", &TrainConfig::val_per_class, 1, 1000, nullptr,
       "validation images per class, 1..1000 (default 10)"},
      {"test_per_class", "--test-per-class", &TrainConfig::test_per_class, 1, 1000, nullptr,
       "test images per class, 1..1000 (default 90)"},
      {"split_seed", "--split-seed", &TrainConfig::split_seed, 0, 0, nullptr,
       "seed of the class-balanced split (default 0)"},
      {"augment", "--augment,!--no-augment", &TrainConfig::augment, 0, 0, nullptr,
       "training augmentation: random-resized-crop, flip, colour jitter (default on)"},
      {"layers", "--layers,-l", &TrainConfig::layers, 0, 0, nullptr,
       "paper | all | op names (optionally :wp / :np), comma-separated (default paper)"},
      {"mode", "--mode", &TrainConfig::mode, 0, 0, nullptr,
       "wp | np | threshold:N | auto (default threshold:5)"},
      // 1e9 KB is far beyond any device and keeps budget_kb * 1024 exact in size_t.
      {"budget_kb", "--budget-kb", &TrainConfig::budget_kb, 0, 1e9, nullptr,
       "SRAM budget for --mode auto, KB (default 0 = none)"},
      // The trainer keeps at most 256 per-query coefficients per tensor.
      {"queries_w", "--queries-w", &TrainConfig::queries_w, 1, 256, nullptr,
       "WP queries per weight tensor, 1..256 (default 25)"},
      {"queries_b", "--queries-b", &TrainConfig::queries_b, 1, 256, nullptr,
       "WP queries per bias tensor, 1..256 (default 25)"},
      {"queries_np", "--queries-np", &TrainConfig::queries_np, 1, 256, nullptr,
       "NP queries per layer, 1..256 (default 50)"},
      {"sigma_w", "--sigma-w", &TrainConfig::sigma_w, 1, 127, nullptr,
       "WP weight perturbation, int8 LSBs 1..127 (default 1)"},
      {"sigma_b", "--sigma-b", &TrainConfig::sigma_b, 1, kIntMax, nullptr,
       "WP bias perturbation, int32 LSBs (default 100)"},
      {"mu", "--mu", &TrainConfig::mu, 1, 127, nullptr,
       "NP output perturbation, int8 LSBs 1..127 (default 5)"},
      {"two_sided", "--two-sided,!--one-sided", &TrainConfig::two_sided, 0, 0, nullptr,
       "antithetic differences (default one-sided)"},
      {"gns", "--gns", &TrainConfig::gns, 0, 0, "none|linear|sqrt",
       "gradient-norm scaling: none | linear | sqrt (default linear)"},
      {"rounding", "--rounding", &TrainConfig::rounding, 0, 0, "nearest|stochastic",
       "integer update rounding: nearest | stochastic"},
      {"estimation", "--estimation", &TrainConfig::estimation, 0, 0, "layer|model",
       "layer (prefix reuse) | model (MeZO-like)"},
      {"update_bias", "--update-bias,!--no-update-bias", &TrainConfig::update_bias, 0, 0, nullptr,
       "train the biases too (default on)"},
      {"qas", "--qas,!--no-qas", &TrainConfig::qas, 0, 0, nullptr,
       "quantization-aware scaling of the integer update (default on; off = the paper's ablation)"},
      // Beyond the paper (docs/zo-search.md). config_fingerprint() leaves these out at their
      // defaults, so the runs made before they existed keep their fingerprints.
      {"baseline", "--baseline", &TrainConfig::baseline, 0, 0, "none|mean",
       "control variate of the loss differences: none | mean (leave-one-out mean of the other queries)"},
      {"lr_wp", "--lr-wp", &TrainConfig::lr_wp, 0, 1e6, nullptr,
       "learning-rate multiplier of the WP layers, 0..1e6 (default 1)"},
      {"lr_np", "--lr-np", &TrainConfig::lr_np, 0, 1e6, nullptr,
       "learning-rate multiplier of the NP layers, 0..1e6 (default 1)"},
      {"momentum", "--momentum", &TrainConfig::momentum, 0, 0.999, nullptr,
       "momentum of the gradient estimate, 0..0.999: a bias-corrected running average of each step's "
       "estimate, 4 bytes of SRAM per trained parameter (default 0 = off, the paper)"},
      {"step_norm", "--step-norm", &TrainConfig::step_norm, 0, 0, "none|layer",
       "per-layer step normalisation: none | layer (each layer moves lr * ||W|| per step, whatever its "
       "gradient's scale; for dense training)"},
      {"params", "--params", &TrainConfig::params, 0, 0, "all|bias",
       "what the trained layers learn: all (weights and biases, default) | bias (the biases alone, every "
       "layer's perturbed per sample at once; needs --estimation model; docs/zo-search.md)"},
      {"bias_mu", "--bias-mu", &TrainConfig::bias_mu, 0, 127, nullptr,
       "--params bias: every channel's shift in output LSBs, fractions allowed, 0..127 (default 0 = --mu)"},
      {"plus_biases", "--plus-biases", &TrainConfig::plus_biases, 0, 256, nullptr,
       "also train the biases of every other conv, per sample and model-wise, with this many queries per "
       "sample, 0..256 (a second trainer on the same engine, shift --bias-mu; default 0 = off, the paper)"},
      {"anchor", "--anchor", &TrainConfig::anchor, 0, 1, nullptr,
       "decay towards the start model: every update also pulls each trained weight and bias this fraction "
       "of the way back to the model's value, 0..1 (no memory; default 0 = off, the paper)"},
      {"batch", "--batch,-b", &TrainConfig::batch, 1, 100000, nullptr, "batch size B (default 100)"},
      {"epochs", "--epochs,-e", &TrainConfig::epochs, 1, kIntMax, nullptr, "epochs (default 50)"},
      // A float learning rate: beyond 1e6 nothing is left of an int8 weight anyway.
      {"lr", "--lr", &TrainConfig::lr, 0, 1e6, nullptr,
       "initial learning rate, 0..1e6 (default 0 = 0.01 * B / 256)"},
      {"max_steps", "--max-steps", &TrainConfig::max_steps, 0, kIntMax, nullptr,
       "train this many steps in all (the cosine spans them; default 0 = epochs)"},
      {"seed", "--seed", &TrainConfig::seed, 0, 0, nullptr,
       "run seed 0..2^64-1: perturbations, rounding, batch order, augmentation"},
      {"threads", "--threads,-j", &TrainConfig::threads, 1, 256, nullptr,
       "threads for the queries of a step and for evaluation, 1..256 (default 1; no effect on results)"},
      {"engine_batch", "--engine-batch", &TrainConfig::engine_batch, 1, 64, nullptr,
       "queries each thread runs as one batch through the network, 1..64 (default 16; no effect on results)"},
      {"one_layer_per_pass", "--one-layer-per-pass,!--all-layers-per-pass", &TrainConfig::one_layer_per_pass,
       0, 0, nullptr,
       "stream the batch once per trained layer: one NP accumulator for all NP layers, the device's memory "
       "saving (docs/memory.md); more prefix forwards, no effect on results (default off)"},
      {"fuse", "--fuse,!--no-fuse", &TrainConfig::fuse, 0, 0, nullptr,
       "run the trainer's engine with fused row-band blocks (the trained layers outside them): the device's "
       "smaller arena (docs/memory.md); no effect on results (default off)"},
      {"out", "--out,-o", &TrainConfig::out, 0, 0, nullptr, "the run directory (default runs/train)"},
      {"data", "--data", &TrainConfig::data, 0, 0, nullptr,
       "cifar10 (default: the data directory's CIFAR-10 test batch, the paper's protocol), an image folder "
       "(DIR/<class>/<image>.png|jpg|bmp) or CIFAR-10 binary files (docs/data.md)"},
      {"bad_images", "--bad-images", &TrainConfig::bad_images, 0, 0, "stop|skip",
       "an unreadable image in --data: stop (default: fail naming it) or skip (leave it out, list it)"},
  };
  return kSettings;
}

const Setting* find_setting(const std::string& key) {
  for (const Setting& s : train_settings())
    if (key == s.key) return &s;
  return nullptr;
}

std::string setting_flag(const Setting& s) {
  const std::string f = s.flags;
  size_t start = 0;
  while (start < f.size()) {
    const size_t comma = f.find(',', start);
    const std::string name = f.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (name.rfind("--", 0) == 0) return name;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return f;
}

std::string SettingSources::describe(const std::string& key) const {
  const auto it = where_.find(key);
  return it != where_.end() ? it->second : "config key '" + key + "'";
}

// ---- strict text parsing

std::string parse_int_text(const std::string& text, int64_t min, int64_t max, int64_t* out) {
  const std::string range = std::to_string(min) + ".." + std::to_string(max);
  int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto r = std::from_chars(text.data(), end, v);
  if (text.empty() || r.ptr != end || (r.ec != std::errc() && r.ec != std::errc::result_out_of_range))
    return "'" + text + "' is not an integer (expected " + range + ")";
  if (r.ec == std::errc::result_out_of_range || v < min || v > max) return text + " is outside " + range;
  *out = v;
  return "";
}

std::string parse_u64_text(const std::string& text, uint64_t* out) {
  uint64_t v = 0;
  const char* end = text.data() + text.size();
  // from_chars takes no sign for an unsigned type: "-1" is refused, not wrapped.
  const auto r = std::from_chars(text.data(), end, v);
  if (text.empty() || r.ptr != end || (r.ec != std::errc() && r.ec != std::errc::result_out_of_range))
    return "'" + text + "' is not a non-negative integer (expected 0..18446744073709551615)";
  if (r.ec == std::errc::result_out_of_range) return text + " is outside 0..18446744073709551615";
  *out = v;
  return "";
}

namespace {

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // The shortest text that reads back the same (1e+06, not 1000000.0000000001).
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

}  // namespace

std::string parse_real_text(const std::string& text, double min, double max, double* out) {
  double v = 0;
  const char* end = text.data() + text.size();
  const auto r = std::from_chars(text.data(), end, v);
  if (text.empty() || r.ptr != end) return "'" + text + "' is not a number";
  if (r.ec == std::errc::result_out_of_range || !std::isfinite(v)) return text + " is not a finite number";
  if (r.ec != std::errc()) return "'" + text + "' is not a number";
  if (v < min || v > max) return text + " is outside " + number_text(min) + ".." + number_text(max);
  *out = v;
  return "";
}

// ---- one setting

namespace {

std::string choices_text(const char* choices) {
  std::string s = choices;
  for (char& c : s)
    if (c == '|') c = ',';
  return s;
}

bool in_choices(const char* choices, const std::string& v) {
  const std::string all = std::string("|") + choices + "|";
  return !v.empty() && v.find('|') == std::string::npos && all.find("|" + v + "|") != std::string::npos;
}

// The reason a value of setting `s` is refused, or "". The one range check of
// every path (text, JSON, a TrainConfig built in code).
std::string check_string(const Setting& s, const std::string& v) {
  if (s.choices != nullptr && !in_choices(s.choices, v))
    return "'" + v + "' is not one of " + choices_text(s.choices);
  if (v.empty()) return "is empty";
  return "";
}
std::string check_int(const Setting& s, int64_t v) {
  if (double(v) < s.min || double(v) > s.max)
    return std::to_string(v) + " is outside " + number_text(s.min) + ".." + number_text(s.max);
  return "";
}
std::string check_real(const Setting& s, double v) {
  if (!std::isfinite(v)) return "not a finite number";
  if (v < s.min || v > s.max)
    return number_text(v) + " is outside " + number_text(s.min) + ".." + number_text(s.max);
  return "";
}

// The reason `text` is refused for `s`; on success stores into `c` when given.
std::string apply_text(const Setting& s, const std::string& text, TrainConfig* c) {
  return std::visit(
      [&](auto member) -> std::string {
        using T = std::decay_t<decltype(std::declval<TrainConfig>().*member)>;
        if constexpr (std::is_same_v<T, std::string>) {
          const std::string why = check_string(s, text);
          if (why.empty() && c != nullptr) c->*member = text;
          return why;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (text != "true" && text != "false") return "'" + text + "' is not true or false";
          if (c != nullptr) c->*member = text == "true";
          return "";
        } else if constexpr (std::is_same_v<T, int>) {
          int64_t v = 0;
          const std::string why = parse_int_text(text, int64_t(s.min), int64_t(s.max), &v);
          if (why.empty() && c != nullptr) c->*member = int(v);
          return why;
        } else if constexpr (std::is_same_v<T, uint64_t>) {
          uint64_t v = 0;
          const std::string why = parse_u64_text(text, &v);
          if (why.empty() && c != nullptr) c->*member = v;
          return why;
        } else {
          double v = 0;
          const std::string why = parse_real_text(text, s.min, s.max, &v);
          if (why.empty() && c != nullptr) c->*member = v;
          return why;
        }
      },
      s.member);
}

// The reason the value `c` holds for `s` is refused, or "".
std::string check_value(const Setting& s, const TrainConfig& c) {
  return std::visit(
      [&](auto member) -> std::string {
        using T = std::decay_t<decltype(c.*member)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return check_string(s, c.*member);
        } else if constexpr (std::is_same_v<T, int>) {
          return check_int(s, c.*member);
        } else if constexpr (std::is_same_v<T, double>) {
          return check_real(s, c.*member);
        } else {
          return "";  // bool, uint64: every value is one
        }
      },
      s.member);
}

}  // namespace

std::string check_setting_text(const Setting& s, const std::string& text) {
  return apply_text(s, text, nullptr);
}

void set_setting_text(const Setting& s, const std::string& text, TrainConfig* c, const std::string& where) {
  const std::string why = apply_text(s, text, c);
  if (!why.empty()) throw CliError(where + ": " + why);
}

void set_setting_json(const Setting& s, const Json& v, TrainConfig* c, const std::string& where) {
  std::visit(
      [&](auto member) {
        using T = std::decay_t<decltype(c->*member)>;
        // Strict typing: an int key takes only an integer, a bool only true/false.
        if constexpr (std::is_same_v<T, std::string>) {
          if (!v.is_string()) throw CliError(where + ": expected a string");
          c->*member = v.get<std::string>();
        } else if constexpr (std::is_same_v<T, bool>) {
          if (!v.is_boolean()) throw CliError(where + ": expected true or false");
          c->*member = v.get<bool>();
        } else if constexpr (std::is_same_v<T, int>) {
          if (!v.is_number_integer()) throw CliError(where + ": expected an integer");
          const bool neg = v.is_number_integer() && !v.is_number_unsigned();
          const int64_t x =
              neg ? v.get<int64_t>() : int64_t(std::min<uint64_t>(v.get<uint64_t>(), INT64_MAX));
          const std::string why = check_int(s, x);
          if (!why.empty()) throw CliError(where + ": " + why);
          c->*member = int(x);
        } else if constexpr (std::is_same_v<T, uint64_t>) {
          if (!v.is_number_unsigned()) throw CliError(where + ": expected a non-negative integer");
          c->*member = v.get<uint64_t>();
        } else {
          if (!v.is_number()) throw CliError(where + ": expected a number");
          c->*member = v.get<double>();
        }
      },
      s.member);
  const std::string why = check_value(s, *c);
  if (!why.empty()) throw CliError(where + ": " + why);
}

nlohmann::ordered_json config_to_json(const TrainConfig& c) {
  nlohmann::ordered_json j;
  for (const Setting& s : train_settings()) std::visit([&](auto member) { j[s.key] = c.*member; }, s.member);
  return j;
}

void apply_config_json(const Json& j, TrainConfig* c, const std::string& what, SettingSources* sources) {
  if (!j.is_object()) throw CliError(what + ": expected a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const std::string where = what + ": key '" + key + "'";
    const Setting* s = find_setting(key);
    if (s == nullptr) {
      if (key.rfind("_", 0) == 0) continue;  // "_comment" and other "_" keys are free text
      throw CliError(where + " is not a setting (see docs/training.md)");
    }
    set_setting_json(*s, *it, c, where);
    if (sources != nullptr) sources->set(key, where);
  }
}

Json parse_json_strict(const std::string& text, const std::string& what) {
  // Keys seen so far in each open object, innermost last.
  std::vector<std::vector<std::string>> open;
  std::string duplicate;
  const Json::parser_callback_t cb = [&](int, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      open.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      if (!open.empty()) open.pop_back();
    } else if (event == Json::parse_event_t::key && !open.empty()) {
      const std::string key = parsed.get<std::string>();
      std::vector<std::string>& keys = open.back();
      if (std::find(keys.begin(), keys.end(), key) != keys.end() && duplicate.empty()) duplicate = key;
      keys.push_back(key);
    }
    return true;
  };
  Json j;
  try {
    j = Json::parse(text, cb);
  } catch (const Json::exception& e) {
    throw CliError(what + ": invalid JSON (" + e.what() + ")");
  }
  if (!duplicate.empty())
    throw CliError(what + ": key '" + duplicate + "' appears twice in one object (which one was meant?)");
  return j;
}

TrainConfig load_config_file(const std::string& path, SettingSources* sources) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, kMaxConfigBytes, "JSON config");
  const Json j = parse_json_strict(std::string(bytes.begin(), bytes.end()), path);
  TrainConfig c;
  apply_config_json(j, &c, path, sources);
  return c;
}

size_t config_train_images(const TrainConfig& c) {
  return size_t(kCifar10Classes) * size_t(std::max(c.train_per_class, 0));
}

void validate_config(const TrainConfig& c, const SettingSources* sources) {
  const SettingSources none;
  const SettingSources& src = sources != nullptr ? *sources : none;
  for (const Setting& s : train_settings()) {
    const std::string why = check_value(s, c);
    if (!why.empty()) throw CliError(src.describe(s.key) + ": " + why);
  }
  if (c.corruption != "none") {
    try {
      (void)parse_corruption(c.corruption);
    } catch (const CliError& e) {
      throw CliError(src.describe("corruption") + ": " + e.what());
    }
  }
  try {
    (void)parse_mode(c.mode);
  } catch (const CliError& e) {
    throw CliError(src.describe("mode") + ": " + e.what());
  }
  if (c.plus_biases > 0 && c.params == "bias")
    throw CliError(src.describe("plus_biases") +
                   ": not with --params bias (the layers train their biases alone already; use --layers all)");
  // The step arithmetic in 64 bits: epochs x ceil(n_train / batch) must fit
  // the run's step counter, or the count would wrap (to a tiny run that
  // reports success).
  const uint64_t n_train = config_train_images(c);
  const uint64_t spe = (n_train + uint64_t(c.batch) - 1) / uint64_t(c.batch);
  const uint64_t total = c.max_steps > 0 ? uint64_t(c.max_steps) : uint64_t(c.epochs) * spe;
  if (total > kMaxTrainingSteps)
    throw CliError(src.describe("epochs") + ": " + std::to_string(c.epochs) + " epochs x " +
                   std::to_string(spe) + " steps per epoch (10 x " + std::to_string(c.train_per_class) +
                   " images, batch " + std::to_string(c.batch) + ") = " + std::to_string(total) +
                   " steps, more than the " + std::to_string(kMaxTrainingSteps) + " a run can count");
}

double effective_lr(const TrainConfig& c) { return c.lr > 0 ? c.lr : 0.01 * double(c.batch) / 256.0; }

void apply_data_defaults(TrainConfig* c, const SettingSources& sources) {
  if (c->data != TrainConfig{}.data && !sources.has("corruption")) c->corruption = "none";
}

std::string config_fingerprint(const TrainConfig& c) {
  nlohmann::ordered_json j = config_to_json(c);
  if (c.data == TrainConfig{}.data) j.erase("data");
  if (c.bad_images == TrainConfig{}.bad_images) j.erase("bad_images");
  j.erase("threads");
  j.erase("engine_batch");
  j.erase("one_layer_per_pass");
  j.erase("fuse");  // fused blocks are bitwise the unfused ops (tests/fused_test.cc)  // bitwise the same weights (ZoTrainer.OneLayerPerPassGivesBitwiseTheSameWeights)
  j.erase("out");
  j.erase("kernels");  // every kernel set is bit-exact with the reference
  // Keys added after runs existed: absent at their defaults (those runs trained exactly so).
  if (c.baseline == "none") j.erase("baseline");
  if (c.lr_wp == 1) j.erase("lr_wp");
  if (c.lr_np == 1) j.erase("lr_np");
  if (c.momentum == 0) j.erase("momentum");
  if (c.step_norm == "none") j.erase("step_norm");
  if (c.params == "all") j.erase("params");
  if (c.bias_mu == 0) j.erase("bias_mu");
  if (c.plus_biases == 0) j.erase("plus_biases");
  if (c.anchor == 0) j.erase("anchor");
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_name64(j.dump())));
  return hex;
}

// ------------------------------------------------------------------ layers

int op_block(const std::string& name) {
  for (const char* prefix : {"1.", "blocks."}) {
    const size_t n = std::char_traits<char>::length(prefix);
    if (name.compare(0, n, prefix) != 0) continue;
    size_t i = n;
    int k = 0;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9' && k < 100000) k = k * 10 + (name[i++] - '0');
    if (i > n && (i == name.size() || name[i] == '.')) return k;
  }
  return -1;
}

int find_op_by_name(const ModelView& m, const std::string& name) {
  for (int i = 0; i < m.n_ops(); ++i)
    if (name == m.op(i).name) return i;
  if (name.size() > 1 && name[0] == '#' &&
      std::all_of(name.begin() + 1, name.end(), [](char c) { return c >= '0' && c <= '9'; }) && name.size() < 10) {
    const int v = std::stoi(name.substr(1));
    if (v < m.n_ops()) return v;
  }
  return -1;
}

ModeRule parse_mode(const std::string& s) {
  ModeRule r;
  if (s == "wp") {
    r.kind = ModeRule::kWeight;
  } else if (s == "np") {
    r.kind = ModeRule::kNode;
  } else if (s == "auto") {
    r.kind = ModeRule::kAuto;
  } else if (s.rfind("threshold:", 0) == 0 && s.size() > 10 && s.size() < 16 &&
             std::all_of(s.begin() + 10, s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    r.kind = ModeRule::kThreshold;
    r.threshold = std::stoi(s.substr(10));
  } else {
    throw CliError("--mode '" + s + "': expected wp, np, threshold:N or auto");
  }
  return r;
}

ConvDims conv_dims(const ModelView& m, int op) {
  const TzmOp& o = m.op(op);
  ConvDims d;
  d.d_w = tensor_elements(m.tensor(o.inputs[1]));
  d.c_out = size_t(m.tensor(o.output).dims[2]);
  d.d_out = tensor_elements(m.tensor(o.output));
  d.d_in = tensor_elements(m.tensor(o.inputs[0]));
  const int groups = o.params[kConvGroups];
  d.depthwise = groups > 1 && groups == m.tensor(o.inputs[0]).dims[2];
  return d;
}

bool is_conv(const ModelView& m, int op) { return static_cast<OpType>(m.op(op).type) == OpType::kConv2d; }

namespace {

// The paper's released CIFAR-10-C set (METHOD §4), as the .pth and .pkl name them.
constexpr const char* kPaperLayers[][2] = {
    {"1.4.conv.0", "blocks.4.pointwise1"},
    {"1.5.conv.0", "blocks.5.pointwise1"},
    {"1.6.conv.0", "blocks.6.pointwise1"},
    {"1.7.conv.0", "blocks.7.pointwise1"},
};

}  // namespace

std::vector<int> paper_layer_ops(const ModelView& m, const std::string& flag) {
  std::vector<int> ops;
  for (const auto& names : kPaperLayers) {
    int op = find_op_by_name(m, names[0]);
    if (op < 0) op = find_op_by_name(m, names[1]);
    if (op < 0 || !is_conv(m, op))
      throw CliError(flag + " paper: the model has no conv named " + names[0] +
                     " (the paper's layer set is defined on MCUNet-5fps, e.g. --model mcunet-cifar10)");
    ops.push_back(op);
  }
  return ops;
}

std::vector<LayerChoice> resolve_layers(const ModelView& m, const std::string& spec, const ModeRule& mode,
                                        const AutoModeContext& ctx) {
  struct Pending {
    int op;
    int forced;  // -1 = from --mode, 0 = WP, 1 = NP
  };
  std::vector<Pending> picked;
  auto add = [&](int op, int forced) {
    for (Pending& p : picked)
      if (p.op == op) {
        if (forced >= 0) p.forced = forced;
        return;
      }
    picked.push_back(Pending{op, forced});
  };
  std::stringstream ss(spec);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    tok.erase(0, tok.find_first_not_of(" \t"));
    tok.erase(tok.find_last_not_of(" \t") + 1);
    if (tok.empty()) continue;
    int forced = -1;
    const size_t colon = tok.rfind(':');
    if (colon != std::string::npos) {
      const std::string suffix = tok.substr(colon + 1);
      if (suffix != "wp" && suffix != "np")
        throw CliError("--layers: '" + tok + "': the suffix must be :wp or :np");
      forced = suffix == "np" ? 1 : 0;
      tok = tok.substr(0, colon);
    }
    if (tok == "paper") {
      for (int op : paper_layer_ops(m, "--layers")) add(op, forced);
    } else if (tok == "all") {
      for (int i = 0; i < m.n_ops(); ++i)
        if (is_conv(m, i)) add(i, forced);
    } else {
      const int op = find_op_by_name(m, tok);
      if (op < 0) throw CliError("--layers: the model has no op named '" + tok + "' (see tinyzo info)");
      if (!is_conv(m, op)) throw CliError("--layers: op '" + tok + "' is not a Conv2d; only convs can be trained");
      add(op, forced);
    }
  }
  if (picked.empty()) throw CliError("--layers '" + spec + "': no layers");
  std::sort(picked.begin(), picked.end(), [](const Pending& a, const Pending& b) { return a.op < b.op; });

  std::vector<LayerChoice> out;
  for (const Pending& p : picked) {
    LayerChoice c;
    c.op = p.op;
    switch (mode.kind) {
      case ModeRule::kWeight: c.node = false; break;
      case ModeRule::kNode: c.node = true; break;
      case ModeRule::kThreshold: c.node = op_block(m.op(p.op).name) > mode.threshold; break;
      case ModeRule::kAuto: {
        const ConvDims d = conv_dims(m, p.op);
        c.node = double(d.d_out) <= kAutoNodeFactor * double(d.d_w);
        break;
      }
    }
    if (p.forced >= 0) c.node = p.forced == 1;
    out.push_back(c);
  }
  if (mode.kind == ModeRule::kAuto && ctx.budget_kb > 0) {
    // Over budget: move NP layers (not forced) to WP, the biggest saving first.
    const size_t budget = size_t(ctx.budget_kb * 1024.0);
    for (;;) {
      const size_t now = predict_training_memory(m, out, ctx.n_queries, ctx.batch).total_bytes();
      if (now <= budget) break;
      size_t best = now;
      int best_i = -1;
      for (size_t i = 0; i < out.size(); ++i) {
        if (!out[i].node || picked[i].forced == 1) continue;
        out[i].node = false;
        const size_t v = predict_training_memory(m, out, ctx.n_queries, ctx.batch).total_bytes();
        out[i].node = true;
        if (v < best) {
          best = v;
          best_i = int(i);
        }
      }
      if (best_i < 0) break;  // nothing left to save; the caller reports the overrun
      out[size_t(best_i)].node = false;
    }
  }
  return out;
}

std::string layers_to_string(const ModelView& m, const std::vector<LayerChoice>& layers) {
  std::string s;
  for (const LayerChoice& l : layers) s += (s.empty() ? "" : ",") + std::string(m.op(l.op).name) + (l.node ? ":np" : ":wp");
  return s;
}

// ------------------------------------------------------------------ memory

MemoryPrediction predict_training_memory(const ModelView& m, const std::vector<LayerChoice>& layers, int n_queries,
                                         int batch, const ZoConfig* trainer, bool fuse) {
  const size_t nt = size_t(m.n_tensors());
  std::vector<BufferRequest> requests(nt);
  std::vector<size_t> offsets(nt);
  std::vector<int> scratch(plan_buffers_scratch_size(nt));
  InferenceMemory inf;
  check_status(plan_inference(m, Span<BufferRequest>(requests.data(), nt), Span<size_t>(offsets.data(), nt),
                              Span<int>(scratch.data(), scratch.size()), &inf),
               "memory model: planning the activations");
  std::vector<TrainLayer> tl;
  for (const LayerChoice& l : layers) tl.push_back(TrainLayer{l.op, l.node ? ZoMode::kNode : ZoMode::kWeight});
  std::vector<ZoLayerMemory> per(tl.size());
  ZoSettings s;
  s.n_queries = n_queries;
  s.batch = batch;
  if (trainer != nullptr) {
    s.n_queries_w = trainer->n_queries_w;
    s.n_queries_b = trainer->n_queries_b;
    s.n_queries_np = trainer->n_queries_np;
    s.two_sided = trainer->two_sided;
    s.one_layer_per_pass = trainer->one_layer_per_pass;
    s.momentum = static_cast<float>(trainer->momentum);
    s.bias_only = trainer->bias_only;
  }
  ZoMemory z;
  check_status(zo_memory(m, Span<const BufferRequest>(requests.data(), nt), Span<const TrainLayer>(tl.data(), tl.size()), s,
                  Span<ZoLayerMemory>(per.data(), per.size()), &z),
        "memory model: ZO accounting");
  int first = m.n_ops();
  for (const TrainLayer& l : tl) first = std::min(first, l.op);
  check_status(zo_place_workspace(Span<const BufferRequest>(requests.data(), nt), Span<const size_t>(offsets.data(), nt),
                                  first, &z),
               "memory model: placing the ZO workspace");
  MemoryPrediction p;
  p.inference_bytes = required_arena_bytes(m);
  if (fuse) {
    // The fused engine's own plan: the blocks it chooses with the trained ops
    // kept out, its arena, and the workspace's gap among its requests (tensors,
    // then one scratch request per block).
    std::vector<int> unfused;
    for (const LayerChoice& l : layers) unfused.push_back(l.op);
    const FusedPlan fp = plan_fused(m, unfused);
    p.inference_bytes = fp.required_bytes;
    check_status(zo_place_workspace(fp.req(), fp.offs(), first, &z), "memory model: placing the ZO workspace (fused)");
  }
  p.zo_extra_bytes = z.extra_bytes;
  p.persistent_bytes = z.persistent_bytes;
  p.workspace_bytes = z.workspace_bytes;
  for (const ZoLayerMemory& l : per) p.layer_extra_bytes.push_back(l.extra_bytes());
  return p;
}

}  // namespace tinyzo
