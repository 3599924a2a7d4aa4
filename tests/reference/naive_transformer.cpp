#include "naive_transformer.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "util/error.h"

namespace dapx::reference {

namespace {

std::vector<float> load(const WeightStore& w, const std::string& name,
                        const std::vector<int64_t>& shape) {
  return to_float_vector(w.get(name, shape));
}

// out[r] = sum_c W[r, c] * x[c] (+ b[r]); W is [rows, cols] row-major.
std::vector<float> matvec(const std::vector<float>& W, const std::vector<float>& x, int rows,
                          int cols, const std::vector<float>* bias = nullptr) {
  std::vector<float> out(rows);
  for (int r = 0; r < rows; ++r) {
    double acc = 0.0;
    for (int c = 0; c < cols; ++c) acc += double(W[size_t(r) * cols + c]) * double(x[c]);
    if (bias != nullptr && !bias->empty()) acc += double((*bias)[r]);
    out[r] = float(acc);
  }
  return out;
}

}  // namespace

NaiveTransformer::NaiveTransformer(const ModelConfig& cfg, const WeightStore& weights) : cfg_(cfg) {
  if (cfg.hidden_size <= 0 || cfg.num_heads <= 0 || cfg.num_kv_heads <= 0 || cfg.head_dim <= 0 ||
      cfg.vocab_size <= 0 || cfg.num_layers <= 0 || cfg.intermediate_size <= 0 ||
      cfg.num_heads % cfg.num_kv_heads != 0 || cfg.head_dim % 2 != 0)
    throw Error("NaiveTransformer: invalid model config");
  const int64_t H = cfg.hidden_size, D = cfg.head_dim, V = cfg.vocab_size,
                I = cfg.intermediate_size;
  const int64_t QD = int64_t(cfg.num_heads) * D, KD = int64_t(cfg.num_kv_heads) * D;

  embed_ = load(weights, "model.embed_tokens.weight", {V, H});
  final_norm_ = load(weights, "model.norm.weight", {H});
  // Tied: HF uses the embedding matrix (a stored lm_head.weight, if any, is the same tensor).
  if (cfg.tie_word_embeddings)
    lm_head_ = embed_;
  else
    lm_head_ = load(weights, "lm_head.weight", {V, H});

  layers_.resize(cfg.num_layers);
  for (int i = 0; i < cfg.num_layers; ++i) {
    Layer& L = layers_[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    L.input_norm = load(weights, p + "input_layernorm.weight", {H});
    L.wq = load(weights, p + "self_attn.q_proj.weight", {QD, H});
    L.wk = load(weights, p + "self_attn.k_proj.weight", {KD, H});
    L.wv = load(weights, p + "self_attn.v_proj.weight", {KD, H});
    if (cfg.qkv_bias) {
      L.bq = load(weights, p + "self_attn.q_proj.bias", {QD});
      L.bk = load(weights, p + "self_attn.k_proj.bias", {KD});
      L.bv = load(weights, p + "self_attn.v_proj.bias", {KD});
    }
    if (cfg.qk_norm) {
      L.q_norm = load(weights, p + "self_attn.q_norm.weight", {D});
      L.k_norm = load(weights, p + "self_attn.k_norm.weight", {D});
    }
    L.wo = load(weights, p + "self_attn.o_proj.weight", {H, QD});
    L.post_norm = load(weights, p + "post_attention_layernorm.weight", {H});
    L.w_gate = load(weights, p + "mlp.gate_proj.weight", {I, H});
    L.w_up = load(weights, p + "mlp.up_proj.weight", {I, H});
    L.w_down = load(weights, p + "mlp.down_proj.weight", {H, I});
    L.k_cache.assign(cfg.num_kv_heads, {});
    L.v_cache.assign(cfg.num_kv_heads, {});
  }
  inv_freq_ = rope_inv_freq(cfg);
}

std::vector<double> NaiveTransformer::rope_inv_freq(const ModelConfig& cfg) {
  const int d = cfg.head_dim;
  std::vector<double> inv(d / 2);
  for (int i = 0; i < d / 2; ++i) inv[i] = 1.0 / std::pow(cfg.rope_theta, double(2 * i) / d);
  if (cfg.rope_scaling && cfg.rope_scaling->type == "llama3") {
    const RopeScaling& s = *cfg.rope_scaling;
    const double orig = s.original_max_position_embeddings;
    const double low_freq_wavelen = orig / s.low_freq_factor;
    const double high_freq_wavelen = orig / s.high_freq_factor;
    const double pi = std::acos(-1.0);
    for (double& f : inv) {
      const double wavelen = 2.0 * pi / f;
      if (wavelen > low_freq_wavelen) {
        f = f / s.factor;
      } else if (wavelen < high_freq_wavelen) {
        // unchanged
      } else {
        const double smooth =
            (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  return inv;
}

void NaiveTransformer::apply_rope(float* x, int head_dim, int pos,
                                  const std::vector<double>& inv_freq) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const double angle = double(pos) * inv_freq[i];
    const double c = std::cos(angle), s = std::sin(angle);
    const double a = x[i], b = x[i + half];
    x[i] = float(a * c - b * s);
    x[i + half] = float(b * c + a * s);
  }
}

void NaiveTransformer::rms_norm(const float* x, const float* w, int n, double eps, float* out) {
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
  const double inv = 1.0 / std::sqrt(ss / n + eps);
  for (int i = 0; i < n; ++i) out[i] = float(double(x[i]) * inv * double(w[i]));
}

std::vector<float> NaiveTransformer::step(int token, int pos) {
  if (token < 0 || token >= cfg_.vocab_size)
    throw Error("NaiveTransformer::step: token " + std::to_string(token) + " out of range");
  if (pos < 0) throw Error("NaiveTransformer::step: negative position");
  const int H = cfg_.hidden_size, D = cfg_.head_dim, NH = cfg_.num_heads, NKV = cfg_.num_kv_heads,
            I = cfg_.intermediate_size;
  const int group = NH / NKV;
  const double eps = cfg_.rms_norm_eps;

  std::vector<float> x(embed_.begin() + size_t(token) * H, embed_.begin() + size_t(token + 1) * H);
  std::vector<float> h(H);

  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = layers_[l];
    // --- Attention ---
    rms_norm(x.data(), L.input_norm.data(), H, eps, h.data());
    std::vector<float> q = matvec(L.wq, h, NH * D, H, &L.bq);
    std::vector<float> k = matvec(L.wk, h, NKV * D, H, &L.bk);
    std::vector<float> v = matvec(L.wv, h, NKV * D, H, &L.bv);
    if (cfg_.qk_norm) {
      std::vector<float> tmp(D);
      for (int hh = 0; hh < NH; ++hh) {
        rms_norm(&q[size_t(hh) * D], L.q_norm.data(), D, eps, tmp.data());
        std::copy(tmp.begin(), tmp.end(), q.begin() + size_t(hh) * D);
      }
      for (int hh = 0; hh < NKV; ++hh) {
        rms_norm(&k[size_t(hh) * D], L.k_norm.data(), D, eps, tmp.data());
        std::copy(tmp.begin(), tmp.end(), k.begin() + size_t(hh) * D);
      }
    }
    for (int hh = 0; hh < NH; ++hh) apply_rope(&q[size_t(hh) * D], D, pos, inv_freq_);
    for (int hh = 0; hh < NKV; ++hh) apply_rope(&k[size_t(hh) * D], D, pos, inv_freq_);
    L.queries.push_back(q);
    for (int hh = 0; hh < NKV; ++hh) {
      L.k_cache[hh].insert(L.k_cache[hh].end(), k.begin() + size_t(hh) * D,
                           k.begin() + size_t(hh + 1) * D);
      L.v_cache[hh].insert(L.v_cache[hh].end(), v.begin() + size_t(hh) * D,
                           v.begin() + size_t(hh + 1) * D);
    }

    std::vector<float> attn(size_t(NH) * D, 0.0f);
    const double scale = 1.0 / std::sqrt(double(D));
    for (int hh = 0; hh < NH; ++hh) {
      const int kvh = hh / group;
      const std::vector<float>& K = L.k_cache[kvh];
      const std::vector<float>& Vc = L.v_cache[kvh];
      const size_t n = K.size() / D;
      std::vector<double> scores(n);
      double mx = -INFINITY;
      std::vector<char> seen(n, 1);
      if (visible_)
        for (size_t j = 0; j < n; ++j) seen[j] = visible_(int(l), kvh, pos, int(j)) ? 1 : 0;
      for (size_t j = 0; j < n; ++j) {
        double dot = 0.0;
        for (int e = 0; e < D; ++e) dot += double(q[size_t(hh) * D + e]) * double(K[j * D + e]);
        scores[j] = dot * scale;
        if (seen[j]) mx = std::max(mx, scores[j]);
      }
      double sum = 0.0;
      for (size_t j = 0; j < n; ++j) {
        scores[j] = seen[j] ? std::exp(scores[j] - mx) : 0.0;
        sum += scores[j];
      }
      for (int e = 0; e < D; ++e) {
        double acc = 0.0;
        for (size_t j = 0; j < n; ++j) acc += scores[j] / sum * double(Vc[j * D + e]);
        attn[size_t(hh) * D + e] = float(acc);
      }
    }
    std::vector<float> o = matvec(L.wo, attn, H, NH * D);
    for (int i = 0; i < H; ++i) x[i] += o[i];

    // --- MLP ---
    rms_norm(x.data(), L.post_norm.data(), H, eps, h.data());
    std::vector<float> g = matvec(L.w_gate, h, I, H);
    std::vector<float> u = matvec(L.w_up, h, I, H);
    std::vector<float> act(I);
    for (int i = 0; i < I; ++i) {
      const double gi = g[i];
      act[i] = float(gi / (1.0 + std::exp(-gi)) * double(u[i]));
    }
    std::vector<float> dn = matvec(L.w_down, act, H, I);
    for (int i = 0; i < H; ++i) x[i] += dn[i];
  }

  rms_norm(x.data(), final_norm_.data(), H, eps, h.data());
  return matvec(lm_head_, h, cfg_.vocab_size, H);
}

std::vector<std::vector<float>> NaiveTransformer::prefill(const std::vector<int>& tokens) {
  std::vector<std::vector<float>> out;
  out.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) out.push_back(step(tokens[i], int(i)));
  return out;
}

void NaiveTransformer::compact(const std::vector<std::vector<std::vector<int>>>& keep) {
  const int D = cfg_.head_dim;
  if (keep.size() != layers_.size())
    throw Error("NaiveTransformer::compact: expected " + std::to_string(layers_.size()) +
                " layers, got " + std::to_string(keep.size()));
  // Validate everything first so a bad request leaves the cache untouched.
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (keep[l].size() != size_t(cfg_.num_kv_heads))
      throw Error("NaiveTransformer::compact: layer " + std::to_string(l) + " has " +
                  std::to_string(keep[l].size()) + " heads, expected " +
                  std::to_string(cfg_.num_kv_heads));
    for (size_t h = 0; h < keep[l].size(); ++h) {
      const auto& idx = keep[l][h];
      const int n = cache_size(int(l), int(h));
      for (size_t j = 0; j < idx.size(); ++j) {
        if (idx[j] < 0 || idx[j] >= n)
          throw Error("NaiveTransformer::compact: index " + std::to_string(idx[j]) +
                      " out of range [0, " + std::to_string(n) + ")");
        if (j > 0 && idx[j] <= idx[j - 1])
          throw Error("NaiveTransformer::compact: indices not strictly increasing");
      }
    }
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = layers_[l];
    for (size_t h = 0; h < keep[l].size(); ++h) {
      std::vector<float> nk, nv;
      for (int j : keep[l][h]) {
        nk.insert(nk.end(), L.k_cache[h].begin() + size_t(j) * D,
                  L.k_cache[h].begin() + size_t(j + 1) * D);
        nv.insert(nv.end(), L.v_cache[h].begin() + size_t(j) * D,
                  L.v_cache[h].begin() + size_t(j + 1) * D);
      }
      L.k_cache[h] = std::move(nk);
      L.v_cache[h] = std::move(nv);
    }
  }
}

void NaiveTransformer::reset() {
  for (Layer& L : layers_) {
    for (auto& c : L.k_cache) c.clear();
    for (auto& c : L.v_cache) c.clear();
    L.queries.clear();
  }
}

std::vector<int> NaiveTransformer::greedy(const std::vector<int>& prompt, int max_new_tokens) {
  reset();
  std::vector<int> out;
  if (prompt.empty() || max_new_tokens <= 0) return out;
  auto argmax = [](const std::vector<float>& v) {
    size_t best = 0;
    for (size_t i = 1; i < v.size(); ++i)
      if (v[i] > v[best]) best = i;
    return int(best);
  };
  std::vector<std::vector<float>> logits = prefill(prompt);
  int tok = argmax(logits.back());
  int pos = int(prompt.size());
  out.push_back(tok);
  while (int(out.size()) < max_new_tokens) {
    tok = argmax(step(tok, pos++));
    out.push_back(tok);
  }
  return out;
}

int NaiveTransformer::cache_size(int layer, int kv_head) const {
  return int(layers_.at(layer).k_cache.at(kv_head).size() / size_t(cfg_.head_dim));
}

}  // namespace dapx::reference
