#pragma once
// The TCP connection a request arrived on, so that a handler can notice a client that left.
// cpp-httplib 0.11 (Debian's) does not give handlers their socket (later versions have
// Request::is_connection_closed); the connection is found by its two endpoints instead.

#include <optional>
#include <string>

namespace dapx::server {

class ClientConnection {
 public:
  // The open socket of this process whose peer is remote_addr:remote_port and whose local
  // port is local_port; nullopt when there is none (e.g. the client already left).
  static std::optional<ClientConnection> find(const std::string& remote_addr, int remote_port,
                                              int local_port);

  // True once the peer has closed or reset the connection. Never blocks; bytes the client
  // sent ahead (a pipelined request) count as alive and are left unread.
  bool gone() const;

  int fd() const { return fd_; }

 private:
  explicit ClientConnection(int fd) : fd_(fd) {}
  int fd_;  // not owned: the HTTP server closes it after the handler returns
};

}  // namespace dapx::server
