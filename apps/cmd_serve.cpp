// dapx serve: the OpenAI-compatible HTTP server (src/server/).
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <thread>

#include "common.h"
#include "method_flags.h"
#include "server/server.h"
#include "util/error.h"

namespace dapx::cli {
namespace {

struct ServeFlags {
  std::string model, draft, api_key_file, kv_memory, prefix_cache, prefix_cache_dir_bytes;
  server::ServerOptions opts;
  MethodFlags method_flags;
  RuntimeFlags runtime;
};

std::string read_key(const std::string& path) {
  std::string key = read_file(path);
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' '))
    key.pop_back();
  if (key.empty()) throw Error("the API key file '" + path + "' is empty");
  return key;
}

void run(ServeFlags& f) {
  // SIGINT/SIGTERM go to one thread that stops the server; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const ComputeOptions copts = apply_runtime_flags(f.runtime);
  const auto [target, draft] = load_target_and_draft(f.model, f.draft, copts);
  f.opts.method_params = method_params_from_flags(f.opts.method, f.method_flags);
  if (!f.api_key_file.empty()) f.opts.api_key = read_key(f.api_key_file);
  if (!f.kv_memory.empty()) f.opts.kv_memory = parse_bytes(f.kv_memory, "--kv-memory");
  if (f.prefix_cache == "0")
    f.opts.prefix_cache = 0;
  else if (!f.prefix_cache.empty())
    f.opts.prefix_cache = parse_bytes(f.prefix_cache, "--prefix-cache");
  if (!f.prefix_cache_dir_bytes.empty())
    f.opts.prefix_cache_dir_bytes =
        f.prefix_cache_dir_bytes == "0"
            ? 0
            : parse_bytes(f.prefix_cache_dir_bytes, "--prefix-cache-dir-bytes");
  server::Server srv(*target, draft.get(), f.opts);
  const int port = srv.bind();
  const int64_t dir_max = srv.prefix_cache_stats().disk_max_bytes;
  const std::string dir_bound =
      dir_max > 0 ? "up to " + std::to_string(dir_max >> 20) + " MiB" : "unbounded";
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::cerr << "[dapx serve] stopping (signal " << sig << ")\n";
    srv.stop();
  });
  std::cerr << "[dapx serve] " << target->dir.string()
            << (draft ? " + draft " + draft->dir.string() : "") << " on http://" << f.opts.host
            << ":" << port << " (default method " << f.opts.method
            << (f.opts.api_key.empty() ? ", no API key" : ", API key required") << ", queue "
            << f.opts.max_queue << ", up to " << srv.scheduler_options().parallel
            << " sequences per decode step, KV pool "
            << srv.scheduler_options().kv_memory / (1 << 20) << " MiB, prefix cache "
            << srv.prefix_cache_stats().max_bytes / (1 << 20) << " MiB"
            << (f.opts.prefix_cache_dir.empty() ? ""
                                                : " + " + f.opts.prefix_cache_dir + " " + dir_bound)
            << ", max_tokens default 16, at most " << f.opts.max_tokens << ")\n"
            << std::flush;
  srv.listen();
  pthread_kill(waiter.native_handle(), SIGTERM);  // wakes the waiter if it is still waiting
  waiter.join();
  std::cerr << "[dapx serve] stopped\n";
}

}  // namespace

void register_serve(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* cmd =
      app.add_subcommand("serve",
                         "OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions, "
                         "/v1/models, /health, /metrics) with the method chosen per request");
  cmd->add_option("--model,-m", f->model, "Target model: a Hugging Face directory")->required();
  cmd->add_option("--draft,-d", f->draft, "Draft model directory (for draft-based methods)");
  cmd->add_option("--host", f->opts.host, "Address to listen on (default 127.0.0.1)");
  cmd->add_option("--port", f->opts.port, "Port (0: any free port, printed at start)")
      ->check(CLI::Range(0, 65535).description("an integer in [0, 65535]"));
  cmd->add_option("--method", f->opts.method,
                  "Default method of requests without dapx.method: " + method_list_help());
  add_method_flags(*cmd, f->method_flags);
  cmd->add_option("--api-key-file", f->api_key_file,
                  "File holding the API key clients must send as 'Authorization: Bearer KEY'");
  cmd->add_option("--max-queue", f->opts.max_queue,
                  "Requests admitted at once (running + waiting); more get 503 (default 16)")
      ->check(CLI::Range(1, 4096).description("an integer in [1, 4096]"));
  cmd->add_option("--parallel", f->opts.parallel,
                  "Sequences decoding at once, one batched step for all (default 16; the KV "
                  "pool usually binds first)")
      ->check(CLI::Range(1, 256).description("an integer in [1, 256]"));
  cmd->add_option("--kv-memory", f->kv_memory,
                  "KV memory pool for all running requests, e.g. 2G or 512M (default: a quarter "
                  "of physical memory). A request counts the bytes it will hold: its compressed "
                  "cache plus its new tokens; one that can never fit gets 400");
  cmd->add_option("--prefix-cache", f->prefix_cache,
                  "RAM for the prefix cache, e.g. 1G (default: an eighth of physical memory; 0: "
                  "off): the full K/V of prompt blocks, reused by later requests that start with "
                  "them (a second question on a document, the next chat turn)");
  cmd->add_option("--prefix-cache-dir", f->opts.prefix_cache_dir,
                  "Also keep the prefix cache's blocks in this folder (one safetensors file per "
                  "block, named for the model): a restarted server, or dapx generate with the "
                  "same folder, reuses them; bad or foreign files are logged and recomputed");
  cmd->add_option("--prefix-cache-dir-bytes", f->prefix_cache_dir_bytes,
                  "Bound of --prefix-cache-dir's block files, e.g. 20G (default: half of the "
                  "disk's free space at start, counting the folder's blocks as free; 0: "
                  "unbounded): after a write, the least recently used files are deleted");
  cmd->add_option("--max-body-bytes", f->opts.max_body_bytes,
                  "Largest request body (default 8 MiB)")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30).description("an integer in [1024, 2^30]"));
  cmd->add_option("--max-tokens", f->opts.max_tokens,
                  "Largest max_tokens a request may ask (default 4096)")
      ->check(CLI::Range(1, 1 << 20).description("an integer in [1, 1048576]"));
  cmd->add_option("--max-connections", f->opts.http.max_connections,
                  "Open connections at once; more are answered 503 and closed (default 1024)")
      ->check(CLI::Range(1, 65536).description("an integer in [1, 65536]"));
  cmd->add_option("--request-timeout", f->opts.http.head_timeout_s,
                  "Seconds a client has to send a request's head (line and headers); slower "
                  "ones get 408 and are closed (default 10; a body has 60 s more)")
      ->check(real_range(0.1, 3600));
  cmd->add_option("--idle-timeout", f->opts.http.idle_timeout_s,
                  "Seconds a keep-alive connection may wait for its next request (default 15)")
      ->check(real_range(0.1, 3600));
  cmd->add_flag("--log-prompts", f->opts.log_prompts, "Include prompt text in the access log");
  add_runtime_flags(*cmd, f->runtime);
  cmd->callback([f] { run(*f); });
}

}  // namespace dapx::cli
