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
