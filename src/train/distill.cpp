#include "train/distill.h"

#include <cmath>
#include <limits>
#include <string>

#include "util/error.h"

namespace dapx {

at::Tensor observed_key_attention(const at::Tensor& q, const at::Tensor& k, int64_t window) {
  if (q.dim() != 3 || k.dim() != 3 || q.size(1) != k.size(1) || q.size(2) != k.size(2))
    throw Error("observed_key_attention: expected q [heads, n, d] and k [kv_heads, n, d]");
  const int64_t heads = q.size(0), kv_heads = k.size(0), n = q.size(1), d = q.size(2);
  if (kv_heads <= 0 || heads % kv_heads != 0)
    throw Error("observed_key_attention: " + std::to_string(heads) +
                " query heads do not group over " + std::to_string(kv_heads) + " KV heads");
  if (window < 1 || n <= window)
    throw Error("observed_key_attention: " + std::to_string(n) +
                " tokens leave no key before a window of " + std::to_string(window));
  const int64_t group = heads / kv_heads;
  const at::Tensor qw = q.narrow(1, n - window, window).reshape({kv_heads, group * window, d});
  at::Tensor scores = at::bmm(qw, k.transpose(1, 2)) / std::sqrt(static_cast<double>(d));
  // Window query i (position n - window + i) sees keys <= its position.
  const auto lopts = q.options().dtype(at::kLong);
  const at::Tensor qpos = at::arange(n - window, n, lopts).repeat({group}).unsqueeze(1);
  const at::Tensor hidden = at::arange(n, lopts).unsqueeze(0) > qpos;  // [group * window, n]
  scores = scores.masked_fill(hidden, -std::numeric_limits<float>::infinity());
  const at::Tensor scored =
      at::softmax(scores, -1).narrow(2, 0, n - window).mean(at::IntArrayRef{0, 1});
  return scored / scored.sum();
}

at::Tensor attention_distill_loss(const at::Tensor& student, const at::Tensor& teacher) {
  if (student.dim() != 1 || !student.sizes().equals(teacher.sizes()) || student.numel() == 0)
    throw Error("attention_distill_loss: student and teacher must be equal-length vectors");
  const at::Tensor t = teacher.detach();
  const double eps = 0.1 / static_cast<double>(student.numel());
  const at::Tensor kl = (t * (at::log(t + 1e-30) - at::log(student + 1e-30))).sum();
  const at::Tensor log_gap = at::log(student + eps) - at::log(t + eps);
  return kl + (log_gap * log_gap).mean();
}

at::Tensor token_distill_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits) {
  if (student_logits.dim() != 2 || !student_logits.sizes().equals(teacher_logits.sizes()) ||
      student_logits.numel() == 0)
    throw Error("token_distill_loss: student and teacher logits must both be [positions, vocab]");
  const at::Tensor log_t = at::log_softmax(teacher_logits.detach().to(at::kFloat), -1);
  const at::Tensor log_s = at::log_softmax(student_logits.to(at::kFloat), -1);
  return (log_t.exp() * (log_t - log_s)).sum(-1).mean();
}

}  // namespace dapx
