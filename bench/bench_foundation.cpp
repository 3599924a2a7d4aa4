// Full-KV engine throughput against the machine's limits, in one run:
//   prefill tokens/s at 1k and 4k prompt tokens, decode tokens/s at a short and an 8k context,
//   peak RSS; plus the GEMM rate (f32 and bf16) and the streaming read bandwidth.
// Usage: bench_foundation MODEL_DIR [--threads N] [--dtype bf16|f32] [--out results/foundation]
// The 8k-context decode runs on a cache filled with random K/V (decode cost depends only on
// the cache size), so the run takes minutes, not the hour a real 8k CPU prefill would.
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <thread>

#include "engine/model.h"
#include "engine/stats.h"
#include "machine_limits.h"
#include "model/gemv.h"

using namespace dapx;

namespace {

std::vector<int> random_tokens(int64_t n, int vocab, uint64_t seed) {
  std::vector<int> t(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& v : t) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v = static_cast<int>(x % static_cast<uint64_t>(vocab));
  }
  return t;
}

// FLOPs of a causal prefill of n tokens: 2 per weight per token for the layer matmuls (the LM
// head runs only for the last token) plus QK^T and PV over the causal triangle.
double prefill_flops(const ModelConfig& c, int64_t n) {
  const double d = c.head_dim, h = c.hidden_size;
  const double per_layer_params =
      h * d * (c.num_heads * 2 + c.num_kv_heads * 2) + 3.0 * h * c.intermediate_size;
  const double linear = 2.0 * per_layer_params * c.num_layers * n + 2.0 * h * c.vocab_size;
  const double attention = 4.0 * c.num_heads * d * (double(n) * (n + 1) / 2) * c.num_layers;
  return linear + attention;
}

struct DecodeFigure {
  double tok_s, bytes_per_token;
};

DecodeFigure decode_rate(const Transformer& t, KVCache& cache, int64_t pos, int steps) {
  t.forward({1}, pos++, cache);  // warm-up
  const Stopwatch clock;
  for (int i = 0; i < steps; ++i) t.forward({(i * 7) % 100 + 1}, pos++, cache);
  const double s = clock.seconds();
  return {steps / s, static_cast<double>(t.weight_bytes() + cache.live_bytes())};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dapx foundation benchmark: full-KV prefill/decode vs the machine's limits"};
  std::string model, out = "bench/results/foundation", dtype = "bf16";
  int threads = 0, decode_steps = 32;
  std::vector<int64_t> prefill_lengths = {1024, 4096};
  app.add_option("model", model, "Model directory (e.g. dapx make-model --shape qwen2.5-0.5b)")
      ->required();
  app.add_option("--threads", threads, "Threads (0 = all)");
  app.add_option("--dtype", dtype, "Weight dtype: bf16 or f32");
  app.add_option("--decode-steps", decode_steps, "Decode steps per measurement");
  app.add_option("--prefill-lengths", prefill_lengths,
                 "Prompt lengths for the prefill rate (none given: skip prefill)")
      ->expected(0, -1);
  app.add_option("--out", out, "Output path prefix (.json and .csv are written)");
  CLI11_PARSE(app, argc, argv);
  try {
    at::set_num_threads(threads > 0 ? threads
                                    : static_cast<int>(std::thread::hardware_concurrency()));
    ComputeOptions opts;
    opts.weight_dtype = parse_compute_dtype(dtype);
    std::cerr << "measuring machine limits...\n";
    const double gemm_f32 = bench::gemm_gflops(at::kFloat);
    const double gemm_bf16 = bench::gemm_gflops(at::kBFloat16, 256);
    const double read_gbs = bench::read_bandwidth_gbs();
    const auto m = LoadedModel::load(model, opts);
    const Transformer& t = m->transformer;
    // the prefill GEMM this CPU can run: native bf16 is far slower than f32 without AVX512-BF16
    const double gemm_limit = std::max(gemm_f32, gemm_bf16);
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t n : prefill_lengths) {
      if (n <= 0) continue;  // "--prefill-lengths" with no value: decode only
      std::cerr << "prefill " << n << " tokens...\n";
      KVCache cache = t.make_cache();
      const auto prompt = random_tokens(n, m->config.vocab_size, n);
      const Stopwatch clock;
      t.forward(prompt, 0, cache);
      const double s = clock.seconds();
      const double gflops = prefill_flops(m->config, n) / s / 1e9;
      rows.push_back({{"what", "prefill"},
                      {"context", n},
                      {"tok_s", n / s},
                      {"seconds", s},
                      {"gflops", gflops},
                      {"fraction_of_gemm", gflops / gemm_limit}});
    }
    for (int64_t ctx : {16, 8192}) {
      std::cerr << "decode at context " << ctx << "...\n";
      KVCache cache = t.make_cache();
      cache.reserve(ctx + decode_steps + 2);
      if (ctx <= 64) {
        t.forward(random_tokens(ctx, m->config.vocab_size, 3), 0, cache);
      } else {
        for (int l = 0; l < cache.num_layers(); ++l)
          cache.layer(l).append(at::randn({m->config.num_kv_heads, ctx, m->config.head_dim}),
                                at::randn({m->config.num_kv_heads, ctx, m->config.head_dim}), 0);
      }
      const DecodeFigure f = decode_rate(t, cache, ctx, decode_steps);
      const double limit = read_gbs * 1e9 / f.bytes_per_token;
      rows.push_back({{"what", "decode"},
                      {"context", ctx},
                      {"tok_s", f.tok_s},
                      {"bytes_per_token", f.bytes_per_token},
                      {"limit_tok_s", limit},
                      {"fraction_of_bandwidth", f.tok_s / limit}});
    }
    nlohmann::json result = {{"model", model},
                             {"dtype", dtype},
                             {"threads", at::get_num_threads()},
                             {"gemv_avx2", gemv_uses_avx2()},
                             {"gemm_f32_gflops", gemm_f32},
                             {"gemm_bf16_gflops", gemm_bf16},
                             {"read_gbs", read_gbs},
                             {"weight_bytes", t.weight_bytes()},
                             {"peak_rss_bytes", peak_rss_bytes()},
                             {"working_bytes", peak_rss_bytes() - t.weight_bytes()},
                             {"rows", rows}};
    std::ofstream(out + ".json") << result.dump(2) << "\n";
    std::ofstream csv(out + ".csv");
    csv << "what,context,tok_s,fraction_of_limit\n";
    std::printf(
        "machine: f32 GEMM %.1f GFLOP/s, bf16 GEMM %.1f GFLOP/s, read %.1f GB/s, %d threads\n",
        gemm_f32, gemm_bf16, read_gbs, at::get_num_threads());
    std::printf("%-8s %8s %10s %14s\n", "what", "context", "tok/s", "of limit");
    for (const auto& r : rows) {
      const double frac = r.contains("fraction_of_gemm") ? r["fraction_of_gemm"].get<double>()
                                                         : r["fraction_of_bandwidth"].get<double>();
      std::printf("%-8s %8lld %10.1f %13.0f%%\n", r["what"].get<std::string>().c_str(),
                  static_cast<long long>(r["context"].get<int64_t>()), r["tok_s"].get<double>(),
                  100 * frac);
      csv << r["what"].get<std::string>() << "," << r["context"] << "," << r["tok_s"] << "," << frac
          << "\n";
    }
    std::printf("peak RSS %.0f MiB (weights %.0f MiB, working memory %.0f MiB)\n",
                peak_rss_bytes() / 1048576.0, t.weight_bytes() / 1048576.0,
                (peak_rss_bytes() - t.weight_bytes()) / 1048576.0);
  } catch (const std::exception& e) {
    std::cerr << "bench_foundation: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
