// The prefix cache: a request whose prompt starts with cached blocks generates exactly what it
// generates cold (tokens and the kept positions of every layer and head), for every method and
// for prompts that end on or within a block; the blocks it reuses are reported; eviction keeps
// the byte limit and never drops a block a request holds.
#include <gtest/gtest.h>

#include <memory>
#include <utility>
#include <vector>

#include "engine/generator.h"
#include "kv/prefix_cache.h"
#include "method_test_util.h"
#include "methods/catalogue.h"

namespace dapx {
namespace {

using testing::greedy;
using testing::load_f32;
using testing::prompt_of;

class PrefixCacheTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    target_ = load_f32(Arch::Qwen2, 7).release();  // prefill chunk 16: blocks of 16 tokens
    draft_ = load_f32(Arch::Qwen2, 8).release();
  }
  static void TearDownTestSuite() {
    delete target_;
    delete draft_;
  }
  static GenerationResult run(const std::string& name, const nlohmann::json& params,
                              const std::vector<int>& prompt, PrefixCache* cache,
                              PrefixCache* draft_cache = nullptr) {
    auto m = make_method(name, params, testing::recording(draft_));
    GenerationParams g = greedy(6);
    g.prefix_cache = cache;
    g.draft_prefix_cache = draft_cache;
    return generate(*target_, *m, prompt, g);
  }
  static LoadedModel* target_;
  static LoadedModel* draft_;
};
LoadedModel* PrefixCacheTest::target_ = nullptr;
LoadedModel* PrefixCacheTest::draft_ = nullptr;

std::vector<int> concat(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_F(PrefixCacheTest, EveryMethodWithAHitEqualsItselfCold) {
  struct Case {
    std::string name;
    nlohmann::json params;
    bool reuses;  // whether blocks before its first observation row exist
  };
  const std::vector<Case> cases = {
      {"full", nlohmann::json::object(), true},
      {"snapkv", {{"budget", 48}, {"window", 16}}, true},
      {"pyramidkv", {{"budget", 48}, {"window", 16}}, true},
      {"adakv", {{"budget", 48}, {"window", 16}}, true},
      {"tova", {{"budget", 48}}, true},
      {"knorm", {{"budget", 48}}, true},
      {"streaming", {{"budget", 48}}, true},
      {"h2o", {{"budget", 48}}, false},  // every prompt query observes: nothing to reuse
      {"speckv", {{"budget", 48}, {"window", 16}, {"lookahead", 4}, {"prefill", "dense"}}, true},
      {"speckv",
       {{"budget", 48},
        {"window", 16},
        {"lookahead", 4},
        {"prefill", "sparse"},
        {"vertical", 32},
        {"band", 32}},
       false},  // sparse K/V are not the dense ones
      {"laq", {{"budget", 48}, {"window", 16}, {"lookahead", 4}}, true},
      {"specpc", {{"budget", 64}, {"window", 16}, {"kernel", 5}}, false},
      {"speckv-pc",
       {{"budget", 96}, {"window", 16}, {"kernel", 5}, {"kv_budget", 40}, {"prefill", "dense"}},
       false}};
  const int vocab = target_->config.vocab_size;
  // The document ends on a block boundary, or within one; the question is longer than the
  // observation window, or shorter (the window reaches into cached blocks: its rows are
  // computed again in the chunk a cold prefill computes them in).
  for (const auto& [doc_len, question_len] :
       std::vector<std::pair<int, int>>{{160, 37}, {170, 37}, {160, 5}, {170, 5}}) {
    const std::vector<int> doc = prompt_of(doc_len, vocab, 7, 1);
    const std::vector<int> q1 = concat(doc, prompt_of(40, vocab, 13, 5));
    const std::vector<int> q2 = concat(doc, prompt_of(question_len, vocab, 17, 9));
    const int n = static_cast<int>(q2.size());
    for (const Case& c : cases) {
      const GenerationResult cold = run(c.name, c.params, q2, nullptr);
      PrefixCache cache(int64_t{1} << 30, 16), draft_cache(int64_t{1} << 30, 16);
      // The first question fills both caches: the target's by full KV, the draft's by SpecPC.
      run("full", nlohmann::json::object(), q1, &cache);
      run("specpc", {{"budget", 64}, {"window", 16}, {"kernel", 5}}, q1, nullptr, &draft_cache);
      const GenerationResult warm = run(c.name, c.params, q2, &cache, &draft_cache);
      const std::string what = c.name + " " + c.params.dump() + " doc " + std::to_string(doc_len) +
                               " question " + std::to_string(question_len);
      EXPECT_EQ(warm.tokens, cold.tokens) << what;
      EXPECT_EQ(warm.method_info.value("layers", nlohmann::json()),
                cold.method_info.value("layers", nlohmann::json()))
          << what;
      EXPECT_EQ(warm.method_info.value("kept_prompt_positions", nlohmann::json()),
                cold.method_info.value("kept_prompt_positions", nlohmann::json()))
          << what;
      EXPECT_EQ(warm.method_info.value("lookahead_tokens", nlohmann::json()),
                cold.method_info.value("lookahead_tokens", nlohmann::json()))
          << what;
      if (c.reuses) {  // LAQ's own lookahead pass stores the question's blocks first: more
        EXPECT_EQ(warm.stats.cached_tokens, c.name == "laq" ? (n - 1) / 16 * 16 : doc_len / 16 * 16)
            << what;
      } else if (c.name == "h2o" || c.name == "speckv") {
        EXPECT_EQ(warm.stats.cached_tokens, 0) << what;
      }
      // The draft's prompt pass reuses the draft's blocks (speckv's lookahead in both prefill
      // modes: the draft's pass is always dense; SpecPC's importance pass).
      if (c.name == "speckv") {
        EXPECT_EQ(warm.method_info.value("lookahead_prefix_cached_tokens", -1), doc_len / 16 * 16)
            << what;
      }
      if (c.name == "specpc" || c.name == "speckv-pc") {
        EXPECT_EQ(warm.method_info.value("draft_prefix_cached_tokens", -1), doc_len / 16 * 16)
            << what;
      }
    }
  }
}

TEST_F(PrefixCacheTest, AColdRunFillsTheCacheForTheNextQuestion) {
  const int vocab = target_->config.vocab_size;
  const std::vector<int> doc = prompt_of(96, vocab, 7, 1);
  PrefixCache cache(int64_t{1} << 30, 16);
  const nlohmann::json snap = {{"budget", 48}, {"window", 16}};
  const GenerationResult first =
      run("snapkv", snap, concat(doc, prompt_of(30, vocab, 3, 2)), &cache);
  EXPECT_EQ(first.stats.cached_tokens, 0);
  EXPECT_EQ(cache.stats().blocks, 7);  // 126 tokens: 7 whole blocks, stored before compaction
  const GenerationResult second =
      run("snapkv", snap, concat(doc, prompt_of(30, vocab, 5, 4)), &cache);
  EXPECT_EQ(second.stats.cached_tokens, 96);  // the document's 6 blocks; the question differs
}

TEST_F(PrefixCacheTest, EvictionKeepsTheLimitAndNeverDropsAHeldBlock) {
  const int vocab = target_->config.vocab_size;
  PrefixCache probe(int64_t{1} << 30, 16);
  run("full", nlohmann::json::object(), prompt_of(33, vocab), &probe);
  const int64_t block_bytes = probe.stats().bytes / 2;  // 33 tokens: 2 blocks
  PrefixCache cache(3 * block_bytes, 16);
  const std::vector<int> a = prompt_of(49, vocab, 3, 1), b = prompt_of(49, vocab, 5, 2);
  run("full", nlohmann::json::object(), a, &cache);  // 3 blocks: the cache is full
  EXPECT_EQ(cache.stats().blocks, 3);
  const PrefixCache::Hit held = cache.lookup(a, 48);  // a request holds a's blocks
  ASSERT_EQ(held.tokens(), 48);
  run("full", nlohmann::json::object(), b, &cache);  // nothing unpinned to evict: b is not kept
  EXPECT_LE(cache.stats().bytes, 3 * block_bytes);
  EXPECT_EQ(cache.lookup(a, 48).tokens(), 48);
  EXPECT_EQ(cache.lookup(b, 48).tokens(), 0);
}

TEST_F(PrefixCacheTest, UnheldBlocksAreEvictedLeastRecentlyUsedFirst) {
  const int vocab = target_->config.vocab_size;
  PrefixCache probe(int64_t{1} << 30, 16);
  run("full", nlohmann::json::object(), prompt_of(17, vocab), &probe);
  const int64_t block_bytes = probe.stats().bytes;
  PrefixCache cache(2 * block_bytes, 16);
  const std::vector<int> a = prompt_of(17, vocab, 3, 1), b = prompt_of(17, vocab, 5, 2),
                         c = prompt_of(17, vocab, 7, 3);
  run("full", nlohmann::json::object(), a, &cache);
  run("full", nlohmann::json::object(), b, &cache);
  EXPECT_EQ(cache.lookup(a, 16).tokens(), 16);  // a is now the most recently used
  run("full", nlohmann::json::object(), c, &cache);
  EXPECT_EQ(cache.stats().evictions, 1);
  EXPECT_EQ(cache.lookup(b, 16).tokens(), 0);  // b was the least recently used
  EXPECT_EQ(cache.lookup(a, 16).tokens(), 16);
  EXPECT_EQ(cache.lookup(c, 16).tokens(), 16);
}

}  // namespace
}  // namespace dapx
