#pragma once
// A small HTTP/1.1 server for `dapx serve`, built so that slow or idle clients cannot lock
// others out. cpp-httplib 0.11 (Debian's) gives every connection a worker thread for as long as
// it stays open and has no deadline on a whole request head, so a few dozen clients trickling
// header lines hold every worker; it also reads a body before checking its Content-Length and
// drops pipelined requests. Here one thread polls every connection that is not being answered:
// it reads request heads and bodies under deadlines and size limits (answering 408, 413, 431 or
// 400 at once), and hands a complete request to a thread of its own. A keep-alive connection
// comes back to the poller afterwards and its pipelined bytes are answered in order.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dapx::server {

struct HttpRequest {
  std::string method, target, path, version;                 // path: the target without its ?query
  std::vector<std::pair<std::string, std::string>> headers;  // as sent, in order
  std::string body;
  std::string remote;  // the client's address
  // The value of the first header of this name (case-insensitive); "" when absent.
  std::string header(const std::string& name) const;
  // True once the client closed its connection. Never blocks; bytes it sent ahead (a pipelined
  // request) count as alive.
  std::function<bool()> client_gone = [] { return false; };
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain", body;
  std::vector<std::pair<std::string, std::string>> headers;
  // A streamed body (chunked transfer encoding), run after the handler returns; `write` sends
  // one piece and returns false once the client is gone.
  using Write = std::function<bool(const std::string&)>;
  std::function<void(const Write& write)> stream;

  void set_content(std::string content, std::string type) {
    body = std::move(content);
    content_type = std::move(type);
  }
  void set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;
// Writes an error the server found itself (a malformed or oversized request, an unknown path,
// a handler's exception): status, message, the part of the request at fault ("body",
// "headers", "" for none) and a short code.
using HttpErrorWriter =
    std::function<void(int status, const std::string& message, const std::string& param,
                       const std::string& code, HttpResponse& res)>;

struct HttpLimits {
  size_t max_head_bytes = 64 << 10;  // request line + headers; beyond: 431
  size_t max_body_bytes = 8 << 20;   // a Content-Length beyond: 413, before any body is read
  double head_timeout_s = 10;        // from a request's first byte to its blank line: else 408
  double body_timeout_s = 60;        // from the head to the body's last byte: else 408
  double idle_timeout_s = 15;        // a connection waiting for its (next) request: closed
  double write_timeout_s = 30;       // one blocked send of an answer: the client is gone
  int max_connections = 1024;        // open at once; beyond: 503 and closed
  int max_active = 256;              // requests being answered at once; beyond: 503
};

class HttpServer {
 public:
  struct Stats {
    int64_t accepted = 0, open = 0, active = 0;
    int64_t refused = 0;    // 503: too many connections or requests at once
    int64_t timed_out = 0;  // 408 or closed when idle
    int64_t rejected = 0;   // 400, 411, 413, 431 before a handler ran
  };

  explicit HttpServer(HttpLimits limits);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Exact path; an unknown path is 404, a known path with another method 405.
  void route(const std::string& method, const std::string& path, HttpHandler handler);
  void set_error_writer(HttpErrorWriter writer);
  // Listens on host:port (0: a free port); returns the port. Throws naming host and port.
  int bind(const std::string& host, int port);
  // Serves until stop(); returns once every request being answered has finished.
  void listen();
  // Safe from any thread, also before listen().
  void stop();
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dapx::server
