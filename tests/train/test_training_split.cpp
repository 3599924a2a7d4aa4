// What the trainer learns from never holds the evaluation's text: 10,000 training examples, as
// dapx train draws them, contain no word, key, value or prose of the evaluation split; and the
// training data refuses sources of the evaluation split.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "error_message.h"
#include "eval/ruler_tasks.h"
#include "eval/seeds.h"
#include "eval/text_sources.h"
#include "train/training_data.h"

namespace dapx {
namespace {

using eval::Split;
using eval::TaskSuite;
using eval::TextSources;

const std::string kEvalJson = std::string(DAPX_DATA_DIR) + "/eval/ruler_templates.json";
const std::string kTrainJson = std::string(DAPX_DATA_DIR) + "/eval/train_templates.json";

// The shipped models' tokenizer: the one dapx train encodes the examples with.
const Tokenizer& tokenizer() {
  static const Tokenizer t =
      Tokenizer::load(std::string(DAPX_MODELS_DIR) + "/target/tokenizer.json");
  return t;
}
const TextSources& eval_text() {
  static const TextSources s = TextSources::load(Split::Eval);
  return s;
}
const TextSources& train_text() {
  static const TextSources s = TextSources::load(Split::Train);
  return s;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The words of a text as the slots hold them: runs of letters and hyphens between other
// characters, split at the hyphens ("word-word" keys); all lower-case or capitalised (QA
// names), lower-cased. Tokens with digits (UUIDs, numbers) and upper-case runs (variable names)
// are not words.
template <typename F>
void for_each_word(const std::string& text, F&& f) {
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isalnum(static_cast<unsigned char>(text[i])) && text[i] != '-') {
      ++i;
      continue;
    }
    size_t j = i;
    bool digit = false;
    while (j < text.size() &&
           (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '-')) {
      digit |= std::isdigit(static_cast<unsigned char>(text[j])) != 0;
      ++j;
    }
    if (!digit) {
      std::istringstream parts(text.substr(i, j - i));
      std::string w;
      while (std::getline(parts, w, '-')) {
        if (w.empty()) continue;
        const bool lower_tail =
            std::all_of(w.begin() + 1, w.end(), [](char c) { return c >= 'a' && c <= 'z'; });
        if (!lower_tail) continue;
        w[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(w[0])));
        f(w);
      }
    }
    i = j;
  }
}

// Eight consecutive words (whitespace-separated, lower-cased letters and digits only), hashed:
// a stretch of a paragraph, whatever punctuation a haystack cut or a quotation leaves around it.
constexpr size_t kShingle = 8;
template <typename F>
void for_each_shingle(const std::string& text, F&& f) {
  std::istringstream in(text);
  std::vector<std::string> w;
  for (std::string s; in >> s;) {
    std::string plain;
    for (const char c : s)
      if (std::isalnum(static_cast<unsigned char>(c)))
        plain.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    if (!plain.empty()) w.push_back(std::move(plain));
  }
  for (size_t i = 0; i + kShingle <= w.size(); ++i) {
    std::string joined;
    for (size_t k = 0; k < kShingle; ++k) joined += w[i + k] + " ";
    f(eval::fnv1a64(joined), joined);
  }
}

// What of the evaluation split a training example must not contain. Dictionary words and
// stretches of prose that the training prose or either phrasing also holds are left out: a
// training paragraph is English too ("the", "magic").
struct EvalText {
  std::unordered_set<std::string> words;
  std::unordered_set<uint64_t> shingles;
  std::vector<std::string> uuids;  // every key and value UUID of reported and validation samples
};

const EvalText& eval_only() {
  static const EvalText e = [] {
    EvalText out;
    std::unordered_set<std::string> shared;
    std::unordered_set<uint64_t> shared_shingles;
    for (const std::string& p : train_text().essay) {
      for_each_word(p, [&](const std::string& w) { shared.insert(w); });
      for_each_shingle(p, [&](uint64_t h, const std::string&) { shared_shingles.insert(h); });
    }
    for (const std::string& path : {kEvalJson, kTrainJson})
      for_each_word(read_file(path), [&](const std::string& w) { shared.insert(w); });
    for (const std::string& w : eval_text().words)
      if (!shared.count(w)) out.words.insert(w);
    for (const std::string& p : eval_text().essay)
      for_each_shingle(p, [&](uint64_t h, const std::string&) {
        if (!shared_shingles.count(h)) out.shingles.insert(h);
      });
    const TaskSuite suite(kEvalJson, eval_text(), Split::Eval);
    const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
    std::set<std::string> uuids;
    for (const uint64_t first : {eval::kReportSeed, eval::kValidationSeed})
      for (uint64_t i = 0; i < 10; ++i)
        for (const char* task : {"niah_single_3", "niah_multikey_3"}) {
          const std::string input = suite.make(task, tokenizer(), 1024, first + i).input;
          for (std::sregex_iterator m(input.begin(), input.end(), uuid), end; m != end; ++m)
            uuids.insert(m->str());
        }
    out.uuids.assign(uuids.begin(), uuids.end());
    return out;
  }();
  return e;
}

struct Leaks {
  size_t words = 0, shingles = 0, uuids = 0;
  std::string first;
};

// Draws `count` examples as dapx train does (lengths 160-512 tokens, the default mix) and
// counts what they hold of the evaluation split.
Leaks leaks_in(const TrainingData& data, int count) {
  const EvalText& e = eval_only();
  std::mt19937_64 rng(7);
  Leaks l;
  std::set<std::string> tasks;
  for (int n = 0; n < count; ++n) {
    const int max_tokens = 160 + static_cast<int>(rng() % 353);
    const Example ex = data.next(max_tokens, rng);
    tasks.insert(ex.task);
    // The first and last words may be cut (a prose stretch ends mid-word, a long completion
    // drops the prompt's start): only whole words count.
    std::string text = tokenizer().decode(ex.tokens);
    const size_t first = text.find_first_of(" \n"), last = text.find_last_of(" \n");
    text = first < last ? text.substr(first, last - first) : "";
    for_each_word(text, [&](const std::string& w) {
      if (e.words.count(w) && l.words++ == 0) l.first = ex.task + ": word " + w;
    });
    for_each_shingle(text, [&](uint64_t h, const std::string& words) {
      if (e.shingles.count(h) && l.shingles++ == 0) l.first = ex.task + ": prose \"" + words + "\"";
    });
    if (text.find('-') != std::string::npos)
      for (const std::string& u : e.uuids)
        if (text.find(u) != std::string::npos && l.uuids++ == 0) l.first = ex.task + ": " + u;
  }
  EXPECT_EQ(tasks.size(), 14u) << "the lengths should let every task and the prose through";
  return l;
}

int eos() { return *tokenizer().token_id("<|endoftext|>"); }

TEST(TrainingSplit, NoEvaluationTextInTenThousandExamples) {
  const EvalText& e = eval_only();
  ASSERT_GT(e.words.size(), 5000u);
  ASSERT_GT(e.shingles.size(), 50000u);
  ASSERT_GT(e.uuids.size(), 400u);
  // dapx train's data: the evaluation's phrasing (--templates eval, the default) or the
  // paraphrased one, with the training split's text.
  for (const auto& [templates, any] :
       std::vector<std::pair<std::string, bool>>{{kEvalJson, true}, {kTrainJson, false}}) {
    SCOPED_TRACE(templates);
    const TrainingData data(tokenizer(), TaskSuite(templates, train_text(), Split::Train, any),
                            train_text(), DataMix{}, eos());
    const Leaks l = leaks_in(data, 5000);
    EXPECT_EQ(l.words, 0u) << l.first;
    EXPECT_EQ(l.shingles, 0u) << l.first;
    EXPECT_EQ(l.uuids, 0u) << l.first;
  }
}

// The same check sees a leak: the evaluation's words and prose passed off as the training
// split's.
TEST(TrainingSplit, TheCheckSeesALeak) {
  TextSources leaky = eval_text();
  leaky.split = Split::Train;
  const TrainingData data(tokenizer(), TaskSuite(kEvalJson, leaky, Split::Train, true), leaky,
                          DataMix{}, eos());
  const Leaks l = leaks_in(data, 300);
  EXPECT_GT(l.words, 100u);
  EXPECT_GT(l.shingles, 100u);
}

TEST(TrainingSplit, EvaluationSourcesAreRefused) {
  test::expect_error(
      [] {
        TrainingData(tokenizer(), TaskSuite(kEvalJson, eval_text(), Split::Eval), train_text(),
                     DataMix{}, eos());
      },
      {"task suite is of the eval split", "only the train split"});
  test::expect_error(
      [] {
        TrainingData(tokenizer(), TaskSuite(kTrainJson, train_text(), Split::Train), eval_text(),
                     DataMix{}, eos());
      },
      {"prose is of the eval split", "only the train split"});
}

}  // namespace
}  // namespace dapx
