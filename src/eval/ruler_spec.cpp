// Reading and validating the task templates JSON: every mistake a user can make while adding a
// task variant gets a message naming the file, the task and the field.
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "eval/ruler_gen.h"
#include "util/error.h"

namespace dapx::eval::detail {

using nlohmann::json;

namespace {

// Reads one JSON object's fields; every error names the file, the task and the field.
class Reader {
 public:
  Reader(const json& obj, std::string where) : obj_(obj), where_(std::move(where)) {
    if (!obj_.is_object()) fail("must be a JSON object");
  }
  [[noreturn]] void fail(const std::string& what) const { throw Error(where_ + ": " + what); }
  const std::string& where() const { return where_; }
  bool has(const char* key) const { return obj_.contains(key); }

  const json& field(const char* key) const {
    if (!obj_.contains(key)) fail(std::string("field \"") + key + "\" is missing");
    return obj_.at(key);
  }
  std::string str(const char* key) const {
    const json& v = field(key);
    if (!v.is_string()) fail(std::string("field \"") + key + "\" must be a string");
    return v.get<std::string>();
  }
  std::string str(const char* key, const std::vector<std::string>& choices) const {
    std::string v = str(key);
    if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
      fail(std::string("field \"") + key + "\" is \"" + v +
           "\"; expected one of: " + join(choices, ", "));
    }
    return v;
  }
  int integer(const char* key, int lo, int hi) const {
    const json& v = field(key);
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
      fail(std::string("field \"") + key + "\" must be an integer in [" + std::to_string(lo) +
           ", " + std::to_string(hi) + "]");
    }
    return v.get<int>();
  }
  int integer(const char* key, int lo, int hi, int fallback) const {
    return has(key) ? integer(key, lo, hi) : fallback;
  }
  double number(const char* key, double above) const {
    const json& v = field(key);
    if (!v.is_number() || !(v.get<double>() > above)) {
      fail(std::string("field \"") + key + "\" must be a number above " + std::to_string(above));
    }
    return v.get<double>();
  }
  std::vector<std::string> strings(const char* key) const {
    const json& v = field(key);
    if (!v.is_array() || v.empty() ||
        !std::all_of(v.begin(), v.end(), [](const json& s) { return s.is_string(); })) {
      fail(std::string("field \"") + key + "\" must be a non-empty array of strings");
    }
    return v.get<std::vector<std::string>>();
  }
  // Unknown fields are typos more often than not.
  void only(const std::vector<std::string>& known) const {
    for (const auto& item : obj_.items()) {
      if (std::find(known.begin(), known.end(), item.key()) == known.end()) {
        fail("unknown field \"" + item.key() + "\" (known: " + join(known, ", ") + ")");
      }
    }
  }

 private:
  const json& obj_;
  std::string where_;
};

// A template may use only `allowed` placeholders and must use each `required` one exactly once.
void check_template(const Reader& r, const char* key, const std::string& text,
                    const std::vector<std::string>& allowed,
                    const std::vector<std::string>& required = {}) {
  const std::string where = r.where() + ", field \"" + key + "\"";
  const auto names = placeholders(text, where);
  for (const auto& n : names) {
    if (std::find(allowed.begin(), allowed.end(), n) == allowed.end()) {
      throw Error(where + ": unknown placeholder {" + n + "} (allowed: {" + join(allowed, "}, {") +
                  "})");
    }
  }
  for (const auto& n : required) {
    if (std::count(names.begin(), names.end(), n) != 1) {
      throw Error(where + ": must contain {" + n + "} exactly once");
    }
  }
}

const std::vector<std::string> kValueKinds = {"words", "numbers", "uuids"};

NiahParams parse_niah(const Reader& r) {
  NiahParams p;
  p.haystack = r.str("haystack", {"noise", "essay", "needle"});
  p.key_kind = r.str("key_kind", kValueKinds);
  p.value_kind = r.str("value_kind", kValueKinds);
  p.num_keys = r.integer("num_keys", 1, 64);
  p.num_values = r.integer("num_values", 1, 64);
  p.num_queries = r.integer("num_queries", 1, p.num_keys);
  p.needle = r.str("needle");
  check_template(r, "needle", p.needle, {"key", "value"}, {"key", "value"});
  return p;
}

VtParams parse_vt(const Reader& r) {
  VtParams p;
  p.haystack = r.str("haystack", {"noise", "essay"});
  p.num_chains = r.integer("num_chains", 1, 16);
  p.num_hops = r.integer("num_hops", 1, 32);
  p.assign_value = r.str("assign_value");
  p.assign_var = r.str("assign_var");
  p.fewshot_tokens = r.integer("fewshot_tokens", 0, 1 << 20, 0);
  check_template(r, "assign_value", p.assign_value, {"var", "value"}, {"var", "value"});
  check_template(r, "assign_var", p.assign_var, {"var", "source"}, {"var", "source"});
  return p;
}

CweParams parse_cwe(const Reader& r) {
  CweParams p;
  p.num_cw = r.integer("num_cw", 1, 100);
  p.entry = r.str("entry");
  check_template(r, "entry", p.entry, {"index", "word"}, {"index", "word"});
  const json& regimes = r.field("regimes");
  if (!regimes.is_array() || regimes.empty()) r.fail("field \"regimes\" must be a non-empty array");
  for (size_t i = 0; i < regimes.size(); ++i) {
    const Reader g(regimes[i], r.where() + ", regimes[" + std::to_string(i) + "]");
    g.only({"below_tokens", "freq_cw", "freq_ucw", "fewshot_words", "fewshot_freq_cw",
            "fewshot_freq_ucw"});
    CweRegime c;
    const bool last = i + 1 == regimes.size();
    c.below_tokens =
        last ? g.integer("below_tokens", 0, 0, 0) : g.integer("below_tokens", 1, 1 << 30);
    c.freq_cw = g.integer("freq_cw", 2, 1000);
    c.freq_ucw = g.integer("freq_ucw", 1, c.freq_cw - 1);
    c.fewshot_words = g.integer("fewshot_words", 0, 1000, 0);
    if (c.fewshot_words > 0) {
      if (c.fewshot_words <= p.num_cw) g.fail("fewshot_words must exceed num_cw");
      c.fewshot_freq_cw = g.integer("fewshot_freq_cw", 2, 1000);
      c.fewshot_freq_ucw = g.integer("fewshot_freq_ucw", 1, c.fewshot_freq_cw - 1);
    }
    if (!p.regimes.empty() && c.below_tokens != 0 &&
        c.below_tokens <= p.regimes.back().below_tokens) {
      g.fail("below_tokens must increase from one regime to the next");
    }
    p.regimes.push_back(c);
  }
  return p;
}

FweParams parse_fwe(const Reader& r) {
  FweParams p;
  p.alpha = r.number("alpha", 1.0);  // the Zipf normaliser zeta(alpha) diverges at 1
  p.vocab_per_tokens = r.integer("vocab_per_tokens", 1, 1 << 20);
  p.vocabulary = r.str("vocabulary", {"coded", "words"});
  p.coded_length = r.integer("coded_length", 3, 32, 6);
  p.noise_word = r.str("noise_word");
  return p;
}

QaParams parse_qa(const Reader& r) {
  QaParams p;
  p.hops = r.integer("hops", 1, 2);
  p.document = r.str("document");
  check_template(r, "document", p.document, {"index", "text"}, {"index", "text"});
  const json& slots = r.field("slots");
  if (!slots.is_object() || slots.empty()) r.fail("field \"slots\" must be a non-empty object");
  std::vector<std::string> names;
  for (const auto& s : slots.items()) {
    if (!s.value().is_string()) r.fail("slot \"" + s.key() + "\" must name a kind");
    const std::string kind = s.value().get<std::string>();
    if (kind != "person" && kind != "place" && kind != "year" && kind != "number") {
      r.fail("slot \"" + s.key() + "\" has kind \"" + kind +
             "\"; expected one of: person, place, year, number");
    }
    p.slots[s.key()] = kind;
    names.push_back(s.key());
  }
  p.entity_facts = r.strings("entity_facts");
  p.question = r.str("question");
  p.answer_slot = r.str("answer_slot", names);
  const auto uses = [&](const std::vector<std::string>& facts, const std::string& slot) {
    return std::any_of(facts.begin(), facts.end(), [&](const std::string& f) {
      const auto n = placeholders(f, r.where());
      return std::find(n.begin(), n.end(), slot) != n.end();
    });
  };
  for (const auto& f : p.entity_facts) check_template(r, "entity_facts", f, names);
  check_template(r, "question", p.question, names);
  if (uses({p.question}, p.answer_slot)) r.fail("the question must not contain the answer slot");
  if (p.hops == 1) {
    if (!uses(p.entity_facts, p.answer_slot)) r.fail("no entity fact mentions the answer slot");
    return p;
  }
  p.bridge_facts = r.strings("bridge_facts");
  p.bridge_slot = r.str("bridge_slot", names);
  for (const auto& f : p.bridge_facts) check_template(r, "bridge_facts", f, names);
  // Two hops: the question leads to the bridge value in one document, the answer is in another.
  if (!uses(p.entity_facts, p.bridge_slot) || !uses(p.bridge_facts, p.bridge_slot)) {
    r.fail("the bridge slot must appear in both the entity and the bridge facts");
  }
  if (uses(p.entity_facts, p.answer_slot) || !uses(p.bridge_facts, p.answer_slot)) {
    r.fail("with two hops the answer slot must appear in the bridge facts only");
  }
  if (uses({p.question}, p.bridge_slot)) r.fail("the question must not contain the bridge slot");
  return p;
}

std::unique_ptr<TaskSpec> parse_task(const json& obj, const std::string& file, size_t index) {
  const Reader first(obj, file + ", tasks[" + std::to_string(index) + "]");
  const Reader r(obj, file + ", task \"" + first.str("name") + "\"");
  auto spec = std::make_unique<TaskSpec>();
  spec->name = r.str("name");
  spec->kind = r.str("kind", {"niah", "vt", "cwe", "fwe", "qa"});
  spec->templ = r.str("template");
  spec->answer_prefix = r.str("answer_prefix");
  spec->completion = r.str("completion");
  spec->metric = r.str("metric", {"string_match_all", "string_match_part"});
  spec->max_new_tokens = r.integer("max_new_tokens", 1, 1 << 20);
  std::vector<std::string> known = {"name",          "kind",       "description", "template",
                                    "answer_prefix", "completion", "metric",      "max_new_tokens"};
  std::vector<std::string> vars;  // the template's placeholders besides {context}
  if (spec->kind == "niah") {
    spec->params = parse_niah(r);
    known.insert(known.end(), {"haystack", "key_kind", "value_kind", "num_keys", "num_values",
                               "num_queries", "needle"});
    vars = {"query"};
  } else if (spec->kind == "vt") {
    spec->params = parse_vt(r);
    known.insert(known.end(), {"haystack", "num_chains", "num_hops", "assign_value", "assign_var",
                               "fewshot_tokens"});
    vars = {"query", "num_v"};
  } else if (spec->kind == "cwe") {
    spec->params = parse_cwe(r);
    known.insert(known.end(), {"num_cw", "entry", "regimes"});
    vars = {"num_cw"};
  } else if (spec->kind == "fwe") {
    spec->params = parse_fwe(r);
    known.insert(known.end(),
                 {"alpha", "vocab_per_tokens", "vocabulary", "coded_length", "noise_word"});
  } else {
    spec->params = parse_qa(r);
    known.insert(known.end(), {"hops", "document", "slots", "entity_facts", "bridge_facts",
                               "question", "answer_slot", "bridge_slot"});
    vars = {"query"};
  }
  r.only(known);
  std::vector<std::string> with_context = vars;
  with_context.push_back("context");
  check_template(r, "template", spec->templ, with_context, {"context"});
  check_template(r, "answer_prefix", spec->answer_prefix, vars);
  check_template(r, "completion", spec->completion,
                 {"answers", "answers_numbered", "answers_spaced"});
  return spec;
}

}  // namespace

Templates load_templates(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read task templates " + file);
  std::stringstream text;
  text << in.rdbuf();
  json doc;
  try {
    doc = json::parse(text.str());
  } catch (const json::parse_error& e) {
    throw Error("task templates " + file + " are not valid JSON: " + e.what());
  }
  const Reader top(doc, file);
  top.only({"description", "split", "noise", "tasks"});
  Templates templates;
  templates.split = top.str("split", {"eval", "train"});
  templates.noise = top.str("noise");
  if (templates.noise.empty()) top.fail("field \"noise\" must not be empty");
  const json& tasks = top.field("tasks");
  if (!tasks.is_array() || tasks.empty()) top.fail("field \"tasks\" must be a non-empty array");
  for (size_t i = 0; i < tasks.size(); ++i) {
    auto spec = parse_task(tasks[i], file, i);
    for (const auto& s : templates.tasks) {
      if (s->name == spec->name) throw Error(file + ": task \"" + spec->name + "\" appears twice");
    }
    templates.tasks.push_back(std::move(spec));
  }
  return templates;
}

}  // namespace dapx::eval::detail
