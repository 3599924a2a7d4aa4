// Methods against full KV, in one run: for each prompt length and method, one
// `dapx generate --json` process (so each has its own peak RSS), reporting KV bytes, decode
// tokens/s, TTFT, total latency, peak RSS, working memory (peak RSS - resident target and
// draft weights) and the draft's share, each also as a ratio to the first method (full) at
// the same length. Writes OUT.json (every row with the full dapx result), OUT.csv, OUT.svg.
// Usage: bench_kv_methods MODEL_DIR [--draft DIR] [--lengths 4096 8192] [--budget 256]
//        [--methods full snapkv speckv:dense speckv:sparse ...]   (NAME:PREFILL sets --prefill)
//        bench_kv_methods --from-json OUT.json [--draft DIR] --out NEW   (re-render a run)
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "methods/catalogue.h"
#include "svg_chart.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
namespace {

// The method list, budgets and draft needs come from the method catalogue.
bool uses_draft(const std::string& name) { return dapx::method_spec(name).needs_draft; }

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A prompt of about n tokens: the bundled corpus repeated, cut at n tokens of this tokenizer.
fs::path make_prompt(const dapx::Tokenizer& tok, const std::string& corpus, int64_t n,
                     const fs::path& dir) {
  std::string text;
  std::vector<int> ids;
  while (static_cast<int64_t>(ids.size()) < n) {
    text += corpus;
    ids = tok.encode(text);
  }
  ids.resize(n);
  const fs::path out = dir / ("prompt-" + std::to_string(n) + ".txt");
  std::ofstream(out) << tok.decode(ids);
  return out;
}

nlohmann::json run_dapx(const std::string& cmd) {
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run: " + cmd);
  std::string out;
  char buf[4096];
  while (size_t got = fread(buf, 1, sizeof buf, pipe)) out.append(buf, got);
  if (pclose(pipe) != 0) throw std::runtime_error("failed: " + cmd);
  return nlohmann::json::parse(out);
}

// Bytes of a model directory's safetensors files: the resident weights of a bf16 model, for
// results written before dapx reported draft_weight_bytes itself.
double safetensors_bytes(const std::string& dir) {
  double bytes = 0;
  if (!dir.empty())
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") bytes += static_cast<double>(e.file_size());
  return bytes;
}

// One table row from a dapx result; ratios are to `full` (the first method at this length).
nlohmann::json make_row(const std::string& method, int64_t n, const nlohmann::json& r,
                        const nlohmann::json& full, double draft_bytes_fallback) {
  const auto& s = r.at("stats");
  const auto& info = r.at("method_info");
  const std::string name = method.substr(0, method.find(':'));
  const double kv = s.at("kv_bytes").get<double>(), tps = 1.0 / s.at("tpot_s").get<double>(),
               ttft = s.at("ttft_s").get<double>(), total = s.at("total_s").get<double>(),
               rss = s.at("peak_rss_bytes").get<double>();
  const double draft_weights = s.contains("draft_weight_bytes")
                                   ? s.at("draft_weight_bytes").get<double>()
                                   : (uses_draft(name) ? draft_bytes_fallback : 0.0);
  const double working = rss - s.at("weight_bytes").get<double>() - draft_weights;
  // the draft's own work: SpecKV's lookahead or SpecPC's observing pass
  const double draft_s = info.value("lookahead_source", "") == "draft"
                             ? info.value("lookahead_s", 0.0)
                             : info.value("draft_s", 0.0);
  nlohmann::json row = {{"method", method},
                        {"length", n},
                        {"prompt_tokens", s.at("prompt_tokens")},
                        {"kv_bytes", kv},
                        {"decode_tok_s", tps},
                        {"ttft_s", ttft},
                        {"total_s", total},
                        {"peak_rss_bytes", rss},
                        {"working_bytes", working},
                        {"draft_share", draft_s / total},
                        {"prefill", info.value("prefill", "")},
                        {"result", r}};
  const nlohmann::json& base = full.is_null() ? row : full;
  for (const auto& [key, ratio] :
       std::vector<std::pair<std::string, std::string>>{{"kv_bytes", "kv_ratio"},
                                                        {"decode_tok_s", "decode_ratio"},
                                                        {"ttft_s", "ttft_ratio"},
                                                        {"total_s", "total_ratio"},
                                                        {"peak_rss_bytes", "rss_ratio"},
                                                        {"working_bytes", "working_ratio"}})
    row[ratio] = row[key].get<double>() / base[key].get<double>();
  return row;
}

void print_header() {
  std::printf("%-14s %6s %9s %6s %9s %6s %8s %6s %8s %6s %9s %6s %8s %6s %6s\n", "method", "n",
              "KV MiB", "xfull", "dec tok/s", "xfull", "TTFT s", "xfull", "total s", "xfull",
              "peak MiB", "xfull", "work MiB", "xfull", "draft%");
}

void print_row(const nlohmann::json& r) {
  if (r.contains("error")) {
    std::printf("%-14s %6lld  failed: %s\n", r["method"].get<std::string>().c_str(),
                r["length"].get<long long>(), r["error"].get<std::string>().c_str());
    return;
  }
  const auto d = [&](const char* k) { return r[k].get<double>(); };
  std::printf(
      "%-14s %6lld %9.1f %6.3f %9.2f %6.2f %8.2f %6.2f %8.2f %6.2f %9.0f %6.2f %8.0f %6.2f "
      "%6.1f\n",
      r["method"].get<std::string>().c_str(), r["length"].get<long long>(), d("kv_bytes") / 1048576,
      d("kv_ratio"), d("decode_tok_s"), d("decode_ratio"), d("ttft_s"), d("ttft_ratio"),
      d("total_s"), d("total_ratio"), d("peak_rss_bytes") / 1048576, d("rss_ratio"),
      d("working_bytes") / 1048576, d("working_ratio"), 100 * d("draft_share"));
  std::fflush(stdout);
}

void write_outputs(const std::string& out, const std::string& model, const nlohmann::json& rows) {
  std::ofstream(out + ".json") << nlohmann::json{{"model", model}, {"rows", rows}}.dump(2) << "\n";
  std::ofstream csv(out + ".csv");
  const std::vector<std::string> cols = {
      "method",       "length",         "prompt_tokens", "kv_bytes",      "kv_ratio",
      "decode_tok_s", "decode_ratio",   "ttft_s",        "ttft_ratio",    "total_s",
      "total_ratio",  "peak_rss_bytes", "rss_ratio",     "working_bytes", "working_ratio",
      "draft_share",  "prefill"};
  for (size_t i = 0; i < cols.size(); ++i) csv << (i ? "," : "") << cols[i];
  csv << "\n";
  std::vector<std::string> methods, lengths;
  for (const auto& r : rows) {
    if (r.contains("error")) continue;
    for (size_t i = 0; i < cols.size(); ++i) {
      const auto& v = r[cols[i]];
      csv << (i ? "," : "") << (v.is_string() ? v.get<std::string>() : v.dump());
    }
    csv << "\n";
    const std::string m = r["method"], n = std::to_string(r["length"].get<int64_t>()) + " tokens";
    if (std::find(methods.begin(), methods.end(), m) == methods.end()) methods.push_back(m);
    if (std::find(lengths.begin(), lengths.end(), n) == lengths.end()) lengths.push_back(n);
  }
  std::vector<dapx::bench::BarPanel> panels = {{"total latency (x full)", {}},
                                               {"time to first token (x full)", {}},
                                               {"peak RSS (x full)", {}},
                                               {"working memory: peak RSS - weights (x full)", {}},
                                               {"KV cache bytes (x full)", {}}};
  const char* keys[] = {"total_ratio", "ttft_ratio", "rss_ratio", "working_ratio", "kv_ratio"};
  for (size_t p = 0; p < panels.size(); ++p) {
    panels[p].values.assign(lengths.size(), std::vector<double>(methods.size(), NAN));
    for (const auto& r : rows) {
      if (r.contains("error")) continue;
      const std::string n = std::to_string(r["length"].get<int64_t>()) + " tokens";
      const size_t s = std::find(lengths.begin(), lengths.end(), n) - lengths.begin();
      const size_t g = std::find(methods.begin(), methods.end(), r["method"]) - methods.begin();
      panels[p].values[s][g] = r[keys[p]].get<double>();
    }
  }
  std::ofstream(out + ".svg") << dapx::bench::bar_chart_svg("dapx methods vs full KV: " + model,
                                                            methods, lengths, panels);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dapx KV-method benchmark: KV bytes, decode speed, TTFT, memory vs full KV"};
  std::string model, draft, from_json, out = "bench/results/kv_methods", data = DAPX_DATA_DIR;
  std::string device = "cpu";
  std::vector<int64_t> lengths = {4096, 8192};
  std::vector<std::string> methods = {"full", "streaming", "h2o", "snapkv", "pyramidkv", "adakv"};
  int64_t budget = 256;
  int new_tokens = 32, threads = 0;
  std::string dapx =
      (fs::canonical("/proc/self/exe").parent_path().parent_path() / "apps" / "dapx").string();
  app.add_option("model", model, "Model directory (not needed with --from-json)");
  app.add_option("--draft", draft, "Draft model directory (passed to draft-based methods)");
  app.add_option("--lengths", lengths, "Prompt lengths in tokens");
  app.add_option("--methods", methods, "Methods to compare (full first: ratios are to it)");
  app.add_option("--budget", budget, "KV budget per head");
  app.add_option("--new-tokens", new_tokens, "Tokens generated per run");
  app.add_option("--threads", threads, "Threads (0 = all)");
  app.add_option("--device", device, "cpu, or cuda / cuda:N (a CUDA build of LibTorch)");
  app.add_option("--dapx", dapx, "Path to the dapx binary");
  app.add_option("--from-json", from_json,
                 "Re-render the table, CSV and SVG of an earlier run's JSON (runs nothing)");
  app.add_option("--out", out, "Output path prefix (.json, .csv, .svg)");
  CLI11_PARSE(app, argc, argv);
  try {
    for (const auto& m : methods) dapx::method_spec(m.substr(0, m.find(':')));  // known names
    nlohmann::json rows = nlohmann::json::array();
    if (!from_json.empty()) {  // recompute rows (ratios, working memory) from stored results
      const nlohmann::json old = nlohmann::json::parse(slurp(from_json));
      model = old.at("model");
      const double draft_bytes = safetensors_bytes(draft);
      std::map<int64_t, nlohmann::json> full;
      print_header();
      for (const auto& r : old.at("rows")) {
        const int64_t n = r.at("length");
        if (r.contains("error")) {
          rows.push_back(r);
        } else {
          rows.push_back(make_row(r.at("method"), n, r.at("result"), full[n], draft_bytes));
          if (full[n].is_null()) full[n] = rows.back();
        }
        print_row(rows.back());
      }
      write_outputs(out, model, rows);
      return 0;
    }
    if (model.empty()) throw std::runtime_error("MODEL_DIR is required (or --from-json)");
    const dapx::Tokenizer tok = dapx::Tokenizer::load(fs::path(model) / "tokenizer.json");
    const std::string corpus = slurp(fs::path(data) / "corpus_en.txt");
    const fs::path tmp = fs::temp_directory_path() / ("dapx-bench-" + std::to_string(getpid()));
    fs::create_directories(tmp);
    print_header();
    for (int64_t n : lengths) {
      const fs::path prompt = make_prompt(tok, corpus, n, tmp);
      nlohmann::json full;
      for (const auto& m : methods) {
        const size_t colon = m.find(':');
        const std::string name = m.substr(0, colon);
        std::ostringstream cmd;
        cmd << dapx << " generate -m " << model << " -f " << prompt << " --method " << name
            << " -n " << new_tokens << " --ignore-eos --json --threads " << threads << " --device "
            << device;
        // --budget is a KV budget here: KV methods' budget, the cascade's kv_budget; prompt
        // methods keep their own (prompt-token) default
        const dapx::MethodSpec& spec = dapx::method_spec(name);
        if (spec.family != dapx::Family::Prompt && !spec.budget_param().empty())
          cmd << " " << (spec.family == dapx::Family::Cascade ? "--kv-budget " : "--budget ")
              << budget;
        if (!draft.empty() && uses_draft(name)) cmd << " --draft " << draft;
        if (colon != std::string::npos) cmd << " --prefill " << m.substr(colon + 1);
        std::cerr << "running " << m << " at " << n << " tokens...\n";
        try {
          rows.push_back(make_row(m, n, run_dapx(cmd.str()), full, 0.0));
          if (full.is_null()) full = rows.back();
        } catch (const std::exception& e) {  // one failing method must not lose the others
          rows.push_back({{"method", m}, {"length", n}, {"error", e.what()}});
        }
        print_row(rows.back());
        write_outputs(out, model, rows);  // after every row: a run cut short keeps its rows
      }
    }
    fs::remove_all(tmp);
  } catch (const std::exception& e) {
    std::cerr << "bench_kv_methods: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
