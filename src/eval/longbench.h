#pragma once
// LongBench (THUDM/LongBench): its JSONL rows, the per-dataset settings of its pred.py / eval.py
// (prompt template, generation length, metric, first-line rule) kept as data in
// data/eval/longbench.json, prompt filling and per-row scoring.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace dapx::eval {

struct LongBenchRow {
  std::string input, context;
  std::vector<std::string> answers, all_classes;
  int64_t length = 0;
  std::string id;  // the row's "_id"
};

struct LongBenchDataset {
  std::string name, prompt_template, metric;
  int max_new_tokens = 0;
  bool first_line_only = false;  // eval.py scores only the first line (trec, triviaqa, ...)
  // pred.py wraps the prompt in the model's chat format, except for the few-shot and code sets.
  bool chat_template = true;
  // pred.py also ends generation at a newline (samsum, whose few-shot outputs run on).
  bool stop_at_newline = false;
};

// Reads a LongBench JSONL file: one object per line with "input", "context" (strings) and
// "answers" (array of strings); "all_classes" (array of strings or null), "length" (integer)
// and "_id" (string) are optional. Blank lines are skipped. A malformed line throws dapx::Error
// naming the file, the 1-based line number and what is wrong.
std::vector<LongBenchRow> read_longbench_jsonl(const std::filesystem::path& path);

// The per-dataset settings from data/eval/longbench.json.
class LongBenchConfig {
 public:
  // Throws dapx::Error naming the file and the dataset for anything missing or ill-typed, an
  // unknown metric or a template placeholder other than {context} and {input}.
  static LongBenchConfig load(const std::filesystem::path& json);
  // An unknown dataset throws dapx::Error listing the known ones.
  const LongBenchDataset& dataset(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted

 private:
  std::map<std::string, LongBenchDataset> datasets_;
};

// The template with {context} and {input} filled in one pass, as Python's str.format fills
// pred.py's templates ({{ and }} stand for single braces; filled text is never re-read).
std::string longbench_prompt(const LongBenchDataset& ds, const LongBenchRow& row);

// Score of one prediction, 0..100: the first line only where the dataset says so, the best over
// the gold answers (0 when there are none), x100.
double longbench_score(const LongBenchDataset& ds, const std::string& prediction,
                       const LongBenchRow& row);

}  // namespace dapx::eval
