#pragma once
// What the trainer learns from, generated on the fly: the training twin of the evaluation
// tasks (disjoint words, prose, templates and seeds; eval/ruler_tasks.h) mixed with plain
// English prose for a language-model loss.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "eval/ruler_tasks.h"
#include "tokenizer/tokenizer.h"

namespace dapx {

struct Example {
  std::vector<int> tokens;   // prompt + completion + EOS (tasks) or a stretch of prose
  std::vector<bool> answer;  // per token: part of the answer (completion and EOS)
  std::string task;          // "text" for prose
};

struct DataMix {
  std::vector<std::string> tasks;  // empty: every task of the suite
  double text_share = 0.1;         // share of plain-prose examples
  // Task examples are drawn with lengths uniform in [min_fraction x max, max] tokens (or the
  // task's minimum, when larger), so every stage also sees shorter prompts.
  double min_fraction = 0.5;
};

class TrainingData {
 public:
  // `suite` and `prose` (whose essay paragraphs are the plain-text examples) must be of the
  // training split: either of the evaluation split throws dapx::Error naming both splits.
  // `eos` ends every completion.
  TrainingData(const Tokenizer& tok, eval::TaskSuite suite, const eval::TextSources& prose,
               const DataMix& mix, int eos);
  // One example of at most max_tokens tokens. Throws when no task fits max_tokens and the mix
  // has no prose.
  Example next(int max_tokens, std::mt19937_64& rng) const;
  // The tasks whose shortest prompt fits max_tokens.
  std::vector<std::string> tasks_fitting(int max_tokens) const;
  // Tokens the task's shortest example needs (prompt, completion margin).
  int min_tokens(const std::string& task) const;
  // Task -> tokens its shortest example needs, for every task of the mix.
  const std::vector<std::pair<std::string, int>>& task_minimums() const { return min_tokens_; }
  const eval::TaskSuite& suite() const { return suite_; }

 private:
  Example prose(int max_tokens, std::mt19937_64& rng) const;

  const Tokenizer& tok_;
  eval::TaskSuite suite_;
  std::vector<std::string> prose_;
  DataMix mix_;
  int eos_;
  std::vector<std::pair<std::string, int>> min_tokens_;  // task -> shortest prompt + answer
};

}  // namespace dapx
