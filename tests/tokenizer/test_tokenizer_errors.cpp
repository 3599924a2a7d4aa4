// Invalid or unsupported tokenizer.json files give a dapx::Error naming the file and problem.
#include <gtest/gtest.h>

#include <string>

#include "error_message.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace dapx {
namespace {

// Message of the error that loading `json` raises ("" if it loads).
std::string load_error(const std::string& json) {
  return test::error_of([&] { Tokenizer::from_json_string(json, "bad/tokenizer.json"); });
}

// A minimal valid byte-level tokenizer.json around the given model/pre_tokenizer.
std::string with_model(
    const std::string& model,
    const std::string& pre = R"({"type": "ByteLevel", "add_prefix_space": false})",
    const std::string& normalizer = "null") {
  return R"({"normalizer": )" + normalizer + R"(, "pre_tokenizer": )" + pre + R"(, "model": )" +
         model + "}";
}

void expect_error(const std::string& json, const std::string& needle) {
  const std::string message = load_error(json);
  EXPECT_NE(message.find("bad/tokenizer.json"), std::string::npos) << message;
  EXPECT_NE(message.find(needle), std::string::npos)
      << "wanted \"" << needle << "\" in: " << message;
}

TEST(TokenizerErrors, NotJson) { expect_error("{\"model\": [1, 2", "not valid JSON"); }

TEST(TokenizerErrors, NotAnObject) { expect_error("[1, 2, 3]", "must be a JSON object"); }

TEST(TokenizerErrors, MissingModel) {
  expect_error(R"({"pre_tokenizer": {"type": "ByteLevel"}})", "no \"model\"");
}

TEST(TokenizerErrors, UnsupportedModelType) {
  expect_error(with_model(R"({"type": "WordPiece", "vocab": {}})"),
               "unsupported model type \"WordPiece\"");
}

TEST(TokenizerErrors, MissingVocabOrMerges) {
  expect_error(with_model(R"({"type": "BPE", "merges": []})"), "no \"vocab\"");
  expect_error(with_model(R"({"type": "BPE", "vocab": {}})"), "no \"merges\"");
}

TEST(TokenizerErrors, NotByteLevel) {
  expect_error(with_model(R"({"type": "BPE", "vocab": {}, "merges": []})", "null"),
               "no ByteLevel pre-tokenizer");
  expect_error(with_model(R"({"type": "BPE", "vocab": {}, "merges": []})"),
               "not a byte-level vocabulary");
}

TEST(TokenizerErrors, UnsupportedNormalizerAndPreTokenizer) {
  const std::string model = R"({"type": "BPE", "vocab": {}, "merges": []})";
  expect_error(with_model(model, R"({"type": "ByteLevel"})", R"({"type": "Lowercase"})"),
               "unsupported normalizer type \"Lowercase\"");
  expect_error(with_model(model, R"({"type": "Whitespace"})"),
               "unsupported pre_tokenizer type \"Whitespace\"");
  expect_error(with_model(model, R"({"type": "Split", "pattern": {"Regex": "(unclosed"},
                                     "behavior": "Isolated", "invert": false})"),
               "does not compile");
}

TEST(TokenizerErrors, MergeWithUnknownPiece) {
  expect_error(with_model(R"({"type": "BPE", "vocab": {"a": 0}, "merges": ["a zz"]})"),
               "\"zz\", which is not in the vocab");
  expect_error(with_model(R"({"type": "BPE", "vocab": {"a": 0}, "merges": [42]})"),
               "merge 0 is neither");
}

TEST(TokenizerErrors, WrongFieldTypes) {
  expect_error(with_model(R"({"type": "BPE", "vocab": {"a": "zero"}, "merges": []})"),
               "invalid id");
}

// Each of these used to escape as an nlohmann exception, hit undefined behaviour (UBSan) or
// allocate gigabytes (the inputs are kept in fuzz/corpus/tokenizer_json/crash-*).
TEST(TokenizerErrors, NumberTooLargeForADouble) {
  expect_error(R"({"model": {"vocab": {"a": 1e400}}})", "not valid JSON");
}

TEST(TokenizerErrors, IdsOutOfRange) {
  const std::string model = R"({"type": "BPE", "vocab": {}, "merges": []})";
  for (const char* id : {"-5", "1e10", "2147483647", "4294967296", "\"7\""}) {
    expect_error(R"({"pre_tokenizer": {"type": "ByteLevel"}, "model": )" + model +
                     R"(, "added_tokens": [{"id": )" + id + R"(, "content": "<x>"}]})",
                 "added token with an invalid id");
  }
  // A few tokens with a huge id would need tables of a billion slots.
  expect_error(with_model(R"({"type": "BPE", "vocab": {"a": 1073741823}, "merges": []})"),
               "token id 1073741823 is far beyond the 1 tokens");
}

TEST(TokenizerErrors, SplitPatternWithSingleCodeUnit) {
  // \C matches one byte: it could cut a character in half, and the next pattern reads the
  // pieces without a UTF-8 check.
  expect_error(with_model(R"({"type": "BPE", "vocab": {}, "merges": []})",
                          R"({"type": "Split", "pattern": {"Regex": "\\C"}})"),
               "does not compile");
}

TEST(TokenizerErrors, MissingFile) {
  test::expect_error([] { Tokenizer::load("/nonexistent/dir/tokenizer.json"); },
                     {"/nonexistent/dir/tokenizer.json"});
}

}  // namespace
}  // namespace dapx
