#pragma once
// The server's counters in Prometheus' text format (GET /metrics): requests by endpoint,
// method and status, prompt / kept / generated tokens, KV bytes kept vs full, histograms of
// time to first token, request latency and the KV kept ratio, and the queue depth. Torch-free
// and thread-safe.
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace dapx::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // Lines "NAME_bucket{le=...} N", "NAME_sum", "NAME_count".
  std::string text(const std::string& name) const;

 private:
  std::vector<double> bounds_;
  std::vector<long long> counts_;  // per bucket, not cumulative
  double sum_ = 0;
  long long count_ = 0;
};

struct GenerationRecord {
  std::string endpoint, method;
  int status = 200;
  long long prompt_tokens = 0, prompt_tokens_kept = 0, generated_tokens = 0;
  long long kv_bytes = 0, kv_bytes_full = 0;
  double ttft_s = 0, total_s = 0;
};

// The engine's state at the moment /metrics is read (the scheduler's counters).
struct EngineGauges {
  int running = 0, waiting = 0;
  long long pool_used = 0, pool_limit = 0, pool_peak = 0, steps = 0;
  double step_seconds = 0;
  std::map<int, long long> batch_sizes;  // decode steps by batch size
  long long prefix_hits = 0, prefix_misses = 0, prefix_hit_tokens = 0, prefix_bytes = 0,
            prefix_limit = 0, prefix_blocks = 0, prefix_evictions = 0;
  long long prefix_disk_reads = 0, prefix_disk_writes = 0, prefix_disk_dropped = 0,
            prefix_disk_evicted = 0;
};
// Prometheus lines: dapx_running_sequences, dapx_waiting_requests, dapx_kv_pool_bytes{state},
// dapx_decode_steps_total, dapx_decode_step_seconds_total, dapx_decode_batch_size_steps.
std::string engine_text(const EngineGauges& g);

class Metrics {
 public:
  Metrics();
  // A finished request; generation fields count only when status is 200.
  void record(const GenerationRecord& r);
  void set_queue_depth(int depth);
  std::string text() const;

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, long long> requests_;
  long long prompt_tokens_ = 0, prompt_tokens_kept_ = 0, generated_tokens_ = 0;
  long long kv_bytes_ = 0, kv_bytes_full_ = 0;
  Histogram ttft_, latency_, kept_ratio_;
  int queue_depth_ = 0;
};

}  // namespace dapx::server
