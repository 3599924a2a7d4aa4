// Synthetic document QA in RULER's qa.py format ("Document i:" blocks, one question). RULER
// draws SQuAD (single hop) and HotpotQA (two hops); offline we generate the facts instead:
// short documents about invented people and places, all but one or two of them distractors.
#include <unordered_set>

#include "eval/ruler_gen.h"
#include "util/error.h"

namespace dapx::eval::detail {

namespace {

std::string capitalized(std::string w) {
  if (!w.empty() && w[0] >= 'a' && w[0] <= 'z') w[0] = static_cast<char>(w[0] - 'a' + 'A');
  return w;
}

// One invented entity: a value for every slot. Names and numbers never repeat in a sample, so
// only the gold documents answer the question.
class Records {
 public:
  Records(Rng& rng, const QaParams& p, const std::vector<std::string>& words)
      : rng_(rng), p_(p), words_(words) {}
  Vars next() {
    Vars record;
    for (const auto& [slot, kind] : p_.slots) record.emplace_back(slot, value(kind));
    return record;
  }

 private:
  std::string value(const std::string& kind) {
    // Years repeat freely: a birth year shared with a distractor answers nothing.
    if (kind == "year") return std::to_string(1700 + below(rng_, 324));
    for (int attempt = 0; attempt < 1000; ++attempt) {
      std::string v = kind == "number" ? random_number(rng_, 7)
                      : kind == "person"
                          ? capitalized(pick(rng_, words_)) + " " + capitalized(pick(rng_, words_))
                          : capitalized(pick(rng_, words_));
      if (used_.insert(v).second) return v;
    }
    throw Error("internal: could not draw a new " + kind);
  }
  Rng& rng_;
  const QaParams& p_;
  const std::vector<std::string>& words_;
  std::unordered_set<std::string> used_;
};

// The facts filled with the record, one paragraph; marks the first place `tracked` appears.
Gold document(const std::vector<std::string>& facts, const Vars& record,
              const std::string& tracked) {
  Gold g;
  for (const auto& fact : facts) {
    if (!g.text.empty()) g.text += ' ';
    std::vector<size_t> at;
    const std::string sentence = fill(fact, record, tracked, &at);
    if (g.marks.empty() && !at.empty()) g.marks.push_back(g.text.size() + at[0]);
    g.text += sentence;
  }
  return g;
}

std::string slot_value(const Vars& record, const std::string& slot) {
  for (const auto& [name, value] : record) {
    if (name == slot) return value;
  }
  return "";
}

}  // namespace

Layout qa_layout(const GenContext& ctx) {
  const auto& p = std::get<QaParams>(ctx.spec.params);
  Rng rng(ctx.seed);
  Records records(rng, p, ctx.sources.words);
  const Vars gold = records.next();
  std::vector<Gold> golds;
  if (p.hops == 1) {
    golds.push_back(document(p.entity_facts, gold, p.answer_slot));
  } else {
    golds.push_back(document(p.entity_facts, gold, ""));
    golds.push_back(document(p.bridge_facts, gold, p.answer_slot));
  }
  // Gold documents land at random depths in random order (RULER shuffles all documents).
  const std::vector<double> depths = sample_depths(rng, golds.size());
  std::vector<size_t> order(golds.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  shuffle(rng, order);
  for (size_t i = 0; i < golds.size(); ++i) golds[order[i]].depth = depths[i];
  const size_t answer_gold = golds.size() - 1;

  // Distractors: the same kinds of documents about other entities, in random order.
  std::vector<std::string> docs;
  size_t bytes = 0;
  while (bytes < budget_bytes(ctx.target)) {
    const Vars other = records.next();
    docs.push_back(document(p.entity_facts, other, "").text);
    bytes += docs.back().size() + 16;
    if (p.hops == 2) {
      docs.push_back(document(p.bridge_facts, other, "").text);
      bytes += docs.back().size() + 16;
    }
  }
  shuffle(rng, docs);

  Layout layout;
  const Vars query = {{"query", fill(p.question, gold)}};
  layout.answer_prefix = fill(ctx.spec.answer_prefix, query);
  layout.answers = {slot_value(gold, p.answer_slot)};
  const PieceStream stream(std::move(docs));
  layout.max_units = stream.units();
  const TaskSpec* spec = &ctx.spec;
  layout.render = [spec, stream, golds, answer_gold, query, format = p.document](size_t n) {
    const std::vector<Item> items = interleave(stream.take(n), golds);
    std::string context;
    size_t answer_at = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) context += "\n\n";
      std::vector<size_t> at;
      const std::string doc =
          fill(format, {{"index", std::to_string(i + 1)}, {"text", std::string(items[i].text)}},
               "text", &at);
      if (items[i].gold == static_cast<int>(answer_gold)) {
        answer_at = context.size() + at.at(0) + golds[answer_gold].marks.at(0);
      }
      context += doc;
    }
    return fill_input(*spec, context, {answer_at}, query);
  };
  return layout;
}

}  // namespace dapx::eval::detail
