// The decode GEMV against LibTorch's matmul and the machine's read bandwidth, on the weight
// shapes of a qwen2.5-0.5b layer and its LM head. Checks the results agree.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <thread>

#include "engine/stats.h"
#include "machine_limits.h"
#include "model/gemv.h"

int main(int argc, char** argv) {
  at::set_num_threads(argc > 1 ? std::atoi(argv[1])
                               : static_cast<int>(std::thread::hardware_concurrency()));
  const double bw = dapx::bench::read_bandwidth_gbs();
  std::printf("threads %d, read bandwidth %.1f GB/s, AVX2 GEMV %s\n", at::get_num_threads(), bw,
              dapx::gemv_uses_avx2() ? "yes" : "no");
  std::printf("%-14s %10s %12s %12s %10s\n", "shape", "GB/s dapx", "GB/s torch", "of bw",
              "max err");
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
    std::printf("%6lldx%-7lld %10.1f %12.1f %11.0f%% %10.2e\n", static_cast<long long>(n),
                static_cast<long long>(k), ours, torch_rate, 100 * ours / bw, err);
  }
  return 0;
}
