// The decode GEMV against LibTorch's matmul and the machine's read bandwidth, on the weight
// shapes of a qwen2.5-0.5b layer and its LM head (bf16, and int8 with its scales: GB/s and the
// speed-up per product over bf16). Checks the bf16 results agree.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

#include "engine/stats.h"
#include "machine_limits.h"
#include "model/gemv.h"

int main(int argc, char** argv) {
  at::set_num_threads(argc > 1 ? std::atoi(argv[1])
                               : static_cast<int>(std::thread::hardware_concurrency()));
  const double bw = dapx::bench::read_bandwidth_gbs();
  std::printf("threads %d, read bandwidth %.1f GB/s, AVX2 GEMV %s\n", at::get_num_threads(), bw,
              dapx::gemv_uses_avx2() ? "yes" : "no");
  std::printf("%-14s %10s %12s %12s %10s %10s %9s\n", "shape", "GB/s dapx", "GB/s torch", "of bw",
              "max err", "GB/s int8", "int8 x");
  for (auto [n, k] :
       {std::pair<int64_t, int64_t>{896, 896}, {4864, 896}, {896, 4864}, {151936, 896}}) {
    const at::Tensor w = at::randn({n, k}).to(at::kBFloat16), x = at::randn({1, k});
    at::Tensor y = at::empty({1, n});
    const auto run = [&] {
      dapx::gemv_bf16(reinterpret_cast<const uint16_t*>(w.data_ptr()), n, k, x.data_ptr<float>(), 1,
                      y.data_ptr<float>());
    };
    run();
    const double bytes = static_cast<double>(n) * k * 2;
    const int reps = static_cast<int>(std::max(3.0, 2e9 / bytes));
    dapx::Stopwatch c1;
    for (int i = 0; i < reps; ++i) run();
    const double ours = bytes * reps / c1.seconds() / 1e9;
    const at::Tensor want = at::mm(x, w.to(at::kFloat).t());
    const double err = (want - y).abs().max().item<double>();
    const at::Tensor xb = x.to(at::kBFloat16);
    at::Tensor yt = at::mm(xb, w.t());
    dapx::Stopwatch c2;
    const int treps = std::max(1, reps / 20);
    for (int i = 0; i < treps; ++i) yt = at::mm(xb, w.t());
    const double torch_rate = bytes * treps / c2.seconds() / 1e9;
    // int8 weights with their scales: bytes read per product and the rate in weights/s
    const at::Tensor q = at::randint(-127, 128, {n, k}).to(at::kChar);
    const at::Tensor sc = at::rand({n, dapx::int8_blocks(k)}) * 0.01;
    const auto run8 = [&] {
      dapx::gemv_int8(q.data_ptr<int8_t>(), sc.data_ptr<float>(), n, k, x.data_ptr<float>(), 1,
                      y.data_ptr<float>());
    };
    run8();
    const double bytes8 = static_cast<double>(n) * k + 4.0 * sc.numel();
    dapx::Stopwatch c3;
    for (int i = 0; i < reps; ++i) run8();
    const double int8_rate = bytes8 * reps / c3.seconds() / 1e9;
    const double speedup = (bytes8 / int8_rate) > 0 ? (bytes / ours) / (bytes8 / int8_rate) : 0;
    std::printf("%6lldx%-7lld %10.1f %12.1f %11.0f%% %10.2e %10.1f %8.2fx\n",
                static_cast<long long>(n), static_cast<long long>(k), ours, torch_rate,
                100 * ours / bw, err, int8_rate, speedup);
  }
  // A decode step's weight stream: 24 distinct layers of the same shapes (too large for any
  // cache) in decode's batches (qkv, o, gate+up, down), then the LM head.
  {
    const int64_t h = 896, kvd = 128, inter = 4864, vocab = 151936, layers = 24;
    std::vector<at::Tensor> ws;
    for (int64_t l = 0; l < layers; ++l)
      for (auto [n, k] : {std::pair<int64_t, int64_t>{h, h},
                          {kvd, h},
                          {kvd, h},
                          {h, h},
                          {inter, h},
                          {inter, h},
                          {h, inter}})
        ws.push_back(at::randn({n, k}).to(at::kBFloat16));
    const at::Tensor head = at::randn({vocab, h}).to(at::kBFloat16);
    double bytes = head.nbytes();
    double macs = static_cast<double>(head.numel());
    for (const auto& w : ws) {
      bytes += w.nbytes();
      macs += static_cast<double>(w.numel());
    }
    constexpr int kMaxRows = 16;
    std::vector<float> x(kMaxRows * inter), y(kMaxRows * vocab);
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5f + 0.001f * static_cast<float>(i % 997);
    // Batched decode (B rows per step) reads the same weights once: the step's time against
    // the read bandwidth (its floor) and its multiply-adds, for both bf16 kinds.
    std::printf("decode step, %.0f MB of weights; floor at %.1f GB/s: %.1f ms\n", bytes / 1e6, bw,
                bytes / bw / 1e6);
    std::printf("%-12s %5s %10s %10s %12s\n", "kind", "rows", "ms/step", "of floor", "GFLOP/s");
    for (const auto kind : {dapx::GemvWeights::kBf16, dapx::GemvWeights::kBf16Pairs}) {
      if (kind == dapx::GemvWeights::kBf16Pairs && !dapx::cpu_has_avx512_bf16()) continue;
      for (const int rows : {1, 2, 4, 8, 16}) {
        const auto target = [&](const at::Tensor& w, int64_t offset) {
          return dapx::GemvTarget{w.data_ptr(), kind, w.size(0), x.data(), y.data() + offset};
        };
        const auto step = [&] {
          for (int64_t l = 0; l < layers; ++l) {
            const at::Tensor* lw = ws.data() + 7 * l;
            const dapx::GemvTarget qkv[] = {target(lw[0], 0), target(lw[1], rows * h),
                                            target(lw[2], rows * (h + kvd))};
            dapx::gemv_batch(qkv, 3, h, rows);
            const dapx::GemvTarget o = target(lw[3], 0);
            dapx::gemv_batch(&o, 1, h, rows);
            const dapx::GemvTarget gu[] = {target(lw[4], 0), target(lw[5], rows * inter)};
            dapx::gemv_batch(gu, 2, h, rows);
            const dapx::GemvTarget down = target(lw[6], 0);
            dapx::gemv_batch(&down, 1, inter, rows);
          }
          const dapx::GemvTarget t = target(head, 0);
          dapx::gemv_batch(&t, 1, h, rows);
        };
        step();
        dapx::Stopwatch c;
        const int reps = 10;
        for (int i = 0; i < reps; ++i) step();
        const double s = c.seconds() / reps;
        std::printf("%-12s %5d %10.1f %9.0f%% %12.1f\n",
                    kind == dapx::GemvWeights::kBf16 ? "bf16" : "bf16-pairs", rows, s * 1e3,
                    100 * bytes / bw / 1e9 / s, 2 * macs * rows / s / 1e9);
      }
    }
  }
  return 0;
}
