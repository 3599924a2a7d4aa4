#pragma once
// Internals of the RULER-style generators (not part of the public interface): the parsed task
// specs, template filling, seeded randomness, haystack streams and the length fitter.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "eval/text_sources.h"
#include "tokenizer/tokenizer.h"

namespace dapx::eval::detail {

// ---- task specs (one entry of the templates JSON, validated) ----

struct NiahParams {
  std::string haystack;    // noise | essay | needle
  std::string key_kind;    // words | numbers | uuids
  std::string value_kind;  // words | numbers | uuids
  int num_keys = 1, num_values = 1, num_queries = 1;
  std::string needle;  // {key} {value}
};

struct VtParams {
  std::string haystack;  // noise | essay
  int num_chains = 1, num_hops = 4;
  std::string assign_value;  // {var} {value}
  std::string assign_var;    // {var} {source}
  int fewshot_tokens = 0;    // one worked example of at most this many tokens (0: none)
};

// Repetition by target length: RULER repeats less and shows a smaller example below 4096
// tokens; the templates add a lighter regime still for prompts under 1024.
struct CweRegime {
  int below_tokens = 0;  // applies to targets below this (0: any target)
  int freq_cw = 30, freq_ucw = 3;
  int fewshot_words = 0, fewshot_freq_cw = 0, fewshot_freq_ucw = 0;
};

struct CweParams {
  int num_cw = 10;
  std::string entry;  // {index} {word}
  std::vector<CweRegime> regimes;
};

struct FweParams {
  double alpha = 2.0;
  int vocab_per_tokens = 50;  // vocabulary size = target / this (RULER)
  std::string vocabulary;     // coded (random letter strings, RULER) | words
  int coded_length = 6;
  std::string noise_word;  // replaces the most frequent word (RULER's "...")
};

struct QaParams {
  int hops = 1;
  std::string document;                      // {index} {text}
  std::map<std::string, std::string> slots;  // slot name -> person | place | year | number
  std::vector<std::string> entity_facts;
  std::vector<std::string> bridge_facts;  // hops 2: facts about the bridge slot's value
  std::string question;
  std::string answer_slot;
  std::string bridge_slot;  // hops 2
};

struct TaskSpec {
  std::string name, kind;
  std::string templ;  // {context} and the kind's placeholders
  std::string answer_prefix, completion, metric;
  int max_new_tokens = 0;
  std::variant<NiahParams, VtParams, CweParams, FweParams, QaParams> params;
};

// The parsed templates file.
struct Templates {
  std::string split;  // "eval" | "train"
  std::string noise;  // the noise haystack's paragraph
  std::vector<std::unique_ptr<TaskSpec>> tasks;
};
// Throws dapx::Error naming the file, the task and the field for anything malformed.
Templates load_templates(const std::filesystem::path& path);

// ---- templates ----

using Vars = std::vector<std::pair<std::string, std::string>>;

// Names of the "{name}" placeholders in order ("{{" and "}}" are literal braces). Throws
// dapx::Error mentioning `where` for a stray brace.
std::vector<std::string> placeholders(std::string_view tmpl, const std::string& where);
// Replaces every placeholder by its value (an unknown one throws). The byte offset in the
// result of each occurrence of `tracked` is appended to *at.
std::string fill(std::string_view tmpl, const Vars& vars, std::string_view tracked = {},
                 std::vector<size_t>* at = nullptr);
std::string join(const std::vector<std::string>& items, const std::string& separator);
// "a", "a and b", "a, b and c"
std::string join_and(const std::vector<std::string>& items);
// The spec's completion for these answers: {answers} "a, b and c", {answers_numbered}
// "1. a 2. b 3. c", {answers_spaced} "a b c".
std::string make_completion(const TaskSpec& spec, const std::vector<std::string>& answers);

// ---- randomness: std::mt19937_64 is specified exactly; the distributions are our own so that
// samples are identical with every standard library ----

using Rng = std::mt19937_64;
uint64_t mix64(uint64_t x);            // splitmix64 finaliser
uint64_t below(Rng& rng, uint64_t n);  // uniform in [0, n)
double unit_real(Rng& rng);            // uniform in [0, 1)
std::string random_number(Rng& rng, int digits);
std::string random_uuid(Rng& rng);  // lower-case 8-4-4-4-12, version 4
std::string random_letters(Rng& rng, int length, bool upper);
const std::string& pick(Rng& rng, const std::vector<std::string>& items);
template <typename T>
void shuffle(Rng& rng, std::vector<T>& v) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(rng, i)]);
}
// `count` needle depths in [0, 1] from RULER's 40 evenly spaced depths, without replacement
// while they last, ascending.
std::vector<double> sample_depths(Rng& rng, size_t count);

// ---- haystacks ----

// A haystack as a sequence of pieces (lines, sentences, documents). It can be cut after n
// units: whole pieces plus the start of the next one, cut at a word end or between digits.
// Units are fine-grained (about a token) so a prompt can be fitted to the token.
class PieceStream {
 public:
  explicit PieceStream(std::vector<std::string> pieces);
  size_t units() const { return cum_.back(); }
  std::vector<std::string_view> take(size_t n) const;

 private:
  std::vector<std::string> pieces_;
  std::vector<size_t> cum_;  // units before piece i
};

// The noise paragraph repeated, one per line, to at least budget_bytes.
PieceStream noise_stream(const std::string& noise, size_t budget_bytes);
// Sentences of random essay paragraphs (of the replacement haystack, when the sources have
// one), to at least budget_bytes.
PieceStream essay_stream(const TextSources& sources, Rng& rng, size_t budget_bytes);
// Bytes of haystack to prepare for a target: generous for the densest haystack (UUIDs).
size_t budget_bytes(int target_tokens);

// Something placed in the haystack at a depth; marks are offsets in text of gold answers.
struct Gold {
  std::string text;
  double depth = 0;
  std::vector<size_t> marks;
};
// Haystack pieces and golds in context order: gold index, or -1 for a piece.
struct Item {
  std::string_view text;
  int gold = -1;
};
std::vector<Item> interleave(const std::vector<std::string_view>& pieces,
                             const std::vector<Gold>& golds);

// A context and, for each gold, the absolute offsets of its marks.
struct Placed {
  std::string text;
  std::vector<std::vector<size_t>> marks;
};
Placed join_items(const std::vector<Item>& items, const std::vector<Gold>& golds,
                  std::string_view separator);

// ---- layouts and fitting ----

struct Rendered {
  std::string input;
  std::vector<size_t> offsets;  // of the gold answers, in input
};

// A sample with its haystack size left open: render(n) for n in [0, max_units].
struct Layout {
  size_t max_units = 0;
  std::function<Rendered(size_t)> render;
  std::string answer_prefix;
  std::vector<std::string> answers;
};

// Fills the task template around a context; answer offsets in the context become offsets in
// the input. `vars` holds the template's other placeholders.
Rendered fill_input(const TaskSpec& spec, const std::string& context,
                    const std::vector<size_t>& context_offsets, Vars vars);

// The tokenizer work the fitting did on this thread (every encode of a candidate prompt): how
// the cost of make() is measured without a clock.
struct EncodeWork {
  int64_t encodes = 0, bytes = 0;
};
EncodeWork& encode_work();

class Fitter {
 public:
  explicit Fitter(const Tokenizer& tok) : tok_(tok) {}
  int count(const std::string& text) const;
  struct Result {
    Rendered rendered;
    int tokens = 0;
  };
  // The largest n whose prompt (input + answer prefix) is at most target tokens; nullopt when
  // even n = 0 is longer.
  std::optional<Result> fit(const Layout& layout, int target) const;

 private:
  const Tokenizer& tok_;
};

struct GenContext {
  const TaskSpec& spec;
  const TextSources& sources;
  const std::string& noise;
  int target;  // 0: the task's smallest configuration (for min_tokens)
  uint64_t seed;
  const Fitter& fitter;
};

Layout niah_layout(const GenContext& ctx);
Layout vt_layout(const GenContext& ctx);
Layout cwe_layout(const GenContext& ctx);
Layout fwe_layout(const GenContext& ctx);
Layout qa_layout(const GenContext& ctx);

}  // namespace dapx::eval::detail
