// Where the host tools find the shared data (CIFAR-10, the reference models)
// and where they keep converted models. See docs/data.md.
#pragma once
#include <string>

namespace tinyzo {

// The directory options every `tinyzo` command shares. Empty = not given.
// main() fills the process-wide instance from --data-dir / --cache-dir.
struct PathOptions {
  std::string data_dir;
  std::string cache_dir;
};
PathOptions& global_path_options();

// Relative path of the CIFAR-10 test batch inside the data directory.
constexpr const char* kCifar10TestRelPath = "cifar10/test_batch.bin.gz";
// Relative path of the original (unconverted) models inside the data directory.
constexpr const char* kModelsRelDir = "models/original";

// The data directory, first match of: `flag` (--data-dir) > $TINYZO_DATA >
// ../shared/data relative to the current directory > TINYZO_SOURCE_DIR
// "/../shared/data". A flag or variable that names a missing directory is an
// error (no silent fallback). Throws CliError saying where to get the data.
std::string resolve_data_dir(const std::string& flag);
inline std::string resolve_data_dir() { return resolve_data_dir(global_path_options().data_dir); }

// `dir`/`rel` if it is a regular file; otherwise throws CliError naming the
// path, `what` it should be and where to get it.
std::string require_data_file(const std::string& dir, const std::string& rel, const std::string& what);

// The cache directory for converted models: `flag` (--cache-dir) >
// $TINYZO_CACHE > $XDG_CACHE_HOME/tinyzo > $HOME/.cache/tinyzo. Not created.
std::string resolve_cache_dir(const std::string& flag);
inline std::string resolve_cache_dir() { return resolve_cache_dir(global_path_options().cache_dir); }

// One sentence on where the data comes from (for error messages).
const char* data_download_hint();

}  // namespace tinyzo
