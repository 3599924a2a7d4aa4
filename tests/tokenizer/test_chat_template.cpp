#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "error_message.h"
#include "tokenizer/chat_template.h"
#include "util/error.h"

namespace dapx {
namespace {

const std::vector<ChatMessage> kConversation = {{"system", "Be brief."}, {"user", "Hi!"}};

TEST(ChatTemplate, ChatMLRendersExactly) {
  EXPECT_EQ(apply_chat_format(ChatFormat::ChatML, kConversation),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_format(ChatFormat::ChatML, kConversation, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n");
}

TEST(ChatTemplate, Llama3RendersExactly) {
  EXPECT_EQ(apply_chat_format(ChatFormat::Llama3, kConversation),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(apply_chat_format(ChatFormat::Llama3, {{"user", "x"}}, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
}

TEST(ChatTemplate, RawJoinsContents) {
  EXPECT_EQ(apply_chat_format(ChatFormat::Raw, kConversation), "Be brief.\nHi!");
  EXPECT_EQ(apply_chat_format(ChatFormat::Raw, {}), "");
}

TEST(ChatTemplate, NamesRoundTrip) {
  for (const ChatFormat f : {ChatFormat::Raw, ChatFormat::ChatML, ChatFormat::Llama3}) {
    EXPECT_EQ(chat_format_from_name(chat_format_name(f)), f);
  }
  test::expect_error([] { chat_format_from_name("vicuna"); }, {"vicuna"});
}

TEST(ChatTemplate, DetectFromJsonText) {
  EXPECT_EQ(detect_chat_format_from_json(R"({"chat_template": "<|im_start|>"})", "cfg"),
            ChatFormat::ChatML);
  EXPECT_EQ(detect_chat_format_from_json("{}", "cfg"), ChatFormat::Raw);
  test::expect_error([] { detect_chat_format_from_json("[1,", "my/tokenizer_config.json"); },
                     {"my/tokenizer_config.json"});
}

class DetectChatFormat : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("dapx_chat_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write_config(const std::string& text) {
    std::ofstream(dir_ / "tokenizer_config.json") << text;
  }
  std::filesystem::path dir_;
};

TEST_F(DetectChatFormat, MissingConfigIsRaw) {
  EXPECT_EQ(detect_chat_format(dir_), ChatFormat::Raw);
}

TEST_F(DetectChatFormat, RecognisesChatML) {
  write_config(
      R"({"chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{% endfor %}"})");
  EXPECT_EQ(detect_chat_format(dir_), ChatFormat::ChatML);
}

TEST_F(DetectChatFormat, RecognisesLlama3) {
  write_config(
      R"({"chat_template": "{{ '<|start_header_id|>' + m.role + '<|end_header_id|>' }}"})");
  EXPECT_EQ(detect_chat_format(dir_), ChatFormat::Llama3);
}

TEST_F(DetectChatFormat, NamedTemplateListUsesDefault) {
  write_config(R"({"chat_template": [{"name": "tool_use", "template": "x"},
                                     {"name": "default", "template": "<|im_start|>"}]})");
  EXPECT_EQ(detect_chat_format(dir_), ChatFormat::ChatML);
}

TEST_F(DetectChatFormat, UnknownOrAbsentTemplateIsRaw) {
  write_config(R"({"chat_template": "[INST] {{ content }} [/INST]"})");
  EXPECT_EQ(detect_chat_format(dir_), ChatFormat::Raw);
  write_config(R"({"model_max_length": 2048})");
  EXPECT_EQ(detect_chat_format(dir_), ChatFormat::Raw);
}

TEST_F(DetectChatFormat, TemplateTextTellsAbsentFromUnrecognised) {
  // Both are Raw; generate --chat warns differently about each.
  EXPECT_EQ(chat_template_text(dir_), "");  // no tokenizer_config.json
  write_config(R"({"model_max_length": 2048})");
  EXPECT_EQ(chat_template_text(dir_), "");
  write_config(R"({"chat_template": "[INST] {{ content }} [/INST]"})");
  EXPECT_EQ(chat_template_text(dir_), "[INST] {{ content }} [/INST]");
  write_config("{\"chat_template\": ");  // invalid: detect_chat_format reports it
  EXPECT_EQ(chat_template_text(dir_), "");
}

TEST_F(DetectChatFormat, InvalidJsonNamesTheFile) {
  // The second, found by fuzz/fuzz_chat_template, used to escape as nlohmann's out_of_range.
  for (const char* text : {"{\"chat_template\": ", "{\"chat_template\": 1e400}"}) {
    write_config(text);
    SCOPED_TRACE(text);
    test::expect_error([&] { detect_chat_format(dir_); },
                       {"tokenizer_config.json", "not valid JSON"});
  }
}

TEST_F(DetectChatFormat, TemplateNameOfAnotherTypeIsSkipped) {
  // A non-string "name" used to escape as nlohmann's type_error (fuzz/corpus/chat_template/).
  write_config(R"({"chat_template": [{"name": 1, "template": "x"},
                                     {"name": "default", "template": "<|im_start|>"}]})");
  EXPECT_EQ(detect_chat_format(dir_), ChatFormat::ChatML);
}

}  // namespace
}  // namespace dapx
