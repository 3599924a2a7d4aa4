#pragma once
// std::filesystem::exists(path) throws std::filesystem::filesystem_error for anything other
// than "not found" (a name too long, a component that is not a directory, no permission);
// callers that promise dapx::Error use this instead.
#include <filesystem>
#include <system_error>

#include "util/error.h"

namespace dapx {

inline bool path_exists(const std::filesystem::path& p) {
  std::error_code ec;
  const bool found = std::filesystem::exists(p, ec);
  if (ec) {
    std::string shown = p.string();
    if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
    throw Error("cannot access '" + shown + "': " + ec.message());
  }
  return found;
}

}  // namespace dapx
