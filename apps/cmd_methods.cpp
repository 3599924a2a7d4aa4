// dapx methods: the method catalogue (names, families, parameters, defaults, ranges).
#include <iostream>

#include "common.h"
#include "method_flags.h"
#include "methods/catalogue.h"

namespace dapx::cli {

void register_methods(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("methods", "List every method with its parameters");
  cmd->add_flag("--json", *json, "Print the catalogue as JSON");
  cmd->callback([json] {
    if (*json) {
      std::cout << catalogue_json().dump(2) << "\n";
      return;
    }
    for (const MethodSpec& m : method_catalogue()) {
      std::cout << m.name << "  [" << family_name(m.family) << (m.needs_draft ? ", draft" : "")
                << (m.reuses_prefix_cache ? "" : ", no prefix cache") << "]  " << m.description
                << "\n";
      for (const ParamSpec& p : m.params) {
        const std::string def = p.default_value.is_null()     ? "unset"
                                : p.default_value.is_string() ? p.default_value.get<std::string>()
                                                              : p.default_value.dump();
        std::cout << "    " << flag_of(p.name) << " = " << def << "  (" << p.range_text() << ")  "
                  << p.help << "\n";
      }
    }
  });
}

}  // namespace dapx::cli
