#pragma once
// Flags and helpers shared by the CLI's subcommands.
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "engine/model.h"

namespace dapx::cli {

struct RuntimeFlags {
  int threads = 0;  // 0 = all hardware threads
  std::string dtype = "bf16";
  std::string kv_dtype = "bf16";
  std::string weights = "native";
  std::string gemm = "auto";
  int64_t prefill_chunk = 512;
  std::string device = "cpu";
};

// Validators whose messages state the flag's real range; CLI11 prefixes the flag, e.g.
// "--threads: must be an integer in [0, 8], got -1" (CLI::Range prints DBL_MAX in full for
// PositiveNumber and lets NaN through).
CLI::Validator int_range(int64_t lo, int64_t hi);
CLI::Validator real_range(double lo, double hi);  // and finite: NaN and inf are rejected
CLI::Validator seed_value();                      // [0, 2^64 - 1]: "-1" would wrap around
// The most --threads accepts: 4 x the hardware threads (more only oversubscribes the cores;
// 10000 threads hang a small machine).
int max_threads();

void add_runtime_flags(CLI::App& cmd, RuntimeFlags& f);
// Sets LibTorch's thread count (it starts with one) and returns the compute options.
ComputeOptions apply_runtime_flags(const RuntimeFlags& f);
// A byte count: digits with an optional binary suffix K, M, G or T (KiB.. also accepted), e.g.
// 2G = 2^31. Errors name `flag`.
int64_t parse_bytes(const std::string& text, const std::string& flag);

// The whole file; errors name the path: absent, a directory, or over max_bytes (read stops
// there, so /dev/zero ends too). `limit_reason` explains max_bytes in that error.
constexpr size_t kMaxFileBytes = size_t{64} << 20;
std::string read_file(const std::string& path, size_t max_bytes = kMaxFileBytes,
                      const std::string& limit_reason = "");
// A prompt file for `cfg`'s model: at most 64 bytes per token of its context (at least 1 MiB,
// at most kMaxFileBytes); a longer file could not fit in the context anyway.
std::string read_prompt_file(const std::string& path, const ModelConfig& cfg);
// The unpacked real vocabularies, corpus and task templates: PREFIX/share/dapx/data for an
// installed binary, else the build tree's data/.
std::string default_data_dir();
// The shipped default pair (target/, draft/): PREFIX/share/dapx/models when installed, else the
// source tree's models/.
std::string default_models_dir();
// "a, b,,c" -> {"a", "b", "c"}: comma-separated flag values, spaces and empty items dropped.
std::vector<std::string> split_list(const std::string& s);
// The commit of the source tree this binary was built from: {"git_commit", "git_dirty"}
// ("unknown" without git or a checkout; dirty: tracked files changed since the commit).
nlohmann::json git_state();
// The local time in strftime's `format` (results folder names, records).
std::string local_time(const char* format);
// The target, and the draft when `draft_dir` is not empty (checked to share its tokenizer).
std::pair<std::unique_ptr<LoadedModel>, std::unique_ptr<LoadedModel>> load_target_and_draft(
    const std::string& target_dir, const std::string& draft_dir, const ComputeOptions& opts);

}  // namespace dapx::cli
