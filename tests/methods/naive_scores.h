#pragma once
// Observation scores computed independently of the engine, from the naive reference's own
// post-RoPE queries and keys (tests/reference): what SnapKV-style methods (SnapKV, SpecKV, LAQ)
// rank, for the method tests to compare selections with.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "naive_transformer.h"

namespace dapx::testing {

using Scores = std::vector<std::vector<double>>;  // [kv_head][scored key]

// softmax(q . K[j] / sqrt(D)) over the keys j = 0..pos a query at `pos` sees, in double.
inline std::vector<double> attention_row(const float* q, const std::vector<float>& K, int D,
                                         int pos) {
  std::vector<double> s(pos + 1);
  double mx = -std::numeric_limits<double>::infinity(), z = 0;
  for (int j = 0; j <= pos; ++j) {
    double dot = 0;
    for (int e = 0; e < D; ++e) dot += double(q[e]) * K[size_t(j) * D + e];
    s[j] = dot / std::sqrt(double(D));
    mx = std::max(mx, s[j]);
  }
  for (int j = 0; j <= pos; ++j) z += s[j] = std::exp(s[j] - mx);
  for (double& v : s) v /= z;
  return s;
}

// SnapKV-style scores of one layer: softmax over the keys each row sees (row r at position
// rows[r] sees keys 0..rows[r]), max over the group's heads and the rows, max-pooled over
// kernel (padding that never wins), for keys [0, scored_end).
inline Scores naive_scores(const reference::NaiveTransformer& ref, int layer,
                           const std::vector<int>& rows, int scored_end, int kernel) {
  const ModelConfig& c = ref.config();
  const int D = c.head_dim, group = c.num_heads / c.num_kv_heads;
  Scores out(c.num_kv_heads);
  for (int g = 0; g < c.num_kv_heads; ++g) {
    const std::vector<float>& K = ref.keys(layer, g);
    std::vector<double> red(scored_end, -1.0);
    for (int h = g * group; h < (g + 1) * group; ++h)
      for (int pos : rows) {
        const std::vector<double> p =
            attention_row(ref.queries(layer).at(pos).data() + size_t(h) * D, K, D, pos);
        for (int j = 0; j < scored_end && j <= pos; ++j) red[j] = std::max(red[j], p[j]);
      }
    out[g].resize(scored_end);
    for (int j = 0; j < scored_end; ++j) {
      double m = -1.0;
      for (int o = -kernel / 2; o <= kernel / 2; ++o)
        if (j + o >= 0 && j + o < scored_end) m = std::max(m, red[j + o]);
      out[g][j] = m;
    }
  }
  return out;
}

}  // namespace dapx::testing
