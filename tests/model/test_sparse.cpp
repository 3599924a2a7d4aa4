// Sparse prefill attention against a naive masked computation, and against dense attention
// when the vertical set and the band cover everything.
#include <gtest/gtest.h>

#include <cmath>

#include "model/attention.h"
#include "model/sparse_attention.h"

namespace dapx {
namespace {

// Query at p (head h, KV head g) sees band keys (p - S, p] and vertical keys of g that are <= p -
// S.
at::Tensor naive_sparse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t pos0,
                        const at::Tensor& vertical, int64_t band) {
  const int64_t heads = q.size(0), t = q.size(1), d = q.size(2), kvh = k.size(0);
  at::Tensor out = at::zeros_like(q);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < t; ++i) {
      const int64_t g = h / (heads / kvh), p = pos0 + i;
      std::vector<int64_t> keys;
      for (int64_t j = 0; j <= p; ++j) {
        bool in_vertical = false;
        for (int64_t c = 0; c < vertical.size(1); ++c)
          in_vertical |= vertical[g][c].item<int64_t>() == j;
        if (j > p - band || (in_vertical && j <= p - band)) keys.push_back(j);
      }
      const at::Tensor idx = at::tensor(keys, at::kLong);
      const at::Tensor s = at::matmul(k[g].index_select(0, idx), q[h][i]) / std::sqrt(double(d));
      out[h][i] = at::matmul(at::softmax(s, 0), v[g].index_select(0, idx));
    }
  return out;
}

TEST(SparseAttention, MatchesNaiveMaskedComputation) {
  at::manual_seed(4);
  const int64_t n = 40;
  const at::Tensor k = at::randn({2, n, 8}), v = at::randn({2, n, 8});
  const at::Tensor vertical =
      at::tensor(std::vector<int64_t>{0, 3, 17, 30, 1, 2, 20, 38}).view({2, 4});
  for (int64_t pos0 : {0, 25}) {
    const int64_t t = n - pos0;
    const at::Tensor q = at::randn({6, t, 8});
    for (int64_t band : {1, 5, 12}) {
      const at::Tensor want = naive_sparse(q, k, v, pos0, vertical, band);
      for (int64_t floats : {int64_t{1} << 20, int64_t{50}})
        EXPECT_TRUE(at::allclose(blocked_sparse_attention(q, k, v, pos0, vertical, band, floats),
                                 want, 1e-5, 1e-5))
            << "pos0 " << pos0 << " band " << band;
      // the CPU path: the tiled kernel
      EXPECT_TRUE(at::allclose(sparse_attention(q, k, v, pos0, vertical, band), want, 1e-5, 1e-5))
          << "pos0 " << pos0 << " band " << band;
    }
  }
}

TEST(SparseAttention, EqualsDenseWhenTheBandCoversEverything) {
  at::manual_seed(5);
  const at::Tensor k = at::randn({2, 30, 8}), v = at::randn({2, 30, 8}), q = at::randn({4, 30, 8});
  const at::Tensor vertical = at::tensor(std::vector<int64_t>{0, 5, 7, 9}).view({2, 2});
  EXPECT_TRUE(at::allclose(sparse_attention(q, k, v, 0, vertical, 30), causal_attention(q, k, v),
                           1e-5, 1e-5));
  // or when the vertical set holds every key older than a short band
  const at::Tensor all = at::arange(30, at::kLong).view({1, 30}).expand({2, 30}).contiguous();
  EXPECT_TRUE(
      at::allclose(sparse_attention(q, k, v, 0, all, 3), causal_attention(q, k, v), 1e-5, 1e-5));
}

}  // namespace
}  // namespace dapx
