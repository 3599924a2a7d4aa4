// Common words extraction (RULER common_words_extraction.py) and frequent words extraction
// (freq_words_extraction.py).
#include <cmath>
#include <functional>
#include <queue>
#include <unordered_set>

#include "eval/ruler_gen.h"
#include "util/error.h"

namespace dapx::eval::detail {

namespace {

constexpr char kIndexMark = '\x01';
constexpr char kWordMark = '\x02';

// Distinct dictionary words; none contains or is contained in a protected (answer) word, since
// the score is a substring test ("cat" would match "catalog").
class WordDraw {
 public:
  WordDraw(Rng& rng, const std::vector<std::string>& words) : rng_(rng), words_(words) {}
  std::string next() {
    for (int attempt = 0; attempt < 100000; ++attempt) {
      const std::string& w = pick(rng_, words_);
      if (used_.count(w) > 0 || related(w)) continue;
      used_.insert(w);
      return w;
    }
    throw Error("the word list is too small for this many distinct words; use a larger one");
  }
  std::string next_protected() {
    protected_.push_back(next());
    return protected_.back();
  }

 private:
  bool related(const std::string& w) const {
    for (const auto& p : protected_) {
      if (w.find(p) != std::string::npos || p.find(w) != std::string::npos) return true;
    }
    return false;
  }
  Rng& rng_;
  const std::vector<std::string>& words_;
  std::unordered_set<std::string> used_;
  std::vector<std::string> protected_;
};

// The entry template with marks where the index and the word go: filled thousands of times.
std::string compile_entry(const std::string& entry) {
  return fill(entry, {{"index", std::string(1, kIndexMark)}, {"word", std::string(1, kWordMark)}});
}

// RULER's numbered list "1. w 2. w ..."; first[i] gets the offset of word i's first entry.
std::string numbered_list(const std::string& entry, const std::vector<uint32_t>& ids,
                          const std::vector<std::string>& vocab, std::vector<size_t>& first) {
  std::string out;
  for (size_t k = 0; k < ids.size(); ++k) {
    if (k > 0) out.push_back(' ');
    for (const char c : entry) {
      if (c == kIndexMark) {
        out += std::to_string(k + 1);
      } else if (c == kWordMark) {
        if (ids[k] < first.size() && first[ids[k]] == std::string::npos) first[ids[k]] = out.size();
        out += vocab[ids[k]];
      } else {
        out.push_back(c);
      }
    }
  }
  return out;
}

// Word ids 0..common-1 repeated freq_cw times, the next `rare` ids freq_ucw times, shuffled.
std::vector<uint32_t> repeated_ids(size_t common, int freq_cw, size_t rare, int freq_ucw,
                                   Rng& rng) {
  std::vector<uint32_t> ids;
  for (size_t i = 0; i < common + rare; ++i) {
    ids.insert(ids.end(), i < common ? freq_cw : freq_ucw, static_cast<uint32_t>(i));
  }
  shuffle(rng, ids);
  return ids;
}

const CweRegime& regime_for(const CweParams& p, int target) {
  for (const auto& r : p.regimes) {
    if (r.below_tokens == 0 || target < r.below_tokens) return r;
  }
  return p.regimes.back();
}

// The Riemann zeta function for s > 1 (RULER's Zipf normaliser): a partial sum plus the
// Euler-Maclaurin tail, exact to ~1e-9 for s >= 1.1 with a hundred terms.
double zeta(double s) {
  constexpr double kTerms = 100;
  double sum = 0;
  for (double k = 1; k < kTerms; ++k) sum += std::pow(k, -s);
  return sum + std::pow(kTerms, 1 - s) / (s - 1) + std::pow(kTerms, -s) / 2 +
         s * std::pow(kTerms, -s - 1) / 12;
}

}  // namespace

Layout cwe_layout(const GenContext& ctx) {
  const auto& p = std::get<CweParams>(ctx.spec.params);
  const CweRegime& g = regime_for(p, ctx.target);
  Rng rng(ctx.seed);
  WordDraw draw(rng, ctx.sources.words);
  const auto num_cw = static_cast<size_t>(p.num_cw);
  std::vector<std::string> common, example;
  for (size_t i = 0; i < num_cw; ++i) common.push_back(draw.next_protected());
  for (size_t i = 0; i < (g.fewshot_words > 0 ? num_cw : 0); ++i) {
    example.push_back(draw.next_protected());
  }
  for (size_t i = example.size(); i < static_cast<size_t>(g.fewshot_words); ++i) {
    example.push_back(draw.next());
  }
  // Each entry is at least three tokens (digits, ".", " word"): enough rare words to overflow.
  const size_t max_rare = std::min(ctx.sources.words.size() / 2,
                                   static_cast<size_t>(ctx.target) / (3 * g.freq_ucw) + 1);
  std::vector<std::string> vocab = common;
  for (size_t i = 0; i < max_rare; ++i) vocab.push_back(draw.next());

  const std::string entry = compile_entry(p.entry);
  const Vars vars = {{"num_cw", std::to_string(num_cw)}};
  // RULER's one-shot example: the same task on a short list, answered, then the real one.
  std::string prefix;
  if (!example.empty()) {
    std::vector<size_t> none;
    const auto ids =
        repeated_ids(num_cw, g.fewshot_freq_cw, example.size() - num_cw, g.fewshot_freq_ucw, rng);
    const std::vector<std::string> answers(example.begin(), example.begin() + num_cw);
    prefix = fill_input(ctx.spec, numbered_list(entry, ids, example, none), {}, vars).input +
             fill(ctx.spec.answer_prefix, vars) + make_completion(ctx.spec, answers) + "\n";
  }

  Layout layout;
  layout.max_units = max_rare;
  layout.answer_prefix = fill(ctx.spec.answer_prefix, vars);
  layout.answers = common;
  const TaskSpec* spec = &ctx.spec;
  const uint64_t shuffle_seed = mix64(ctx.seed ^ 0xc3e);
  layout.render = [=](size_t n) {
    Rng order(shuffle_seed);
    const auto ids = repeated_ids(num_cw, g.freq_cw, n, g.freq_ucw, order);
    std::vector<size_t> first(num_cw, std::string::npos);
    const std::string list = numbered_list(entry, ids, vocab, first);
    Rendered r = fill_input(*spec, list, first, vars);
    r.input = prefix + r.input;
    for (auto& o : r.offsets) o += prefix.size();
    return r;
  };
  return layout;
}

Layout fwe_layout(const GenContext& ctx) {
  const auto& p = std::get<FweParams>(ctx.spec.params);
  Rng rng(ctx.seed);
  const size_t size = std::max<size_t>(5, static_cast<size_t>(ctx.target / p.vocab_per_tokens));
  // Rank 0 is the noise word; ranks 1-3 are the answers.
  std::vector<std::string> vocab = {p.noise_word};
  if (p.vocabulary == "coded") {
    std::unordered_set<std::string> used = {p.noise_word};
    while (vocab.size() < size) {
      std::string w = random_letters(rng, p.coded_length, false);
      if (used.insert(w).second) vocab.push_back(std::move(w));
    }
  } else {
    WordDraw draw(rng, ctx.sources.words);
    while (vocab.size() < size)
      vocab.push_back(vocab.size() <= 3 ? draw.next_protected() : draw.next());
  }
  std::vector<double> share(size);
  const double z = zeta(p.alpha);
  for (size_t k = 0; k < size; ++k) share[k] = std::pow(static_cast<double>(k + 1), -p.alpha) / z;
  // From `base` words on, the Zipf counts floor(N * share) fall strictly over ranks 0-4 (each
  // gap N * (share[k] - share[k + 1]) is at least 1): the top three are unambiguous.
  double gap = 1.0;
  for (size_t k = 0; k < 4; ++k) gap = std::min(gap, share[k] - share[k + 1]);
  const double base = std::ceil(1.0 / gap);
  std::vector<size_t> base_counts(size);
  for (size_t k = 0; k < size; ++k) base_counts[k] = static_cast<size_t>(base * share[k]);
  const size_t max_units = 2 * static_cast<size_t>(ctx.target) + 64;
  // RULER grows the text by whole Zipf counts, several words at once at round totals. We add
  // one word per unit, in the order the counts reach each next integer (rank order on ties, so
  // the counts stay strictly ranked), which lets the fit land within a token or two.
  std::vector<uint32_t> events;
  {
    using Next = std::pair<double, uint32_t>;  // when rank k gets its next word, k
    std::priority_queue<Next, std::vector<Next>, std::greater<Next>> queue;
    std::vector<size_t> counts = base_counts;
    const auto next = [&](uint32_t k) {
      return Next{static_cast<double>(counts[k] + 1) * std::pow(k + 1.0, p.alpha), k};
    };
    for (uint32_t k = 0; k < size; ++k) queue.push(next(k));
    while (events.size() < max_units) {
      const uint32_t k = queue.top().second;
      queue.pop();
      events.push_back(k);
      ++counts[k];
      queue.push(next(k));
    }
  }

  Layout layout;
  layout.max_units = max_units;  // every word is a token or more
  layout.answer_prefix = fill(ctx.spec.answer_prefix, {});
  layout.answers.assign(vocab.begin() + 1, vocab.begin() + 4);
  const TaskSpec* spec = &ctx.spec;
  const uint64_t shuffle_seed = mix64(ctx.seed ^ 0xf3e);
  layout.render = [=](size_t n) {
    std::vector<size_t> counts = base_counts;
    for (size_t i = 0; i < n; ++i) ++counts[events[i]];
    std::vector<uint32_t> ids;
    for (size_t k = 0; k < size; ++k) ids.insert(ids.end(), counts[k], static_cast<uint32_t>(k));
    Rng order(shuffle_seed);
    shuffle(order, ids);
    std::string text;
    std::vector<size_t> first(4, std::string::npos);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) text.push_back(' ');
      if (ids[i] >= 1 && ids[i] <= 3 && first[ids[i]] == std::string::npos) {
        first[ids[i]] = text.size();
      }
      text += vocab[ids[i]];
    }
    return fill_input(*spec, text, {first[1], first[2], first[3]}, {});
  };
  return layout;
}

}  // namespace dapx::eval::detail
