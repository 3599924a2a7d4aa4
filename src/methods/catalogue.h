#pragma once
// Every method dapx knows, in one table: name, family, whether it reads the draft, a line of
// description, its parameters (type, default, range, help) and its factory. The CLI, the
// benchmark, the evaluation runner and the server read this table; none keeps its own list.
// Adding a method is its press (or method) file plus one row in catalogue.cpp.
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "methods/method.h"
#include "methods/method_args.h"

namespace dapx {

enum class Family {
  KV,       // drops KV entries of the prompt per head (budget: entries per head)
  Prompt,   // drops prompt tokens before the target reads them (budget: tokens kept)
  Cascade,  // prompt compression, then KV dropping (SpecKV-PC)
};
std::string family_name(Family f);

struct MethodSpec {
  std::string name;
  Family family = Family::KV;
  bool needs_draft = false;
  std::string description;
  std::vector<ParamSpec> params;
  std::function<std::unique_ptr<Method>(const MethodArgs&)> make;
  // Whether the prefix cache (kv/prefix_cache.h) can serve part of a prompt it compresses;
  // false for H2O, whose scores need every prompt query's attention (a cached block keeps K/V,
  // not queries); a prompt within its budget is not compressed and reuses the cache as full.
  bool reuses_prefix_cache = true;

  const ParamSpec* param(const std::string& name) const;  // null when not declared
  // The parameter a user's "budget" means for comparisons across methods (eval grid, bench):
  // "budget" for KV and prompt methods, "kv_budget" for the cascade; empty for full.
  std::string budget_param() const;
};

const std::vector<MethodSpec>& method_catalogue();
// Throws dapx::Error naming the known methods.
const MethodSpec& method_spec(const std::string& name);
std::vector<std::string> method_names();

// The method `name` with `params` (a JSON object; see MethodArgs for the checks).
std::unique_ptr<Method> make_method(const std::string& name,
                                    const nlohmann::json& params = nlohmann::json::object(),
                                    const MethodOptions& options = {});

// The catalogue as JSON: [{name, family, needs_draft, reuses_prefix_cache, description,
// params: [{name, type, default, min, max | choices, help}]}] (dapx methods --json, the
// server's /v1/models).
nlohmann::json catalogue_json();

}  // namespace dapx
