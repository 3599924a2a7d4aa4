#include "kv/prefix_cache.h"

#include <algorithm>

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
    const auto it = map_.find(keys[b]);
    if (it == map_.end()) break;
    const Block& block = *it->second.block;
    if (!std::equal(block.tokens.begin(), block.tokens.end(), tokens.begin() + b * block_tokens_))
      break;  // a hash collision: never serve another prompt's KV
    hit.blocks.push_back(it->second.block);
    lru_.splice(lru_.begin(), lru_, it->second.at);
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
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < pending->blocks_.size(); ++i) {
    const Key key = pending->keys_[i];
    std::shared_ptr<Block>& block = pending->blocks_[i];
    if (map_.count(key)) continue;  // another request stored it meanwhile
    evict_locked(block->bytes);
    if (stats_.bytes + block->bytes > max_bytes_) break;  // pinned blocks fill the limit
    lru_.push_front(key);
    map_[key] = Slot{std::move(block), lru_.begin()};
    stats_.bytes += map_[key].block->bytes;
    ++stats_.blocks;
  }
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
  return stats_;
}

}  // namespace dapx
