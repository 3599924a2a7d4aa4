#include "server/client_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>

namespace dapx::server {
namespace {

// Address text and port of a socket address, as cpp-httplib writes them into a Request.
bool endpoint(const sockaddr_storage& a, std::string* addr, int* port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
    if (!inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text)) return false;
    *port = ntohs(v4.sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
    if (!inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text)) return false;
    *port = ntohs(v6.sin6_port);
  } else {
    return false;
  }
  *addr = text;
  return true;
}

}  // namespace

std::optional<ClientConnection> ClientConnection::find(const std::string& remote_addr,
                                                       int remote_port, int local_port) {
  rlimit lim{};
  const int max_fd = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY
                         ? static_cast<int>(std::min<rlim_t>(lim.rlim_cur, 1 << 16))
                         : 1 << 16;
  for (int fd = 0; fd < max_fd; ++fd) {
    sockaddr_storage peer{}, self{};
    socklen_t peer_len = sizeof peer, self_len = sizeof self;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&self), &self_len) != 0) continue;
    std::string peer_addr, self_addr;
    int peer_port = -1, self_port = -1;
    if (!endpoint(peer, &peer_addr, &peer_port) || !endpoint(self, &self_addr, &self_port))
      continue;
    if (peer_port == remote_port && self_port == local_port && peer_addr == remote_addr)
      return ClientConnection(fd);
  }
  return std::nullopt;
}

bool ClientConnection::gone() const {
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return false;  // nothing to read: still connected
  if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return true;
  char c = 0;
  return recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;  // 0: the peer closed its end
}

}  // namespace dapx::server
