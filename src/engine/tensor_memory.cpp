#include "engine/tensor_memory.h"

#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace dapx {

// LibTorch's CPU allocator reports every allocation and free (with its size) to the
// MemoryReportingInfoBase of the thread's PROFILER_STATE while that says memory profiling is
// on: the hook torch.profiler(profile_memory=True) uses. Only this thread's allocations are
// seen, and only frees of blocks allocated in the scope lower the count.
struct TensorPeakScope::Counter : c10::MemoryReportingInfoBase {
  // A thread that inherits LibTorch's thread-local state (e.g. its inter-op pool) reports here
  // too, so the counts are guarded.
  mutable std::mutex mutex;
  std::unordered_map<void*, int64_t> alive;  // blocks allocated in this scope, not yet freed
  int64_t live = 0, peak = 0;

  void count(void* ptr, int64_t alloc_size, const c10::Device& device) {
    if (!device.is_cpu()) return;
    const std::lock_guard<std::mutex> lock(mutex);
    if (alloc_size > 0) {
      alive[ptr] = alloc_size;
      live += alloc_size;
      peak = std::max(peak, live);
    } else if (const auto it = alive.find(ptr); it != alive.end()) {
      // only this scope's blocks: a free of an earlier request's block must not lower it
      live -= it->second;
      alive.erase(it);
    }
  }
  // The totals' type changed from int64_t (LibTorch 1.x) to size_t (2.x): one of these two
  // overrides the base's pure virtual, the other is unused (so none is marked `override`).
  void reportMemoryUsage(void* ptr, int64_t alloc_size, int64_t, int64_t, c10::Device device) {
    count(ptr, alloc_size, device);
  }
  void reportMemoryUsage(void* ptr, int64_t alloc_size, size_t, size_t, c10::Device device) {
    count(ptr, alloc_size, device);
  }
  bool memoryProfilingEnabled() const { return true; }  // no `override`: see above
};

TensorPeakScope::TensorPeakScope() : counter_(std::make_shared<Counter>()) {
  guard_ = std::make_unique<c10::DebugInfoGuard>(c10::DebugInfoKind::PROFILER_STATE, counter_);
}

TensorPeakScope::~TensorPeakScope() = default;

int64_t TensorPeakScope::peak_bytes() const {
  const std::lock_guard<std::mutex> lock(counter_->mutex);
  return counter_->peak;
}

int64_t TensorPeakScope::live_bytes() const {
  const std::lock_guard<std::mutex> lock(counter_->mutex);
  return counter_->live;
}

}  // namespace dapx
