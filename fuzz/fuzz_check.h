#pragma once
// Shared by the fuzz targets: a check that aborts (so libFuzzer records the input as a crash,
// and a replay test fails) and the per-process scratch directory for parsers that take paths.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "temp_dir.h"  // tests/common: TempDir, write_file

// An invariant of the code under test, checked on every fuzz input (also in Release builds).
#define FUZZ_CHECK(cond, what)                                                               \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s (%s)\n", __FILE__, __LINE__, #cond, \
                   std::string(what).c_str());                                               \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

namespace dapx::fuzz {

// One scratch directory per process (libFuzzer's -jobs/-fork run several processes), removed
// when the process exits normally.
inline const std::filesystem::path& scratch_dir() {
  static const test::TempDir dir;
  return dir.path();
}

inline std::string as_string(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace dapx::fuzz
