#pragma once
// The small per-token operations of a decode step on raw f32 rows. Through LibTorch each
// would be one or more dispatched ops (about 70 per layer in all, several microseconds each),
// which cost more than the layer's weight reads at short contexts. Each function computes
// the same formula as the tensor code of the prefill path. Torch-free, sanitizer-tested.
#include <cstdint>

namespace dapx {

// 1 / sqrt(mean(x^2) + eps) over n values.
float rms_inverse(const float* x, int64_t n, float eps);
// out = x * (1 / sqrt(mean(x^2) + eps)) * w over n values; out may alias x.
void rms_norm_row(const float* x, const float* w, int64_t n, float eps, float* out);
// Rotary embedding ("rotate_half" layout) of `rows` rows of d values in place, with the
// cos/sin of one position [d/2]: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin).
void rotate_half_rows(float* x, int64_t rows, int64_t d, const float* cos, const float* sin);
// y += x.
void add_row(float* y, const float* x, int64_t n);

}  // namespace dapx
