#pragma once
// Wall-clock timing and process memory figures for the result's stats.
#include <chrono>
#include <cstdint>

namespace dapx {

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

int64_t peak_rss_bytes();     // process high-water mark (getrusage)
int64_t current_rss_bytes();  // resident now (/proc/self/statm)

}  // namespace dapx
