// dapx demo (the main job of `make run`): held-out long needle prompts through several
// methods side by side: the question, the expected answer, each method's answer, what it kept,
// and what it cost.
#include <cstdio>
#include <iostream>

#include "common.h"
#include "eval/runner.h"
#include "methods/catalogue.h"
#include "util/error.h"

namespace dapx::cli {
namespace {

struct Flags {
  std::string model, draft, task = "niah_single_2", methods = "full,speckv,speckv-pc";
  int length = 2000, budget = 128, max_new_tokens = 32;
  uint64_t seed = 7;
  int samples = 1;
  RuntimeFlags runtime;
};

std::string last_line(const std::string& text) {
  const size_t end = text.find_last_not_of('\n');
  const size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1, end - start);
}

// One held-out prompt through every method: its header and one table row per method; counts
// each method's correct answers into `correct`.
void run_sample(const Flags& f, const eval::TaskSuite& suite, const LoadedModel& target,
                const LoadedModel* draft, uint64_t seed, std::vector<int>& correct) {
  const eval::Sample s = suite.make(f.task, target.tokenizer, f.length, seed);
  const std::vector<int> prompt = target.tokenizer.encode(s.prompt());
  std::string expected;
  for (const std::string& a : s.answers) expected += (expected.empty() ? "" : ", ") + a;
  std::cout << "A held-out " << f.task << " prompt of " << prompt.size()
            << " tokens (evaluation split, seed " << seed << "): a document with a hidden "
            << "fact, then\n  question: " << last_line(s.input) << "\n  expected: " << expected
            << "\n\n";
  std::printf("%-10s %-28s %-7s %12s %10s %8s %9s %10s %11s\n", "method", "answer", "correct",
              "kept tokens", "KV KiB", "TTFT s", "total s", "peak MiB", "tensor MiB");
  GenerationParams params;
  params.max_new_tokens = f.max_new_tokens;
  const std::vector<std::string> methods = split_list(f.methods);
  for (size_t i = 0; i < methods.size(); ++i) {
    const std::string& m = methods[i];
    eval::MethodRun run{m, method_spec(m).budget_param().empty() ? 0 : f.budget,
                        nlohmann::json::object()};
    const nlohmann::json r = eval::run_one(target, draft, run, prompt, params);
    std::string answer = r["output"];
    for (char& c : answer)
      if (c == '\n') c = ' ';
    if (answer.size() > 28) answer = answer.substr(0, 25) + "...";
    const bool ok = eval::string_match_all(r["output"], s.answers) == 100.0;
    correct[i] += ok;
    // Kept prompt tokens: the prompt for KV methods is whole, its cache is not; report the
    // cache entries per head (KV bytes tell the rest) and, for prompt methods, what was read.
    const double kv_kib = r["kv_bytes"].get<double>() / 1024.0;
    const double kv_full_kib = r["kv_bytes_full"].get<double>() / 1024.0;
    char kept[32];
    std::snprintf(kept, sizeof kept, "%.0f%% of KV", 100.0 * kv_kib / std::max(1.0, kv_full_kib));
    std::printf("%-10s %-28s %-7s %12s %10.0f %8.2f %9.2f %10.0f %11.1f\n", m.c_str(),
                answer.c_str(), ok ? "yes" : "NO", kept, kv_kib, r["ttft_s"].get<double>(),
                r["total_s"].get<double>(), r["peak_rss_bytes"].get<double>() / 1048576.0,
                r["tensor_peak_bytes"].get<double>() / 1048576.0);
  }
  std::cout << "\n";
}

void run(Flags f) {
  if (f.model.empty()) {  // the shipped pair, from the source tree or the installed share dir
    f.model = default_models_dir() + "/target";
    if (f.draft.empty()) f.draft = default_models_dir() + "/draft";
    std::cout << "models: the shipped default pair, " << f.model << " and " << f.draft << "\n";
  }
  ComputeOptions opts = apply_runtime_flags(f.runtime);
  const auto [target, draft] = load_target_and_draft(f.model, f.draft, opts);
  const eval::TaskSuite suite(default_data_dir() + "/eval/ruler_templates.json",
                              eval::TextSources::load(eval::Split::Eval), eval::Split::Eval);
  const std::vector<std::string> methods = split_list(f.methods);
  std::vector<int> correct(methods.size(), 0);
  // Consecutive seeds from --seed: the prompts shown are not chosen by their outcome.
  for (int i = 0; i < f.samples; ++i)
    run_sample(f, suite, *target, draft.get(), f.seed + static_cast<uint64_t>(i), correct);
  if (f.samples > 1) {
    std::cout << "correct answers over these " << f.samples << " prompts:";
    for (size_t i = 0; i < methods.size(); ++i)
      std::cout << (i ? ", " : " ") << methods[i] << " " << correct[i] << "/" << f.samples;
    std::cout << "\n";
  }
  std::cout << "(budget " << f.budget << ": KV entries per head for speckv, SpecKV's budget "
            << "after SpecPC keeps 2048 prompt tokens for speckv-pc; peak = this request's "
            << "peak RSS, LibTorch's own floor included; tensor = the most CPU tensor memory "
            << "the request held at once)\n";
}

}  // namespace

void register_demo(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "demo", "One held-out needle-in-a-haystack prompt through several methods, side by side");
  cmd->add_option("--model,-m", f->model,
                  "Target model directory (default: the shipped pair, target and draft)");
  cmd->add_option("--draft,-d", f->draft, "Draft model directory");
  cmd->add_option("--task", f->task, "RULER task of the prompt (default niah_single_2)");
  cmd->add_option("--length", f->length, "Prompt tokens")->check(int_range(16, 1 << 20));
  cmd->add_option("--methods", f->methods, "Comma-separated methods");
  cmd->add_option("--budget", f->budget, "Budget of the compressing methods")
      ->check(int_range(1, 1 << 20));
  cmd->add_option("--seed", f->seed, "Sample seed (evaluation split)")->check(seed_value());
  cmd->add_option("--samples", f->samples,
                  "Prompts to run, seeds --seed, --seed + 1, ...; more than one ends with each "
                  "method's count of correct answers")
      ->check(int_range(1, 1000));
  cmd->add_option("--max-new-tokens,-n", f->max_new_tokens, "Tokens to generate at most")
      ->check(int_range(1, 1 << 20));
  add_runtime_flags(*cmd, f->runtime);
  cmd->callback([f] { run(*f); });
}

}  // namespace dapx::cli
