// The CUDA path: the engine on a GPU (a CUDA build of LibTorch, --device cuda) against the
// naive reference and against the CPU engine, for the forward pass and for every method.
// Skipped where no GPU is visible (CI has none); run on a GPU machine.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "engine/generator.h"
#include "method_test_util.h"
#include "methods/catalogue.h"
#include "naive_transformer.h"

namespace dapx {
namespace {

using testing::greedy;

#define SKIP_WITHOUT_GPU() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device visible"

std::unique_ptr<LoadedModel> load_on(Arch arch, at::Device device, uint64_t seed,
                                     at::ScalarType dtype = at::kFloat, int64_t chunk = 16) {
  ComputeOptions o;
  o.weight_dtype = dtype;
  o.device = device;
  o.prefill_chunk = chunk;
  return LoadedModel::load(
      testing::tiny_model(arch, dtype == at::kFloat ? DType::F32 : DType::BF16, seed), o);
}

double max_diff(const at::Tensor& a, const std::vector<float>& b) {
  return (a.reshape({-1}).cpu() - at::tensor(b, at::kFloat)).abs().max().item<double>();
}

class Cuda : public ::testing::TestWithParam<Arch> {};

TEST_P(Cuda, PrefillDecodeAndGreedyMatchReference) {
  SKIP_WITHOUT_GPU();
  auto m = load_on(GetParam(), at::kCUDA, 7);
  const WeightStore store = WeightStore::open(m->dir);
  reference::NaiveTransformer ref(m->config, store);
  const auto prompt = testing::prompt_of(21, m->config.vocab_size);
  const auto want = ref.prefill(prompt);
  for (int64_t chunk : {int64_t{512}, int64_t{4}}) {
    ComputeOptions opts = m->transformer.options();
    opts.prefill_chunk = chunk;
    Transformer t(m->config, m->weights, opts);
    KVCache cache = t.make_cache();
    const at::Tensor all = t.forward(prompt, 0, cache, nullptr, /*all_logits=*/true);
    ASSERT_TRUE(all.is_cuda());
    for (int i = 0; i < 21; ++i)
      EXPECT_LT(max_diff(all[i], want[i]), 1e-3) << "chunk " << chunk << " row " << i;
    // step-by-step decode continues on the GPU cache
    for (int i = 0; i < 4; ++i) {
      const int tok = (i * 13 + 5) % m->config.vocab_size;
      const at::Tensor step = t.forward({tok}, 21 + i, cache);
      if (chunk == 512) {  // the reference holds the prompt from `want`
        EXPECT_LT(max_diff(step, ref.step(tok, 21 + i)), 1e-3) << "decode step " << i;
      }
    }
  }
  FullKV full;
  EXPECT_EQ(generate(*m, full, prompt, greedy(10)).tokens, ref.greedy(prompt, 10));
}

// The training path on the GPU (fused attention where LibTorch has it) equals the reference,
// and its backward pass runs through it.
TEST_P(Cuda, TrainingLogitsMatchReferenceAndBackpropagate) {
  SKIP_WITHOUT_GPU();
  ComputeOptions o;
  o.weight_dtype = at::kFloat;
  o.device = at::kCUDA;
  o.trainable = true;
  auto m = LoadedModel::load(testing::tiny_model(GetParam(), DType::F32, 7), o);
  const WeightStore store = WeightStore::open(m->dir);
  reference::NaiveTransformer ref(m->config, store);
  const auto prompt = testing::prompt_of(37, m->config.vocab_size);
  const auto want = ref.prefill(prompt);
  const at::Tensor logits = m->transformer.sequence_logits(prompt);
  ASSERT_TRUE(logits.is_cuda());
  for (int i = 0; i < 37; ++i)
    EXPECT_LT(max_diff(logits[i].detach(), want[i]), 1e-3) << "row " << i;
  logits.logsumexp(-1).sum().backward();
  int with_grad = 0;
  for (const auto& [name, p] : m->transformer.named_parameters()) {
    if (!p.grad().defined()) continue;
    ++with_grad;
    EXPECT_TRUE(p.grad().isfinite().all().item<bool>()) << name;
  }
  EXPECT_EQ(with_grad, static_cast<int>(m->transformer.named_parameters().size()));
}

INSTANTIATE_TEST_SUITE_P(AllArchs, Cuda,
                         ::testing::Values(Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Mistral),
                         [](const auto& info) { return short_name(info.param); });

// Every method picks the same tokens, kept KV entries and kept prompt positions on the GPU as
// on the CPU (f32): selection is deterministic across devices (stable sorts, no device-
// dependent tie-breaking).
TEST(CudaMethods, EveryMethodSelectsAndGeneratesAsOnCpu) {
  SKIP_WITHOUT_GPU();
  for (Arch arch : {Arch::Llama, Arch::Qwen2}) {
    auto cpu = load_on(arch, at::kCPU, 7), gpu = load_on(arch, at::kCUDA, 7);
    auto cpu_draft = load_on(arch, at::kCPU, 9), gpu_draft = load_on(arch, at::kCUDA, 9);
    const auto prompt = testing::prompt_of(72, cpu->config.vocab_size, 53, 7);
    for (const std::string& name : method_names()) {
      for (const std::string prefill : {"dense", "sparse"}) {
        const bool lookahead = name == "speckv" || name == "laq";
        if (prefill == "sparse" && !lookahead) continue;
        const MethodSpec& spec = method_spec(name);
        // kv_budget > the SpecKV stage's window (32); each method takes the ones it declares
        const nlohmann::json all = {{"budget", spec.family == Family::KV ? 24 : 40},
                                    {"kv_budget", 36},
                                    {"window", 8},
                                    {"lookahead", 5},
                                    {"neighbors", 4},
                                    {"first_layer", 0},
                                    {"prefill", prefill},
                                    {"vertical", 12},
                                    {"band", 16}};
        nlohmann::json p = nlohmann::json::object();
        for (const auto& [key, value] : all.items())
          if (spec.param(key)) p[key] = value;
        auto run = [&](const LoadedModel& model, const LoadedModel& draft) {
          auto method = make_method(name, p, testing::recording(&draft));
          return generate(model, *method, prompt, greedy(6));
        };
        const GenerationResult c = run(*cpu, *cpu_draft), g = run(*gpu, *gpu_draft);
        const std::string what = name + " " + prefill + " " + short_name(arch);
        EXPECT_EQ(g.tokens, c.tokens) << what;
        for (const char* key : {"layers", "kept_prompt_positions", "lookahead_tokens"})
          EXPECT_EQ(g.method_info.value(key, nlohmann::json()),
                    c.method_info.value(key, nlohmann::json()))
              << what << ": " << key;
        EXPECT_EQ(g.stats.kv_bytes, c.stats.kv_bytes) << what;
      }
    }
  }
}

TEST(CudaMethods, Bf16LogitsFollowTheCpuEngine) {
  SKIP_WITHOUT_GPU();
  auto cpu = load_on(Arch::Qwen2, at::kCPU, 7, at::kBFloat16);
  auto gpu = load_on(Arch::Qwen2, at::kCUDA, 7, at::kBFloat16);
  const auto prompt = testing::prompt_of(40, cpu->config.vocab_size);
  KVCache cc = cpu->transformer.make_cache(), gc = gpu->transformer.make_cache();
  const at::Tensor c = cpu->transformer.forward(prompt, 0, cc);
  const at::Tensor g = gpu->transformer.forward(prompt, 0, gc).cpu();
  const double scale = c.abs().max().item<double>();
  EXPECT_LT((g - c).abs().max().item<double>(), 0.05 * scale);
  FullKV full;
  EXPECT_EQ(generate(*gpu, full, prompt, greedy(8)).tokens.size(), 8u);
}

}  // namespace
}  // namespace dapx
