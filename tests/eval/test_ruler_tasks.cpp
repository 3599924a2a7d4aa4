// RULER-style task generators: exact lengths with the real Qwen2 vocabulary, gold answers where
// the generator says, determinism, the disjoint training twin, errors, and speed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "error_message.h"
#include "eval/ruler_gen.h"
#include "eval/ruler_tasks.h"
#include "temp_dir.h"
#include "util/error.h"

namespace dapx::eval {
namespace {

const std::string kEvalJson = std::string(DAPX_DATA_DIR) + "/eval/ruler_templates.json";
const std::string kTrainJson = std::string(DAPX_DATA_DIR) + "/eval/train_templates.json";

// Loaded once per test binary: parsing the vocabulary and the texts takes a while.
const Tokenizer& qwen2() {
  static const Tokenizer t =
      Tokenizer::load(std::string(DAPX_DATA_DIR) + "/tokenizers/qwen2/tokenizer.json");
  return t;
}
const TaskSuite& eval_suite() {
  static const TaskSuite s(kEvalJson, TextSources::load(Split::Eval), Split::Eval);
  return s;
}
const TaskSuite& train_suite() {
  static const TaskSuite s(kTrainJson, TextSources::load(Split::Train), Split::Train);
  return s;
}

int tokens(const Sample& s) { return static_cast<int>(qwen2().encode(s.prompt()).size()); }

using test::error_of;

const std::vector<std::string> kTasks = {"niah_single_1",
                                         "niah_single_2",
                                         "niah_single_3",
                                         "niah_multikey_1",
                                         "niah_multikey_2",
                                         "niah_multikey_3",
                                         "niah_multivalue",
                                         "niah_multiquery",
                                         "vt",
                                         "cwe",
                                         "fwe",
                                         "qa_synth_1",
                                         "qa_synth_2"};

TEST(RulerTasks, ThirteenTasksInRulerOrder) {
  EXPECT_EQ(eval_suite().task_names(), kTasks);
  EXPECT_EQ(train_suite().task_names(), kTasks);
}

// Lengths, offsets, answers and the canonical completion, for both splits and three lengths.
TEST(RulerTasks, FitsLengthAndPlacesAnswers) {
  for (const TaskSuite* suite : {&eval_suite(), &train_suite()}) {
    for (const int target : {512, 2048, 4096}) {
      for (const auto& task : kTasks) {
        SCOPED_TRACE(task + " " + split_name(suite->split()) + " @" + std::to_string(target));
        const Sample s = suite->make(task, qwen2(), target, 7);
        const int n = tokens(s);
        EXPECT_LE(n, target);
        EXPECT_GE(n * 50, target * 49) << n << " tokens";
        ASSERT_FALSE(s.answers.empty());
        ASSERT_EQ(s.answer_offsets.size(), s.answers.size());
        const std::string prompt = s.prompt();
        for (size_t i = 0; i < s.answers.size(); ++i) {
          ASSERT_LE(s.answer_offsets[i] + s.answers[i].size(), s.input.size());
          EXPECT_EQ(prompt.substr(s.answer_offsets[i], s.answers[i].size()), s.answers[i]);
        }
        // A model that writes the completion gets full marks.
        const double score = s.metric == "string_match_all"
                                 ? string_match_all(s.completion, s.answers)
                                 : string_match_part(s.completion, s.answers);
        EXPECT_EQ(score, 100.0) << s.completion;
        EXPECT_GT(s.max_new_tokens, 0);
      }
    }
  }
}

TEST(RulerTasks, AnswerCountsFollowRuler) {
  const auto answers = [](const std::string& task) {
    return eval_suite().make(task, qwen2(), 4096, 3).answers.size();
  };
  EXPECT_EQ(answers("niah_single_1"), 1u);
  EXPECT_EQ(answers("niah_multikey_1"), 1u);
  EXPECT_EQ(answers("niah_multivalue"), 4u);
  EXPECT_EQ(answers("niah_multiquery"), 4u);
  EXPECT_EQ(answers("vt"), 5u);
  EXPECT_EQ(answers("cwe"), 10u);
  EXPECT_EQ(answers("fwe"), 3u);
  EXPECT_EQ(answers("qa_synth_2"), 1u);

  const Sample single = eval_suite().make("niah_single_1", qwen2(), 2048, 1);
  EXPECT_TRUE(std::regex_match(single.answers[0], std::regex("[1-9][0-9]{6}")));
  EXPECT_NE(single.input.find("The grass is green. The sky is blue."), std::string::npos);
  EXPECT_EQ(single.completion, " " + single.answers[0] + ".");
  const Sample uuid = eval_suite().make("niah_multikey_3", qwen2(), 2048, 1);
  EXPECT_TRUE(std::regex_match(
      uuid.answers[0],
      std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
  const Sample multi = eval_suite().make("niah_multivalue", qwen2(), 2048, 1);
  EXPECT_EQ(multi.completion, " " + multi.answers[0] + ", " + multi.answers[1] + ", " +
                                  multi.answers[2] + " and " + multi.answers[3] + ".");
  const Sample vt = eval_suite().make("vt", qwen2(), 4096, 1);
  EXPECT_NE(vt.input.find("VAR " + vt.answers[1] + " = VAR " + vt.answers[0]), std::string::npos);
}

TEST(RulerTasks, DeterministicPerSeed) {
  for (const auto& task : kTasks) {
    const Sample a = eval_suite().make(task, qwen2(), 1024, 42);
    const Sample b = eval_suite().make(task, qwen2(), 1024, 42);
    const Sample c = eval_suite().make(task, qwen2(), 1024, 43);
    EXPECT_EQ(a.input, b.input) << task;
    EXPECT_EQ(a.answers, b.answers) << task;
    EXPECT_EQ(a.answer_offsets, b.answer_offsets) << task;
    EXPECT_NE(a.input, c.input) << task;
    EXPECT_NE(a.answers, c.answers) << task;
  }
}

TEST(RulerTasks, SplitsShareNoWordsAndNoProse) {
  const TextSources& e = eval_suite().sources();
  const TextSources& t = train_suite().sources();
  EXPECT_GT(e.words.size(), 10000u);
  EXPECT_GT(t.words.size(), 10000u);
  EXPECT_GT(e.essay.size(), 1000u);
  EXPECT_GT(t.essay.size(), 1000u);
  const std::set<std::string> eval_words(e.words.begin(), e.words.end());
  for (const auto& w : t.words) ASSERT_EQ(eval_words.count(w), 0u) << w;
  const std::set<std::string> eval_prose(e.essay.begin(), e.essay.end());
  for (const auto& p : t.essay) ASSERT_EQ(eval_prose.count(p), 0u) << p;

  // A needle key ("word-word") comes from its own split only.
  const Sample s = eval_suite().make("niah_single_1", qwen2(), 1024, 5);
  const std::set<std::string> train_words(t.words.begin(), t.words.end());
  const std::string prefix = s.answer_prefix;
  const std::smatch m = [&] {
    std::smatch out;
    std::regex_search(prefix, out, std::regex("for ([a-z]+)-([a-z]+) "));
    return out;
  }();
  ASSERT_EQ(m.size(), 3u) << prefix;
  EXPECT_EQ(eval_words.count(m[1]), 1u);
  EXPECT_EQ(train_words.count(m[1]), 0u);
  EXPECT_EQ(train_words.count(m[2]), 0u);
}

// Sentences (two words or more once placeholders are removed) of every template string.
std::set<std::string> template_sentences(const std::string& path) {
  std::ifstream in(path);
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::vector<std::string> texts = {doc.at("noise").get<std::string>()};
  std::function<void(const nlohmann::json&, const std::string&)> collect =
      [&](const nlohmann::json& v, const std::string& key) {
        if (v.is_string() && key != "name" && key != "kind" && key != "description") {
          texts.push_back(v.get<std::string>());
        } else if (v.is_array() || v.is_object()) {
          for (const auto& item : v.items())
            collect(item.value(), v.is_object() ? item.key() : key);
        }
      };
  collect(doc.at("tasks"), "tasks");
  std::set<std::string> sentences;
  for (const auto& text : texts) {
    const std::string plain = std::regex_replace(text, std::regex("\\{[a-z_]+\\}"), " ");
    std::string sentence;
    for (const char c : plain + "\n") {
      if (c == '.' || c == '?' || c == '!' || c == ':' || c == '\n') {
        std::istringstream words(sentence);
        std::string w, norm;
        int count = 0;
        while (words >> w) {
          norm += (norm.empty() ? "" : " ") + w;
          count += std::any_of(w.begin(), w.end(), ::isalpha) ? 1 : 0;
        }
        if (count >= 2) sentences.insert(norm);
        sentence.clear();
      } else {
        sentence.push_back(c);
      }
    }
  }
  return sentences;
}

TEST(RulerTasks, TrainTemplatesShareNoSentenceWithEval) {
  const auto eval = template_sentences(kEvalJson);
  const auto train = template_sentences(kTrainJson);
  EXPECT_GT(eval.size(), 20u);
  EXPECT_GT(train.size(), 20u);
  for (const auto& s : train) EXPECT_EQ(eval.count(s), 0u) << "shared: " << s;
  // And the same seed gives different samples in the two splits.
  const Sample e = eval_suite().make("niah_single_2", qwen2(), 1024, 1);
  const Sample t = train_suite().make("niah_single_2", qwen2(), 1024, 1);
  EXPECT_NE(e.answers, t.answers);
}

TEST(RulerTasks, ErrorsNameTheProblem) {
  const std::string unknown =
      error_of([] { eval_suite().make("niah_single_9", qwen2(), 1024, 0); });
  EXPECT_NE(unknown.find("niah_single_9"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("qa_synth_2"), std::string::npos) << unknown;
  const int minimum = eval_suite().min_tokens("vt", qwen2());
  EXPECT_GE(minimum, 400);  // the floor under which 2% is less than one haystack step
  EXPECT_LT(minimum, 1000);
  const std::string short_one = error_of([] { eval_suite().make("vt", qwen2(), 40, 0); });
  EXPECT_NE(short_one.find("40"), std::string::npos) << short_one;
  EXPECT_NE(short_one.find(std::to_string(minimum)), std::string::npos) << short_one;
  // The minimum itself is accepted, and fits.
  for (const auto& task : kTasks) {
    const int min = eval_suite().min_tokens(task, qwen2());
    const Sample s = eval_suite().make(task, qwen2(), min, 11);
    EXPECT_LE(tokens(s), min) << task;
    EXPECT_GE(tokens(s) * 50, min * 49) << task;
  }
}

TEST(RulerTasks, TemplateErrorsNameFileTaskAndField) {
  test::TempDir dir;
  std::ifstream in(kEvalJson);
  const nlohmann::json good = nlohmann::json::parse(in);
  const auto message = [&](const std::function<void(nlohmann::json&)>& edit,
                           Split split = Split::Eval) {
    nlohmann::json doc = good;
    edit(doc);
    test::write_file(dir / "t.json", doc.dump());
    TextSources tiny;
    tiny.split = split;
    for (int i = 0; i < 1000; ++i) tiny.words.push_back("w" + std::to_string(i));
    tiny.essay = {"Some prose."};
    const std::string msg = error_of([&] { TaskSuite(dir / "t.json", tiny, split); });
    EXPECT_NE(msg.find((dir / "t.json").string()), std::string::npos) << msg;
    return msg;
  };
  std::string m = message([](nlohmann::json& d) { d["tasks"][0]["template"] = "no context"; });
  EXPECT_NE(m.find("niah_single_1"), std::string::npos) << m;
  EXPECT_NE(m.find("{context}"), std::string::npos) << m;
  m = message([](nlohmann::json& d) { d["tasks"][8]["assign_var"] = "VAR {var} = {sauce}"; });
  EXPECT_NE(m.find("{sauce}"), std::string::npos) << m;
  EXPECT_NE(m.find("assign_var"), std::string::npos) << m;
  m = message([](nlohmann::json& d) { d["tasks"][0]["neddle"] = "x"; });
  EXPECT_NE(m.find("neddle"), std::string::npos) << m;
  m = message([](nlohmann::json& d) { d["tasks"][9]["template"] = "{context} {"; });
  EXPECT_NE(m.find("{{"), std::string::npos) << m;
  m = message([](nlohmann::json&) {}, Split::Train);
  EXPECT_NE(m.find("eval split"), std::string::npos) << m;
  m = message([](nlohmann::json& d) { d["tasks"][12]["answer_slot"] = "town"; });
  EXPECT_NE(m.find("qa_synth_2"), std::string::npos) << m;
}

TEST(RulerTasks, MissingTextSourcesNamePackage) {
  std::string m = error_of([] { TextSources::load(Split::Eval, "/nonexistent/words"); });
  EXPECT_NE(m.find("/nonexistent/words"), std::string::npos) << m;
  EXPECT_NE(m.find("wamerican"), std::string::npos) << m;
  m = error_of([] {
    TextSources::load(Split::Eval, "/usr/share/dict/american-english", "/nonexistent/fortunes");
  });
  EXPECT_NE(m.find("/nonexistent/fortunes"), std::string::npos) << m;
  EXPECT_NE(m.find("fortunes (apt-get"), std::string::npos) << m;
}

TEST(RulerTasks, StringMatch) {
  EXPECT_DOUBLE_EQ(string_match_all("The numbers are 123 and 456.", {"123", "456"}), 100.0);
  EXPECT_DOUBLE_EQ(string_match_all("The number is 123.", {"123", "456"}), 50.0);
  EXPECT_DOUBLE_EQ(string_match_all("APPLE pie", {"apple", "Pie", "cherry", "plum"}), 50.0);
  EXPECT_DOUBLE_EQ(string_match_all("nothing", {"a1", "b2", "c3"}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_all("anything", {}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_part("Paris, France", {"paris", "Lyon"}), 100.0);
  EXPECT_DOUBLE_EQ(string_match_part("Berlin", {"paris", "Lyon"}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_part("", {"x"}), 0.0);
}

// Fast enough for training, measured by the work done rather than a clock: a 4096-token sample
// costs a few encodes of its prompt (the secant search on the token count, the task's minimum
// length, the needle examples), never a scan over haystack sizes.
TEST(RulerTasks, FastEnoughForTraining) {
  int64_t worst_encodes = 0;
  double worst_ratio = 0;
  for (const auto& task : kTasks) {
    detail::EncodeWork& work = detail::encode_work();
    work = {};
    const Sample s = eval_suite().make(task, qwen2(), 4096, 200);
    const double ratio = double(work.bytes) / double(s.prompt().size());
    std::printf("[ work ] %-16s 4096 tokens: %2lld encodes, %.2f x the prompt's bytes\n",
                task.c_str(), static_cast<long long>(work.encodes), ratio);
    EXPECT_GT(work.encodes, 0) << task;  // the count sees the fitting
    worst_encodes = std::max(worst_encodes, work.encodes);
    worst_ratio = std::max(worst_ratio, ratio);
  }
  std::printf("[ work ] worst: %lld encodes, %.2f x the prompt's bytes\n",
              static_cast<long long>(worst_encodes), worst_ratio);
  // About 8-14 encodes and 3-7 x the prompt's bytes today; a linear search would take hundreds.
  EXPECT_LE(worst_encodes, 24);
  EXPECT_LE(worst_ratio, 12.0);
}

// The split travels with the text: a suite refuses the other split's words and prose, naming both.
TEST(RulerTasks, SourcesOfTheOtherSplitAreRefused) {
  test::expect_error([] { TaskSuite(kEvalJson, train_suite().sources(), Split::Eval); },
                     {"text sources of the train split", "task suite of the eval split"});
  test::expect_error([] { TaskSuite(kTrainJson, eval_suite().sources(), Split::Train); },
                     {"text sources of the eval split", "task suite of the train split"});
  // Even with the other split's phrasing allowed.
  test::expect_error(
      [] { TaskSuite(kEvalJson, eval_suite().sources(), Split::Train, /*any_phrasing=*/true); },
      {"eval split", "train split"});
  EXPECT_EQ(eval_suite().sources().split, Split::Eval);
  EXPECT_EQ(train_suite().sources().split, Split::Train);
}

// dapx train --templates eval: the evaluation's phrasing filled with the training split's
// words, values and prose. Refused without any_phrasing; its samples are not the evaluation's.
TEST(RulerTasks, EvalPhrasingWithTrainingText) {
  test::expect_error([] { TaskSuite(kEvalJson, train_suite().sources(), Split::Train); },
                     {"are for the eval split", "asked for the train split"});
  const TaskSuite twin(kEvalJson, train_suite().sources(), Split::Train, /*any_phrasing=*/true);
  EXPECT_EQ(twin.split(), Split::Train);
  EXPECT_EQ(twin.task_names(), kTasks);
  const std::set<std::string> eval_words(eval_suite().sources().words.begin(),
                                         eval_suite().sources().words.end());
  const std::set<std::string> train_words(train_suite().sources().words.begin(),
                                          train_suite().sources().words.end());
  for (uint64_t seed = 0; seed < 5; ++seed) {
    const Sample t = twin.make("niah_single_1", qwen2(), 1024, seed);
    const Sample e = eval_suite().make("niah_single_1", qwen2(), 1024, seed);
    // The same sentences as the evaluation's ...
    const std::string needle_phrase = "One of the special magic numbers for ";
    EXPECT_NE(e.input.find(needle_phrase), std::string::npos);
    EXPECT_NE(t.input.find(needle_phrase), std::string::npos) << t.input.substr(0, 300);
    EXPECT_EQ(t.answer_prefix.substr(0, 20), e.answer_prefix.substr(0, 20));
    // ... around another sample: the key is a training word, the value another number.
    std::smatch m;
    ASSERT_TRUE(std::regex_search(t.answer_prefix, m, std::regex("for ([a-z]+)-([a-z]+) ")))
        << t.answer_prefix;
    EXPECT_EQ(train_words.count(m[1]), 1u) << m[1];
    EXPECT_EQ(train_words.count(m[2]), 1u) << m[2];
    EXPECT_EQ(eval_words.count(m[1]), 0u) << m[1];
    EXPECT_NE(t.answers, e.answers);
    // The training split's length band (within 20%) and the answer where the sample says.
    EXPECT_LE(tokens(t), 1024);
    ASSERT_EQ(t.answer_offsets.size(), 1u);
    EXPECT_EQ(t.prompt().substr(t.answer_offsets[0], t.answers[0].size()), t.answers[0]);
  }
  // Paragraphs of its essay haystack come from the training prose.
  const Sample essay = twin.make("niah_single_2", qwen2(), 1024, 3);
  size_t found = 0;
  for (const std::string& p : train_suite().sources().essay) {
    const std::string head = p.substr(0, std::min<size_t>(p.size(), 40));
    if (essay.input.find(head) != std::string::npos) ++found;
  }
  EXPECT_GT(found, 0u);
}

// A question that names its own answer would be solved without reading the documents: the
// templates may not put the answer slot in the question (one hop or two).
TEST(RulerTasks, QaQuestionMustNotContainTheAnswer) {
  test::TempDir dir;
  std::ifstream in(kEvalJson);
  const nlohmann::json good = nlohmann::json::parse(in);
  for (const auto& [index, question] : std::vector<std::pair<int, std::string>>{
           {11, "In which town was {person} born? Was it {town}?"},
           {12, "In which province is the town where {person} was born? Is it {region}?"}}) {
    nlohmann::json doc = good;
    ASSERT_EQ(doc["tasks"][index]["kind"], "qa");
    doc["tasks"][index]["question"] = question;
    test::write_file(dir / "t.json", doc.dump());
    test::expect_error([&] { TaskSuite(dir / "t.json", eval_suite().sources(), Split::Eval); },
                       {(dir / "t.json").string(), doc["tasks"][index]["name"].get<std::string>(),
                        "the question must not contain the answer slot"});
  }
  // The shipped templates pass, and their questions never hold the answer.
  for (const std::string task : {"qa_synth_1", "qa_synth_2"}) {
    for (uint64_t seed = 0; seed < 20; ++seed) {
      const Sample s = eval_suite().make(task, qwen2(), 1024, seed);
      const size_t q = s.input.rfind("Question:");
      ASSERT_NE(q, std::string::npos);
      EXPECT_EQ(s.input.find(s.answers[0], q), std::string::npos) << s.input.substr(q);
    }
  }
}

const std::string kNoise = "The grass is green. The sky is blue.";

// dapx eval --haystack licenses: Debian's license texts replace the noise and essay haystacks.
TEST(RulerTasks, LicenseHaystackReplacesNoiseAndEssay) {
  const std::vector<std::string> licenses = TextSources::load_licenses();
  EXPECT_GT(licenses.size(), 300u);
  // No training text is license text.
  const std::set<std::string> train_prose(train_suite().sources().essay.begin(),
                                          train_suite().sources().essay.end());
  for (const std::string& p : licenses) ASSERT_EQ(train_prose.count(p), 0u) << p;

  TextSources sources = eval_suite().sources();
  use_haystack(sources, "licenses");
  EXPECT_EQ(sources.haystack_name, "licenses");
  const TaskSuite suite(kEvalJson, sources, Split::Eval);
  const auto license_sentences = [&](const std::string& text) {
    size_t n = 0;
    for (const std::string& p : licenses)
      if (text.find(p.substr(0, std::min<size_t>(p.size(), 40))) != std::string::npos) ++n;
    return n;
  };
  for (const std::string task : {"niah_single_1", "niah_multikey_1", "niah_multivalue", "vt"}) {
    SCOPED_TRACE(task);
    const Sample own = eval_suite().make(task, qwen2(), 2048, 20000);
    const Sample s = suite.make(task, qwen2(), 2048, 20000);
    EXPECT_EQ(s.input.find(kNoise), std::string::npos);
    EXPECT_GT(license_sentences(s.input), 3u);
    EXPECT_EQ(license_sentences(own.input), 0u);
    EXPECT_LE(tokens(s), 2048);
    EXPECT_GE(tokens(s) * 50, 2048 * 49);
    ASSERT_EQ(s.answer_offsets.size(), s.answers.size());
    for (size_t i = 0; i < s.answers.size(); ++i)
      EXPECT_EQ(s.prompt().substr(s.answer_offsets[i], s.answers[i].size()), s.answers[i]);
  }
  EXPECT_NE(eval_suite().make("niah_single_1", qwen2(), 2048, 1).input.find(kNoise),
            std::string::npos);
  // Back to the tasks' own haystacks; evaluation only; names checked.
  use_haystack(sources, "fortunes");
  EXPECT_TRUE(sources.haystack.empty());
  TextSources train = train_suite().sources();
  test::expect_error([&] { use_haystack(train, "licenses"); }, {"eval split only", "train split"});
  test::expect_error([&] { use_haystack(sources, "novels"); }, {"novels", "fortunes, licenses"});
  TextSources smuggled = train_suite().sources();
  smuggled.haystack = licenses;
  smuggled.haystack_name = "licenses";
  test::expect_error([&] { TaskSuite(kTrainJson, smuggled, Split::Train); },
                     {"licenses haystack", "eval split only"});
  test::expect_error([] { TextSources::load_licenses("/nonexistent/licenses"); },
                     {"/nonexistent/licenses", "base-files"});
}

}  // namespace
}  // namespace dapx::eval
