#include "bench_rows.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "roofline.h"

namespace dapx::bench {
namespace {

double num(const nlohmann::json& j, const char* key) { return j.at(key).get<double>(); }

// Each figure's own median: repeats on a shared machine differ by 10-30%, and the median keeps
// one slow run (another process's burst) from moving the row.
nlohmann::json median(const std::vector<const nlohmann::json*>& values) {
  std::vector<double> v;
  bool integers = true;
  for (const nlohmann::json* x : values) {
    v.push_back(x->get<double>());
    integers = integers && x->is_number_integer();
  }
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double m = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return integers ? nlohmann::json(static_cast<int64_t>(std::llround(m))) : nlohmann::json(m);
}

nlohmann::json ratio(double a, double b) {
  return b > 0 ? nlohmann::json(a / b) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json run_figures(const nlohmann::json& r) {
  const nlohmann::json& s = r.at("stats");
  const nlohmann::json info = r.value("method_info", nlohmann::json::object());
  // SpecKV reports its draft lookahead; SpecPC and SpecKV-PC the draft's observing pass.
  const double draft_s = info.value("lookahead_source", "") == "draft"
                             ? info.value("lookahead_s", 0.0)
                             : info.value("draft_s", 0.0);
  // What the weights held in RAM: results of engines before resident_weight_bytes existed
  // took all their bytes as resident (wrong where a mapped embedding was mostly never read).
  const auto resident_of = [&](const char* resident, const char* all) {
    return s.contains(resident) ? s.at(resident).get<int64_t>() : s.at(all).get<int64_t>();
  };
  const int64_t resident = resident_of("resident_weight_bytes", "weight_bytes") +
                           resident_of("draft_resident_weight_bytes", "draft_weight_bytes");
  nlohmann::json figures = {
      {"prompt_tokens", s.at("prompt_tokens")},
      {"generated_tokens", s.at("generated_tokens")},
      {"ttft_s", s.at("ttft_s")},
      {"tpot_s", s.at("tpot_s")},
      {"total_s", s.at("total_s")},
      {"draft_s", draft_s},
      {"peak_rss_bytes", s.at("peak_rss_bytes")},
      {"weight_bytes", s.at("weight_bytes")},
      {"decode_weight_bytes", s.value("decode_weight_bytes", s.at("weight_bytes").get<int64_t>())},
      {"draft_weight_bytes", s.at("draft_weight_bytes")},
      {"resident_weight_bytes", resident},
      {"working_bytes", s.at("peak_rss_bytes").get<int64_t>() - resident},

      {"kv_bytes", s.at("kv_bytes")},
      {"kv_bytes_full", s.at("kv_bytes_full")},
      {"prompt_kept_ratio", info.value("kept_ratio", 1.0)}};
  if (s.contains("tensor_peak_bytes"))  // absent in results of engines before it existed
    figures["tensor_peak_bytes"] = s.at("tensor_peak_bytes");
  if (s.contains("gpu_peak_bytes") && s.at("gpu_peak_bytes").is_number())  // GPU runs only
    figures["gpu_peak_bytes"] = s.at("gpu_peak_bytes");
  return figures;
}

nlohmann::json make_row(const std::string& method, int64_t length, const nlohmann::json& budget,
                        const nlohmann::json& runs, const RowContext& ctx) {
  nlohmann::json row = {{"method", method}, {"length", length}, {"budget", budget}, {"runs", runs}};
  std::vector<const nlohmann::json*> ok;
  for (const nlohmann::json& r : runs)
    if (!r.contains("error")) ok.push_back(&r);
  row["runs_ok"] = ok.size();
  if (ok.empty()) {
    row["error"] = runs.empty() ? nlohmann::json("not run") : runs.back().at("error");
    return row;
  }
  for (const auto& item : ok.front()->items()) {
    std::vector<const nlohmann::json*> values;
    for (const nlohmann::json* r : ok) values.push_back(&r->at(item.key()));
    row[item.key()] = median(values);
  }
  const double tpot = num(row, "tpot_s"), ttft = num(row, "ttft_s"), n = num(row, "prompt_tokens");
  row["decode_tok_s"] = tpot > 0 ? nlohmann::json(1 / tpot) : nlohmann::json(nullptr);
  row["draft_share"] = ratio(num(row, "draft_s"), num(row, "total_s"));
  row["kept_ratio"] = ratio(num(row, "kv_bytes"), num(row, "kv_bytes_full"));

  // Prefill work: the target over the prompt tokens it read, the draft over the whole prompt.
  // Dense-equivalent: sparse prefill does less attention work than counted, lookahead steps and
  // scoring are not counted.
  double flops = prefill_flops(*ctx.target, std::llround(num(row, "prompt_kept_ratio") * n));
  if (ctx.draft) flops += prefill_flops(*ctx.draft, static_cast<int64_t>(n));
  const double gflops = flops / ttft / 1e9;
  const double bytes =
      decode_bytes_per_token(num(row, "decode_weight_bytes"), num(row, "kv_bytes"));
  const nlohmann::json gbs = tpot > 0 ? nlohmann::json(bytes / tpot / 1e9) : nlohmann::json();
  row["prefill_gflops"] = gflops;
  row["decode_bytes_per_token"] = bytes;
  row["decode_gbs"] = gbs;
  row["prefill_of_gemm"] = nullptr;
  row["decode_of_bandwidth"] = nullptr;
  if (ctx.limits) {
    row["prefill_of_gemm"] = ratio(gflops, ctx.limits->best_gemm_gflops());
    if (!gbs.is_null()) row["decode_of_bandwidth"] = ratio(gbs, ctx.limits->read_gbs);
  }
  return row;
}

void add_request_memory(nlohmann::json& rows, const nlohmann::json& floor_working_bytes) {
  for (nlohmann::json& row : rows)
    row["request_bytes"] = floor_working_bytes.is_number() && row.contains("working_bytes")
                               ? nlohmann::json(row.at("working_bytes").get<int64_t>() -
                                                floor_working_bytes.get<int64_t>())
                               : nlohmann::json(nullptr);
}

void add_ratios_to_full(nlohmann::json& rows) {
  static const std::pair<const char*, const char*> kRatios[] = {
      {"ttft_s", "ttft_ratio"},
      {"tpot_s", "tpot_ratio"},
      {"total_s", "total_ratio"},
      {"peak_rss_bytes", "rss_ratio"},
      {"working_bytes", "working_ratio"},
      {"request_bytes", "request_ratio"},
      {"tensor_peak_bytes", "tensor_ratio"},
      {"kv_bytes", "kv_ratio"},
      {"gpu_peak_bytes", "gpu_ratio"}};
  const auto has = [](const nlohmann::json& r, const char* figure) {
    return !r.contains("error") && r.contains(figure) && r.at(figure).is_number();
  };
  for (nlohmann::json& row : rows) {
    const nlohmann::json* full = nullptr;
    for (const nlohmann::json& r : rows)
      if (r.at("method") == "full" && r.at("length") == row.at("length") && !r.contains("error"))
        full = &r;
    for (const auto& [figure, name] : kRatios)
      row[name] = full && has(row, figure) && has(*full, figure)
                      ? ratio(num(row, figure), num(*full, figure))
                      : nlohmann::json(nullptr);
  }
}

}  // namespace dapx::bench
