#include "engine/gpu_memory.h"

#ifdef DAPX_CUDA_ALLOCATOR  // set by CMake where LibTorch has CUDA (target c10_cuda)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace dapx {

#ifdef DAPX_CUDA_ALLOCATOR
namespace {
c10::DeviceIndex index_of(const c10::Device& device) {
  return device.has_index() ? device.index() : c10::cuda::current_device();
}
}  // namespace

bool reset_gpu_peak(const c10::Device& device) {
  if (!device.is_cuda()) return false;
  c10::cuda::CUDACachingAllocator::resetPeakStats(index_of(device));
  return true;
}

GpuPeak gpu_peak(const c10::Device& device) {
  if (!device.is_cuda()) return {};
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index_of(device));
  // StatType lives in c10::CachingDeviceAllocator in every LibTorch 2.x layout.
  constexpr auto kAll = static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE);
  return {stats.allocated_bytes[kAll].peak, stats.reserved_bytes[kAll].peak};
}
#else
bool reset_gpu_peak(const c10::Device&) { return false; }
GpuPeak gpu_peak(const c10::Device&) { return {}; }
#endif

}  // namespace dapx
