// LongBench settings, prompts, per-row scoring and the JSONL reader, on the shipped
// data/eval/longbench.json and hand-written rows under tests/eval/data/longbench/.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "error_message.h"
#include "eval/longbench.h"
#include "temp_dir.h"
#include "util/error.h"

namespace dapx::eval {
namespace {

namespace fs = std::filesystem;

fs::path config_path() { return fs::path(DAPX_SOURCE_DATA_DIR) / "eval" / "longbench.json"; }
fs::path rows_dir() { return fs::path(__FILE__).parent_path() / "data" / "longbench"; }

const LongBenchConfig& config() {
  static const LongBenchConfig loaded = LongBenchConfig::load(config_path());
  return loaded;
}

using test::error_of;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---- settings ----

TEST(LongBenchConfig, ShipsTheEnglishAndCodeDatasets) {
  const std::vector<std::string> expected = {"2wikimqa",
                                             "gov_report",
                                             "hotpotqa",
                                             "lcc",
                                             "lsht",
                                             "multi_news",
                                             "multifieldqa_en",
                                             "musique",
                                             "narrativeqa",
                                             "passage_count",
                                             "passage_retrieval_en",
                                             "qasper",
                                             "qmsum",
                                             "repobench-p",
                                             "samsum",
                                             "trec",
                                             "triviaqa"};
  EXPECT_EQ(config().names(), expected);
}

TEST(LongBenchConfig, SettingsAsLongBench) {
  const LongBenchDataset& nqa = config().dataset("narrativeqa");
  EXPECT_EQ(nqa.name, "narrativeqa");
  EXPECT_EQ(nqa.max_new_tokens, 128);
  EXPECT_EQ(nqa.metric, "qa_f1");
  EXPECT_FALSE(nqa.first_line_only);
  EXPECT_TRUE(nqa.chat_template);
  EXPECT_FALSE(nqa.stop_at_newline);

  const LongBenchDataset& trec = config().dataset("trec");
  EXPECT_EQ(trec.max_new_tokens, 64);
  EXPECT_EQ(trec.metric, "classification");
  EXPECT_TRUE(trec.first_line_only);
  EXPECT_FALSE(trec.chat_template);

  EXPECT_EQ(config().dataset("gov_report").max_new_tokens, 512);
  EXPECT_EQ(config().dataset("gov_report").metric, "rouge_l");
  EXPECT_EQ(config().dataset("hotpotqa").max_new_tokens, 32);
  EXPECT_EQ(config().dataset("passage_count").metric, "count");
  EXPECT_EQ(config().dataset("passage_retrieval_en").metric, "retrieval");
  EXPECT_EQ(config().dataset("lcc").metric, "code_sim");
  EXPECT_TRUE(config().dataset("samsum").stop_at_newline);
  for (const char* name : {"trec", "triviaqa", "samsum", "lsht"}) {
    EXPECT_TRUE(config().dataset(name).first_line_only) << name;
  }
  for (const char* name : {"qasper", "gov_report", "passage_count", "lcc", "repobench-p"}) {
    EXPECT_FALSE(config().dataset(name).first_line_only) << name;
  }
}

TEST(LongBenchConfig, UnknownDatasetListsTheKnownOnes) {
  const std::string msg = error_of([] { config().dataset("dureader"); });
  EXPECT_TRUE(contains(msg, "\"dureader\"")) << msg;
  EXPECT_TRUE(contains(msg, "narrativeqa")) << msg;
  EXPECT_TRUE(contains(msg, "triviaqa")) << msg;
}

TEST(LongBenchConfig, BadSettingsNameFileAndDataset) {
  test::TempDir dir;
  const fs::path path = dir / "lb.json";
  auto load_with = [&](const std::string& entry) {
    test::write_file(path, R"({"datasets": {"toy": )" + entry + "}}");
    return error_of([&] { LongBenchConfig::load(path); });
  };
  std::string msg = load_with(R"({"prompt": "{context}", "max_new_tokens": 8, "metric": "bleu"})");
  EXPECT_TRUE(contains(msg, path.string())) << msg;
  EXPECT_TRUE(contains(msg, "\"toy\"")) << msg;
  EXPECT_TRUE(contains(msg, "qa_f1")) << msg;  // lists the metrics

  msg = load_with(R"({"prompt": "{context} {question}", "max_new_tokens": 8, "metric": "qa_f1"})");
  EXPECT_TRUE(contains(msg, "{question}")) << msg;

  msg = load_with(R"({"prompt": "{context}", "max_new_tokens": 0, "metric": "qa_f1"})");
  EXPECT_TRUE(contains(msg, "max_new_tokens")) << msg;

  msg = load_with(
      R"({"prompt": "{context}", "max_new_tokens": 8, "metric": "qa_f1", "first_line": true})");
  EXPECT_TRUE(contains(msg, "\"first_line\"")) << msg;

  msg = load_with(
      R"({"prompt": "{context}", "max_new_tokens": 8, "metric": "qa_f1", "first_line_only": 1})");
  EXPECT_TRUE(contains(msg, "first_line_only")) << msg;

  test::write_file(path, "{\"datasets\": ");
  msg = error_of([&] { LongBenchConfig::load(path); });
  EXPECT_TRUE(contains(msg, path.string()) && contains(msg, "not valid JSON")) << msg;

  msg = error_of([&] { LongBenchConfig::load(dir / "missing.json"); });
  EXPECT_TRUE(contains(msg, "missing.json")) << msg;
}

// ---- prompts ----

TEST(LongBenchPrompt, FillsNarrativeQa) {
  LongBenchRow row;
  row.context = "CTX";
  row.input = "Q?";
  EXPECT_EQ(longbench_prompt(config().dataset("narrativeqa"), row),
            "You are given a story, which can be either a novel or a movie script, and a question. "
            "Answer the question asconcisely as you can, using a single phrase if possible. Do not "
            "provide any explanation.\n\nStory: CTX\n\nNow, answer the question based on the story "
            "asconcisely as you can, using a single phrase if possible. Do not provide any "
            "explanation.\n\nQuestion: Q?\n\nAnswer:");
}

TEST(LongBenchPrompt, FillsPassageRetrieval) {
  const auto rows = read_longbench_jsonl(rows_dir() / "passage_retrieval_en.jsonl");
  const std::string prompt = longbench_prompt(config().dataset("passage_retrieval_en"), rows[0]);
  EXPECT_EQ(prompt,
            "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which "
            "paragraph the abstract is from.\n\n" +
                rows[0].context + "\n\nThe following is an abstract.\n\n" + rows[0].input +
                "\n\nPlease enter the number of the paragraph that the abstract is from. The "
                "answer format must be like \"Paragraph 1\", \"Paragraph 2\", etc.\n\nThe answer "
                "is: ");
}

TEST(LongBenchPrompt, BracesInTheFilledTextStay) {
  // The C row's context holds an open brace; filled text is never re-read as a template.
  const auto rows = read_longbench_jsonl(rows_dir() / "lcc.jsonl");
  ASSERT_TRUE(contains(rows[1].context, "{"));
  EXPECT_EQ(longbench_prompt(config().dataset("lcc"), rows[1]),
            "Please complete the code given below. \n" + rows[1].context + "Next line of code:\n");
  LongBenchRow row;
  row.context = "{input}";
  row.input = "Q";
  LongBenchDataset ds{"toy", "{{literal}} {context}|{input}", "qa_f1", 8, false};
  EXPECT_EQ(longbench_prompt(ds, row), "{literal} {input}|Q");
}

TEST(LongBenchPrompt, BadTemplateNamesTheDataset) {
  LongBenchDataset ds{"toy", "{context} {length}", "qa_f1", 8, false};
  const std::string msg = error_of([&] { longbench_prompt(ds, LongBenchRow{}); });
  EXPECT_TRUE(contains(msg, "\"toy\"") && contains(msg, "{length}")) << msg;
  ds.prompt_template = "{context";
  EXPECT_TRUE(contains(error_of([&] { longbench_prompt(ds, LongBenchRow{}); }), "'{'"));
  ds.prompt_template = "x } y";
  EXPECT_TRUE(contains(error_of([&] { longbench_prompt(ds, LongBenchRow{}); }), "'}'"));
}

// ---- scoring ----

TEST(LongBenchScore, BestOverTheAnswers) {
  const auto rows = read_longbench_jsonl(rows_dir() / "narrativeqa.jsonl");
  const LongBenchDataset& ds = config().dataset("narrativeqa");
  // Answers "Under the boards of the cider press" -> [under, boards, of, cider, press] and
  // "In the old cider press" -> [in, old, cider, press]. The prediction matches the second
  // exactly (F1 1); against the first alone it would be 2 * (2/4) * (2/5) / (2/4 + 2/5) = 4/9.
  EXPECT_DOUBLE_EQ(longbench_score(ds, "In the old cider press.", rows[0]), 100.0);
  // And the other way round: the first answer is the best one (4/9 against the second).
  EXPECT_DOUBLE_EQ(longbench_score(ds, "under the boards of the cider press", rows[0]), 100.0);
  LongBenchRow first_only = rows[0];
  first_only.answers.resize(1);
  EXPECT_NEAR(longbench_score(ds, "In the old cider press.", first_only), 400.0 / 9.0, 1e-9);
  LongBenchRow none = rows[0];
  none.answers.clear();
  EXPECT_EQ(longbench_score(ds, "anything", none), 0.0);
}

TEST(LongBenchScore, FirstLineRule) {
  const auto rows = read_longbench_jsonl(rows_dir() / "trec.jsonl");
  const LongBenchDataset& trec = config().dataset("trec");
  // Only "Other location" is scored (leading newlines skipped): one class, the gold: 100.
  EXPECT_DOUBLE_EQ(longbench_score(trec, "\n\nOther location\nCity", rows[0]), 100.0);
  // The whole text names City and Other location: credit shared, 50.
  LongBenchDataset whole = trec;
  whole.first_line_only = false;
  EXPECT_DOUBLE_EQ(longbench_score(whole, "\n\nOther location\nCity", rows[0]), 50.0);
  // triviaqa: an answer on the second line does not count.
  LongBenchRow row;
  row.answers = {"Vienna"};
  EXPECT_DOUBLE_EQ(longbench_score(config().dataset("triviaqa"), "Vienna\nBerlin", row), 100.0);
  EXPECT_DOUBLE_EQ(longbench_score(config().dataset("triviaqa"), "Berlin\nVienna", row), 0.0);
}

TEST(LongBenchScore, OtherMetricsThroughTheSettings) {
  const auto retrieval = read_longbench_jsonl(rows_dir() / "passage_retrieval_en.jsonl");
  EXPECT_DOUBLE_EQ(
      longbench_score(config().dataset("passage_retrieval_en"), "Paragraph 2", retrieval[0]),
      100.0);
  EXPECT_DOUBLE_EQ(
      longbench_score(config().dataset("passage_retrieval_en"), "Paragraph 2", retrieval[1]), 0.0);
  const auto count = read_longbench_jsonl(rows_dir() / "passage_count.jsonl");
  // Numbers 3 and 2, the gold is 2: 50.
  EXPECT_DOUBLE_EQ(longbench_score(config().dataset("passage_count"), "3 or 2", count[0]), 50.0);
  const auto lcc = read_longbench_jsonl(rows_dir() / "lcc.jsonl");
  EXPECT_DOUBLE_EQ(
      longbench_score(config().dataset("lcc"), "\n    return width * height\n", lcc[0]), 100.0);
  const auto gov = read_longbench_jsonl(rows_dir() / "gov_report.jsonl");
  EXPECT_NEAR(longbench_score(config().dataset("gov_report"), gov[1].answers[0], gov[1]), 100.0,
              1e-6);
}

// ---- JSONL reader ----

TEST(LongBenchJsonl, ReadsTheTestRows) {
  const auto nqa = read_longbench_jsonl(rows_dir() / "narrativeqa.jsonl");
  ASSERT_EQ(nqa.size(), 2u);
  EXPECT_EQ(nqa[0].input, "Where does Mara hide the lantern?");
  EXPECT_EQ(nqa[0].answers, (std::vector<std::string>{"Under the boards of the cider press",
                                                      "In the old cider press"}));
  EXPECT_TRUE(nqa[0].all_classes.empty());  // null in the file
  EXPECT_EQ(nqa[0].length, 41);
  EXPECT_EQ(nqa[0].id, "nqa-0001");
  EXPECT_EQ(nqa[1].answers, std::vector<std::string>{"His aunt Ilse"});

  const auto trec = read_longbench_jsonl(rows_dir() / "trec.jsonl");
  ASSERT_EQ(trec.size(), 2u);
  EXPECT_EQ(trec[1].all_classes.size(), 6u);
  EXPECT_EQ(trec[1].all_classes[3], "Distance, linear measure");
  EXPECT_TRUE(contains(trec[0].context, "Type: City\nQuestion:"));  // \n unescaped

  const auto lcc = read_longbench_jsonl(rows_dir() / "lcc.jsonl");
  ASSERT_EQ(lcc.size(), 2u);
  EXPECT_EQ(lcc[0].context, "def area(width, height):\n    \"\"\"Area of a rectangle.\"\"\"\n");
  EXPECT_EQ(read_longbench_jsonl(rows_dir() / "gov_report.jsonl")[0].input, "");
  EXPECT_EQ(read_longbench_jsonl(rows_dir() / "passage_count.jsonl").size(), 2u);
}

class LongBenchJsonlErrors : public ::testing::Test {
 protected:
  // Writes `content` and returns the reader's error message.
  std::string error_for(const std::string& content) {
    test::write_file(path_, content);
    return error_of([&] { read_longbench_jsonl(path_); });
  }
  std::string at(int line) const { return path_.string() + ":" + std::to_string(line) + ":"; }

  static constexpr const char* kGood =
      R"({"input": "q", "context": "c", "answers": ["a"], "all_classes": null, "length": 3})";
  test::TempDir dir_;
  fs::path path_ = dir_ / "rows.jsonl";
};

TEST_F(LongBenchJsonlErrors, BadJsonOnLineTwo) {
  const std::string msg = error_for(std::string(kGood) + "\n{\"input\": \"q\", \"context\n");
  EXPECT_TRUE(contains(msg, at(2))) << msg;
  EXPECT_TRUE(contains(msg, "not valid JSON at column 24: syntax error")) << msg;
  EXPECT_FALSE(contains(msg, "line 1")) << msg;  // the parser's own line count is left out
}

TEST_F(LongBenchJsonlErrors, MissingAnswers) {
  const std::string msg = error_for(std::string(kGood) + "\n" + kGood + "\n" +
                                    R"({"input": "q", "context": "c", "length": 3})" + "\n");
  EXPECT_TRUE(contains(msg, at(3))) << msg;
  EXPECT_TRUE(contains(msg, "missing field \"answers\"")) << msg;
}

TEST_F(LongBenchJsonlErrors, WrongTypes) {
  std::string msg = error_for(R"({"input": "q", "context": "c", "answers": "a"})");
  EXPECT_TRUE(contains(msg, at(1))) << msg;
  EXPECT_TRUE(contains(msg, "\"answers\" must be an array of strings, got string")) << msg;

  msg = error_for(R"({"input": "q", "context": "c", "answers": ["a", 2]})");
  EXPECT_TRUE(contains(msg, "element 1 is a number")) << msg;

  msg = error_for(R"({"input": 7, "context": "c", "answers": ["a"]})");
  EXPECT_TRUE(contains(msg, "\"input\" must be a string, got number")) << msg;

  msg = error_for(R"({"input": "q", "context": "c", "answers": ["a"], "length": "3"})");
  EXPECT_TRUE(contains(msg, "\"length\" must be an integer")) << msg;

  msg = error_for(R"({"input": "q", "context": "c", "answers": ["a"], "all_classes": "x"})");
  EXPECT_TRUE(contains(msg, "\"all_classes\" must be an array of strings")) << msg;

  msg = error_for("[1, 2]\n");
  EXPECT_TRUE(contains(msg, at(1)) && contains(msg, "expected a JSON object")) << msg;
}

TEST_F(LongBenchJsonlErrors, BlankLinesAreSkippedButCounted) {
  test::write_file(path_, std::string(kGood) + "\r\n\n" + kGood + "\r\n");
  EXPECT_EQ(read_longbench_jsonl(path_).size(), 2u);  // CRLF and a blank line are fine
  const std::string msg = error_for(std::string(kGood) + "\n\n{oops}\n");
  EXPECT_TRUE(contains(msg, at(3))) << msg;
}

TEST_F(LongBenchJsonlErrors, MissingFile) {
  const std::string msg = error_of([&] { read_longbench_jsonl(dir_ / "nope.jsonl"); });
  EXPECT_TRUE(contains(msg, "nope.jsonl")) << msg;
}

}  // namespace
}  // namespace dapx::eval
