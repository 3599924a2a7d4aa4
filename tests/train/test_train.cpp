// dapx train on a tiny model: the loss falls, a seed repeats a run exactly, checkpoints reload
// bit for bit, and the training path's logits equal the inference path's (and the naive
// reference's).
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include "engine/model.h"
#include "error_message.h"
#include "naive_transformer.h"
#include "temp_dir.h"
#include "tiny_models.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "util/error.h"

namespace dapx {
namespace {

// A tiny Qwen2 model (f32, random) with the tiny test vocabulary and a 1024-token context.
std::filesystem::path tiny_trainable(const test::TempDir& tmp, const std::string& name) {
  const Tokenizer tok = Tokenizer::from_json_string(testing::tiny_tokenizer_json(), "tiny");
  ModelShape shape = shape_preset("tiny", Arch::Qwen2);
  shape.vocab = tok.vocab_size();
  shape.max_pos = 1024;
  ModelConfig cfg = make_config(Arch::Qwen2, shape);
  cfg.eos_token_ids = {*tok.token_id("<|endoftext|>")};
  write_random_model(tmp / name, cfg, 3, DType::F32, testing::tiny_tokenizer_json(), "raw");
  return tmp / name;
}

TrainOptions few_steps(const std::filesystem::path& init, const std::filesystem::path& out) {
  TrainOptions o;
  o.init = init;
  o.out = out;
  o.reinit = true;
  o.curriculum = {{560, 20}};  // long enough for the shortest tasks (and prose)
  o.tokens_per_step = 1200;
  o.lr = 3e-3;
  o.warmup_steps = 1;
  o.eval_every = 0;
  o.eval_samples = 0;
  o.save_every = 0;
  o.save_dtype = DType::F32;
  o.seed = 5;
  o.data_dir = DAPX_DATA_DIR;
  return o;
}

std::vector<double> run(const TrainOptions& o) {
  std::vector<double> losses;
  TrainCallbacks cb;
  cb.on_step = [&](const StepReport& r) { losses.push_back(r.loss); };
  train(o, cb);
  return losses;
}

TEST(Train, LossFallsAndASeedRepeatsTheRunExactly) {
  at::set_num_threads(1);
  test::TempDir tmp;
  const auto init = tiny_trainable(tmp, "init");
  const std::vector<double> a = run(few_steps(init, tmp / "a"));
  ASSERT_EQ(a.size(), 20u);
  // Batches differ step to step (random tasks): compare the first and last four steps.
  const double first = (a[0] + a[1] + a[2] + a[3]) / 4, last = (a[16] + a[17] + a[18] + a[19]) / 4;
  EXPECT_LT(last, 0.85 * first) << "first steps " << first << ", last steps " << last;
  const std::vector<double> b = run(few_steps(init, tmp / "b"));
  EXPECT_EQ(a, b);
  EXPECT_EQ(test::read_file(tmp / "a" / "model.safetensors"),
            test::read_file(tmp / "b" / "model.safetensors"));
  TrainOptions other = few_steps(init, tmp / "c");
  other.seed = 6;
  run(other);
  EXPECT_NE(test::read_file(tmp / "a" / "model.safetensors"),
            test::read_file(tmp / "c" / "model.safetensors"));
  // The checkpoint is an HF directory with the recipe.
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json",
                        "tokenizer_config.json", "train_state.json"})
    EXPECT_TRUE(std::filesystem::exists(tmp / "a" / f)) << f;
  const nlohmann::json state = load_train_state(tmp / "a");
  ASSERT_EQ(state["parts"].size(), 1u);
  EXPECT_EQ(state["parts"][0]["steps_done"], 20);
  EXPECT_EQ(state["parts"][0]["device"], "cpu");
}

// A time budget ends a run of far more steps, saved, with the cosine decayed by the clock.
TEST(Train, ATimeBudgetStopsTheRunSavedWithTheLearningRateDecayed) {
  at::set_num_threads(1);
  test::TempDir tmp;
  TrainOptions o = few_steps(tiny_trainable(tmp, "init"), tmp / "out");
  o.curriculum = {{560, 100000}};
  o.time_limit_s = 1.5;
  std::vector<double> lrs;
  std::string message;
  TrainCallbacks cb;
  cb.on_step = [&](const StepReport& r) { lrs.push_back(r.lr); };
  cb.on_message = [&](const std::string& m) { message = m; };
  train(o, cb);
  ASSERT_GE(lrs.size(), 3u);
  ASSERT_LT(lrs.size(), 100000u);
  EXPECT_NE(message.find("time budget of 1 s spent after step " + std::to_string(lrs.size())),
            std::string::npos)
      << message;
  for (size_t i = 2; i < lrs.size(); ++i) EXPECT_LE(lrs[i], lrs[i - 1]) << "step " << i + 1;
  EXPECT_LT(lrs.back(), 0.25 * o.lr);  // near the floor (0.1 x peak), by time, not by steps
  const nlohmann::json part = load_train_state(tmp / "out")["parts"][0];
  EXPECT_EQ(part["steps_done"], static_cast<int>(lrs.size()));
  EXPECT_EQ(part["time_limit_s"], 1.5);
}

// The same run on a GPU (a CUDA build of LibTorch; skipped elsewhere): the loss falls as on
// the CPU, the seed's initial weights are the CPU's, and the checkpoint loads on the CPU.
TEST(Train, OnAGpuTheLossFallsAndTheCheckpointLoadsOnTheCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device visible";
  test::TempDir tmp;
  const auto init = tiny_trainable(tmp, "init");
  TrainOptions zero_steps = few_steps(init, tmp / "cpu0");
  zero_steps.lr = 1e-7;  // one step of a negligible rate: compare initial weights
  zero_steps.curriculum = {{560, 1}};
  run(zero_steps);
  TrainOptions gpu0 = zero_steps;
  gpu0.out = tmp / "gpu0";
  gpu0.device = at::kCUDA;
  run(gpu0);
  ComputeOptions opts;
  opts.weight_dtype = at::kFloat;
  const auto a = LoadedModel::load(tmp / "cpu0", opts), b = LoadedModel::load(tmp / "gpu0", opts);
  for (size_t i = 0; i < a->transformer.named_parameters().size(); ++i)
    EXPECT_TRUE(at::allclose(a->transformer.named_parameters()[i].second,
                             b->transformer.named_parameters()[i].second, 1e-5, 1e-5))
        << a->transformer.named_parameters()[i].first;
  TrainOptions o = few_steps(init, tmp / "gpu");
  o.device = at::kCUDA;
  const std::vector<double> l = run(o);
  ASSERT_EQ(l.size(), 20u);
  EXPECT_LT((l[16] + l[17] + l[18] + l[19]) / 4, 0.85 * (l[0] + l[1] + l[2] + l[3]) / 4);
  EXPECT_EQ(load_train_state(tmp / "gpu")["parts"][0]["device"], "cuda");
}

TEST(Train, CheckpointsReloadBitForBit) {
  test::TempDir tmp;
  const auto init = tiny_trainable(tmp, "init");
  ComputeOptions opts;
  opts.weight_dtype = at::kFloat;
  opts.trainable = true;
  const auto model = LoadedModel::load(init, opts);
  for (const DType dtype : {DType::F32, DType::BF16}) {
    const auto dir = tmp / (dtype == DType::F32 ? "f32" : "bf16");
    save_checkpoint(*model, dir, dtype, {{"parts", nlohmann::json::array()}});
    const auto back = LoadedModel::load(dir, opts);
    const auto& want = model->transformer.named_parameters();
    const auto& got = back->transformer.named_parameters();
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(want[i].first, got[i].first);
      const at::Tensor expected =
          dtype == DType::F32 ? want[i].second : want[i].second.to(at::kBFloat16).to(at::kFloat);
      EXPECT_TRUE(at::equal(expected, got[i].second)) << want[i].first;
    }
    // A second save of the reloaded weights writes the same bytes.
    save_checkpoint(*back, tmp / "again", dtype, {{"parts", nlohmann::json::array()}});
    EXPECT_EQ(test::read_file(dir / "model.safetensors"),
              test::read_file(tmp / "again" / "model.safetensors"));
  }
}

TEST(Train, TrainingLogitsEqualInferenceAndTheNaiveReference) {
  const auto dir = testing::tiny_model(Arch::Qwen2, DType::F32);
  ComputeOptions opts;
  opts.weight_dtype = at::kFloat;
  opts.trainable = true;
  const auto model = LoadedModel::load(dir, opts);
  const std::vector<int> tokens = {5, 17, 300, 2, 99, 41, 8, 250, 12, 77, 3};
  const at::Tensor train_logits = model->transformer.sequence_logits(tokens).detach();
  at::NoGradGuard no_grad;
  KVCache cache = model->transformer.make_cache();
  const at::Tensor infer_logits = model->transformer.forward(tokens, 0, cache, nullptr, true);
  EXPECT_TRUE(at::allclose(train_logits, infer_logits, 1e-4, 1e-4));
  const auto weights = WeightStore::open(dir);
  reference::NaiveTransformer naive(ModelConfig::load(dir), weights);
  const std::vector<std::vector<float>> ref = naive.prefill(tokens);
  for (size_t i = 0; i < tokens.size(); ++i)
    for (size_t v = 0; v < ref[i].size(); v += 7)
      EXPECT_NEAR(train_logits[i][v].item<float>(), ref[i][v], 1e-3);
  // Gradients reach every weight.
  at::GradMode::set_enabled(true);
  model->transformer.sequence_logits(tokens).sum().backward();
  for (const auto& [name, t] : model->transformer.named_parameters())
    EXPECT_TRUE(t.grad().defined() && t.grad().abs().sum().item<double>() > 0) << name;
}

TEST(Train, BadOptionsAreClearErrors) {
  test::expect_error([] { parse_curriculum("512"); }, {"'512'", "TOKENS:STEPS"});
  test::expect_error([] { parse_curriculum("8:10"); }, {"'8:10'", "tokens must be >= 16"});
  test::expect_error([] { parse_curriculum(""); }, {"curriculum is empty"});
  test::expect_error([] { parse_curriculum("512:x"); }, {"512:x"});
  const auto c = parse_curriculum("256:10,512:20");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[1].max_tokens, 512);
  EXPECT_EQ(c[1].steps, 20);
  test::TempDir tmp;
  TrainOptions o = few_steps(tiny_trainable(tmp, "init"), tmp / "out");
  o.curriculum = {{4096, 1}};  // longer than the model's 1024-token context
  test::expect_error([&] { train(o, {}); }, {"exceeds the model's context"});
}

}  // namespace
}  // namespace dapx
