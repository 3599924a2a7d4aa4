// Fuzz target: chat formats. The input is split at NUL bytes: the first part is the text of
// tokenizer_config.json for detect_chat_format_from_json (its "chat_template" as a string or
// a list of named templates); the following parts are alternating roles and contents of a
// conversation, rendered in every format with and without the generation prompt, and the second
// part is also tried as a format name. Checks the renderings' structure. dapx::Error is the
// expected rejection; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "tokenizer/chat_template.h"
#include "util/error.h"

namespace {

using namespace dapx;

std::vector<std::string> split_at_nul(const std::string& s) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    const size_t nul = s.find('\0', begin);
    parts.push_back(s.substr(begin, nul - begin));
    if (nul == std::string::npos) break;
    begin = nul + 1;
  }
  return parts;
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> parts = split_at_nul(fuzz::as_string(data, size));
  try {
    const ChatFormat f = detect_chat_format_from_json(parts[0], "fuzz/tokenizer_config.json");
    FUZZ_CHECK(chat_format_from_name(chat_format_name(f)) == f, chat_format_name(f));
  } catch (const Error&) {
  }
  if (parts.size() > 1) {
    try {
      const ChatFormat f = chat_format_from_name(parts[1]);
      FUZZ_CHECK(chat_format_name(f) == parts[1], parts[1]);
    } catch (const Error&) {
    }
  }

  std::vector<ChatMessage> messages;
  size_t content_bytes = 0;
  for (size_t i = 1; i + 1 < parts.size(); i += 2) {
    messages.push_back({parts[i], parts[i + 1]});
    content_bytes += parts[i].size() + parts[i + 1].size();
  }
  const std::string raw = apply_chat_format(ChatFormat::Raw, messages);
  std::string joined;
  for (size_t i = 0; i < messages.size(); ++i) joined += (i ? "\n" : "") + messages[i].content;
  FUZZ_CHECK(raw == joined, "raw joins the contents");
  FUZZ_CHECK(apply_chat_format(ChatFormat::Raw, messages, false) == raw, "raw has no prompt");
  for (const bool prompt : {false, true}) {
    const std::string chatml = apply_chat_format(ChatFormat::ChatML, messages, prompt);
    FUZZ_CHECK(chatml.size() >= content_bytes, "chatml keeps every byte");
    if (!prompt) {
      const std::string markup = "<|im_start|><|im_end|>\n\n";
      FUZZ_CHECK(chatml.size() == content_bytes + messages.size() * markup.size(), "chatml size");
    } else {
      FUZZ_CHECK(chatml.size() >= 22 &&
                     chatml.compare(chatml.size() - 22, 22, "<|im_start|>assistant\n") == 0,
                 "chatml opens the assistant turn");
    }
    const std::string llama3 = apply_chat_format(ChatFormat::Llama3, messages, prompt);
    FUZZ_CHECK(llama3.rfind("<|begin_of_text|>", 0) == 0, "llama3 starts with BOS");
    FUZZ_CHECK(count(llama3, "<|eot_id|>") >= messages.size(), "llama3 ends every turn");
  }
  return 0;
}
