// dapx bench-serve: the server under load. Starts `dapx serve`'s server in this process on a
// loopback port and, for each method and each number of concurrent clients, has every client
// send its requests one after another (streaming, greedy, ignore_eos so each generates exactly
// --max-tokens). Reports aggregate generated tokens/s and requests/s, time to first token and
// time per output token (p50/p90/p99), the KV pool's peak and the process's peak RSS, and the
// decode step's rate against the machine's read bandwidth, measured in the same run. Writes
// DIR/serve.json (machine, commit, command), serve.csv, serve.svg and prints a table.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "bench/bench_output.h"
#include "bench/bench_prompt.h"
#include "bench/cpu_info.h"
#include "bench/machine_limits.h"
#include "common.h"
#include "engine/stats.h"
#include "methods/catalogue.h"
#include "server/server.h"
#include "util/error.h"
#include "util/stopwatch.h"

namespace dapx::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Flags {
  std::string model, draft, out, kv_memory, params, replot;  // params: JSON object for every method
  std::vector<int> clients = {1, 2, 4, 8};
  std::vector<std::string> methods = {"full"};
  int prompt_tokens = 32, max_tokens = 64, requests = 2, parallel = 16;
  int questions = 0;   // > 0: the document mode (one document, this many questions in turn)
  int capacity = 0;    // > 0: the capacity mode (this many requests about one document at once)
  int64_t budget = 0;  // 0: each method's default
  RuntimeFlags runtime;
};

// One request as a client saw it.
struct Sample {
  bool ok = false;
  std::string error;
  double ttft_s = 0, total_s = 0;
  int tokens = 0;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double at = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(at), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (at - static_cast<double>(lo));
}

// The request's dapx object: --budget as the method's budget parameter, then those of --params
// the method declares.
void add_method_params(json& body, const Flags& f, const std::string& method) {
  const MethodSpec& spec = method_spec(method);
  if (f.budget > 0 && !spec.budget_param().empty()) body["dapx"][spec.budget_param()] = f.budget;
  if (f.params.empty()) return;
  const json extra = json::parse(f.params, nullptr, false);
  if (!extra.is_object()) throw Error("--params must be a JSON object, got '" + f.params + "'");
  for (const auto& [k, v] : extra.items())
    if (spec.param(k)) body["dapx"][k] = v;
}

// A streamed completion: the first text event is the first token's arrival.
// `read_timeout_s`: the longest silence between two pieces of the answer.
Sample stream_one(int port, const json& body, int read_timeout_s = 600) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(read_timeout_s, 0);
  Sample s;
  std::string buffer;
  const Stopwatch clock;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    for (size_t at; (at = buffer.find("\n\n")) != std::string::npos; buffer.erase(0, at + 2)) {
      const std::string event = buffer.substr(0, at);
      if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
      const json j = json::parse(event.substr(6), nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("error")) s.error = j["error"].value("message", "error");
      if (s.ttft_s == 0 && j.contains("choices") && !j["choices"][0].value("text", "").empty())
        s.ttft_s = clock.seconds();
      if (j.contains("usage")) s.tokens = j["usage"].value("completion_tokens", 0);
    }
    return true;
  };
  const auto r = c.send(req);
  s.total_s = clock.seconds();
  if (!r) {
    s.error = "no answer (" + httplib::to_string(r.error()) + ")";
  } else if (r->status != 200) {
    s.error = "HTTP " + std::to_string(r->status) + ": " + r->body + buffer;  // (streamed to us)
  } else if (s.error.empty()) {
    s.ok = s.tokens > 0;
    if (s.ttft_s == 0) s.ttft_s = s.total_s;
  }
  return s;
}

// `dapx serve`'s server in this process on a free loopback port. `load` (the clients) runs on
// a thread of its own while this thread runs the server's engine: the thread that loaded the
// model, so one thread of the process runs OpenMP regions (server.h, scheduler.h). The server
// stops when `load` returns or throws (rethrown here).
void with_local_server(const LoadedModel& target, const LoadedModel* draft, server::ServerOptions o,
                       const std::function<void(server::Server&, int port)>& load) {
  o.host = "127.0.0.1";
  o.port = 0;
  server::Server srv(target, draft, o);
  const int port = srv.bind();
  std::exception_ptr error;
  std::thread driver([&] {
    try {
      load(srv, port);
    } catch (...) {
      error = std::current_exception();
    }
    srv.stop();
  });
  try {
    srv.listen();
  } catch (...) {
    srv.stop();
    driver.join();
    throw;
  }
  driver.join();
  if (error) std::rethrow_exception(error);
}

// One (method, clients) case on a fresh server (its pool peak and step counters start at 0).
json run_case(const LoadedModel& target, const LoadedModel* draft, const Flags& f,
              const std::string& method, int clients, const std::string& prompt,
              int64_t kv_memory) {
  server::ServerOptions o;
  o.method = method;
  o.parallel = f.parallel;
  o.kv_memory = kv_memory;
  o.max_queue = std::max(16, 2 * clients);
  o.max_tokens = f.max_tokens;
  json body = {{"prompt", prompt}, {"max_tokens", f.max_tokens}, {"temperature", 0},
               {"stream", true},   {"ignore_eos", true},         {"dapx", {{"method", method}}}};
  add_method_params(body, f, method);

  std::vector<std::vector<Sample>> per_client(clients);
  double seconds = 0;
  SchedulerStats st;
  with_local_server(target, draft, o, [&](server::Server& srv, int port) {
    reset_peak_rss();
    const Stopwatch wall;
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        for (int r = 0; r < f.requests; ++r) {
          // Every request's prompt is its own (a first line naming it), so no request finds
          // another's blocks in the prefix cache: this mode measures batching, not reuse.
          json mine = body;
          mine["prompt"] = "Request " + std::to_string(c) + "-" + std::to_string(r) + ".\n" +
                           body["prompt"].get<std::string>();
          per_client[c].push_back(stream_one(port, mine));
        }
      });
    for (auto& t : threads) t.join();
    seconds = wall.seconds();
    st = srv.engine_stats();
  });

  std::vector<double> ttft, tpot;
  int64_t tokens = 0, ok = 0;
  std::string first_error;
  for (const auto& samples : per_client)
    for (const Sample& s : samples) {
      if (!s.ok) {
        if (first_error.empty()) first_error = s.error.empty() ? "no tokens" : s.error;
        continue;
      }
      ++ok;
      tokens += s.tokens;
      ttft.push_back(s.ttft_s);
      if (s.tokens > 1) tpot.push_back((s.total_s - s.ttft_s) / (s.tokens - 1));
    }
  const double step_s = st.steps > 0 ? st.step_seconds / static_cast<double>(st.steps) : 0;
  double mean_batch = 0;
  for (const auto& [size, n] : st.batch_sizes) mean_batch += double(size) * double(n);
  if (st.steps > 0) mean_batch /= static_cast<double>(st.steps);
  return {
      {"method", method},
      {"clients", clients},
      {"requests", clients * f.requests},
      {"ok", ok},
      {"error", first_error.empty() ? json(nullptr) : json(first_error)},
      {"wall_s", seconds},
      {"tokens_per_s", tokens / seconds},
      {"requests_per_s", ok / seconds},
      {"ttft_p50_s", percentile(ttft, 50)},
      {"ttft_p90_s", percentile(ttft, 90)},
      {"ttft_p99_s", percentile(ttft, 99)},
      {"tpot_p50_s", percentile(tpot, 50)},
      {"tpot_p90_s", percentile(tpot, 90)},
      {"tpot_p99_s", percentile(tpot, 99)},
      {"decode_steps", st.steps},
      {"mean_batch", mean_batch},
      {"step_s", step_s},
      {"step_weight_gbs", step_s > 0 ? target.transformer.decode_weight_bytes() / step_s / 1e9 : 0},
      {"pool_peak_bytes", st.pool_peak},
      {"pool_limit_bytes", st.pool_limit},
      {"peak_rss_bytes", peak_rss_bytes()}};
}

// Question q (from 0) about `document`, streamed, greedy, exactly --max-tokens new tokens.
json question_body(const Flags& f, const std::string& method, const std::string& document, int q) {
  json body = {{"prompt", document + "\n\nQuestion " + std::to_string(q + 1) +
                              ": what does the text say about the river, part " +
                              std::to_string(7 * q + 3) + "?\nAnswer:"},
               {"max_tokens", f.max_tokens},
               {"temperature", 0},
               {"ignore_eos", true},
               {"stream", true},
               {"dapx", {{"method", method}}}};
  add_method_params(body, f, method);
  return body;
}

// The capacity mode: how many concurrent requests about one document of --prompt-tokens tokens
// the KV pool admits, measured by the server's own admission. A first question fills the prefix
// cache (so the others prefill only their question and compress their own copy); then
// `capacity` requests, each its own question, are sent at once to a server that prefills every
// request the pool admits before its next decode step (none ends early). Once every request
// is running or waiting and the pool refuses the next one, the running ones are counted.
constexpr int kAdmissionLimitS = 7200;

json run_capacity(const LoadedModel& target, const LoadedModel* draft, const Flags& f,
                  const std::string& method, const std::string& document, int64_t kv_memory) {
  server::ServerOptions o;
  o.method = method;
  o.max_tokens = f.max_tokens;
  o.kv_memory = kv_memory;
  o.parallel = f.capacity;
  o.max_queue = f.capacity + 1;
  o.http.max_active = f.capacity + 16;
  o.http.max_connections = std::max(o.http.max_connections, f.capacity + 16);
  o.admit_before_decode = true;
  SchedulerStats st;
  std::pair<int64_t, int64_t> held{0,
                                   0};  // running sequences and their pool bytes, seen at the peak
  double first_s = 0, admit_s = 0;
  int64_t rss = 0;
  with_local_server(target, draft, o, [&](server::Server& srv, int port) {
    const Sample first = stream_one(port, question_body(f, method, document, 0));
    if (!first.ok) throw Error("the first question failed: " + first.error);
    first_s = first.total_s;
    std::vector<std::thread> clients;  // answers do not matter: the server stops them
    std::atomic<int> ended{0};
    for (int r = 0; r < f.capacity; ++r)
      clients.emplace_back([&, r] {
        // Admitted requests hear nothing between their first token and the end of admission
        // (no decode step runs): they wait as long as admission may take.
        stream_one(port, question_body(f, method, document, r + 1), kAdmissionLimitS);
        ++ended;
      });
    const Stopwatch clock;
    for (;;) {  // until the pool refuses a request while none prefills, or every request ended
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      st = srv.engine_stats();
      if (st.running > 0 && st.running == st.running_peak)  // what the most running hold
        held = {st.running, st.pool_used};
      if (st.running + st.waiting == f.capacity && st.pool_full) break;
      if (ended == f.capacity) break;
      if (clock.seconds() > kAdmissionLimitS)
        throw Error("the pool did not fill within " + std::to_string(kAdmissionLimitS) + " s");
    }
    admit_s = clock.seconds();
    rss = peak_rss_bytes();
    srv.stop();  // cancels every request: the clients' streams end
    for (auto& c : clients) c.join();
  });
  return {{"method", method},
          {"prompt_tokens", f.prompt_tokens},
          {"max_tokens", f.max_tokens},
          {"sent", f.capacity},
          {"admitted", st.running_peak},
          {"pool_refused", st.pool_waits > 0},
          {"pool_limit_bytes", st.pool_limit},
          {"pool_used_bytes", held.second},
          {"pool_peak_bytes", st.pool_peak},
          {"bytes_per_request", held.first > 0 ? held.second / held.first : 0},
          {"first_question_s", first_s},
          {"admission_s", admit_s},
          {"peak_rss_bytes", rss}};
}

std::string capacity_table(const json& rows) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  out << "method       admitted  vs first  KV per request (MiB)  pool used / limit (MiB)  "
         "admission (s)\n";
  const double base = rows.empty() ? 0 : rows.front()["admitted"].get<double>();
  for (const json& r : rows) {
    const double admitted = r["admitted"].get<double>();
    out << std::left << std::setw(13) << r["method"].get<std::string>() << std::right
        << std::setw(8) << r["admitted"].get<int>() << (r["pool_refused"].get<bool>() ? " " : "+")
        << std::setw(8) << (base > 0 ? admitted / base : 0.0) << "x" << std::setw(22)
        << std::setprecision(2) << r["bytes_per_request"].get<double>() / (1 << 20) << std::setw(16)
        << std::setprecision(1) << r["pool_used_bytes"].get<double>() / (1 << 20) << " / "
        << r["pool_limit_bytes"].get<double>() / (1 << 20) << std::setw(14)
        << r["admission_s"].get<double>() << "\n";
  }
  out << "(+: the pool never refused a request: it holds at least that many; send more)\n";
  return out.str();
}

// The document mode: one client asks `questions` different questions about one document of
// --prompt-tokens tokens, one after another, on a fresh server per method (the prefix cache
// starts empty): question 1 prefills the whole document, the next ones only what follows it.
json run_document(const LoadedModel& target, const LoadedModel* draft, const Flags& f,
                  const std::string& method, const std::string& document) {
  server::ServerOptions o;
  o.method = method;
  o.max_tokens = f.max_tokens;
  json questions = json::array();
  PrefixCache::Stats pc;
  with_local_server(target, draft, o, [&](server::Server& srv, int port) {
    for (int q = 0; q < f.questions; ++q) {
      const Sample s = stream_one(port, question_body(f, method, document, q));
      if (!s.ok) throw Error("question " + std::to_string(q + 1) + " failed: " + s.error);
      questions.push_back(
          {{"question", q + 1},
           {"ttft_s", s.ttft_s},
           {"total_s", s.total_s},
           {"tpot_s", s.tokens > 1 ? (s.total_s - s.ttft_s) / (s.tokens - 1) : 0.0}});
    }
    pc = srv.prefix_cache_stats();
  });
  double later = 0;
  for (size_t q = 1; q < questions.size(); ++q) later += questions[q]["ttft_s"].get<double>();
  later /= std::max<double>(1.0, static_cast<double>(questions.size()) - 1);
  const double first = questions[0]["ttft_s"].get<double>();
  return {{"method", method},
          {"document_tokens", f.prompt_tokens},
          {"questions", questions},
          {"ttft_first_s", first},
          {"ttft_later_mean_s", later},
          {"ttft_later_over_first", later / first},
          {"prefix_cache_bytes", pc.bytes},
          {"prefix_cache_blocks", pc.blocks},
          {"prefix_cache_bytes_per_1k_tokens",
           pc.blocks > 0 ? 1000.0 * pc.bytes / double(pc.blocks * pc.block_tokens) : 0.0}};
}

std::string document_table(const json& rows) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(3);
  out << "method       TTFT q1 (s)  TTFT q2.. mean (s)  later/first  TPOT q1/last (ms)  "
         "prefix cache (MiB, per 1k tokens)\n";
  for (const json& r : rows) {
    const json& q = r["questions"];
    out << std::left << std::setw(13) << r["method"].get<std::string>() << std::right
        << std::setw(11) << r["ttft_first_s"].get<double>() << std::setw(20)
        << r["ttft_later_mean_s"].get<double>() << std::setw(13)
        << r["ttft_later_over_first"].get<double>() << std::setw(10) << std::setprecision(1)
        << 1e3 * q.front()["tpot_s"].get<double>() << " / "
        << 1e3 * q.back()["tpot_s"].get<double>() << std::setw(12)
        << r["prefix_cache_bytes"].get<double>() / (1 << 20) << ", "
        << r["prefix_cache_bytes_per_1k_tokens"].get<double>() / (1 << 20) << "\n"
        << std::setprecision(3);
  }
  return out.str();
}

std::string table(const json& rows, double read_gbs) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(3);
  out << "method       clients  tok/s    req/s  TTFT p50/p90/p99 (s)     TPOT p50/p90 (ms)  "
         "batch  step(ms)  weights/bw  pool peak (MiB)\n";
  for (const json& r : rows) {
    out << std::left << std::setw(13) << r["method"].get<std::string>() << std::right
        << std::setw(7) << r["clients"].get<int>() << std::setw(8) << std::setprecision(1)
        << r["tokens_per_s"].get<double>() << std::setw(8) << std::setprecision(2)
        << r["requests_per_s"].get<double>() << "  " << std::setprecision(3)
        << r["ttft_p50_s"].get<double>() << " / " << r["ttft_p90_s"].get<double>() << " / "
        << r["ttft_p99_s"].get<double>() << "   " << std::setprecision(1)
        << 1e3 * r["tpot_p50_s"].get<double>() << " / " << 1e3 * r["tpot_p90_s"].get<double>()
        << "   " << std::setprecision(2) << r["mean_batch"].get<double>() << std::setw(9)
        << std::setprecision(1) << 1e3 * r["step_s"].get<double>() << std::setw(11)
        << std::setprecision(2) << r["step_weight_gbs"].get<double>() / read_gbs << std::setw(12)
        << std::setprecision(1) << r["pool_peak_bytes"].get<double>() / (1 << 20);
    if (!r["error"].is_null()) out << "  ERRORS: " << r["error"].get<std::string>();
    out << "\n";
  }
  return out.str();
}

std::string csv(const json& rows) {
  const std::vector<std::string> cols = {
      "method",          "clients",         "requests",         "ok",
      "wall_s",          "tokens_per_s",    "requests_per_s",   "ttft_p50_s",
      "ttft_p90_s",      "ttft_p99_s",      "tpot_p50_s",       "tpot_p90_s",
      "tpot_p99_s",      "decode_steps",    "mean_batch",       "step_s",
      "step_weight_gbs", "pool_peak_bytes", "pool_limit_bytes", "peak_rss_bytes"};
  std::ostringstream out;
  for (size_t i = 0; i < cols.size(); ++i) out << (i ? "," : "") << cols[i];
  out << "\n";
  for (const json& r : rows) {
    for (size_t i = 0; i < cols.size(); ++i) {
      const json& v = r[cols[i]];
      out << (i ? "," : "") << (v.is_string() ? v.get<std::string>() : v.dump());
    }
    out << "\n";
  }
  return out.str();
}

// serve.gp -> serve.svg: aggregate tokens/s and median TTFT against clients, a line per method.
std::string plot(const fs::path& dir, const json& rows, const std::vector<std::string>& methods,
                 const std::string& title) {
  std::set<int> clients;
  for (const json& r : rows) clients.insert(r["clients"].get<int>());
  const bool bars = clients.size() == 1;  // one client count: a bar per method, not a line
  std::ostringstream gp;
  gp << "set terminal svg size 960,420 dynamic font 'sans,11'\nset output '"
     << (dir / "serve.svg").string() << "'\nset multiplot layout 1,2 title '" << title
     << (bars ? ", " + std::to_string(*clients.begin()) + " clients" : std::string()) << "'\n"
     << "set grid\n";
  if (bars)
    gp << "set style data histograms\nset style fill solid 0.6 border -1\nset boxwidth 0.8\n"
       << "set xtics rotate by -45 scale 0\nunset key\nset yrange [0:*]\n";
  else
    gp << "set key top left\nset xlabel 'concurrent clients'\n";
  for (int panel = 0; panel < 2; ++panel) {
    const char* field = panel == 0 ? "tokens_per_s" : "ttft_p50_s";
    gp << (panel == 0 ? "set ylabel 'generated tokens/s (all clients)'\nset title 'throughput'\n"
                      : "set ylabel 'seconds'\nset title 'time to first token (median)'\n");
    if (bars) {
      gp << "plot '-' using 2:xtic(1)\n";
      for (const std::string& method : methods)
        for (const json& r : rows)
          if (r["method"] == method) gp << method << " " << r[field].get<double>() << "\n";
      gp << "e\n";
      continue;
    }
    gp << "plot ";
    for (size_t m = 0; m < methods.size(); ++m)
      gp << (m ? ", " : "") << "'-' using 1:2 with linespoints title '" << methods[m] << "'";
    gp << "\n";
    for (const std::string& method : methods) {
      for (const json& r : rows)
        if (r["method"] == method)
          gp << r["clients"].get<int>() << " " << r[field].get<double>() << "\n";
      gp << "e\n";
    }
  }
  gp << "unset multiplot\n";
  bench::write_text(dir / "serve.gp", gp.str());
  const std::string cmd = "gnuplot '" + (dir / "serve.gp").string() + "' 2>&1";
  if (std::system(cmd.c_str()) != 0) return "gnuplot failed or is missing: no serve.svg";
  return "";
}

// The flags as a command that repeats the run (recorded with the results).
std::string command_line(const Flags& f) {
  const auto join = [](const auto& items) {
    std::string out;
    for (const auto& i : items) {
      std::ostringstream one;
      one << i;
      out += (out.empty() ? "" : ",") + one.str();
    }
    return out;
  };
  std::string c = "dapx bench-serve -m " + f.model + (f.draft.empty() ? "" : " -d " + f.draft) +
                  " --methods " + join(f.methods) + " --clients " + join(f.clients) +
                  " --prompt-tokens " + std::to_string(f.prompt_tokens) + " --max-tokens " +
                  std::to_string(f.max_tokens) + " --requests " + std::to_string(f.requests) +
                  " --parallel " + std::to_string(f.parallel);
  if (f.budget > 0) c += " --budget " + std::to_string(f.budget);
  if (!f.kv_memory.empty()) c += " --kv-memory " + f.kv_memory;
  if (f.questions > 0) c += " --questions " + std::to_string(f.questions);
  if (f.capacity > 0) c += " --capacity " + std::to_string(f.capacity);
  if (!f.params.empty()) c += " --params '" + f.params + "'";
  return c + " --threads " + std::to_string(f.runtime.threads) + " --dtype " + f.runtime.dtype +
         " --kv-dtype " + f.runtime.kv_dtype + " --weights " + f.runtime.weights;
}

// --replot DIR: the plot of a stored result, drawn again (by this version's plot()).
void replot(const fs::path& dir) {
  const json record = json::parse(read_file((dir / "serve.json").string()), nullptr, false);
  if (!record.is_object() || !record.contains("rows"))
    throw Error((dir / "serve.json").string() + " is not a dapx bench-serve load-mode result");
  std::vector<std::string> methods;
  for (const json& r : record["rows"])
    if (std::find(methods.begin(), methods.end(), r["method"].get<std::string>()) == methods.end())
      methods.push_back(r["method"].get<std::string>());
  std::ostringstream title;
  title << "dapx serve: " << record.value("prompt_tokens", 0) << "-token prompts, "
        << record.value("max_tokens", 0) << " new tokens, "
        << fs::path(record.value("model", std::string())).filename().string();
  const std::string warning = plot(dir, record["rows"], methods, title.str());
  if (!warning.empty()) throw Error(warning);
  std::cerr << "[bench-serve] redrew " << (dir / "serve.svg").string() << "\n";
}

void run(const Flags& f, const std::string& command) {
  if (!f.replot.empty()) return replot(f.replot);
  if (f.model.empty()) throw Error("--model is required (unless --replot)");
  const ComputeOptions copts = apply_runtime_flags(f.runtime);
  const auto [target, draft] = load_target_and_draft(f.model, f.draft, copts);
  for (const std::string& m : f.methods)
    if (method_spec(m).needs_draft && !draft)
      throw Error("method '" + m + "' needs a draft: pass --draft");
  const int64_t kv_memory = f.kv_memory.empty() ? 0 : parse_bytes(f.kv_memory, "--kv-memory");
  const fs::path dir = f.out.empty()
                           ? fs::path("bench/results") / ("serve-" + local_time("%Y-%m-%d-%H%M%S"))
                           : fs::path(f.out);
  fs::create_directories(dir);
  const fs::path prompt_file = bench::write_prompt_file(
      target->tokenizer, read_file(default_data_dir() + "/corpus_en.txt"), f.prompt_tokens, dir);
  const std::string prompt = read_file(prompt_file.string());
  if (f.capacity > 0 && kv_memory == 0)
    throw Error("--capacity needs --kv-memory (the pool to fill)");
  if (f.capacity > 0 || f.questions > 0) {  // the capacity or the document mode
    const std::string name = f.capacity > 0 ? "capacity" : "document";
    json rows = json::array();
    for (const std::string& m : f.methods) {
      std::cerr << "[bench-serve] " << m << ": ";
      if (f.capacity > 0) {
        std::cerr << f.capacity << " requests about one " << f.prompt_tokens
                  << "-token document into a " << f.kv_memory << " pool\n";
        rows.push_back(run_capacity(*target, draft.get(), f, m, prompt, kv_memory));
      } else {
        std::cerr << f.questions << " questions about one " << f.prompt_tokens
                  << "-token document\n";
        rows.push_back(run_document(*target, draft.get(), f, m, prompt));
      }
    }
    const std::string text = f.capacity > 0 ? capacity_table(rows) : document_table(rows);
    std::cout << text;
    json record = {{"command", command},
                   {"machine", bench::cpu_info()},
                   {"model", f.model},
                   {"draft", f.draft},
                   {"rows", rows}};
    record.update(git_state());
    bench::write_text(dir / (name + ".json"), record.dump(2) + "\n");
    bench::write_text(dir / (name + ".txt"), command + "\n\n" + text);
    std::cerr << "[bench-serve] wrote " << dir.string() << "/" << name << ".{json,txt}\n";
    return;
  }
  std::cerr << "[bench-serve] measuring the machine's limits...\n";
  const bench::MachineLimits limits = bench::measure_machine_limits();
  json rows = json::array();
  for (const std::string& m : f.methods)
    for (int c : f.clients) {
      std::cerr << "[bench-serve] " << m << " with " << c << " client(s)\n";
      rows.push_back(run_case(*target, draft.get(), f, m, c, prompt, kv_memory));
    }
  const std::string text = table(rows, limits.read_gbs);
  std::cout << text;
  json record = {{"command", command},
                 {"machine", bench::cpu_info()},
                 {"read_gbs", limits.read_gbs},
                 {"gemm_f32_gflops", limits.gemm_f32_gflops},
                 {"gemm_bf16_gflops", limits.gemm_bf16_gflops},
                 {"model", f.model},
                 {"draft", f.draft},
                 {"decode_weight_bytes", target->transformer.decode_weight_bytes()},
                 {"prompt_tokens", f.prompt_tokens},
                 {"max_tokens", f.max_tokens},
                 {"requests_per_client", f.requests},
                 {"rows", rows}};
  record.update(git_state());
  bench::write_text(dir / "serve.json", record.dump(2) + "\n");
  bench::write_text(dir / "serve.csv", csv(rows));
  bench::write_text(dir / "serve.txt", command + "\n\n" + text);
  std::ostringstream title;
  title << "dapx serve: " << f.prompt_tokens << "-token prompts, " << f.max_tokens
        << " new tokens, " << fs::path(f.model).filename().string();
  const std::string warning = plot(dir, rows, f.methods, title.str());
  if (!warning.empty()) std::cerr << "[bench-serve] " << warning << "\n";
  std::cerr << "[bench-serve] wrote " << dir.string() << "/serve.{json,csv,txt,svg}\n";
}

}  // namespace

void register_bench_serve(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "bench-serve",
      "The server under load: N concurrent streaming clients per method, aggregate tokens/s, "
      "TTFT and time per output token percentiles, KV pool peak, decode step vs bandwidth");
  cmd->add_option("--model,-m", f->model, "Target model directory (required unless --replot)");
  cmd->add_option("--replot", f->replot,
                  "Redraw DIR/serve.svg from DIR/serve.json (a stored load-mode result) and exit");
  cmd->add_option("--draft,-d", f->draft, "Draft model directory (draft-based methods)");
  cmd->add_option("--methods", f->methods, "Methods to load, one after another (default full)")
      ->delimiter(',');
  cmd->add_option("--clients", f->clients, "Concurrent client counts (default 1,2,4,8)")
      ->delimiter(',')
      ->check(CLI::Range(1, 256));
  cmd->add_option("--prompt-tokens", f->prompt_tokens, "Prompt length in tokens (default 32)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-tokens", f->max_tokens, "Tokens each request generates (default 64)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--requests", f->requests, "Requests per client, one after another (default 2)")
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--budget", f->budget, "Budget for every compressing method (default: theirs)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--parallel", f->parallel, "The server's --parallel (default 16)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--kv-memory", f->kv_memory, "The server's --kv-memory (default: its default)");
  cmd->add_option("--params", f->params,
                  "Method parameters as a JSON object, given to every method that declares them, "
                  "e.g. '{\"prefill\": \"dense\"}'");
  cmd->add_option("--questions", f->questions,
                  "Document mode: one client asks this many questions in turn about one document "
                  "of --prompt-tokens tokens (the prefix cache at work); 0: the load mode")
      ->check(CLI::Range(0, 1000));
  cmd->add_option("--capacity", f->capacity,
                  "Capacity mode: send this many requests about one document of --prompt-tokens "
                  "tokens at once and count how many the KV pool (--kv-memory) admits "
                  "together; 0: off")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--out", f->out, "Results folder (default bench/results/serve-DATE-TIME)");
  add_runtime_flags(*cmd, f->runtime);
  cmd->callback([f] { run(*f, command_line(*f)); });
}

}  // namespace dapx::cli
