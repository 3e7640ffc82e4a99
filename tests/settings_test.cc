// The one definition of the settings (host/train_config.h): the strict
// parsers, the table used by flags, config files and the saved config, and
// the step arithmetic. The cases are the ones a probe found accepted one way
// and refused another (issue 14): inf / 1e309 learning rates stored as null,
// step counts that wrapped, seeds that wrapped or were clamped, duplicate
// keys, messages without the file or key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "util/errors.h"
#include "train/train_config.h"
#include "util/rng.h"

namespace tinyzo {
namespace {

namespace fs = std::filesystem;

// The CliError message of `f`, or "" when it does not throw.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const CliError& e) {
    return e.what();
  }
  return "";
}

TEST(SettingsText, IntegersAreStrict) {
  int64_t v = 0;
  EXPECT_EQ(parse_int_text("17", 1, 100, &v), "");
  EXPECT_EQ(v, 17);
  EXPECT_EQ(parse_int_text("-3", -5, 5, &v), "");
  EXPECT_EQ(v, -3);
  for (const char* bad : {"", " 1", "1 ", "+1", "1e3", "0x10", "12abc", "1.0", "--1"})
    EXPECT_NE(parse_int_text(bad, -100000, 100000, &v), "") << bad;
  EXPECT_NE(parse_int_text("0", 1, 5, &v), "");
  EXPECT_NE(parse_int_text("-5", 1, 5, &v), "");
  EXPECT_NE(parse_int_text("99999999999999999999", 1, 5, &v), "");  // past int64: refused, not wrapped
  EXPECT_EQ(v, -3);                                                 // untouched by every refusal
}

TEST(SettingsText, SeedsNeitherWrapNorClamp) {
  uint64_t v = 7;
  EXPECT_EQ(parse_u64_text("18446744073709551615", &v), "");
  EXPECT_EQ(v, UINT64_MAX);
  for (const char* bad : {"-1", "1e23", "18446744073709551616", "", "1.5", " 3"})
    EXPECT_NE(parse_u64_text(bad, &v), "") << bad;
  EXPECT_EQ(v, UINT64_MAX);
}

TEST(SettingsText, RealsMustBeFinite) {
  double v = 0;
  EXPECT_EQ(parse_real_text("0.5", 0, 1, &v), "");
  EXPECT_EQ(v, 0.5);
  EXPECT_EQ(parse_real_text("2e-3", 0, 1, &v), "");
  for (const char* bad : {"inf", "-inf", "nan", "1e309", "infinity", "", "0.5x", "0x1p-2"})
    EXPECT_NE(parse_real_text(bad, -1e9, 1e9, &v), "") << bad;
  EXPECT_NE(parse_real_text("inf", 0, 1e6, &v).find("not a finite number"), std::string::npos);
  EXPECT_NE(parse_real_text("1e309", 0, 1e6, &v).find("not a finite number"), std::string::npos);
  EXPECT_NE(parse_real_text("2", 0, 1, &v), "");
}

TEST(SettingsTable, EveryKeyOnceWithAFlag) {
  std::vector<std::string> keys, flags;
  for (const Setting& s : train_settings()) {
    keys.push_back(s.key);
    flags.push_back(setting_flag(s));
    EXPECT_EQ(setting_flag(s).rfind("--", 0), 0u) << s.key;
    EXPECT_NE(std::string(s.help), "") << s.key;
    EXPECT_EQ(find_setting(s.key), &s);
  }
  std::sort(keys.begin(), keys.end());
  std::sort(flags.begin(), flags.end());
  EXPECT_EQ(std::adjacent_find(keys.begin(), keys.end()), keys.end());
  EXPECT_EQ(std::adjacent_find(flags.begin(), flags.end()), flags.end());
  // The flag is the key with '-' for '_' (docs/training.md promises it).
  for (const Setting& s : train_settings()) {
    std::string k = s.key;
    std::replace(k.begin(), k.end(), '_', '-');
    EXPECT_EQ(setting_flag(s), "--" + k);
  }
  // config_to_json writes the table's keys in the table's order (the fingerprint depends on it).
  const nlohmann::ordered_json j = config_to_json(TrainConfig{});
  size_t i = 0;
  for (auto it = j.begin(); it != j.end(); ++it, ++i) EXPECT_EQ(it.key(), train_settings()[i].key);
  EXPECT_EQ(i, train_settings().size());
}

// A flag's text and a config file's JSON value are accepted or refused
// alike, for values at and past every range's edges.
TEST(SettingsTable, FlagsAndConfigFilesAgree) {
  for (const Setting& s : train_settings()) {
    std::vector<std::pair<std::string, nlohmann::json>> cases;
    if (std::holds_alternative<int TrainConfig::*>(s.member)) {
      for (double v : {s.min - 1, s.min, s.max, s.max + 1, 0.0, -1.0})
        cases.push_back({std::to_string(int64_t(v)), nlohmann::json(int64_t(v))});
    } else if (std::holds_alternative<double TrainConfig::*>(s.member)) {
      for (double v : {s.min, s.max, s.max * 2 + 1, -1.0, 0.25})
        cases.push_back({nlohmann::json(v).dump(), nlohmann::json(v)});
    } else if (std::holds_alternative<uint64_t TrainConfig::*>(s.member)) {
      cases.push_back({"0", nlohmann::json(0u)});
      cases.push_back({"18446744073709551615", nlohmann::json(UINT64_MAX)});
    } else if (std::holds_alternative<std::string TrainConfig::*>(s.member)) {
      cases.push_back({"", nlohmann::json("")});
      if (s.choices != nullptr) cases.push_back({"nonsense", nlohmann::json("nonsense")});
    }
    for (const auto& [text, value] : cases) {
      TrainConfig a, b;
      const bool by_flag = check_setting_text(s, text).empty();
      const bool by_json = error_of([&] { set_setting_json(s, value, &b, "f.json: key"); }).empty();
      EXPECT_EQ(by_flag, by_json) << s.key << " = " << text;
      if (by_flag) {
        set_setting_text(s, text, &a, setting_flag(s));
        EXPECT_EQ(config_to_json(a), config_to_json(b)) << s.key << " = " << text;
      }
    }
  }
}

TEST(SettingsTable, NonFiniteValuesNeverReachTheSavedConfig) {
  TrainConfig c;
  const Setting& lr = *find_setting("lr");
  EXPECT_NE(
      error_of([&] { set_setting_text(lr, "inf", &c, "--lr"); }).find("--lr: inf is not a finite number"),
      std::string::npos);
  EXPECT_NE(error_of([&] { set_setting_text(*find_setting("budget_kb"), "inf", &c, "--budget-kb"); }), "");
  // A TrainConfig built in code is checked the same way by validate_config.
  c.lr = std::numeric_limits<double>::infinity();
  EXPECT_NE(error_of([&] { validate_config(c); }).find("lr"), std::string::npos);
  c.lr = std::nan("");
  EXPECT_NE(error_of([&] { validate_config(c); }), "");
  // So every config that validates is written as numbers and reads back the same.
  TrainConfig d;
  d.lr = 1e6;
  d.budget_kb = 0.5;
  d.seed = UINT64_MAX;
  validate_config(d);
  TrainConfig e;
  apply_config_json(nlohmann::json::parse(config_to_json(d).dump()), &e, "saved");
  EXPECT_EQ(config_to_json(d), config_to_json(e));
  EXPECT_EQ(config_fingerprint(d), config_fingerprint(e));
}

TEST(SettingsTable, KeysAddedLaterKeepOldFingerprintsAtTheirDefaults) {
  // Runs made before baseline / lr_wp / lr_np / momentum / step_norm / params / bias_mu / plus_biases / anchor (and data /
  // bad_images) existed hashed the JSON of the
  // keys they had (all but threads, engine_batch, out, kernels). Their
  // checkpoints must still resume, so at their defaults the new keys must
  // leave that digest alone; any other value must change it. (End to end:
  // the same short run by tinyzo a926f12 and by this branch logs the same run
  // fingerprint and writes the same best.tzm, docs/zo-search.md.)
  TrainConfig c;
  c.augment = false;
  c.queries_w = c.queries_b = 5;
  c.queries_np = 10;
  c.lr = 0.01171875;
  nlohmann::ordered_json old = config_to_json(c);
  for (const char* k :
       {"threads", "engine_batch", "out", "kernels", "baseline", "lr_wp", "lr_np", "momentum", "step_norm", "params",
        "bias_mu", "plus_biases", "anchor", "data", "bad_images", "one_layer_per_pass", "fuse"})
    old.erase(k);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_name64(old.dump())));
  EXPECT_EQ(config_fingerprint(c), hex);
  for (const char* key :
       {"baseline", "lr_wp", "lr_np", "momentum", "step_norm", "params", "bias_mu", "plus_biases", "anchor",
        "data", "bad_images"}) {
    TrainConfig d = c;
    const std::string k = key;
    set_setting_text(*find_setting(key),
                     k == "baseline"     ? "mean"
                     : k == "data"       ? "photos"
                     : k == "bad_images" ? "skip"
                     : k == "momentum" || k == "anchor" ? "0.5"
                     : k == "step_norm"  ? "layer"
                     : k == "params"     ? "bias"
                                         : "2",
                     &d, key);
    EXPECT_NE(config_fingerprint(d), config_fingerprint(c)) << key;
  }
  // Execution choices that leave the weights bitwise the same are never part of it.
  for (const char* key : {"one_layer_per_pass", "fuse"}) {
    TrainConfig d = c;
    set_setting_text(*find_setting(key), "true", &d, key);
    EXPECT_EQ(config_fingerprint(d), config_fingerprint(c)) << key;
  }
}

TEST(SettingsTable, StepCountsThatWouldWrapAreRefused) {
  TrainConfig c;
  c.epochs = 214748365;  // x 20 steps per epoch = 4294967300, which wrapped to 4 in 32 bits
  c.batch = 1;
  c.train_per_class = 2;
  SettingSources src;
  src.set("epochs", "--epochs");
  const std::string why = error_of([&] { validate_config(c, &src); });
  EXPECT_NE(why.find("--epochs"), std::string::npos) << why;
  EXPECT_NE(why.find("4294967300 steps"), std::string::npos) << why;
  c.epochs = 107374182;  // x 20 = 2147483640: fits
  EXPECT_NO_THROW(validate_config(c));
  c.max_steps = 5;  // max_steps decides; epochs do not count
  c.epochs = INT32_MAX;
  EXPECT_NO_THROW(validate_config(c));
}

TEST(SettingsTable, ConfigValidationNamesTheKeyAndTheFile) {
  TrainConfig c;
  SettingSources src;
  apply_config_json(nlohmann::json{{"severity", 3}}, &c, "runs/x/config.json", &src);
  c.severity = 9;  // as if changed after loading
  EXPECT_NE(error_of([&] {
              validate_config(c, &src);
            }).find("runs/x/config.json: key 'severity': 9 is outside 1..5"),
            std::string::npos);
  c.severity = 5;
  c.corruption = "fogg";
  EXPECT_NE(error_of([&] { validate_config(c); }).find("corruption"), std::string::npos);
  c.corruption = "none";
  c.mode = "threshold:x";
  EXPECT_NE(error_of([&] { validate_config(c); }).find("mode"), std::string::npos);
}

TEST(ConfigFile, DuplicateKeysAndBadFilesAreNamed) {
  const fs::path dir = fs::temp_directory_path() / ("tinyzo_settings_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string dup = write("dup.json", "{\"lr\": 0.1, \"batch\": 4, \"lr\": 0.2}");
  std::string why = error_of([&] { load_config_file(dup); });
  EXPECT_NE(why.find(dup), std::string::npos) << why;
  EXPECT_NE(why.find("'lr' appears twice"), std::string::npos) << why;
  // Nested objects keep their own keys (free-text "_" keys may hold objects).
  EXPECT_NO_THROW(load_config_file(write("nested.json", "{\"_a\": {\"lr\": 1}, \"lr\": 0.5}")));
  why = error_of([&] { load_config_file(write("huge.json", "{\"lr\": 1e309}")); });
  EXPECT_NE(why.find("huge.json: invalid JSON"), std::string::npos) << why;
  why = error_of([&] { load_config_file(write("neg.json", "{\"seed\": -1}")); });
  EXPECT_NE(why.find("neg.json: key 'seed'"), std::string::npos) << why;
  why = error_of([&] { load_config_file(write("float_seed.json", "{\"seed\": 1e23}")); });
  EXPECT_NE(why.find("key 'seed'"), std::string::npos) << why;
  why = error_of([&] { load_config_file(write("range.json", "{\"queries_w\": 0}")); });
  EXPECT_NE(why.find("range.json: key 'queries_w': 0 is outside 1..256"), std::string::npos) << why;
  why = error_of([&] { load_config_file(dir.string()); });
  EXPECT_NE(why.find(dir.string() + ": is a directory"), std::string::npos) << why;
  why = error_of([&] { load_config_file((dir / "missing.json").string()); });
  EXPECT_NE(why.find("missing.json"), std::string::npos) << why;
  // A config file larger than any config is refused from its size (sparse: no disk used).
  const std::string big = (dir / "big.json").string();
  std::ofstream(big).close();
  fs::resize_file(big, kMaxConfigBytes + 1);
  why = error_of([&] { load_config_file(big); });
  EXPECT_NE(why.find("not read"), std::string::npos) << why;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tinyzo
