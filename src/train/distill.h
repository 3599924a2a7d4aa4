#pragma once
// Distillation of a draft from its target, in the two ways a draft serves it:
// - attention: the keys it attends to, read the way SpecKV reads them (the last queries of a
//   sequence, averaged over heads and layers), rank like the target's (what SpecKV and SpecPC
//   keep); `dapx analyze` measures the same agreement (Spearman over the prompt's keys);
// - next tokens: its predictions follow the target's (the lookahead SpecKV scores with).
#include <ATen/ATen.h>

namespace dapx {

// One layer: the causal softmax attention of the last `window` queries (q [heads, n, d],
// post-RoPE; k [kv_heads, n, d], GQA groups of heads / kv_heads) over keys [0, n - window),
// averaged over heads and queries and renormalised to sum to 1 over those keys: [n - window].
// Differentiable, unlike scoring's observation_attention (which softmaxes in place to spare a
// second score matrix at inference). Throws when n <= window or the head counts do not group.
at::Tensor observed_key_attention(const at::Tensor& q, const at::Tensor& k, int64_t window);

// The distillation loss between the student's and the teacher's key distributions (each
// [keys], summing to 1; the teacher's carries no gradient):
//   KL(teacher || student) + mean over keys of (log(student + e) - log(teacher + e))^2,
// e = 0.1 / keys. KL pulls the keys that carry the attention into place (top-k overlap); the
// log term orders the thousands of small ones too, which a rank correlation counts as much.
at::Tensor attention_distill_loss(const at::Tensor& student, const at::Tensor& teacher);

// Next-token distillation: the mean over positions of KL(softmax(teacher) || softmax(student))
// for logits [positions, vocab] (the teacher's carries no gradient). Soft targets carry the
// target's whole ranking of continuations, which the one-hot training text does not.
at::Tensor token_distill_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits);

}  // namespace dapx
