#pragma once
// GPU memory of one request: the CUDA caching allocator's peaks (what PyTorch reports as
// torch.cuda.max_memory_allocated / max_memory_reserved), next to host RSS in the stats.
#include <c10/core/Device.h>

#include <cstdint>

namespace dapx {

struct GpuPeak {
  int64_t allocated_bytes = -1;  // tensors alive at the high-water mark; -1: not measured
  int64_t reserved_bytes = -1;   // what the allocator held from the driver at its peak
};

// Starts a new peak on `device` (a CUDA device of a CUDA build of LibTorch, after something
// was allocated there); false where nothing is measured (CPU, or LibTorch without CUDA).
bool reset_gpu_peak(const c10::Device& device);
// The peaks since the last reset; -1s where reset_gpu_peak would return false.
GpuPeak gpu_peak(const c10::Device& device);

}  // namespace dapx
