#pragma once
// One exception type for every user-facing failure: the message says what is wrong and,
// where possible, what to do about it. The CLI prints it and exits non-zero.
#include <stdexcept>
#include <string>

namespace dapx {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace dapx
