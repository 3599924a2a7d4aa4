#pragma once
// RULER-style synthetic long-context tasks (NIAH, variable tracking, common/frequent word
// extraction, document QA), generated offline at an exact token length. The phrasing of every
// task lives in a templates JSON (data/eval/ruler_templates.json for evaluation,
// data/eval/train_templates.json for the paraphrased training twin).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "eval/text_sources.h"
#include "tokenizer/tokenizer.h"

namespace dapx::eval {

struct Sample {
  std::string task;  // e.g. "niah_single_1"
  uint64_t seed = 0;
  int target_tokens = 0;      // requested length of prompt() in tokens
  std::string input;          // the filled template: instructions, context, question
  std::string answer_prefix;  // RULER's answer prefix (the model continues after it)
  // What a perfect model writes after the prefix, e.g. " 4017623." (the training label).
  std::string completion;
  std::vector<std::string> answers;  // gold outputs for scoring
  std::string metric;                // "string_match_all" or "string_match_part"
  int max_new_tokens = 0;            // RULER's generation length for the task
  // Byte offset in prompt() of each gold answer where the generator put it in the context.
  std::vector<size_t> answer_offsets;
  std::string prompt() const { return input + answer_prefix; }
};

namespace detail {
struct TaskSpec;
}

// A task set: the templates (from JSON) plus the text sources of one split.
class TaskSuite {
 public:
  // Throws dapx::Error naming the file, the task and the field for anything malformed, when
  // `sources` are of the other split (naming both), and when the templates are meant for the
  // other split, unless `any_phrasing` (training on the evaluation's phrasing with the training
  // split's words, values and prose).
  TaskSuite(const std::filesystem::path& templates_json, TextSources sources, Split split,
            bool any_phrasing = false);
  ~TaskSuite();
  TaskSuite(TaskSuite&&) noexcept;
  TaskSuite& operator=(TaskSuite&&) noexcept;

  std::vector<std::string> task_names() const;  // in the file's (RULER's) order
  Split split() const { return split_; }
  const TextSources& sources() const { return sources_; }

  // Deterministic for (task, target_tokens, seed). prompt() tokenized with `tok` has the
  // largest haystack that keeps it <= target_tokens, and is within 2% of it (the training
  // split: within 20%, and no 400-token floor, for a length curriculum's short prompts). Throws
  // dapx::Error for an unknown task (listing the known ones) or a length below the task's
  // minimum (naming both numbers).
  Sample make(const std::string& task, const Tokenizer& tok, int target_tokens,
              uint64_t seed) const;
  // Smallest target_tokens that make() accepts for the task.
  int min_tokens(const std::string& task, const Tokenizer& tok) const;

 private:
  const detail::TaskSpec& spec(const std::string& task) const;

  std::filesystem::path path_;
  TextSources sources_;
  Split split_;
  std::string noise_;  // the noise haystack's paragraph
  std::vector<std::unique_ptr<detail::TaskSpec>> specs_;
};

// RULER's scores, x100, case-insensitive: the share of references contained in the prediction /
// 100 if any reference is contained. 0 for no references.
double string_match_all(const std::string& prediction, const std::vector<std::string>& references);
double string_match_part(const std::string& prediction, const std::vector<std::string>& references);

}  // namespace dapx::eval
