// The prefix cache on disk (--prefix-cache-dir): blocks written by one cache are read back by a
// new one (a restarted process) and give exactly the cold answer and selection; a block file
// that is truncated, corrupt or of another model is reported, deleted, recomputed and written
// again, never served. The folder's block files stay under --prefix-cache-dir-bytes, least
// recently used out first, and no other file in it is touched.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "engine/generator.h"
#include "io/safetensors.h"
#include "kv/prefix_cache.h"
#include "kv/prefix_disk.h"
#include "method_test_util.h"
#include "methods/catalogue.h"
#include "temp_dir.h"

namespace dapx {
namespace {

using testing::greedy;
using testing::load_f32;
using testing::prompt_of;

nlohmann::json without_volatile(nlohmann::json info) {  // timings and cache counters
  for (auto it = info.begin(); it != info.end();) {
    const std::string& k = it.key();
    const bool timing = k.size() > 2 && k.compare(k.size() - 2, 2, "_s") == 0;
    if (timing || k.find("prefix_cached_tokens") != std::string::npos)
      it = info.erase(it);
    else
      ++it;
  }
  return info;
}

uint64_t fnv(const unsigned char* p, size_t n, uint64_t h = 1469598103934665603ull) {
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The file of the first block of `tokens` (blocks of `block` tokens) for `model`: named for the
// hash of the model's identity and the hash of the block's tokens (each as 4 little-endian bytes).
std::filesystem::path first_block_file(const std::filesystem::path& dir, const LoadedModel& model,
                                       const std::vector<int>& tokens, int block) {
  const std::string id = kv_identity(model);
  uint64_t key = 1469598103934665603ull;
  for (int i = 0; i < block; ++i) {
    const uint32_t t = static_cast<uint32_t>(tokens[i]);
    const unsigned char bytes[4] = {
        static_cast<unsigned char>(t), static_cast<unsigned char>(t >> 8),
        static_cast<unsigned char>(t >> 16), static_cast<unsigned char>(t >> 24)};
    key = fnv(bytes, 4, key);
  }
  return dir / (hex(fnv(reinterpret_cast<const unsigned char*>(id.data()), id.size())) + "-" +
                hex(key) + ".safetensors");
}

class PrefixDiskTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    target_ = load_f32(Arch::Qwen2, 7).release();  // prefill chunk 16: blocks of 16 tokens
    draft_ = load_f32(Arch::Qwen2, 8).release();
  }
  static void TearDownTestSuite() {
    delete target_;
    delete draft_;
  }
  // One run of `name` with a fresh cache (empty RAM) on `dir`, or without a cache.
  static GenerationResult run(const std::string& name, const nlohmann::json& params,
                              const std::vector<int>& prompt, const std::filesystem::path& dir,
                              PrefixCache::Stats* stats = nullptr) {
    auto m = make_method(name, params, testing::recording(draft_));
    GenerationParams g = greedy(6);
    std::unique_ptr<PrefixCache> cache, draft_cache;
    if (!dir.empty()) {
      cache = std::make_unique<PrefixCache>(int64_t{1} << 30, 16);
      draft_cache = std::make_unique<PrefixCache>(int64_t{1} << 30, 16);
      attach_prefix_disk(*cache, *target_, dir);
      attach_prefix_disk(*draft_cache, *draft_, dir);
      g.prefix_cache = cache.get();
      g.draft_prefix_cache = draft_cache.get();
    }
    GenerationResult r = generate(*target_, *m, prompt, g);
    if (stats) *stats = cache->stats();
    return r;
  }
  static LoadedModel* target_;
  static LoadedModel* draft_;
};
LoadedModel* PrefixDiskTest::target_ = nullptr;
LoadedModel* PrefixDiskTest::draft_ = nullptr;

TEST_F(PrefixDiskTest, ANewCacheReadsTheBlocksAndAnswersAsCold) {
  struct Case {
    std::string name;
    nlohmann::json params;
  };
  const std::vector<Case> cases = {
      {"full", nlohmann::json::object()},
      {"snapkv", {{"budget", 48}, {"window", 16}}},
      {"speckv", {{"budget", 48}, {"window", 16}, {"lookahead", 4}, {"prefill", "dense"}}},
      {"specpc", {{"budget", 64}, {"window", 16}, {"kernel", 5}}}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    test::TempDir dir;
    const std::vector<int> prompt = prompt_of(120, target_->config.vocab_size);  // 7 whole blocks
    const GenerationResult cold = run(c.name, c.params, prompt, {});
    PrefixCache::Stats first, second;
    const GenerationResult writing = run(c.name, c.params, prompt, dir.path(), &first);
    const GenerationResult reading = run(c.name, c.params, prompt, dir.path(), &second);
    for (const GenerationResult* r : {&writing, &reading}) {
      EXPECT_EQ(r->tokens, cold.tokens);
      EXPECT_EQ(without_volatile(r->method_info), without_volatile(cold.method_info));
    }
    if (c.name != "specpc") {  // the target's dense prefill is what the blocks hold
      EXPECT_GT(first.disk_writes, 0);
      EXPECT_EQ(first.disk_reads, 0);
      EXPECT_GT(second.disk_reads, 0);
      EXPECT_GT(reading.stats.cached_tokens, 0);
    }
    EXPECT_EQ(second.disk_dropped, 0);
  }
}

TEST_F(PrefixDiskTest, BadBlockFilesAreDroppedRecomputedAndRewritten) {
  test::TempDir dir;
  const std::vector<int> prompt = prompt_of(120, target_->config.vocab_size);
  const GenerationResult cold = run("full", nlohmann::json::object(), prompt, {});
  run("full", nlohmann::json::object(), prompt, dir.path());
  const std::filesystem::path file = first_block_file(dir.path(), *target_, prompt, 16);
  ASSERT_TRUE(std::filesystem::exists(file)) << file;
  const auto size = std::filesystem::file_size(file);

  const auto spoil = [&](const std::string& how) {
    if (how == "truncated") {
      std::filesystem::resize_file(file, size / 2);
    } else if (how == "corrupt") {
      std::ofstream(file, std::ios::binary | std::ios::trunc) << "not a safetensors file at all";
    } else {  // another model's identity in an otherwise valid block file
      std::vector<TensorData> tensors;
      std::map<std::string, std::string> meta;
      {
        const auto f = SafetensorsFile::open(file);
        meta = f->metadata();
        for (const auto& [name, t] : f->tensors())
          tensors.push_back(
              {name, t.dtype, t.shape, std::vector<std::byte>(t.data, t.data + t.nbytes)});
      }
      meta["model"] = "weights 0123456789abcdef dtype Float kv Float chunk 16 device cpu";
      write_safetensors(file, tensors, meta);
    }
  };
  for (const std::string how : {"truncated", "corrupt", "foreign"}) {
    SCOPED_TRACE(how);
    spoil(how);
    PrefixCache::Stats stats;
    const GenerationResult r = run("full", nlohmann::json::object(), prompt, dir.path(), &stats);
    EXPECT_EQ(r.tokens, cold.tokens);
    EXPECT_EQ(stats.disk_dropped, 1);  // the first block: nothing after it is looked at
    EXPECT_EQ(stats.disk_reads, 0);
    EXPECT_EQ(r.stats.cached_tokens, 0);
    EXPECT_GE(stats.disk_writes, 1);  // recomputed and written again
    ASSERT_TRUE(std::filesystem::exists(file));
    EXPECT_EQ(std::filesystem::file_size(file), size);
    PrefixCache::Stats again;  // and the rewritten file serves the next run
    run("full", nlohmann::json::object(), prompt, dir.path(), &again);
    EXPECT_GT(again.disk_reads, 0);
    EXPECT_EQ(again.disk_dropped, 0);
  }
}

// The folder's bound (--prefix-cache-dir-bytes), on small blocks written directly: 4 tokens
// (4 digits each, so every file has the same size), one layer of [1, 4, 8] f32 K/V.
PrefixBlock small_block(uint64_t key) {
  PrefixBlock b;
  for (int i = 0; i < 4; ++i) b.tokens.push_back(1000 + static_cast<int>(key) * 4 + i);
  b.k.push_back(at::full({1, 4, 8}, static_cast<float>(key)));
  b.v.push_back(at::full({1, 4, 8}, -static_cast<float>(key)));
  b.bytes = 2 * 32 * 4;
  return b;
}

std::filesystem::path block_file(const std::filesystem::path& dir, const std::string& identity,
                                 uint64_t key) {
  return dir / (hex(fnv(reinterpret_cast<const unsigned char*>(identity.data()), identity.size())) +
                "-" + hex(key) + ".safetensors");
}

// The block files in `dir` (every model's): their count and bytes.
std::pair<int, int64_t> block_files(const std::filesystem::path& dir) {
  std::pair<int, int64_t> out{0, 0};
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (PrefixDisk::is_block_file(e.path().filename().string())) {
      ++out.first;
      out.second += static_cast<int64_t>(e.file_size());
    }
  return out;
}

TEST(PrefixDiskBound, KeepsTheFolderUnderItAndLeavesOtherFilesAlone) {
  test::TempDir dir;
  // Not block files (of the writer's pattern): never counted, never deleted.
  const std::vector<std::string> others = {"notes.txt", "weights.safetensors",
                                           "0123456789abcdef-0123456789abcdef.safetensors.tmp42",
                                           "0123456789ABCDEF-0123456789abcdef.safetensors"};
  for (const std::string& name : others)
    std::ofstream(dir / name, std::ios::binary) << std::string(8192, 'x');
  PrefixDisk other(dir.path(), "model b");  // another model's block, in the same folder
  other.write(99, small_block(99));
  PrefixDisk disk(dir.path(), "model a");
  EXPECT_GT(disk.stats().max_bytes, 0);  // the default: bounded
  const int64_t size = block_files(dir.path()).second;
  const int64_t bound = 3 * size + size / 2;  // room for 3 blocks
  disk.set_max_bytes(bound);
  for (uint64_t key = 1; key <= 20; ++key) {
    disk.write(key, small_block(key));
    EXPECT_LE(block_files(dir.path()).second, bound) << key;
  }
  EXPECT_EQ(block_files(dir.path()).first, 3);
  EXPECT_EQ(disk.stats().writes, 20);
  EXPECT_EQ(disk.stats().evicted, 18);  // the other model's block went first
  EXPECT_FALSE(std::filesystem::exists(block_file(dir.path(), "model b", 99)));
  for (uint64_t key = 18; key <= 20; ++key)
    EXPECT_TRUE(std::filesystem::exists(block_file(dir.path(), "model a", key))) << key;
  for (const std::string& name : others) {
    EXPECT_TRUE(std::filesystem::exists(dir / name)) << name;
    EXPECT_EQ(std::filesystem::file_size(dir / name), 8192u) << name;
  }
  disk.set_max_bytes(0);  // unbounded
  for (uint64_t key = 21; key <= 25; ++key) disk.write(key, small_block(key));
  EXPECT_EQ(block_files(dir.path()).first, 8);
  EXPECT_EQ(disk.stats().evicted, 18);
}

TEST(PrefixDiskBound, TheLeastRecentlyUsedFileGoesFirst) {
  test::TempDir dir;
  PrefixDisk disk(dir.path(), "model a");
  for (uint64_t key = 1; key <= 3; ++key) disk.write(key, small_block(key));
  const int64_t size = block_files(dir.path()).second / 3;
  disk.set_max_bytes(3 * size + size / 2);
  ASSERT_EQ(block_files(dir.path()).first, 3);
  // Written in order 1, 2, 3 (set apart by minutes: no reliance on the clock's resolution).
  const auto now = std::filesystem::file_time_type::clock::now();
  for (uint64_t key = 1; key <= 3; ++key)
    std::filesystem::last_write_time(block_file(dir.path(), "model a", key),
                                     now - std::chrono::minutes(10 - static_cast<int>(key)));
  const PrefixBlock one = small_block(1);  // a disk hit makes block 1 the most recently used
  ASSERT_NE(disk.read(1, one.tokens.data(), 4, 1, {1, 4, 8}, at::kFloat), nullptr);
  disk.write(4, small_block(4));
  EXPECT_TRUE(std::filesystem::exists(block_file(dir.path(), "model a", 1)));
  EXPECT_FALSE(std::filesystem::exists(block_file(dir.path(), "model a", 2)));
  EXPECT_TRUE(std::filesystem::exists(block_file(dir.path(), "model a", 3)));
  EXPECT_TRUE(std::filesystem::exists(block_file(dir.path(), "model a", 4)));
  disk.touch(3);  // a RAM hit on block 3: now block 1 is the oldest
  disk.write(5, small_block(5));
  EXPECT_FALSE(std::filesystem::exists(block_file(dir.path(), "model a", 1)));
  EXPECT_TRUE(std::filesystem::exists(block_file(dir.path(), "model a", 3)));
  EXPECT_EQ(disk.stats().evicted, 2);
}

}  // namespace
}  // namespace dapx
