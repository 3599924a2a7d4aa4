#pragma once
// Prefix cache blocks on disk (--prefix-cache-dir): one safetensors file per block, so that a
// later process (a restarted server, a second `dapx generate` on the same document) finds the
// document's K/V instead of prefilling it again. A file is named for the model and the block's
// key, and its header holds the model's identity, the key and the block's tokens: a file that
// is corrupt, truncated, of another model or of other tokens is reported in the log, deleted,
// and the block recomputed, never served. The folder's block files (every model's) are bounded
// by bytes: after a write the least recently used (oldest mtime; a hit touches its file) go.
#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace dapx {

struct PrefixBlock;

class PrefixDisk {
 public:
  struct Stats {
    int64_t reads = 0, writes = 0, dropped = 0, evicted = 0;
    int64_t max_bytes = 0;  // the folder's bound (0: unbounded)
  };
  // `identity` names the model and its KV layout (weights' fingerprint, kv dtype): blocks of
  // another identity are never read. Creates `dir` if needed (dapx::Error when it cannot). The
  // bound starts at default_max_bytes().
  PrefixDisk(std::filesystem::path dir, std::string identity);

  // Half of what the folder can take now: the disk's free space plus its block files (4 GiB
  // when the disk does not say).
  int64_t default_max_bytes() const;
  // Bounds the folder's block files to `bytes` (0: unbounded), evicting at once if over it.
  void set_max_bytes(int64_t bytes);
  // Marks the block's file as just used (a RAM hit: the block stays on disk longer).
  void touch(uint64_t key) const;
  // Whether `name` is a block file's name (of any model); no other file is counted or deleted.
  static bool is_block_file(const std::string& name);

  // Writes the block (a temporary file renamed into place, so a reader never sees half a
  // file); a failure is logged and leaves the block in RAM only.
  void write(uint64_t key, const PrefixBlock& block) const;
  // The block stored for `key` if its file exists and holds exactly these tokens, `layers`
  // layers of K/V of `shape` in `dtype`; null otherwise (a bad file is logged and deleted).
  std::shared_ptr<PrefixBlock> read(uint64_t key, const int* tokens, int64_t n, int64_t layers,
                                    const std::vector<int64_t>& shape, at::ScalarType dtype) const;
  Stats stats() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path file_of(uint64_t key) const;
  void drop(const std::filesystem::path& file, const std::string& why) const;
  // The block files' bytes; with `evict`, deletes the least recently used past the bound.
  int64_t scan(bool evict) const;

  std::filesystem::path dir_;
  std::string identity_, prefix_;  // prefix_: the identity's hash, starting every file name
  mutable std::mutex mu_;
  mutable Stats stats_;  // stats_.max_bytes: the bound
};

}  // namespace dapx
