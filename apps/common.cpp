#include "common.h"

#include <fstream>
#include <sstream>
#include <thread>

#include "util/error.h"

namespace dapx::cli {

void add_runtime_flags(CLI::App& cmd, RuntimeFlags& f) {
  cmd.add_option("--threads", f.threads,
                 "CPU threads for LibTorch and the GEMV kernels (0 = all hardware threads)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option(
         "--dtype", f.dtype,
         "Weight dtype in memory: bf16 (half the memory and decode traffic) or f32 (exact). "
         "Activations, softmax and scores are always f32")
      ->check(CLI::IsMember({"bf16", "bfloat16", "f32", "float32"}));
  cmd.add_option("--prefill-chunk", f.prefill_chunk,
                 "Prompt rows per prefill chunk; bounds attention and MLP memory, same logits")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--device", f.device, "cpu, or cuda / cuda:N with a CUDA build of LibTorch");
}

ComputeOptions apply_runtime_flags(const RuntimeFlags& f) {
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(f.threads > 0 ? f.threads : std::max(1, hw));
  ComputeOptions opts;
  opts.weight_dtype = parse_compute_dtype(f.dtype);
  opts.prefill_chunk = f.prefill_chunk;
  try {
    opts.device = at::Device(f.device);
  } catch (const std::exception&) {
    throw Error("unknown --device '" + f.device + "'; use cpu or cuda[:N]");
  }
  if (opts.device.is_cuda() && !at::hasCUDA())
    throw Error("--device " + f.device +
                " asked for CUDA, but this LibTorch build has no CUDA device");
  return opts;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string default_data_dir() { return DAPX_DATA_DIR; }

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  for (char c : s + ",") {
    if (c == ',') {
      if (!item.empty()) out.push_back(item);
      item.clear();
    } else if (c != ' ') {
      item += c;
    }
  }
  return out;
}

std::pair<std::unique_ptr<LoadedModel>, std::unique_ptr<LoadedModel>> load_target_and_draft(
    const std::string& target_dir, const std::string& draft_dir, const ComputeOptions& opts) {
  auto target = LoadedModel::load(target_dir, opts);
  std::unique_ptr<LoadedModel> draft;
  if (!draft_dir.empty()) {
    draft = LoadedModel::load(draft_dir, opts);
    check_same_tokenizer(*target, *draft);
  }
  return {std::move(target), std::move(draft)};
}

}  // namespace dapx::cli
