#pragma once
// Scratch directories for tests: remove_tree, and a unique directory under the system temp
// dir, removed with everything in it.
#include <ftw.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace dapx::test {

// Removes a directory tree with libc's nftw, not std::filesystem::remove_all: with a pip-installed
// LibTorch (torch 2.11), calls to remove_all bind to a copy libtorch.so exports, which crashes.
inline void remove_tree(const std::filesystem::path& dir) {
  auto remove_one = [](const char* path, const struct stat*, int, struct FTW*) {
    return std::remove(path);
  };
  ::nftw(dir.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("dapx_io_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
             std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { remove_tree(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace dapx::test
