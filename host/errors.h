// The one exception type of the host tools. Host code may throw anywhere; the
// `tinyzo` entry point (host/cli/main.cc) turns every exception into a single
// line "tinyzo: error: <what()>" and exit code 1. Messages therefore are one
// line, name the file or flag at fault, and say what to do when that is not
// obvious.
#pragma once
#include <stdexcept>
#include <string>

namespace tinyzo {

class CliError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace tinyzo
