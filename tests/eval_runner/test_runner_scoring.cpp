// dapx eval's runner with a stub completion in place of the model: the prompts it sends (raw and
// in the chat template), the metric each task is scored with, partial credit and the averages of
// the summary, by hand.
#include <gtest/gtest.h>

#include <fstream>

#include "error_message.h"
#include "eval/runner.h"
#include "temp_dir.h"
#include "tiny_models.h"
#include "util/error.h"

namespace dapx::eval {
namespace {

using test::error_of;

const std::string kTemplates = std::string(DAPX_DATA_DIR) + "/eval/ruler_templates.json";

// The shipped templates plus "niah_multivalue_part": niah_multivalue scored with
// string_match_part, so that one answer of four earns full credit there and a quarter under
// string_match_all.
std::filesystem::path templates_with_part_task(const test::TempDir& tmp) {
  std::ifstream in(kTemplates);
  nlohmann::json t = nlohmann::json::parse(in);
  for (const nlohmann::json& task : t.at("tasks"))
    if (task.at("name") == "niah_multivalue") {
      nlohmann::json part = task;
      part["name"] = "niah_multivalue_part";
      part["metric"] = "string_match_part";
      t["tasks"].push_back(part);
      break;
    }
  const auto path = tmp / "templates.json";
  test::write_file(path, t.dump());
  return path;
}

struct Fixture {
  test::TempDir tmp;
  std::unique_ptr<LoadedModel> model;  // ChatML template (tiny_models.h)
  TaskSuite suite;
  Fixture()
      : model(LoadedModel::load(testing::tiny_model(Arch::Qwen2), ComputeOptions{})),
        suite(templates_with_part_task(tmp), TextSources::load(Split::Eval), Split::Eval) {}
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// The first n answers, as a model that found only those would write them.
std::string some_answers(const std::vector<std::string>& answers, size_t n) {
  std::string out = "I found";
  for (size_t i = 0; i < n && i < answers.size(); ++i) out += " " + answers[i];
  return out + ".";
}

const nlohmann::json* cell(const nlohmann::json& summary, const char* list, const char* field,
                           const std::string& name, const std::string& run) {
  for (const nlohmann::json& c : summary.at(list))
    if (c.at(field) == name && c.at("run") == run) return &c;
  return nullptr;
}

double score_of(const nlohmann::json& summary, const std::string& task, const std::string& run) {
  const nlohmann::json* c = cell(summary, "cells", "task", task, run);
  return c ? c->at("score").get<double>() : -1.0;
}

double category_of(const nlohmann::json& summary, const std::string& cat, const std::string& run) {
  const nlohmann::json* c = cell(summary, "categories", "category", cat, run);
  return c ? c->at("score").get<double>() : -1.0;
}

TEST(EvalScoring, TheMetricOfEachTaskAndPartialCreditAndTheAverages) {
  Fixture& fx = fixture();
  test::TempDir tmp;
  EvalPlan plan;
  plan.tasks = {"niah_single_1", "niah_multivalue", "niah_multivalue_part", "vt", "qa_synth_1"};
  plan.lengths = {640};
  plan.runs = {MethodRun{"full"}, MethodRun{"snapkv", 64}};
  plan.samples = 2;
  plan.seed = 5;
  // The stub checks the prompt the runner sent, then answers: "full" everything, "snapkv" half
  // of the answers (rounded down) on sample 0 and everything on sample 1.
  std::map<std::string, std::vector<std::string>> answers;  // "task|sample"
  int calls = 0;
  const Completion stub = [&](const nlohmann::json& key, const MethodRun& run,
                              const std::vector<int>& prompt, const GenerationParams& params) {
    ++calls;
    const std::string task = key.at("task");
    const int i = key.at("sample");
    const Sample s = fx.suite.make(task, fx.model->tokenizer, 640, plan.seed + i);
    EXPECT_EQ(prompt, fx.model->tokenizer.encode(s.prompt())) << task;
    EXPECT_EQ(params.max_new_tokens, s.max_new_tokens) << task;  // the task's own
    EXPECT_EQ(key.at("run"), run.label());
    answers[task + "|" + std::to_string(i)] = s.answers;
    const bool half = run.method == "snapkv" && i == 0;
    return nlohmann::json{
        {"output", some_answers(s.answers, half ? s.answers.size() / 2 : s.answers.size())}};
  };
  ResultLog log(tmp / "results.jsonl");
  run_ruler(*fx.model, nullptr, fx.suite, plan, log, {}, stub);
  ASSERT_EQ(calls, 5 * 2 * 2);
  ASSERT_EQ(log.rows().size(), 20u);

  // The answer counts the partial credits below depend on.
  for (int i = 0; i < 2; ++i) {
    const std::string n = std::to_string(i);
    ASSERT_EQ(answers.at("niah_single_1|" + n).size(), 1u);
    ASSERT_EQ(answers.at("niah_multivalue|" + n).size(), 4u);
    ASSERT_EQ(answers.at("niah_multivalue_part|" + n).size(), 4u);
    ASSERT_EQ(answers.at("qa_synth_1|" + n).size(), 1u);
  }
  const size_t vt_n = answers.at("vt|0").size();
  ASSERT_GE(vt_n, 3u);  // a chain of several variables: half of them is partial credit
  const double vt_half = 100.0 * static_cast<double>(vt_n / 2) / static_cast<double>(vt_n);

  for (const nlohmann::json& r : log.rows()) {
    const std::string task = r.at("task");
    const bool part = task == "niah_multivalue_part" || task == "qa_synth_1";
    EXPECT_EQ(r.at("metric"), part ? "string_match_part" : "string_match_all") << task;
    EXPECT_EQ(r.at("answers"),
              nlohmann::json(answers.at(task + "|" + std::to_string(r.at("sample").get<int>()))));
    EXPECT_EQ(r.at("prompt_hash").get<std::string>().size(), 16u);
    if (r.at("run") == "full") {
      EXPECT_EQ(r.at("score"), 100.0) << task;
    }
  }
  const auto row_score = [&](const std::string& task, const std::string& run, int sample) {
    for (const nlohmann::json& r : log.rows())
      if (r.at("task") == task && r.at("run") == run && r.at("sample") == sample)
        return r.at("score").get<double>();
    return -1.0;
  };
  EXPECT_EQ(row_score("niah_single_1", "snapkv@64", 0), 0.0);           // no answer
  EXPECT_EQ(row_score("niah_multivalue", "snapkv@64", 0), 50.0);        // 2 of 4: all-match
  EXPECT_EQ(row_score("niah_multivalue_part", "snapkv@64", 0), 100.0);  // any: part-match
  EXPECT_DOUBLE_EQ(row_score("vt", "snapkv@64", 0), vt_half);
  EXPECT_EQ(row_score("qa_synth_1", "snapkv@64", 0), 0.0);

  // Cells: the mean over the samples; categories: over their tasks' rows; "all": every row.
  const nlohmann::json summary = summarize(rows_of_plan(log.rows(), plan));
  EXPECT_EQ(score_of(summary, "niah_single_1", "full"), 100.0);
  EXPECT_EQ(score_of(summary, "niah_single_1", "snapkv@64"), 50.0);
  EXPECT_EQ(score_of(summary, "niah_multivalue", "snapkv@64"), 75.0);
  EXPECT_EQ(score_of(summary, "niah_multivalue_part", "snapkv@64"), 100.0);
  EXPECT_DOUBLE_EQ(score_of(summary, "vt", "snapkv@64"), (vt_half + 100.0) / 2);
  EXPECT_EQ(score_of(summary, "qa_synth_1", "snapkv@64"), 50.0);
  EXPECT_EQ(category_of(summary, "niah", "full"), 100.0);
  EXPECT_EQ(category_of(summary, "niah", "snapkv@64"), (50.0 + 75.0 + 100.0) / 3);
  EXPECT_DOUBLE_EQ(category_of(summary, "multi-hop tracing", "snapkv@64"), (vt_half + 100) / 2);
  EXPECT_EQ(category_of(summary, "qa", "snapkv@64"), 50.0);
  EXPECT_DOUBLE_EQ(category_of(summary, "all", "snapkv@64"),
                   (0 + 100 + 50 + 100 + 100 + 100 + vt_half + 100 + 0 + 100) / 10.0);
  EXPECT_EQ(cell(summary, "categories", "category", "all", "snapkv@64")->at("samples"), 10);

  // A resume with every row present calls nothing.
  calls = 0;
  run_ruler(*fx.model, nullptr, fx.suite, plan, log, {}, stub);
  EXPECT_EQ(calls, 0);
}

TEST(EvalScoring, ChatPromptsWrapTheInputAndKeepTheAnswerPrefixAfterTheAssistantTurn) {
  Fixture& fx = fixture();
  test::TempDir tmp;
  const Tokenizer& tok = fx.model->tokenizer;
  const auto [before, after] = chat_wrapping(*fx.model);
  EXPECT_EQ(before, "<|im_start|>user\n");
  EXPECT_EQ(after, "<|im_end|>\n<|im_start|>assistant\n");
  const int markup = static_cast<int>(tok.encode(before + after).size());
  EvalPlan plan;
  plan.tasks = {"niah_single_1"};
  plan.lengths = {640};
  plan.runs = {MethodRun{"full"}};
  plan.samples = 1;
  plan.seed = 3;
  plan.max_new_tokens = 4;
  plan.chat = true;
  int calls = 0;
  ResultLog log(tmp / "results.jsonl");
  run_ruler(
      *fx.model, nullptr, fx.suite, plan, log, {},
      [&](const nlohmann::json&, const MethodRun&, const std::vector<int>& prompt,
          const GenerationParams& params) {
        ++calls;
        // The sample leaves room for the markup; RULER's answer prefix follows the
        // opened assistant turn.
        const Sample s = fx.suite.make("niah_single_1", tok, 640 - markup, 3);
        EXPECT_EQ(tok.decode(prompt), "<|im_start|>user\n" + s.input +
                                          "<|im_end|>\n<|im_start|>assistant\n" + s.answer_prefix);
        EXPECT_EQ(prompt, tok.encode("<|im_start|>user\n" + s.input +
                                     "<|im_end|>\n<|im_start|>assistant\n" + s.answer_prefix));
        EXPECT_LE(prompt.size(), 640u + 2);
        EXPECT_EQ(params.max_new_tokens, 4);
        return nlohmann::json{{"output", s.answers.at(0)}};
      });
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(log.rows().size(), 1u);
  EXPECT_EQ(log.rows()[0].at("score"), 100.0);

  // A model without a template: the error names its directory (and the way out).
  const auto raw_dir = tmp / "raw-model";
  std::filesystem::create_directories(raw_dir);
  for (const auto& e : std::filesystem::directory_iterator(fx.model->dir))
    std::filesystem::copy_file(e.path(), raw_dir / e.path().filename());
  test::write_file(raw_dir / "tokenizer_config.json", "{}");
  const auto raw = LoadedModel::load(raw_dir, ComputeOptions{});
  ResultLog raw_log(tmp / "raw.jsonl");
  const std::string msg =
      error_of([&] { run_ruler(*raw, nullptr, fx.suite, plan, raw_log, {}, {}); });
  EXPECT_NE(msg.find("the model " + raw_dir.string() + " has no chat template"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("without --chat"), std::string::npos) << msg;
  test::write_file(raw_dir / "tokenizer_config.json",
                   R"({"chat_template": "[INST] {{ content }} [/INST]"})");
  const auto odd = LoadedModel::load(raw_dir, ComputeOptions{});
  EXPECT_NE(error_of([&] {
              run_ruler(*odd, nullptr, fx.suite, plan, raw_log, {}, {});
            }).find("neither ChatML nor Llama 3"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(tmp / "raw.jsonl"));
}

// LongBench through the runner: the dataset's metric with partial credit (qa_f1), the first-line
// rule and classification (trec), the chat template only where LongBench's pred.py applies it,
// and a prompt cut in the middle with the markup kept whole.
TEST(EvalScoring, LongBenchScoresChatOnlyWherePredPyUsesItAndCutsTheMiddle) {
  Fixture& fx = fixture();
  test::TempDir tmp;
  const auto data = tmp / "lb";
  std::filesystem::create_directories(data);
  test::write_file(data / "narrativeqa.jsonl",
                   R"({"input": "Where is the lantern?", "context": "Mara hid it.", )"
                   R"("answers": ["under the red boards"], "_id": "n0"})"
                   "\n"
                   R"({"input": "Who hid it?", "context": "Mara hid it.", )"
                   R"("answers": ["Mara"], "_id": "n1"})"
                   "\n");
  test::write_file(data / "trec.jsonl",
                   R"({"input": "What river flows through Vienna?", "context": "Question: )"
                   R"(Who wrote Hamlet?\nType: Individual", "answers": ["Other location"], )"
                   R"("all_classes": ["Individual", "Other location", "City"], "_id": "t0"})"
                   "\n");
  const LongBenchConfig config =
      LongBenchConfig::load(std::string(DAPX_DATA_DIR) + "/eval/longbench.json");
  const Tokenizer& tok = fx.model->tokenizer;
  const auto [before, after] = chat_wrapping(*fx.model);
  EvalPlan plan;
  plan.tasks = {"narrativeqa", "trec"};
  plan.runs = {MethodRun{"full"}};
  plan.samples = 5;  // more than the files hold
  plan.chat = true;
  std::vector<std::string> seen;
  const Completion stub = [&](const nlohmann::json& key, const MethodRun&,
                              const std::vector<int>& prompt, const GenerationParams& params) {
    const std::string task = key.at("task");
    const int i = key.at("sample");
    seen.push_back(task + "|" + std::to_string(i));
    const LongBenchDataset& ds = config.dataset(task);
    const LongBenchRow row = read_longbench_jsonl(data / (task + ".jsonl")).at(i);
    const std::string text = longbench_prompt(ds, row);
    EXPECT_EQ(params.max_new_tokens, ds.max_new_tokens) << task;
    EXPECT_EQ(key.at("length"), static_cast<int64_t>(prompt.size()));
    if (task == "narrativeqa") {  // chat_template: true
      EXPECT_EQ(prompt, tok.encode(before + text + after));
      // "the red boards" against "under the red boards": articles dropped, tokens
      // {red, boards} of {under, red, boards}: precision 1, recall 2/3, F1 0.8.
      return nlohmann::json{{"output", i == 0 ? "the red boards" : "Mara"}};
    }
    EXPECT_EQ(prompt, tok.encode(text));  // trec: raw, as pred.py
    EXPECT_TRUE(params.stop.empty());
    return nlohmann::json{{"output", "Other location\nCity"}};  // scored on the first line
  };
  ResultLog log(tmp / "lb.jsonl");
  run_longbench(*fx.model, nullptr, config, data, plan, log, {}, stub);
  EXPECT_EQ(seen, (std::vector<std::string>{"narrativeqa|0", "narrativeqa|1", "trec|0"}));
  ASSERT_EQ(log.rows().size(), 3u);
  EXPECT_NEAR(log.rows()[0].at("score").get<double>(), 80.0, 1e-9);
  EXPECT_EQ(log.rows()[0].at("metric"), "qa_f1");
  EXPECT_EQ(log.rows()[0].at("id"), "n0");
  EXPECT_EQ(log.rows()[1].at("score"), 100.0);
  EXPECT_EQ(log.rows()[2].at("metric"), "classification");
  EXPECT_EQ(log.rows()[2].at("score"), 100.0);
  const nlohmann::json summary = summarize(rows_of_plan(log.rows(), plan));
  EXPECT_NEAR(score_of(summary, "narrativeqa", "full"), 90.0, 1e-9);
  EXPECT_NEAR(category_of(summary, "all", "full"), (80.0 + 100 + 100) / 3, 1e-9);

  // An edited data file is not resumed on as if it were the same sample.
  test::write_file(data / "narrativeqa.jsonl",
                   R"({"input": "Where is the lamp?", "context": "Mara hid it.", )"
                   R"("answers": ["under the red boards"], "_id": "n0"})"
                   "\n");
  plan.tasks = {"narrativeqa"};
  const std::string msg =
      error_of([&] { run_longbench(*fx.model, nullptr, config, data, plan, log, {}, stub); });
  EXPECT_NE(msg.find("the rows of narrativeqa sample 0 were made from another prompt"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("narrativeqa.jsonl or its prompt template changed"), std::string::npos) << msg;

  // A context shorter than the prompt: the middle of the text is cut, the markup is kept.
  LoadedModel& model = *fx.model;
  const int64_t context = model.config.max_position_embeddings;
  const std::vector<int> b = tok.encode(before), a = tok.encode(after);
  const std::vector<int> body = tok.encode(longbench_prompt(
      config.dataset("narrativeqa"), read_longbench_jsonl(data / "narrativeqa.jsonl").at(0)));
  model.config.max_position_embeddings = 128 + static_cast<int64_t>(b.size() + a.size()) + 20;
  ASSERT_GT(body.size(), 20u + 10);
  plan.max_new_tokens = 128;
  int cut_calls = 0;
  ResultLog cut_log(tmp / "cut.jsonl");
  run_longbench(model, nullptr, config, data, plan, cut_log, {},
                [&](const nlohmann::json&, const MethodRun&, const std::vector<int>& prompt,
                    const GenerationParams&) {
                  ++cut_calls;
                  std::vector<int> want = b;
                  want.insert(want.end(), body.begin(), body.begin() + 10);
                  want.insert(want.end(), body.end() - 10, body.end());
                  want.insert(want.end(), a.begin(), a.end());
                  EXPECT_EQ(prompt, want);
                  return nlohmann::json{{"output", ""}};
                });
  model.config.max_position_embeddings = context;
  EXPECT_EQ(cut_calls, 1);
}

}  // namespace
}  // namespace dapx::eval
