#include "bench_prompt.h"

#include <fstream>

#include "util/error.h"

namespace dapx::bench {

std::filesystem::path write_prompt_file(const Tokenizer& tok, const std::string& corpus, int64_t n,
                                        const std::filesystem::path& dir) {
  constexpr int64_t kSlack = 16;  // how far the cut may move from n tokens
  const int64_t per_copy = static_cast<int64_t>(tok.encode(corpus).size());
  if (per_copy == 0) throw Error("the benchmark corpus is empty: nothing to build prompts from");
  std::string text;
  for (int64_t copies = (n + kSlack) / per_copy + 2; copies > 0; --copies) text += corpus;
  const std::vector<int> ids = tok.encode(text);
  for (int64_t d = 0; d <= kSlack; ++d) {
    for (const int64_t k : d == 0 ? std::vector<int64_t>{n} : std::vector<int64_t>{n - d, n + d}) {
      if (k < 1 || k > static_cast<int64_t>(ids.size())) continue;
      const std::string cut = tok.decode(std::vector<int>(ids.begin(), ids.begin() + k));
      if (static_cast<int64_t>(tok.encode(cut).size()) != n) continue;
      const std::filesystem::path path = dir / ("prompt-" + std::to_string(n) + ".txt");
      std::ofstream out(path, std::ios::binary);
      out << cut;
      if (!out) throw Error("cannot write the prompt file '" + path.string() + "'");
      return path;
    }
  }
  throw Error("cannot cut the benchmark corpus at exactly " + std::to_string(n) +
              " tokens of this tokenizer");
}

}  // namespace dapx::bench
