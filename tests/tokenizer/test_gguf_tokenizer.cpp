// The tokenizer of a GGUF file: the three real vocabularies through HF tokenizer.json ->
// GGUF metadata -> a written and re-read .gguf file -> tokenizer.json -> Tokenizer, which must
// encode exactly as the original; a hand-built vocabulary with worked ids; the errors; chat
// formats from the file's template.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "error_message.h"
#include "io/gguf.h"
#include "real_vocab.h"
#include "temp_dir.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace dapx {
namespace {

using nlohmann::json;
using test::expect_error;
using test::real_tokenizer;

const char* kQwenTemplate =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";
const char* kLlama3Template =
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const json& original_json(const std::string& family) {
  static std::map<std::string, json> cache;
  auto it = cache.find(family);
  if (it == cache.end()) {
    it = cache.emplace(family, json::parse(read_file(test::vocab_path(family)))).first;
  }
  return it->second;
}

// A few KB of English, digits, code, CJK, emoji, whitespace runs and special tokens as text.
// No combining sequences, so NFC (Qwen2) leaves it unchanged and decode() gives it back.
std::string varied_text() {
  std::string text = read_file(std::string(DAPX_DATA_DIR) + "/corpus_en.txt");
  EXPECT_GT(text.size(), 2000u);
  text +=
      "\n12345 3.14159 1,000,000 0x7fff 2024-01-31 +44 (0)20 7946 0958 ¾ ½\n"
      "I'm don't they'll we've she'd IT'S O'Neil's HELLO'S\n"
      "int main() {\n  for (int i = 0; i < 10; ++i) {\n    printf(\"%d\\n\", i * i);\n  }\n}\n"
      "def f(x):\n\treturn [y ** 2 for y in range(x) if y % 3 == 0]  # squares\n"
      "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97\xE7\xAC\xA6\xE6\xB5\x8B\xE8\xAF\x95\xEF\xBC\x8C"
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 "
      "\xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91"
      "\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 caf\xC3\xA9 na\xC3\xAFve \xE2\x80\x94 \xE2\x80\xA6\n"
      "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
      "<|endoftext|>   trailing   spaces\t\t\n\n\n   \r\n end";
  return text;
}

// The tokenizer_config.json a model of the family would ship (none for GPT-2).
json family_config(const std::string& family) {
  if (family == "qwen2") {
    return {{"chat_template", kQwenTemplate},
            {"bos_token", nullptr},
            {"eos_token", "<|im_end|>"},
            {"pad_token", "<|endoftext|>"}};
  }
  if (family == "llama3") {
    return {{"chat_template", kLlama3Template},
            {"bos_token", "<|begin_of_text|>"},
            {"eos_token", "<|eot_id|>"}};
  }
  return nullptr;
}

// The family's tokenizer.json; Llama 3's with the BOS post-processor its real file has.
json family_tokenizer_json(const std::string& family) {
  json j = original_json(family);
  if (family == "llama3") {
    const json bos = {{"id", "<|begin_of_text|>"}, {"type_id", 0}};
    const json a = {{"id", "A"}, {"type_id", 0}};
    json tp = json::object();
    tp["type"] = "TemplateProcessing";
    tp["single"] = json::array({json{{"SpecialToken", bos}}, json{{"Sequence", a}}});
    tp["pair"] = json::array();
    tp["special_tokens"]["<|begin_of_text|>"] = {{"id", "<|begin_of_text|>"},
                                                 {"ids", json::array({128000})},
                                                 {"tokens", json::array({"<|begin_of_text|>"})}};
    j["post_processor"] = tp;
  }
  return j;
}

const GgufValue* find(const GgufMetadataList& list, const std::string& key) {
  for (const auto& [k, v] : list)
    if (k == key) return &v;
  return nullptr;
}

class GgufRealVocab : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufRealVocab, RoundTripsThroughAGgufFile) {
  const std::string family = GetParam();
  const Tokenizer& original = real_tokenizer(family);
  const GgufMetadataList written =
      gguf_tokenizer_metadata(family_tokenizer_json(family), family_config(family));

  // The keys and types llama.cpp's converter writes.
  ASSERT_NE(find(written, "tokenizer.ggml.model"), nullptr);
  EXPECT_EQ(*find(written, "tokenizer.ggml.model"), GgufValue::string("gpt2"));
  const std::string pre = family == "gpt2" ? "gpt-2" : (family == "qwen2" ? "qwen2" : "llama-bpe");
  EXPECT_EQ(*find(written, "tokenizer.ggml.pre"), GgufValue::string(pre));
  const GgufValue* tokens = find(written, "tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(static_cast<int>(tokens->size()), original.vocab_size());
  EXPECT_EQ(find(written, "tokenizer.ggml.token_type")->element_type, GgufValueType::I32);
  EXPECT_EQ(find(written, "tokenizer.ggml.merges")->size(),
            original_json(family)["model"]["merges"].size());

  test::TempDir dir;
  write_gguf(dir / "tok.gguf", written, {});
  const std::unique_ptr<GgufFile> file = GgufFile::open(dir / "tok.gguf");
  const GgufMetadata& m = file->metadata();

  const json rebuilt = tokenizer_json_from_gguf(m);
  // The sections are those of the family's own tokenizer.json.
  const json& orig = original_json(family);
  EXPECT_EQ(rebuilt["normalizer"], orig["normalizer"]);
  EXPECT_EQ(rebuilt["pre_tokenizer"], orig["pre_tokenizer"]);
  EXPECT_EQ(rebuilt["decoder"], orig["decoder"]);
  EXPECT_EQ(rebuilt["model"]["ignore_merges"], orig["model"]["ignore_merges"]);
  EXPECT_EQ(rebuilt["added_tokens"].size(), orig["added_tokens"].size());

  const Tokenizer t = tokenizer_from_gguf(m);
  EXPECT_EQ(t.vocab_size(), original.vocab_size());
  const std::string text = varied_text();
  const std::vector<int> ids = t.encode(text);
  EXPECT_EQ(ids, original.encode(text));
  EXPECT_EQ(t.decode(ids), text);
  for (int id = 0; id < t.vocab_size(); id += 97) {
    ASSERT_EQ(t.token_bytes(id), original.token_bytes(id)) << id;
    ASSERT_EQ(t.is_special(id), original.is_special(id)) << id;
  }
  for (const auto& token : orig["added_tokens"]) {
    const int id = token["id"].get<int>();
    ASSERT_EQ(t.token_id(token["content"].get<std::string>()), id);
    ASSERT_TRUE(t.is_special(id));
  }

  // Special tokens, BOS policy and chat format.
  const json config = tokenizer_config_from_gguf(m);
  if (family == "llama3") {
    EXPECT_EQ(m.get_int("tokenizer.ggml.bos_token_id"), 128000);
    EXPECT_EQ(m.get_int("tokenizer.ggml.eos_token_id"), 128009);
    EXPECT_TRUE(m.get_bool("tokenizer.ggml.add_bos_token"));
    EXPECT_EQ(config["bos_token"], "<|begin_of_text|>");
    EXPECT_EQ(config["eos_token"], "<|eot_id|>");
    EXPECT_EQ(config["add_bos_token"], true);
    // The rebuilt tokenizer.json puts BOS first as Llama 3's does (dapx's encode does not
    // apply it: its ids are the HF ones without special tokens).
    const json& tp = rebuilt["post_processor"]["processors"][1];
    EXPECT_EQ(tp["type"], "TemplateProcessing");
    EXPECT_EQ(tp["single"][0]["SpecialToken"]["id"], "<|begin_of_text|>");
    EXPECT_EQ(tp["special_tokens"]["<|begin_of_text|>"]["ids"], json::array({128000}));
    EXPECT_EQ(chat_format_from_gguf(m), ChatFormat::Llama3);
  } else if (family == "qwen2") {
    EXPECT_FALSE(m.has("tokenizer.ggml.bos_token_id"));
    EXPECT_EQ(m.get_int("tokenizer.ggml.eos_token_id"), 151645);
    EXPECT_EQ(m.get_int("tokenizer.ggml.padding_token_id"), 151643);
    EXPECT_FALSE(m.has("tokenizer.ggml.add_bos_token"));
    EXPECT_EQ(config["eos_token"], "<|im_end|>");
    EXPECT_EQ(config["pad_token"], "<|endoftext|>");
    EXPECT_EQ(config["add_bos_token"], false);
    EXPECT_TRUE(rebuilt["post_processor"].is_null());
    EXPECT_EQ(chat_format_from_gguf(m), ChatFormat::ChatML);
  } else {
    EXPECT_FALSE(m.has("tokenizer.chat_template"));
    EXPECT_TRUE(rebuilt["post_processor"].is_null());
    EXPECT_EQ(chat_format_from_gguf(m), ChatFormat::Raw);
  }

  // Writing the rebuilt tokenizer gives back the same vocabulary keys.
  const GgufMetadataList again = gguf_tokenizer_metadata(rebuilt, config);
  for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                          "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                          "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.padding_token_id", "tokenizer.chat_template"}) {
    const GgufValue* a = find(written, key);
    const GgufValue* b = find(again, key);
    ASSERT_EQ(a == nullptr, b == nullptr) << key;
    if (a) {
      EXPECT_TRUE(*a == *b) << key;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, GgufRealVocab, ::testing::Values("gpt2", "qwen2", "llama3"));

// ---- a hand-built vocabulary ----

// Tokens 0..255 are the bytes (in the byte-level alphabet, in byte order), then the merges'
// results, then a control token and a user-defined one.
struct TinyVocab {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  std::vector<std::string> merges;
  int id(const std::string& piece) const {
    for (std::size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] == piece) return static_cast<int>(i);
    ADD_FAILURE() << "no token " << piece;
    return -1;
  }
};

TinyVocab tiny_vocab() {
  TinyVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_level::byte_to_utf8()[b]);
  const std::vector<std::string> merges = {"h e", "l l",          "he ll", "hell o", "\xC4\xA0 w",
                                           "o r", "\xC4\xA0w or", "1 2",   "12 3",   "' S"};
  for (const std::string& merge : merges) {
    const std::size_t space = merge.find(' ');
    v.tokens.push_back(merge.substr(0, space) + merge.substr(space + 1));
    v.merges.push_back(merge);
  }
  v.types.assign(v.tokens.size(), 1);
  v.tokens.push_back("<|end|>");
  v.types.push_back(3);
  v.tokens.push_back("<tool>");
  v.types.push_back(4);
  return v;
}

GgufMetadataList tiny_metadata(const TinyVocab& v, const std::string& pre = "gpt-2") {
  GgufMetadataList list = {
      {"general.architecture", GgufValue::string("llama")},
      {"tokenizer.ggml.model", GgufValue::string("gpt2")},
      {"tokenizer.ggml.pre", GgufValue::string(pre)},
      {"tokenizer.ggml.tokens", GgufValue::string_array(v.tokens)},
      {"tokenizer.ggml.token_type", GgufValue::int_array(GgufValueType::I32, v.types)},
      {"tokenizer.ggml.merges", GgufValue::string_array(v.merges)},
      {"tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(v.tokens.size() - 2))},
  };
  return list;
}

// Replaces (or, with `value` null, removes) one key.
GgufMetadataList with(GgufMetadataList list, const std::string& key,
                      const std::optional<GgufValue>& value) {
  for (auto it = list.begin(); it != list.end(); ++it) {
    if (it->first == key) {
      if (value) {
        it->second = *value;
      } else {
        list.erase(it);
      }
      return list;
    }
  }
  if (value) list.emplace_back(key, *value);
  return list;
}

Tokenizer tiny_tokenizer(const GgufMetadataList& list) {
  return tokenizer_from_gguf(GgufMetadata(list, "tiny.gguf"));
}

TEST(GgufTokenizer, HandBuiltVocabularyGivesTheWorkedIds) {
  const TinyVocab v = tiny_vocab();
  const Tokenizer t = tiny_tokenizer(tiny_metadata(v));
  EXPECT_EQ(t.vocab_size(), static_cast<int>(v.tokens.size()));
  // "hello" merges whole; " world": Ġ w -> Ġw, o r -> or, Ġw or -> Ġwor, then l, d.
  EXPECT_EQ(t.encode("hello world<|end|><tool>"),
            (std::vector<int>{v.id("hello"), v.id("\xC4\xA0wor"), 'l', 'd', v.id("<|end|>"),
                              v.id("<tool>")}));
  EXPECT_TRUE(t.is_special(v.id("<|end|>")));
  EXPECT_FALSE(t.is_special(v.id("<tool>")));
  EXPECT_EQ(t.decode(t.encode("hello world<|end|>")), "hello world<|end|>");
  // GPT-2 keeps digit runs whole (1 2 -> 12, 12 3 -> 123) and splits "'S" from "IT".
  EXPECT_EQ(t.encode("1231234"), (std::vector<int>{v.id("123"), v.id("123"), '4'}));
  EXPECT_EQ(t.encode("IT'S"), (std::vector<int>{'I', 'T', '\'', 'S'}));
}

TEST(GgufTokenizer, PreTokenizerFollowsTheKey) {
  const TinyVocab v = tiny_vocab();
  // Qwen2 takes digits one at a time; Llama 3 in runs of up to three, with (?i:'s).
  const Tokenizer qwen = tiny_tokenizer(tiny_metadata(v, "qwen2"));
  EXPECT_EQ(qwen.encode("1231234"), (std::vector<int>{'1', '2', '3', '1', '2', '3', '4'}));
  EXPECT_EQ(qwen.encode("IT'S"), (std::vector<int>{'I', 'T', v.id("'S")}));
  const Tokenizer llama = tiny_tokenizer(tiny_metadata(v, "llama-bpe"));
  EXPECT_EQ(llama.encode("1231234"), (std::vector<int>{v.id("123"), v.id("123"), '4'}));
  EXPECT_EQ(llama.encode("IT'S"), (std::vector<int>{'I', 'T', v.id("'S")}));
  // Absent and "default" read as GPT-2.
  const Tokenizer absent = tiny_tokenizer(with(tiny_metadata(v), "tokenizer.ggml.pre", {}));
  EXPECT_EQ(absent.encode("IT'S"), (std::vector<int>{'I', 'T', '\'', 'S'}));
  const Tokenizer deflt =
      tiny_tokenizer(with(tiny_metadata(v), "tokenizer.ggml.pre", GgufValue::string("default")));
  EXPECT_EQ(deflt.encode("1231234"), (std::vector<int>{v.id("123"), v.id("123"), '4'}));
}

TEST(GgufTokenizer, BosPolicyFollowsLlamaCpp) {
  const TinyVocab v = tiny_vocab();
  const GgufMetadataList base = with(tiny_metadata(v, "llama-bpe"), "tokenizer.ggml.bos_token_id",
                                     GgufValue::u32(static_cast<uint32_t>(v.id("<|end|>"))));
  // llama-bpe adds BOS unless the file says otherwise; other pre-tokenizers do not.
  const GgufMetadata llama(base, "tiny.gguf");
  EXPECT_EQ(tokenizer_config_from_gguf(llama)["add_bos_token"], true);
  EXPECT_FALSE(tokenizer_json_from_gguf(llama)["post_processor"].is_null());
  const GgufMetadata off(with(base, "tokenizer.ggml.add_bos_token", GgufValue::boolean(false)),
                         "tiny.gguf");
  EXPECT_EQ(tokenizer_config_from_gguf(off)["add_bos_token"], false);
  EXPECT_TRUE(tokenizer_json_from_gguf(off)["post_processor"].is_null());
  const GgufMetadata gpt2(with(base, "tokenizer.ggml.pre", GgufValue::string("gpt-2")),
                          "tiny.gguf");
  EXPECT_EQ(tokenizer_config_from_gguf(gpt2)["add_bos_token"], false);
  // Either way encode() adds nothing: BOS is written by the chat format.
  EXPECT_EQ(tokenizer_from_gguf(llama).encode("hello"), (std::vector<int>{v.id("hello")}));
}

// ---- errors, GGUF -> HF ----

std::string tiny_error(const GgufMetadataList& list) {
  return test::error_of([&] { tokenizer_json_from_gguf(GgufMetadata(list, "tiny.gguf")); });
}

TEST(GgufTokenizerErrors, SentencePieceAndOtherKindsAreRefused) {
  const TinyVocab v = tiny_vocab();
  expect_error(
      [&] {
        tokenizer_json_from_gguf(
            GgufMetadata(with(tiny_metadata(v), "tokenizer.ggml.model", GgufValue::string("llama")),
                         "tiny.gguf"));
      },
      {"GGUF file 'tiny.gguf'", "tokenizer.ggml.model is 'llama'", "SentencePiece",
       "dapx reads byte-level BPE vocabularies only"});
  const std::string bert =
      tiny_error(with(tiny_metadata(v), "tokenizer.ggml.model", GgufValue::string("bert")));
  EXPECT_NE(bert.find("'bert' (a WordPiece vocabulary)"), std::string::npos) << bert;
  const std::string none = tiny_error(with(tiny_metadata(v), "tokenizer.ggml.model", {}));
  EXPECT_NE(none.find("has no tokenizer (no tokenizer.ggml.model key)"), std::string::npos) << none;
}

TEST(GgufTokenizerErrors, UnknownPreTokenizerIsNamed) {
  const std::string msg = tiny_error(
      with(tiny_metadata(tiny_vocab()), "tokenizer.ggml.pre", GgufValue::string("deepseek-llm")));
  EXPECT_NE(msg.find("tokenizer.ggml.pre is 'deepseek-llm', a pre-tokenizer dapx does not know "
                     "(known: gpt-2, qwen2, llama-bpe)"),
            std::string::npos)
      << msg;
}

TEST(GgufTokenizerErrors, MissingTokens) {
  const std::string msg =
      tiny_error(with(tiny_metadata(tiny_vocab()), "tokenizer.ggml.tokens", {}));
  EXPECT_NE(msg.find("GGUF file 'tiny.gguf': has no tokenizer.ggml.tokens"), std::string::npos)
      << msg;
}

TEST(GgufTokenizerErrors, MergesNamingUnknownTokens) {
  TinyVocab v = tiny_vocab();
  v.merges[1] = "l zz";
  std::string msg = tiny_error(tiny_metadata(v));
  EXPECT_NE(msg.find("tokenizer.ggml.merges[1] 'l zz' names 'zz', which is not in "
                     "tokenizer.ggml.tokens"),
            std::string::npos)
      << msg;
  v = tiny_vocab();
  v.merges[0] = "h o";  // both pieces exist, "ho" does not
  msg = tiny_error(tiny_metadata(v));
  EXPECT_NE(msg.find("tokenizer.ggml.merges[0] 'h o' makes 'ho', which is not in "
                     "tokenizer.ggml.tokens"),
            std::string::npos)
      << msg;
  v = tiny_vocab();
  v.merges[2] = "hell";
  msg = tiny_error(tiny_metadata(v));
  EXPECT_NE(msg.find("tokenizer.ggml.merges[2] 'hell' is not two pieces separated by a space"),
            std::string::npos)
      << msg;
  msg = tiny_error(with(tiny_metadata(tiny_vocab()), "tokenizer.ggml.merges", {}));
  EXPECT_NE(msg.find("has no tokenizer.ggml.merges"), std::string::npos) << msg;
}

TEST(GgufTokenizerErrors, TokenTypesOfTheWrongLengthOrValue) {
  const TinyVocab v = tiny_vocab();
  std::string msg = tiny_error(with(tiny_metadata(v), "tokenizer.ggml.token_type",
                                    GgufValue::int_array(GgufValueType::I32, {1, 1, 3})));
  EXPECT_NE(msg.find("tokenizer.ggml.token_type has 3 entries for the " +
                     std::to_string(v.tokens.size()) + " tokens of tokenizer.ggml.tokens"),
            std::string::npos)
      << msg;
  std::vector<int64_t> types = v.types;
  types[7] = 9;
  msg = tiny_error(with(tiny_metadata(v), "tokenizer.ggml.token_type",
                        GgufValue::int_array(GgufValueType::I32, types)));
  EXPECT_NE(msg.find("tokenizer.ggml.token_type[7] is 9, not a token type"), std::string::npos)
      << msg;
}

TEST(GgufTokenizerErrors, SpecialIdsOutOfRangeAndBadText) {
  const TinyVocab v = tiny_vocab();
  std::string msg =
      tiny_error(with(tiny_metadata(v), "tokenizer.ggml.bos_token_id", GgufValue::u32(100000)));
  EXPECT_NE(msg.find("tokenizer.ggml.bos_token_id is 100000, out of range for the " +
                     std::to_string(v.tokens.size()) + " tokens"),
            std::string::npos)
      << msg;
  TinyVocab bad = tiny_vocab();
  bad.tokens.back() = "\xFF\xFE";
  msg = tiny_error(tiny_metadata(bad));
  EXPECT_NE(msg.find("tokenizer.ggml.tokens[" + std::to_string(bad.tokens.size() - 1) +
                     "] is not valid UTF-8"),
            std::string::npos)
      << msg;
}

// ---- errors, HF -> GGUF ----

TEST(GgufTokenizerErrors, UnknownHfPreTokenizerNamesItsPattern) {
  json j = original_json("llama3");
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{L}+|\\p{N}{1,2}";
  expect_error([&] { gguf_tokenizer_metadata(j, nullptr); },
               {"tokenizer.json: pre-tokenizer not recognised", "'\\p{L}+|\\p{N}{1,2}'",
                "gpt-2, qwen2, llama-bpe"});
  // The Llama 3 pattern without ignore_merges would tokenize differently once read back.
  json no_ignore = original_json("llama3");
  no_ignore["model"]["ignore_merges"] = false;
  expect_error([&] { gguf_tokenizer_metadata(no_ignore, nullptr); },
               {"pre-tokenizer not recognised"});
  // The Qwen2 pattern without NFC likewise.
  json no_nfc = original_json("qwen2");
  no_nfc["normalizer"] = nullptr;
  expect_error([&] { gguf_tokenizer_metadata(no_nfc, nullptr); },
               {"pre-tokenizer not recognised", "normalizer none"});
}

TEST(GgufTokenizerErrors, HfTokenizersThatAreNotByteLevelBpe) {
  const json wordpiece = {{"model", {{"type", "WordPiece"}, {"vocab", json::object()}}}};
  expect_error([&] { gguf_tokenizer_metadata(wordpiece, nullptr); },
               {"model type is 'WordPiece'", "byte-level BPE vocabularies only"});
  const json spm_bpe = {
      {"model", {{"type", "BPE"}, {"byte_fallback", true}, {"vocab", json::object()}}}};
  expect_error([&] { gguf_tokenizer_metadata(spm_bpe, nullptr); }, {"byte_fallback"});
  json metaspace = original_json("gpt2");
  metaspace["pre_tokenizer"] = {{"type", "Metaspace"}};
  metaspace["decoder"] = nullptr;
  expect_error([&] { gguf_tokenizer_metadata(metaspace, nullptr); }, {"no ByteLevel"});
}

// ---- the HF -> GGUF details ----

TEST(GgufTokenizer, HfToGgufTypesGapsAndTemplates) {
  // A tiny byte-level tokenizer.json: the 256 bytes, one merge, a special, a user-defined and
  // a "<|...|>" token not marked special, and a gap at id 258.
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level::byte_to_utf8()[b]] = b;
  vocab["he"] = 256;
  json added = json::array({{{"id", 257}, {"content", "<s>"}, {"special", true}},
                            {{"id", 259}, {"content", "<tool>"}, {"special", false}},
                            {{"id", 260}, {"content", "<|fim|>"}, {"special", false}}});
  const json tok = {
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens", added},
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({json::array({"h", "e"})})}}}};
  const json config = {{"bos_token", {{"content", "<s>"}}},
                       {"add_bos_token", true},
                       {"chat_template",
                        {{{"name", "default"}, {"template", kQwenTemplate}},
                         {{"name", "tool use"}, {"template", "T"}}}}};
  const GgufMetadata m(gguf_tokenizer_metadata(tok, config, {{"eos_token_id", 257}}), "tiny.gguf");
  const auto& tokens = m.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 261u);
  EXPECT_EQ(tokens[258], "[PAD258]");
  std::vector<int64_t> types(257, 1);                       // the bytes and "he"
  for (const int64_t t : {3, 5, 4, 3}) types.push_back(t);  // <s>, gap, <tool>, <|fim|>
  EXPECT_EQ(m.get_int_array("tokenizer.ggml.token_type"), types);
  EXPECT_EQ(m.get_string_array("tokenizer.ggml.merges"), std::vector<std::string>{"h e"});
  EXPECT_EQ(m.get_string("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(m.get_u32("tokenizer.ggml.bos_token_id"), 257u);
  EXPECT_EQ(m.get_u32("tokenizer.ggml.eos_token_id"), 257u);
  EXPECT_TRUE(m.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(m.get_string("tokenizer.chat_template"), kQwenTemplate);
  EXPECT_EQ(m.get_string("tokenizer.chat_template.tool_use"), "T");
  EXPECT_EQ(m.get_string_array("tokenizer.chat_templates"), std::vector<std::string>{"tool_use"});
  EXPECT_EQ(chat_format_from_gguf(m), ChatFormat::ChatML);
  const json back = tokenizer_config_from_gguf(m);
  EXPECT_EQ(back["chat_template"][1]["name"], "tool_use");
  // And it loads: the unused id decodes to its placeholder text.
  const Tokenizer t = tokenizer_from_gguf(m);
  EXPECT_EQ(t.vocab_size(), 261);
  EXPECT_EQ(t.encode("hehe<tool>"), (std::vector<int>{256, 256, 259}));
  EXPECT_TRUE(t.is_special(260));
}

// ---- chat formats ----

TEST(GgufTokenizer, ChatFormatFromTheTemplate) {
  const TinyVocab v = tiny_vocab();
  EXPECT_EQ(chat_format_from_gguf(GgufMetadata(
                with(tiny_metadata(v), "tokenizer.chat_template", GgufValue::string(kQwenTemplate)),
                "tiny.gguf")),
            ChatFormat::ChatML);
  EXPECT_EQ(chat_format_from_gguf(GgufMetadata(with(tiny_metadata(v), "tokenizer.chat_template",
                                                    GgufValue::string(kLlama3Template)),
                                               "tiny.gguf")),
            ChatFormat::Llama3);
  EXPECT_EQ(chat_format_from_gguf(GgufMetadata(tiny_metadata(v), "tiny.gguf")), ChatFormat::Raw);
  // The template alone decides; a SentencePiece file's format is still found.
  EXPECT_EQ(chat_format_from_gguf(
                GgufMetadata({{"tokenizer.ggml.model", GgufValue::string("llama")},
                              {"tokenizer.chat_template", GgufValue::string(kLlama3Template)}},
                             "spm.gguf")),
            ChatFormat::Llama3);
}

}  // namespace
}  // namespace dapx
