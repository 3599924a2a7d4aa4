// dapx eval's runner on tiny random models: rows per (task, length, sample, run), the same
// sample for every run, resuming (also after a kill mid-line), summary and report, errors.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "engine/generator.h"
#include "error_message.h"
#include "eval/fingerprint.h"
#include "eval/report.h"
#include "eval/runner.h"
#include "methods/catalogue.h"
#include "temp_dir.h"
#include "tiny_models.h"
#include "util/error.h"

namespace dapx::eval {
namespace {

struct Fixture {
  std::unique_ptr<LoadedModel> model;
  TaskSuite suite;
  Fixture()
      : model(LoadedModel::load(testing::tiny_model(Arch::Qwen2), ComputeOptions{})),
        suite(std::string(DAPX_DATA_DIR) + "/eval/ruler_templates.json",
              TextSources::load(Split::Eval), Split::Eval) {}
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

EvalPlan small_plan() {
  EvalPlan plan;
  plan.tasks = {"niah_single_1", "vt"};
  plan.lengths = {520};
  plan.runs = {{"full", 0, nlohmann::json::object()}, {"snapkv", 64, nlohmann::json::object()}};
  plan.samples = 2;
  plan.seed = 11;
  plan.max_new_tokens = 3;
  return plan;
}

int count_lines(const std::filesystem::path& p) {
  std::ifstream in(p);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.empty() ? 0 : 1;
  return n;
}

using test::error_of;

TEST(EvalRunner, RowsPerSampleAndRunTheSameSampleForEveryRunAndAResumeSkipsThem) {
  Fixture& fx = fixture();
  test::TempDir tmp;
  const auto file = tmp / "results.jsonl";
  int reported = 0;
  Progress progress;
  progress.on_row = [&](int done, int total, const nlohmann::json&) {
    ++reported;
    EXPECT_EQ(total, 8);
    EXPECT_LE(done, total);
  };
  {
    ResultLog log(file);
    run_ruler(*fx.model, nullptr, fx.suite, small_plan(), log, progress);
    EXPECT_EQ(log.rows().size(), 8u);
  }
  EXPECT_EQ(reported, 8);
  EXPECT_EQ(count_lines(file), 8);
  ResultLog log(file);
  ASSERT_EQ(log.rows().size(), 8u);
  std::set<std::string> keys;
  for (const auto& r : log.rows()) {
    keys.insert(ResultLog::key_of(r));
    // The row is the suite's sample for (task, length, seed + sample), made again here: its
    // prompt, answers and metric; its output is the generation of that prompt by its run's
    // method (3 new tokens, greedy), generated again here; its score the metric on both.
    const std::string task = r["task"], run = r["run"];
    const int i = r["sample"];
    const Sample s = fx.suite.make(task, fx.model->tokenizer, 520, 11 + i);
    const std::vector<int> prompt = fx.model->tokenizer.encode(s.prompt());
    const std::string what = task + " sample " + std::to_string(i) + " " + run;
    EXPECT_EQ(r["prompt_hash"], tokens_hash(prompt)) << what;
    EXPECT_EQ(r["prompt_tokens"], prompt.size()) << what;
    EXPECT_LE(prompt.size(), 520u) << what;
    EXPECT_GE(prompt.size(), 509u) << what;  // within 2% of the length
    EXPECT_EQ(r["seed"], s.seed) << what;
    EXPECT_EQ(r["answers"], s.answers) << what;
    EXPECT_EQ(r["metric"], s.metric) << what;
    const nlohmann::json params =
        run == "full" ? nlohmann::json::object() : nlohmann::json{{"budget", 64}};
    const std::unique_ptr<Method> method =
        make_method(r["method"].get<std::string>(), params, MethodOptions{});
    GenerationParams g;
    g.max_new_tokens = 3;
    const GenerationResult alone = generate(*fx.model, *method, prompt, g);
    // (the results file is UTF-8: a random model's stray bytes are stored as U+FFFD)
    EXPECT_EQ(
        r["output"].dump(),
        nlohmann::json(alone.text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        << what;
    const double want = s.metric == "string_match_part" ? string_match_part(alone.text, s.answers)
                                                        : string_match_all(alone.text, s.answers);
    EXPECT_EQ(r["score"].get<double>(), want) << what;
    for (const auto& o : log.rows())  // same (task, sample): same prompt, whatever the run
      if (o["task"] == r["task"]) {
        EXPECT_EQ(o["sample"] == r["sample"], o["prompt_hash"] == r["prompt_hash"]) << what;
      }
    if (r["method"] == "snapkv") {
      EXPECT_LT(r["kv_bytes"], r["kv_bytes_full"]);
    }
  }
  EXPECT_EQ(keys.size(), 8u);  // one row per (task, length, sample, run)
  // Resuming the same plan generates nothing.
  reported = 0;
  run_ruler(*fx.model, nullptr, fx.suite, small_plan(), log, progress);
  EXPECT_EQ(reported, 0);
  EXPECT_EQ(count_lines(file), 8);

  // Summary, table and report.
  const nlohmann::json summary = summarize(log.rows());
  EXPECT_EQ(summary["runs"], nlohmann::json({"full", "snapkv@64"}));
  const std::string table = summary_table(summary);
  for (const char* s : {"niah_single_1", "vt", "snapkv@64", "avg all", "length 520"})
    EXPECT_NE(table.find(s), std::string::npos) << s;
  write_report(summary, tmp / "report");
  for (const char* f :
       {"summary.md", "summary.json", "accuracy_vs_budget_520.svg", "accuracy_vs_length.svg"})
    EXPECT_TRUE(std::filesystem::exists(tmp / "report" / f)) << f;
  EXPECT_NE(test::read_file(tmp / "report" / "accuracy_vs_length.svg").find("<svg"),
            std::string::npos);
}

// Under the scores, the table says what they cost: mean seconds per sample, TTFT and the share
// of the KV cache kept, over all tasks of a length.
TEST(EvalRunner, TheTableShowsTimeAndKVPerRun) {
  std::vector<nlohmann::json> rows;
  const auto row = [&](const char* run, const char* method, const char* task, double total,
                       double kv) {
    rows.push_back({{"run", run},
                    {"method", method},
                    {"budget", 0},
                    {"task", task},
                    {"suite", "ruler"},
                    {"length", 100},
                    {"score", 100.0},
                    {"ttft_s", total / 4},
                    {"total_s", total},
                    {"kv_bytes", kv},
                    {"kv_bytes_full", 100.0}});
  };
  row("full", "full", "vt", 1.0, 100);
  row("full", "full", "cwe", 2.0, 100);
  row("snapkv@8", "snapkv", "vt", 0.5, 20);
  row("snapkv@8", "snapkv", "cwe", 0.7, 30);
  const std::string table = summary_table(summarize(rows));
  EXPECT_NE(table.find("| seconds per sample | 1.50 | 0.60 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| TTFT (s) | 0.38 | 0.15 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| KV kept (%) | 100.0 | 25.0 |"), std::string::npos) << table;
}

TEST(EvalRunner, AKilledRunLosesOnlyTheRowInFlight) {
  Fixture& fx = fixture();
  test::TempDir tmp;
  const auto file = tmp / "results.jsonl";
  {
    ResultLog log(file);
    EvalPlan plan = small_plan();
    plan.samples = 1;  // 4 rows
    run_ruler(*fx.model, nullptr, fx.suite, plan, log, {});
  }
  // Keep 3 whole rows and half of the fourth, as a kill while writing would.
  std::string text = test::read_file(file);
  size_t third = 0;
  for (int i = 0; i < 3; ++i) third = text.find('\n', third) + 1;
  test::write_file(file, text.substr(0, third) + text.substr(third, 40));
  ResultLog log(file);
  EXPECT_EQ(log.rows().size(), 3u);
  int generated = 0;
  Progress progress;
  progress.on_row = [&](int, int, const nlohmann::json&) { ++generated; };
  run_ruler(*fx.model, nullptr, fx.suite, small_plan(), log, progress);
  EXPECT_EQ(generated, 5);  // the lost row and the second samples
  EXPECT_EQ(count_lines(file), 8);
  EXPECT_EQ(ResultLog(file).rows().size(), 8u);
}

TEST(EvalRunner, AFileOfAnotherSetupIsNotResumed) {
  Fixture& fx = fixture();
  test::TempDir tmp;
  const auto file = tmp / "results.jsonl";
  const nlohmann::json a = {{"model", "/models/a"}, {"dtype", "bf16"}};
  const nlohmann::json b = {{"model", "/models/b"}, {"dtype", "bf16"}};
  {
    ResultLog log(file, a);
    EvalPlan plan = small_plan();
    plan.samples = 1;
    run_ruler(*fx.model, nullptr, fx.suite, plan, log, {});
  }
  const ResultLog same(file, a);  // resumes: every row carries its setup
  ASSERT_EQ(same.rows().size(), 4u);
  for (const auto& r : same.rows()) EXPECT_EQ(r.at("setup"), a);
  // The error names each field that differs, with both values, and no field that does not.
  const std::string other = error_of([&] { ResultLog log(file, b); });
  EXPECT_NE(other.find("results.jsonl:1: a result of another setup: model was \"/models/a\", "
                       "this run has \"/models/b\";"),
            std::string::npos)
      << other;
  EXPECT_EQ(other.find("dtype"), std::string::npos) << other;
  EXPECT_NE(other.find("choose another --out or remove the file"), std::string::npos) << other;
  nlohmann::json c = a;
  c["seed"] = 2;
  c.erase("dtype");
  const std::string fields = error_of([&] { ResultLog log(file, c); });
  EXPECT_NE(fields.find("seed was (none), this run has 2; dtype was \"bf16\", this run has (none)"),
            std::string::npos)
      << fields;
  // A row without a setup (an older dapx's) is not taken for this run's either.
  test::write_file(tmp / "old.jsonl",
                   R"({"suite":"ruler","task":"t","length":64,"run":"full","sample":0})"
                   "\n");
  EXPECT_NE(error_of([&] { ResultLog log(tmp / "old.jsonl", a); }).find("an unrecorded setup"),
            std::string::npos);
  EXPECT_EQ(count_lines(file), 4);  // nothing was lost
}

TEST(EvalRunner, BadInputIsAClearErrorAndKeepsTheRows) {
  Fixture& fx = fixture();
  test::TempDir tmp;
  const auto file = tmp / "results.jsonl";
  ResultLog log(file);
  EvalPlan plan = small_plan();
  plan.tasks = {"niah_single_9"};
  EXPECT_NE(error_of([&] {
              run_ruler(*fx.model, nullptr, fx.suite, plan, log, {});
            }).find("niah_single_9"),
            std::string::npos);
  plan = small_plan();
  plan.lengths = {100};
  const std::string short_msg =
      error_of([&] { run_ruler(*fx.model, nullptr, fx.suite, plan, log, {}); });
  EXPECT_NE(short_msg.find("100"), std::string::npos) << short_msg;
  plan = small_plan();
  plan.runs = {{"snapkv", 16, nlohmann::json::object()}};  // budget 16 <= window 32
  const std::string budget_msg =
      error_of([&] { run_ruler(*fx.model, nullptr, fx.suite, plan, log, {}); });
  EXPECT_NE(budget_msg.find("snapkv@16"), std::string::npos) << budget_msg;
  EXPECT_NE(budget_msg.find("window"), std::string::npos) << budget_msg;
  plan.runs = {{"snapkv", 64, {{"windw", 8}}}};
  const std::string param_msg =
      error_of([&] { run_ruler(*fx.model, nullptr, fx.suite, plan, log, {}); });
  EXPECT_NE(param_msg.find("'windw'"), std::string::npos) << param_msg;
  plan.runs = {{"snapkv", 64, {{"window", "eight"}}}};
  EXPECT_NE(error_of([&] {
              run_ruler(*fx.model, nullptr, fx.suite, plan, log, {});
            }).find("must be an integer"),
            std::string::npos);
  plan.runs = {{"speckv", 64, nlohmann::json::object()}};
  EXPECT_NE(error_of([&] {
              run_ruler(*fx.model, nullptr, fx.suite, plan, log, {});
            }).find("needs a draft"),
            std::string::npos);
  EXPECT_EQ(log.rows().size(), 0u);
  EXPECT_FALSE(std::filesystem::exists(file));  // nothing was generated, nothing written

  // A malformed line that is not the last: the file and line are named.
  test::write_file(file, "{\"suite\":1}\nnot json\n{}\n");
  EXPECT_NE(error_of([&] { ResultLog bad(file); }).find("results.jsonl:1"), std::string::npos);
  test::write_file(file, "[1]\nnot json\n{}\n");
  EXPECT_NE(error_of([&] { ResultLog bad(file); }).find("results.jsonl:1"), std::string::npos);
}

TEST(EvalRunner, TheSummaryCountsOnlyThePlansRows) {
  const auto row = [](const char* task, int length, const char* run, int sample) {
    return nlohmann::json{{"suite", "ruler"}, {"task", task},     {"length", length},
                          {"run", run},       {"sample", sample}, {"score", 100.0}};
  };
  const std::vector<nlohmann::json> rows = {
      row("niah_single_1", 512, "full", 0),      row("niah_single_1", 512, "full", 1),
      row("niah_single_1", 512, "full", 2),       // beyond --samples 2
      row("niah_single_1", 512, "snapkv@64", 0),  // another method
      row("niah_single_1", 1024, "full", 0),      // another length
      row("niah_single_2", 512, "full", 0),       // another task
      row("niah_single_1", 512, "snapkv@128", 1)};
  EvalPlan plan;
  plan.tasks = {"niah_single_1"};
  plan.lengths = {512};
  plan.runs = {MethodRun{"full"}, MethodRun{"snapkv", 128}};
  plan.samples = 2;
  const std::vector<nlohmann::json> kept = rows_of_plan(rows, plan);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0], rows[0]);
  EXPECT_EQ(kept[1], rows[1]);
  EXPECT_EQ(kept[2], rows[6]);
}

}  // namespace
}  // namespace dapx::eval
