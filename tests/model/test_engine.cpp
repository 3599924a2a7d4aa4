// The generation loop and model loading: stop strings, EOS, context limits, bad inputs.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/generator.h"
#include "engine/heap.h"
#include "engine/stats.h"
#include "engine/tensor_memory.h"
#include "error_message.h"
#include "io/random_model.h"
#include "methods/catalogue.h"
#include "tiny_models.h"
#include "util/error.h"

namespace dapx {
namespace {

std::unique_ptr<LoadedModel> tiny(Arch arch = Arch::Qwen2) {
  return LoadedModel::load(testing::tiny_model(arch, DType::BF16), ComputeOptions{});
}

using test::error_of;

TEST(Engine, EmptyPromptAndOverlongPromptAreClearErrors) {
  auto m = tiny();
  FullKV full;
  GenerationParams g;
  EXPECT_NE(error_of([&] { generate(*m, full, {}, g); }).find("prompt is empty"),
            std::string::npos);
  std::vector<int> long_prompt(m->config.max_position_embeddings, 1);
  const std::string msg = error_of([&] { generate(*m, full, long_prompt, g); });
  EXPECT_NE(msg.find("exceeds the model's context"), std::string::npos) << msg;
  std::vector<int> bad{1, m->config.vocab_size + 5};
  EXPECT_NE(error_of([&] { generate(*m, full, bad, g); }).find("outside the model's vocabulary"),
            std::string::npos);
}

TEST(Engine, APromptPastASlidingWindowNamesTheWindow) {
  auto m = tiny(Arch::Mistral);
  m->config.sliding_window = m->config.max_position_embeddings = 48;  // as from_json sets them
  FullKV full;
  const std::string msg =
      error_of([&] { generate(*m, full, std::vector<int>(48, 1), GenerationParams{}); });
  EXPECT_NE(msg.find("context of 48 (its sliding_window"), std::string::npos) << msg;
}

TEST(Engine, StopStringCutsTheTextAndEndsGeneration) {
  auto m = tiny();
  FullKV full;
  GenerationParams g;
  g.max_new_tokens = 20;
  g.ignore_eos = true;
  const std::vector<int> prompt = m->tokenizer.encode("The river town woke slowly");
  const GenerationResult free_run = generate(*m, full, prompt, g);
  ASSERT_GE(free_run.text.size(), 4u);
  // stop at a piece of what the model would have written
  const std::string stop = free_run.text.substr(2, 2);
  g.stop = {stop};
  std::string streamed;
  const GenerationResult r =
      generate(*m, full, prompt, g, [&](const std::string& s) { streamed += s; });
  EXPECT_EQ(r.stats.finish_reason, "stop");
  EXPECT_EQ(r.text, free_run.text.substr(0, free_run.text.find(stop)));
  // Nothing past the stop is streamed: the stream is the result text exactly, as the UTF-8
  // stream decoder renders it (an unfinished character at the cut becomes one U+FFFD).
  Utf8StreamDecoder whole;
  EXPECT_EQ(streamed, whole.push(r.text) + whole.flush());
  EXPECT_LT(r.tokens.size(), free_run.tokens.size());
}

TEST(Engine, EosEndsGenerationUnlessIgnored) {
  auto m = tiny();
  FullKV full;
  GenerationParams g;
  g.max_new_tokens = 6;
  g.ignore_eos = true;
  const std::vector<int> prompt = m->tokenizer.encode("Trains left the central station");
  const GenerationResult r = generate(*m, full, prompt, g);
  // make the second generated token an EOS id: generation must stop before it
  m->config.eos_token_ids = {r.tokens[1]};
  g.ignore_eos = false;
  const GenerationResult stopped = generate(*m, full, prompt, g);
  EXPECT_EQ(stopped.stats.finish_reason, "eos");
  EXPECT_EQ(stopped.tokens, std::vector<int>{r.tokens[0]});
}

TEST(Engine, StatsAreFilled) {
  auto m = tiny();
  FullKV full;
  GenerationParams g;
  g.max_new_tokens = 4;
  g.ignore_eos = true;
  const GenerationResult r =
      generate(*m, full, m->tokenizer.encode("Numbers appear everywhere"), g);
  EXPECT_GT(r.stats.prompt_tokens, 0);
  EXPECT_EQ(r.stats.generated_tokens, 4);
  EXPECT_GT(r.stats.kv_bytes, 0);
  EXPECT_GE(r.stats.kv_bytes, r.stats.kv_bytes_full);
  EXPECT_GT(r.stats.peak_rss_bytes, 0);
  EXPECT_GT(r.stats.weight_bytes, 0);
  // the cache is alive when the request ends, so the tensor peak holds at least its bytes
  EXPECT_GE(r.stats.tensor_peak_bytes, r.stats.kv_bytes);
}

// Working memory is peak RSS minus the weights resident in RAM, not minus every weight byte:
// weights read in place from a file mapping are resident only where read (a 7B target with a
// 0.5B draft once reported -539 MiB by subtracting a mapped embedding table that was mostly
// never read). A target and a draft read in place from bf16 files (4096-wide, untied heads),
// SpecKV-PC as dapx generate runs it; then the embedding tables' pages dropped from memory.
TEST(Engine, WorkingMemoryCountsOnlyResidentWeightsAndIsNeverNegative) {
  test::TempDir tmp;
  ModelShape shape = shape_preset("tiny", Arch::Qwen2);
  shape.vocab = Tokenizer::from_json_string(testing::tiny_tokenizer_json(), "tiny").vocab_size();
  shape.hidden = 4096;
  shape.tie = false;
  const int64_t embedding = int64_t{shape.vocab} * shape.hidden * 2;
  for (const auto& [name, seed] : {std::pair<const char*, uint64_t>{"target", 1}, {"draft", 2}})
    write_random_model(tmp / name, make_config(Arch::Qwen2, shape), seed, DType::BF16,
                       testing::tiny_tokenizer_json(), "chatml");
  ComputeOptions bf16;  // bf16 weights from a bf16 file: no copies, read from the mapping
  auto target = LoadedModel::load(tmp / "target", bf16);
  auto draft = LoadedModel::load(tmp / "draft", bf16);
  MethodOptions o;
  o.draft = &draft->transformer;
  auto method = make_method("speckv-pc", {{"budget", 96}, {"window", 16}, {"kv_budget", 40}}, o);
  std::string text;
  for (int i = 0; i < 40; ++i) text += "The river town woke. ";
  GenerationParams g;
  g.max_new_tokens = 4;
  g.ignore_eos = true;
  GenerationResult r = generate(*target, *method, target->tokenizer.encode(text), g);
  count_draft_weights(r.stats, draft->transformer);
  const GenerationStats& st = r.stats;
  std::printf("peak RSS %lld, weights %lld + %lld, resident %lld + %lld, working %lld, KV %lld\n",
              static_cast<long long>(st.peak_rss_bytes), static_cast<long long>(st.weight_bytes),
              static_cast<long long>(st.draft_weight_bytes),
              static_cast<long long>(st.resident_weight_bytes),
              static_cast<long long>(st.draft_resident_weight_bytes),
              static_cast<long long>(st.working_bytes()), static_cast<long long>(st.kv_bytes));
  EXPECT_EQ(st.draft_weight_bytes, draft->transformer.weight_bytes());
  // Every layer and the head were read whole; of the embedding tables, what was read.
  EXPECT_GE(st.resident_weight_bytes, st.weight_bytes - embedding);
  EXPECT_LE(st.resident_weight_bytes, st.weight_bytes);
  EXPECT_GE(st.draft_resident_weight_bytes, st.draft_weight_bytes - embedding);
  EXPECT_LE(st.draft_resident_weight_bytes, st.draft_weight_bytes);
  // The figure is possible: the peak RSS above both models' resident weights, at least the KV
  // cache the request held; and it is what dapx generate --json reports.
  EXPECT_EQ(st.working_bytes(),
            st.peak_rss_bytes - st.resident_weight_bytes - st.draft_resident_weight_bytes);
  EXPECT_GT(st.kv_bytes, 0);
  EXPECT_GE(st.working_bytes(), st.kv_bytes);
  const nlohmann::json j = st.to_json();
  EXPECT_EQ(j["working_bytes"], st.working_bytes());
  EXPECT_EQ(j["resident_weight_bytes"], st.resident_weight_bytes);
  EXPECT_EQ(j["draft_resident_weight_bytes"], st.draft_resident_weight_bytes);
  // Pages of the mapping that are not in memory are not counted: with the embedding table's
  // pages dropped (as never-read rows are), the resident bytes fall by the table, but for the
  // two pages it may share with its neighbours.
  for (const LoadedModel* m : {target.get(), draft.get()}) {
    m->weights->release("model.embed_tokens.weight");
    const int64_t resident = resident_weight_bytes(m->transformer);
    EXPECT_LE(resident, m->transformer.weight_bytes() - embedding + 2 * sysconf(_SC_PAGESIZE));
    EXPECT_GE(resident, m->transformer.weight_bytes() - embedding);
  }
}

// Resident bytes of memory written (all of it) and of a fresh anonymous mapping (none).
TEST(Engine, ResidentBytesCountsThePagesInMemory) {
  std::vector<char> written(int64_t{3} << 20, 1);
  EXPECT_EQ(resident_bytes(written.data() + 5, int64_t{2} << 20), int64_t{2} << 20);
  const size_t n = size_t{4} << 20;
  void* fresh = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(fresh, MAP_FAILED);
  EXPECT_EQ(resident_bytes(fresh, static_cast<int64_t>(n)), 0);
  static_cast<char*>(fresh)[n / 2] = 1;  // one page written
  EXPECT_EQ(resident_bytes(fresh, static_cast<int64_t>(n)), sysconf(_SC_PAGESIZE));
  ::munmap(fresh, n);
}

// glibc's heap (under AddressSanitizer malloc is its own: mallopt does nothing)
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
int64_t minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Writes to every page of n bytes of fresh heap memory and frees it; returns the minor page
// faults that cost.
int64_t faults_of_a_fresh_block(size_t n) {
  const int64_t before = minor_faults();
  char* p = static_cast<char*>(std::malloc(n));
  std::memset(p, 1, n);
  std::free(p);
  return minor_faults() - before;
}

TEST(Heap, AFreedPrefillSizedBlockIsReusedWithoutPageFaults) {
  constexpr size_t kBlock = 8 << 20;  // a prefill chunk's activation block (2048 pages)
  keep_freed_blocks_for_reuse();
  faults_of_a_fresh_block(kBlock);  // the first one faults its pages in
  // glibc's default maps such a block afresh each time (2048 faults); now the heap keeps it
  EXPECT_LT(faults_of_a_fresh_block(kBlock), 100);
}

TEST(Heap, ReleaseFreeHeapReturnsFreedBlocksToTheKernel) {
  keep_freed_blocks_for_reuse();
  release_free_heap();
  std::vector<char*> blocks;
  for (int i = 0; i < 40; ++i) {  // 40 MiB, below the kept 64 MiB
    blocks.push_back(static_cast<char*>(std::malloc(1 << 20)));
    std::memset(blocks.back(), 1, 1 << 20);
  }
  for (char* b : blocks) std::free(b);
  const int64_t kept = current_rss_bytes();
  release_free_heap();
  EXPECT_GT(kept - current_rss_bytes(), int64_t{30} << 20);
}
#endif

TEST(TensorMemory, CountsTheBytesOfTensorsAllocatedInTheScope) {
  constexpr int64_t kMiB4 = int64_t{4} << 20;
  at::Tensor before = at::empty({1 << 18}, at::kFloat);  // 1 MiB, allocated outside
  const TensorPeakScope scope;
  {
    at::Tensor a = at::empty({1 << 20}, at::kFloat);  // 4 MiB
    EXPECT_EQ(scope.live_bytes(), kMiB4);
    at::Tensor b = at::empty({1 << 19}, at::kFloat);  // 2 MiB more: peak 6 MiB
    a.reset();
    EXPECT_EQ(scope.live_bytes(), kMiB4 / 2);
  }
  EXPECT_EQ(scope.live_bytes(), 0);
  EXPECT_EQ(scope.peak_bytes(), kMiB4 * 3 / 2);
  before.reset();  // freed in the scope but not allocated there: not counted either way
  EXPECT_EQ(scope.live_bytes(), 0);
  {
    const TensorPeakScope inner;  // counts on its own while it lives
    at::Tensor c = at::empty({1 << 21}, at::kFloat);
    EXPECT_EQ(inner.peak_bytes(), 2 * kMiB4);
  }
  at::Tensor d = at::empty({1 << 10}, at::kFloat);  // the outer scope counts again
  EXPECT_EQ(scope.live_bytes(), 4096);
  EXPECT_EQ(scope.peak_bytes(), kMiB4 * 3 / 2);
}

TEST(TensorMemory, ReadingFewerPromptTokensLowersTheRequestsTensorPeak) {
  auto m = tiny();
  GenerationParams g;
  g.max_new_tokens = 2;
  g.ignore_eos = true;
  std::vector<int> prompt;
  while (prompt.size() < 400)
    for (int t : m->tokenizer.encode("The harbour master counted the boats again. "))
      prompt.push_back(t);
  FullKV full;
  const GenerationResult a = generate(*m, full, prompt, g);
  const auto fewer = make_method("random-pc", {{"budget", 40}, {"window", 8}});
  const GenerationResult b = generate(*m, *fewer, prompt, g);
  EXPECT_GE(a.stats.tensor_peak_bytes, a.stats.kv_bytes);
  EXPECT_GE(b.stats.tensor_peak_bytes, b.stats.kv_bytes);
  EXPECT_LT(b.stats.kv_bytes * 5, a.stats.kv_bytes);
  EXPECT_LT(b.stats.tensor_peak_bytes * 2, a.stats.tensor_peak_bytes);
}

TEST(Loading, MissingTensorAndMissingDirectoryAreNamed) {
  const auto dir = testing::tiny_model(Arch::Llama, DType::F32, 11);
  // drop one tensor: rewrite model.safetensors without it
  const WeightStore store = WeightStore::open(dir);
  std::vector<TensorData> kept;
  for (const auto& name : store.names()) {
    if (name == "model.layers.1.mlp.up_proj.weight") continue;
    const TensorView& t = store.get(name);
    TensorData d{name, t.dtype, t.shape, std::vector<std::byte>(t.data, t.data + t.nbytes)};
    kept.push_back(std::move(d));
  }
  const auto broken = dir.string() + "-broken";
  std::filesystem::create_directories(broken);
  for (const char* f : {"config.json", "tokenizer.json", "generation_config.json"})
    std::filesystem::copy_file(dir / f, std::filesystem::path(broken) / f,
                               std::filesystem::copy_options::overwrite_existing);
  write_safetensors(std::filesystem::path(broken) / "model.safetensors", kept);
  const std::string msg = error_of([&] { LoadedModel::load(broken, ComputeOptions{}); });
  EXPECT_NE(msg.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << msg;
  test::remove_tree(broken);
  EXPECT_NE(error_of([&] {
              LoadedModel::load("/nonexistent/model", ComputeOptions{});
            }).find("does not exist"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_compute_dtype("fp8"); }).find("unknown dtype"), std::string::npos);
}

}  // namespace
}  // namespace dapx
