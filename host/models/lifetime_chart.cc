#include "models/lifetime_chart.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include "tinyzo/train/memory_model.h"

namespace tinyzo {
namespace {

std::string printf_string(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string printf_string(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::string shape_string(const TzmTensor& t) {
  std::string s;
  for (int d = 0; d < t.rank; ++d) s += (d ? "x" : "") + std::to_string(t.dims[d]);
  return s;
}

}  // namespace

std::string format_bytes(size_t bytes) {
  if (bytes < 10 * 1024) return std::to_string(bytes) + " B";
  return printf_string("%.1f KB", double(bytes) / 1024.0);
}

std::vector<size_t> live_bytes_per_step(Span<const BufferRequest> requests, int n_ops) {
  std::vector<size_t> live(size_t(n_ops) + 2);
  for (int step = -1; step <= n_ops; ++step) live[size_t(step + 1)] = live_bytes_at(requests, step);
  return live;
}

std::string render_lifetime_chart(const ModelView& model, Span<const BufferRequest> requests,
                                  Span<const size_t> offsets, size_t arena_bytes,
                                  const LifetimeChartOptions& options) {
  const int n_ops = model.n_ops();
  const int steps = n_ops + 2;  // -1 .. n_ops
  const int width = std::max(8, options.max_columns);
  const int per_col = (steps + width - 1) / width;  // steps per column
  const int cols = (steps + per_col - 1) / per_col;
  auto col_of = [&](int step) { return (step + 1) / per_col; };

  size_t name_w = 6;
  for (int t = 0; t < model.n_tensors(); ++t)
    if (requests[t].size_bytes) name_w = std::max(name_w, std::string(model.tensor(t).name).size());
  name_w = std::min<size_t>(name_w, 28);

  std::string out;
  out += printf_string("Lifetimes: one column per %d step%s; step -1 is the input, step %d is after the last op.\n",
                       per_col, per_col == 1 ? "" : "s", n_ops);
  out += "  '#' alive, '=' written in place over its input, '.' dead; offsets are byte ranges in the arena.\n";
  // Axis: a label every 10 columns.
  std::string axis(size_t(cols), ' ');
  for (int c = 0; c < cols; c += 10) {
    const std::string label = std::to_string(c * per_col - 1);
    for (size_t k = 0; k < label.size() && c + int(k) < cols; ++k) axis[size_t(c) + k] = label[k];
  }
  const std::string head = printf_string("  %-*s %9s %-21s ", int(name_w), "tensor", "bytes", "offsets");
  out += head + "|" + axis + "|\n";

  for (int t = 0; t < model.n_tensors(); ++t) {
    const BufferRequest& r = requests[t];
    if (r.size_bytes == 0) continue;
    std::string bar(size_t(cols), '.');
    const bool inplace = r.share_with >= 0 && is_inplace_pair(requests, t, r.share_with) &&
                         offsets[t] == offsets[size_t(r.share_with)];
    for (int step = r.first_use; step <= r.last_use; ++step) bar[size_t(col_of(step))] = '#';
    if (inplace) bar[size_t(col_of(r.first_use))] = '=';
    std::string name = model.tensor(t).name;
    if (name.size() > name_w) name = name.substr(0, name_w - 1) + "~";
    const std::string range = printf_string("[%zu, %zu)", offsets[t], offsets[t] + r.size_bytes);
    out += printf_string("  %-*s %9zu %-21s |", int(name_w), name.c_str(), r.size_bytes, range.c_str()) + bar +
           "|  " + shape_string(model.tensor(t)) + "\n";
  }

  // Column chart of live bytes, scaled to the arena.
  const std::vector<size_t> live = live_bytes_per_step(requests, n_ops);
  std::vector<size_t> col_live(size_t(cols), 0);
  size_t peak = 0;
  int peak_step = -1;
  for (int step = -1; step <= n_ops; ++step) {
    const size_t v = live[size_t(step + 1)];
    col_live[size_t(col_of(step))] = std::max(col_live[size_t(col_of(step))], v);
    if (v > peak) {
      peak = v;
      peak_step = step;
    }
  }
  const size_t top = std::max<size_t>(arena_bytes, 1);
  out += printf_string("Live bytes per step (full height = arena %s; peak %s at step %d%s%s):\n",
                       format_bytes(arena_bytes).c_str(), format_bytes(peak).c_str(), peak_step,
                       peak_step >= 0 && peak_step < n_ops ? " = op " : "",
                       peak_step >= 0 && peak_step < n_ops ? model.op(peak_step).name : "");
  const int rows = std::max(1, options.live_rows);
  for (int row = rows; row >= 1; --row) {
    std::string line(size_t(cols), ' ');
    for (int c = 0; c < cols; ++c) {
      // A cell is filled when the live bytes reach the middle of its band.
      const double level = (double(row) - 0.5) / rows * double(top);
      if (double(col_live[size_t(c)]) >= level) line[size_t(c)] = '#';
    }
    const std::string label = row == rows ? format_bytes(top) : (row == 1 ? std::string("0") : std::string());
    out += printf_string("  %*s %9s %-21s |", int(name_w), "", label.c_str(), "") + line + "|\n";
  }
  out += std::string(head.size(), ' ') + "|" + axis + "|\n";
  return out;
}

}  // namespace tinyzo
