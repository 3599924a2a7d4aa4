// Continuous batching: a batched decode step equals single steps bit for bit, a request's
// tokens under the scheduler equal the same request alone (every method family, greedy and
// seeded), a cancelled sequence leaves its batch-mates unchanged, and the KV pool admits by
// the bytes a request will hold.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/scheduler.h"
#include "kv/prefix_cache.h"
#include "method_test_util.h"
#include "methods/catalogue.h"
#include "methods/kv_plan.h"

namespace dapx {
namespace {

using testing::greedy;
using testing::load_f32;
using testing::prompt_of;

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    target_ = load_f32(Arch::Qwen2, 7).release();
    draft_ = load_f32(Arch::Qwen2, 8).release();
  }
  static void TearDownTestSuite() {
    delete target_;
    delete draft_;
  }
  static std::unique_ptr<Method> method(const std::string& name, const nlohmann::json& p = {}) {
    MethodOptions o;
    o.draft = &draft_->transformer;
    return make_method(name, p.is_null() ? nlohmann::json::object() : p, o);
  }
  static KVReservation plan(const std::string& name, const nlohmann::json& p, size_t n,
                            int max_new) {
    const KVShape t = kv_shape(target_->config, 4), d = kv_shape(draft_->config, 4);
    const KVPlan k = plan_kv(name, p.is_null() ? nlohmann::json::object() : p,
                             static_cast<int64_t>(n), max_new, t, &d);
    return {k.bytes, k.peak_bytes};
  }
  static LoadedModel* target_;
  static LoadedModel* draft_;
};
LoadedModel* SchedulerTest::target_ = nullptr;
LoadedModel* SchedulerTest::draft_ = nullptr;

struct Case {
  std::string method;
  nlohmann::json params;
  int prompt_len, max_new;
  float temperature;
};

// Six requests of every family, different lengths and limits; two are sampled with a seed.
std::vector<Case> mixed_cases() {
  return {{"full", {}, 40, 9, 0.f},
          {"snapkv", {{"budget", 48}}, 150, 12, 0.f},
          {"h2o", {{"budget", 40}}, 120, 7, 0.9f},
          {"speckv", {{"budget", 48}, {"lookahead", 4}}, 160, 10, 0.f},
          {"specpc", {{"budget", 64}, {"window", 16}, {"kernel", 5}}, 140, 11, 0.7f},
          {"speckv-pc",
           {{"budget", 96}, {"window", 16}, {"kernel", 5}, {"kv_budget", 40}},
           170,
           8,
           0.f}};
}

// The engine runs on its own thread, so every wait on a ticket is bounded, generously (the tiny
// model ends each of these requests in well under a second), and one that expires fails the
// test, naming what it waited for, instead of hanging until ctest's timeout.
constexpr double kWaitS = 60;

GenerationResult ended(Ticket& t, const std::string& what) {
  if (!t.wait_end_for(kWaitS))
    throw std::runtime_error(what + ": the generation did not end within 60 s");
  return t.result();
}

// The next piece of text (true) or the end (false); a wait that expires throws.
bool next_piece(Ticket& t, std::string& piece, const std::string& what) {
  const Ticket::Wait w = t.next_text_for(piece, kWaitS);
  if (w == Ticket::Wait::kTimeout)
    throw std::runtime_error(what + ": neither text nor the end within 60 s");
  return w == Ticket::Wait::kText;
}

GenerationParams params_of(const Case& c, int i) {
  GenerationParams g = greedy(c.max_new);
  g.sampling.temperature = c.temperature;
  g.sampling.seed = 1000 + i;
  return g;
}

TEST_F(SchedulerTest, BatchedStepLogitsEqualSingleStepsBitForBit) {
  for (const bool bf16_kv : {false, true}) {
    ComputeOptions o = target_->transformer.options();
    o.kv_dtype = bf16_kv ? at::kBFloat16 : at::kFloat;
    const Transformer t(target_->config, target_->weights, o);
    // Four sequences with caches of different lengths, one compacted (ragged against the others).
    std::vector<KVCache> batch, alone;
    std::vector<int64_t> next_pos;
    for (int s = 0; s < 4; ++s) {
      const std::vector<int> p = prompt_of(20 + 37 * s, target_->config.vocab_size, 7 + s);
      for (auto* caches : {&batch, &alone}) {
        caches->push_back(t.make_cache());
        t.forward(p, 0, caches->back());
      }
      next_pos.push_back(static_cast<int64_t>(p.size()));
    }
    const at::Tensor keep = at::tensor({0L, 3L, 5L, 9L, 11L, 15L}).repeat({2, 1});
    for (auto* caches : {&batch, &alone})
      for (int l = 0; l < (*caches)[1].num_layers(); ++l) (*caches)[1].layer(l).compact(keep);
    for (int step = 0; step < 3; ++step) {
      std::vector<DecodeRow> rows;
      for (int s = 0; s < 4; ++s)
        rows.push_back(
            {(5 + 11 * s + step) % target_->config.vocab_size, next_pos[s] + step, &batch[s]});
      const at::Tensor together = t.decode_batch(rows.data(), 4);
      for (int s = 0; s < 4; ++s) {
        const at::Tensor one = t.decode(rows[s].token, rows[s].pos, alone[s]);
        EXPECT_TRUE(at::equal(together[s], one))
            << "sequence " << s << " step " << step << (bf16_kv ? " bf16 KV" : " f32 KV");
      }
    }
  }
}

TEST_F(SchedulerTest, EveryRequestEqualsItselfAloneWhateverItsBatchMates) {
  const std::vector<Case> cases = mixed_cases();
  std::vector<GenerationResult> alone;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    auto m = method(c.method, c.params);
    alone.push_back(generate(*target_, *m,
                             prompt_of(c.prompt_len, target_->config.vocab_size, 13 + i),
                             params_of(c, static_cast<int>(i))));
  }
  SchedulerOptions so;
  so.parallel = 8;
  so.kv_memory = int64_t{1} << 30;
  Scheduler sched(*target_, so);
  std::vector<std::shared_ptr<Ticket>> tickets;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const std::vector<int> p = prompt_of(c.prompt_len, target_->config.vocab_size, 13 + i);
    tickets.push_back(sched.submit(method(c.method, c.params), p, params_of(c, static_cast<int>(i)),
                                   plan(c.method, c.params, p.size(), c.max_new)));
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string streamed;
    for (std::string piece; next_piece(*tickets[i], piece, cases[i].method);) streamed += piece;
    const GenerationResult r = ended(*tickets[i], cases[i].method);
    EXPECT_EQ(r.tokens, alone[i].tokens) << cases[i].method;
    EXPECT_EQ(r.text, alone[i].text) << cases[i].method;
    EXPECT_EQ(r.stats.finish_reason, alone[i].stats.finish_reason) << cases[i].method;
    EXPECT_EQ(r.stats.kv_entries_per_layer, alone[i].stats.kv_entries_per_layer) << cases[i].method;
    EXPECT_EQ(r.method_info.value("kept_prompt_positions", nlohmann::json()),
              alone[i].method_info.value("kept_prompt_positions", nlohmann::json()))
        << cases[i].method;
  }
  const SchedulerStats st = sched.stats();
  EXPECT_EQ(st.pool_used, 0);  // every reservation returned
  int widest = 0;
  for (const auto& [size, n] : st.batch_sizes) widest = std::max(widest, size);
  EXPECT_GE(widest, 2) << "the requests never shared a decode step";
}

TEST_F(SchedulerTest, ACancelledSequenceLeavesItsBatchMatesUnchanged) {
  const std::vector<Case> cases = {{"full", {}, 30, 24, 0.f},
                                   {"snapkv", {{"budget", 40}}, 90, 24, 0.f},
                                   {"full", {}, 60, 24, 0.8f}};
  std::vector<GenerationResult> alone;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto m = method(cases[i].method, cases[i].params);
    alone.push_back(generate(*target_, *m,
                             prompt_of(cases[i].prompt_len, target_->config.vocab_size, 5 + i),
                             params_of(cases[i], static_cast<int>(i))));
  }
  Scheduler sched(*target_, SchedulerOptions{});
  std::vector<std::shared_ptr<Ticket>> tickets(cases.size());
  std::atomic<Ticket*> second{nullptr};  // set once submit returns
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const std::vector<int> p = prompt_of(c.prompt_len, target_->config.vocab_size, 5 + i);
    // The second is cancelled by a piece of its own text, on the engine thread: mid-batch.
    TextCallback cancel_second = nullptr;
    if (i == 1)
      cancel_second = [&second](const std::string&) {
        if (Ticket* t = second.load()) t->cancel();
      };
    tickets[i] = sched.submit(method(c.method, c.params), p, params_of(c, static_cast<int>(i)),
                              plan(c.method, c.params, p.size(), c.max_new), cancel_second);
    if (i == 1) second = tickets[1].get();
  }
  const GenerationResult cancelled = ended(*tickets[1], "the cancelled request");
  EXPECT_EQ(cancelled.stats.finish_reason, "cancelled");
  EXPECT_LT(cancelled.tokens.size(), alone[1].tokens.size());
  EXPECT_TRUE(
      std::equal(cancelled.tokens.begin(), cancelled.tokens.end(), alone[1].tokens.begin()));
  for (size_t i : {0u, 2u}) {
    const GenerationResult r = ended(*tickets[i], "request " + std::to_string(i));
    EXPECT_EQ(r.tokens, alone[i].tokens) << i;
    EXPECT_EQ(r.stats.finish_reason, "length") << i;
  }
}

TEST_F(SchedulerTest, ThePoolAdmitsByTheBytesARequestWillHold) {
  const int n = 300, max_new = 10;
  const nlohmann::json snap = {{"budget", 40}};
  const KVReservation full = plan("full", {}, n, max_new), small = plan("snapkv", snap, n, max_new);
  // The pool holds one full request, or three compressed ones, never a mix.
  const int64_t limit = full.peak_bytes;
  ASSERT_GT(small.peak_bytes + full.bytes, limit);
  ASSERT_GT(2 * small.bytes + full.peak_bytes, limit);
  ASSERT_LE(2 * small.bytes + small.peak_bytes, limit);
  ASSERT_GT(3 * small.bytes + small.peak_bytes, limit);

  SchedulerOptions so;
  so.kv_memory = limit;
  Scheduler sched(*target_, so);
  const std::string too_big = testing::error_of([&] {
    sched.submit(method("full"), prompt_of(n, target_->config.vocab_size), greedy(max_new),
                 {full.bytes, limit + 1});
  });
  EXPECT_NE(too_big.find("--kv-memory"), std::string::npos) << too_big;

  std::vector<std::shared_ptr<Ticket>> tickets;
  std::vector<std::string> names = {"snapkv", "snapkv", "snapkv", "full", "snapkv"};
  for (size_t i = 0; i < names.size(); ++i) {
    const nlohmann::json p = names[i] == "full" ? nlohmann::json::object() : snap;
    tickets.push_back(sched.submit(method(names[i], p),
                                   prompt_of(n, target_->config.vocab_size, 3 + i), greedy(max_new),
                                   plan(names[i], p, n, max_new)));
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const GenerationResult r = ended(*tickets[i], names[i] + " request " + std::to_string(i));
    EXPECT_EQ(r.stats.generated_tokens, max_new) << i;
    EXPECT_EQ(r.stats.finish_reason, "length") << i;
  }
  const SchedulerStats st = sched.stats();
  EXPECT_LE(st.pool_peak, limit);
  EXPECT_EQ(st.pool_used, 0);
  for (const auto& [size, steps] : st.batch_sizes)
    EXPECT_LE(size, 3) << "more sequences ran than the pool holds";
}

// The capacity measurement's setting (dapx bench-serve --capacity): every request the pool
// admits is prefilled before the first decode step, so the most running at once is what the
// pool holds, and the request it refused is counted.
TEST_F(SchedulerTest, AdmittingBeforeDecodingFillsThePoolFirst) {
  const int n = 300, max_new = 10;
  const nlohmann::json snap = {{"budget", 40}};
  const KVReservation full = plan("full", {}, n, max_new), small = plan("snapkv", snap, n, max_new);
  const int64_t limit = full.peak_bytes;  // two compressed ones and a third's prefill peak
  ASSERT_LE(2 * small.bytes + small.peak_bytes, limit);
  ASSERT_GT(3 * small.bytes + small.peak_bytes, limit);
  SchedulerOptions so;
  so.kv_memory = limit;
  so.own_thread = false;  // every request waits before the engine starts: no race with it
  Scheduler sched(*target_, SchedulerOptions::admit_before_decode(so));
  std::vector<std::shared_ptr<Ticket>> tickets;
  for (int i = 0; i < 5; ++i)
    tickets.push_back(sched.submit(method("snapkv", snap),
                                   prompt_of(n, target_->config.vocab_size, 3 + i), greedy(max_new),
                                   small));
  std::thread engine([&] { sched.run_here(); });
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(ended(*tickets[i], "request " + std::to_string(i)).stats.generated_tokens, max_new);
  sched.stop();
  engine.join();
  const SchedulerStats st = sched.stats();
  EXPECT_EQ(st.running_peak, 3);
  EXPECT_GE(st.pool_waits, 1);
  EXPECT_FALSE(st.pool_full);  // nobody waits now
  EXPECT_LE(st.pool_peak, limit);
}

TEST_F(SchedulerTest, AFullWaitingLineIsRefusedAndStopEndsEverySequence) {
  SchedulerOptions so;
  so.max_waiting = 1;
  so.parallel = 1;
  auto sched = std::make_unique<Scheduler>(*target_, so);
  const std::vector<int> p = prompt_of(50, target_->config.vocab_size);
  GenerationParams g = greedy(4000);
  const KVReservation r = plan("full", {}, p.size(), 4000);
  auto first = sched->submit(method("full"), p, g, r);
  std::string piece;
  ASSERT_TRUE(next_piece(*first, piece, "the first request"));  // running: the line is empty
  auto second = sched->submit(method("full"), p, g, r);
  const std::string full_line = testing::error_of([&] { sched->submit(method("full"), p, g, r); });
  EXPECT_NE(full_line.find("waiting line is full"), std::string::npos) << full_line;
  sched->stop();
  EXPECT_EQ(ended(*first, "the first request").stats.finish_reason, "cancelled");
  EXPECT_EQ(ended(*second, "the second request").stats.finish_reason, "cancelled");
  EXPECT_NE(
      testing::error_of([&] { sched->submit(method("full"), p, g, r); }).find("shutting down"),
      std::string::npos);
}

TEST_F(SchedulerTest, AnIdleSchedulerWakesForTheNextRequest) {
  Scheduler sched(*target_, SchedulerOptions{});
  const std::vector<int> p = prompt_of(30, target_->config.vocab_size);
  for (int i = 0; i < 3; ++i) {  // each request finds the engine idle, waiting for work
    auto t = sched.submit(method("full"), p, greedy(3), plan("full", {}, p.size(), 3));
    EXPECT_EQ(ended(*t, "request " + std::to_string(i)).stats.generated_tokens, 3) << i;
  }
}

TEST_F(SchedulerTest, ALongPrefillDoesNotStallTheRunningStreams) {
  for (const std::string name : {"full", "snapkv"}) {  // token-major and layer-major prefill
    const nlohmann::json p =
        name == "full" ? nlohmann::json::object() : nlohmann::json{{"budget", 64}};
    const std::vector<int> short_prompt = prompt_of(12, target_->config.vocab_size, 3);
    const std::vector<int> long_prompt = prompt_of(600, target_->config.vocab_size, 11);
    auto m = method(name, p);
    const GenerationResult long_alone = generate(*target_, *m, long_prompt, greedy(5));
    SchedulerOptions so;
    so.prefill_slice_s = 0;  // yield at every pace point while others decode
    Scheduler sched(*target_, so);
    std::atomic<int> stream_pieces{0}, at_first_long_piece{-1};
    auto stream = sched.submit(method("full"), short_prompt, greedy(3000),
                               plan("full", {}, short_prompt.size(), 3000),
                               [&](const std::string&) { ++stream_pieces; });
    std::string piece;
    ASSERT_TRUE(next_piece(*stream, piece, "the stream"));  // the stream runs
    const int at_submit = stream_pieces;
    auto long_request =
        sched.submit(method(name, p), long_prompt, greedy(5), plan(name, p, long_prompt.size(), 5),
                     [&](const std::string&) {
                       int none = -1;
                       at_first_long_piece.compare_exchange_strong(none, stream_pieces.load());
                     });
    const GenerationResult r = ended(*long_request, "the long " + name + " request");
    stream->cancel();
    EXPECT_EQ(r.tokens, long_alone.tokens) << name;
    // The long prompt's prefill (38 chunks of 16 rows, 2 layers) paused for the stream's steps;
    // without pace points the stream would get one or two pieces in that time.
    EXPECT_GE(at_first_long_piece - at_submit, 10) << name;
  }
}

TEST_F(SchedulerTest, QuestionsInFlightTogetherShareTheDocumentsBlocks) {
  const int vocab = target_->config.vocab_size;
  std::vector<int> doc = prompt_of(160, vocab, 7, 1);
  PrefixCache cache(int64_t{1} << 30, 16);
  SchedulerOptions so;
  Scheduler sched(*target_, so);
  std::vector<std::shared_ptr<Ticket>> tickets;
  std::vector<GenerationResult> alone;
  const std::vector<std::string> names = {"full", "snapkv", "full", "tova"};
  for (size_t i = 0; i < names.size(); ++i) {
    std::vector<int> q = doc;
    const std::vector<int> question = prompt_of(30 + 3 * static_cast<int>(i), vocab, 11 + i, 2);
    q.insert(q.end(), question.begin(), question.end());
    const nlohmann::json p = names[i] == "full" ? nlohmann::json::object()
                                                : nlohmann::json{{"budget", 48}, {"window", 16}};
    auto m = method(names[i], p);
    alone.push_back(generate(*target_, *m, q, greedy(8)));
    GenerationParams g = greedy(8);
    g.prefix_cache = &cache;
    tickets.push_back(sched.submit(method(names[i], p), q, g, plan(names[i], p, q.size(), 8)));
  }
  int cached = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const GenerationResult r = ended(*tickets[i], names[i] + " question " + std::to_string(i));
    EXPECT_EQ(r.tokens, alone[i].tokens) << i << " " << names[i];
    cached += r.stats.cached_tokens;
  }
  EXPECT_GE(cached, 3 * 160);  // every question after the first found the document's blocks
}

TEST(KVPlan, CountsTheCompressedCacheAndThePrefillPeak) {
  const KVShape t{4, 2, 16, 2}, d{2, 1, 16, 2};  // entry: 2 * 2 * 16 * 2 = 128 bytes
  const KVPlan full = plan_kv("full", nlohmann::json::object(), 1000, 50, t, nullptr);
  EXPECT_EQ(full.bytes, 128 * 4 * 1050);
  EXPECT_EQ(full.peak_bytes, full.bytes);
  const KVPlan snap = plan_kv("snapkv", {{"budget", 100}}, 1000, 50, t, nullptr);
  EXPECT_EQ(snap.bytes, 128 * 4 * 150);
  EXPECT_EQ(snap.peak_bytes, 128 * (3 * 100 + 1000));  // one full layer beside three compacted
  const KVPlan spec = plan_kv("speckv", {{"budget", 100}}, 1000, 50, t, &d);
  EXPECT_EQ(spec.bytes, 128 * 4 * 150);
  EXPECT_EQ(spec.peak_bytes, 128 * (3 * 100 + 1000 + 50) + 64 * 2 * (1000 + 50));
  const KVPlan pc = plan_kv("specpc", {{"budget", 300}}, 1000, 50, t, &d);
  EXPECT_EQ(pc.bytes, 128 * 4 * 350);
  EXPECT_EQ(pc.entries_per_layer, 300);
  const KVPlan laq = plan_kv("laq", {{"budget", 100}, {"lookahead", 8}}, 1000, 50, t, nullptr);
  EXPECT_EQ(laq.peak_bytes, 128 * 4 * 1008);
  const KVPlan short_prompt = plan_kv("snapkv", {{"budget", 100}}, 60, 50, t, nullptr);
  EXPECT_EQ(short_prompt.bytes, 128 * 4 * 110);  // nothing to drop
  EXPECT_EQ(short_prompt.peak_bytes, short_prompt.bytes);
}

}  // namespace
}  // namespace dapx
