#pragma once
// Benchmark prompts of an exact length: the bundled English corpus repeated and cut.
#include <cstdint>
#include <filesystem>
#include <string>

#include "tokenizer/tokenizer.h"

namespace dapx::bench {

// Writes DIR/prompt-N.txt: `corpus` repeated and cut so that the file encodes to exactly n
// tokens of `tok` (cutting inside a word can change how its last piece encodes, so the cut moves
// a few tokens until the count is exact). Throws dapx::Error when no cut near n gives n.
std::filesystem::path write_prompt_file(const Tokenizer& tok, const std::string& corpus, int64_t n,
                                        const std::filesystem::path& dir);

}  // namespace dapx::bench
