#pragma once
// Chat formats: ChatML (Qwen), Llama-3 headers, and raw (messages joined, no markup).
#include <filesystem>
#include <string>
#include <vector>

namespace dapx {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

enum class ChatFormat { Raw, ChatML, Llama3 };

ChatFormat chat_format_from_name(const std::string& name);  // "raw", "chatml", "llama3"
std::string chat_format_name(ChatFormat f);
// Recognises the format from DIR/tokenizer_config.json's "chat_template" (and tokens);
// Raw when absent or unrecognised.
ChatFormat detect_chat_format(const std::filesystem::path& model_dir);
// The chat template text of DIR/tokenizer_config.json: "" when there is none (or the file is
// absent or unreadable). Tells "no template" from "a template not recognised" (both Raw).
std::string chat_template_text(const std::filesystem::path& model_dir);
// The same from the text of a tokenizer_config.json; `source` names it in errors.
ChatFormat detect_chat_format_from_json(const std::string& tokenizer_config,
                                        const std::string& source);
// Renders the conversation and, when add_generation_prompt, opens the assistant turn.
std::string apply_chat_format(ChatFormat f, const std::vector<ChatMessage>& messages,
                              bool add_generation_prompt = true);

}  // namespace dapx
