#include "common.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "bench/child_process.h"
#include "util/error.h"

namespace dapx::cli {

namespace {

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string mib_text(size_t bytes) { return number_text(bytes / 1048576.0) + " MiB"; }

// Parses all of `s` as an integer the way CLI11 converts it (base 0: 0x10 and 010 too).
bool parse_integer(const std::string& s, long long* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtoll(s.c_str(), &end, 0);
  return errno == 0 && end == s.c_str() + s.size();
}

}  // namespace

CLI::Validator int_range(int64_t lo, int64_t hi) {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](std::string& input) {
        long long v = 0;
        if (parse_integer(input, &v) && v >= lo && v <= hi) return std::string();
        return "must be an integer in " + range + ", got " + input;
      },
      range);
}

CLI::Validator real_range(double lo, double hi) {
  const std::string range = "[" + number_text(lo) + ", " + number_text(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](std::string& input) {
        char* end = nullptr;
        const double v = input.empty() ? NAN : std::strtod(input.c_str(), &end);
        // NaN fails every comparison: written so that it is rejected.
        if (!input.empty() && end == input.c_str() + input.size() && std::isfinite(v) && v >= lo &&
            v <= hi)
          return std::string();
        return "must be a finite number in " + range + ", got " + input;
      },
      range);
}

CLI::Validator seed_value() {
  const std::string range = "[0, " + std::to_string(std::numeric_limits<uint64_t>::max()) + "]";
  return CLI::Validator(
      [range](std::string& input) {
        // strtoull accepts "-1" and wraps it to 2^64 - 1: a sign is refused first.
        const size_t first = input.find_first_not_of(" \t");
        char* end = nullptr;
        errno = 0;
        if (first != std::string::npos && input[first] != '-' && input[first] != '+') {
          std::strtoull(input.c_str(), &end, 0);
          if (errno == 0 && end == input.c_str() + input.size()) return std::string();
        }
        return "must be an integer in " + range + ", got " + input;
      },
      range);
}

int max_threads() { return 4 * std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

void add_runtime_flags(CLI::App& cmd, RuntimeFlags& f) {
  cmd.add_option("--threads", f.threads,
                 "CPU threads for LibTorch and the GEMV kernels (0 = all hardware threads; at "
                 "most 4 x the hardware threads)")
      ->check(int_range(0, max_threads()));
  cmd.add_option(
         "--dtype", f.dtype,
         "Weight dtype in memory: bf16 (half the memory and decode traffic) or f32 (exact). "
         "Activations, softmax and scores are always f32")
      ->check(CLI::IsMember({"bf16", "bfloat16", "f32", "float32"}));
  cmd.add_option("--kv-dtype", f.kv_dtype,
                 "KV cache dtype: bf16 (half the cache memory and decode traffic; attention "
                 "widens to f32 as it reads) or f32 (exact)")
      ->check(CLI::IsMember({"bf16", "bfloat16", "f32", "float32"}));
  cmd.add_option("--weights", f.weights,
                 "native: linear layers in --dtype; int8: quantised at load (symmetric, one scale "
                 "per row and 64 columns; half the bytes of bf16, so faster decode; embeddings "
                 "and norms stay as they are; CPU only)")
      ->check(CLI::IsMember({"native", "int8"}));
  cmd.add_option("--gemm", f.gemm,
                 "Prefill GEMM dtype for bf16/int8 weights on the CPU: auto (measured at start-up: "
                 "bf16 where the CPU has fast bf16 GEMM, else f32), bf16 or f32")
      ->check(CLI::IsMember({"auto", "bf16", "bfloat16", "f32", "float32"}));
  cmd.add_option("--prefill-chunk", f.prefill_chunk,
                 "Prompt rows per prefill chunk; bounds attention and MLP memory, same logits")
      ->check(int_range(1, 1 << 24));
  cmd.add_option("--device", f.device, "cpu, or cuda / cuda:N with a CUDA build of LibTorch");
}

ComputeOptions apply_runtime_flags(const RuntimeFlags& f) {
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(f.threads > 0 ? f.threads : std::max(1, hw));
  ComputeOptions opts;
  opts.weight_dtype = parse_compute_dtype(f.dtype);
  opts.kv_dtype = parse_compute_dtype(f.kv_dtype);
  opts.int8_weights = f.weights == "int8";
  opts.gemm = parse_gemm_choice(f.gemm);
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

std::string read_file(const std::string& path, size_t max_bytes, const std::string& limit_reason) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error("cannot read '" + path + "': it is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path + "': " + std::strerror(errno));
  // In pieces, stopping past max_bytes: the size of a device or a pipe is not known up front.
  std::string out;
  std::string buf(size_t{1} << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    out.append(buf.data(), static_cast<size_t>(in.gcount()));
    if (out.size() > max_bytes)
      throw Error("'" + path + "' is larger than " + mib_text(max_bytes) +
                  (limit_reason.empty() ? "" : ", " + limit_reason) + ": is it the right file?");
  }
  if (in.bad()) throw Error("cannot read '" + path + "': " + std::strerror(errno));
  return out;
}

std::string read_prompt_file(const std::string& path, const ModelConfig& cfg) {
  const size_t ctx = static_cast<size_t>(cfg.max_position_embeddings);
  const size_t limit = std::clamp<size_t>(ctx * 64, size_t{1} << 20, kMaxFileBytes);
  return read_file(
      path, limit,
      "the prompt-file limit for a model with a context of " + std::to_string(ctx) + " tokens");
}

namespace {
// PREFIX/share/dapx when this binary runs from an installed PREFIX/bin (`make install`), found
// relative to the binary so that an installed tree can be moved; empty for a build-tree binary.
std::filesystem::path installed_share_dir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  const std::filesystem::path share = exe.parent_path().parent_path() / "share" / "dapx";
  if (std::filesystem::exists(share / "data" / "corpus_en.txt", ec)) return share;
  return {};
}
}  // namespace

std::string default_data_dir() {
  const std::filesystem::path share = installed_share_dir();
  return share.empty() ? std::string(DAPX_DATA_DIR) : (share / "data").string();
}

std::string default_models_dir() {
  const std::filesystem::path share = installed_share_dir();
  return share.empty() ? std::string(DAPX_SOURCE_DIR) + "/models" : (share / "models").string();
}

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

int64_t parse_bytes(const std::string& text, const std::string& flag) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = text.substr(digits);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  const std::string units = "KMGT";
  const size_t at = unit.size() == 1 ? units.find(unit[0]) : std::string::npos;
  const bool known = unit.empty() || at != std::string::npos;
  const size_t power = unit.empty() ? 0 : at + 1;
  if (digits == 0 || digits > 15 || !known)
    throw Error(flag + " '" + text + "' is not a byte count (e.g. 2G, 512M or 1073741824)");
  int64_t bytes = std::stoll(text.substr(0, digits));
  for (size_t i = 0; i < power; ++i) {
    if (bytes > (int64_t{1} << 52)) throw Error(flag + " '" + text + "' is too large");
    bytes *= 1024;
  }
  if (bytes <= 0) throw Error(flag + " must be positive, got '" + text + "'");
  return bytes;
}

namespace {
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

// The commit of the source tree this binary was built from: "unknown" without git or a checkout.
nlohmann::json git_state() {
  nlohmann::json j = {{"git_commit", "unknown"}, {"git_dirty", nullptr}};
  try {
    const auto head =
        bench::run_process({"git", "-C", DAPX_SOURCE_DIR, "rev-parse", "--short", "HEAD"}, "");
    if (head.exit_code != 0 || trim(head.out).empty()) return j;
    j["git_commit"] = trim(head.out);
    // Uncommitted changes to tracked files mean the commit alone does not describe the binary.
    const auto status = bench::run_process(
        {"git", "-C", DAPX_SOURCE_DIR, "status", "--porcelain", "--untracked-files=no"}, "");
    if (status.exit_code == 0) j["git_dirty"] = !trim(status.out).empty();
  } catch (const Error&) {  // no git on PATH
  }
  return j;
}

std::string local_time(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

}  // namespace dapx::cli
