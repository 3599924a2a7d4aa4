// dapx --version: what this binary is and what it runs on, so that a bug report or a stored
// figure can say which build made it.
#include <ATen/Context.h>

#include <sstream>
#include <string>

#include "bench/cpu_info.h"
#include "common.h"
#include "model/cpu_features.h"

#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

namespace dapx::cli {

std::string version_text() {
  std::ostringstream o;
  o << "dapx " << DAPX_VERSION << "\n";
  const nlohmann::json git = git_state();
  o << "source: commit " << git["git_commit"].get<std::string>();
  if (git["git_dirty"].is_boolean() && git["git_dirty"].get<bool>())
    o << " with uncommitted changes";
  o << " (the tree it was built from, read now; unknown outside a checkout)\n";
  o << "build: " << DAPX_BUILD_TYPE << "\n";
#ifdef TORCH_VERSION_MAJOR
  o << "LibTorch: " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR << "."
    << TORCH_VERSION_PATCH << "\n";
#else
  o << "LibTorch: version unknown\n";
#endif
  const CpuKernels level = cpu_kernels(CpuKernels::kBest);
  o << "CPU kernels: "
    << (level == CpuKernels::kAvx512 ? "AVX-512"
        : level == CpuKernels::kAvx2 ? "AVX2"
                                     : "portable");
  const nlohmann::json cpu = bench::cpu_info();
  for (const char* flag : {"avx512_bf16", "amx_bf16"})
    if (cpu["cpu_flags"].value(flag, false)) o << ", " << flag;
  o << " (" << cpu["cpu_model"].get<std::string>() << ", " << cpu["hardware_threads"].get<int>()
    << " hardware threads)\n";
  o << "CUDA: " << (at::hasCUDA() ? "yes (LibTorch with CUDA, a device visible)" : "no") << "\n";
  o << "data: " << default_data_dir() << "\n";
  o << "default models: " << default_models_dir() << "\n";
  return o.str();
}

}  // namespace dapx::cli
