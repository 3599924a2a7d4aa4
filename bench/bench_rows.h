#pragma once
// The rows of `dapx bench`: one per prompt length and method, made from the `dapx generate
// --json` results of its repeats (the median of each figure), with ratios to `full` at the
// same length and the fractions of the machine's limits the engine reached.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "io/model_config.h"
#include "machine_limits.h"

namespace dapx::bench {

// The figures of one generation, from a `dapx generate --json` result: prompt_tokens,
// generated_tokens, ttft_s, tpot_s, total_s (end to end, the draft's work included), draft_s
// (the draft's own work: SpecKV's lookahead or SpecPC's observing pass), peak_rss_bytes,
// weight_bytes and draft_weight_bytes (as held), resident_weight_bytes (of both, what was in
// RAM: a mapped file's pages read, nothing on a GPU), working_bytes (peak RSS - resident
// weights, never negative), kv_bytes,
// kv_bytes_full (full KV for the same tokens), prompt_kept_ratio (the share of the prompt the
// target read: below 1 for prompt methods only).
nlohmann::json run_figures(const nlohmann::json& generate_result);

struct RowContext {
  const ModelConfig* target = nullptr;
  const ModelConfig* draft = nullptr;     // for methods that run the draft, else null
  const MachineLimits* limits = nullptr;  // null where they were not measured
};

// One row from `runs` (run_figures objects, or {"error": ...} for a failed run): the median of
// each figure over the runs that succeeded, then decode_tok_s, draft_share, kept_ratio (KV bytes
// / full KV bytes), prefill_gflops and decode_gbs and, with limits, prefill_of_gemm and
// decode_of_bandwidth. Without a successful run the row carries the last run's error.
nlohmann::json make_row(const std::string& method, int64_t length, const nlohmann::json& budget,
                        const nlohmann::json& runs, const RowContext& ctx);

// Adds request_bytes to every row: its working memory minus `floor_working_bytes` (the working
// memory of a process that loaded the target and answered a tiny request: see `dapx bench`),
// what the request itself held; null where the floor or the row's figure is missing.
void add_request_memory(nlohmann::json& rows, const nlohmann::json& floor_working_bytes);

// Adds the ratios to the `full` row of the same length to every row: ttft_ratio, tpot_ratio,
// total_ratio, rss_ratio, working_ratio, request_ratio, tensor_ratio, kv_ratio (null where there is
// no such row or figure).
void add_ratios_to_full(nlohmann::json& rows);

}  // namespace dapx::bench
