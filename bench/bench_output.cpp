#include "bench_output.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "child_process.h"
#include "util/error.h"

namespace dapx::bench {
namespace {

// The CSV's header line: the columns in order, grouped as the row's figures are.
constexpr const char* kCsvHeader =
    "method,length,budget,runs_ok,prompt_tokens,generated_tokens,"
    "ttft_s,tpot_s,decode_tok_s,total_s,draft_s,draft_share,"
    "peak_rss_bytes,weight_bytes,draft_weight_bytes,working_bytes,request_bytes,"
    "kv_bytes,kv_bytes_full,kept_ratio,prompt_kept_ratio,"
    "prefill_gflops,prefill_of_gemm,decode_bytes_per_token,decode_gbs,decode_of_bandwidth,"
    "tensor_peak_bytes,ttft_ratio,tpot_ratio,total_ratio,rss_ratio,working_ratio,request_ratio,"
    "tensor_ratio,kv_ratio,"
    "requests_per_s,tokens_per_s,gpu_peak_bytes,gpu_ratio,error,throughput_error";

// A number printed with `fmt` after scaling, or "-" where the row has none.
std::string cell(const nlohmann::json& row, const char* key, const char* fmt, double scale = 1) {
  if (!row.contains(key) || !row.at(key).is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, row.at(key).get<double>() * scale);
  return buf;
}

std::string csv_cell(const nlohmann::json& v) {
  if (v.is_null()) return "";
  if (!v.is_string()) return v.dump();
  const std::string s = v.get<std::string>();
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string quoted = "\"";
  for (char c : s) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// A gnuplot single-quoted string: a quote inside is doubled.
std::string gp_string(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string table_text(const nlohmann::json& rows) {
  bool throughput = false, gpu = false;
  for (const nlohmann::json& r : rows) {
    throughput = throughput || r.contains("requests_per_s");
    gpu = gpu || (r.contains("gpu_peak_bytes") && r.at("gpu_peak_bytes").is_number());
  }
  std::ostringstream out;
  char line[512];
  std::snprintf(
      line, sizeof line,
      "%-14s %6s %8s %6s %8s %6s %8s %6s %6s %9s %9s %6s %8s %6s %8s %6s %8s %6s %5s %7s %7s",
      "method", "n", "TTFT s", "xfull", "ms/tok", "xfull", "total s", "xfull", "draft", "peak MiB",
      "work MiB", "xfull", "req MiB", "xfull", "tens MiB", "xfull", "KV MiB", "xfull", "kept",
      "pf/GEMM", "dec/BW");
  out << line << (gpu ? "  GPU MiB  xfull" : "") << (throughput ? "    req/s    tok/s" : "")
      << "\n";
  for (const nlohmann::json& r : rows) {
    const std::string method = r.at("method");
    if (r.contains("error")) {
      std::snprintf(line, sizeof line, "%-14s %6lld  failed: ", method.c_str(),
                    static_cast<long long>(r.at("length").get<int64_t>()));
      out << line << r.at("error").get<std::string>() << "\n";
      continue;
    }
    std::snprintf(
        line, sizeof line,
        "%-14s %6lld %8s %6s %8s %6s %8s %6s %6s %9s %9s %6s %8s %6s %8s %6s %8s %6s %5s %7s "
        "%7s",
        method.c_str(), static_cast<long long>(r.at("length").get<int64_t>()),
        cell(r, "ttft_s", "%.3f").c_str(), cell(r, "ttft_ratio", "%.2f").c_str(),
        cell(r, "tpot_s", "%.2f", 1e3).c_str(), cell(r, "tpot_ratio", "%.2f").c_str(),
        cell(r, "total_s", "%.3f").c_str(), cell(r, "total_ratio", "%.2f").c_str(),
        cell(r, "draft_share", "%.1f%%", 100).c_str(),
        cell(r, "peak_rss_bytes", "%.0f", 1.0 / 1048576).c_str(),
        cell(r, "working_bytes", "%.0f", 1.0 / 1048576).c_str(),
        cell(r, "working_ratio", "%.2f").c_str(),
        cell(r, "request_bytes", "%.0f", 1.0 / 1048576).c_str(),
        cell(r, "request_ratio", "%.2f").c_str(),
        cell(r, "tensor_peak_bytes", "%.1f", 1.0 / 1048576).c_str(),
        cell(r, "tensor_ratio", "%.2f").c_str(), cell(r, "kv_bytes", "%.2f", 1.0 / 1048576).c_str(),
        cell(r, "kv_ratio", "%.3f").c_str(), cell(r, "kept_ratio", "%.3f").c_str(),
        cell(r, "prefill_of_gemm", "%.0f%%", 100).c_str(),
        cell(r, "decode_of_bandwidth", "%.0f%%", 100).c_str());
    out << line;
    if (gpu) {
      std::snprintf(line, sizeof line, " %8s %6s",
                    cell(r, "gpu_peak_bytes", "%.0f", 1.0 / 1048576).c_str(),
                    cell(r, "gpu_ratio", "%.2f").c_str());
      out << line;
    }
    if (throughput) {
      std::snprintf(line, sizeof line, " %8s %8s", cell(r, "requests_per_s", "%.2f").c_str(),
                    cell(r, "tokens_per_s", "%.1f").c_str());
      out << line;
    }
    out << "\n";
  }
  return out.str();
}

std::string csv_text(const nlohmann::json& rows) {
  std::vector<std::string> columns;
  std::istringstream header(kCsvHeader);
  for (std::string c; std::getline(header, c, ',');) columns.push_back(c);
  std::string out = std::string(kCsvHeader) + "\n";
  for (const nlohmann::json& r : rows) {
    for (size_t i = 0; i < columns.size(); ++i)
      out += (i ? "," : "") + csv_cell(r.value(columns[i], nlohmann::json()));
    out += "\n";
  }
  return out;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error("cannot write '" + path.string() + "'");
}

std::string write_plot(const std::filesystem::path& dir, const nlohmann::json& rows,
                       const std::string& title) {
  // Per method: length -> (latency s, working MiB), from the rows that succeeded.
  std::vector<std::string> methods;
  std::map<std::string, std::map<int64_t, std::pair<double, double>>> points;
  for (const nlohmann::json& r : rows) {
    if (r.contains("error")) continue;
    const std::string m = r.at("method");
    if (!points.count(m)) methods.push_back(m);
    points[m][r.at("length").get<int64_t>()] = {r.at("total_s").get<double>(),
                                                r.at("working_bytes").get<double>() / 1048576};
  }
  if (methods.empty()) return "no successful case to plot";
  std::string gp = "# dapx bench: rerun with `gnuplot bench.gp` in this folder\n";
  for (size_t i = 0; i < methods.size(); ++i) {
    gp += "$m" + std::to_string(i) + " << EOD\n";
    for (const auto& [n, p] : points[methods[i]])
      gp +=
          std::to_string(n) + " " + std::to_string(p.first) + " " + std::to_string(p.second) + "\n";
    gp += "EOD\n";
  }
  gp +=
      "set terminal svg size 1200,500 dynamic noenhanced font 'sans,12'\nset output 'bench.svg'\n";
  gp += "set multiplot layout 1,2 title " + gp_string(title) + "\n";
  // One prompt length: a bar per method (a line through one point says nothing).
  std::set<int64_t> lengths;
  for (const auto& [m, pts] : points)
    for (const auto& [n, p] : pts) lengths.insert(n);
  const bool bars = lengths.size() == 1;
  if (bars) {
    gp += "$bars << EOD\n";
    for (const std::string& m : methods) {
      const auto& p = points[m].begin()->second;
      gp += "\"" + m + "\" " + std::to_string(p.first) + " " + std::to_string(p.second) + "\n";
    }
    gp += "EOD\nset style data histograms\nset style fill solid 0.6 border -1\nset boxwidth 0.8\n";
    gp += "set xlabel " +
          gp_string("method (" + std::to_string(*lengths.begin()) + " prompt tokens)") +
          "\nset grid ytics\nset yrange [0:*]\n";
  } else {
    gp += "set logscale x 2\nset xlabel 'prompt tokens'\nset grid\nset key below\n";
  }
  const auto panel = [&](const std::string& name, const std::string& ylabel, int column) {
    gp += "set title " + gp_string(name) + "\nset ylabel " + gp_string(ylabel) + "\nplot ";
    if (bars) {
      gp += "$bars using " + std::to_string(column) + ":xtic(1) notitle\n";
      return;
    }
    for (size_t i = 0; i < methods.size(); ++i)
      gp += std::string(i ? ", " : "") + "$m" + std::to_string(i) +
            " using 1:" + std::to_string(column) + " with linespoints lw 2 title " +
            gp_string(methods[i]);
    gp += "\n";
  };
  panel("end-to-end latency (median)", "seconds", 2);
  panel("working memory: peak RSS - resident weights (median)", "MiB", 3);
  gp += "unset multiplot\n";
  write_text(dir / "bench.gp", gp);

  if (find_program("gnuplot").empty())
    return "gnuplot is not installed (Debian package gnuplot-nox): no bench.svg; the plot "
           "script is " +
           (dir / "bench.gp").string();
  const std::filesystem::path abs = std::filesystem::absolute(dir);
  const std::string log = (abs / "gnuplot.log").string();
  const ProcessResult r =
      run_process({"gnuplot", "-e", "cd " + gp_string(abs.string()), "bench.gp"}, log);
  if (r.exit_code != 0)
    return "gnuplot failed on " + (dir / "bench.gp").string() + " (its messages: " + log + ")";
  std::filesystem::remove(log);
  return "";
}

}  // namespace dapx::bench
