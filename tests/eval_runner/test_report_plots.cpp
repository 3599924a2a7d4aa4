// The report's plots: one x value (a single budget or length) draws a bar per run, several draw
// a line per run; titles carry no paths.
#include <gtest/gtest.h>

#include "eval/report.h"
#include "eval/runner.h"
#include "temp_dir.h"

namespace dapx::eval {
namespace {

std::vector<nlohmann::json> rows_at(const std::vector<int>& lengths, int budget) {
  std::vector<nlohmann::json> rows;
  for (const int length : lengths)
    for (const char* method : {"full", "snapkv"}) {
      const bool full = std::string(method) == "full";
      rows.push_back({{"run", full ? "full" : "snapkv@" + std::to_string(budget)},
                      {"method", method},
                      {"budget", full ? 0 : budget},
                      {"task", "vt"},
                      {"suite", "ruler"},
                      {"length", length},
                      {"score", full ? 100.0 : 50.0},
                      {"ttft_s", 0.1},
                      {"total_s", 0.2},
                      {"kv_bytes", 10.0},
                      {"kv_bytes_full", 100.0}});
    }
  return rows;
}

TEST(EvalReport, OneLengthDrawsBarsSeveralDrawLines) {
  test::TempDir tmp;
  write_report(summarize(rows_at({512}, 64)), tmp / "one");
  const std::string one = test::read_file(tmp / "one" / "accuracy_vs_length.gp");
  EXPECT_NE(one.find("set style data histograms"), std::string::npos) << one;
  EXPECT_NE(one.find("using 2:xtic(1)"), std::string::npos) << one;
  EXPECT_NE(one.find("\"snapkv@64\" 50"), std::string::npos) << one;
  EXPECT_EQ(one.find("linespoints"), std::string::npos) << one;
  EXPECT_NE(one.find("prompt tokens = 512"), std::string::npos) << one;
  const std::string budget = test::read_file(tmp / "one" / "accuracy_vs_budget_512.gp");
  EXPECT_NE(budget.find("set style data histograms"), std::string::npos) << budget;

  write_report(summarize(rows_at({512, 1024}, 64)), tmp / "two");
  const std::string two = test::read_file(tmp / "two" / "accuracy_vs_length.gp");
  EXPECT_NE(two.find("with linespoints"), std::string::npos) << two;
  EXPECT_EQ(two.find("histograms"), std::string::npos) << two;
  for (const std::string& gp : {one, two})
    EXPECT_EQ(gp.find("set title '" + tmp.path().string()), std::string::npos) << gp;
}

}  // namespace
}  // namespace dapx::eval
