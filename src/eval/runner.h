#pragma once
// `dapx eval`: every (length, task, sample) prompt goes through every (method, budget) run on
// the same target (and draft), one row per generation in a resumable JSONL file.
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/generator.h"
#include "engine/model.h"
#include "eval/longbench.h"
#include "eval/ruler_tasks.h"

namespace dapx::eval {

// One method setting of the grid: a method, its budget (0: the method's default) and extra
// parameters by name (checked against the method catalogue, methods/catalogue.h).
struct MethodRun {
  std::string method;
  int64_t budget = 0;
  nlohmann::json params = nlohmann::json::object();
  std::string label() const;  // "snapkv@128", "speckv-pc@64{...}"
};

struct EvalPlan {
  std::vector<std::string> tasks;  // RULER task names, or LongBench dataset names
  std::vector<int> lengths;        // RULER: prompt tokens (LongBench: ignored)
  std::vector<MethodRun> runs;
  int samples = 10;
  uint64_t seed = 0;       // sample i of a (task, length) has seed seed + i
  int max_new_tokens = 0;  // 0: the task's own generation length
  // Prompts in the target's chat format (a user turn, the assistant turn opened), for instruct
  // models. RULER: the task's input is the user turn and its answer prefix follows the opened
  // assistant turn, as RULER does; the sample is made shorter by the markup's tokens, so the
  // prompt stays near its length. LongBench: only the datasets whose chat_template is true, as
  // LongBench's pred.py. A target without a ChatML or Llama 3 template is an error.
  bool chat = false;
};

// Rows already written (loaded at open) plus appends, flushed per row. A last line cut short
// by a killed run is dropped (and overwritten); any other malformed line is an error naming
// the file and line.
// `setup` (optional: an object of the models and the settings that change a row but are not in
// its key) is stored in every appended row as "setup"; a file holding a row of another setup
// (or none) is an error at open naming each field that differs with both values, since
// resuming would report that run's rows as this run's.
class ResultLog {
 public:
  explicit ResultLog(const std::filesystem::path& path,
                     const nlohmann::json& setup = nlohmann::json());
  bool has(const std::string& key) const { return keys_.count(key) > 0; }
  void append(const nlohmann::json& row);
  const std::vector<nlohmann::json>& rows() const { return rows_; }
  const std::filesystem::path& path() const { return path_; }
  static std::string key_of(const nlohmann::json& row);

 private:
  std::filesystem::path path_;
  nlohmann::json setup_;
  std::vector<nlohmann::json> rows_;
  std::set<std::string> keys_;
};

struct Progress {
  std::function<void(int done, int total, const nlohmann::json& row)> on_row;
};

// One generation of `run` on a tokenized prompt: output, timings, KV bytes, peak memory.
nlohmann::json run_one(const LoadedModel& target, const LoadedModel* draft, const MethodRun& run,
                       const std::vector<int>& prompt, const GenerationParams& params);

// What generates a row: given the row's key fields (suite, task, length, sample, run), the run,
// the prompt and the generation settings, the row's generation fields ("output" at least, as
// run_one returns them). Empty: run_one on the models. Tests pass a stub to check the prompts
// and the scoring without generating.
using Completion =
    std::function<nlohmann::json(const nlohmann::json& key, const MethodRun& run,
                                 const std::vector<int>& prompt, const GenerationParams& params)>;

// The target's chat markup around one user message, {before, after} (after opens the
// assistant turn). Throws dapx::Error naming the model directory when it has no chat template,
// or one that is neither ChatML nor Llama 3 (the formats dapx renders).
std::pair<std::string, std::string> chat_wrapping(const LoadedModel& target);

// RULER-style suite. `draft` may be null when no run needs it (checked up front). Every row
// records its prompt's tokens_hash (fingerprint.h) as "prompt_hash".
void run_ruler(const LoadedModel& target, const LoadedModel* draft, const TaskSuite& suite,
               const EvalPlan& plan, ResultLog& log, const Progress& progress,
               const Completion& complete = {});
// LongBench: DIR/<dataset>.jsonl per dataset in plan.tasks; prompts longer than the context
// are cut in the middle, as LongBench does. A sample whose prompt differs from the one its rows
// in the log were made from (an edited data file) is an error naming the dataset and sample.
void run_longbench(const LoadedModel& target, const LoadedModel* draft,
                   const LongBenchConfig& config, const std::filesystem::path& data_dir,
                   const EvalPlan& plan, ResultLog& log, const Progress& progress,
                   const Completion& complete = {});

// The rows that belong to `plan` (its tasks, run labels, samples 0..samples-1 and, for RULER,
// its lengths): a results file may hold more (other methods, or samples of a longer run).
std::vector<nlohmann::json> rows_of_plan(const std::vector<nlohmann::json>& rows,
                                         const EvalPlan& plan);

// Mean score per (task, length, run label), RULER category averages, and the runs' mean
// TTFT, latency and KV bytes: {"cells": [...], "categories": [...]}.
nlohmann::json summarize(const std::vector<nlohmann::json>& rows);
// A Markdown table of the summary: rows = task (then categories), columns = run labels.
std::string summary_table(const nlohmann::json& summary);

}  // namespace dapx::eval
