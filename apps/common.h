#pragma once
// Flags and helpers shared by the CLI's subcommands.
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>
#include <string>

#include "engine/model.h"

namespace dapx::cli {

struct RuntimeFlags {
  int threads = 0;  // 0 = all hardware threads
  std::string dtype = "bf16";
  int64_t prefill_chunk = 512;
  std::string device = "cpu";
};

void add_runtime_flags(CLI::App& cmd, RuntimeFlags& f);
// Sets LibTorch's thread count (it starts with one) and returns the compute options.
ComputeOptions apply_runtime_flags(const RuntimeFlags& f);
std::string read_file(const std::string& path);  // errors name the path
std::string default_data_dir();                  // the unpacked real vocabularies

}  // namespace dapx::cli
