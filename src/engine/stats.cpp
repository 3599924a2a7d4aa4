#include "engine/stats.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace dapx {

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

int64_t peak_rss_bytes() {
  // getrusage's ru_maxrss is never reset; VmHWM is (by reset_peak_rss).
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // in kB
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

int64_t resident_bytes(const void* data, int64_t bytes) {
  if (bytes <= 0) return 0;
  const int64_t page = sysconf(_SC_PAGESIZE);
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t end = begin + static_cast<uintptr_t>(bytes);
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return bytes;
  // One 64-bit entry per page; bit 63: present in RAM.
  std::vector<uint64_t> entries(4096);
  int64_t resident = 0;
  uintptr_t at = begin / page;
  const uintptr_t last = (end - 1) / page;
  while (at <= last) {
    const size_t n = static_cast<size_t>(std::min<uintptr_t>(entries.size(), last - at + 1));
    const ssize_t got = ::pread(fd, entries.data(), n * sizeof(uint64_t),
                                static_cast<off_t>(at * sizeof(uint64_t)));
    if (got != static_cast<ssize_t>(n * sizeof(uint64_t))) {
      ::close(fd);
      return bytes;
    }
    for (size_t i = 0; i < n; ++i) {
      if (!(entries[i] >> 63)) continue;
      const uintptr_t p0 = (at + i) * page, p1 = p0 + page;
      resident += static_cast<int64_t>(std::min(p1, end) - std::max(p0, begin));
    }
    at += n;
  }
  ::close(fd);
  return resident;
}

int64_t resident_weight_bytes(const Transformer& model) {
  int64_t resident = 0;
  for (const at::Tensor& t : model.weight_tensors())
    if (t.defined() && t.is_cpu())
      resident += resident_bytes(t.data_ptr(), t.numel() * static_cast<int64_t>(t.element_size()));
  return resident;
}

int64_t current_rss_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace dapx
