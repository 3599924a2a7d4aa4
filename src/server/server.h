#pragma once
// `dapx serve`: an OpenAI-compatible HTTP server (server/http_server.h) over one target (and
// draft), with the approximation chosen per request. Generations run together on the engine's
// scheduler (engine/scheduler.h: one batched decode step for every running sequence, a KV
// memory pool that admits requests by the bytes they will hold); a full queue answers 503 with
// Retry-After, a request that can never fit the pool 400. A client that goes away cancels its
// own sequence between tokens; stop() cancels every generation and ends listen().
#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/model.h"
#include "engine/scheduler.h"
#include "server/api_request.h"
#include "server/http_server.h"
#include "server/metrics.h"

namespace dapx::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;              // 0: any free port (see bind())
  std::string method = "full";  // default method of requests without dapx.method
  nlohmann::json method_params = nlohmann::json::object();  // defaults for that method
  std::string api_key;                                      // empty: no authentication
  int max_queue = 16;  // requests admitted at once (running + waiting)
  size_t max_body_bytes = 8 << 20;
  int max_tokens = 4096;  // upper bound of a request's max_tokens
  bool log_prompts = false;
  // Connection handling: deadlines for request heads and bodies, idle keep-alive connections,
  // open connections and requests answered at once (max_body_bytes above wins over its field).
  HttpLimits http;
  int parallel = 16;      // sequences decoding at once (--parallel)
  int64_t kv_memory = 0;  // KV pool bytes (--kv-memory); 0: a quarter of physical memory
  // Prefix cache bytes (--prefix-cache): full K/V of prompt blocks reused by later requests
  // that start with them; -1: an eighth of physical memory; 0: off.
  int64_t prefix_cache = -1;
  // A folder that keeps the prefix cache's blocks across restarts (--prefix-cache-dir); empty:
  // RAM only.
  std::string prefix_cache_dir;
  // Bound of that folder's block files (--prefix-cache-dir-bytes); -1: half of the disk's free
  // space (plus the folder's blocks) at start; 0: unbounded.
  int64_t prefix_cache_dir_bytes = -1;
  // The scheduler prefills every request the pool admits before the next decode step
  // (SchedulerOptions::admit_before_decode): `dapx bench-serve --capacity` only.
  bool admit_before_decode = false;
};

class Server {
 public:
  // `draft` may be null (draft-based methods are then refused per request). Checks the
  // default method and parameters against the catalogue (dapx::Error on a bad default).
  Server(const LoadedModel& target, const LoadedModel* draft, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the socket; returns the port (the chosen one when options.port is 0).
  int bind();
  // Serves until stop(); returns after the generations in flight are finished or cancelled.
  // The engine runs on the calling thread (best the one that loaded the model), HTTP on others.
  void listen();
  // Stops accepting, cancels the generations in flight. Safe from any thread.
  void stop();
  const Metrics& metrics() const { return metrics_; }
  SchedulerStats engine_stats() const { return scheduler_->stats(); }
  // The prefix cache's counters (all zero when it is off).
  PrefixCache::Stats prefix_cache_stats() const;
  // The scheduler's options as resolved (the default pool size filled in).
  const SchedulerOptions& scheduler_options() const { return scheduler_->options(); }

 private:
  void handle_completion(const HttpRequest& req, HttpResponse& res, bool chat);
  bool authorised(const HttpRequest& req) const;

  const LoadedModel& target_;
  const LoadedModel* draft_;
  ServerOptions options_;
  std::string model_id_;
  std::unique_ptr<HttpServer> http_;
  Metrics metrics_;
  std::atomic<int> admitted_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<long long> request_counter_{0};
  std::unique_ptr<PrefixCache> prefix_cache_, draft_prefix_cache_;  // null when off
  std::unique_ptr<Scheduler> scheduler_;
};

}  // namespace dapx::server
