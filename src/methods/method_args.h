#pragma once
// A method's parameters, as the catalogue declares them and as a caller gives them: a JSON
// object ({"budget": 128, "window": 16}) checked against the method's declared parameters
// (name, type, range, choices) and completed with its defaults. Errors name the method, the
// parameter and what it accepts; they never speak of command-line flags.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dapx {

class Transformer;

enum class ParamType { Int, Float, Choice };

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::Int;
  // The default (int, float or string); null: unset, the help says what the method does then
  // (SpecKV's lookahead: the request's max_new_tokens).
  nlohmann::json default_value;
  double min = 0, max = 0;           // Int and Float: inclusive range
  std::vector<std::string> choices;  // Choice
  std::string help;

  std::string range_text() const;  // "an integer in [1, 1048576]", "one of max, avg, none"
};

// What a method gets besides its parameters.
struct MethodOptions {
  const Transformer* draft = nullptr;  // draft-based methods (not owned)
  bool record_selection = false;       // info["layers"] lists the kept positions
};

class MethodArgs {
 public:
  // `given` (an object, may be null or empty) over the specs' defaults; throws dapx::Error on
  // an unknown name, a wrong type or a value out of range.
  MethodArgs(std::string method, const std::vector<ParamSpec>& specs, const nlohmann::json& given,
             MethodOptions options = {});

  const std::string& method() const { return method_; }
  const MethodOptions& options() const { return options_; }
  bool has(const std::string& name) const;  // set by the caller or by a non-null default
  int64_t integer(const std::string& name) const;
  double number(const std::string& name) const;
  const std::string& text(const std::string& name) const;
  const nlohmann::json& values() const { return values_; }  // every parameter, resolved
  // A dapx::Error "METHOD: MESSAGE", for constraints between parameters.
  [[noreturn]] void fail(const std::string& message) const;

 private:
  const nlohmann::json& value(const std::string& name) const;
  std::string method_;
  nlohmann::json values_ = nlohmann::json::object();
  MethodOptions options_;
};

// A command-line or form value for `spec`, as JSON: "24" -> 24 for an Int, "0.5" -> 0.5 for a
// Float, the text for a Choice. Malformed numbers are errors naming the parameter.
nlohmann::json param_from_text(const std::string& method, const ParamSpec& spec,
                               const std::string& text);

}  // namespace dapx
