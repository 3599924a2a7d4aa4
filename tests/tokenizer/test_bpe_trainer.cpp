// The small BPE trainer: its output is a valid tokenizer.json that loads and round-trips.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace dapx {
namespace {

// ~50 KB of English-like text (deterministic): a few very frequent words plus many
// made-up words from random syllables, so there are plenty of pairs to merge.
std::string make_corpus() {
  const std::vector<std::string> common = {"the", "cat",      "sat",  "on",
                                           "and", "children", "it's", "123"};
  const std::vector<std::string> syllables = {"ka",  "lo",  "mi",  "ne", "tor", "ush", "ble",
                                              "qua", "rix", "sen", "pa", "dor", "vi",  "ex"};
  std::mt19937 rng(42);
  std::string corpus;
  while (corpus.size() < 50000) {
    if (rng() % 3 == 0) {
      corpus += common[rng() % common.size()];
    } else {
      for (int n = 1 + rng() % 3; n > 0; --n) corpus += syllables[rng() % syllables.size()];
    }
    corpus += rng() % 12 == 0 ? ".\n" : " ";
  }
  return corpus;
}

TEST(BpeTrainer, ProducesALoadableVocabOfTheStatedSize) {
  const std::string corpus = make_corpus();
  const std::string json = train_byte_level_bpe_json(corpus, 300);
  const Tokenizer tok = Tokenizer::from_json_string(json, "trained");
  EXPECT_EQ(tok.vocab_size(), 256 + 300 + 3);
  // Byte symbols first in GPT-2 order ("!" is id 0), added tokens last and special.
  EXPECT_EQ(tok.token_piece(0), "!");
  EXPECT_EQ(tok.token_id("<|endoftext|>"), 556);
  EXPECT_EQ(tok.token_id("<|im_start|>"), 557);
  EXPECT_EQ(tok.token_id("<|im_end|>"), 558);
  EXPECT_TRUE(tok.is_special(558));
  EXPECT_FALSE(tok.is_special(300));

  const nlohmann::json parsed = nlohmann::json::parse(json);
  EXPECT_EQ(parsed["decoder"]["type"], "ByteLevel");
  EXPECT_EQ(parsed["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(parsed["model"]["merges"].size(), 300u);
}

TEST(BpeTrainer, LearnsFrequentWordsAndRoundTrips) {
  const std::string corpus = make_corpus();
  const Tokenizer tok = Tokenizer::from_json_string(train_byte_level_bpe_json(corpus, 300), "t");
  // Frequent words of the corpus end up as single tokens.
  EXPECT_EQ(tok.encode(" the").size(), 1u);
  EXPECT_EQ(tok.encode(" children").size(), 1u);
  const std::vector<int> ids = tok.encode(corpus);
  EXPECT_LT(ids.size(), corpus.size() / 3);
  EXPECT_EQ(tok.decode(ids), corpus);

  const std::string other = "Unseen words, \xE4\xB8\xAD\xE6\x96\x87 and \xFF bytes <|im_end|>";
  const std::vector<int> other_ids = tok.encode(other);
  EXPECT_EQ(tok.decode(other_ids), other);
  EXPECT_EQ(other_ids.back(), 558);
}

TEST(BpeTrainer, IsDeterministic) {
  const std::string corpus = make_corpus();
  EXPECT_EQ(train_byte_level_bpe_json(corpus, 250), train_byte_level_bpe_json(corpus, 250));
}

TEST(BpeTrainer, SmallCorpusStopsEarlyAndZeroMergesIsBytesOnly) {
  const Tokenizer bytes_only =
      Tokenizer::from_json_string(train_byte_level_bpe_json("abc", 0), "t");
  EXPECT_EQ(bytes_only.vocab_size(), 259);
  EXPECT_EQ(bytes_only.encode("abc").size(), 3u);
  // "abab": at most the pairs that exist can be merged.
  const Tokenizer tiny = Tokenizer::from_json_string(train_byte_level_bpe_json("abab", 100), "t");
  EXPECT_LT(tiny.vocab_size(), 256 + 100 + 3);
  EXPECT_EQ(tiny.encode("abab").size(), 1u);
  EXPECT_THROW(train_byte_level_bpe_json("abc", -1), Error);
}

}  // namespace
}  // namespace dapx
