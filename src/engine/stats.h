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

// The bytes of [data, data + bytes) on pages resident in this process now (Linux: present in
// /proc/self/pagemap): of a file mapping, the pages read so far; of memory written, all of it.
// Where pagemap cannot be read, all of them (the range counts as resident).
int64_t resident_bytes(const void* data, int64_t bytes);

class Transformer;
// The bytes of `model`'s weights (those weight_bytes() counts) resident in this process's memory
// now: weights on a device count nothing, weights in a file mapping their pages read so far
// (an embedding table whose rows were never looked up is mostly not resident).
int64_t resident_weight_bytes(const Transformer& model);

}  // namespace dapx
