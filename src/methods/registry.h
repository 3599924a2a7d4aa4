#pragma once
// Methods by name, with the parameters the CLI exposes. Defaults are each method's own
// (SnapKV: window 32, kernel 7, max pool, max reduction; H2O: no pooling; StreamingLLM: 4 sinks).
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "methods/method.h"
#include "methods/observation_press.h"

namespace dapx {

struct MethodParams {
  // KV methods: entries kept per head for the prompt, window included (default 256);
  // prompt methods: prompt tokens kept (default 2048). -1: the method's default.
  int64_t budget = -1;
  int64_t kv_budget = 256;  // SpecKV-PC: the SpecKV budget after prompt compression
  int64_t window = -1;      // -1: the method's default
  int64_t kernel = -1;
  std::string pool;    // "max", "avg", "none"; empty: default
  std::string reduce;  // "max", "mean"; empty: default
  int64_t sinks = 4;   // StreamingLLM
  double pyramid_beta = 20;
  bool record_selection = false;       // fill info["layers"] with the kept positions
  int64_t lookahead = -1;              // SpecKV / LAQ lookahead tokens; -1: max_new_tokens
  const Transformer* draft = nullptr;  // draft model of draft-based methods (not owned)
  std::string prefill = "auto";        // SpecKV/LAQ: dense, sparse, or auto (sparse when n+L > V+S)
  int64_t vertical = 2048;             // sparse prefill: top keys per head (V)
  int64_t band = 2048;                 // sparse prefill: local causal band (S)
  int64_t neighbors = 64;              // SpecPC: positions kept around each top position (N)
  int64_t first_layer = 8;             // SpecPC: first observing draft layer (s)
  uint64_t seed = 0;                   // random-pc
};

// Shared parameter handling of the observation-scoring methods: the method's defaults
// overridden by the user's values, validated (budget > window, odd kernel, known names).
ScoreParams score_params(const MethodParams& p, const ScoreParams& defaults);
// "max" / "avg" / "none" and "max" / "mean"; empty keeps the fallback; else a dapx::Error.
Pool parse_pool(const std::string& name, Pool fallback);
Reduce parse_reduce(const std::string& name, Reduce fallback);

std::unique_ptr<Method> make_method(const std::string& name, const MethodParams& p);
std::vector<std::string> method_names();
// Prompt methods (SpecPC and its baselines): the budget counts prompt tokens kept.
bool is_prompt_method(const std::string& name);
// Methods that read the draft model (MethodParams::draft).
bool uses_draft(const std::string& name);
// Applies parameters given by name (a JSON object, e.g. {"budget": 128, "window": 16}) to
// `p`. Unknown names and wrong types are errors naming the method and the parameter.
void apply_method_params(const std::string& method, const nlohmann::json& params, MethodParams& p);

}  // namespace dapx
