#include "server/client_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <vector>

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

// Open descriptors of this process: /proc/self/fd lists them (a few dozen in a server), where
// probing every number up to RLIMIT_NOFILE could take a million system calls.
std::vector<int> open_descriptors() {
  std::vector<int> fds;
  std::error_code ec;
  namespace fs = std::filesystem;
  for (fs::directory_iterator it("/proc/self/fd", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name.size() < 10 &&
        std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isdigit(c); }))
      fds.push_back(std::stoi(name));
  }
  if (ec || fds.empty())
    for (int fd = 0; fd < 4096; ++fd) fds.push_back(fd);
  return fds;
}

}  // namespace

std::optional<ClientConnection> ClientConnection::find(const std::string& remote_addr,
                                                       int remote_port, int local_port) {
  for (const int fd : open_descriptors()) {
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
