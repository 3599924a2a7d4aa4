// dapx train: trains a model on the training twin of the evaluation tasks plus prose, with a
// length curriculum; checkpoints are HF directories. dapx train-tokenizer: the small
// byte-level BPE vocabulary such a model uses, learnt from the training split's text.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <iostream>

#include "common.h"
#include "eval/text_sources.h"
#include "io/random_model.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "util/error.h"

namespace dapx::cli {
namespace {

struct Flags {
  std::string out, init, shape, tokenizer, curriculum, tasks, save_dtype = "bf16";
  bool reinit = false;
  int max_position = 0;
  double minutes = 0;
  RuntimeFlags runtime;
  TrainOptions opts;
};

// A fresh model directory of `shape` (f32, random) holding the tokenizer, to start from.
void write_initial_model(const Flags& f) {
  if (f.tokenizer.empty()) throw Error("--shape needs --tokenizer FILE (see dapx train-tokenizer)");
  const std::string tok_json = read_file(f.tokenizer);
  const Tokenizer tok = Tokenizer::from_json_string(tok_json, f.tokenizer);
  ModelShape shape = shape_preset(f.shape, Arch::Qwen2);
  shape.vocab = tok.vocab_size();
  if (f.max_position > 0) shape.max_pos = f.max_position;
  ModelConfig cfg = make_config(Arch::Qwen2, shape);
  const auto eos = tok.token_id("<|endoftext|>");
  if (!eos) throw Error("the tokenizer " + f.tokenizer + " has no <|endoftext|> token");
  cfg.eos_token_ids = {*eos};
  cfg.torch_dtype = "float32";
  write_random_model(f.out, cfg, f.opts.seed, DType::F32, tok_json, "raw");
}

class ProgressLine {
 public:
  explicit ProgressLine(double time_limit_s) : time_limit_s_(time_limit_s) {}
  void step(const StepReport& r) {
    double eta = r.elapsed_s / r.step * (r.total_steps - r.step);
    if (time_limit_s_ > 0) eta = std::min(eta, std::max(0.0, time_limit_s_ - r.elapsed_s));
    char distill[64] = "";
    if (r.distill_loss > 0)
      std::snprintf(distill, sizeof distill, ", distill %.3f / tokens %.3f", r.distill_loss,
                    r.token_distill_loss);
    char line[320];
    std::snprintf(line, sizeof line,
                  "step %d/%d len<=%d | loss %.3f (answer %.3f, lm %.3f%s) | answer acc %3.0f%% | "
                  "%.0f tok/s (data wait %.0f ms) | lr %.2e | %s left",
                  r.step, r.total_steps, r.max_tokens, r.loss, r.answer_loss, r.lm_loss, distill,
                  100 * r.answer_accuracy, r.tokens_per_s, 1e3 * r.data_wait_s, r.lr,
                  duration(eta).c_str());
    if (tty_) {
      std::cerr << "\r" << line << "\033[K" << std::flush;
    } else if (r.step % 10 == 0 || r.step == r.total_steps) {
      std::cerr << line << "\n";
    }
  }
  void message(const std::string& text) { std::cerr << (tty_ ? "\r\033[K" : "") << text << "\n"; }

 private:
  static std::string duration(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%dh%02dm%02ds", int(s / 3600), int(s / 60) % 60, int(s) % 60);
    return buf;
  }
  double time_limit_s_;  // --minutes: the run ends by then, whatever its step count
  bool tty_ = isatty(STDERR_FILENO) != 0;
};

void run_train(Flags& f, const std::string& command) {
  TrainOptions o = f.opts;
  o.command = command;
  o.out = f.out;
  o.data_dir = default_data_dir();
  o.curriculum = parse_curriculum(f.curriculum);
  o.time_limit_s = 60 * f.minutes;
  o.mix.tasks = split_list(f.tasks);
  o.save_dtype = f.save_dtype == "f32" ? DType::F32 : DType::BF16;
  o.device = apply_runtime_flags(f.runtime).device;  // before anything is written
  if (!f.shape.empty() == !f.init.empty())
    throw Error("give either --init DIR (continue from a model) or --shape NAME (start fresh)");
  if (!f.shape.empty()) {
    write_initial_model(f);
    o.init = f.out;
    o.reinit = true;
  } else {
    o.init = f.init;
    o.reinit = f.reinit;
  }
  ProgressLine progress(o.time_limit_s);
  TrainCallbacks cb;
  cb.on_stage = [&](const CurriculumStage& s, const std::vector<std::string>& tasks) {
    std::string names;
    for (const std::string& t : tasks) names += (names.empty() ? "" : ",") + t;
    progress.message("stage: " + std::to_string(s.steps) +
                     " steps of <= " + std::to_string(s.max_tokens) +
                     " tokens; tasks that fit: " + (names.empty() ? "none (prose only)" : names));
  };
  cb.on_step = [&](const StepReport& r) { progress.step(r); };
  cb.on_eval = [&](const EvalReport& e) {
    char line[160];
    std::snprintf(line, sizeof line,
                  "eval at step %d: %.1f (RULER score, greedy, %d held-out samples of %d tokens)",
                  e.step, e.score, e.samples, e.length);
    progress.message(line);
  };
  cb.on_save = [&](const std::filesystem::path& dir) { progress.message("saved " + dir.string()); };
  cb.on_message = [&](const std::string& m) { progress.message(m); };
  train(o, cb);
}

void run_train_tokenizer(const std::string& out, int merges) {
  const eval::TextSources text = eval::TextSources::load(eval::Split::Train);
  std::string corpus;
  for (const std::string& p : text.essay) corpus += p + "\n\n";
  for (const std::string& w : text.words) corpus += w + " ";
  corpus += read_file(default_data_dir() + "/eval/train_templates.json");
  const std::string json = train_byte_level_bpe_json(corpus, merges);
  FILE* file = std::fopen(out.c_str(), "wb");
  if (!file || std::fwrite(json.data(), 1, json.size(), file) != json.size() ||
      std::fclose(file) != 0)
    throw Error("cannot write '" + out + "'");
  std::cerr << "wrote " << out << ": " << 256 + merges + 3 << " tokens learnt from "
            << corpus.size() / 1024 << " KiB of the training split\n";
}

}  // namespace

void register_train(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a model (LibTorch autograd over the inference layers) on the training twin of the "
      "evaluation tasks plus prose, with a length curriculum; checkpoints are HF directories");
  cmd->add_option("--out,-o", f->out, "Checkpoint directory (written every --save-every steps)")
      ->required();
  cmd->add_option("--init", f->init, "Start from this HF model directory (e.g. a checkpoint)");
  cmd->add_option("--shape", f->shape,
                  "Start fresh with this shape (train-target, train-draft, tiny, small, ...)");
  cmd->add_option("--tokenizer", f->tokenizer, "tokenizer.json for --shape");
  cmd->add_flag("--reinit", f->reinit, "With --init: keep its config and tokenizer, fresh weights");
  cmd->add_option("--max-position", f->max_position, "Context of a fresh model (default: shape's)")
      ->check(int_range(1, 1 << 24));
  cmd->add_option("--curriculum", f->curriculum,
                  "Length stages TOKENS:STEPS,... e.g. 256:200,512:200,1024:300")
      ->required();
  cmd->add_option("--tokens-per-step", f->opts.tokens_per_step, "Tokens per optimizer step")
      ->check(int_range(1, 1 << 24));
  cmd->add_option("--lr", f->opts.lr, "Peak learning rate")->check(real_range(1e-7, 1.0));
  cmd->add_option("--min-lr-fraction", f->opts.min_lr_fraction, "Cosine floor, x peak")
      ->check(real_range(0.0, 1.0));
  cmd->add_option("--minutes", f->minutes,
                  "Wall-clock budget: the cosine follows steps or time, whichever is further, "
                  "and training stops, saved, when it is spent (0: none)")
      ->check(real_range(0, 1e6));
  cmd->add_option("--warmup", f->opts.warmup_steps, "Linear warm-up steps")
      ->check(int_range(0, 1 << 20));
  cmd->add_option("--weight-decay", f->opts.weight_decay, "AdamW weight decay (matrices)")
      ->check(real_range(0.0, 1.0));
  cmd->add_option("--clip", f->opts.clip, "Gradient norm clip")->check(real_range(1e-6, 1e6));
  cmd->add_option("--lm-weight", f->opts.lm_weight,
                  "Weight of the language-model loss on non-answer tokens")
      ->check(real_range(0.0, 10.0));
  CLI::Option* teacher = cmd->add_option(
      "--teacher", f->opts.teacher,
      "Distillation: a model with the same tokenizer (e.g. the target) whose key attention, "
      "read as SpecKV reads it, this model learns to rank alike (--distill-weight), and whose "
      "next-token distributions it learns to follow (--distill-tokens)");
  cmd->add_option("--distill-weight", f->opts.distill_weight,
                  "Weight of the attention distillation loss")
      ->check(real_range(0.0, 1000.0))
      ->needs(teacher);
  cmd->add_option("--distill-tokens", f->opts.token_distill_weight,
                  "Weight of the next-token distillation loss (KL from the teacher's "
                  "next-token distributions)")
      ->check(real_range(0.0, 1000.0))
      ->needs(teacher);
  cmd->add_option("--distill-window", f->opts.distill_window,
                  "Last queries of each example whose attention is distilled")
      ->check(int_range(1, 1 << 20))
      ->needs(teacher);
  cmd->add_option("--text-share", f->opts.mix.text_share, "Share of plain-prose examples")
      ->check(real_range(0.0, 1.0));
  cmd->add_option("--tasks", f->tasks, "Comma-separated training tasks (default: all)");
  cmd->add_option("--templates", f->opts.templates,
                  "Prompt phrasing: eval (the evaluation's templates; words, values and prose "
                  "from the training split) or train (paraphrased templates)")
      ->check(CLI::IsMember({"eval", "train"}));
  cmd->add_option("--seed", f->opts.seed, "Seed of initialisation and data")->check(seed_value());
  cmd->add_option("--eval-every", f->opts.eval_every, "Held-out evaluation every N steps")
      ->check(int_range(0, 1 << 20));
  cmd->add_option("--eval-samples", f->opts.eval_samples, "Held-out samples per evaluation")
      ->check(int_range(0, 10000));
  cmd->add_option("--save-every", f->opts.save_every, "Checkpoint every N steps")
      ->check(int_range(0, 1 << 20));
  cmd->add_option("--save-dtype", f->save_dtype, "bf16 (shipped) or f32 (exact resume)")
      ->check(CLI::IsMember({"bf16", "f32"}));
  cmd->add_option("--threads", f->runtime.threads,
                  "CPU threads (0 = all hardware threads; at most 4 x them)")
      ->check(int_range(0, max_threads()));
  cmd->add_option("--device", f->runtime.device,
                  "cpu, or cuda / cuda:N with a CUDA build of LibTorch (TF32 matmuls)");
  // The options as given, in CLI11's config format: the recipe recorded in train_state.json.
  cmd->callback([f, cmd] { run_train(*f, cmd->config_to_str(false, false)); });

  auto tok_out = std::make_shared<std::string>();
  auto merges = std::make_shared<int>(3837);
  CLI::App* tok = app.add_subcommand(
      "train-tokenizer",
      "Learn a small byte-level BPE vocabulary (tokenizer.json) from the training split's text");
  tok->add_option("--out,-o", *tok_out, "tokenizer.json to write")->required();
  tok->add_option("--merges", *merges, "BPE merges (vocabulary = 256 + merges + 3 special)")
      ->check(int_range(1, 100000));
  tok->callback([tok_out, merges] { run_train_tokenizer(*tok_out, *merges); });
}

}  // namespace dapx::cli
