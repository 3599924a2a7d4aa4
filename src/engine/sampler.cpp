#include "engine/sampler.h"

#include <cmath>
#include <string>

#include "util/error.h"

namespace dapx {

void validate(const SamplingParams& p) {
  // NaN fails every comparison: written so that it is rejected too.
  if (!(std::isfinite(p.temperature) && p.temperature >= 0))
    throw Error("temperature must be a finite number >= 0 (0 = greedy), got " +
                std::to_string(p.temperature));
  if (p.top_k < 0) throw Error("top_k must be >= 0 (0 = no limit), got " + std::to_string(p.top_k));
  if (!(p.top_p > 0 && p.top_p <= 1))
    throw Error("top_p must be in (0, 1], got " + std::to_string(p.top_p));
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) { validate(p); }

int Sampler::next(const at::Tensor& logits_any) {
  const at::Tensor logits = logits_any.to(at::kCPU).to(at::kFloat).reshape({-1});
  if (p_.temperature == 0.f) return static_cast<int>(logits.argmax().item<int64_t>());
  at::Tensor probs = at::softmax(logits / p_.temperature, -1);
  auto [sorted, order] = probs.sort(-1, /*descending=*/true);
  int64_t keep = sorted.size(0);
  if (p_.top_k > 0) keep = std::min<int64_t>(keep, p_.top_k);
  if (p_.top_p < 1.f) {
    // smallest prefix whose mass reaches top_p (always at least one token)
    const at::Tensor cum = sorted.narrow(0, 0, keep).cumsum(0);
    const int64_t reach = (cum < p_.top_p).sum().item<int64_t>() + 1;
    keep = std::min(keep, reach);
  }
  const at::Tensor kept = sorted.narrow(0, 0, keep);
  const float* pk = kept.data_ptr<float>();
  const double total = kept.sum().item<double>();
  std::uniform_real_distribution<double> uni(0.0, total);
  double r = uni(rng_);
  for (int64_t i = 0; i < keep; ++i) {
    r -= pk[i];
    if (r <= 0) return static_cast<int>(order[i].item<int64_t>());
  }
  return static_cast<int>(order[keep - 1].item<int64_t>());
}

}  // namespace dapx
