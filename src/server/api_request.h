#pragma once
// The body of an OpenAI-style completion or chat request, parsed and checked field by field.
// Torch-free: every malformed body ends in an ApiError that names the field (OpenAI's
// {"error": {"message", "type", "param", "code"}}), never in a crash.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace dapx::server {

// An error the client caused (or a refusal): an HTTP status and OpenAI's error object.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = "",
           std::string code = "invalid_value", std::string type = "invalid_request_error");
  int status() const { return status_; }
  nlohmann::json body() const;

 private:
  int status_;
  std::string param_, code_, type_;
};

struct Message {
  std::string role, content;
};

struct CompletionRequest {
  bool chat = false;
  std::string prompt;              // /v1/completions (text)
  std::vector<int> prompt_tokens;  // /v1/completions given as token ids (checked by the server)
  std::vector<Message> messages;   // /v1/chat/completions
  std::string model;    // not used to pick a model: answers name the served model (one per server)
  int max_tokens = 16;  // OpenAI's default for completions
  double temperature = 1.0, top_p = 1.0;
  int top_k = 0;  // 0: every token
  uint64_t seed = 0;
  bool has_seed = false;
  std::vector<std::string> stop;
  bool stream = false;
  bool ignore_eos = false;  // vLLM's extension: generate max_tokens even past EOS (benchmarks)
  // The "dapx" object: {"method": NAME, ...parameters}; method empty: the server's default.
  std::string method;
  nlohmann::json method_params = nlohmann::json::object();
};

struct RequestLimits {
  int max_tokens = 4096;  // upper bound of max_tokens (also bounded by the context)
};

// Parses `body` (raw bytes) for /v1/completions (chat = false) or /v1/chat/completions.
// Checks: valid UTF-8, JSON object, known types, ranges (max_tokens in [1, limit], temperature
// in [0, 2], top_p in (0, 1], n = 1, at most 4 stop strings), roles. Unknown OpenAI fields
// are ignored, as OpenAI-compatible servers do; the dapx object is checked by the caller
// against the method catalogue.
CompletionRequest parse_completion_request(const std::string& body, bool chat,
                                           const RequestLimits& limits);

// True when `s` is well-formed UTF-8.
bool valid_utf8(const std::string& s);

}  // namespace dapx::server
