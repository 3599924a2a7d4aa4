#include "method_flags.h"

#include <algorithm>

#include "methods/catalogue.h"
#include "util/error.h"

namespace dapx::cli {

std::string flag_of(const std::string& param) {
  std::string f = "--" + param;
  std::replace(f.begin(), f.end(), '_', '-');
  return f;
}

std::string method_list_help() {
  std::string all, draft;
  for (const MethodSpec& m : method_catalogue()) {
    all += (all.empty() ? "" : ", ") + m.name;
    if (m.needs_draft) draft += (draft.empty() ? "" : ", ") + m.name;
  }
  return all + " (" + draft + " need --draft; dapx methods lists their parameters)";
}

void add_method_flags(CLI::App& cmd, MethodFlags& f) {
  // One flag per parameter name; its help lists the methods that take it, with their defaults.
  std::vector<std::string> order;
  std::map<std::string, std::string> help;
  for (const MethodSpec& m : method_catalogue())
    for (const ParamSpec& p : m.params) {
      if (!help.count(p.name)) {
        order.push_back(p.name);
        help[p.name] = p.help + "; " + p.range_text() + ". Default by method:";
      }
      help[p.name] += " " + m.name + "=" +
                      (p.default_value.is_null()     ? std::string("unset")
                       : p.default_value.is_string() ? p.default_value.get<std::string>()
                                                     : p.default_value.dump());
    }
  for (const std::string& name : order)
    f.options[name] = cmd.add_option(flag_of(name), f.values[name], help[name])->group("Method");
  cmd.add_option("--param", f.params,
                 "Method parameter NAME=VALUE (repeatable), as dapx methods lists")
      ->group("Method");
}

nlohmann::json method_params_from_flags(const std::string& method, const MethodFlags& f) {
  const MethodSpec& spec = method_spec(method);
  std::string known;
  for (const ParamSpec& p : spec.params) known += (known.empty() ? "" : ", ") + flag_of(p.name);
  nlohmann::json out = nlohmann::json::object();
  const auto set = [&](const std::string& name, const std::string& text, const std::string& flag) {
    const ParamSpec* p = spec.param(name);
    if (!p)
      throw Error(flag + ": method '" + method + "' has no parameter '" + name +
                  "' (its flags: " + (known.empty() ? "none" : known) + ")");
    out[name] = param_from_text(method, *p, text);
  };
  for (const auto& [name, option] : f.options)
    if (option->count() > 0) set(name, f.values.at(name), flag_of(name));
  for (const std::string& kv : f.params) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("--param '" + kv + "' is not NAME=VALUE (e.g. window=16)");
    set(kv.substr(0, eq), kv.substr(eq + 1), "--param " + kv.substr(0, eq));
  }
  return out;
}

}  // namespace dapx::cli
