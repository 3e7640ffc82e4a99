#include "data/data_dir.h"

#include <cstdlib>

#include "util/errors.h"
#include "util/file_util.h"

#ifndef TINYZO_SOURCE_DIR
#define TINYZO_SOURCE_DIR "."
#endif

namespace tinyzo {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

}  // namespace

PathOptions& global_path_options() {
  static PathOptions options;
  return options;
}

const char* data_download_hint() {
  return "the data directory holds cifar10/test_batch.bin.gz (the CIFAR-10 binary test batch: "
         "test_batch.bin from cifar-10-binary.tar.gz at https://www.cs.toronto.edu/~kriz/cifar.html, "
         "plain or gzip-compressed) and models/original/ (mcunet_in1_cifar10.pth "
         "from github.com/olokevin/tiny-training algorithm/assets/; mcunet-5fps.pkl, mbv2-w0.35.pkl, "
         "proxyless-w0.3.pkl from github.com/mit-han-lab/tiny-training algorithm/assets/mcu_models/); "
         "point --data-dir or $TINYZO_DATA at it";
}

std::string resolve_data_dir(const std::string& flag) {
  if (!flag.empty()) {
    if (!is_directory(flag)) throw CliError("--data-dir " + flag + ": no such directory; " + data_download_hint());
    return flag;
  }
  const std::string from_env = env("TINYZO_DATA");
  if (!from_env.empty()) {
    if (!is_directory(from_env))
      throw CliError("$TINYZO_DATA=" + from_env + ": no such directory; " + data_download_hint());
    return from_env;
  }
  const std::string relative = "../shared/data";
  if (is_directory(relative)) return relative;
  const std::string built_in = std::string(TINYZO_SOURCE_DIR) + "/../shared/data";
  if (is_directory(built_in)) return built_in;
  throw CliError("no data directory (tried --data-dir, $TINYZO_DATA, " + relative + ", " + built_in + "); " +
                 data_download_hint());
}

std::string require_data_file(const std::string& dir, const std::string& rel, const std::string& what) {
  const std::string path = dir + "/" + rel;
  if (!is_regular_file(path))
    throw CliError(path + ": missing (" + what + "); " + data_download_hint());
  return path;
}

std::string resolve_cache_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  const std::string from_env = env("TINYZO_CACHE");
  if (!from_env.empty()) return from_env;
  const std::string xdg = env("XDG_CACHE_HOME");
  if (!xdg.empty()) return xdg + "/tinyzo";
  const std::string home = env("HOME");
  if (home.empty()) throw CliError("no cache directory: set --cache-dir, $TINYZO_CACHE or $HOME");
  return home + "/.cache/tinyzo";
}

}  // namespace tinyzo
