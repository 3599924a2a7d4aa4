#pragma once
// Flags and helpers shared by the CLI's subcommands.
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

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
// "a, b,,c" -> {"a", "b", "c"}: comma-separated flag values, spaces and empty items dropped.
std::vector<std::string> split_list(const std::string& s);
// The target, and the draft when `draft_dir` is not empty (checked to share its tokenizer).
std::pair<std::unique_ptr<LoadedModel>, std::unique_ptr<LoadedModel>> load_target_and_draft(
    const std::string& target_dir, const std::string& draft_dir, const ComputeOptions& opts);

}  // namespace dapx::cli
