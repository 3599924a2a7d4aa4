#pragma once
// Process memory figures for the result's stats (and the Stopwatch, from util/).
#include <cstdint>

#include "util/stopwatch.h"

namespace dapx {

// Resets the peak RSS to the current RSS, so that peak_rss_bytes() reports the peak of what
// runs next (one request). Linux: writing 5 to /proc/self/clear_refs resets VmHWM. Returns
// false where that is not possible; the peak is then the process's all-time high.
bool reset_peak_rss();
int64_t peak_rss_bytes();     // high-water mark (VmHWM; getrusage where /proc is missing)
int64_t current_rss_bytes();  // resident now (/proc/self/statm)

}  // namespace dapx
