#include "methods/method_args.h"

#include <cmath>
#include <sstream>

#include "util/error.h"

namespace dapx {
namespace {

std::string number_text(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e18) return std::to_string(static_cast<long long>(v));
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

const ParamSpec* find_spec(const std::vector<ParamSpec>& specs, const std::string& name) {
  for (const ParamSpec& s : specs)
    if (s.name == name) return &s;
  return nullptr;
}

}  // namespace

std::string ParamSpec::range_text() const {
  switch (type) {
    case ParamType::Int:
      return "an integer in [" + number_text(min) + ", " + number_text(max) + "]";
    case ParamType::Float:
      return "a number in [" + number_text(min) + ", " + number_text(max) + "]";
    case ParamType::Choice:
      return "one of " + join(choices);
  }
  return "";
}

MethodArgs::MethodArgs(std::string method, const std::vector<ParamSpec>& specs,
                       const nlohmann::json& given, MethodOptions options)
    : method_(std::move(method)), options_(options) {
  if (!given.is_null() && !given.is_object())
    throw Error("parameters of method '" + method_ + "' must be a JSON object, got " +
                given.dump());
  for (const ParamSpec& s : specs) values_[s.name] = s.default_value;
  if (given.is_null()) return;
  for (const auto& [name, v] : given.items()) {
    const ParamSpec* spec = find_spec(specs, name);
    if (!spec) {
      std::vector<std::string> known;
      for (const ParamSpec& s : specs) known.push_back(s.name);
      throw Error("method '" + method_ + "' has no parameter '" + name +
                  "'; its parameters: " + (known.empty() ? "none" : join(known)));
    }
    const auto bad = [&] {
      throw Error("method '" + method_ + "': parameter '" + name + "' must be " +
                  spec->range_text() + ", got " + v.dump());
    };
    switch (spec->type) {
      case ParamType::Int: {
        // 24.0 from a JSON client is 24; 24.5 is not an integer.
        if (!v.is_number()) bad();
        const double d = v.get<double>();
        if (!std::isfinite(d) || d != std::floor(d) || d < spec->min || d > spec->max) bad();
        values_[name] = v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(d);
        break;
      }
      case ParamType::Float: {
        if (!v.is_number()) bad();
        const double d = v.get<double>();
        if (!std::isfinite(d) || d < spec->min || d > spec->max) bad();
        values_[name] = d;
        break;
      }
      case ParamType::Choice: {
        if (!v.is_string()) bad();
        const std::string s = v.get<std::string>();
        bool known = false;
        for (const std::string& c : spec->choices) known |= c == s;
        if (!known) bad();
        values_[name] = s;
        break;
      }
    }
  }
}

const nlohmann::json& MethodArgs::value(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end())  // a bug in a factory, not a user error
    throw Error("method '" + method_ + "' reads parameter '" + name +
                "', which it does not declare");
  return *it;
}

bool MethodArgs::has(const std::string& name) const {
  const auto it = values_.find(name);
  return it != values_.end() && !it->is_null();
}

int64_t MethodArgs::integer(const std::string& name) const {
  const nlohmann::json& v = value(name);
  if (!v.is_number_integer()) fail("parameter '" + name + "' is not set");
  return v.get<int64_t>();
}

double MethodArgs::number(const std::string& name) const {
  const nlohmann::json& v = value(name);
  if (!v.is_number()) fail("parameter '" + name + "' is not set");
  return v.get<double>();
}

const std::string& MethodArgs::text(const std::string& name) const {
  const nlohmann::json& v = value(name);
  if (!v.is_string()) fail("parameter '" + name + "' is not set");
  return v.get_ref<const std::string&>();
}

void MethodArgs::fail(const std::string& message) const { throw Error(method_ + ": " + message); }

nlohmann::json param_from_text(const std::string& method, const ParamSpec& spec,
                               const std::string& text) {
  if (spec.type == ParamType::Choice) return text;
  const auto bad = [&]() -> nlohmann::json {
    throw Error("method '" + method + "': parameter '" + spec.name + "' must be " +
                spec.range_text() + ", got '" + text + "'");
  };
  try {
    size_t used = 0;
    if (spec.type == ParamType::Int) {
      const long long v = std::stoll(text, &used);
      return used == text.size() ? nlohmann::json(static_cast<int64_t>(v)) : bad();
    }
    const double v = std::stod(text, &used);
    return used == text.size() ? nlohmann::json(v) : bad();
  } catch (const std::logic_error&) {  // invalid_argument, out_of_range
    return bad();
  }
}

}  // namespace dapx
