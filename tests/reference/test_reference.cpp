// Tests of the naive reference forward pass against values computed by hand (tiny models with
// hand-picked weights whose outputs can be written down in closed form) and against its own
// invariants (RoPE relative positions, compaction that keeps everything, skipped positions).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "io/safetensors.h"
#include "naive_transformer.h"
#include "util/error.h"

namespace fs = std::filesystem;
using dapx::DType;
using dapx::ModelConfig;
using dapx::TensorData;
using dapx::WeightStore;
using dapx::reference::NaiveTransformer;

namespace {

using Weights = std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>;

TensorData make_tensor(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<float>& v, DType dtype) {
  TensorData t;
  t.name = name;
  t.dtype = dtype;
  t.shape = shape;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  EXPECT_EQ(n, int64_t(v.size())) << name;
  if (dtype == DType::F32) {
    t.bytes.resize(v.size() * 4);
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  } else {
    t.bytes.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
      uint16_t h = dtype == DType::BF16 ? dapx::float_to_bf16(v[i]) : dapx::float_to_f16(v[i]);
      std::memcpy(t.bytes.data() + 2 * i, &h, 2);
    }
  }
  return t;
}

// A fresh temp directory holding model.safetensors with the given weights; removed on scope exit.
class ModelDir {
 public:
  ModelDir(const Weights& w, DType dtype = DType::F32) {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("dapx_reference_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::vector<TensorData> tensors;
    for (const auto& [name, sv] : w)
      tensors.push_back(make_tensor(name, sv.first, sv.second, dtype));
    dapx::write_safetensors(dir_ / "model.safetensors", tensors);
  }
  ~ModelDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& path() const { return dir_; }

 private:
  fs::path dir_;
};

NaiveTransformer build(const ModelConfig& cfg, const Weights& w, DType dtype = DType::F32) {
  ModelDir dir(w, dtype);
  WeightStore store = WeightStore::open(dir.path());
  return NaiveTransformer(cfg, store);  // converts to float: the store may go away
}

// ---------------------------------------------------------------------------------------------
// Hand-built model: hidden 4, 2 heads, 1 KV head, head_dim 2, vocab 5, intermediate 2, 1 layer.
//   q = h (head 0 = h[0:2], head 1 = h[2:4]); k = h[0:2]; v = h[2:4]; o_proj = identity;
//   gate = h[0:2], up = h[2:4]; down: [a0, a1, 0, a0 + a1]; tied embeddings.
// With head_dim 2 and theta 10000, inv_freq = {1}: RoPE at position p is the plain 2-D
// rotation by p radians.
// ---------------------------------------------------------------------------------------------
const std::vector<std::vector<float>> kEmbed = {
    {1, 0, 1, 0}, {0, 1, 0, -1}, {1, 1, 0, 0}, {0, 0, 1, 1}, {1, -1, 2, 0.5f}};
const std::vector<float> kInNorm = {1, 2, 1, 0.5f};
const std::vector<float> kPostNorm = {0.5f, 1, 1.5f, 1};
const std::vector<float> kFinalNorm = {1, 1, 2, 1};
const double kEps = 1e-6;

struct HandOptions {
  bool bias = false;     // Qwen2-style q/k/v bias
  bool qk_norm = false;  // Qwen3-style per-head q/k RMSNorm
};
const std::vector<float> kBq = {0.1f, -0.2f, 0.3f, 0.f}, kBk = {0.5f, -0.5f}, kBv = {1.f, 2.f};
const std::vector<float> kQNorm = {1.f, 2.f}, kKNorm = {0.5f, 1.f};

ModelConfig hand_config(HandOptions o = {}) {
  ModelConfig c;
  c.arch = o.qk_norm ? dapx::Arch::Qwen3 : (o.bias ? dapx::Arch::Qwen2 : dapx::Arch::Llama);
  c.vocab_size = 5;
  c.hidden_size = 4;
  c.intermediate_size = 2;
  c.num_layers = 1;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 2;
  c.rms_norm_eps = kEps;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = true;
  c.qkv_bias = o.bias;
  c.qk_norm = o.qk_norm;
  return c;
}

Weights hand_weights(HandOptions o = {}) {
  Weights w;
  std::vector<float> embed;
  for (const auto& r : kEmbed) embed.insert(embed.end(), r.begin(), r.end());
  w["model.embed_tokens.weight"] = {{5, 4}, embed};
  w["model.norm.weight"] = {{4}, kFinalNorm};
  const std::string p = "model.layers.0.";
  w[p + "input_layernorm.weight"] = {{4}, kInNorm};
  w[p + "post_attention_layernorm.weight"] = {{4}, kPostNorm};
  w[p + "self_attn.q_proj.weight"] = {{4, 4}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}};
  w[p + "self_attn.k_proj.weight"] = {{2, 4}, {1, 0, 0, 0, 0, 1, 0, 0}};
  w[p + "self_attn.v_proj.weight"] = {{2, 4}, {0, 0, 1, 0, 0, 0, 0, 1}};
  w[p + "self_attn.o_proj.weight"] = {{4, 4}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}};
  w[p + "mlp.gate_proj.weight"] = {{2, 4}, {1, 0, 0, 0, 0, 1, 0, 0}};
  w[p + "mlp.up_proj.weight"] = {{2, 4}, {0, 0, 1, 0, 0, 0, 0, 1}};
  w[p + "mlp.down_proj.weight"] = {{4, 2}, {1, 0, 0, 1, 0, 0, 1, 1}};
  if (o.bias) {
    w[p + "self_attn.q_proj.bias"] = {{4}, kBq};
    w[p + "self_attn.k_proj.bias"] = {{2}, kBk};
    w[p + "self_attn.v_proj.bias"] = {{2}, kBv};
  }
  if (o.qk_norm) {
    w[p + "self_attn.q_norm.weight"] = {{2}, kQNorm};
    w[p + "self_attn.k_norm.weight"] = {{2}, kKNorm};
  }
  return w;
}

// x / sqrt(mean(x^2) + eps) * w, written out for the fixed sizes used here.
std::vector<double> norm(const std::vector<double>& x, const std::vector<float>& w) {
  double ms = 0;
  for (double v : x) ms += v * v;
  ms /= double(x.size());
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] / std::sqrt(ms + kEps) * w[i];
  return out;
}
// 2-D rotation by `angle` (what rotate_half RoPE is for head_dim 2).
std::vector<double> rot(const std::vector<double>& v, double angle) {
  return {v[0] * std::cos(angle) - v[1] * std::sin(angle),
          v[0] * std::sin(angle) + v[1] * std::cos(angle)};
}
double silu(double x) { return x / (1 + std::exp(-x)); }

// Logits of the last of `tokens` (fed at `positions`) for the hand-built model.
std::vector<double> hand_logits(const std::vector<int>& tokens, const std::vector<int>& positions,
                                HandOptions o = {}) {
  std::vector<std::vector<double>> keys, values;
  std::vector<double> x, q0, q1;
  for (size_t t = 0; t < tokens.size(); ++t) {
    x.assign(kEmbed[tokens[t]].begin(), kEmbed[tokens[t]].end());
    std::vector<double> h = norm(x, kInNorm);
    q0 = {h[0], h[1]};
    q1 = {h[2], h[3]};
    std::vector<double> k = {h[0], h[1]}, v = {h[2], h[3]};
    if (o.bias) {
      q0 = {q0[0] + kBq[0], q0[1] + kBq[1]};
      q1 = {q1[0] + kBq[2], q1[1] + kBq[3]};
      k = {k[0] + kBk[0], k[1] + kBk[1]};
      v = {v[0] + kBv[0], v[1] + kBv[1]};
    }
    if (o.qk_norm) {
      q0 = norm(q0, kQNorm);
      q1 = norm(q1, kQNorm);
      k = norm(k, kKNorm);
    }
    keys.push_back(rot(k, positions[t]));
    values.push_back(v);
    q0 = rot(q0, positions[t]);
    q1 = rot(q1, positions[t]);
  }
  // Both query heads share KV head 0.
  std::vector<double> attn;
  for (const auto& q : {q0, q1}) {
    std::vector<double> s;
    double sum = 0;
    for (const auto& k : keys) {
      s.push_back(std::exp((q[0] * k[0] + q[1] * k[1]) / std::sqrt(2.0)));
      sum += s.back();
    }
    double a0 = 0, a1 = 0;
    for (size_t j = 0; j < keys.size(); ++j) {
      a0 += s[j] / sum * values[j][0];
      a1 += s[j] / sum * values[j][1];
    }
    attn.push_back(a0);
    attn.push_back(a1);
  }
  for (int i = 0; i < 4; ++i) x[i] += attn[i];  // o_proj = identity
  std::vector<double> h2 = norm(x, kPostNorm);
  double a0 = silu(h2[0]) * h2[2], a1 = silu(h2[1]) * h2[3];
  x[0] += a0;
  x[1] += a1;
  x[3] += a0 + a1;
  std::vector<double> hf = norm(x, kFinalNorm);
  std::vector<double> logits;
  for (const auto& e : kEmbed)
    logits.push_back(e[0] * hf[0] + e[1] * hf[1] + e[2] * hf[2] + e[3] * hf[3]);
  return logits;
}

void expect_near(const std::vector<float>& got, const std::vector<double>& want, double tol,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol) << what << " [" << i << "]";
}

void expect_near(const std::vector<float>& got, const std::vector<float>& want, double tol,
                 const std::string& what) {
  expect_near(got, std::vector<double>(want.begin(), want.end()), tol, what);
}

// ---------------------------------------------------------------------------------------------
// Random model for invariance tests: values are multiples of 1/64 in [-0.5, 0.5] (exact in bf16).
// ---------------------------------------------------------------------------------------------
ModelConfig random_config(int layers, bool bias = false, bool qk_norm = false,
                          bool llama3 = false) {
  ModelConfig c;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = layers;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 4;  // q width 16 != hidden 8
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 100.0;
  c.tie_word_embeddings = false;
  c.qkv_bias = bias;
  c.qk_norm = qk_norm;
  if (llama3) {
    dapx::RopeScaling s;
    s.factor = 4.0;
    s.low_freq_factor = 1.0;
    s.high_freq_factor = 4.0;
    s.original_max_position_embeddings = 64;
    c.rope_scaling = s;
  }
  return c;
}

Weights random_weights(const ModelConfig& c, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-32, 32);
  auto rnd = [&](std::vector<int64_t> shape, float offset = 0.f) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(n);
    for (auto& x : v) x = offset + float(dist(rng)) / 64.f;
    return std::make_pair(shape, v);
  };
  const int64_t H = c.hidden_size, QD = int64_t(c.num_heads) * c.head_dim,
                KD = int64_t(c.num_kv_heads) * c.head_dim, I = c.intermediate_size;
  Weights w;
  w["model.embed_tokens.weight"] = rnd({c.vocab_size, H});
  w["model.norm.weight"] = rnd({H}, 1.f);
  if (!c.tie_word_embeddings) w["lm_head.weight"] = rnd({c.vocab_size, H});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w[p + "input_layernorm.weight"] = rnd({H}, 1.f);
    w[p + "post_attention_layernorm.weight"] = rnd({H}, 1.f);
    w[p + "self_attn.q_proj.weight"] = rnd({QD, H});
    w[p + "self_attn.k_proj.weight"] = rnd({KD, H});
    w[p + "self_attn.v_proj.weight"] = rnd({KD, H});
    w[p + "self_attn.o_proj.weight"] = rnd({H, QD});
    w[p + "mlp.gate_proj.weight"] = rnd({I, H});
    w[p + "mlp.up_proj.weight"] = rnd({I, H});
    w[p + "mlp.down_proj.weight"] = rnd({H, I});
    if (c.qkv_bias) {
      w[p + "self_attn.q_proj.bias"] = rnd({QD});
      w[p + "self_attn.k_proj.bias"] = rnd({KD});
      w[p + "self_attn.v_proj.bias"] = rnd({KD});
    }
    if (c.qk_norm) {
      w[p + "self_attn.q_norm.weight"] = rnd({c.head_dim}, 1.f);
      w[p + "self_attn.k_norm.weight"] = rnd({c.head_dim}, 1.f);
    }
  }
  return w;
}

std::vector<std::vector<std::vector<int>>> keep_all(const NaiveTransformer& m) {
  const ModelConfig& c = m.config();
  std::vector<std::vector<std::vector<int>>> keep(c.num_layers);
  for (int l = 0; l < c.num_layers; ++l)
    for (int h = 0; h < c.num_kv_heads; ++h) {
      std::vector<int> idx(m.cache_size(l, h));
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = int(i);
      keep[l].push_back(idx);
    }
  return keep;
}

}  // namespace

// ------------------------------------ building blocks ----------------------------------------

TEST(ReferenceBlocks, RmsNormKnownValues) {
  const float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 2, 0.5f};
  float out[4];
  NaiveTransformer::rms_norm(x, w, 4, 0.0, out);
  // mean(x^2) = 30 / 4 = 7.5
  const double r = 1.0 / std::sqrt(7.5);
  EXPECT_NEAR(out[0], 1 * r, 1e-6);
  EXPECT_NEAR(out[1], 2 * r, 1e-6);
  EXPECT_NEAR(out[2], 6 * r, 1e-6);
  EXPECT_NEAR(out[3], 2 * r, 1e-6);
  NaiveTransformer::rms_norm(x, w, 4, 0.5, out);  // eps inside the sqrt: mean 7.5 + 0.5 = 8
  EXPECT_NEAR(out[0], 1 / std::sqrt(8.0), 1e-6);
}

TEST(ReferenceBlocks, RopeDefaultInvFreq) {
  ModelConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000.0;
  std::vector<double> inv = NaiveTransformer::rope_inv_freq(c);
  ASSERT_EQ(inv.size(), 4u);
  EXPECT_DOUBLE_EQ(inv[0], 1.0);
  EXPECT_NEAR(inv[1], 0.1, 1e-15);
  EXPECT_NEAR(inv[2], 0.01, 1e-16);
  EXPECT_NEAR(inv[3], 0.001, 1e-17);
}

TEST(ReferenceBlocks, RopeRotateHalfAtKnownAngle) {
  // head_dim 4, theta 10000: inv_freq = {1, 0.01}. rotate_half pairs dims (0, 2) and (1, 3).
  const std::vector<double> inv = {1.0, 0.01};
  float x[4] = {1, 2, 3, 4};
  NaiveTransformer::apply_rope(x, 4, 3, inv);
  EXPECT_NEAR(x[0], 1 * std::cos(3.0) - 3 * std::sin(3.0), 1e-6);
  EXPECT_NEAR(x[2], 3 * std::cos(3.0) + 1 * std::sin(3.0), 1e-6);
  EXPECT_NEAR(x[1], 2 * std::cos(0.03) - 4 * std::sin(0.03), 1e-6);
  EXPECT_NEAR(x[3], 4 * std::cos(0.03) + 2 * std::sin(0.03), 1e-6);
  // Concrete numbers for the first pair: cos 3 = -0.9899925, sin 3 = 0.14112001.
  EXPECT_NEAR(x[0], -1.4133525, 1e-6);
  EXPECT_NEAR(x[2], -2.8288575, 1e-6);

  float y[4] = {1, 2, 3, 4};
  NaiveTransformer::apply_rope(y, 4, 0, inv);  // position 0: identity
  EXPECT_FLOAT_EQ(y[0], 1);
  EXPECT_FLOAT_EQ(y[1], 2);
  EXPECT_FLOAT_EQ(y[2], 3);
  EXPECT_FLOAT_EQ(y[3], 4);
}

TEST(ReferenceBlocks, Llama3InvFreqScaling) {
  // head_dim 8, theta 10000: inv_freq = {1, 0.1, 0.01, 0.001}; wavelengths 2*pi/f =
  // {6.28, 62.8, 628.3, 6283.2}. factor 8, low 1, high 4, original 1024:
  // low_freq_wavelen = 1024, high_freq_wavelen = 256.
  ModelConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000.0;
  dapx::RopeScaling s;
  s.factor = 8.0;
  s.low_freq_factor = 1.0;
  s.high_freq_factor = 4.0;
  s.original_max_position_embeddings = 1024;
  c.rope_scaling = s;
  std::vector<double> inv = NaiveTransformer::rope_inv_freq(c);
  ASSERT_EQ(inv.size(), 4u);
  EXPECT_NEAR(inv[0], 1.0, 1e-15);  // 6.28 < 256: unchanged
  EXPECT_NEAR(inv[1], 0.1, 1e-15);  // 62.8 < 256: unchanged
  // 628.3 in [256, 1024]: smooth = (1024 / 628.3185 - 1) / 3 = 0.2099155;
  // (1 - smooth) * 0.01 / 8 + smooth * 0.01 = 0.0030867610
  EXPECT_NEAR(inv[2], 0.003086760967, 1e-11);
  EXPECT_NEAR(inv[3], 0.001 / 8, 1e-17);  // 6283 > 1024: divided by factor
}

// -------------------------------------- hand-built model -------------------------------------

TEST(ReferenceHandModel, SingleToken) {
  NaiveTransformer m = build(hand_config(), hand_weights());
  for (int t = 0; t < 5; ++t) {
    m.reset();
    expect_near(m.step(t, 0), hand_logits({t}, {0}), 1e-5, "token " + std::to_string(t));
  }
  // Token 4 at position 0, written out: x = [1, -1, 2, 0.5], mean(x^2) = 6.25/4 = 1.5625,
  // rms = 1.25; h = x / 1.25 * [1, 2, 1, 0.5] = [0.8, -1.6, 1.6, 0.2]; v = [1.6, 0.2];
  // attention over one entry = v for both heads: x1 = [2.6, -0.8, 3.6, 0.7].
  // MLP: h2 = norm(x1) * [0.5, 1, 1.5, 1]; a = silu(h2[0:2]) * h2[2:4] = [0.8601, -0.0444];
  // x2 = [3.46008, -0.84440, 3.6, 1.51568]; logits = embed . (norm(x2) * [1, 1, 2, 1]).
  std::vector<double> want = hand_logits({4}, {0});
  expect_near(m.step(4, 0),
              std::vector<double>{4.0332793, -0.8929439, 0.9896506, 3.2976082, 7.3636389}, 2e-6,
              "token 4 written out");
  m.reset();
  // And the attention output does not depend on the position when only one entry is cached.
  m.reset();
  expect_near(m.step(4, 7), want, 1e-5, "token 4 at position 7");
}

TEST(ReferenceHandModel, TwoTokensAttentionWithRope) {
  NaiveTransformer m = build(hand_config(), hand_weights());
  auto logits = m.prefill({0, 1});
  ASSERT_EQ(logits.size(), 2u);
  expect_near(logits[0], hand_logits({0}, {0}), 1e-5, "pos 0");
  expect_near(logits[1], hand_logits({0, 1}, {0, 1}), 1e-5, "pos 1");
  m.reset();
  auto l2 = m.prefill({4, 2, 3});
  expect_near(l2[2], hand_logits({4, 2, 3}, {0, 1, 2}), 1e-5, "three tokens");
  // Skipped positions: tokens at 0, 5, 9.
  m.reset();
  m.step(4, 0);
  m.step(2, 5);
  expect_near(m.step(3, 9), hand_logits({4, 2, 3}, {0, 5, 9}), 1e-5, "positions 0, 5, 9");
  // Sanity: the position actually matters.
  std::vector<double> a = hand_logits({4, 2, 3}, {0, 1, 2}), b = hand_logits({4, 2, 3}, {0, 5, 9});
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += std::fabs(a[i] - b[i]);
  EXPECT_GT(diff, 1e-3);
}

TEST(ReferenceHandModel, Qwen2Bias) {
  HandOptions o;
  o.bias = true;
  NaiveTransformer m = build(hand_config(o), hand_weights(o));
  auto logits = m.prefill({4, 2, 3});
  expect_near(logits[0], hand_logits({4}, {0}, o), 1e-5, "bias pos 0");
  expect_near(logits[2], hand_logits({4, 2, 3}, {0, 1, 2}, o), 1e-5, "bias pos 2");
}

TEST(ReferenceHandModel, Qwen3QkNorm) {
  HandOptions o;
  o.qk_norm = true;
  NaiveTransformer m = build(hand_config(o), hand_weights(o));
  auto logits = m.prefill({4, 2, 3});
  expect_near(logits[2], hand_logits({4, 2, 3}, {0, 1, 2}, o), 1e-5, "qk_norm");
  o.bias = true;  // both together
  NaiveTransformer m2 = build(hand_config(o), hand_weights(o));
  auto l2 = m2.prefill({1, 0, 4});
  expect_near(l2[2], hand_logits({1, 0, 4}, {0, 1, 2}, o), 1e-5, "qk_norm + bias");
}

TEST(ReferenceHandModel, GqaHeadMappingAndUntiedHead) {
  // hidden 4, 4 heads, 2 KV heads (group 2), head_dim 2, one token. Values: KV head 0 =
  // h[0:2], KV head 1 = h[2:4]; o_proj takes the first component of each head:
  // o[i] = attn[2i]. Heads 0, 1 use KV head 0 and heads 2, 3 use KV head 1, so
  // o = [h0, h0, h2, h2]. The MLP is off (down = 0). lm_head = [I4; 1 1 1 1].
  ModelConfig c;
  c.vocab_size = 5;
  c.hidden_size = 4;
  c.intermediate_size = 2;
  c.num_layers = 1;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 2;
  c.rms_norm_eps = kEps;
  c.tie_word_embeddings = false;
  Weights w;
  w["model.embed_tokens.weight"] = {{5, 4}, std::vector<float>(20, 0.f)};
  for (int i = 0; i < 4; ++i) w["model.embed_tokens.weight"].second[4 * 2 + i] = float(i + 1);
  w["model.norm.weight"] = {{4}, {1, 1, 1, 1}};
  w["lm_head.weight"] = {{5, 4}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1}};
  const std::string p = "model.layers.0.";
  w[p + "input_layernorm.weight"] = {{4}, {1, 1, 1, 1}};
  w[p + "post_attention_layernorm.weight"] = {{4}, {1, 1, 1, 1}};
  w[p + "self_attn.q_proj.weight"] = {{8, 4}, std::vector<float>(32, 0.f)};
  w[p + "self_attn.k_proj.weight"] = {{4, 4}, std::vector<float>(16, 0.f)};
  w[p + "self_attn.v_proj.weight"] = {{4, 4}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}};
  std::vector<float> wo(32, 0.f);
  for (int i = 0; i < 4; ++i) wo[i * 8 + 2 * i] = 1.f;
  w[p + "self_attn.o_proj.weight"] = {{4, 8}, wo};
  w[p + "mlp.gate_proj.weight"] = {{2, 4}, std::vector<float>(8, 0.5f)};
  w[p + "mlp.up_proj.weight"] = {{2, 4}, std::vector<float>(8, 0.5f)};
  w[p + "mlp.down_proj.weight"] = {{4, 2}, std::vector<float>(8, 0.f)};
  NaiveTransformer m = build(c, w);
  // Token 2: x = [1, 2, 3, 4], mean(x^2) = 7.5, h = x / sqrt(7.5).
  const double r = 1.0 / std::sqrt(7.5 + kEps);
  std::vector<double> x = {1 + 1 * r, 2 + 1 * r, 3 + 3 * r, 4 + 3 * r};
  std::vector<double> hf = norm(x, {1, 1, 1, 1});
  std::vector<double> want = {hf[0], hf[1], hf[2], hf[3], hf[0] + hf[1] + hf[2] + hf[3]};
  expect_near(m.step(2, 0), want, 1e-5, "gqa");
}

// ------------------------------------- random models -----------------------------------------

TEST(ReferenceRandomModel, CompactKeepingEverythingChangesNothing) {
  for (bool variant : {false, true}) {
    ModelConfig c = random_config(2, variant, variant, variant);
    Weights w = random_weights(c, 7);
    NaiveTransformer a = build(c, w), b = build(c, w);
    std::vector<int> prompt = {3, 1, 4, 1, 5, 9, 2, 6};
    a.prefill(prompt);
    b.prefill(prompt);
    b.compact(keep_all(b));
    EXPECT_EQ(b.cache_size(1, 1), 8);
    for (int pos = 8; pos < 11; ++pos) {
      auto la = a.step(pos % 11, pos), lb = b.step(pos % 11, pos);
      EXPECT_EQ(la, lb) << "pos " << pos;
    }
  }
}

TEST(ReferenceRandomModel, CompactEqualsFeedingOnlyKeptTokensInOneLayer) {
  // With one layer, K/V of a token depend only on the token and its position, so dropping
  // entries equals never feeding those tokens (their positions skipped).
  ModelConfig c = random_config(1, true, false, true);
  Weights w = random_weights(c, 11);
  NaiveTransformer a = build(c, w), b = build(c, w);
  std::vector<int> prompt = {3, 1, 4, 1, 5, 9, 2, 6};
  a.prefill(prompt);
  a.compact({{{0, 2, 3, 6}, {0, 2, 3, 6}}});
  EXPECT_EQ(a.cache_size(0, 0), 4);
  for (int i : {0, 2, 3, 6}) b.step(prompt[i], i);
  expect_near(a.step(7, 8), b.step(7, 8), 1e-6, "after compaction");
}

TEST(ReferenceRandomModel, PerHeadCompactionDiffers) {
  ModelConfig c = random_config(2);
  Weights w = random_weights(c, 5);
  NaiveTransformer a = build(c, w);
  a.prefill({1, 2, 3, 4, 5});
  std::vector<float> base;
  {
    NaiveTransformer b = build(c, w);
    b.prefill({1, 2, 3, 4, 5});
    base = b.step(6, 5);
  }
  // Different heads keep different slots; layers keep different counts.
  a.compact({{{0, 1, 4}, {1, 2, 3}}, {{0, 4}, {3, 4}}});
  EXPECT_EQ(a.cache_size(0, 1), 3);
  EXPECT_EQ(a.cache_size(1, 0), 2);
  std::vector<float> got = a.step(6, 5);
  EXPECT_EQ(a.cache_size(0, 1), 4);
  EXPECT_EQ(a.cache_size(1, 0), 3);
  EXPECT_NE(got, base);
}

TEST(ReferenceRandomModel, CompactRejectsBadInput) {
  ModelConfig c = random_config(2);
  NaiveTransformer a = build(c, random_weights(c, 3));
  a.prefill({1, 2, 3});
  EXPECT_THROW(a.compact({{{0}, {0}}}), dapx::Error);                    // one layer missing
  EXPECT_THROW(a.compact({{{0}, {3}}, {{0}, {0}}}), dapx::Error);        // out of range
  EXPECT_THROW(a.compact({{{1, 0}, {0, 1}}, {{0}, {0}}}), dapx::Error);  // unsorted
  EXPECT_EQ(a.cache_size(0, 0), 3);                                      // untouched
  EXPECT_THROW(a.step(11, 3), dapx::Error);
}

TEST(ReferenceRandomModel, RopeDependsOnlyOnRelativePositions) {
  ModelConfig c = random_config(2, false, true, true);
  Weights w = random_weights(c, 13);
  NaiveTransformer a = build(c, w);
  std::vector<int> toks = {4, 8, 1, 0, 7};
  std::vector<float> la, lb;
  for (int i = 0; i < 5; ++i) la = a.step(toks[i], i);
  a.reset();
  for (int i = 0; i < 5; ++i) lb = a.step(toks[i], 37 + i);
  expect_near(lb, la, 1e-4, "shifted by 37");
}

TEST(ReferenceRandomModel, Bf16WeightsLoadExactly) {
  // Every weight is a multiple of 1/64 in [-1.5, 1.5]: exact in bf16 and f16.
  ModelConfig c = random_config(2, true, true);
  Weights w = random_weights(c, 17);
  NaiveTransformer f32 = build(c, w), bf16 = build(c, w, DType::BF16),
                   f16 = build(c, w, DType::F16);
  auto a = f32.prefill({1, 2, 3}), b = bf16.prefill({1, 2, 3}), d = f16.prefill({1, 2, 3});
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, d);
}

TEST(ReferenceRandomModel, GreedyMatchesManualDecode) {
  ModelConfig c = random_config(2);
  c.tie_word_embeddings = true;
  Weights w = random_weights(c, 19);
  NaiveTransformer m = build(c, w);
  std::vector<int> prompt = {2, 7, 1};
  std::vector<int> got = m.greedy(prompt, 6);
  ASSERT_EQ(got.size(), 6u);
  m.reset();
  auto argmax = [](const std::vector<float>& v) {
    return int(std::max_element(v.begin(), v.end()) - v.begin());
  };
  int tok = argmax(m.prefill(prompt).back());
  std::vector<int> want = {tok};
  for (int pos = 3; want.size() < 6; ++pos) want.push_back(tok = argmax(m.step(tok, pos)));
  EXPECT_EQ(got, want);
  EXPECT_EQ(m.greedy(prompt, 6), got);  // greedy resets first
}

TEST(ReferenceRandomModel, MissingOrMisshapenTensorThrows) {
  ModelConfig c = random_config(1);
  Weights w = random_weights(c, 23);
  Weights missing = w;
  missing.erase("model.layers.0.mlp.up_proj.weight");
  EXPECT_THROW(build(c, missing), dapx::Error);
  Weights bad = w;
  bad["model.norm.weight"] = {{7}, std::vector<float>(7, 1.f)};
  EXPECT_THROW(build(c, bad), dapx::Error);
}
