#include "train/progress.h"

#include <unistd.h>

namespace tinyzo {

bool is_terminal(std::FILE* f) { return f != nullptr && ::isatty(fileno(f)) == 1; }

Progress::Progress(size_t total, std::string label, std::FILE* out)
    : total_(total), label_(std::move(label)), out_(out), interactive_(is_terminal(out)) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ += n;
  if (interactive_) draw_locked(done_ >= total_);
}

void Progress::draw_locked(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  const double frac = total_ == 0 ? 1.0 : double(done_) / double(total_);
  const int filled = static_cast<int>(frac * kWidth);
  char bar[kWidth + 1];
  for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kWidth] = '\0';
  const double secs = elapsed_seconds();
  const double rate = secs > 0 ? double(done_) / secs : 0.0;
  std::fprintf(out_, "\r%s [%s] %zu/%zu %5.1f%% %.1f/s ", label_.c_str(), bar, done_, total_, 100.0 * frac, rate);
  std::fflush(out_);
  drawn_ = true;
}

void Progress::finish(const std::string& summary) {
  std::lock_guard<std::mutex> lock(mu_);
  if (drawn_) std::fprintf(out_, "\r\033[K");  // erase the bar line
  if (!summary.empty()) std::fprintf(out_, "%s: %s\n", label_.c_str(), summary.c_str());
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace tinyzo
