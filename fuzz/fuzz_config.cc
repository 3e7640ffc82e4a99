// libFuzzer target: the training config parser (load_config_file +
// validate_config, host/train_config.cc), through a file as `tinyzo train
// --config` reads it. Every input must be accepted or refused with a CliError
// (the parser's contract); any other exception escaping is a bug. An accepted
// config must survive config_to_json -> apply_config_json unchanged.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "errors.h"
#include "train_config.h"

namespace {

std::string temp_path() {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  return std::string(dir) + "/tinyzo-fuzz-config-" + std::to_string(getpid()) + ".json";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = temp_path();
  if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
  } else {
    __builtin_trap();
  }
  tinyzo::TrainConfig c;
  try {
    c = tinyzo::load_config_file(path);
    tinyzo::validate_config(c);
  } catch (const tinyzo::CliError&) {
    return 0;
  } catch (const nlohmann::json::out_of_range& e) {
    // KNOWN, OPEN (docs/fuzzing.md, "Findings"): load_config_file lets nlohmann's out_of_range
    // for a number that overflows a double (1e400) escape instead of a CliError naming the file,
    // so the CLI prints the library's message. host/train_config.cc is being rewritten for
    // issue 14 item 2 ("one definition of every setting") on another branch, so it is not fixed
    // here; FuzzRegressions.DISABLED_ConfigNumberOverflowIsACliError is the regression test to
    // enable with that fix, and this catch goes with it. Every other escape still crashes.
    if (std::strstr(e.what(), "number overflow") == nullptr) __builtin_trap();
    return 0;
  }
  // What the run directory saves (config.json) must read back as the same settings.
  tinyzo::TrainConfig back;
  tinyzo::apply_config_json(tinyzo::config_to_json(c), &back, "round trip");
  if (tinyzo::config_to_json(back) != tinyzo::config_to_json(c)) __builtin_trap();
  return 0;
}
