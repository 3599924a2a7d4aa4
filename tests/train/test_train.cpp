// dapx train on a tiny model: the loss falls, a seed repeats a run exactly, checkpoints reload
// bit for bit, and the training path's logits equal the inference path's (and the naive
// reference's).
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cmath>

#include "engine/model.h"
#include "error_message.h"
#include "naive_transformer.h"
#include "temp_dir.h"
#include "tiny_models.h"
#include "train/checkpoint.h"
#include "train/distill.h"
#include "train/trainer.h"
#include "util/error.h"

namespace dapx {
namespace {

// A tiny Qwen2 model (f32, random: `seed`) with a 1024-token context and the tiny test
// vocabulary or `tokenizer_json`.
std::filesystem::path tiny_trainable(const test::TempDir& tmp, const std::string& name,
                                     uint64_t seed = 3, std::string tokenizer_json = "") {
  if (tokenizer_json.empty()) tokenizer_json = testing::tiny_tokenizer_json();
  const Tokenizer tok = Tokenizer::from_json_string(tokenizer_json, "tiny");
  ModelShape shape = shape_preset("tiny", Arch::Qwen2);
  shape.vocab = tok.vocab_size();
  shape.max_pos = 1024;
  ModelConfig cfg = make_config(Arch::Qwen2, shape);
  cfg.eos_token_ids = {*tok.token_id("<|endoftext|>")};
  write_random_model(tmp / name, cfg, seed, DType::F32, tokenizer_json, "raw");
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

// A time budget ends a run of far more steps, saved, with the cosine decayed by the clock. The
// clock is injected and advances a quarter second per step: the run's length and every
// learning rate are exact, whatever the machine's speed.
TEST(Train, ATimeBudgetStopsTheRunSavedWithTheLearningRateDecayed) {
  at::set_num_threads(1);
  test::TempDir tmp;
  TrainOptions o = few_steps(tiny_trainable(tmp, "init"), tmp / "out");
  o.curriculum = {{560, 100000}};
  o.time_limit_s = 1.5;
  double now = 100.0;  // any origin: the budget counts from the run's start
  o.clock = [&now] { return now; };
  std::vector<double> lrs;
  std::string message;
  TrainCallbacks cb;
  cb.on_step = [&](const StepReport& r) {
    lrs.push_back(r.lr);
    EXPECT_EQ(r.elapsed_s, 0.25 * (r.step - 1)) << "step " << r.step;
    now += 0.25;
  };
  cb.on_message = [&](const std::string& m) { message = m; };
  train(o, cb);
  // Step k starts at 0.25 (k - 1) s: step 7 is the first to end at or past 1.5 s.
  ASSERT_EQ(lrs.size(), 7u);
  EXPECT_EQ(message, "time budget of 1 s spent after step 7 of 100000");
  // Warm-up (one step) at the peak, then the cosine by the time spent, (k - 1) / 6 of the
  // budget, far ahead of the steps' share: the last step is at the floor (0.1 x peak).
  EXPECT_DOUBLE_EQ(lrs[0], o.lr);
  for (size_t k = 2; k <= lrs.size(); ++k) {
    const double done = (k - 1) / 6.0;
    EXPECT_NEAR(lrs[k - 1], o.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * done))), 1e-12 * o.lr)
        << "step " << k;
  }
  EXPECT_NEAR(lrs.back(), 0.1 * o.lr, 1e-12 * o.lr);
  const nlohmann::json part = load_train_state(tmp / "out")["parts"][0];
  EXPECT_EQ(part["steps_done"], 7);
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
  const std::string tokenizer_json = read_tokenizer_json(*model);
  for (const DType dtype : {DType::F32, DType::BF16}) {
    const auto dir = tmp / (dtype == DType::F32 ? "f32" : "bf16");
    save_checkpoint(*model, tokenizer_json, dir, dtype, {{"parts", nlohmann::json::array()}});
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
    save_checkpoint(*back, tokenizer_json, tmp / "again", dtype,
                    {{"parts", nlohmann::json::array()}});
    EXPECT_EQ(test::read_file(dir / "model.safetensors"),
              test::read_file(tmp / "again" / "model.safetensors"));
  }
}

// The directory a run started from may move while it trains (a later checkpoint once read
// its tokenizer there and failed): every save writes the tokenizer read at the start.
TEST(Train, TheStartingDirectoryMayMoveWhileItTrains) {
  test::TempDir tmp;
  const auto init = tiny_trainable(tmp, "init");
  TrainOptions o = few_steps(init, tmp / "out");
  o.curriculum = {{560, 3}};
  o.save_every = 1;
  TrainCallbacks cb;
  cb.on_step = [&](const StepReport& r) {
    if (r.step == 1) std::filesystem::rename(init, tmp / "moved");
  };
  train(o, cb);
  EXPECT_EQ(test::read_file(tmp / "out" / "tokenizer.json"),
            test::read_file(tmp / "moved" / "tokenizer.json"));
  EXPECT_EQ(load_train_state(tmp / "out")["parts"][0]["steps_done"], 3);
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

// observed_key_attention against a loop over heads, window queries and keys in double.
TEST(Distill, KeyAttentionEqualsANaiveLoop) {
  at::manual_seed(3);
  const int64_t heads = 4, kv_heads = 2, n = 12, d = 8, window = 3;
  const at::Tensor q = at::randn({heads, n, d}), k = at::randn({kv_heads, n, d});
  const at::Tensor got = observed_key_attention(q, k, window);
  ASSERT_EQ(got.size(0), n - window);
  std::vector<double> want(n - window, 0.0);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = n - window; i < n; ++i) {  // query i sees keys 0..i
      std::vector<double> p(i + 1);
      double total = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < d; ++c)
          dot += q[h][i][c].item<double>() * k[h / (heads / kv_heads)][j][c].item<double>();
        p[j] = std::exp(dot / std::sqrt(double(d)));
        total += p[j];
      }
      for (int64_t j = 0; j < n - window; ++j) want[j] += p[j] / total;
    }
  double sum = 0;
  for (const double w : want) sum += w;
  for (int64_t j = 0; j < n - window; ++j)
    EXPECT_NEAR(got[j].item<double>(), want[j] / sum, 1e-5) << "key " << j;
  test::expect_error([&] { observed_key_attention(q, k, n); }, {"no key before a window of 12"});
  test::expect_error(
      [&] {
        observed_key_attention(q, at::randn({3, n, d}), 2);
      },
      {"4 query heads do not group over 3 KV heads"});
  // The loss: zero for equal distributions, positive otherwise, and it reaches the student.
  const at::Tensor t = at::softmax(at::randn({20}), 0);
  EXPECT_NEAR(attention_distill_loss(t, t).item<double>(), 0.0, 1e-6);
  const at::Tensor s = at::softmax(at::randn({20}), 0).requires_grad_(true);
  const at::Tensor loss = attention_distill_loss(s, t);
  EXPECT_GT(loss.item<double>(), 0.01);
  loss.backward();
  EXPECT_GT(s.grad().abs().sum().item<double>(), 0.0);
  test::expect_error([&] { attention_distill_loss(t, t.narrow(0, 0, 5)); }, {"equal-length"});
}

// token_distill_loss against the mean over positions of KL(teacher || student), in double.
TEST(Distill, TokenLossEqualsANaiveKl) {
  at::manual_seed(5);
  const int64_t n = 4, vocab = 7;
  const at::Tensor teacher = at::randn({n, vocab}) * 2, student = at::randn({n, vocab});
  double want = 0;
  for (int64_t i = 0; i < n; ++i) {
    double zt = 0, zs = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      zt += std::exp(teacher[i][v].item<double>());
      zs += std::exp(student[i][v].item<double>());
    }
    for (int64_t v = 0; v < vocab; ++v) {
      const double pt = std::exp(teacher[i][v].item<double>()) / zt;
      const double ps = std::exp(student[i][v].item<double>()) / zs;
      want += pt * std::log(pt / ps) / n;
    }
  }
  EXPECT_NEAR(token_distill_loss(student, teacher).item<double>(), want, 1e-5);
  // Shifting a row's logits changes no distribution.
  EXPECT_NEAR(token_distill_loss(teacher + 3.0, teacher).item<double>(), 0.0, 1e-6);
  test::expect_error([&] { token_distill_loss(student, teacher.narrow(1, 0, 5)); },
                     {"[positions, vocab]"});
}

// Spearman's rho (no ties in float attention) between the two models' layer-mean key
// attention over the last 32 queries of `tokens`, computed here from their layer taps.
double key_rank_correlation(const std::filesystem::path& a, const std::filesystem::path& b,
                            const std::vector<int>& tokens) {
  at::NoGradGuard no_grad;
  ComputeOptions opts;
  opts.weight_dtype = at::kFloat;
  std::vector<at::Tensor> means;
  for (const auto& dir : {a, b}) {
    const auto model = LoadedModel::load(dir, opts);
    std::vector<at::Tensor> layers;
    model->transformer.sequence_logits(tokens, [&](int, const AttentionInputs& in) {
      layers.push_back(observed_key_attention(in.q, in.k, 32));
    });
    const at::Tensor ranks = at::stack(layers).mean(0).argsort().argsort().to(at::kDouble);
    means.push_back(ranks - ranks.mean());
  }
  return ((means[0] * means[1]).sum() / (means[0].norm() * means[1].norm())).item<double>();
}

// With a teacher, the student's key attention comes to rank like the teacher's (a random model
// of another seed), far more than the same run without one; the loss is reported and recorded.
TEST(Distill, TrainingWithATeacherRanksKeysLikeIt) {
  at::set_num_threads(1);
  test::TempDir tmp;
  const auto init = tiny_trainable(tmp, "init");
  const auto teacher = tiny_trainable(tmp, "teacher", 11);
  const Tokenizer tok = Tokenizer::from_json_string(testing::tiny_tokenizer_json(), "tiny");
  const std::vector<int> text = tok.encode(testing::corpus());
  ASSERT_GT(text.size(), 700u);
  const std::vector<int> probe(text.begin() + 300, text.begin() + 700);
  TrainOptions plain = few_steps(init, tmp / "plain");
  plain.curriculum = {{560, 30}};
  TrainOptions distilled = plain;
  distilled.out = tmp / "distilled";
  distilled.teacher = teacher;
  distilled.distill_weight = 20;
  std::vector<double> losses;
  TrainCallbacks cb;
  cb.on_step = [&](const StepReport& r) { losses.push_back(r.distill_loss); };
  train(distilled, cb);
  const std::vector<double> plain_losses = run(plain);
  ASSERT_EQ(losses.size(), 30u);
  EXPECT_LT(losses[27] + losses[28] + losses[29], 0.7 * (losses[0] + losses[1] + losses[2]));
  const double before = key_rank_correlation(teacher, init, probe);
  const double with = key_rank_correlation(teacher, tmp / "distilled", probe);
  const double without = key_rank_correlation(teacher, tmp / "plain", probe);
  EXPECT_GT(with, without + 0.2) << "before " << before;
  EXPECT_GT(with, 0.5) << "before " << before << ", without a teacher " << without;
  const nlohmann::json part = load_train_state(tmp / "distilled")["parts"][0];
  EXPECT_EQ(part["distill_weight"], 20.0);
  EXPECT_GT(part["log"][0]["distill_loss"].get<double>(), 0.0);
  EXPECT_EQ(load_train_state(tmp / "plain")["parts"][0]["distill_weight"], 0.0);
}

// Next-token distillation holds the student's predictions to the teacher's: both runs start
// from the teacher's own weights; without it, training on the text moves them far away.
TEST(Distill, TrainingWithTokenDistillationFollowsTheTeacher) {
  at::set_num_threads(1);
  test::TempDir tmp;
  const auto teacher = tiny_trainable(tmp, "teacher", 11);
  const Tokenizer tok = Tokenizer::from_json_string(testing::tiny_tokenizer_json(), "tiny");
  const std::vector<int> text = tok.encode(testing::corpus());
  const std::vector<int> probe(text.begin() + 300, text.begin() + 500);
  TrainOptions plain = few_steps(teacher, tmp / "plain");
  plain.reinit = false;
  TrainOptions distilled = plain;
  distilled.out = tmp / "distilled";
  distilled.teacher = teacher;
  distilled.distill_weight = 0;
  distilled.token_distill_weight = 20;
  std::vector<double> losses;
  TrainCallbacks cb;
  cb.on_step = [&](const StepReport& r) { losses.push_back(r.token_distill_loss); };
  train(distilled, cb);
  run(plain);
  ASSERT_EQ(losses.size(), 20u);
  EXPECT_NEAR(losses[0], 0.0, 1e-6);  // the first step's student is the teacher
  EXPECT_GT(losses[19], 0.0);
  const auto kl = [&](const std::filesystem::path& student) {
    at::NoGradGuard no_grad;
    ComputeOptions opts;
    opts.weight_dtype = at::kFloat;
    const auto s = LoadedModel::load(student, opts), t = LoadedModel::load(teacher, opts);
    return token_distill_loss(s->transformer.sequence_logits(probe),
                              t->transformer.sequence_logits(probe))
        .item<double>();
  };
  const double with = kl(tmp / "distilled"), without = kl(tmp / "plain");
  EXPECT_LT(with, 0.3 * without) << "with " << with << ", without " << without;
  EXPECT_EQ(load_train_state(tmp / "distilled")["parts"][0]["token_distill_weight"], 20.0);
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
  // A teacher must read the same tokens.
  o.curriculum = {{560, 1}};
  o.teacher =
      tiny_trainable(tmp, "other-vocab", 3, train_byte_level_bpe_json(testing::corpus(), 40));
  test::expect_error([&] { train(o, {}); },
                     {"other-vocab", "has another tokenizer", "299 tokens against 320"});
}

}  // namespace
}  // namespace dapx
