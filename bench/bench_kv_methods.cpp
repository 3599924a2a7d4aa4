// Methods against full KV, in one run: for each prompt length and method, one
// `dapx generate --json` process (so each has its own peak RSS), reporting KV bytes, decode
// tokens/s, TTFT, total latency, peak RSS and the draft's share, each also as a ratio to the
// first method (full) at the same length.
// Usage: bench_kv_methods MODEL_DIR [--draft DIR] [--lengths 4096 8192] [--budget 256]
//        [--methods full snapkv speckv:dense speckv:sparse ...]   (NAME:PREFILL sets --prefill)
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace {

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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dapx KV-method benchmark: KV bytes, decode speed, TTFT, peak RSS vs full KV"};
  std::string model, draft, out = "bench/results/kv_methods", data = DAPX_DATA_DIR;
  std::vector<int64_t> lengths = {4096, 8192};
  std::vector<std::string> methods = {"full", "streaming", "h2o", "snapkv", "pyramidkv", "adakv"};
  int64_t budget = 256;
  int new_tokens = 32, threads = 0;
  std::string dapx =
      (fs::canonical("/proc/self/exe").parent_path().parent_path() / "apps" / "dapx").string();
  app.add_option("model", model, "Model directory")->required();
  app.add_option("--draft", draft, "Draft model directory (for draft-based methods)");
  app.add_option("--lengths", lengths, "Prompt lengths in tokens");
  app.add_option("--methods", methods, "Methods to compare (full first: ratios are to it)");
  app.add_option("--budget", budget, "KV budget per head");
  app.add_option("--new-tokens", new_tokens, "Tokens generated per run");
  app.add_option("--threads", threads, "Threads (0 = all)");
  app.add_option("--dapx", dapx, "Path to the dapx binary");
  app.add_option("--out", out, "Output path prefix (.json, .csv)");
  CLI11_PARSE(app, argc, argv);
  try {
    const dapx::Tokenizer tok = dapx::Tokenizer::load(fs::path(model) / "tokenizer.json");
    const std::string corpus = slurp(fs::path(data) / "corpus_en.txt");
    const fs::path tmp = fs::temp_directory_path() / ("dapx-bench-" + std::to_string(getpid()));
    fs::create_directories(tmp);
    nlohmann::json rows = nlohmann::json::array();
    std::printf("%-14s %6s %9s %6s %9s %6s %8s %6s %8s %6s %9s %6s %6s\n", "method", "n", "KV MiB",
                "xfull", "dec tok/s", "xfull", "TTFT s", "xfull", "total s", "xfull", "peak MiB",
                "xfull", "draft%");
    for (int64_t n : lengths) {
      const fs::path prompt = make_prompt(tok, corpus, n, tmp);
      std::map<std::string, double> full;
      for (const auto& m : methods) {
        const size_t colon = m.find(':');
        const std::string name = m.substr(0, colon);
        std::ostringstream cmd;
        cmd << dapx << " generate -m " << model << " -f " << prompt << " --method " << name
            << " -n " << new_tokens << " --ignore-eos --json --threads " << threads;
        // prompt methods take their own (prompt) budget; the KV budget is --budget here
        if (name == "speckv-pc")
          cmd << " --kv-budget " << budget;
        else if (name != "specpc" && name != "target-pc" && name != "ppl-pc" && name != "random-pc")
          cmd << " --budget " << budget;
        if (!draft.empty()) cmd << " --draft " << draft;
        if (colon != std::string::npos) cmd << " --prefill " << m.substr(colon + 1);
        std::cerr << "running " << m << " at " << n << " tokens...\n";
        nlohmann::json r;
        try {
          r = run_dapx(cmd.str());
        } catch (const std::exception& e) {  // one failing method must not lose the others
          std::printf("%-14s %6lld  failed: %s\n", m.c_str(), static_cast<long long>(n), e.what());
          rows.push_back({{"method", m}, {"length", n}, {"error", e.what()}});
          continue;
        }
        const auto& s = r.at("stats");
        const auto& info = r.at("method_info");
        const double kv = s.at("kv_bytes").get<double>(), tps = 1.0 / s.at("tpot_s").get<double>(),
                     ttft = s.at("ttft_s").get<double>(), total = s.at("total_s").get<double>(),
                     rss = s.at("peak_rss_bytes").get<double>();
        // the draft's own work: SpecKV's lookahead or SpecPC's observing pass
        const double draft_s = info.value("lookahead_source", "") == "draft"
                                   ? info.value("lookahead_s", 0.0)
                                   : info.value("draft_s", 0.0);
        if (m == methods.front())
          full = {{"kv", kv}, {"tps", tps}, {"ttft", ttft}, {"total", total}, {"rss", rss}};
        const nlohmann::json row = {{"method", m},
                                    {"length", n},
                                    {"prompt_tokens", s.at("prompt_tokens")},
                                    {"kv_bytes", kv},
                                    {"kv_ratio", kv / full["kv"]},
                                    {"decode_tok_s", tps},
                                    {"decode_ratio", tps / full["tps"]},
                                    {"ttft_s", ttft},
                                    {"ttft_ratio", ttft / full["ttft"]},
                                    {"total_s", total},
                                    {"total_ratio", total / full["total"]},
                                    {"peak_rss_bytes", rss},
                                    {"rss_ratio", rss / full["rss"]},
                                    {"draft_share", draft_s / total},
                                    {"prefill", info.value("prefill", "")},
                                    {"result", r}};
        rows.push_back(row);
        std::printf(
            "%-14s %6lld %9.1f %6.3f %9.2f %6.2f %8.2f %6.2f %8.2f %6.2f %9.0f %6.2f %6.1f\n",
            m.c_str(), static_cast<long long>(n), kv / 1048576, kv / full["kv"], tps,
            tps / full["tps"], ttft, ttft / full["ttft"], total, total / full["total"],
            rss / 1048576, rss / full["rss"], 100 * draft_s / total);
        std::fflush(stdout);
      }
    }
    fs::remove_all(tmp);
    std::ofstream(out + ".json") << nlohmann::json{{"model", model}, {"rows", rows}}.dump(2)
                                 << "\n";
    std::ofstream csv(out + ".csv");
    const std::vector<std::string> cols = {
        "method",       "length",         "prompt_tokens", "kv_bytes",    "kv_ratio",
        "decode_tok_s", "decode_ratio",   "ttft_s",        "ttft_ratio",  "total_s",
        "total_ratio",  "peak_rss_bytes", "rss_ratio",     "draft_share", "prefill"};
    for (size_t i = 0; i < cols.size(); ++i) csv << (i ? "," : "") << cols[i];
    csv << "\n";
    for (const auto& r : rows) {
      if (r.contains("error")) continue;
      for (size_t i = 0; i < cols.size(); ++i) {
        const auto& v = r[cols[i]];
        csv << (i ? "," : "") << (v.is_string() ? v.get<std::string>() : v.dump());
      }
      csv << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_kv_methods: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
