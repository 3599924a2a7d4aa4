#include "tokenizer/chat_template.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/error.h"

namespace dapx {

namespace {

// The template text of tokenizer_config.json's "chat_template": a string, or a list of
// {"name", "template"} entries of which "default" (else the first) is the chat one.
std::string template_text(const nlohmann::json& config) {
  if (!config.is_object() || !config.contains("chat_template")) return "";
  const nlohmann::json& tmpl = config["chat_template"];
  if (tmpl.is_string()) return tmpl.get<std::string>();
  if (!tmpl.is_array()) return "";
  for (const auto& entry : tmpl) {
    if (entry.is_object() && entry.contains("name") && entry["name"] == "default" &&
        entry.contains("template") && entry["template"].is_string()) {
      return entry["template"].get<std::string>();
    }
  }
  if (!tmpl.empty() && tmpl[0].is_object() && tmpl[0].contains("template") &&
      tmpl[0]["template"].is_string()) {
    return tmpl[0]["template"].get<std::string>();
  }
  return "";
}

void render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                   std::string& out) {
  for (const ChatMessage& m : messages) {
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
}

void render_llama3(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                   std::string& out) {
  out += "<|begin_of_text|>";
  for (const ChatMessage& m : messages) {
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

void render_raw(const std::vector<ChatMessage>& messages, std::string& out) {
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i > 0) out += '\n';
    out += messages[i].content;
  }
}

}  // namespace

ChatFormat chat_format_from_name(const std::string& name) {
  if (name == "raw") return ChatFormat::Raw;
  if (name == "chatml") return ChatFormat::ChatML;
  if (name == "llama3") return ChatFormat::Llama3;
  throw Error("unknown chat format \"" + name + "\" (expected raw, chatml or llama3)");
}

std::string chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::Raw:
      return "raw";
    case ChatFormat::ChatML:
      return "chatml";
    case ChatFormat::Llama3:
      return "llama3";
  }
  return "raw";
}

ChatFormat detect_chat_format(const std::filesystem::path& model_dir) {
  const std::filesystem::path path = model_dir / "tokenizer_config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return ChatFormat::Raw;  // many small/test models ship no config
  std::ostringstream content;
  content << in.rdbuf();
  return detect_chat_format_from_json(content.str(), path.string());
}

std::string chat_template_text(const std::filesystem::path& model_dir) {
  std::ifstream in(model_dir / "tokenizer_config.json", std::ios::binary);
  if (!in) return "";
  std::ostringstream content;
  content << in.rdbuf();
  try {
    return template_text(nlohmann::json::parse(content.str()));
  } catch (const nlohmann::json::exception&) {
    return "";  // detect_chat_format reports invalid JSON
  }
}

ChatFormat detect_chat_format_from_json(const std::string& tokenizer_config,
                                        const std::string& source) {
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(tokenizer_config);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, or out_of_range for a number too large for a double (1e400).
    throw Error(source + ": not valid JSON (" + e.what() + ")");
  }
  const std::string tmpl = template_text(config);
  if (tmpl.find("<|im_start|>") != std::string::npos) return ChatFormat::ChatML;
  if (tmpl.find("<|start_header_id|>") != std::string::npos) return ChatFormat::Llama3;
  return ChatFormat::Raw;
}

std::string apply_chat_format(ChatFormat f, const std::vector<ChatMessage>& messages,
                              bool add_generation_prompt) {
  std::string out;
  switch (f) {
    case ChatFormat::ChatML:
      render_chatml(messages, add_generation_prompt, out);
      break;
    case ChatFormat::Llama3:
      render_llama3(messages, add_generation_prompt, out);
      break;
    case ChatFormat::Raw:
      render_raw(messages, out);  // no markup, so there is no assistant turn to open
      break;
  }
  return out;
}

}  // namespace dapx
