#include "server/metrics.h"

#include <sstream>

namespace dapx::server {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t b = 0;
  while (b < bounds_.size() && v > bounds_[b]) ++b;
  ++counts_[b];
  sum_ += v;
  ++count_;
}

std::string Histogram::text(const std::string& name) const {
  std::ostringstream out;
  long long cumulative = 0;
  for (size_t b = 0; b < bounds_.size(); ++b) {
    cumulative += counts_[b];
    out << name << "_bucket{le=\"" << bounds_[b] << "\"} " << cumulative << "\n";
  }
  out << name << "_bucket{le=\"+Inf\"} " << count_ << "\n";
  out << name << "_sum " << sum_ << "\n" << name << "_count " << count_ << "\n";
  return out.str();
}

namespace {
const std::vector<double> kSeconds = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

Metrics::Metrics()
    : ttft_(kSeconds),
      latency_(kSeconds),
      kept_ratio_({0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}) {}

void Metrics::record(const GenerationRecord& r) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{r.endpoint, r.method, r.status}];
  if (r.status != 200) return;
  prompt_tokens_ += r.prompt_tokens;
  prompt_tokens_kept_ += r.prompt_tokens_kept;
  generated_tokens_ += r.generated_tokens;
  kv_bytes_ += r.kv_bytes;
  kv_bytes_full_ += r.kv_bytes_full;
  ttft_.observe(r.ttft_s);
  latency_.observe(r.total_s);
  if (r.kv_bytes_full > 0) kept_ratio_.observe(double(r.kv_bytes) / double(r.kv_bytes_full));
}

void Metrics::set_queue_depth(int depth) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_depth_ = depth;
}

std::string Metrics::text() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream out;
  out << "# HELP dapx_requests_total Requests answered, by endpoint, method and HTTP status.\n"
      << "# TYPE dapx_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out << "dapx_requests_total{endpoint=\"" << std::get<0>(key) << "\",method=\""
        << std::get<1>(key) << "\",status=\"" << std::get<2>(key) << "\"} " << n << "\n";
  const auto counter = [&](const char* name, const char* help, long long v) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n"
        << name << " " << v << "\n";
  };
  counter("dapx_prompt_tokens_total", "Prompt tokens of successful requests.", prompt_tokens_);
  counter("dapx_prompt_tokens_kept_total",
          "Prompt tokens the target read (prompt methods drop some).", prompt_tokens_kept_);
  counter("dapx_generated_tokens_total", "Tokens generated.", generated_tokens_);
  counter("dapx_kv_bytes_total", "KV cache bytes held at the end of each generation.", kv_bytes_);
  counter("dapx_kv_bytes_full_total", "KV cache bytes full KV would have held.", kv_bytes_full_);
  out << "# HELP dapx_time_to_first_token_seconds Prompt in to first token.\n"
      << "# TYPE dapx_time_to_first_token_seconds histogram\n"
      << ttft_.text("dapx_time_to_first_token_seconds")
      << "# HELP dapx_request_seconds Whole generation.\n# TYPE dapx_request_seconds histogram\n"
      << latency_.text("dapx_request_seconds")
      << "# HELP dapx_kv_kept_ratio KV bytes kept / full KV bytes per request.\n"
      << "# TYPE dapx_kv_kept_ratio histogram\n"
      << kept_ratio_.text("dapx_kv_kept_ratio")
      << "# HELP dapx_queue_depth Requests admitted and not finished (running + waiting).\n"
      << "# TYPE dapx_queue_depth gauge\ndapx_queue_depth " << queue_depth_ << "\n";
  return out.str();
}

std::string engine_text(const EngineGauges& g) {
  std::ostringstream out;
  out << "# HELP dapx_running_sequences Sequences decoding now (one batched step serves all).\n"
      << "# TYPE dapx_running_sequences gauge\ndapx_running_sequences " << g.running << "\n"
      << "# HELP dapx_waiting_requests Requests queued for the KV pool or their prefill.\n"
      << "# TYPE dapx_waiting_requests gauge\ndapx_waiting_requests " << g.waiting << "\n"
      << "# HELP dapx_kv_pool_bytes KV memory pool: held by running sequences, the limit "
         "(--kv-memory), the highest held.\n"
      << "# TYPE dapx_kv_pool_bytes gauge\n"
      << "dapx_kv_pool_bytes{state=\"used\"} " << g.pool_used << "\n"
      << "dapx_kv_pool_bytes{state=\"limit\"} " << g.pool_limit << "\n"
      << "dapx_kv_pool_bytes{state=\"peak\"} " << g.pool_peak << "\n"
      << "# HELP dapx_decode_steps_total Batched decode steps.\n"
      << "# TYPE dapx_decode_steps_total counter\ndapx_decode_steps_total " << g.steps << "\n"
      << "# HELP dapx_decode_step_seconds_total Time in batched decode steps.\n"
      << "# TYPE dapx_decode_step_seconds_total counter\ndapx_decode_step_seconds_total "
      << g.step_seconds << "\n"
      << "# HELP dapx_decode_batch_size_steps Decode steps by the number of sequences they "
         "served.\n"
      << "# TYPE dapx_decode_batch_size_steps counter\n";
  for (const auto& [size, n] : g.batch_sizes)
    out << "dapx_decode_batch_size_steps{size=\"" << size << "\"} " << n << "\n";
  out << "# HELP dapx_prefix_cache_lookups_total Prefix cache lookups, by result.\n"
      << "# TYPE dapx_prefix_cache_lookups_total counter\n"
      << "dapx_prefix_cache_lookups_total{result=\"hit\"} " << g.prefix_hits << "\n"
      << "dapx_prefix_cache_lookups_total{result=\"miss\"} " << g.prefix_misses << "\n"
      << "# HELP dapx_prefix_cache_hit_tokens_total Prompt tokens served from the prefix cache.\n"
      << "# TYPE dapx_prefix_cache_hit_tokens_total counter\ndapx_prefix_cache_hit_tokens_total "
      << g.prefix_hit_tokens << "\n"
      << "# HELP dapx_prefix_cache_bytes Prefix cache bytes in RAM, and its limit.\n"
      << "# TYPE dapx_prefix_cache_bytes gauge\n"
      << "dapx_prefix_cache_bytes{state=\"used\"} " << g.prefix_bytes << "\n"
      << "dapx_prefix_cache_bytes{state=\"limit\"} " << g.prefix_limit << "\n"
      << "# HELP dapx_prefix_cache_blocks Blocks in the prefix cache.\n"
      << "# TYPE dapx_prefix_cache_blocks gauge\ndapx_prefix_cache_blocks " << g.prefix_blocks
      << "\n# HELP dapx_prefix_cache_evictions_total Blocks evicted (least recently used).\n"
      << "# TYPE dapx_prefix_cache_evictions_total counter\ndapx_prefix_cache_evictions_total "
      << g.prefix_evictions << "\n"
      << "# HELP dapx_prefix_cache_disk_blocks_total Prefix cache blocks read from and written to "
         "--prefix-cache-dir, bad files dropped, and files evicted for --prefix-cache-dir-bytes.\n"
      << "# TYPE dapx_prefix_cache_disk_blocks_total counter\n"
      << "dapx_prefix_cache_disk_blocks_total{op=\"read\"} " << g.prefix_disk_reads << "\n"
      << "dapx_prefix_cache_disk_blocks_total{op=\"write\"} " << g.prefix_disk_writes << "\n"
      << "dapx_prefix_cache_disk_blocks_total{op=\"dropped\"} " << g.prefix_disk_dropped << "\n"
      << "dapx_prefix_cache_disk_blocks_total{op=\"evicted\"} " << g.prefix_disk_evicted << "\n";
  return out.str();
}

}  // namespace dapx::server
