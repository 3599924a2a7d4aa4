#include "model/vector_ops.h"

#include <cmath>

namespace dapx {

float rms_inverse(const float* x, int64_t n, float eps) {
  // The mean in double: independent of n's rounding. Four partial sums: four independent
  // chains of adds instead of one (a prefill chunk normalises thousands of rows).
  double s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) s[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (; i < n; ++i) s[0] += static_cast<double>(x[i]) * x[i];
  return static_cast<float>(1.0 / std::sqrt((s[0] + s[1] + s[2] + s[3]) / n + eps));
}

void rms_norm_row(const float* x, const float* w, int64_t n, float eps, float* out) {
  const float scale = rms_inverse(x, n, eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void rotate_half_rows(float* x, int64_t rows, int64_t d, const float* cos, const float* sin) {
  const int64_t half = d / 2;
  for (int64_t r = 0; r < rows; ++r) {
    float* x1 = x + r * d;
    float* x2 = x1 + half;
    for (int64_t i = 0; i < half; ++i) {
      const float a = x1[i], b = x2[i];
      x1[i] = a * cos[i] - b * sin[i];
      x2[i] = b * cos[i] + a * sin[i];
    }
  }
}

void add_row(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace dapx
