#include "kv/prefix_cache.h"

#include <algorithm>

#include "kv/prefix_disk.h"
#include "util/error.h"

namespace dapx {

int64_t PrefixCache::Hit::tokens() const {
  int64_t n = 0;
  for (const auto& b : blocks) n += static_cast<int64_t>(b->tokens.size());
  return n;
}

PrefixCache::PrefixCache(int64_t max_bytes, int64_t block_tokens)
    : max_bytes_(max_bytes), block_tokens_(block_tokens) {
  if (max_bytes < 0) throw Error("--prefix-cache must be >= 0 bytes");
  if (block_tokens < 1) throw Error("prefix cache blocks must hold at least 1 token");
  stats_.max_bytes = max_bytes;
  stats_.block_tokens = block_tokens;
}

PrefixCache::~PrefixCache() = default;

void PrefixCache::attach_disk(std::unique_ptr<PrefixDisk> disk, int64_t layers, int64_t kv_heads,
                              int64_t head_dim, at::ScalarType dtype) {
  std::lock_guard<std::mutex> lock(mu_);
  disk_ = std::move(disk);
  disk_layers_ = layers;
  disk_shape_ = {kv_heads, block_tokens_, head_dim};
  disk_dtype_ = dtype;
}

void PrefixCache::set_disk_max_bytes(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (disk_) disk_->set_max_bytes(bytes);
}

// FNV-1a over every token up to each block's end: block b's key names the whole prefix.
std::vector<PrefixCache::Key> PrefixCache::keys_of(const std::vector<int>& tokens,
                                                   int64_t blocks) const {
  std::vector<Key> keys;
  uint64_t h = 1469598103934665603ull;
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t i = b * block_tokens_; i < (b + 1) * block_tokens_; ++i) {
      const uint32_t t = static_cast<uint32_t>(tokens[i]);
      for (int s = 0; s < 32; s += 8) {
        h ^= (t >> s) & 0xff;
        h *= 1099511628211ull;
      }
    }
    keys.push_back(h);
  }
  return keys;
}

PrefixCache::Hit PrefixCache::lookup(const std::vector<int>& tokens, int64_t max_tokens) {
  const int64_t blocks =
      std::min<int64_t>(static_cast<int64_t>(tokens.size()), max_tokens) / block_tokens_;
  const std::vector<Key> keys = keys_of(tokens, blocks);
  Hit hit;
  std::lock_guard<std::mutex> lock(mu_);
  for (int64_t b = 0; b < blocks; ++b) {
    auto it = map_.find(keys[b]);
    if (it == map_.end()) {  // on disk? (read under the lock: a rare, one-block read)
      if (!disk_) break;
      std::shared_ptr<Block> read =
          disk_->read(keys[b], tokens.data() + b * block_tokens_, block_tokens_, disk_layers_,
                      disk_shape_, disk_dtype_);
      if (!read) break;
      evict_locked(read->bytes);
      if (stats_.bytes + read->bytes > max_bytes_) {  // no room in RAM: served, not kept
        hit.blocks.push_back(std::move(read));
        continue;
      }
      lru_.push_front(keys[b]);
      it = map_.emplace(keys[b], Slot{std::move(read), lru_.begin()}).first;
      stats_.bytes += it->second.block->bytes;
      ++stats_.blocks;
    }
    const Block& block = *it->second.block;
    if (!std::equal(block.tokens.begin(), block.tokens.end(), tokens.begin() + b * block_tokens_))
      break;  // a hash collision: never serve another prompt's KV
    hit.blocks.push_back(it->second.block);
    lru_.splice(lru_.begin(), lru_, it->second.at);
    if (disk_) disk_->touch(keys[b]);  // used: its file is evicted from the folder later
  }
  ++(hit.blocks.empty() ? stats_.misses : stats_.hits);
  stats_.hit_tokens += hit.tokens();
  return hit;
}

std::unique_ptr<PrefixCache::Pending> PrefixCache::begin(const std::vector<int>& tokens, int64_t n,
                                                         int64_t from_tokens) {
  auto p = std::make_unique<Pending>();
  p->block_tokens_ = block_tokens_;
  const int64_t blocks = std::min<int64_t>(n, static_cast<int64_t>(tokens.size())) / block_tokens_;
  p->first_ = from_tokens / block_tokens_;
  const std::vector<Key> keys = keys_of(tokens, blocks);
  std::lock_guard<std::mutex> lock(mu_);
  for (int64_t b = p->first_; b < blocks; ++b) {
    if (map_.count(keys[b])) continue;
    auto block = std::make_shared<Block>();
    block->tokens.assign(tokens.begin() + b * block_tokens_,
                         tokens.begin() + (b + 1) * block_tokens_);
    p->index_.push_back(b);
    p->keys_.push_back(keys[b]);
    p->blocks_.push_back(std::move(block));
  }
  return p;
}

void PrefixCache::Pending::add_layer(const LayerKV& kv) {
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const int64_t start = index_[i] * block_tokens_;
    Block& b = *blocks_[i];
    b.k.push_back(kv.keys().narrow(1, start, block_tokens_).clone());
    b.v.push_back(kv.values().narrow(1, start, block_tokens_).clone());
    b.bytes += 2 * b.k.back().numel() * static_cast<int64_t>(b.k.back().element_size());
  }
}

void PrefixCache::commit(std::unique_ptr<Pending> pending) {
  if (!pending) return;
  std::vector<std::pair<Key, std::shared_ptr<const Block>>> to_disk;
  {
    std::lock_guard<std::mutex> lock(mu_);
    bool room = true;
    for (size_t i = 0; i < pending->blocks_.size(); ++i) {
      const Key key = pending->keys_[i];
      std::shared_ptr<Block>& block = pending->blocks_[i];
      if (map_.count(key)) continue;  // another request stored it meanwhile
      if (disk_) to_disk.emplace_back(key, block);
      if (!room) continue;
      evict_locked(block->bytes);
      if (stats_.bytes + block->bytes > max_bytes_) {  // pinned blocks fill the limit
        room = false;
        continue;
      }
      lru_.push_front(key);
      map_[key] = Slot{std::move(block), lru_.begin()};
      stats_.bytes += map_[key].block->bytes;
      ++stats_.blocks;
    }
  }
  for (const auto& [key, block] : to_disk) disk_->write(key, *block);  // outside the lock
}

void PrefixCache::store(const std::vector<int>& tokens, int64_t n, const KVCache& cache) {
  std::unique_ptr<Pending> p = begin(tokens, n, 0);
  for (int l = 0; l < cache.num_layers(); ++l) p->add_layer(cache.layer(l));
  commit(std::move(p));
}

void PrefixCache::evict_locked(int64_t need) {
  for (auto it = lru_.end(); stats_.bytes + need > max_bytes_ && it != lru_.begin();) {
    --it;
    const auto slot = map_.find(*it);
    if (slot->second.block.use_count() > 1) continue;  // pinned by a request
    stats_.bytes -= slot->second.block->bytes;
    --stats_.blocks;
    ++stats_.evictions;
    map_.erase(slot);
    it = lru_.erase(it);
  }
}

PrefixCache::Stats PrefixCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s = stats_;
  if (disk_) {
    const PrefixDisk::Stats d = disk_->stats();
    s.disk_reads = d.reads;
    s.disk_writes = d.writes;
    s.disk_dropped = d.dropped;
    s.disk_evicted = d.evicted;
    s.disk_max_bytes = d.max_bytes;
  }
  return s;
}

}  // namespace dapx
