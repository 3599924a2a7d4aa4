#pragma once
// `dapx train`: LibTorch autograd over the inference model's own layers
// (Transformer::sequence_logits), AdamW, linear warm-up + cosine decay, gradient clipping, a
// length curriculum, periodic greedy evaluation on held-out samples, HF checkpoints.
#include <c10/core/Device.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "train/training_data.h"

namespace dapx {

struct CurriculumStage {
  int max_tokens = 0;  // longest example of the stage
  int steps = 0;
};
// "512:200,1024:300": 200 steps at up to 512 tokens, then 300 at up to 1024.
std::vector<CurriculumStage> parse_curriculum(const std::string& text);

struct TrainOptions {
  std::filesystem::path init;  // HF directory to start from (its weights and tokenizer)
  std::filesystem::path out;   // checkpoint directory (may equal init)
  bool reinit = false;         // replace init's weights by a fresh training initialisation
  std::vector<CurriculumStage> curriculum;
  int tokens_per_step = 8192;  // examples are added to a step until it holds this many tokens
  double lr = 1e-3, min_lr_fraction = 0.1, weight_decay = 0.1, clip = 1.0;
  int warmup_steps = 50;
  // Wall-clock budget in seconds (0: none). The cosine schedule then follows whichever of
  // steps and time is further along, and training stops, saved, once the budget is spent: a
  // run sized for a device session ends with a decayed learning rate, not cut off mid-schedule.
  double time_limit_s = 0;
  // The clock the time budget reads: seconds since any fixed point. Unset: the steady clock.
  // Tests give one that advances per step, so the run's length does not depend on the machine.
  std::function<double()> clock;
  // Loss = mean over task examples of their mean answer-token cross-entropy + lm_weight x
  // mean cross-entropy over all other tokens of the step.
  double lm_weight = 0.1;
  // Attention distillation (optional): a teacher model (same tokenizer, e.g. the target a draft
  // serves) whose key attention, read as SpecKV reads it, the model learns to rank alike; adds
  // distill_weight x the mean over the step's examples of attention_distill_loss (the last
  // distill_window queries of each example, distill.h), and token_distill_weight x the mean
  // over the step's examples of token_distill_loss (the teacher's next-token distributions).
  std::filesystem::path teacher;
  double distill_weight = 1.0;
  int distill_window = 32;
  double token_distill_weight = 0.0;
  DataMix mix;
  uint64_t seed = 0;
  int eval_every = 100;  // steps; 0: only at the end
  int eval_samples = 16;
  int save_every = 100;  // steps; 0: only at the end
  DType save_dtype = DType::BF16;
  std::filesystem::path data_dir;  // holds eval/{ruler,train}_templates.json
  // Phrasing of the training prompts: "eval" (the evaluation's own templates, with the
  // training split's words, values and prose, so no evaluation sample is ever seen) or "train"
  // (paraphrased templates: also tests transfer to unseen phrasing, too hard for a tiny model).
  std::string templates = "eval";
  std::string command;  // recorded in train_state.json
  // cpu, or cuda[:N] with a CUDA build of LibTorch (matmuls then use TF32).
  c10::Device device = c10::kCPU;
};

struct StepReport {
  int step = 0, total_steps = 0, max_tokens = 0, examples = 0, tokens = 0;
  double loss = 0, answer_loss = 0, lm_loss = 0;
  double distill_loss = 0;        // 0 without a teacher
  double token_distill_loss = 0;  // 0 without a teacher
  double answer_accuracy = 0;     // task examples whose every answer token is the argmax
  double lr = 0, grad_norm = 0, tokens_per_s = 0, elapsed_s = 0;
  double data_wait_s = 0;  // how long the step waited for its batch (made on another thread)
};

struct EvalReport {
  int step = 0, length = 0, samples = 0;
  double score = 0;  // RULER score (x100), greedy, full KV, held-out (evaluation split)
};

struct TrainCallbacks {
  // At the start of each curriculum stage: its length and the tasks that fit it.
  std::function<void(const CurriculumStage&, const std::vector<std::string>&)> on_stage;
  std::function<void(const StepReport&)> on_step;
  std::function<void(const EvalReport&)> on_eval;
  std::function<void(const std::filesystem::path&)> on_save;
  std::function<void(const std::string&)> on_message;  // e.g. the time budget ran out
};

void train(const TrainOptions& opts, const TrainCallbacks& callbacks);

}  // namespace dapx
