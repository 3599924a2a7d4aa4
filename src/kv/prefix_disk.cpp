#include "kv/prefix_disk.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>

#include "io/safetensors.h"
#include "kv/prefix_cache.h"
#include "util/error.h"

namespace dapx {
namespace {

constexpr const char* kFormat = "dapx-prefix-block-1";

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t fnv(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string join(const int* tokens, int64_t n) {
  std::string out;
  for (int64_t i = 0; i < n; ++i) out += (i ? "," : "") + std::to_string(tokens[i]);
  return out;
}

DType dtype_of(at::ScalarType t) {
  if (t == at::kBFloat16) return DType::BF16;
  if (t == at::kFloat) return DType::F32;
  if (t == at::kHalf) return DType::F16;
  throw Error("prefix cache blocks on disk hold bf16, f16 or f32 K/V");
}

}  // namespace

PrefixDisk::PrefixDisk(std::filesystem::path dir, std::string identity)
    : dir_(std::move(dir)), identity_(std::move(identity)), prefix_(hex(fnv(identity_))) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec || !std::filesystem::is_directory(dir_))
    throw Error("--prefix-cache-dir '" + dir_.string() + "': cannot create the folder" +
                (ec ? ": " + ec.message() : ""));
  stats_.max_bytes = default_max_bytes();
}

int64_t PrefixDisk::default_max_bytes() const {
  std::error_code ec;
  const std::filesystem::space_info s = std::filesystem::space(dir_, ec);
  if (ec || s.available == static_cast<std::uintmax_t>(-1)) return int64_t{4} << 30;
  // at least 1 byte: 0 would mean unbounded on a full disk
  return std::max<int64_t>(1, (static_cast<int64_t>(s.available) + scan(false)) / 2);
}

void PrefixDisk::set_max_bytes(int64_t bytes) {
  if (bytes < 0) throw Error("--prefix-cache-dir-bytes must be >= 0 bytes");
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.max_bytes = bytes;
  }
  scan(true);
}

bool PrefixDisk::is_block_file(const std::string& name) {
  // file_of(): 16 hex digits (the identity's hash), '-', 16 hex digits (the key), the extension
  static const std::string ext = ".safetensors";
  if (name.size() != 33 + ext.size() || name[16] != '-' || name.compare(33, ext.size(), ext) != 0)
    return false;
  for (size_t i = 0; i < 33; ++i)
    if (i != 16 && !((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
      return false;
  return true;
}

int64_t PrefixDisk::scan(bool evict) const {
  struct File {
    std::pair<int64_t, int64_t> used;  // mtime: seconds, nanoseconds
    std::filesystem::path path;
    int64_t bytes;
  };
  std::vector<File> files;
  int64_t total = 0;
  // One scan per write: a few thousand names cost far less than writing a block. Under the
  // lock, so that two writers do not both evict for the same excess.
  std::lock_guard<std::mutex> lock(mu_);
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    if (!is_block_file(it->path().filename().string())) continue;
    struct stat st;  // one call for size and mtime; a file deleted meanwhile is skipped
    if (::stat(it->path().c_str(), &st) != 0) continue;
    files.push_back({{st.st_mtim.tv_sec, st.st_mtim.tv_nsec}, it->path(), st.st_size});
    total += st.st_size;
  }
  if (!evict || stats_.max_bytes <= 0 || total <= stats_.max_bytes) return total;
  std::sort(files.begin(), files.end(), [](const File& a, const File& b) {
    return a.used != b.used ? a.used < b.used : a.path < b.path;
  });
  for (const File& f : files) {
    if (total <= stats_.max_bytes) break;
    std::error_code rm_ec;
    if (std::filesystem::remove(f.path, rm_ec)) ++stats_.evicted;
    total -= f.bytes;
  }
  return total;
}

void PrefixDisk::touch(uint64_t key) const {
  std::error_code ec;  // a file evicted meanwhile stays gone (its block is in RAM)
  std::filesystem::last_write_time(file_of(key), std::filesystem::file_time_type::clock::now(), ec);
}

std::filesystem::path PrefixDisk::file_of(uint64_t key) const {
  return dir_ / (prefix_ + "-" + hex(key) + ".safetensors");
}

void PrefixDisk::drop(const std::filesystem::path& file, const std::string& why) const {
  std::cerr << "[dapx] prefix cache: dropped " + file.string() + ": " + why +
                   " (the block is recomputed)\n";
  std::error_code ec;
  std::filesystem::remove(file, ec);
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.dropped;
}

void PrefixDisk::write(uint64_t key, const PrefixBlock& block) const {
  const std::filesystem::path file = file_of(key);
  std::vector<TensorData> tensors;
  for (size_t l = 0; l < block.k.size(); ++l)
    for (const char kind : {'k', 'v'}) {
      const at::Tensor t = (kind == 'k' ? block.k[l] : block.v[l]).contiguous().cpu();
      TensorData d;
      d.name = std::string(1, kind) + "." + std::to_string(l);
      d.dtype = dtype_of(t.scalar_type());
      d.shape = t.sizes().vec();
      const auto* p = static_cast<const std::byte*>(t.data_ptr());
      d.bytes.assign(p, p + t.numel() * t.element_size());
      tensors.push_back(std::move(d));
    }
  const std::map<std::string, std::string> meta = {
      {"format", kFormat},
      {"model", identity_},
      {"key", hex(key)},
      {"tokens", join(block.tokens.data(), static_cast<int64_t>(block.tokens.size()))}};
  const std::filesystem::path tmp =
      file.string() + ".tmp" + std::to_string(static_cast<long long>(::getpid()));
  try {
    write_safetensors(tmp, tensors, meta);
    std::filesystem::rename(tmp, file);
    touch(key);  // the same fine clock as a hit's touch (the kernel's own stamps are coarser)
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    std::cerr << "[dapx] prefix cache: cannot write " + file.string() + ": " + e.what() +
                     " (the block stays in RAM only)\n";
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.writes;
  }
  scan(true);
}

std::shared_ptr<PrefixBlock> PrefixDisk::read(uint64_t key, const int* tokens, int64_t n,
                                              int64_t layers, const std::vector<int64_t>& shape,
                                              at::ScalarType dtype) const {
  const std::filesystem::path file = file_of(key);
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return nullptr;
  std::unique_ptr<SafetensorsFile> f;
  try {
    f = SafetensorsFile::open(file);
  } catch (const std::exception& e) {
    drop(file, e.what());
    return nullptr;
  }
  const auto& meta = f->metadata();
  const auto field = [&](const char* k) {
    const auto it = meta.find(k);
    return it == meta.end() ? std::string() : it->second;
  };
  if (field("format") != kFormat) {
    drop(file, "not a prefix cache block (format '" + field("format") + "')");
    return nullptr;
  }
  if (field("model") != identity_) {
    drop(file, "a block of another model (" + field("model").substr(0, 120) + ")");
    return nullptr;
  }
  if (field("key") != hex(key) || field("tokens") != join(tokens, n)) {
    drop(file, "its tokens are not this prompt's");  // a hash collision, or a renamed file
    return nullptr;
  }
  auto block = std::make_shared<PrefixBlock>();
  block->tokens.assign(tokens, tokens + n);
  const DType want = dtype_of(dtype);
  for (int64_t l = 0; l < layers; ++l)
    for (const char kind : {'k', 'v'}) {
      const std::string name = std::string(1, kind) + "." + std::to_string(l);
      const TensorView* t = f->find(name);
      if (!t || t->shape != shape || t->dtype != want) {
        drop(file, "tensor '" + name + "' is missing or of another shape or dtype");
        return nullptr;
      }
      at::Tensor x = at::empty(shape, at::TensorOptions().dtype(dtype));
      std::memcpy(x.data_ptr(), t->data, t->nbytes);
      (kind == 'k' ? block->k : block->v).push_back(x);
      block->bytes += static_cast<int64_t>(t->nbytes);
    }
  touch(key);
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.reads;
  return block;
}

PrefixDisk::Stats PrefixDisk::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace dapx
