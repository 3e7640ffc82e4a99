// A progress bar on stderr for long host commands. Redraws in place (at most
// ~10 times a second) only when stderr is a terminal; otherwise prints
// nothing until finish().
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <mutex>
#include <string>

namespace tinyzo {

class Progress {
 public:
  // `total` items; `label` is printed in front ("eval"). `out` defaults to stderr.
  Progress(size_t total, std::string label, std::FILE* out = stderr);
  // Forces the interactive bar on or off (tests, --no-progress).
  void set_interactive(bool on) { interactive_ = on; }

  // Adds `n` finished items. Thread-safe.
  void advance(size_t n = 1);
  // Erases the bar and, when `summary` is not empty, prints "<label>: <summary>".
  void finish(const std::string& summary);

  size_t done() const { return done_; }
  double elapsed_seconds() const;

 private:
  void draw_locked(bool force);

  size_t total_;
  size_t done_ = 0;
  std::string label_;
  std::FILE* out_;
  bool interactive_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::mutex mu_;
};

// True when `f` is a terminal.
bool is_terminal(std::FILE* f);

}  // namespace tinyzo
