// Deterministic float32 math for the trainer. Host and device must produce the
// same bits, so the trainer never calls the C library's expf/logf/cosf (their
// last bits differ between libm builds). Each function below uses only IEEE
// binary32 +, -, *, / and integer bit operations, compiled with
// -ffp-contract=off, so every conforming FPU gives identical results.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tinyzo {

// e^x; relative error < 2e-7 on [-87, 88]; 0 below, +inf above; NaN -> NaN.
float tz_expf(float x);
// ln(x) for x > 0 (error < 3e-7 relative, or absolute near 1); -inf for 0, NaN for x < 0 or NaN.
float tz_logf(float x);
// cos(x) for |x| <= 4 (absolute error < 1e-6): enough for the cosine schedule.
float tz_cosf(float x);
// sqrt(x) for x >= 0, by Newton steps from a bit-level guess (correctly
// rounded is not promised, deterministic is).
float tz_sqrtf(float x);

// Cross-entropy of float logits against `label`: logsumexp(logits) - logits[label],
// with the maximum subtracted first; sums run in index order.
float cross_entropy(const float* logits, int n, int label);

// Cosine schedule: lr0 * 0.5 * (1 + cos(pi * step / total_steps)), step in [0, total).
float cosine_lr(float lr0, int step, int total_steps);

}  // namespace tinyzo
