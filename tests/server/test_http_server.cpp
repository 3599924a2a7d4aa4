// The HTTP layer of dapx serve over real loopback sockets: slow and idle clients cannot lock
// others out, limits are answered from the head before any body is read, pipelined requests
// are answered in order, streams are chunked. The only time bounds are generous ones on "is
// answered at all" (a busy 2-core machine answers a loopback request in milliseconds; the
// bound is 30 s) and the server's own deadlines, set short here.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "server/http_server.h"

namespace dapx::server {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kAnswerBound = 30.0;  // seconds: "answered", on any machine

struct Running {
  HttpServer http;
  std::thread thread;
  int port = 0;
  std::atomic<int> handled{0};
  explicit Running(HttpLimits limits) : http(limits) {
    http.route("GET", "/health", [this](const HttpRequest&, HttpResponse& res) {
      ++handled;
      res.set_content("ok", "text/plain");
    });
    http.route("POST", "/echo", [this](const HttpRequest& req, HttpResponse& res) {
      ++handled;
      res.set_content(req.method + " " + req.target + " " + req.body, "text/plain");
    });
    http.route("GET", "/stream", [](const HttpRequest&, HttpResponse& res) {
      res.content_type = "text/event-stream";
      res.stream = [](const HttpResponse::Write& write) {
        for (int i = 0; i < 3; ++i) write("piece " + std::to_string(i) + "\n");
      };
    });
    http.route("GET", "/throw", [](const HttpRequest&, HttpResponse&) {
      throw std::runtime_error("the handler failed");
    });
    http.set_error_writer([](int status, const std::string& message, const std::string& param,
                             const std::string& code, HttpResponse& res) {
      res.set_content(std::to_string(status) + "|" + message + "|" + param + "|" + code,
                      "text/plain");
    });
    port = http.bind("127.0.0.1", 0);
    thread = std::thread([this] { http.listen(); });
  }
  ~Running() {
    http.stop();
    thread.join();
  }
};

// A client socket, closed on destruction.
class Socket {
 public:
  explicit Socket(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  bool ok() const { return ok_; }
  bool send(const std::string& s) {
    return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  // Everything received until the server closes, or until `seconds` pass.
  std::string read_until_closed(double seconds, bool* closed = nullptr) {
    std::string out;
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        if (closed) *closed = true;
        return out;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    if (closed) *closed = false;
    return out;
  }
  // Reads until `marker` has arrived, or `seconds` pass.
  std::string read_until(const std::string& marker, double seconds) {
    std::string out;
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    while (out.find(marker) == std::string::npos && Clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char c;
      if (::recv(fd_, &c, 1, 0) != 1) break;  // one byte at a time: nothing past the marker
      out += c;
    }
    return out;
  }
  // Reads until `count` complete responses (Content-Length bodies) are in, or `seconds` pass.
  std::vector<std::string> read_responses(int count, double seconds) {
    std::string in;
    std::vector<std::string> out;
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    while (static_cast<int>(out.size()) < count && Clock::now() < end) {
      for (;;) {  // complete responses in the buffer
        const size_t head = in.find("\r\n\r\n");
        if (head == std::string::npos) break;
        const size_t cl = in.find("Content-Length: ");
        if (cl == std::string::npos || cl > head) break;
        const size_t len = std::stoul(in.substr(cl + 16));
        if (in.size() < head + 4 + len) break;
        out.push_back(in.substr(0, head + 4 + len));
        in.erase(0, head + 4 + len);
      }
      if (static_cast<int>(out.size()) >= count) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int fd_;
  bool ok_ = false;
};

std::string get(const std::string& path, bool close = false) {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + (close ? "Connection: close\r\n" : "") +
         "\r\n";
}

std::string post(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

TEST(HttpServer, RoutesAnswerAndUnknownPathsAndMethodsAreNamed) {
  Running srv(HttpLimits{});
  Socket s(srv.port);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s.send(get("/health") + post("/echo", "hello") + get("/nothing") +
                     post("/health", "") + get("/throw", true)));
  const std::vector<std::string> r = s.read_responses(5, kAnswerBound);
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_NE(r[0].find("\r\n\r\nok"), std::string::npos);
  EXPECT_NE(r[1].find("\r\n\r\nPOST /echo hello"), std::string::npos) << r[1];
  EXPECT_NE(r[2].find("404 Not Found"), std::string::npos);
  EXPECT_NE(r[2].find("404|no such endpoint: /nothing||not_found"), std::string::npos) << r[2];
  EXPECT_NE(r[3].find("405 Method Not Allowed"), std::string::npos);
  EXPECT_NE(r[3].find("Allow: GET"), std::string::npos) << r[3];
  EXPECT_NE(r[4].find("500|internal error: the handler failed||internal_error"), std::string::npos)
      << r[4];
  EXPECT_NE(r[4].find("Connection: close"), std::string::npos);
}

// Three GETs, or two POSTs and a GET, sent in one write on one connection: three answers, in
// order, on that connection.
TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  Running srv(HttpLimits{});
  {
    Socket s(srv.port);
    ASSERT_TRUE(s.send(get("/health?a=1") + get("/health?a=2") + get("/health?a=3")));
    const auto r = s.read_responses(3, kAnswerBound);
    ASSERT_EQ(r.size(), 3u);
    for (const auto& one : r) EXPECT_NE(one.find("\r\n\r\nok"), std::string::npos);
  }
  Socket s(srv.port);
  ASSERT_TRUE(s.send(post("/echo", "first") + post("/echo", "second") + get("/health")));
  const auto r = s.read_responses(3, kAnswerBound);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_NE(r[0].find("POST /echo first"), std::string::npos);
  EXPECT_NE(r[1].find("POST /echo second"), std::string::npos);
  EXPECT_NE(r[2].find("\r\n\r\nok"), std::string::npos);
}

// Content-Length is judged from the head: too large is 413 before a byte of body is read,
// a negative or non-numeric one is 400 saying so; a huge head is 431.
TEST(HttpServer, BodyAndHeadLimitsAreAnsweredFromTheHeadAtOnce) {
  HttpLimits limits;
  limits.max_body_bytes = 8 << 20;
  limits.head_timeout_s = 60;  // no deadline may be what answers here
  limits.body_timeout_s = 60;
  Running srv(limits);
  struct Case {
    std::string head;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"POST /echo HTTP/1.1\r\nContent-Length: 10485760\r\n\r\n0123456789",
       "413|the request body (Content-Length 10485760) is larger than 8388608 bytes|body|"
       "request_too_large"},
      {"POST /echo HTTP/1.1\r\nContent-Length: 100000000000000000000000\r\n\r\n0123456789",
       "413|the request body (Content-Length 100000000000000000000000) is larger than"},
      {"POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n0123456789",
       "400|Content-Length must be a non-negative integer, got '-1'|headers|bad_request"},
      {"POST /echo HTTP/1.1\r\nContent-Length: 1e20\r\n\r\n0123456789",
       "400|Content-Length must be a non-negative integer, got '1e20'"},
      {"POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n0123456789",
       "400|two different Content-Length headers"},
      {"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       "411|request bodies must come with a Content-Length"},
      {"GET /health HTTP/1.1\r\nX-Big: " + std::string(100 * 1024, 'a') + "\r\n\r\n",
       "431|the request head is larger than 65536 bytes|headers|headers_too_large"},
      {"GET /health HTTP/2.0\r\n\r\n", "505|HTTP version 'HTTP/2.0' is not supported"},
      {"GARBAGE\r\n\r\n", "400|malformed request line"},
      {"GET /health HTTP/1.1\r\nno colon here\r\n\r\n", "400|malformed header line 1"},
  };
  for (const Case& c : cases) {
    Socket s(srv.port);
    ASSERT_TRUE(s.send(c.head));
    bool closed = false;
    const std::string answer = s.read_until_closed(kAnswerBound, &closed);
    EXPECT_NE(answer.find(c.expect), std::string::npos) << c.head.substr(0, 60) << " -> " << answer;
    EXPECT_TRUE(closed) << "the connection stays open after: " << c.head.substr(0, 60);
  }
  EXPECT_EQ(srv.handled, 0);  // none reached a handler
  EXPECT_EQ(srv.http.stats().rejected, static_cast<int64_t>(cases.size()));
}

// 64 connections trickle a request head a byte at a time and 200 connect and send nothing:
// a good request and /health are still answered at once, and the server cuts the tricklers off
// at its head deadline (408) and closes the idle ones.
TEST(HttpServer, SlowAndIdleClientsDoNotLockOthersOut) {
  HttpLimits limits;
  limits.head_timeout_s = 1.0;
  limits.idle_timeout_s = 1.0;
  Running srv(limits);
  std::vector<std::unique_ptr<Socket>> idle, slow;
  for (int i = 0; i < 200; ++i) idle.push_back(std::make_unique<Socket>(srv.port));
  for (int i = 0; i < 64; ++i) {
    slow.push_back(std::make_unique<Socket>(srv.port));
    ASSERT_TRUE(slow.back()->ok());
    ASSERT_TRUE(slow.back()->send("POST /echo HTTP/1.1\r\nHost: x\r\n"));
  }
  std::atomic<bool> trickling{true};
  std::thread trickle([&] {  // one header byte per connection every 100 ms
    while (trickling) {
      for (auto& s : slow) s->send("X");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  {
    Socket good(srv.port);
    ASSERT_TRUE(good.send(post("/echo", "good") + get("/health")));
    const auto r = good.read_responses(2, kAnswerBound);
    ASSERT_EQ(r.size(), 2u) << "a good request is not answered beside slow and idle clients";
    EXPECT_NE(r[0].find("POST /echo good"), std::string::npos);
    EXPECT_NE(r[1].find("\r\n\r\nok"), std::string::npos);
  }
  // The tricklers are cut off: each gets 408 and a closed connection.
  int cut = 0;
  for (auto& s : slow) {
    bool closed = false;
    const std::string answer = s->read_until_closed(kAnswerBound, &closed);
    cut +=
        closed && answer.find("408|the request head was not complete in time") != std::string::npos;
  }
  trickling = false;
  trickle.join();
  EXPECT_EQ(cut, 64);
  int closed_idle = 0;
  for (auto& s : idle) {
    bool closed = false;
    s->read_until_closed(kAnswerBound, &closed);
    closed_idle += closed;
  }
  EXPECT_EQ(closed_idle, 200);
  EXPECT_EQ(srv.handled, 2);  // the good POST and /health, no trickler
  EXPECT_EQ(srv.http.stats().timed_out, 264);
}

TEST(HttpServer, ConnectionsBeyondTheLimitAreRefusedAndTheServerRecovers) {
  HttpLimits limits;
  limits.max_connections = 8;
  Running srv(limits);
  std::vector<std::unique_ptr<Socket>> held;
  for (int i = 0; i < 8; ++i) {
    held.push_back(std::make_unique<Socket>(srv.port));
    ASSERT_TRUE(held.back()->send(get("/health")));  // answered, then kept alive
    ASSERT_EQ(held.back()->read_responses(1, kAnswerBound).size(), 1u);
  }
  {
    Socket extra(srv.port);
    bool closed = false;
    const std::string answer = extra.read_until_closed(kAnswerBound, &closed);
    EXPECT_NE(answer.find("503|too many open connections (8)||server_busy"), std::string::npos)
        << answer;
    EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos);
    EXPECT_TRUE(closed);
  }
  held.clear();  // once they leave, new clients are served again
  for (int tries = 0; tries < 100; ++tries) {
    Socket s(srv.port);
    s.send(get("/health", true));
    bool closed = false;
    if (s.read_until_closed(kAnswerBound, &closed).find("\r\n\r\nok") != std::string::npos) break;
    ASSERT_LT(tries, 99) << "not served again after the held connections closed";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

TEST(HttpServer, StreamsAreChunkedAndEndWithTheLastChunk) {
  Running srv(HttpLimits{});
  Socket s(srv.port);
  ASSERT_TRUE(s.send(get("/stream", true)));
  bool closed = false;
  const std::string answer = s.read_until_closed(kAnswerBound, &closed);
  EXPECT_TRUE(closed);
  EXPECT_NE(answer.find("Transfer-Encoding: chunked"), std::string::npos);
  EXPECT_NE(answer.find("Content-Type: text/event-stream"), std::string::npos);
  const std::string body = answer.substr(answer.find("\r\n\r\n") + 4);
  EXPECT_EQ(body, "8\r\npiece 0\n\r\n8\r\npiece 1\n\r\n8\r\npiece 2\n\r\n0\r\n\r\n");
}

// curl sends "Expect: 100-continue" before a large body and waits for the interim answer.
TEST(HttpServer, ExpectContinueGetsItsInterimAnswer) {
  Running srv(HttpLimits{});
  Socket s(srv.port);
  ASSERT_TRUE(s.send("POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  const std::string interim = s.read_until("\r\n\r\n", kAnswerBound);
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(s.send("body"));
  const auto r = s.read_responses(1, kAnswerBound);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find("POST /echo body"), std::string::npos);
}

// A keep-alive connection that sends nothing more is closed after the idle deadline; a request
// whose body stalls gets 408.
TEST(HttpServer, IdleKeepAliveAndStalledBodiesAreClosed) {
  HttpLimits limits;
  limits.idle_timeout_s = 0.5;
  limits.body_timeout_s = 0.5;
  Running srv(limits);
  {
    Socket s(srv.port);
    ASSERT_TRUE(s.send(get("/health")));
    bool closed = false;
    const std::string answer = s.read_until_closed(kAnswerBound, &closed);
    EXPECT_NE(answer.find("\r\n\r\nok"), std::string::npos);
    EXPECT_TRUE(closed) << "an idle keep-alive connection stays open";
  }
  Socket s(srv.port);
  ASSERT_TRUE(s.send("POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly part"));
  bool closed = false;
  const std::string answer = s.read_until_closed(kAnswerBound, &closed);
  EXPECT_NE(answer.find("408|the request body was not complete in time|body"), std::string::npos)
      << answer;
  EXPECT_TRUE(closed);
  EXPECT_EQ(srv.handled, 1);
}

// A handler sees whether its client is still there.
TEST(HttpServer, AHandlerSeesItsClientLeave) {
  HttpServer http{HttpLimits{}};
  std::atomic<int> saw_alive{-1}, saw_gone{-1};
  std::atomic<bool> client_closed{false};
  http.route("GET", "/wait", [&](const HttpRequest& req, HttpResponse& res) {
    saw_alive = req.client_gone() ? 0 : 1;
    const auto end = Clock::now() + std::chrono::duration<double>(kAnswerBound);
    while (!client_closed && Clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    bool gone = false;
    while (!gone && Clock::now() < end) {
      gone = req.client_gone();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    saw_gone = gone ? 1 : 0;
    res.set_content("late", "text/plain");
  });
  const int port = http.bind("127.0.0.1", 0);
  std::thread t([&] { http.listen(); });
  {
    Socket s(port);
    ASSERT_TRUE(s.send(get("/wait")));
    const auto end = Clock::now() + std::chrono::duration<double>(kAnswerBound);
    while (saw_alive < 0 && Clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  client_closed = true;
  const auto end = Clock::now() + std::chrono::duration<double>(kAnswerBound);
  while (saw_gone < 0 && Clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  http.stop();
  t.join();
  EXPECT_EQ(saw_alive, 1);
  EXPECT_EQ(saw_gone, 1);
}

TEST(HttpServer, BindErrorsNameTheAddress) {
  HttpServer a{HttpLimits{}};
  const int port = a.bind("127.0.0.1", 0);
  HttpServer b{HttpLimits{}};
  try {
    b.bind("127.0.0.1", port);
    FAIL() << "a second bind of the same port succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(port)),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(b.bind("not-an-address.invalid", 0), std::runtime_error);
}

}  // namespace
}  // namespace dapx::server
