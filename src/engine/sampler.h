#pragma once
// Next-token choice: greedy, or temperature + top-k + top-p sampling from a seeded generator.
#include <ATen/ATen.h>

#include <cstdint>
#include <random>

namespace dapx {

struct SamplingParams {
  float temperature = 0.f;  // 0 = greedy
  int top_k = 0;            // 0 = all
  float top_p = 1.f;        // 1 = all
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // logits: [vocab] f32 (any device).
  int next(const at::Tensor& logits);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
};

void validate(const SamplingParams& p);  // throws dapx::Error naming the bad value

}  // namespace dapx
