#include "train/training_data.h"

#include <algorithm>

#include "util/error.h"

namespace dapx {

namespace {

void require_train_split(eval::Split split, const std::string& what) {
  if (split == eval::Split::Train) return;
  throw Error("training data: the " + what + " is of the " + eval::split_name(split) +
              " split, but training takes only the " + eval::split_name(eval::Split::Train) +
              " split (load it with TextSources::load(Split::Train))");
}

}  // namespace

TrainingData::TrainingData(const Tokenizer& tok, eval::TaskSuite suite,
                           const eval::TextSources& prose, const DataMix& mix, int eos)
    : tok_(tok), suite_(std::move(suite)), mix_(mix), eos_(eos) {
  require_train_split(suite_.split(), "task suite");
  require_train_split(suite_.sources().split, "task suite's text");
  require_train_split(prose.split, "prose");
  prose_ = prose.essay;
  const std::vector<std::string> known = suite_.task_names();
  const std::vector<std::string>& wanted = mix_.tasks.empty() ? known : mix_.tasks;
  for (const std::string& t : wanted) {
    if (std::find(known.begin(), known.end(), t) == known.end())
      throw Error("training data: unknown task '" + t + "'");
    // The completion and EOS come on top of the prompt: keep a margin for them.
    min_tokens_.emplace_back(t, suite_.min_tokens(t, tok_) + 64);
  }
  if (mix_.text_share < 0 || mix_.text_share > 1)
    throw Error("training data: text share must be in [0, 1]");
}

std::vector<std::string> TrainingData::tasks_fitting(int max_tokens) const {
  std::vector<std::string> out;
  for (const auto& [task, min_tokens] : min_tokens_)
    if (min_tokens <= max_tokens) out.push_back(task);
  return out;
}

int TrainingData::min_tokens(const std::string& task) const {
  for (const auto& [name, tokens] : min_tokens_)
    if (name == task) return tokens;
  throw Error("training data: task '" + task + "' is not in the mix");
}

Example TrainingData::next(int max_tokens, std::mt19937_64& rng) const {
  const std::vector<std::string> fitting = tasks_fitting(max_tokens);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  if (fitting.empty() || unit(rng) < mix_.text_share) {
    if (mix_.text_share <= 0)
      throw Error("training data: no task fits " + std::to_string(max_tokens) + " tokens");
    return prose(max_tokens, rng);
  }
  const std::string& task = fitting[rng() % fitting.size()];
  const int task_min = min_tokens(task);
  const int lo = std::max(task_min, static_cast<int>(mix_.min_fraction * max_tokens));
  const int hi = std::max(lo, max_tokens - 64);  // room for the completion and EOS
  const int length = std::uniform_int_distribution<int>(std::min(lo, hi), hi)(rng);
  const eval::Sample s = suite_.make(task, tok_, length, rng());
  Example ex;
  ex.task = task;
  ex.tokens = tok_.encode(s.prompt());
  ex.answer.assign(ex.tokens.size(), false);
  std::vector<int> completion = tok_.encode(s.completion);
  completion.push_back(eos_);
  ex.tokens.insert(ex.tokens.end(), completion.begin(), completion.end());
  ex.answer.resize(ex.tokens.size(), true);
  if (static_cast<int>(ex.tokens.size()) > max_tokens) {  // a long completion: drop context
    const size_t cut = ex.tokens.size() - max_tokens;
    ex.tokens.erase(ex.tokens.begin(), ex.tokens.begin() + cut);
    ex.answer.erase(ex.answer.begin(), ex.answer.begin() + cut);
  }
  return ex;
}

// Consecutive paragraphs from a random start, up to max_tokens.
Example TrainingData::prose(int max_tokens, std::mt19937_64& rng) const {
  const std::vector<std::string>& essay = prose_;
  if (essay.empty()) throw Error("training data: no prose in the training split");
  Example ex;
  ex.task = "text";
  for (size_t i = rng() % essay.size(); static_cast<int>(ex.tokens.size()) < max_tokens;
       i = (i + 1) % essay.size()) {
    const std::vector<int> ids = tok_.encode(essay[i] + "\n\n");
    ex.tokens.insert(ex.tokens.end(), ids.begin(), ids.end());
  }
  ex.tokens.resize(max_tokens);
  ex.answer.assign(ex.tokens.size(), false);
  return ex;
}

}  // namespace dapx
