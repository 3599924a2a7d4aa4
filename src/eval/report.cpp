#include "eval/report.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include "eval/runner.h"
#include "util/error.h"

namespace dapx::eval {
namespace {

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw Error("cannot write '" + path.string() + "'");
}

// One line of a plot: its title and (x, y) points, ascending in x.
using Series = std::map<std::string, std::map<double, double>>;

// A gnuplot script drawing `series` into DIR/name.svg, data inline.
std::string plot_script(const std::filesystem::path& svg, const std::string& title,
                        const std::string& xlabel, const Series& series, bool log_x) {
  std::string s = "set terminal svg size 900,520 dynamic enhanced font 'sans,12'\n";
  s += "set output '" + svg.string() + "'\n";
  // One x value for every series: a bar per series (a line through one point says nothing).
  std::set<double> xs;
  for (const auto& [name, pts] : series)
    for (const auto& [x, y] : pts) xs.insert(x);
  if (xs.size() == 1) {
    char at[64];
    std::snprintf(at, sizeof at, "%g", *xs.begin());
    s += "set title '" + title + "'\nset xlabel '" + xlabel + " = " + at +
         "'\nset ylabel 'score (x100)'\n";
    s += "set yrange [0:105]\nset grid ytics\nset style data histograms\n";
    s += "set style fill solid 0.6 border -1\nset boxwidth 0.8\n";
    s += "plot '-' using 2:xtic(1) notitle\n";
    for (const auto& [name, pts] : series)
      s += "\"" + name + "\" " + std::to_string(pts.begin()->second) + "\n";
    return s + "e\n";
  }
  s += "set title '" + title + "'\nset xlabel '" + xlabel + "'\nset ylabel 'score (x100)'\n";
  s += "set yrange [0:105]\nset grid\nset key outside right\n";
  if (log_x) s += "set logscale x 2\n";
  s += "plot ";
  bool first = true;
  for (const auto& [name, pts] : series) {
    s +=
        std::string(first ? "" : ", ") + "'-' using 1:2 with linespoints lw 2 title '" + name + "'";
    first = false;
  }
  s += "\n";
  for (const auto& [name, pts] : series) {
    for (const auto& [x, y] : pts) s += std::to_string(x) + " " + std::to_string(y) + "\n";
    s += "e\n";
  }
  return s;
}

void run_gnuplot(const std::filesystem::path& script) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    throw Error("gnuplot is not installed: the report's plots need the Debian package gnuplot-nox");
  const std::string cmd = "gnuplot '" + script.string() + "'";
  if (std::system(cmd.c_str()) != 0) throw Error("gnuplot failed on " + script.string());
}

}  // namespace

void write_report(const nlohmann::json& summary, const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create report directory '" + dir.string() + "': " + ec.message());
  std::string md =
      "# dapx eval report\n\nScores x100 (RULER string match; LongBench metrics), "
      "mean over samples; `avg` rows average the tasks of a category.\n" +
      summary_table(summary) + "\n";

  // Average over all tasks ("all" category) per length and run.
  std::map<int64_t, Series> by_budget;  // length -> method -> budget -> score
  Series by_length;                     // run -> length -> score
  const nlohmann::json& info = summary.at("run_info");
  for (const auto& c : summary.at("categories")) {
    if (c.at("category") != "all") continue;
    const int64_t len = c.at("length");
    const std::string run = c.at("run");
    const std::string method = info.at(run).at("method");
    const int64_t budget = info.at(run).at("budget");
    if (budget > 0) by_budget[len][method][double(budget)] = c.at("score");
    if (len > 0) by_length[run][double(len)] = c.at("score");
  }
  md += "\n## Plots\n\n";
  for (const auto& [len, series] : by_budget) {
    if (len <= 0) continue;
    const std::string name = "accuracy_vs_budget_" + std::to_string(len);
    const auto script = dir / (name + ".gp");
    write_text(script, plot_script(dir / (name + ".svg"),
                                   "Average score vs budget, " + std::to_string(len) + " tokens",
                                   "budget (KV entries per head / prompt tokens)", series, true));
    run_gnuplot(script);
    md += "![" + name + "](" + name + ".svg)\n\n";
  }
  if (!by_length.empty()) {
    const auto script = dir / "accuracy_vs_length.gp";
    write_text(script, plot_script(dir / "accuracy_vs_length.svg", "Average score vs length",
                                   "prompt tokens", by_length, true));
    run_gnuplot(script);
    md += "![accuracy_vs_length](accuracy_vs_length.svg)\n";
  }
  write_text(dir / "summary.md", md);
  write_text(dir / "summary.json", summary.dump(2) + "\n");
}

}  // namespace dapx::eval
