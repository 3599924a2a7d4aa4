// The real GPT-2, Qwen2 and Llama-3 vocabularies: loading, exact encodings (expected ids
// computed independently with a naive Python reference over the same tokenizer.json, using
// the `regex` module and a plain "merge the lowest-ranked pair" loop), round trips.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "error_message.h"
#include "real_vocab.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace dapx {
namespace {

using test::real_tokenizer;

const std::vector<std::string> kFamilies = {"gpt2", "qwen2", "llama3"};

// Text without combining sequences: NFC leaves it unchanged, so every vocab round-trips it.
const std::vector<std::string> kHardText = {
    "",
    "Hello world",
    "  leading spaces\ttab\t\tend\n\n\nnewlines   trailing   \r\n",
    "12345 3.14159 1,000,000 0x7fff 2024-01-31",
    "I'm don't they'll we've she'd IT'S O'Neil's",
    "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 family",
    "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97\xE7\xAC\xA6 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
    "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
    "em dash \xE2\x80\x94 ellipsis \xE2\x80\xA6 \xE2\x80\x9Cquotes\xE2\x80\x9D",
    std::string("nul \0 and del \x7F", 15),
    "code: for (int i = 0; i < n; ++i) { x += y[i]; }\n",
    "                                                            many spaces",
    "\n\n\n\n\t \t \n",
};

TEST(RealVocab, AllThreeLoadWithTheirSizes) {
  EXPECT_EQ(real_tokenizer("gpt2").vocab_size(), 50257);
  EXPECT_EQ(real_tokenizer("qwen2").vocab_size(), 151936);
  EXPECT_EQ(real_tokenizer("llama3").vocab_size(), 128256);
}

TEST(RealVocab, SpecialTokensAreKnown) {
  const Tokenizer& gpt2 = real_tokenizer("gpt2");
  EXPECT_EQ(gpt2.token_id("<|endoftext|>"), 50256);
  EXPECT_TRUE(gpt2.is_special(50256));
  EXPECT_FALSE(gpt2.is_special(15496));

  const Tokenizer& qwen2 = real_tokenizer("qwen2");
  EXPECT_EQ(qwen2.token_id("<|im_start|>"), 151644);
  EXPECT_EQ(qwen2.token_id("<|im_end|>"), 151645);
  EXPECT_TRUE(qwen2.is_special(151644));
  EXPECT_EQ(qwen2.token_piece(151645), "<|im_end|>");
  EXPECT_EQ(qwen2.token_bytes(151645), "<|im_end|>");

  const Tokenizer& llama3 = real_tokenizer("llama3");
  EXPECT_EQ(llama3.token_id("<|begin_of_text|>"), 128000);
  EXPECT_EQ(llama3.token_id("<|eot_id|>"), 128009);
  EXPECT_TRUE(llama3.is_special(128009));
  EXPECT_FALSE(llama3.token_id("no such piece").has_value());
}

TEST(RealVocab, PiecesAndBytesUseTheByteLevelAlphabet) {
  const Tokenizer& gpt2 = real_tokenizer("gpt2");
  EXPECT_EQ(gpt2.token_piece(995), "\xC4\xA0world");  // "Ġworld"
  EXPECT_EQ(gpt2.token_bytes(995), " world");
  EXPECT_EQ(gpt2.token_bytes(198), "\n");
  EXPECT_EQ(gpt2.token_id("\xC4\xA0world"), 995);
}

struct Expected {
  std::string family;
  std::string text;
  std::vector<int> ids;
};

TEST(RealVocab, ExactEncodingsMatchTheIndependentReference) {
  const std::vector<Expected> cases = {
      {"gpt2", "Hello world", {15496, 995}},
      {"gpt2", "I'm don't", {40, 1101, 836, 470}},
      {"gpt2", "12345", {10163, 2231}},
      {"gpt2", "  a\tb\n\nc   ", {220, 257, 197, 65, 198, 198, 66, 220, 220, 220}},
      {"gpt2", "x <|endoftext|>y", {87, 220, 50256, 88}},
      {"gpt2",
       "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C",  // 你好，世界
       {19526, 254, 25001, 121, 171, 120, 234, 10310, 244, 45911, 234}},
      {"qwen2", "Hello world", {9707, 1879}},
      {"qwen2", "I'm don't", {40, 2776, 1513, 944}},
      {"qwen2", "  a\tb\n\nc   ", {220, 264, 2233, 271, 66, 262}},
      {"qwen2",
       "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C",
       {108386, 3837, 99489}},
      {"qwen2", "<|im_start|>user\nhi<|im_end|>", {151644, 872, 198, 6023, 151645}},
      // "café cafe\u0301": NFC makes both words the same.
      {"qwen2", "caf\xC3\xA9 cafe\xCC\x81", {924, 58858, 51950}},
      {"qwen2",
       "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 ok",
       {145367, 378, 235, 145233, 378, 235, 145665, 5394}},
      {"llama3", "Hello world", {9906, 1917}},
      {"llama3", "I'm don't", {40, 2846, 1541, 956}},
      {"llama3", "  a\tb\n\nc   ", {220, 264, 2282, 271, 66, 262}},
      {"llama3", "<|begin_of_text|>Hi!", {128000, 13347, 0}},
      {"llama3",
       "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C",
       {57668, 53901, 3922, 102616}},
      // No NFC in Llama-3: the decomposed é stays two characters.
      {"llama3", "caf\xC3\xA9 cafe\xCC\x81", {936, 59958, 42030, 54939}},
      {"llama3",
       "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 ok",
       {9468, 239, 101, 102470, 9468, 239, 102, 102470, 9468, 239, 100, 5509}},
  };
  for (const Expected& c : cases) {
    EXPECT_EQ(real_tokenizer(c.family).encode(c.text), c.ids) << c.family << ": " << c.text;
  }
}

TEST(RealVocab, QwenSplitsDigitsSinglyLlamaInRunsOfThree) {
  const std::vector<int> qwen = real_tokenizer("qwen2").encode("12345");
  EXPECT_EQ(qwen, (std::vector<int>{16, 17, 18, 19, 20}));
  for (std::size_t i = 0; i < qwen.size(); ++i) {
    EXPECT_EQ(real_tokenizer("qwen2").token_bytes(qwen[i]), std::string(1, '1' + i));
  }
  const Tokenizer& llama3 = real_tokenizer("llama3");
  const std::vector<int> llama = llama3.encode("12345");
  EXPECT_EQ(llama, (std::vector<int>{4513, 1774}));
  ASSERT_EQ(llama.size(), 2u);
  EXPECT_EQ(llama3.token_bytes(llama[0]), "123");
  EXPECT_EQ(llama3.token_bytes(llama[1]), "45");
  // GPT-2 keeps the whole number as one pre-token and lets BPE cut it.
  EXPECT_EQ(real_tokenizer("gpt2").decode(real_tokenizer("gpt2").encode("12345")), "12345");
}

TEST(RealVocab, SpecialTokensInsideTextBecomeSingleIds) {
  const Tokenizer& qwen2 = real_tokenizer("qwen2");
  const std::string chat = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi";
  const std::vector<int> ids = qwen2.encode(chat);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151644), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151645), 1);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(qwen2.decode(ids), chat);

  // Glued to words on both sides, still recognised.
  const std::vector<int> glued = qwen2.encode("abc<|endoftext|>def");
  EXPECT_NE(std::find(glued.begin(), glued.end(), 151643), glued.end());

  // Longest match: "<|reserved_special_token_10|>" is not "<|reserved_special_token_1|>"+"0|>".
  const Tokenizer& llama3 = real_tokenizer("llama3");
  const auto id10 = llama3.token_id("<|reserved_special_token_10|>");
  ASSERT_TRUE(id10.has_value());
  EXPECT_EQ(llama3.encode("<|reserved_special_token_10|>"), std::vector<int>{*id10});

  // A near miss is ordinary text.
  const std::vector<int> miss = qwen2.encode("<|im_star|>");
  EXPECT_EQ(std::find(miss.begin(), miss.end(), 151644), miss.end());
  EXPECT_EQ(qwen2.decode(miss), "<|im_star|>");
}

TEST(RealVocab, HardTextRoundTripsInEveryVocab) {
  for (const std::string& family : kFamilies) {
    const Tokenizer& tok = real_tokenizer(family);
    for (const std::string& text : kHardText) {
      EXPECT_EQ(tok.decode(tok.encode(text)), text) << family << ": " << text;
    }
  }
}

TEST(RealVocab, QwenNormalisesToNfcLlamaKeepsBytes) {
  // e + U+0301, A + U+030A, Hangul jamo ᄒ ᅡ ᆫ (compose to 한), q + U+0307 (no precomposed form).
  const std::string text = "cafe\xCC\x81 A\xCC\x8A \xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB q\xCC\x87";
  const std::string nfc = "caf\xC3\xA9 \xC3\x85 \xED\x95\x9C q\xCC\x87";
  EXPECT_EQ(real_tokenizer("qwen2").decode(real_tokenizer("qwen2").encode(text)), nfc);
  EXPECT_EQ(real_tokenizer("llama3").decode(real_tokenizer("llama3").encode(text)), text);
  EXPECT_EQ(real_tokenizer("gpt2").decode(real_tokenizer("gpt2").encode(text)), text);
}

TEST(RealVocab, InvalidUtf8BytesBecomeByteTokensAndRoundTrip) {
  const std::string text = std::string("ok \xFF\xFE bad \xC3 cut \xED\xA0\x80 surrogate ") +
                           "\xE2\x82 end \xF0\x9F\x98";  // ends inside a 4-byte sequence
  for (const std::string& family : kFamilies) {
    const Tokenizer& tok = real_tokenizer(family);
    const std::vector<int> ids = tok.encode(text);
    EXPECT_EQ(tok.decode(ids), text) << family;
    // The lone 0xFF byte is its own token.
    bool found_ff = false;
    for (const int id : ids) found_ff = found_ff || tok.token_bytes(id) == "\xFF";
    EXPECT_TRUE(found_ff) << family;
  }
}

TEST(RealVocab, ArbitraryBytesRoundTripExactly) {
  // Random byte strings (mostly invalid UTF-8). Qwen2 is left out: NFC may legitimately
  // change a valid non-NFC sequence that appears by chance.
  std::mt19937 rng(1234);
  for (const std::string family : {"gpt2", "llama3"}) {
    const Tokenizer& tok = real_tokenizer(family);
    for (int trial = 0; trial < 300; ++trial) {
      std::string text(rng() % 64, '\0');
      for (char& c : text) c = static_cast<char>(rng() % 256);
      ASSERT_EQ(tok.decode(tok.encode(text)), text) << family << " trial " << trial;
    }
  }
}

TEST(RealVocab, LlamaIgnoreMergesTakesWholeVocabPieces) {
  // With ignore_merges, a pre-token that is a vocab entry is one token.
  const Tokenizer& llama3 = real_tokenizer("llama3");
  for (const std::string word : {" hello", " tokenizer", " Hello", "world"}) {
    const auto id = llama3.token_id([&] {
      std::string piece;
      for (const char c : word) piece += c == ' ' ? std::string("\xC4\xA0") : std::string(1, c);
      return piece;
    }());
    ASSERT_TRUE(id) << "'" << word << "' is a whole llama3 vocabulary entry";  // none skipped
    EXPECT_EQ(llama3.encode(word), std::vector<int>{*id}) << word;
  }
}

TEST(RealVocab, LongWordsAndLongTextsEncode) {
  const Tokenizer& qwen2 = real_tokenizer("qwen2");
  const std::string long_word(20000, 'a');
  const std::vector<int> ids = qwen2.encode(long_word);
  EXPECT_LT(ids.size(), long_word.size() / 4);
  EXPECT_EQ(qwen2.decode(ids), long_word);

  const std::string long_space(5000, ' ');
  EXPECT_EQ(qwen2.decode(qwen2.encode(long_space + "x" + long_space)),
            long_space + "x" + long_space);
}

TEST(RealVocab, LargeTextThroughput) {
  // Not a timing assertion (tests never assert on wall-clock): it checks a big mixed text
  // round-trips and reports the encode rate for the record.
  std::string text;
  std::mt19937 rng(7);
  const std::vector<std::string> words = {"the",
                                          "quick",
                                          "brown",
                                          "fox",
                                          "jumps",
                                          "over",
                                          "lazy",
                                          "dog",
                                          "1234",
                                          "3.5",
                                          "don't",
                                          "\n",
                                          "\xE4\xB8\xAD\xE6\x96\x87",
                                          "tokenizer",
                                          "(x)",
                                          "  "};
  while (text.size() < 400000) {
    text += words[rng() % words.size()];
    text += ' ';
    if (rng() % 50 == 0) text += "word" + std::to_string(rng() % 100000);
  }
  for (const std::string& family : kFamilies) {
    const Tokenizer& tok = real_tokenizer(family);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int> ids = tok.encode(text);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << family << ": " << ids.size() << " tokens in " << seconds << " s ("
              << static_cast<long>(ids.size() / std::max(seconds, 1e-9)) << " tokens/s)\n";
    EXPECT_GT(ids.size(), 50000u);
    EXPECT_EQ(tok.decode(ids), text);
  }
}

TEST(RealVocab, DecodeRejectsOutOfRangeIds) {
  const Tokenizer& gpt2 = real_tokenizer("gpt2");
  test::expect_error([&] { gpt2.decode({15496, 50257}); }, {"50257", "out of range"});
  EXPECT_THROW(gpt2.token_bytes(-1), Error);
  EXPECT_FALSE(gpt2.is_special(-1));
}

}  // namespace
}  // namespace dapx
