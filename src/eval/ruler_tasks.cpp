// The task suite: sample seeds, the length checks around the fitter, and RULER's string-match
// scores.
#include "eval/ruler_tasks.h"

#include <algorithm>
#include <cctype>

#include "eval/ruler_gen.h"
#include "util/error.h"

namespace dapx::eval {

using detail::join;
using detail::TaskSpec;

namespace {

constexpr uint64_t kEvalSalt = 0x52554c4552657661ULL;   // "RULEReva"
constexpr uint64_t kTrainSalt = 0x5457494e74726169ULL;  // "TWINtrai"
constexpr uint64_t kMinSeeds = 4;                       // seeds whose bare prompt sets min_tokens
// Below this the 2% band is narrower than one haystack step (a long word, a numbered list
// entry, a document header), so a fit within 2% is not always possible.
constexpr int kMinTarget = 400;
constexpr uint64_t kVariants = 8;  // draws make() tries before giving up on the 2% band

uint64_t sample_seed(const std::string& task, int target, uint64_t seed, Split split) {
  uint64_t h = detail::mix64(fnv1a64(task) ^ static_cast<uint64_t>(target));
  h = detail::mix64(h ^ seed);
  return detail::mix64(h ^ (split == Split::Eval ? kEvalSalt : kTrainSalt));
}

detail::Layout build_layout(const detail::GenContext& ctx) {
  const std::string& kind = ctx.spec.kind;
  if (kind == "niah") return detail::niah_layout(ctx);
  if (kind == "vt") return detail::vt_layout(ctx);
  if (kind == "cwe") return detail::cwe_layout(ctx);
  if (kind == "fwe") return detail::fwe_layout(ctx);
  return detail::qa_layout(ctx);
}

Sample finish(const TaskSpec& spec, uint64_t seed, int target_tokens, const detail::Layout& layout,
              detail::Rendered rendered) {
  Sample out;
  out.task = spec.name;
  out.seed = seed;
  out.target_tokens = target_tokens;
  out.input = std::move(rendered.input);
  out.answer_prefix = layout.answer_prefix;
  out.answers = layout.answers;
  out.completion = detail::make_completion(spec, out.answers);
  out.metric = spec.metric;
  out.max_new_tokens = spec.max_new_tokens;
  out.answer_offsets = std::move(rendered.offsets);
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

TaskSuite::TaskSuite(const std::filesystem::path& templates_json, TextSources sources, Split split,
                     bool any_phrasing)
    : path_(templates_json), sources_(std::move(sources)), split_(split) {
  if (sources_.split != split) {
    throw Error(std::string("text sources of the ") + split_name(sources_.split) +
                " split were given to a task suite of the " + split_name(split) +
                " split: load them with TextSources::load(Split::" +
                (split == Split::Eval ? "Eval" : "Train") + ")");
  }
  if (split == Split::Train && !sources_.haystack.empty()) {
    throw Error("the " + sources_.haystack_name +
                " haystack is for the eval split only, not the train split");
  }
  detail::Templates templates = detail::load_templates(templates_json);
  if (templates.split != split_name(split) && !any_phrasing) {
    throw Error("task templates " + path_.string() + " are for the " + templates.split +
                " split, but the suite was asked for the " + split_name(split) + " split");
  }
  noise_ = std::move(templates.noise);
  specs_ = std::move(templates.tasks);
  if (sources_.words.size() < 1000 || sources_.essay.empty()) {
    throw Error("text sources for " + path_.string() +
                " are too small (need 1000+ words and some prose): load them with "
                "TextSources::load");
  }
}

TaskSuite::~TaskSuite() = default;
TaskSuite::TaskSuite(TaskSuite&&) noexcept = default;
TaskSuite& TaskSuite::operator=(TaskSuite&&) noexcept = default;

std::vector<std::string> TaskSuite::task_names() const {
  std::vector<std::string> names;
  for (const auto& s : specs_) names.push_back(s->name);
  return names;
}

const TaskSpec& TaskSuite::spec(const std::string& task) const {
  for (const auto& s : specs_) {
    if (s->name == task) return *s;
  }
  throw Error("unknown task \"" + task + "\" in " + path_.string() +
              " (known: " + join(task_names(), ", ") + ")");
}

int TaskSuite::min_tokens(const std::string& task, const Tokenizer& tok) const {
  const TaskSpec& s = spec(task);
  const detail::Fitter fitter(tok);
  // The prompt without haystack varies with the seed (keys, names, numbers): take the longest
  // of a few seeds, plus headroom for longer ones.
  int bare = 0;
  for (uint64_t seed = 0; seed < kMinSeeds; ++seed) {
    const detail::GenContext ctx{s,     sources_, noise_, 0, sample_seed(task, 0, seed, split_),
                                 fitter};
    const detail::Layout layout = build_layout(ctx);
    bare = std::max(bare, fitter.count(layout.render(0).input + layout.answer_prefix));
  }
  // Training needs no exact lengths, but short prompts: a length curriculum starts small.
  if (split_ == Split::Train) return bare + std::max(8, bare / 10);
  return std::max(bare + std::max(8, bare / 10), kMinTarget);
}

Sample TaskSuite::make(const std::string& task, const Tokenizer& tok, int target_tokens,
                       uint64_t seed) const {
  const TaskSpec& s = spec(task);
  const int minimum = min_tokens(task, tok);
  if (target_tokens < minimum) {
    throw Error("task " + task + " needs at least " + std::to_string(minimum) + " prompt tokens; " +
                std::to_string(target_tokens) + " were requested");
  }
  const detail::Fitter fitter(tok);
  // A haystack step (a document header, a long word) can straddle the 2% band; another draw of
  // the same sample then fits. Variant 0 is the sample; the others are tried in order.
  const uint64_t base = sample_seed(task, target_tokens, seed, split_);
  std::string problem;
  for (uint64_t variant = 0; variant < kVariants; ++variant) {
    const detail::GenContext ctx{
        s,     sources_, noise_, target_tokens, variant == 0 ? base : detail::mix64(base + variant),
        fitter};
    const detail::Layout layout = build_layout(ctx);
    auto fit = fitter.fit(layout, target_tokens);
    if (!fit) {
      problem = "the prompt without any haystack is longer than the " +
                std::to_string(target_tokens) + " tokens requested; ask for more tokens";
      continue;
    }
    // Within 2%: target - tokens <= target / 50 (training, whose short prompts cannot always
    // be fitted that closely, takes anything within 20%).
    const int64_t band = split_ == Split::Train ? 5 : 50;
    if (band * static_cast<int64_t>(target_tokens - fit->tokens) > target_tokens) {
      problem = "the haystack reaches only " + std::to_string(fit->tokens) + " of the " +
                std::to_string(target_tokens) + " tokens requested (more than 2% short)";
      continue;
    }
    return finish(s, seed, target_tokens, layout, std::move(fit->rendered));
  }
  throw Error("task " + task + " (seed " + std::to_string(seed) + "): " + problem);
}

double string_match_all(const std::string& prediction, const std::vector<std::string>& references) {
  if (references.empty()) return 0.0;
  const std::string pred = lower(prediction);
  size_t hits = 0;
  for (const auto& r : references) hits += pred.find(lower(r)) != std::string::npos ? 1 : 0;
  return 100.0 * static_cast<double>(hits) / static_cast<double>(references.size());
}

double string_match_part(const std::string& prediction,
                         const std::vector<std::string>& references) {
  const std::string pred = lower(prediction);
  for (const auto& r : references) {
    if (pred.find(lower(r)) != std::string::npos) return 100.0;
  }
  return 0.0;
}

}  // namespace dapx::eval
