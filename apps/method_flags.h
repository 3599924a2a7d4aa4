#pragma once
// Command-line flags for method parameters, made from the method catalogue: one flag per
// parameter name (--budget, --kv-budget, --window, ...) plus --param NAME=VALUE, mapped onto the
// JSON object the catalogue checks. Only apps/ speaks of flags.
#include <CLI/CLI.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dapx::cli {

struct MethodFlags {
  std::map<std::string, std::string> values;  // parameter name -> text given
  std::map<std::string, CLI::Option*> options;
  std::vector<std::string> params;  // --param NAME=VALUE
};

// "--kv-budget" for "kv_budget".
std::string flag_of(const std::string& param);
// "full, streaming, ... (draft: speckv, ...)" for --method's help.
std::string method_list_help();
void add_method_flags(CLI::App& cmd, MethodFlags& f);
// The parameters given for `method`, as the catalogue's JSON; a flag the method does not take
// is an error naming the flag and the method's parameters.
nlohmann::json method_params_from_flags(const std::string& method, const MethodFlags& f);

}  // namespace dapx::cli
