#include "server/api_request.h"

#include <algorithm>
#include <climits>
#include <cmath>

namespace dapx::server {

ApiError::ApiError(int status, std::string message, std::string param, std::string code,
                   std::string type)
    : std::runtime_error(std::move(message)),
      status_(status),
      param_(std::move(param)),
      code_(std::move(code)),
      type_(std::move(type)) {}

nlohmann::json ApiError::body() const {
  return {{"error",
           {{"message", what()},
            {"type", type_},
            {"param", param_.empty() ? nlohmann::json() : nlohmann::json(param_)},
            {"code", code_}}}};
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // overlong forms, surrogates, beyond U+10FFFF
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      return false;
    i += len;
  }
  return true;
}

namespace {

[[noreturn]] void invalid(const std::string& param, const std::string& message,
                          const std::string& code = "invalid_value") {
  throw ApiError(400, message, param, code);
}

const nlohmann::json* field(const nlohmann::json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number_in(const nlohmann::json& body, const char* name, double lo, double hi, bool lo_open,
                 double fallback) {
  const nlohmann::json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) invalid(name, std::string(name) + " must be a number", "invalid_type");
  const double d = v->get<double>();
  if (!std::isfinite(d) || d > hi || d < lo || (lo_open && d == lo))
    invalid(name, std::string(name) + " must be in " + (lo_open ? "(" : "[") +
                      nlohmann::json(lo).dump() + ", " + nlohmann::json(hi).dump() + "], got " +
                      v->dump());
  return d;
}

std::string text_of(const nlohmann::json& v, const std::string& param) {
  if (!v.is_string()) invalid(param, param + " must be a string", "invalid_type");
  return v.get<std::string>();
}

// A message's content: a string, or OpenAI's list of parts, of which dapx reads the "text"
// ones (joined by newlines, as vLLM does); another part type is refused by name.
std::string content_text(const nlohmann::json& v, const std::string& param) {
  if (!v.is_array()) return text_of(v, param);
  std::string text;
  for (size_t k = 0; k < v.size(); ++k) {
    const std::string at = param + "[" + std::to_string(k) + "]";
    const nlohmann::json& part = v[k];
    if (!part.is_object() || !part.contains("type"))
      invalid(at, at + " must be an object with a type", "invalid_type");
    const std::string type = text_of(part["type"], at + ".type");
    if (type != "text")
      invalid(at + ".type", at + ".type '" + type + "' is not supported: this server reads text",
              "unsupported_value");
    if (!part.contains("text"))
      invalid(at + ".text", at + ".text is required", "missing_required_parameter");
    text += (k ? "\n" : "") + text_of(part["text"], at + ".text");
  }
  return text;
}

// Fields of OpenAI's API this server does not implement: refused by name when a request asks
// for them, never silently ignored.
void refuse_unsupported(const nlohmann::json& j, bool chat) {
  const auto asked = [&](const char* name) {
    const nlohmann::json* v = field(j, name);
    return v && !(v->is_boolean() && !v->get<bool>()) && !(v->is_number() && v->get<double>() == 0);
  };
  for (const char* name : {"logprobs", "top_logprobs", "echo", "suffix", "tools", "functions"})
    if (asked(name))
      invalid(name, std::string(name) + " is not supported by this server", "unsupported_value");
  if (const nlohmann::json* v = field(j, "best_of"))
    if (!v->is_number_integer() || v->get<int64_t>() != 1)
      invalid("best_of", "best_of must be 1: this server generates one completion per request",
              "unsupported_value");
  (void)chat;
}

}  // namespace

CompletionRequest parse_completion_request(const std::string& body, bool chat,
                                           const RequestLimits& limits) {
  if (!valid_utf8(body)) invalid("", "the request body is not valid UTF-8", "invalid_encoding");
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) invalid("", "the request body is not valid JSON", "invalid_json");
  if (!j.is_object()) invalid("", "the request body must be a JSON object", "invalid_type");
  CompletionRequest r;
  r.chat = chat;
  if (const nlohmann::json* m = field(j, "model")) r.model = text_of(*m, "model");
  if (chat) {
    const nlohmann::json* msgs = field(j, "messages");
    if (!msgs) invalid("messages", "messages is required", "missing_required_parameter");
    if (!msgs->is_array() || msgs->empty())
      invalid("messages", "messages must be a non-empty array", "invalid_type");
    for (size_t i = 0; i < msgs->size(); ++i) {
      const nlohmann::json& m = (*msgs)[i];
      const std::string at = "messages[" + std::to_string(i) + "]";
      if (!m.is_object()) invalid(at, at + " must be an object", "invalid_type");
      const nlohmann::json* role = field(m, "role");
      const nlohmann::json* content = field(m, "content");
      if (!role) invalid(at + ".role", at + ".role is required", "missing_required_parameter");
      if (!content)
        invalid(at + ".content", at + ".content is required", "missing_required_parameter");
      Message msg{text_of(*role, at + ".role"), content_text(*content, at + ".content")};
      if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
        invalid(at + ".role",
                at + ".role must be system, user or assistant, got '" + msg.role + "'");
      r.messages.push_back(std::move(msg));
    }
  } else {
    const nlohmann::json* p = field(j, "prompt");
    if (!p) invalid("prompt", "prompt is required", "missing_required_parameter");
    // OpenAI's shapes: a string, token ids, or a list of either (one prompt per request here).
    const nlohmann::json* one = p;
    if (p->is_array() && !p->empty() && (p->front().is_string() || p->front().is_array())) {
      if (p->size() != 1)
        invalid("prompt",
                "prompt holds " + std::to_string(p->size()) +
                    " prompts: this server answers one prompt per request (send them separately)",
                "unsupported_value");
      one = &p->front();
    }
    if (one->is_array()) {
      if (one->empty()) invalid("prompt", "prompt is empty");
      for (size_t i = 0; i < one->size(); ++i) {
        const nlohmann::json& t = (*one)[i];
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
          invalid("prompt",
                  "prompt[" + std::to_string(i) +
                      "] must be a token id (a non-negative integer), got " + t.dump(),
                  "invalid_type");
        r.prompt_tokens.push_back(static_cast<int>(t.get<int64_t>()));
      }
    } else {
      r.prompt = text_of(*one, "prompt");
      if (r.prompt.empty()) invalid("prompt", "prompt is empty");
    }
  }
  const char* max_name = field(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (const nlohmann::json* v = field(j, max_name)) {
    if (!v->is_number_integer())
      invalid(max_name, std::string(max_name) + " must be an integer", "invalid_type");
    const int64_t n = v->get<int64_t>();
    if (n < 1 || n > limits.max_tokens)
      invalid(max_name, std::string(max_name) + " must be in [1, " +
                            std::to_string(limits.max_tokens) + "], got " + v->dump());
    r.max_tokens = static_cast<int>(n);
  }
  refuse_unsupported(j, chat);
  if (const nlohmann::json* v = field(j, "top_k")) {  // vLLM's extension: -1 or 0 = every token
    if (!v->is_number_integer() || v->get<int64_t>() < -1 || v->get<int64_t>() > INT32_MAX)
      invalid("top_k", "top_k must be an integer >= -1 (-1 or 0: every token), got " + v->dump());
    r.top_k = static_cast<int>(std::max<int64_t>(0, v->get<int64_t>()));
  }
  r.temperature = number_in(j, "temperature", 0, 2, false, 1.0);
  r.top_p = number_in(j, "top_p", 0, 1, true, 1.0);
  if (const nlohmann::json* v = field(j, "n")) {
    if (!v->is_number_integer() || v->get<int64_t>() != 1)
      invalid("n", "n must be 1: this server generates one completion per request",
              "unsupported_value");
  }
  if (const nlohmann::json* v = field(j, "seed")) {
    if (!v->is_number_integer() || v->get<int64_t>() < 0)
      invalid("seed", "seed must be a non-negative integer, got " + v->dump());
    r.seed = v->get<uint64_t>();
    r.has_seed = true;
  }
  if (const nlohmann::json* v = field(j, "stream")) {
    if (!v->is_boolean()) invalid("stream", "stream must be true or false", "invalid_type");
    r.stream = v->get<bool>();
  }
  if (const nlohmann::json* v = field(j, "ignore_eos")) {  // vLLM's extension (benchmarks)
    if (!v->is_boolean()) invalid("ignore_eos", "ignore_eos must be true or false", "invalid_type");
    r.ignore_eos = v->get<bool>();
  }
  if (const nlohmann::json* v = field(j, "stop")) {
    if (v->is_string()) {
      r.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      for (const auto& s : *v) r.stop.push_back(text_of(s, "stop"));
    } else {
      invalid("stop", "stop must be a string or a list of strings", "invalid_type");
    }
    if (r.stop.size() > 4) invalid("stop", "stop takes at most 4 strings");
    for (const std::string& s : r.stop)
      if (s.empty()) invalid("stop", "stop strings must not be empty");
  }
  if (const nlohmann::json* v = field(j, "dapx")) {
    if (!v->is_object())
      invalid("dapx", "dapx must be an object like {\"method\": \"speckv\", \"budget\": 256}",
              "invalid_type");
    for (const auto& [key, value] : v->items()) {
      if (key == "method")
        r.method = text_of(value, "dapx.method");
      else
        r.method_params[key] = value;
    }
  }
  return r;
}

}  // namespace dapx::server
