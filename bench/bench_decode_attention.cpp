// The decode attention kernel alone on the qwen2.5-0.5b shape (14 query heads, 2 KV heads,
// head dim 64, 24 layers, one bf16 cache per layer so nothing stays in cache between layers):
// milliseconds per generated token for the attention of all layers at 4k, 8k and 16k keys, the
// cache bytes streamed per second and the FLOP rate, next to the machine's read bandwidth.
// Best of 15 runs (this kind of machine is shared and noisy).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "engine/stats.h"
#include "machine_limits.h"
#include "model/decode_attention.h"

int main(int argc, char** argv) {
  at::set_num_threads(argc > 1 ? std::atoi(argv[1])
                               : static_cast<int>(std::thread::hardware_concurrency()));
  constexpr int64_t kHeads = 14, kKvHeads = 2, kDim = 64, kLayers = 24;
  const double bw = dapx::bench::read_bandwidth_gbs();
  std::printf("threads %d, read bandwidth %.1f GB/s\n", at::get_num_threads(), bw);
  std::printf("%8s %14s %10s %8s %10s\n", "keys", "ms per token", "GB/s", "of bw", "GFLOP/s");
  for (const int64_t len : {4096, 8192, 16384}) {
    std::vector<at::Tensor> keys, values;  // bf16 [kv_heads, len, d] per layer
    for (int64_t l = 0; l < kLayers; ++l) {
      keys.push_back(at::randn({kKvHeads, len, kDim}).to(at::kBFloat16));
      values.push_back(at::randn({kKvHeads, len, kDim}).to(at::kBFloat16));
    }
    const at::Tensor q = at::randn({kHeads, kDim});
    at::Tensor out = at::empty({kHeads, kDim});
    double best = 1e30;
    for (int rep = 0; rep < 15; ++rep) {
      const dapx::Stopwatch clock;
      for (int64_t l = 0; l < kLayers; ++l) {
        dapx::DecodeAttention a;
        a.q = q.data_ptr<float>();
        a.k = keys[l].data_ptr();
        a.v = values[l].data_ptr();
        a.bf16 = true;
        a.head_stride = len * kDim;
        a.heads = kHeads;
        a.kv_heads = kKvHeads;
        a.len = len;
        a.d = kDim;
        a.out = out.data_ptr<float>();
        dapx::attend_one_token(a);
      }
      best = std::min(best, clock.seconds());
    }
    const double bytes = 2.0 * kLayers * kKvHeads * len * kDim * 2;  // keys + values, bf16
    const double flops = 4.0 * kLayers * kHeads * len * kDim;        // scores + weighted sum
    std::printf("%8lld %14.2f %10.1f %7.0f%% %10.1f\n", static_cast<long long>(len), best * 1e3,
                bytes / best / 1e9, 100 * bytes / best / 1e9 / bw, flops / best / 1e9);
  }
}
