#pragma once
// Prefix KV cache: the full (uncompressed) K/V of prompt blocks, kept across requests so that a
// second question about the same document, or the next turn of a chat, prefills only its new
// suffix. A block is `block_tokens` tokens (the prefill chunk, so a suffix's chunks fall where
// a cold prefill's do and the numbers are bit for bit the same); it is found by a hash of every
// token up to its end (equal prefixes share blocks, a change invalidates every block after it,
// as vLLM's automatic prefix caching), and its tokens are compared on lookup, so a hash
// collision can never serve another prompt's KV. The K/V at positions 0..P-1 depend only on
// tokens 0..P-1, so any method whose target (or draft) runs the exact dense prefill of those
// tokens may reuse them; each request copies the blocks into its own cache and compresses its
// own copy, the cached blocks stay full for the next request.
//
// Bounded by bytes, least recently used out first; a block a request holds (a Hit) is pinned:
// never evicted while held. One cache serves one model (its KV layout and dtype), in RAM and,
// with attach_disk(), in a folder that outlives the process; thread-safe.
#include <ATen/ATen.h>

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kv/kv_cache.h"

namespace dapx {

class PrefixDisk;

struct PrefixBlock {
  std::vector<int> tokens;       // this block's tokens
  std::vector<at::Tensor> k, v;  // per layer [kv_heads, block_tokens, head_dim]
  int64_t bytes = 0;
};

class PrefixCache {
 public:
  using Block = PrefixBlock;
  // The cached blocks that start a prompt, pinned while this lives.
  struct Hit {
    std::vector<std::shared_ptr<const Block>> blocks;
    int64_t tokens() const;
  };
  struct Stats {
    int64_t hits = 0, misses = 0, hit_tokens = 0, bytes = 0, blocks = 0, evictions = 0;
    int64_t max_bytes = 0, block_tokens = 0;
    // With a disk: blocks read from and written to it, bad files dropped, files evicted for
    // the folder's bound (disk_max_bytes; 0: unbounded).
    int64_t disk_reads = 0, disk_writes = 0, disk_dropped = 0, disk_evicted = 0;
    int64_t disk_max_bytes = 0;
  };

  PrefixCache(int64_t max_bytes, int64_t block_tokens);
  ~PrefixCache();
  // Keeps every block also on disk (kv/prefix_disk.h) and looks there on a RAM miss; a block
  // read back holds `layers` layers of [kv_heads, block_tokens, head_dim] in `dtype`.
  void attach_disk(std::unique_ptr<PrefixDisk> disk, int64_t layers, int64_t kv_heads,
                   int64_t head_dim, at::ScalarType dtype);
  // The disk folder's bound in bytes (PrefixDisk::set_max_bytes; 0: unbounded); no-op without
  // a disk.
  void set_disk_max_bytes(int64_t bytes);

  int64_t block_tokens() const { return block_tokens_; }
  // The longest run of cached whole blocks that starts `tokens`, at most `max_tokens` tokens.
  Hit lookup(const std::vector<int>& tokens, int64_t max_tokens);
  // Adds the whole blocks of tokens[0, n) not cached yet, their K/V read from `cache` (rows
  // 0..n-1 of every layer in position order, uncompacted). Blocks that do not fit the byte
  // limit (after evicting unpinned ones) are left out.
  void store(const std::vector<int>& tokens, int64_t n, const KVCache& cache);
  // As store(), from one layer at a time (a layer-major prefill holds one layer's full K/V):
  // begin() the blocks to add, add_layer() each layer in order, commit() when every layer is in.
  class Pending;
  std::unique_ptr<Pending> begin(const std::vector<int>& tokens, int64_t n, int64_t from_tokens);
  void commit(std::unique_ptr<Pending> pending);
  Stats stats() const;

 private:
  using Key = uint64_t;
  std::vector<Key> keys_of(const std::vector<int>& tokens, int64_t blocks) const;
  void evict_locked(int64_t need);

  const int64_t max_bytes_, block_tokens_;
  mutable std::mutex mu_;
  std::list<Key> lru_;  // front: most recently used
  struct Slot {
    std::shared_ptr<const Block> block;
    std::list<Key>::iterator at;
  };
  std::unordered_map<Key, Slot> map_;
  Stats stats_;
  std::unique_ptr<PrefixDisk> disk_;  // null: RAM only
  int64_t disk_layers_ = 0;
  std::vector<int64_t> disk_shape_;
  at::ScalarType disk_dtype_ = at::kFloat;
};

// Blocks of one prompt being filled layer by layer (PrefixCache::begin).
class PrefixCache::Pending {
 public:
  // Copies each block's rows of this layer's live K/V (positions 0..n-1 in order).
  void add_layer(const LayerKV& kv);
  bool empty() const { return blocks_.empty(); }

 private:
  friend class PrefixCache;
  std::vector<int64_t> index_;  // block numbers in the prompt
  std::vector<Key> keys_;
  std::vector<std::shared_ptr<Block>> blocks_;
  int64_t first_ = 0, block_tokens_ = 0;
};

}  // namespace dapx
