#pragma once
// Random queries, keys and values for the attention kernel tests, drawn in that order from one
// seeded normal distribution; with bf16, keys and values are rounded to bf16 and kept both as
// the bits a bf16 cache holds and as their exact f32 widening (what the reference reads).
#include <cstdint>
#include <random>
#include <vector>

#include "util/bf16.h"

namespace dapx {

struct RandomQkv {
  std::vector<float> q, k, v;
  std::vector<uint16_t> k16, v16;  // bf16 bits of k and v (zeros unless bf16)
};

inline RandomQkv random_qkv(size_t q_size, size_t kv_size, float spread, unsigned seed, bool bf16) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, spread);
  RandomQkv r{std::vector<float>(q_size), std::vector<float>(kv_size), std::vector<float>(kv_size),
              std::vector<uint16_t>(kv_size), std::vector<uint16_t>(kv_size)};
  for (auto& x : r.q) x = nd(rng);
  for (auto& x : r.k) x = nd(rng);
  for (auto& x : r.v) x = nd(rng);
  if (bf16)
    for (size_t i = 0; i < kv_size; ++i) {
      r.k[i] = bf16_to_f32(r.k16[i] = f32_to_bf16(r.k[i]));
      r.v[i] = bf16_to_f32(r.v16[i] = f32_to_bf16(r.v[i]));
    }
  return r;
}

}  // namespace dapx
