// The one exception type of the host tools. Host code may throw anywhere; the
// `tinyzo` entry point (host/cli/main.cc) turns every exception into a single
// line "tinyzo: error: <what()>" and its exit code (1 unless the error says
// otherwise). Messages therefore are one line, name the file or flag at
// fault, and say what to do when that is not obvious.
#pragma once
#include <stdexcept>
#include <string>

namespace tinyzo {

// Exit code of an error that a retry later may not hit: another process
// holds the run directory (sysexits.h EX_TEMPFAIL).
constexpr int kExitBusy = 75;

class CliError : public std::runtime_error {
 public:
  explicit CliError(const std::string& what, int exit_code = 1)
      : std::runtime_error(what), exit_code_(exit_code) {}
  explicit CliError(const char* what, int exit_code = 1) : std::runtime_error(what), exit_code_(exit_code) {}
  // The process exit code for this failure (1, or kExitBusy).
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_ = 1;
};

}  // namespace tinyzo
