#include "server/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace dapx::server {
namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point after(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

void set_nonblocking(int fd, bool on) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
}

bool iequals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

const char* reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Server Error";
  }
}

// The head of a response whose body is `body_size` bytes, or chunked when body_size < 0.
std::string response_head(const HttpResponse& res, long long body_size, bool keep_alive) {
  std::string h = "HTTP/1.1 " + std::to_string(res.status) + " " + reason(res.status) + "\r\n";
  h += "Content-Type: " + res.content_type + "\r\n";
  if (body_size < 0)
    h += "Transfer-Encoding: chunked\r\n";
  else
    h += "Content-Length: " + std::to_string(body_size) + "\r\n";
  h += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  for (const auto& [name, value] : res.headers) h += name + ": " + value + "\r\n";
  return h + "\r\n";
}

// Sends all of `data` on a blocking socket (its SO_SNDTIMEO bounds a stalled client).
bool send_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// A request the poller refuses before any handler: status, message, the part at fault.
struct Refusal {
  int status;
  std::string message, param, code;
};

struct Connection {
  Fd fd;
  std::string in;  // received, not yet consumed (a pipelined request stays here)
  std::string remote;
  enum class Phase { kIdle, kHead, kBody, kDraining } phase = Phase::kIdle;
  Clock::time_point deadline;
  HttpRequest request;  // the parsed head, while its body arrives
  size_t head_bytes = 0, body_bytes = 0;
  bool keep_alive = true;
};

// Parses a complete request head (without its blank line) into `r`; the body length goes to
// `body_bytes`. Throws Refusal.
void parse_head(const std::string& head, const HttpLimits& limits, HttpRequest& r,
                size_t& body_bytes, bool& keep_alive) {
  std::vector<std::string> lines;
  size_t at = 0;
  while (at <= head.size()) {
    const size_t end = head.find("\r\n", at);
    lines.push_back(head.substr(at, end == std::string::npos ? std::string::npos : end - at));
    if (end == std::string::npos) break;
    at = end + 2;
  }
  const std::string& line = lines[0];
  const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1)
    throw Refusal{400, "malformed request line (METHOD /path HTTP/1.1 expected)", "",
                  "bad_request"};
  r.method = line.substr(0, sp1);
  r.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  r.version = line.substr(sp2 + 1);
  if (r.method.empty() || r.target.empty() || r.target[0] != '/' ||
      r.target.find(' ') != std::string::npos ||
      !std::all_of(r.method.begin(), r.method.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
    throw Refusal{400, "malformed request line (METHOD /path HTTP/1.1 expected)", "",
                  "bad_request"};
  if (r.version != "HTTP/1.1" && r.version != "HTTP/1.0")
    throw Refusal{505, "HTTP version '" + r.version.substr(0, 32) + "' is not supported (HTTP/1.1)",
                  "", "bad_request"};
  r.path = r.target.substr(0, r.target.find('?'));
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& h = lines[i];
    const size_t colon = h.find(':');
    if (colon == 0 || colon == std::string::npos || h.find('\n') != std::string::npos ||
        h.find('\r') != std::string::npos || h[colon - 1] == ' ' || h[colon - 1] == '\t' ||
        h[0] == ' ' || h[0] == '\t')
      throw Refusal{400, "malformed header line " + std::to_string(i) + " (name: value expected)",
                    "headers", "bad_request"};
    const size_t v0 = h.find_first_not_of(" \t", colon + 1);
    const size_t v1 = h.find_last_not_of(" \t");
    r.headers.emplace_back(h.substr(0, colon),
                           v0 == std::string::npos ? "" : h.substr(v0, v1 - v0 + 1));
  }
  body_bytes = 0;
  bool have_length = false;
  for (const auto& [name, value] : r.headers) {
    if (iequals(name, "Transfer-Encoding"))
      throw Refusal{411,
                    "request bodies must come with a Content-Length (Transfer-Encoding '" +
                        value.substr(0, 32) + "' is not supported)",
                    "headers", "length_required"};
    if (!iequals(name, "Content-Length")) continue;
    if (value.empty() || value.size() > 19 ||
        !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      if (!value.empty() && value.size() <= 64 &&
          std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw Refusal{413,
                      "the request body (Content-Length " + value + ") is larger than " +
                          std::to_string(limits.max_body_bytes) + " bytes",
                      "body", "request_too_large"};
      throw Refusal{
          400, "Content-Length must be a non-negative integer, got '" + value.substr(0, 32) + "'",
          "headers", "bad_request"};
    }
    const size_t n = std::stoull(value);
    if (have_length && n != body_bytes)
      throw Refusal{400, "two different Content-Length headers", "headers", "bad_request"};
    if (n > limits.max_body_bytes)
      throw Refusal{413,
                    "the request body (Content-Length " + value + ") is larger than " +
                        std::to_string(limits.max_body_bytes) + " bytes",
                    "body", "request_too_large"};
    body_bytes = n;
    have_length = true;
  }
  const std::string connection = r.header("Connection");
  keep_alive =
      r.version == "HTTP/1.1" ? !iequals(connection, "close") : iequals(connection, "keep-alive");
}

}  // namespace

std::string HttpRequest::header(const std::string& name) const {
  for (const auto& [n, v] : headers)
    if (iequals(n, name)) return v;
  return "";
}

struct HttpServer::Impl {
  HttpLimits limits;
  std::map<std::string, std::map<std::string, HttpHandler>> routes;  // path -> method -> handler
  HttpErrorWriter error_writer = [](int, const std::string& message, const std::string&,
                                    const std::string&, HttpResponse& res) {
    res.set_content(message + "\n", "text/plain");
  };
  Fd listener;
  Fd wake;  // an eventfd: stop() and finished requests wake the poller
  std::atomic<bool> stopping{false};

  mutable std::mutex mutex;                           // guards returned, workers, stats
  std::vector<std::unique_ptr<Connection>> returned;  // keep-alive connections back from workers
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Worker> workers;
  Stats stats;

  void notify() {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake.get(), &one, sizeof one);
  }

  HttpResponse error_response(int status, const std::string& message, const std::string& param,
                              const std::string& code) const {
    HttpResponse res;
    res.status = status;
    error_writer(status, message, param, code, res);
    return res;
  }

  // Answers from the poller (non-blocking, best effort), then reads and drops what the client
  // still sends for a moment before closing, so that the answer is not lost to a reset.
  void refuse(Connection& c, const HttpResponse& res) {
    const std::string bytes =
        response_head(res, static_cast<long long>(res.body.size()), false) + res.body;
    [[maybe_unused]] const ssize_t n =
        ::send(c.fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(c.fd.get(), SHUT_WR);
    c.phase = Connection::Phase::kDraining;
    c.in.clear();
    c.deadline = after(2.0);
  }

  // Consumes complete requests from the connection's buffer; returns the request to dispatch
  // (the connection then leaves the poller), or false to keep polling it.
  bool take_request(Connection& c, HttpRequest& out) {
    if (c.phase == Connection::Phase::kDraining) {
      c.in.clear();
      return false;
    }
    if (c.phase == Connection::Phase::kIdle) {
      while (c.in.compare(0, 2, "\r\n") == 0) c.in.erase(0, 2);  // blank lines between requests
      if (c.in.empty()) return false;
      c.phase = Connection::Phase::kHead;
      c.deadline = after(limits.head_timeout_s);
    }
    if (c.phase == Connection::Phase::kHead) {
      const size_t end = c.in.find("\r\n\r\n");
      if (end == std::string::npos ? c.in.size() > limits.max_head_bytes
                                   : end + 4 > limits.max_head_bytes) {
        std::lock_guard<std::mutex> lock(mutex);
        ++stats.rejected;
        refuse(c, error_response(431,
                                 "the request head is larger than " +
                                     std::to_string(limits.max_head_bytes) + " bytes",
                                 "headers", "headers_too_large"));
        return false;
      }
      if (end == std::string::npos) return false;
      c.request = HttpRequest();
      try {
        parse_head(c.in.substr(0, end), limits, c.request, c.body_bytes, c.keep_alive);
      } catch (const Refusal& r) {
        std::lock_guard<std::mutex> lock(mutex);
        ++stats.rejected;
        refuse(c, error_response(r.status, r.message, r.param, r.code));
        return false;
      }
      c.head_bytes = end + 4;
      c.phase = Connection::Phase::kBody;
      c.deadline = after(limits.body_timeout_s);
      if (c.body_bytes > 0 && c.in.size() < c.head_bytes + c.body_bytes &&
          iequals(c.request.header("Expect"), "100-continue")) {
        static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        [[maybe_unused]] const ssize_t n =
            ::send(c.fd.get(), kContinue, sizeof kContinue - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      }
    }
    if (c.in.size() < c.head_bytes + c.body_bytes) return false;
    out = std::move(c.request);
    out.body = c.in.substr(c.head_bytes, c.body_bytes);
    out.remote = c.remote;
    c.in.erase(0, c.head_bytes + c.body_bytes);
    c.phase = Connection::Phase::kIdle;
    return true;
  }

  // Runs on a request's own thread: the handler, then the answer; a keep-alive connection goes
  // back to the poller.
  void answer(std::unique_ptr<Connection> c, HttpRequest req) {
    const int fd = c->fd.get();
    set_nonblocking(fd, false);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(limits.write_timeout_s);
    tv.tv_usec = static_cast<suseconds_t>((limits.write_timeout_s - tv.tv_sec) * 1e6);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    req.client_gone = [fd] {
      char b;
      const ssize_t n = ::recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
      return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    };
    HttpResponse res;
    const auto path = routes.find(req.path);
    if (path == routes.end()) {
      res = error_response(404, "no such endpoint: " + req.path.substr(0, 200), "", "not_found");
    } else if (auto h = path->second.find(req.method); h == path->second.end()) {
      res = error_response(405, req.method + " is not allowed on " + req.path, "",
                           "method_not_allowed");
      std::string allow;
      for (const auto& m : path->second) allow += (allow.empty() ? "" : ", ") + m.first;
      res.set_header("Allow", allow);
    } else {
      try {
        h->second(req, res);
      } catch (const std::exception& e) {
        res = error_response(500, std::string("internal error: ") + e.what(), "", "internal_error");
      } catch (...) {
        res = error_response(500, "internal error", "", "internal_error");
      }
    }
    bool keep = c->keep_alive && !stopping;
    bool ok;
    if (res.stream) {
      ok = [&] {
        const std::string head = response_head(res, -1, keep);
        return send_all(fd, head.data(), head.size());
      }();
      bool writable = ok;
      res.stream([&](const std::string& piece) {
        if (!writable) return false;
        if (piece.empty()) return true;
        char size[24];
        const int n = std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
        writable = send_all(fd, size, static_cast<size_t>(n)) &&
                   send_all(fd, piece.data(), piece.size()) && send_all(fd, "\r\n", 2);
        return writable;
      });
      ok = writable && send_all(fd, "0\r\n\r\n", 5);
    } else {
      const std::string head = response_head(res, static_cast<long long>(res.body.size()), keep);
      ok = send_all(fd, head.data(), head.size()) && send_all(fd, res.body.data(), res.body.size());
    }
    std::lock_guard<std::mutex> lock(mutex);
    --stats.active;
    if (ok && keep && !stopping) {
      set_nonblocking(fd, true);
      c->deadline = after(limits.idle_timeout_s);
      returned.push_back(std::move(c));
    } else {
      --stats.open;
    }
    notify();
  }

  void dispatch(std::unique_ptr<Connection> c, HttpRequest req) {
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard<std::mutex> lock(mutex);
    ++stats.active;
    try {
      workers.push_back(
          Worker{std::thread([this, done, c = std::move(c), req = std::move(req)]() mutable {
                   answer(std::move(c), std::move(req));
                   *done = true;
                 }),
                 done});
    } catch (const std::system_error&) {  // no thread to be had: the connection is closed
      --stats.active;
      --stats.open;
      ++stats.refused;
    }
  }

  void join_finished(bool all) {
    std::list<Worker> finished;
    {
      std::lock_guard<std::mutex> lock(mutex);
      for (auto it = workers.begin(); it != workers.end();)
        if (all || *it->done) {
          finished.splice(finished.end(), workers, it++);
        } else {
          ++it;
        }
    }
    for (Worker& w : finished) w.thread.join();
  }

  void accept_all(std::vector<std::unique_ptr<Connection>>& conns) {
    for (;;) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      const int fd = ::accept4(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or a connection that went away before it was accepted
      auto c = std::make_unique<Connection>();
      c->fd = Fd(fd);
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      char host[INET6_ADDRSTRLEN] = "?";
      if (addr.ss_family == AF_INET)
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, host, sizeof host);
      else if (addr.ss_family == AF_INET6)
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, host,
                    sizeof host);
      c->remote = host;
      c->deadline = after(limits.head_timeout_s);  // a new connection must start soon
      std::lock_guard<std::mutex> lock(mutex);
      ++stats.accepted;
      if (stats.open >= limits.max_connections) {
        ++stats.refused;
        HttpResponse res = error_response(
            503, "too many open connections (" + std::to_string(limits.max_connections) + ")", "",
            "server_busy");
        res.set_header("Retry-After", "1");
        refuse(*c, res);
        c->deadline = after(0.2);
        ++stats.open;  // counted until the drain closes it
      } else {
        ++stats.open;
      }
      conns.push_back(std::move(c));
    }
  }

  void serve() {
    std::vector<std::unique_ptr<Connection>> conns;
    std::vector<pollfd> fds;
    while (!stopping) {
      join_finished(false);
      {
        std::lock_guard<std::mutex> lock(mutex);
        for (auto& c : returned) conns.push_back(std::move(c));
        returned.clear();
      }
      // Requests complete in the buffers (pipelined ones), then the deadlines.
      const Clock::time_point now = Clock::now();
      for (auto& c : conns) {
        HttpRequest req;
        if (!c) continue;
        if (take_request(*c, req)) {
          bool busy;
          {
            std::lock_guard<std::mutex> lock(mutex);
            busy = stats.active >= limits.max_active;
            if (busy) ++stats.refused;
          }
          if (busy) {
            HttpResponse res = error_response(
                503, "too many requests at once (" + std::to_string(limits.max_active) + ")", "",
                "server_busy");
            res.set_header("Retry-After", "1");
            refuse(*c, res);
          } else {
            dispatch(std::move(c), std::move(req));
          }
          continue;
        }
        if (now < c->deadline) continue;
        std::lock_guard<std::mutex> lock(mutex);
        if (c->phase == Connection::Phase::kHead || c->phase == Connection::Phase::kBody) {
          ++stats.timed_out;
          refuse(*c, error_response(408,
                                    c->phase == Connection::Phase::kHead
                                        ? "the request head was not complete in time"
                                        : "the request body was not complete in time",
                                    c->phase == Connection::Phase::kHead ? "headers" : "body",
                                    "request_timeout"));
        } else {
          if (c->phase == Connection::Phase::kIdle) ++stats.timed_out;
          --stats.open;
          c.reset();  // idle too long, or drained
        }
      }
      conns.erase(std::remove(conns.begin(), conns.end(), nullptr), conns.end());

      fds.assign(1, pollfd{wake.get(), POLLIN, 0});
      fds.push_back(pollfd{listener.get(), POLLIN, 0});
      Clock::time_point next = after(1.0);
      for (const auto& c : conns) {
        fds.push_back(pollfd{c->fd.get(), POLLIN, 0});
        next = std::min(next, c->deadline);
      }
      const auto wait_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
      const int ready =
          ::poll(fds.data(), fds.size(),
                 static_cast<int>(std::max<long long>(0, std::min<long long>(wait_ms + 1, 1000))));
      if (ready <= 0) continue;
      if (fds[0].revents) {
        uint64_t n;
        [[maybe_unused]] const ssize_t r = ::read(wake.get(), &n, sizeof n);
      }
      if (fds[1].revents & POLLIN) accept_all(conns);
      for (size_t i = 2; i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        Connection& c = *conns[i - 2];
        char buf[16384];
        bool closed = false;
        for (int reads = 0; reads < 16; ++reads) {  // at most 256 KiB per turn: others go on
          const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
          if (n > 0) {
            if (c.phase != Connection::Phase::kDraining) c.in.append(buf, static_cast<size_t>(n));
            continue;
          }
          if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
          if (n < 0 && errno == EINTR) continue;
          closed = true;  // the client closed (0) or the connection failed
          break;
        }
        if (closed) {
          std::lock_guard<std::mutex> lock(mutex);
          --stats.open;
          conns[i - 2].reset();
        }
      }
      conns.erase(std::remove(conns.begin(), conns.end(), nullptr), conns.end());
    }
    listener.reset();
    {
      std::lock_guard<std::mutex> lock(mutex);
      stats.open -= static_cast<int64_t>(conns.size());
    }
    conns.clear();
    join_finished(true);
    std::lock_guard<std::mutex> lock(mutex);
    stats.open -= static_cast<int64_t>(returned.size());
    returned.clear();
  }
};

HttpServer::HttpServer(HttpLimits limits) : impl_(std::make_unique<Impl>()) {
  impl_->limits = limits;
  impl_->wake = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (impl_->wake.get() < 0)
    throw std::runtime_error(std::string("cannot create an eventfd: ") + std::strerror(errno));
}

HttpServer::~HttpServer() {
  stop();
  impl_->join_finished(true);
}

void HttpServer::route(const std::string& method, const std::string& path, HttpHandler handler) {
  impl_->routes[path][method] = std::move(handler);
}

void HttpServer::set_error_writer(HttpErrorWriter writer) {
  impl_->error_writer = std::move(writer);
}

int HttpServer::bind(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string where = host + ":" + std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found))
    throw std::runtime_error("cannot listen on " + where + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
  std::string why = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
    if (fd.get() < 0) continue;
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd.get(), SOMAXCONN) != 0) {
      why = std::strerror(errno);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
    impl_->listener = std::move(fd);
    return ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  throw std::runtime_error("cannot listen on " + where + ": " + why +
                           " (in use, or not an address of this machine)");
}

void HttpServer::listen() {
  if (impl_->listener.get() < 0) throw std::runtime_error("HttpServer::listen before bind");
  impl_->serve();
}

void HttpServer::stop() {
  impl_->stopping = true;
  impl_->notify();
}

HttpServer::Stats HttpServer::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->stats;
}

}  // namespace dapx::server
