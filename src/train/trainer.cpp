#include "train/trainer.h"

#include <ATen/core/grad_mode.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <future>
#include <sstream>

#include "engine/generator.h"
#include "engine/model.h"
#include "eval/seeds.h"
#include "eval/text_sources.h"
#include "train/checkpoint.h"
#include "train/distill.h"
#include "util/error.h"

namespace dapx {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// GPT-2-style initialisation: N(0, 0.02) matrices, the projections into the residual stream
// scaled by 1/sqrt(2 x layers), unit norm gains, zero biases.
// Drawn on the CPU and copied, so a seed gives the same weights on every device.
void reinitialise(const LoadedModel& model, uint64_t seed) {
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double residual = 0.02 / std::sqrt(2.0 * model.config.num_layers);
  for (const auto& [name, t] : model.transformer.named_parameters()) {
    const auto ends = [&](const char* s) {
      const std::string suffix(s);
      return name.size() >= suffix.size() &&
             name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends("norm.weight"))
      t.fill_(1.0);
    else if (ends(".bias"))
      t.zero_();
    else
      t.copy_(at::empty(t.sizes(), t.options().device(at::kCPU))
                  .normal_(0.0, ends("o_proj.weight") || ends("down_proj.weight") ? residual : 0.02,
                           gen));
  }
}

// Scales the gradients so that their global L2 norm is at most max_norm; returns the norm
// before clipping.
double clip_gradients(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> squares;  // summed on the device: one host sync, not one per tensor
  for (const at::Tensor& p : params)
    if (p.grad().defined()) squares.push_back(p.grad().pow(2).sum().to(at::kDouble));
  const double norm = squares.empty() ? 0.0 : std::sqrt(at::stack(squares).sum().item<double>());
  if (norm > max_norm)
    for (const at::Tensor& p : params)
      if (p.grad().defined()) p.mutable_grad().mul_(max_norm / (norm + 1e-6));
  return norm;
}

// time_done: the share of the time budget spent (0 without one).
double learning_rate(const TrainOptions& o, int step, int total, double time_done) {
  if (step < o.warmup_steps) return o.lr * (step + 1) / o.warmup_steps;
  const double progress =
      std::max(time_done, double(step - o.warmup_steps) / std::max(1, total - o.warmup_steps));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
  return o.lr * (o.min_lr_fraction + (1.0 - o.min_lr_fraction) * cosine);
}

// What the step's loss is normalised by: task examples (each example's answer tokens are
// averaged first, so a ten-word answer weighs as much as a seven-digit one) and the
// non-answer tokens of the whole step.
struct StepCounts {
  int64_t task_examples = 0, other = 0, tokens = 0;
};

StepCounts count_targets(const std::vector<Example>& batch) {
  StepCounts c;
  for (const Example& ex : batch) {
    bool has_answer = false;
    for (size_t j = 1; j < ex.tokens.size(); ++j) {
      has_answer |= ex.answer[j];
      c.other += ex.answer[j] ? 0 : 1;
    }
    c.task_examples += has_answer ? 1 : 0;
    c.tokens += static_cast<int64_t>(ex.tokens.size());
  }
  return c;
}

// Greedy, full KV, on held-out samples of the evaluation split: the validation seeds, the same
// every time (the reported seeds are never used to choose a checkpoint).
EvalReport evaluate(const LoadedModel& model, const eval::TaskSuite& suite,
                    const std::vector<std::string>& candidates, int length, int samples, int step) {
  at::NoGradGuard no_grad;
  EvalReport r;
  std::vector<std::string> tasks;
  for (const std::string& t : candidates)
    if (suite.min_tokens(t, model.tokenizer) <= length) tasks.push_back(t);
  if (tasks.empty()) return r;
  r.step = step;
  r.length = length;
  FullKV full;
  for (int i = 0; i < samples; ++i) {
    const std::string& task = tasks[i % tasks.size()];
    const eval::Sample s = suite.make(task, model.tokenizer, length, eval::kValidationSeed + i);
    GenerationParams params;
    params.max_new_tokens = std::min(s.max_new_tokens, 48);
    const GenerationResult g = generate(model, full, model.tokenizer.encode(s.prompt()), params);
    r.score += s.metric == "string_match_part" ? eval::string_match_part(g.text, s.answers)
                                               : eval::string_match_all(g.text, s.answers);
    ++r.samples;
  }
  r.score /= std::max(1, r.samples);
  return r;
}

// Every stage fits `whose` context.
void require_context(const std::vector<CurriculumStage>& curriculum, const ModelConfig& cfg,
                     const std::string& whose) {
  for (const CurriculumStage& s : curriculum)
    if (s.max_tokens > cfg.max_position_embeddings)
      throw Error("curriculum stage of " + std::to_string(s.max_tokens) + " tokens exceeds the " +
                  whose + " context (" + std::to_string(cfg.max_position_embeddings) + ")");
}

// The teacher of distillation: the same tokenizer and a context for every stage.
std::unique_ptr<LoadedModel> load_teacher(const TrainOptions& o, const LoadedModel& student) {
  if (o.teacher.empty()) return nullptr;
  if (o.distill_window < 1) throw Error("train: the distillation window must be >= 1");
  ComputeOptions copts;
  copts.weight_dtype = at::kFloat;
  copts.device = o.device;
  std::unique_ptr<LoadedModel> teacher = LoadedModel::load(o.teacher, copts);
  const std::string probe = "The special magic number for quiet-harbor is: 7302914.";
  if (teacher->tokenizer.vocab_size() != student.tokenizer.vocab_size() ||
      teacher->tokenizer.encode(probe) != student.tokenizer.encode(probe))
    throw Error("train: the teacher " + o.teacher.string() + " has another tokenizer than " +
                o.init.string() + " (" + std::to_string(teacher->tokenizer.vocab_size()) +
                " tokens against " + std::to_string(student.tokenizer.vocab_size()) +
                "); distillation compares the two on the same tokens");
  require_context(o.curriculum, teacher->config, "teacher's");
  return teacher;
}

// Key attention of `tokens` read as distill.h reads it, averaged over layers.
at::Tensor key_attention(const Transformer& model, const std::vector<int>& tokens, int window,
                         at::Tensor* logits) {
  std::vector<at::Tensor> layers;
  const at::Tensor out = model.sequence_logits(tokens, [&](int, const AttentionInputs& in) {
    layers.push_back(observed_key_attention(in.q, in.k, window));
  });
  if (logits) *logits = out;
  return at::stack(layers).mean(0);
}

}  // namespace

std::vector<CurriculumStage> parse_curriculum(const std::string& text) {
  std::vector<CurriculumStage> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.find(':');
    CurriculumStage s;
    try {
      if (colon == std::string::npos) throw std::invalid_argument("no colon");
      size_t used = 0;
      s.max_tokens = std::stoi(item.substr(0, colon), &used);
      s.steps = std::stoi(item.substr(colon + 1));
    } catch (const std::exception&) {
      throw Error("curriculum stage '" + item + "' is not TOKENS:STEPS (e.g. 512:200)");
    }
    if (s.max_tokens < 16 || s.steps < 1)
      throw Error("curriculum stage '" + item + "': tokens must be >= 16 and steps >= 1");
    out.push_back(s);
  }
  if (out.empty()) throw Error("curriculum is empty; give stages like 512:200,1024:300");
  return out;
}

namespace {
std::string templates_file(const std::string& templates) {
  if (templates == "eval") return "ruler_templates.json";
  if (templates == "train") return "train_templates.json";
  throw Error("templates must be 'eval' or 'train', got '" + templates + "'");
}
}  // namespace

void train(const TrainOptions& o, const TrainCallbacks& cb) {
  if (o.curriculum.empty()) throw Error("train: no curriculum");
  if (o.tokens_per_step < 1) throw Error("train: tokens per step must be >= 1");
  ComputeOptions copts;
  copts.weight_dtype = at::kFloat;
  copts.trainable = true;
  copts.device = o.device;
  if (o.device.is_cuda()) at::globalContext().setAllowTF32CuBLAS(true);
  const std::unique_ptr<LoadedModel> model = LoadedModel::load(o.init, copts);
  const std::string tokenizer_json = read_tokenizer_json(*model);
  const ModelConfig& cfg = model->config;
  require_context(o.curriculum, cfg, "model's");
  if (cfg.eos_token_ids.empty()) throw Error("train: the model has no eos_token_id");
  if (o.reinit) reinitialise(*model, o.seed);
  const std::unique_ptr<LoadedModel> teacher = load_teacher(o, *model);

  const eval::TextSources train_text = eval::TextSources::load(eval::Split::Train);
  const TrainingData data(model->tokenizer,
                          eval::TaskSuite(o.data_dir / "eval" / templates_file(o.templates),
                                          train_text, eval::Split::Train, /*any_phrasing=*/true),
                          train_text, o.mix, cfg.eos_token_ids.front());
  const eval::TaskSuite held_out(o.data_dir / "eval" / "ruler_templates.json",
                                 eval::TextSources::load(eval::Split::Eval), eval::Split::Eval);

  // AdamW; no weight decay on gains and biases.
  std::vector<at::Tensor> decayed, plain, all;
  for (const auto& [name, t] : model->transformer.named_parameters()) {
    (t.dim() >= 2 ? decayed : plain).push_back(t);
    all.push_back(t);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(
      decayed,
      std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(o.weight_decay)));
  groups.emplace_back(plain,
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(0)));
  torch::optim::AdamW optimizer(groups, torch::optim::AdamWOptions(o.lr));

  nlohmann::json state = load_train_state(o.init);
  nlohmann::json part = {{"command", o.command},
                         {"init", o.init.string()},
                         {"reinit", o.reinit},
                         {"seed", o.seed},
                         {"tokens_per_step", o.tokens_per_step},
                         {"lr", o.lr},
                         {"lm_weight", o.lm_weight},
                         {"teacher", o.teacher.string()},
                         {"distill_weight", teacher ? o.distill_weight : 0.0},
                         {"distill_window", o.distill_window},
                         {"token_distill_weight", teacher ? o.token_distill_weight : 0.0},
                         {"text_share", o.mix.text_share},
                         {"time_limit_s", o.time_limit_s},
                         {"templates", o.templates},
                         {"device", o.device.str()},
                         {"curriculum", nlohmann::json::array()},
                         {"log", nlohmann::json::array()},
                         {"eval", nlohmann::json::array()}};
  for (const CurriculumStage& s : o.curriculum)
    part["curriculum"].push_back({{"max_tokens", s.max_tokens}, {"steps", s.steps}});
  const auto save = [&](int steps_done, double wall_s) {
    nlohmann::json st = state;
    nlohmann::json p = part;
    p["steps_done"] = steps_done;
    p["wall_s"] = wall_s;
    st["parts"].push_back(p);
    save_checkpoint(*model, tokenizer_json, o.out, o.save_dtype, st);
    if (cb.on_save) cb.on_save(o.out);
  };

  // A stage no task fits would silently train on prose alone: refuse it up front.
  for (const CurriculumStage& s : o.curriculum) {
    if (!data.tasks_fitting(s.max_tokens).empty() || o.mix.text_share >= 1) continue;
    std::string needs;
    for (const auto& [task, tokens] : data.task_minimums())
      needs += (needs.empty() ? "" : ", ") + task + " " + std::to_string(tokens);
    throw Error("curriculum stage of " + std::to_string(s.max_tokens) +
                " tokens: no training task fits it (tokens each task needs: " + needs + ")");
  }
  std::vector<int> step_tokens;  // each step's curriculum length
  for (const CurriculumStage& s : o.curriculum)
    step_tokens.insert(step_tokens.end(), s.steps, s.max_tokens);
  const int total = static_cast<int>(step_tokens.size());
  // Batches are made on a second thread while the model trains on the previous one (on a GPU
  // making them takes as long as training on them). One rng, used by one batch at a time in
  // step order, so a seed still repeats the run exactly.
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + 1);
  const auto make_batch = [&](int max_tokens) {
    std::vector<Example> batch;
    int64_t tokens = 0;
    while (tokens < o.tokens_per_step) {
      batch.push_back(data.next(max_tokens, rng));
      tokens += static_cast<int64_t>(batch.back().tokens.size());
    }
    return batch;
  };
  std::future<std::vector<Example>> next_batch =
      std::async(std::launch::async, make_batch, step_tokens.front());
  const std::function<double()> now = o.clock ? o.clock : [] {
    return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
  };
  const double t0 = now();
  int step = 0;
  for (const CurriculumStage& stage : o.curriculum) {
    if (cb.on_stage) cb.on_stage(stage, data.tasks_fitting(stage.max_tokens));
    for (int i = 0; i < stage.steps; ++i, ++step) {
      const Clock::time_point ts = Clock::now();
      const std::vector<Example> batch = next_batch.get();
      const double data_wait_s = seconds_since(ts);
      if (step + 1 < total)
        next_batch = std::async(std::launch::async, make_batch, step_tokens[step + 1]);
      const StepCounts counts = count_targets(batch);
      StepReport r;
      r.step = step + 1;
      r.total_steps = total;
      r.max_tokens = stage.max_tokens;
      r.examples = static_cast<int>(batch.size());
      r.tokens = static_cast<int>(counts.tokens);
      r.data_wait_s = data_wait_s;
      const double time_done = o.time_limit_s > 0 ? (now() - t0) / o.time_limit_s : 0.0;
      r.lr = learning_rate(o, step, total, time_done);
      // Per-example figures stay on the device until the step ends: a .item() per example
      // would make the host wait for every forward pass before queueing its backward.
      const at::TensorOptions on_device = at::TensorOptions(at::kDouble).device(o.device);
      at::Tensor answer_loss = at::zeros({}, on_device), lm_loss = at::zeros({}, on_device),
                 distill_loss = at::zeros({}, on_device),
                 token_distill_sum = at::zeros({}, on_device);
      at::Tensor exact = at::zeros({}, on_device.dtype(at::kLong));
      int task_examples = 0;
      for (const Example& ex : batch) {
        const int64_t n = static_cast<int64_t>(ex.tokens.size());
        const std::vector<int> inputs(ex.tokens.begin(), ex.tokens.end() - 1);
        const at::Tensor targets =
            at::tensor(std::vector<int64_t>(ex.tokens.begin() + 1, ex.tokens.end()), at::kLong)
                .to(o.device);
        std::vector<float> is_answer(n - 1);
        double answers = 0;
        for (int64_t j = 1; j < n; ++j) {
          is_answer[j - 1] = ex.answer[j] ? 1.f : 0.f;
          answers += is_answer[j - 1];
        }
        const at::Tensor answer = at::tensor(is_answer).to(o.device);
        // Distillation needs keys before its window; shorter examples train without it.
        const bool distill = teacher && static_cast<int64_t>(inputs.size()) > o.distill_window;
        at::Tensor logits, distill_term, token_term;
        if (distill) {
          at::Tensor want, teacher_logits;
          {
            at::NoGradGuard no_grad;
            want = key_attention(teacher->transformer, inputs, o.distill_window, &teacher_logits);
          }
          const at::Tensor got =
              key_attention(model->transformer, inputs, o.distill_window, &logits);
          distill_term = attention_distill_loss(got, want) / double(batch.size());
          if (o.token_distill_weight > 0)  // else no [positions, vocab] softmaxes in the graph
            token_term = token_distill_loss(logits, teacher_logits) / double(batch.size());
        } else {
          logits = model->transformer.sequence_logits(inputs);
        }
        const at::Tensor ce =
            at::nll_loss(at::log_softmax(logits, -1), targets, {}, at::Reduction::None);
        const at::Tensor answer_mean = (ce * answer).sum() / std::max(1.0, answers);
        const at::Tensor other_sum = (ce * (1 - answer)).sum();
        at::Tensor loss = answer_mean / double(std::max<int64_t>(1, counts.task_examples)) +
                          other_sum * (o.lm_weight / std::max<int64_t>(1, counts.other));
        if (distill) {
          loss = loss + distill_term * o.distill_weight;
          distill_loss += distill_term.detach();
        }
        if (token_term.defined()) {
          loss = loss + token_term * o.token_distill_weight;
          token_distill_sum += token_term.detach();
        }
        loss.backward();
        answer_loss += answer_mean.detach() / std::max<int64_t>(1, counts.task_examples);
        lm_loss += other_sum.detach() / std::max<int64_t>(1, counts.other);
        if (ex.task != "text") {
          ++task_examples;
          const at::Tensor hit = (logits.detach().argmax(-1) == targets) | (answer == 0);
          exact += hit.all().to(at::kLong);
        }
      }
      r.answer_loss = answer_loss.item<double>();
      r.lm_loss = lm_loss.item<double>();
      r.answer_accuracy = task_examples ? double(exact.item<int64_t>()) / task_examples : 0.0;
      r.distill_loss = distill_loss.item<double>();
      r.token_distill_loss = token_distill_sum.item<double>();
      r.loss = r.answer_loss + o.lm_weight * r.lm_loss + o.distill_weight * r.distill_loss +
               o.token_distill_weight * r.token_distill_loss;
      r.grad_norm = clip_gradients(all, o.clip);
      for (auto& g : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(g.options()).lr(r.lr);
      optimizer.step();
      optimizer.zero_grad();
      r.elapsed_s = now() - t0;
      r.tokens_per_s = counts.tokens / std::max(1e-9, seconds_since(ts));
      if (cb.on_step) cb.on_step(r);
      if (r.step % 10 == 0 || r.step == total)
        part["log"].push_back({{"step", r.step},
                               {"max_tokens", r.max_tokens},
                               {"loss", r.loss},
                               {"answer_loss", r.answer_loss},
                               {"lm_loss", r.lm_loss},
                               {"distill_loss", r.distill_loss},
                               {"token_distill_loss", r.token_distill_loss},
                               {"answer_accuracy", r.answer_accuracy},
                               {"tokens_per_s", r.tokens_per_s},
                               {"data_wait_s", r.data_wait_s},
                               {"elapsed_s", r.elapsed_s}});
      const bool out_of_time = o.time_limit_s > 0 && r.elapsed_s >= o.time_limit_s;
      const bool last = r.step == total || out_of_time;
      if ((o.eval_every > 0 && r.step % o.eval_every == 0) || last) {
        const std::vector<std::string> tasks = data.tasks_fitting(stage.max_tokens);
        if (o.eval_samples > 0) {
          const EvalReport e =
              evaluate(*model, held_out, tasks, stage.max_tokens - 64, o.eval_samples, r.step);
          if (e.samples > 0) {  // none when no held-out task fits the stage's length
            part["eval"].push_back({{"step", e.step},
                                    {"length", e.length},
                                    {"score", e.score},
                                    {"samples", e.samples}});
            if (cb.on_eval) cb.on_eval(e);
          }
        }
      }
      if ((o.save_every > 0 && r.step % o.save_every == 0) || last) save(r.step, r.elapsed_s);
      if (out_of_time) {
        if (cb.on_message)
          cb.on_message("time budget of " + std::to_string(int(o.time_limit_s)) +
                        " s spent after step " + std::to_string(r.step) + " of " +
                        std::to_string(total));
        next_batch.wait();  // the batch being made uses data and rng, which end here
        return;
      }
    }
  }
}

}  // namespace dapx
