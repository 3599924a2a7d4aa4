// Needle-in-a-haystack (RULER niah.py) and variable tracking (variable_tracking.py).
#include <algorithm>
#include <unordered_set>

#include "eval/ruler_gen.h"
#include "util/error.h"

namespace dapx::eval::detail {

namespace {

// Values never repeat within a sample: a distractor equal to a gold value would be a second
// answer.
class Fresh {
 public:
  Fresh(Rng& rng, const std::vector<std::string>& words) : rng_(rng), words_(words) {}
  std::string operator()(const std::string& kind) {
    for (int attempt = 0; attempt < 1000; ++attempt) {
      std::string v = make(kind);
      if (used_.insert(v).second) return v;
    }
    throw Error("internal: could not draw a new " + kind + " value");
  }

 private:
  std::string make(const std::string& kind) {
    if (kind == "numbers") return random_number(rng_, 7);
    if (kind == "uuids") return random_uuid(rng_);
    // RULER's keys are "adjective-noun"; two dictionary words of the split play that part.
    return pick(rng_, words_) + "-" + pick(rng_, words_);
  }
  Rng& rng_;
  const std::vector<std::string>& words_;
  std::unordered_set<std::string> used_;
};

// RULER's query list: "a", "a, and b", "a, b, and c".
std::string join_queries(const std::vector<std::string>& q) {
  if (q.size() == 1) return q[0];
  std::string out;
  for (size_t i = 0; i + 1 < q.size(); ++i) out += (i > 0 ? ", " : "") + q[i];
  return out + ", and " + q.back();
}

// The haystack kinds that are text rather than needles. A replacement haystack in the sources
// (dapx eval --haystack) stands for both the noise and the essay.
PieceStream text_stream(const GenContext& ctx, const std::string& haystack, Rng& rng) {
  if (haystack == "essay" || !ctx.sources.haystack.empty())
    return essay_stream(ctx.sources, rng, budget_bytes(ctx.target));
  return noise_stream(ctx.noise, budget_bytes(ctx.target));
}

// Noise and needles are lines, as in RULER; essay (and replacement haystack) sentences run on.
const char* separator(const GenContext& ctx, const std::string& haystack) {
  return haystack == "essay" || (haystack == "noise" && !ctx.sources.haystack.empty()) ? " " : "\n";
}

// Gold items at their depths, the answers' (gold, mark) in answer order, and the template vars.
Layout haystack_layout(const GenContext& ctx, PieceStream stream, std::vector<Gold> golds,
                       std::vector<size_t> answer_golds, std::string sep, Vars vars,
                       std::string prefix_text) {
  Layout layout;
  layout.max_units = stream.units();
  layout.answer_prefix = fill(ctx.spec.answer_prefix, vars);
  const TaskSpec* spec = &ctx.spec;
  layout.render = [spec, stream = std::move(stream), golds = std::move(golds),
                   answer_golds = std::move(answer_golds), sep = std::move(sep),
                   vars = std::move(vars), prefix = std::move(prefix_text)](size_t n) {
    const Placed placed = join_items(interleave(stream.take(n), golds), golds, sep);
    std::vector<size_t> offsets;
    for (const size_t g : answer_golds) offsets.push_back(placed.marks[g].at(0));
    Rendered r = fill_input(*spec, placed.text, offsets, vars);
    if (!prefix.empty()) {
      r.input = prefix + r.input;
      for (auto& o : r.offsets) o += prefix.size();
    }
    return r;
  };
  return layout;
}

Layout vt_layout_impl(const GenContext& ctx, bool with_example) {
  const auto& p = std::get<VtParams>(ctx.spec.params);
  Rng rng(ctx.seed);
  const size_t per_chain = static_cast<size_t>(p.num_hops) + 1;
  std::unordered_set<std::string> used;
  std::vector<std::string> names, values;
  while (names.size() < per_chain * static_cast<size_t>(p.num_chains)) {
    std::string v = random_letters(rng, 5, true);
    if (used.insert(v).second) names.push_back(std::move(v));
  }
  while (values.size() < static_cast<size_t>(p.num_chains)) {
    std::string v = random_number(rng, 5);  // RULER: 10000..99999
    if (used.insert(v).second) values.push_back(std::move(v));
  }
  // Each chain's statements in order at ascending depths.
  std::vector<Gold> golds;
  std::vector<size_t> answer_golds;
  for (int c = 0; c < p.num_chains; ++c) {
    const std::vector<double> depths = sample_depths(rng, per_chain);
    for (size_t j = 0; j < per_chain; ++j) {
      const std::string& var = names[c * per_chain + j];
      Gold g;
      g.depth = depths[j];
      g.text = j == 0 ? fill(p.assign_value, {{"var", var}, {"value", values[c]}}, "var", &g.marks)
                      : fill(p.assign_var, {{"var", var}, {"source", names[c * per_chain + j - 1]}},
                             "var", &g.marks);
      if (c == 0) answer_golds.push_back(golds.size());
      golds.push_back(std::move(g));
    }
  }
  std::vector<std::string> answers(names.begin(), names.begin() + per_chain);

  // RULER shows one solved instance first (about 500 tokens, at most a quarter of the prompt).
  std::string example;
  const int example_target = std::min(p.fewshot_tokens, ctx.target / 4);
  if (with_example && example_target > 0) {
    const GenContext sub{ctx.spec,  ctx.sources, ctx.noise, example_target, mix64(ctx.seed ^ 0xe1),
                         ctx.fitter};
    const Layout ex = vt_layout_impl(sub, false);
    if (const auto fit = ctx.fitter.fit(ex, example_target)) {
      example =
          fit->rendered.input + ex.answer_prefix + make_completion(ctx.spec, ex.answers) + "\n\n";
    }
  }
  Vars vars = {{"query", values[0]}, {"num_v", std::to_string(per_chain)}};
  Layout layout = haystack_layout(ctx, text_stream(ctx, p.haystack, rng), std::move(golds),
                                  std::move(answer_golds), separator(ctx, p.haystack),
                                  std::move(vars), std::move(example));
  layout.answers = std::move(answers);
  return layout;
}

}  // namespace

Layout niah_layout(const GenContext& ctx) {
  const auto& p = std::get<NiahParams>(ctx.spec.params);
  Rng rng(ctx.seed);
  Fresh fresh(rng, ctx.sources.words);
  std::vector<std::string> keys;
  std::vector<std::vector<size_t>> golds_of_key;
  std::vector<Gold> golds;
  std::vector<std::string> values;  // per gold
  for (int k = 0; k < p.num_keys; ++k) {
    keys.push_back(fresh(p.key_kind));
    golds_of_key.emplace_back();
    for (int v = 0; v < p.num_values; ++v) {
      Gold g;
      values.push_back(fresh(p.value_kind));
      g.text = fill(p.needle, {{"key", keys.back()}, {"value", values.back()}}, "value", &g.marks);
      golds_of_key.back().push_back(golds.size());
      golds.push_back(std::move(g));
    }
  }
  // RULER shuffles the needles, then places them at ascending depths.
  const std::vector<double> depths = sample_depths(rng, golds.size());
  std::vector<size_t> order(golds.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  shuffle(rng, order);
  for (size_t i = 0; i < golds.size(); ++i) golds[order[i]].depth = depths[i];

  std::vector<size_t> key_order(keys.size());
  for (size_t i = 0; i < key_order.size(); ++i) key_order[i] = i;
  shuffle(rng, key_order);
  std::vector<std::string> queries, answers;
  std::vector<size_t> answer_golds;
  for (int q = 0; q < p.num_queries; ++q) {
    queries.push_back(keys[key_order[q]]);
    for (const size_t g : golds_of_key[key_order[q]]) {
      answers.push_back(values[g]);
      answer_golds.push_back(g);
    }
  }

  PieceStream stream = p.haystack != "needle" ? text_stream(ctx, p.haystack, rng) : [&] {
    // Distractor needles with other keys and values.
    std::vector<std::string> lines;
    size_t bytes = 0;
    while (bytes < budget_bytes(ctx.target)) {
      const std::string key = fresh(p.key_kind);
      lines.push_back(fill(p.needle, {{"key", key}, {"value", fresh(p.value_kind)}}));
      bytes += lines.back().size() + 1;
    }
    return PieceStream(std::move(lines));
  }();
  Layout layout =
      haystack_layout(ctx, std::move(stream), std::move(golds), std::move(answer_golds),
                      separator(ctx, p.haystack), {{"query", join_queries(queries)}}, "");
  layout.answers = std::move(answers);
  return layout;
}

Layout vt_layout(const GenContext& ctx) { return vt_layout_impl(ctx, true); }

}  // namespace dapx::eval::detail
