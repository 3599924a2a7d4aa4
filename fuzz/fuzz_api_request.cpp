// Fuzz target: the body of /v1/completions and /v1/chat/completions (the first input byte picks
// the endpoint). A body is either accepted, with every field inside its documented range, or
// rejected with an ApiError whose status is 400 and whose JSON error object serialises; any
// other exception or a crash is a bug.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "server/api_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dapx::server;
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  RequestLimits limits;
  limits.max_tokens = 512;
  try {
    const CompletionRequest r = parse_completion_request(body, chat, limits);
    FUZZ_CHECK(valid_utf8(body), "accepted invalid UTF-8");
    FUZZ_CHECK(r.max_tokens >= 1 && r.max_tokens <= 512, std::to_string(r.max_tokens));
    FUZZ_CHECK(std::isfinite(r.temperature) && r.temperature >= 0 && r.temperature <= 2,
               "temperature");
    FUZZ_CHECK(r.top_p > 0 && r.top_p <= 1, "top_p");
    FUZZ_CHECK(r.stop.size() <= 4, "stop");
    FUZZ_CHECK(chat ? !r.messages.empty() : !r.prompt.empty(), "prompt");
    FUZZ_CHECK(r.method_params.is_object(), "dapx");
  } catch (const ApiError& e) {
    FUZZ_CHECK(e.status() == 400, std::to_string(e.status()));
    FUZZ_CHECK(!e.body().dump().empty(), "error body");
  }
  return 0;
}
