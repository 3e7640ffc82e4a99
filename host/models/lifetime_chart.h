// ASCII chart of an activation plan: one row per planned tensor (its bytes,
// offset range and a bar over the ops where it is alive) and a column chart
// of the bytes alive at each op. Used by `tinyzo plan`; docs/memory.md shows
// an example.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "tinyzo/model.h"
#include "tinyzo/planner.h"
#include "tinyzo/span.h"

namespace tinyzo {

struct LifetimeChartOptions {
  int max_columns = 96;   // op axis width; ops are grouped when the model has more
  int live_rows = 8;      // height of the live-bytes column chart
};

// Bytes alive at each step -1 .. n_ops (index step + 1), as live_bytes_at().
std::vector<size_t> live_bytes_per_step(Span<const BufferRequest> requests, int n_ops);

// The chart as text (lines end with '\n'). `requests` and `offsets` are one
// per tensor (constants have size 0 and are skipped), `arena_bytes` the plan's
// total. Step -1 (the input, before op 0) and step n_ops (the output after
// the last op) are the first and last columns.
std::string render_lifetime_chart(const ModelView& model, Span<const BufferRequest> requests,
                                  Span<const size_t> offsets, size_t arena_bytes,
                                  const LifetimeChartOptions& options = {});

// "12345 B" below 10 KiB, else "123.4 KB" (KB = 1024 bytes, as the paper).
std::string format_bytes(size_t bytes);

}  // namespace tinyzo
