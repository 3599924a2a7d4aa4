#pragma once
// Tests of error messages: the message of the dapx::Error a call throws.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "util/error.h"

namespace dapx::test {

// The message of the dapx::Error that f() throws; "(no error)" when it returns normally.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Expects f() to throw a dapx::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  const std::string msg = error_of(f);
  if (msg == "(no error)") ADD_FAILURE() << "expected dapx::Error";
  for (const auto& p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

}  // namespace dapx::test
