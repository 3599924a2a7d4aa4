#include "server/server.h"

#include <chrono>
#include <ctime>
#include <iostream>
#include <random>
#include <thread>

#include "engine/generator.h"
#include "methods/catalogue.h"
#include "methods/kv_plan.h"
#include "util/error.h"

namespace dapx::server {
namespace {

// Compares without an early exit, so the time taken does not reveal how much of a guessed key
// was right.
bool constant_time_equal(const std::string& given, const std::string& expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i)
    diff |= static_cast<unsigned char>((i < given.size() ? given[i] : 0) ^ expected[i]);
  return diff == 0;
}

void send_error(HttpResponse& res, const ApiError& e) {
  res.status = e.status();
  res.set_content(e.body().dump(), "application/json");
}

// OpenAI's values: "length", else "stop" (EOS, a stop string). A generation cut short by
// shutdown never gets one: it is answered as an error (cut_short below).
std::string finish_reason_of(const std::string& reason) {
  return reason == "length" ? "length" : "stop";
}

// A generation the server's shutdown cut short: 503 with OpenAI's error object, the partial
// text and its token count beside it, so a client can tell it from a finished answer.
ApiError shutdown_error() {
  return ApiError(503, "the server is shutting down: the generation was cut short", "",
                  "shutting_down", "server_error");
}

HttpLimits http_limits(const ServerOptions& o) {
  HttpLimits l = o.http;
  l.max_body_bytes = o.max_body_bytes;
  return l;
}

long long unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Prompt tokens the target read: fewer than the prompt's for prompt methods.
long long prompt_tokens_kept(const GenerationResult& g) {
  const auto it = g.method_info.find("kept_prompt_positions");
  return it != g.method_info.end() ? static_cast<long long>(it->size())
                                   : static_cast<long long>(g.stats.prompt_tokens);
}

// A generation admitted to the queue: holds its slot until destroyed.
class Slot {
 public:
  Slot(std::atomic<int>& admitted, Metrics& metrics) : admitted_(admitted), metrics_(metrics) {}
  ~Slot() { metrics_.set_queue_depth(--admitted_); }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

 private:
  std::atomic<int>& admitted_;
  Metrics& metrics_;
};

// Everything a request needs before it waits for its turn: errors surface here, as 4xx.
struct Prepared {
  CompletionRequest req;
  std::vector<int> prompt;
  std::string method;
  nlohmann::json params;  // the method's, as resolved
  std::unique_ptr<Method> impl;
  GenerationParams gen;
  std::string id;
  std::shared_ptr<Ticket> ticket;  // the generation, once submitted
};

}  // namespace

Server::Server(const LoadedModel& target, const LoadedModel* draft, ServerOptions options)
    : target_(target),
      draft_(draft),
      options_(std::move(options)),
      model_id_(target.dir.filename().string()),
      http_(std::make_unique<HttpServer>(http_limits(options_))) {
  if (options_.max_queue < 1) throw Error("max_queue must be >= 1");
  if (model_id_.empty()) model_id_ = target.dir.parent_path().filename().string();
  MethodOptions mo;
  mo.draft = draft_ ? &draft_->transformer : nullptr;
  make_method(options_.method, options_.method_params, mo);  // a bad default fails at start
  SchedulerOptions so;
  so.parallel = options_.parallel;
  so.kv_memory = options_.kv_memory;
  so.max_waiting = options_.max_queue;
  so.prefill_tokens = target_.transformer.options().prefill_chunk;  // --prefill-chunk
  so.own_thread = false;  // listen() runs the engine on its thread
  if (options_.admit_before_decode) so = SchedulerOptions::admit_before_decode(so);
  scheduler_ = std::make_unique<Scheduler>(target_, so);
  const int64_t prefix_bytes =
      options_.prefix_cache < 0 ? default_kv_memory() / 2 : options_.prefix_cache;
  if (prefix_bytes > 0 || !options_.prefix_cache_dir.empty()) {
    // blocks of one prefill chunk: a hit's suffix is computed as cold
    prefix_cache_ =
        std::make_unique<PrefixCache>(prefix_bytes, target_.transformer.options().prefill_chunk);
    if (draft_) {  // the draft's blocks, sized to hold as many tokens as the target's
      const auto per_token = [](const LoadedModel& m) {
        return kv_shape(m.config, c10::elementSize(m.transformer.options().kv_dtype))
                   .entry_bytes() *
               m.config.num_layers;
      };
      draft_prefix_cache_ =
          std::make_unique<PrefixCache>(prefix_bytes / per_token(target_) * per_token(*draft_),
                                        draft_->transformer.options().prefill_chunk);
    }
    if (!options_.prefix_cache_dir.empty()) {  // one folder: file names carry the model
      attach_prefix_disk(*prefix_cache_, target_, options_.prefix_cache_dir);
      if (draft_prefix_cache_)
        attach_prefix_disk(*draft_prefix_cache_, *draft_, options_.prefix_cache_dir);
      if (options_.prefix_cache_dir_bytes >= 0)  // both bound the whole folder
        for (PrefixCache* c : {prefix_cache_.get(), draft_prefix_cache_.get()})
          if (c) c->set_disk_max_bytes(options_.prefix_cache_dir_bytes);
    }
  }
  http_->set_error_writer([](int status, const std::string& message, const std::string& param,
                             const std::string& code, HttpResponse& res) {
    send_error(res, ApiError(status, message, param, code,
                             status >= 500 ? "server_error" : "invalid_request_error"));
  });

  http_->route("GET", "/health", [this](const HttpRequest&, HttpResponse& res) {
    res.set_content(nlohmann::json({{"status", stopping_ ? "stopping" : "ok"},
                                    {"queue_depth", admitted_.load()}})
                        .dump(),
                    "application/json");
  });
  http_->route("GET", "/metrics", [this](const HttpRequest&, HttpResponse& res) {
    const SchedulerStats st = scheduler_->stats();
    EngineGauges g;
    g.running = st.running;
    g.waiting = st.waiting;
    g.pool_used = st.pool_used;
    g.pool_limit = st.pool_limit;
    g.pool_peak = st.pool_peak;
    g.steps = st.steps;
    g.step_seconds = st.step_seconds;
    for (const auto& [size, n] : st.batch_sizes) g.batch_sizes[size] = n;
    const PrefixCache::Stats pc = prefix_cache_stats();
    g.prefix_hits = pc.hits;
    g.prefix_misses = pc.misses;
    g.prefix_hit_tokens = pc.hit_tokens;
    g.prefix_bytes = pc.bytes;
    g.prefix_limit = pc.max_bytes;
    g.prefix_blocks = pc.blocks;
    g.prefix_evictions = pc.evictions;
    g.prefix_disk_reads = pc.disk_reads;
    g.prefix_disk_writes = pc.disk_writes;
    g.prefix_disk_dropped = pc.disk_dropped;
    g.prefix_disk_evicted =  // the folder's files, whichever model's cache evicted them
        pc.disk_evicted + (draft_prefix_cache_ ? draft_prefix_cache_->stats().disk_evicted : 0);
    res.set_content(metrics_.text() + engine_text(g), "text/plain; version=0.0.4");
  });
  http_->route("GET", "/v1/models", [this](const HttpRequest& req, HttpResponse& res) {
    if (!authorised(req))
      return send_error(res, ApiError(401, "missing or wrong API key", "", "invalid_api_key",
                                      "authentication_error"));
    res.set_content(nlohmann::json({{"object", "list"},
                                    {"data",
                                     {{{"id", model_id_},
                                       {"object", "model"},
                                       {"created", 0},
                                       {"owned_by", "dapx"},
                                       {"dapx",
                                        {{"default_method", options_.method},
                                         {"draft", draft_ != nullptr},
                                         {"methods", catalogue_json()}}}}}}})
                        .dump(),
                    "application/json");
  });
  http_->route("POST", "/v1/completions", [this](const HttpRequest& req, HttpResponse& res) {
    handle_completion(req, res, false);
  });
  http_->route("POST", "/v1/chat/completions", [this](const HttpRequest& req, HttpResponse& res) {
    handle_completion(req, res, true);
  });
}

Server::~Server() = default;

bool Server::authorised(const HttpRequest& req) const {
  if (options_.api_key.empty()) return true;
  const std::string header = req.header("Authorization");
  const std::string prefix = "Bearer ";
  if (header.compare(0, prefix.size(), prefix) != 0) return false;
  return constant_time_equal(header.substr(prefix.size()), options_.api_key);
}

PrefixCache::Stats Server::prefix_cache_stats() const {
  return prefix_cache_ ? prefix_cache_->stats() : PrefixCache::Stats{};
}

int Server::bind() {
  try {
    options_.port = http_->bind(options_.host, options_.port);
  } catch (const std::runtime_error& e) {
    throw Error(e.what());
  }
  return options_.port;
}

void Server::listen() {
  // The engine runs on this thread (a command calls listen() on the thread that loaded the
  // model, so one thread of the process runs OpenMP regions: scheduler.h), HTTP on another.
  std::exception_ptr http_error;
  std::thread http([&] {
    try {
      http_->listen();
    } catch (...) {
      http_error = std::current_exception();
      scheduler_->stop();
    }
  });
  scheduler_->run_here();  // until stop()
  http_->stop();
  http.join();
  if (http_error) std::rethrow_exception(http_error);
}

void Server::stop() {
  stopping_ = true;
  scheduler_->stop();  // every sequence ends at its next token, reported as cancelled
  http_->stop();
}

void Server::handle_completion(const HttpRequest& req, HttpResponse& res, bool chat) {
  const std::string endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
  const auto started = std::chrono::steady_clock::now();
  auto prepared = std::make_shared<Prepared>();
  Prepared& p = *prepared;
  // Captures by value: a streamed request logs from its content provider, after this returns.
  const auto log = [this, endpoint, started, prepared](int status, const std::string& method,
                                                       const GenerationResult* g) {
    GenerationRecord rec;
    rec.endpoint = endpoint;
    rec.method = method;
    rec.status = status;
    std::string line = "[dapx serve] POST " + endpoint + " " + std::to_string(status) +
                       " method=" + (method.empty() ? "-" : method);
    if (g) {
      rec.prompt_tokens = g->stats.prompt_tokens;
      rec.prompt_tokens_kept = prompt_tokens_kept(*g);
      rec.generated_tokens = g->stats.generated_tokens;
      rec.kv_bytes = g->stats.kv_bytes;
      rec.kv_bytes_full = g->stats.kv_bytes_full;
      rec.ttft_s = g->stats.ttft_s;
      rec.total_s = g->stats.total_s;
      line += " prompt=" + std::to_string(rec.prompt_tokens) +
              " kept=" + std::to_string(rec.prompt_tokens_kept) +
              " generated=" + std::to_string(rec.generated_tokens) +
              " finish=" + g->stats.finish_reason + " queue=" + std::to_string(g->stats.queue_s) +
              "s ttft=" + std::to_string(rec.ttft_s) + "s";
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    line += " wall=" + std::to_string(wall) + "s";
    if (options_.log_prompts && !prepared->prompt.empty())
      line += " prompt_text=" + nlohmann::json(target_.tokenizer.decode(prepared->prompt)).dump();
    metrics_.record(rec);
    std::cerr << line + "\n" << std::flush;
  };

  try {
    if (!authorised(req))
      throw ApiError(401, "missing or wrong API key (send Authorization: Bearer KEY)", "",
                     "invalid_api_key", "authentication_error");
    if (stopping_)
      throw ApiError(503, "the server is shutting down", "", "shutting_down", "server_error");
    RequestLimits limits;
    limits.max_tokens = options_.max_tokens;
    p.req = parse_completion_request(req.body, chat, limits);
    // The prompt, in the model's chat format for chat requests.
    std::string text = p.req.prompt;
    if (chat) {
      std::vector<ChatMessage> msgs;
      for (const Message& m : p.req.messages) msgs.push_back({m.role, m.content});
      text = apply_chat_format(target_.chat_format, msgs, true);
    }
    if (!p.req.prompt_tokens.empty()) {  // token ids: checked against the vocabulary
      for (size_t i = 0; i < p.req.prompt_tokens.size(); ++i)
        if (p.req.prompt_tokens[i] >= target_.config.vocab_size)
          throw ApiError(400,
                         "prompt[" + std::to_string(i) +
                             "] = " + std::to_string(p.req.prompt_tokens[i]) +
                             " is not a token of the model (vocabulary of " +
                             std::to_string(target_.config.vocab_size) + ")",
                         "prompt");
      p.prompt = p.req.prompt_tokens;
    } else {
      p.prompt = target_.tokenizer.encode(text);
    }
    const int64_t context = target_.config.max_position_embeddings;
    if (static_cast<int64_t>(p.prompt.size()) + p.req.max_tokens > context)
      throw ApiError(400,
                     "the prompt has " + std::to_string(p.prompt.size()) + " tokens; with " +
                         std::to_string(p.req.max_tokens) +
                         " new tokens that exceeds the model's context of " +
                         std::to_string(context),
                     chat ? "messages" : "prompt", "context_length_exceeded");
    // The method: the request's, or the server's default with its parameters.
    p.method = p.req.method.empty() ? options_.method : p.req.method;
    nlohmann::json params = p.req.method.empty() || p.req.method == options_.method
                                ? options_.method_params
                                : nlohmann::json::object();
    for (const auto& [k, v] : p.req.method_params.items()) params[k] = v;
    p.params = params;
    try {
      const MethodSpec& spec = method_spec(p.method);
      if (spec.needs_draft && !draft_)
        throw ApiError(400,
                       "method '" + p.method +
                           "' needs a draft model; this server was started without --draft",
                       "dapx.method", "draft_required");
      MethodOptions mo;
      mo.draft = draft_ ? &draft_->transformer : nullptr;
      p.impl = make_method(p.method, params, mo);
    } catch (const Error& e) {
      throw ApiError(400, e.what(), "dapx", "invalid_method");
    }
    p.gen.max_new_tokens = p.req.max_tokens;
    p.gen.sampling.temperature = static_cast<float>(p.req.temperature);
    p.gen.sampling.top_p = static_cast<float>(p.req.top_p);
    p.gen.sampling.top_k = p.req.top_k;
    p.gen.sampling.seed = p.req.has_seed ? p.req.seed : std::random_device{}();
    p.gen.stop = p.req.stop;
    p.gen.ignore_eos = p.req.ignore_eos;
    p.gen.prefix_cache = prefix_cache_.get();
    p.gen.draft_prefix_cache = draft_prefix_cache_.get();
    p.id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(++request_counter_);
    // Admission: running + waiting at most max_queue.
    if (admitted_.fetch_add(1) >= options_.max_queue) {
      --admitted_;
      res.set_header("Retry-After", "1");
      throw ApiError(
          503,
          "the queue is full (" + std::to_string(options_.max_queue) + " requests); retry later",
          "", "queue_full", "server_error");
    }
    metrics_.set_queue_depth(admitted_.load());
    // Said once per request: otherwise its cached_tokens of 0 looks like a cache miss.
    if (prefix_cache_ && !method_spec(p.method).reuses_prefix_cache)
      std::cerr << "[dapx serve] " + p.id + ": method " + p.method +
                       " does not reuse the prefix cache for a prompt it compresses (it needs "
                       "every prompt query's attention)\n"
                << std::flush;
  } catch (const ApiError& e) {
    send_error(res, e);
    log(e.status(), p.method, nullptr);
    return;
  }
  auto slot = std::make_shared<Slot>(admitted_, metrics_);
  try {  // into the engine's waiting line, with the KV bytes the request will hold
    const auto& kv_dtype = target_.transformer.options().kv_dtype;
    const KVShape target_kv = kv_shape(target_.config, c10::elementSize(kv_dtype));
    const KVShape draft_kv =
        draft_ ? kv_shape(draft_->config, c10::elementSize(draft_->transformer.options().kv_dtype))
               : KVShape{};
    const KVPlan plan = plan_kv(p.method, p.params, static_cast<int64_t>(p.prompt.size()),
                                p.gen.max_new_tokens, target_kv, draft_ ? &draft_kv : nullptr);
    p.ticket = scheduler_->submit(std::move(p.impl), p.prompt, p.gen,
                                  KVReservation{plan.bytes, plan.peak_bytes});
  } catch (const QueueFull& e) {
    res.set_header("Retry-After", "1");
    send_error(res, ApiError(503, e.what(), "", "queue_full", "server_error"));
    log(503, p.method, nullptr);
    return;
  } catch (const Error& e) {
    send_error(res, ApiError(400, e.what(), "", "kv_memory_exceeded"));
    log(400, p.method, nullptr);
    return;
  }

  const auto usage = [prepared](const GenerationResult& g) {
    const long long kept = prompt_tokens_kept(g);
    nlohmann::json u{{"prompt_tokens", g.stats.prompt_tokens},
                     {"prompt_tokens_details", {{"cached_tokens", g.stats.cached_tokens}}},
                     {"completion_tokens", g.stats.generated_tokens},
                     {"total_tokens", g.stats.prompt_tokens + g.stats.generated_tokens},
                     {"prompt_tokens_kept", kept},
                     {"kv_bytes", g.stats.kv_bytes},
                     {"kv_bytes_full", g.stats.kv_bytes_full},
                     {"peak_rss_bytes", g.stats.peak_rss_bytes},
                     {"tensor_peak_bytes", g.stats.tensor_peak_bytes},
                     {"method", prepared->method}};
    if (g.stats.gpu_peak_bytes >= 0) u["gpu_peak_bytes"] = g.stats.gpu_peak_bytes;
    return u;
  };
  const std::string model = model_id_;  // the served model, whatever name the request used

  if (!p.req.stream) {
    // Nothing is written until the answer is complete, so a client that leaves is noticed by
    // looking at its connection between tokens (a streamed one fails a write instead).
    const auto& client_gone = req.client_gone;
    bool gone = false;
    while (!p.ticket->wait_end_for(0.05))
      if (stopping_ || client_gone()) {
        gone = gone || client_gone();
        p.ticket->cancel();
      }
    GenerationResult g;
    try {
      g = p.ticket->result();
    } catch (const Error& e) {
      send_error(res, ApiError(400, e.what(), "", "generation_failed"));
      log(400, p.method, nullptr);
      return;
    } catch (const std::exception& e) {  // a LibTorch failure: the server keeps running
      send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "",
                               "internal_error", "server_error"));
      log(500, p.method, nullptr);
      return;
    }
    if (gone && g.stats.prefill_s == 0) {
      log(499, p.method, nullptr);  // it left while waiting for its turn
      return;
    }
    if (!gone && g.stats.finish_reason == "cancelled") {  // cut short by the shutdown
      nlohmann::json body = shutdown_error().body();
      body["partial"] = {{"text", g.text}, {"completion_tokens", g.stats.generated_tokens}};
      res.status = 503;
      res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                      "application/json");
      log(503, p.method, &g);
      return;
    }
    nlohmann::json choice = {{"index", 0},
                             {"finish_reason", finish_reason_of(g.stats.finish_reason)}};
    if (chat)
      choice["message"] = {{"role", "assistant"}, {"content", g.text}};
    else
      choice["text"] = g.text, choice["logprobs"] = nullptr;
    const nlohmann::json body = {{"id", p.id},
                                 {"object", chat ? "chat.completion" : "text_completion"},
                                 {"created", unix_now()},
                                 {"model", model},
                                 {"choices", {choice}},
                                 {"usage", usage(g)}};
    res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                    "application/json");
    log(gone ? 499 : 200, p.method, &g);  // 499: the client went away
    return;
  }

  // Streaming: server-sent events in OpenAI's chunk format, then data: [DONE]. The content
  // provider (after this handler returns) relays the scheduler's text as it comes.
  res.set_header("Cache-Control", "no-cache");
  res.content_type = "text/event-stream";
  res.stream = [this, prepared, slot, chat, model, usage, log](const HttpResponse::Write& write) {
    Prepared& p = *prepared;
    std::atomic<bool> cancel{false};  // the client went away: its sequence ends
    const long long created = unix_now();
    const auto chunk = [&](const nlohmann::json& delta_or_text, const nlohmann::json& finish) {
      nlohmann::json c = {{"index", 0}, {"finish_reason", finish}};
      if (chat)
        c["delta"] = delta_or_text;
      else
        c["text"] = delta_or_text, c["logprobs"] = nullptr;
      return nlohmann::json{{"id", p.id},
                            {"object", chat ? "chat.completion.chunk" : "text_completion"},
                            {"created", created},
                            {"model", model},
                            {"choices", {c}}};
    };
    const auto send = [&](const std::string& data) {
      const std::string event = "data: " + data + "\n\n";
      if (cancel || !write(event)) cancel = true;
    };
    const auto dump = [](const nlohmann::json& j) {
      return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    };
    GenerationResult g;
    try {
      if (chat) send(dump(chunk({{"role", "assistant"}, {"content", ""}}, nullptr)));
      for (;;) {
        std::string piece;
        const Ticket::Wait w = p.ticket->next_text_for(piece, 0.05);
        if (w == Ticket::Wait::kEnded) break;
        if (w == Ticket::Wait::kText && !cancel)
          send(dump(
              chunk(chat ? nlohmann::json{{"content", piece}} : nlohmann::json(piece), nullptr)));
        if (stopping_ || cancel) p.ticket->cancel();
      }
      g = p.ticket->result();
    } catch (const std::exception& e) {  // dapx::Error, or a LibTorch failure (500)
      const bool ours = dynamic_cast<const Error*>(&e) != nullptr;
      send(ApiError(ours ? 400 : 500, e.what(), "", ours ? "generation_failed" : "internal_error")
               .body()
               .dump());
      send("[DONE]");
      log(ours ? 400 : 500, p.method, nullptr);
      return;
    }
    if (g.stats.finish_reason == "cancelled" && !cancel) {  // cut short by the shutdown
      send(shutdown_error().body().dump());
      send("[DONE]");
      log(503, p.method, &g);
      return;
    }
    nlohmann::json last = chunk(chat ? nlohmann::json::object() : nlohmann::json(""),
                                finish_reason_of(g.stats.finish_reason));
    last["usage"] = usage(g);
    send(dump(last));
    send("[DONE]");
    log(cancel ? 499 : 200, p.method, &g);  // 499: the client went away
  };
}

}  // namespace dapx::server
