#pragma once
// CPU tensor memory of one request: the high-water mark of the LibTorch CPU tensors that this
// thread allocates while a TensorPeakScope lives (the KV cache, activations, scores, the
// draft's work), without the weights loaded before it and without LibTorch's own code and
// registries that make up most of a process's resident floor. It is the CPU twin of the CUDA
// allocator's peak (gpu_memory.h): RSS says what the process costs, this what the request does.
#include <cstdint>
#include <memory>

namespace c10 {
class DebugInfoGuard;
}

namespace dapx {

class TensorPeakScope {
 public:
  // Starts counting on the calling thread (LibTorch reports CPU allocations to the thread's
  // memory reporter); a nested scope counts on its own while it lives.
  TensorPeakScope();
  ~TensorPeakScope();
  TensorPeakScope(const TensorPeakScope&) = delete;
  TensorPeakScope& operator=(const TensorPeakScope&) = delete;

  int64_t peak_bytes() const;  // most bytes alive at once, of those allocated in the scope
  int64_t live_bytes() const;  // allocated in the scope and not yet freed

  struct Counter;  // defined in tensor_memory.cpp

 private:
  std::shared_ptr<Counter> counter_;
  std::unique_ptr<c10::DebugInfoGuard> guard_;  // restores the thread's previous reporter
};

}  // namespace dapx
