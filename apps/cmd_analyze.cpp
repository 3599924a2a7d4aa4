// dapx analyze: draft/target agreement on prompts (a file, or held-out RULER-style samples):
// rank correlation and top-k overlap of their key importance, and the draft's output error.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "common.h"
#include "eval/agreement.h"
#include "eval/ruler_tasks.h"
#include "eval/seeds.h"
#include "util/error.h"

namespace dapx::cli {
namespace {

struct Flags {
  std::string model, draft, prompt_file, tasks = "niah_single_1,niah_single_2,niah_multikey_1",
                                         report;
  int length = 1024, samples = 4;
  uint64_t seed = eval::kValidationSeed;  // analyze is for choosing drafts and settings
  bool json = false;
  eval::AgreementOptions opts;
  RuntimeFlags runtime;
};

// Two gnuplot charts: importance over positions (first prompt), correlation per target layer.
void write_report(const nlohmann::json& rows, const std::string& dir) {
  std::filesystem::create_directories(dir);
  const auto& first = rows.at(0).at("speckv");
  std::ofstream gp(dir + "/agreement.gp");
  gp << "set terminal svg size 1000,520 dynamic font 'sans,12'\nset grid\n"
     << "set output '" << dir << "/importance.svg'\nset title 'Key importance, first prompt "
     << "(SpecKV scoring, mean over layers and heads)'\nset xlabel 'prompt position'\n"
     << "set ylabel 'attention score'\nplot '-' with lines title 'target', '-' with lines "
     << "title 'draft'\n";
  for (const char* who : {"target", "draft"}) {
    const auto& v = first.at(who);
    for (size_t i = 0; i < v.size(); ++i) gp << i << " " << v[i].get<double>() << "\n";
    gp << "e\n";
  }
  gp << "set output '" << dir << "/spearman_per_layer.svg'\nset title 'Spearman correlation of "
     << "each target layer with the draft (mean over prompts)'\nset xlabel 'target layer'\n"
     << "set ylabel 'Spearman'\nset yrange [-1:1]\nplot '-' with linespoints lw 2 notitle\n";
  const size_t layers = first.at("per_layer_spearman").size();
  for (size_t l = 0; l < layers; ++l) {
    double sum = 0;
    for (const auto& r : rows) sum += r.at("speckv").at("per_layer_spearman")[l].get<double>();
    gp << l << " " << sum / rows.size() << "\n";
  }
  gp << "e\n";
  gp.close();
  if (std::system(("gnuplot '" + dir + "/agreement.gp'").c_str()) != 0)
    throw Error("gnuplot failed (Debian package gnuplot-nox) on " + dir + "/agreement.gp");
}

void run(const Flags& f) {
  const ComputeOptions opts = apply_runtime_flags(f.runtime);
  const auto [target, draft] = load_target_and_draft(f.model, f.draft, opts);
  std::vector<std::pair<std::string, std::vector<int>>> prompts;
  if (!f.prompt_file.empty()) {
    prompts.emplace_back(f.prompt_file,
                         target->tokenizer.encode(read_prompt_file(f.prompt_file, target->config)));
  } else {
    const eval::TaskSuite suite(default_data_dir() + "/eval/ruler_templates.json",
                                eval::TextSources::load(eval::Split::Eval), eval::Split::Eval);
    for (const std::string& task : split_list(f.tasks))
      for (int i = 0; i < f.samples; ++i)
        prompts.emplace_back(
            task, target->tokenizer.encode(
                      suite.make(task, target->tokenizer, f.length, f.seed + i).prompt()));
  }
  nlohmann::json rows = nlohmann::json::array();
  double sums[6] = {0, 0, 0, 0, 0, 0};
  if (!f.json)
    std::printf("%-18s %7s | %-21s | %-21s | %8s %8s\n", "prompt", "tokens", "SpecKV rho / top-k",
                "window rho / top-k", "KL", "agree");
  for (const auto& [name, tokens] : prompts) {
    nlohmann::json r = eval::analyze_prompt(*target, *draft, tokens, f.opts);
    r["prompt"] = name;
    const double v[6] = {r["speckv"]["spearman"],
                         r["speckv"]["topk_overlap"],
                         r["window"]["spearman"],
                         r["window"]["topk_overlap"],
                         r["mean_kl"],
                         r["greedy_agreement"]};
    for (int i = 0; i < 6; ++i) sums[i] += v[i];
    if (!f.json)
      std::printf("%-18s %7d | %9.3f / %9.3f | %9.3f / %9.3f | %8.3f %7.0f%%\n", name.c_str(),
                  r["prompt_tokens"].get<int>(), v[0], v[1], v[2], v[3], v[4], 100 * v[5]);
    rows.push_back(std::move(r));
  }
  const double n = static_cast<double>(rows.size());
  if (f.json) {
    for (auto& r : rows)  // the vectors go to the report, not the JSON summary
      for (const char* s : {"speckv", "window"}) {
        r[s].erase("target");
        r[s].erase("draft");
      }
    std::cout << nlohmann::json({{"prompts", rows},
                                 {"mean",
                                  {{"speckv_spearman", sums[0] / n},
                                   {"speckv_topk_overlap", sums[1] / n},
                                   {"window_spearman", sums[2] / n},
                                   {"window_topk_overlap", sums[3] / n},
                                   {"mean_kl", sums[4] / n},
                                   {"greedy_agreement", sums[5] / n}}}})
                     .dump(2)
              << "\n";
  } else {
    std::printf("%-18s %7s | %9.3f / %9.3f | %9.3f / %9.3f | %8.3f %7.0f%%\n", "mean", "",
                sums[0] / n, sums[1] / n, sums[2] / n, sums[3] / n, sums[4] / n, 100 * sums[5] / n);
    std::printf(
        "(top-k: k = budget - window = %lld scored keys; KL(target || draft) and greedy "
        "agreement over the %lld lookahead positions)\n",
        static_cast<long long>(f.opts.budget - f.opts.window),
        static_cast<long long>(f.opts.lookahead));
  }
  if (!f.report.empty()) {
    write_report(rows, f.report);
    std::cerr << "plots written to " << f.report << "\n";
  }
}

}  // namespace

void register_analyze(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "analyze",
      "Draft/target agreement: correlation of their key importance (SpecKV's and the window's "
      "scoring) and the draft's output error, on a prompt file or held-out RULER-style samples");
  cmd->add_option("--model,-m", f->model, "Target model directory")->required();
  cmd->add_option("--draft,-d", f->draft, "Draft model directory")->required();
  cmd->add_option("--prompt-file,-f", f->prompt_file, "Analyse this prompt");
  cmd->add_option("--tasks", f->tasks, "Else: RULER-style tasks (comma-separated)");
  cmd->add_option("--length", f->length, "Their prompt length in tokens")
      ->check(int_range(64, 1 << 20));
  cmd->add_option("--samples", f->samples, "Samples per task")->check(int_range(1, 10000));
  cmd->add_option("--seed", f->seed,
                  "Sample i uses seed + i; the default is the validation seeds, for choosing "
                  "(0 gives the reported seeds)")
      ->check(seed_value());
  cmd->add_option("--lookahead", f->opts.lookahead, "Draft lookahead tokens (L)")
      ->check(int_range(1, 4096));
  cmd->add_option("--window", f->opts.window, "Observation window (W)")->check(int_range(1, 4096));
  cmd->add_option("--budget", f->opts.budget, "Budget whose top-k overlap is reported")
      ->check(int_range(2, 1 << 20));
  cmd->add_flag("--json", f->json, "JSON instead of a table");
  cmd->add_option("--report", f->report, "Write SVG plots (gnuplot) here");
  add_runtime_flags(*cmd, f->runtime);
  cmd->callback([f] { run(*f); });
}

}  // namespace dapx::cli
