// libFuzzer target: the training config parser (load_config_file +
// validate_config, host/train_config.cc), through a file as `tinyzo train
// --config` reads it. Every input must be accepted or refused with a CliError
// (the parser's contract); any other exception escaping is a bug. An accepted
// config must survive config_to_json -> apply_config_json unchanged.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "util/errors.h"
#include "train/train_config.h"

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
  }
  // What the run directory saves (config.json) must read back as the same settings.
  tinyzo::TrainConfig back;
  tinyzo::apply_config_json(tinyzo::config_to_json(c), &back, "round trip");
  if (tinyzo::config_to_json(back) != tinyzo::config_to_json(c)) __builtin_trap();
  return 0;
}
