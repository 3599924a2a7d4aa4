// dapx eval: accuracy per task, length, method and budget on the RULER-style suite (generated
// offline) or user-supplied LongBench JSONL; resumable results, a summary table, a report.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>

#include "common.h"
#include "eval/fingerprint.h"
#include "eval/report.h"
#include "eval/runner.h"
#include "eval/seeds.h"
#include "methods/catalogue.h"
#include "util/error.h"

namespace dapx::cli {
namespace {

struct Flags {
  std::string model, draft, suite = "ruler", data, tasks = "all", lengths = "4096",
                            methods = "full", budgets, out = "eval_results.jsonl", report;
  std::vector<std::string> params;
  int samples = 10, max_new_tokens = 0;
  uint64_t seed = eval::kReportSeed;
  bool json = false, chat = false, validation = false;
  std::string haystack = "fortunes";
  RuntimeFlags runtime;
};

std::vector<int64_t> integers(const std::string& s, const char* flag) {
  std::vector<int64_t> out;
  for (const std::string& item : split_list(s)) {
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (used != item.size() || out.back() < 1) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error(std::string(flag) + ": '" + item + "' is not a positive integer");
    }
  }
  return out;
}

// --param METHOD.NAME=VALUE: VALUE as JSON when it parses (numbers), else as a string.
std::map<std::string, nlohmann::json> method_params(const std::vector<std::string>& given) {
  std::map<std::string, nlohmann::json> out;
  for (const std::string& p : given) {
    const size_t dot = p.find('.'), eq = p.find('=');
    if (dot == std::string::npos || eq == std::string::npos || dot > eq)
      throw Error("--param '" + p + "' is not METHOD.NAME=VALUE (e.g. snapkv.window=16)");
    const std::string method = p.substr(0, dot), name = p.substr(dot + 1, eq - dot - 1);
    const ParamSpec* spec = method_spec(method).param(name);  // unknown: the catalogue says
    out[method][name] =
        spec ? param_from_text(method, *spec, p.substr(eq + 1)) : nlohmann::json(p.substr(eq + 1));
  }
  return out;
}

eval::EvalPlan make_plan(const Flags& f, const std::vector<std::string>& all_tasks) {
  eval::EvalPlan plan;
  plan.tasks = f.tasks == "all" ? all_tasks : split_list(f.tasks);
  for (int64_t l : integers(f.lengths, "--lengths")) plan.lengths.push_back(static_cast<int>(l));
  plan.samples = f.samples;
  plan.seed = f.validation ? eval::kValidationSeed : f.seed;
  plan.max_new_tokens = f.max_new_tokens;
  plan.chat = f.chat;
  const auto params = method_params(f.params);
  const std::vector<int64_t> budgets =
      f.budgets.empty() ? std::vector<int64_t>{0} : integers(f.budgets, "--budgets");
  for (const std::string& m : split_list(f.methods)) {
    const MethodSpec& spec = method_spec(m);
    const nlohmann::json p = params.count(m) ? params.at(m) : nlohmann::json::object();
    if (spec.budget_param().empty()) {
      plan.runs.push_back({m, 0, p});
      continue;
    }
    for (int64_t b : budgets) plan.runs.push_back({m, b, p});
  }
  return plan;
}

class ProgressBar {
 public:
  void row(int done, int total, const nlohmann::json& row) {
    ++new_rows_;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = new_rows_ / std::max(elapsed, 1e-9);
    const double eta = (total - done) / std::max(rate, 1e-9);
    char line[256];
    std::snprintf(line, sizeof line, "[%d/%d] %.2f rows/s, ETA %dm%02ds | %s %s len %d: %.0f", done,
                  total, rate, int(eta) / 60, int(eta) % 60, row.value("run", "").c_str(),
                  row.value("task", "").c_str(), row.value("length", 0), row.value("score", 0.0));
    if (tty_)
      std::cerr << "\r" << line << "\033[K" << std::flush;
    else if (done % 10 == 0 || done == total)
      std::cerr << line << "\n";
  }
  void end() {
    if (tty_ && new_rows_ > 0) std::cerr << "\n";
  }

 private:
  bool tty_ = isatty(STDERR_FILENO) != 0;
  int new_rows_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Everything a row depends on that its key (suite, task, length, sample, run label with the
// budget and --param values) does not hold: rows of a file with another setup are not resumed.
nlohmann::json eval_setup(const Flags& f, const ComputeOptions& opts, const LoadedModel& target,
                          const std::string& data_dir) {
  const auto dir = [](const std::string& d) {
    return d.empty() ? nlohmann::json()
                     : nlohmann::json(std::filesystem::weakly_canonical(d).string());
  };
  const auto dtype = [](at::ScalarType t) { return t == at::kBFloat16 ? "bf16" : "f32"; };
  const bool cpu = opts.device.is_cpu();
  nlohmann::json setup = {
      {"model", dir(f.model)},
      {"model_hash", eval::model_fingerprint(f.model)},
      {"draft", dir(f.draft)},
      {"draft_hash",
       f.draft.empty() ? nlohmann::json() : nlohmann::json(eval::model_fingerprint(f.draft))},
      {"dtype", dtype(opts.weight_dtype)},
      {"kv_dtype", dtype(opts.kv_dtype)},
      {"weights", opts.int8_weights ? "int8" : "native"},
      // The prefill GEMM --gemm auto chose on this machine (a GPU multiplies in the weight dtype).
      {"gemm", cpu ? dtype(target.transformer.linear_format().gemm) : dtype(opts.weight_dtype)},
      {"device", cpu ? "cpu" : "cuda"},
      {"prefill_chunk", f.runtime.prefill_chunk},
      {"max_new_tokens", f.max_new_tokens},
      {"chat", f.chat},
      {"suite", f.suite}};
  if (f.suite == "ruler") {
    setup["seed"] = f.validation ? eval::kValidationSeed : f.seed;
    setup["templates_hash"] = eval::file_hash(data_dir + "/eval/ruler_templates.json");
  } else {
    setup["longbench_config_hash"] = eval::file_hash(data_dir + "/eval/longbench.json");
  }
  return setup;
}

void run(const Flags& f) {
  ComputeOptions opts = apply_runtime_flags(f.runtime);
  const auto [target, draft] = load_target_and_draft(f.model, f.draft, opts);
  if (f.chat) eval::chat_wrapping(*target);  // no template: said before anything is read
  const std::string data_dir = default_data_dir();
  nlohmann::json setup = eval_setup(f, opts, *target, data_dir);
  std::optional<eval::TaskSuite> suite;
  if (f.suite == "ruler") {
    eval::TextSources sources = eval::TextSources::load(eval::Split::Eval);
    eval::use_haystack(sources, f.haystack);
    if (!sources.haystack_name.empty()) setup["haystack"] = sources.haystack_name;
    setup["text_sources_hash"] = eval::text_sources_hash(sources);
    suite.emplace(data_dir + "/eval/ruler_templates.json", std::move(sources), eval::Split::Eval);
  } else if (f.data.empty()) {
    throw Error("--suite longbench needs --data DIR (LongBench JSONL files)");
  }
  eval::ResultLog log(f.out, setup);
  ProgressBar bar;
  eval::Progress progress;
  progress.on_row = [&](int done, int total, const nlohmann::json& row) {
    bar.row(done, total, row);
  };
  eval::EvalPlan plan;
  if (suite) {
    plan = make_plan(f, suite->task_names());
    eval::run_ruler(*target, draft.get(), *suite, plan, log, progress);
  } else {
    const auto config = eval::LongBenchConfig::load(data_dir + "/eval/longbench.json");
    std::vector<std::string> present;
    for (const std::string& name : config.names())
      if (std::filesystem::exists(std::filesystem::path(f.data) / (name + ".jsonl")))
        present.push_back(name);
    plan = make_plan(f, present);
    eval::run_longbench(*target, draft.get(), config, f.data, plan, log, progress);
  }
  bar.end();
  // Only this command's rows: the file may hold other methods or more samples.
  const nlohmann::json summary = eval::summarize(eval::rows_of_plan(log.rows(), plan));
  if (f.json)
    std::cout << summary.dump(2) << "\n";
  else
    std::cout << eval::summary_table(summary);
  if (!f.report.empty()) {
    eval::write_report(summary, f.report);
    std::cerr << "report written to " << f.report << "/summary.md\n";
  }
}

}  // namespace

void register_eval(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Accuracy per task, length, method and budget: the RULER-style suite generated offline "
      "(or LongBench JSONL); every method sees the same samples; resumable");
  cmd->add_option("--model,-m", f->model, "Target model directory")->required();
  cmd->add_option("--draft,-d", f->draft, "Draft model directory (draft-based methods)");
  cmd->add_option("--suite", f->suite, "ruler (generated) or longbench (--data)")
      ->check(CLI::IsMember({"ruler", "longbench"}));
  cmd->add_option("--data", f->data, "LongBench: directory of <dataset>.jsonl files");
  cmd->add_option("--tasks", f->tasks, "Comma-separated tasks or datasets, or all");
  cmd->add_option("--lengths", f->lengths, "RULER prompt lengths in tokens, e.g. 4096,8192");
  cmd->add_option("--methods", f->methods, "Comma-separated methods, e.g. full,snapkv,speckv");
  cmd->add_option("--budgets", f->budgets,
                  "Comma-separated budgets (KV entries per head; prompt tokens for prompt "
                  "methods; SpecKV's budget for speckv-pc); default: each method's");
  cmd->add_option("--param", f->params, "METHOD.NAME=VALUE, e.g. speckv.lookahead=8 (repeatable)");
  cmd->add_option("--samples", f->samples, "Samples per task and length")
      ->check(int_range(1, 100000));
  CLI::Option* seed =
      cmd->add_option("--seed", f->seed,
                      "Sample i uses seed + i; the default seeds (0-49) are for reporting only")
          ->check(seed_value());
  cmd->add_flag("--validation", f->validation,
                "Use the validation seeds (" + std::to_string(eval::kValidationSeed) +
                    " + i) for choosing a checkpoint, draft, budget or parameter, so that the "
                    "reported seeds stay unseen")
      ->excludes(seed);
  cmd->add_option("--haystack", f->haystack,
                  "RULER: fortunes (the tasks' own haystacks) or licenses (Debian's license "
                  "texts, which no training data uses, for every needle and variable-tracking "
                  "task whose haystack is text)")
      ->check(CLI::IsMember({"fortunes", "licenses"}));
  cmd->add_option("--max-new-tokens", f->max_new_tokens,
                  "Generation length (default: the task's, as RULER / LongBench set it)")
      ->check(int_range(0, 1 << 20));
  cmd->add_flag("--chat", f->chat,
                "Prompts in the model's chat template (ChatML or Llama 3), for instruct models; "
                "LongBench's few-shot and code sets stay raw, as LongBench does");
  cmd->add_option("--out,-o", f->out,
                  "Result file (JSONL, one row per generation); rows already there are skipped. "
                  "Resuming a file made with another model, draft, seed, --max-new-tokens, "
                  "--chat, dtype or task data is an error naming what differs");
  cmd->add_flag("--json", f->json, "Print the summary as JSON");
  cmd->add_option("--report", f->report, "Write summary.md and SVG plots (gnuplot) here");
  add_runtime_flags(*cmd, f->runtime);
  cmd->callback([f] { run(*f); });
}

}  // namespace dapx::cli
