// GGUF tokenizer metadata <-> Hugging Face tokenizer.json / tokenizer_config.json.
//
// The three pre-tokenizers dapx knows are described once, as the sections of the families' own
// tokenizer.json files (normalizer, pre_tokenizer, decoder, model.ignore_merges). Reading a GGUF
// file writes those sections; writing one recognises them by what they do (the chain of split
// patterns, NFC, prefix space, ignore_merges), so that a tokenizer.json is given a GGUF `pre`
// name only when the GGUF file read back tokenizes exactly as it does.
#include "tokenizer/gguf_tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace dapx {

using nlohmann::json;

namespace {

// The split patterns of Qwen2's and Llama 3's tokenizer.json (Qwen2 takes digits one by one,
// Llama 3 in runs of up to three).
constexpr const char* kQwen2SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class PreKind { Gpt2, Qwen2, Llama3 };
constexpr PreKind kPreKinds[] = {PreKind::Gpt2, PreKind::Qwen2, PreKind::Llama3};
const char* const kKnownPre = "gpt-2, qwen2, llama-bpe";

const char* gguf_pre_name(PreKind k) {
  switch (k) {
    case PreKind::Gpt2:
      return "gpt-2";
    case PreKind::Qwen2:
      return "qwen2";
    case PreKind::Llama3:
      return "llama-bpe";
  }
  return "gpt-2";
}

// llama.cpp's names for the three (it reads "default" with a GPT-2-like split).
std::optional<PreKind> pre_kind_of_name(const std::string& name) {
  if (name == "gpt-2" || name == "default") return PreKind::Gpt2;
  if (name == "qwen2") return PreKind::Qwen2;
  if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") return PreKind::Llama3;
  return std::nullopt;
}

json byte_level_section(bool add_prefix_space, bool trim_offsets, bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", add_prefix_space},
          {"trim_offsets", trim_offsets},
          {"use_regex", use_regex}};
}

json split_then_byte_level(const char* pattern) {
  json split = {{"type", "Split"},
                {"pattern", {{"Regex", pattern}}},
                {"behavior", "Isolated"},
                {"invert", false}};
  return {{"type", "Sequence"},
          {"pretokenizers", json::array({split, byte_level_section(false, false, false)})}};
}

json pre_tokenizer_section(PreKind k) {
  switch (k) {
    case PreKind::Gpt2:
      return byte_level_section(false, true, true);
    case PreKind::Qwen2:
      return split_then_byte_level(kQwen2SplitPattern);
    case PreKind::Llama3:
      return split_then_byte_level(kLlama3SplitPattern);
  }
  return nullptr;
}

json normalizer_section(PreKind k) {
  if (k == PreKind::Qwen2) return {{"type", "NFC"}};
  return nullptr;
}

bool ignores_merges(PreKind k) { return k == PreKind::Llama3; }

json decoder_section() { return byte_level_section(true, true, true); }

// What a tokenizer.json's normalizer, pre-tokenizer and BPE options do to text, as far as
// dapx's Tokenizer reads them; two tokenizers with equal behaviours split text the same way.
struct Behaviour {
  std::vector<std::string> splits;       // patterns, in order ("literal X" for a String split)
  std::vector<std::string> normalizers;  // "NFC", or the type of one dapx does not apply
  std::vector<std::string> other;        // pre-tokenizer steps no known family has
  bool byte_level = false;
  bool add_prefix_space = false;
  bool ignore_merges = false;

  bool operator==(const Behaviour& o) const {
    return splits == o.splits && normalizers == o.normalizers && other == o.other &&
           byte_level == o.byte_level && add_prefix_space == o.add_prefix_space &&
           ignore_merges == o.ignore_merges;
  }
};

std::string type_of(const json& node) {
  if (!node.is_object() || !node.contains("type") || !node["type"].is_string()) return "";
  return node["type"].get<std::string>();
}

void collect_normalizers(const json& node, Behaviour& b) {
  if (node.is_null()) return;
  const std::string type = type_of(node);
  if (type == "Sequence" && node.contains("normalizers") && node["normalizers"].is_array()) {
    for (const json& child : node["normalizers"]) collect_normalizers(child, b);
  } else {
    b.normalizers.push_back(type.empty() ? "(untyped)" : type);
  }
}

void collect_pre_tokenizers(const json& node, Behaviour& b) {
  if (node.is_null()) return;
  const std::string type = type_of(node);
  if (type == "Sequence" && node.contains("pretokenizers") && node["pretokenizers"].is_array()) {
    for (const json& child : node["pretokenizers"]) collect_pre_tokenizers(child, b);
  } else if (type == "Split") {
    const json pattern = node.value("pattern", json());
    if (node.value("behavior", std::string("Isolated")) != "Isolated" ||
        node.value("invert", false)) {
      b.other.push_back("Split with behavior " + node.value("behavior", std::string()) +
                        (node.value("invert", false) ? ", inverted" : ""));
    } else if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      b.splits.push_back(pattern["Regex"].get<std::string>());
    } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      b.splits.push_back("literal " + pattern["String"].get<std::string>());
    } else {
      b.other.push_back("Split without a pattern");
    }
  } else if (type == "ByteLevel") {
    // HF's defaults for absent fields: add_prefix_space and use_regex are true.
    b.byte_level = true;
    b.add_prefix_space = node.value("add_prefix_space", true);
    if (node.value("use_regex", true)) b.splits.push_back(kGpt2SplitPattern);
  } else {
    b.other.push_back(type.empty() ? "(untyped)" : type);
  }
}

Behaviour behaviour_of(const json& normalizer, const json& pre_tokenizer, bool ignore_merges) {
  Behaviour b;
  collect_normalizers(normalizer, b);
  collect_pre_tokenizers(pre_tokenizer, b);
  b.ignore_merges = ignore_merges;
  return b;
}

std::string describe(const Behaviour& b) {
  std::string out = "split patterns [";
  for (std::size_t i = 0; i < b.splits.size(); ++i) {
    if (i > 0) out += ", ";
    out += "'" + b.splits[i] + "'";
  }
  out += "]";
  if (!b.other.empty()) {
    out += ", other steps [";
    for (std::size_t i = 0; i < b.other.size(); ++i) out += (i > 0 ? ", " : "") + b.other[i];
    out += "]";
  }
  out += ", normalizer ";
  if (b.normalizers.empty()) out += "none";
  for (std::size_t i = 0; i < b.normalizers.size(); ++i)
    out += (i > 0 ? "+" : "") + b.normalizers[i];
  if (b.add_prefix_space) out += ", add_prefix_space";
  out += b.ignore_merges ? ", ignore_merges" : "";
  return out;
}

bool valid_utf8(std::string_view s) {
  std::size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<unsigned char>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const utf8::Seq seq = utf8::read_sequence(s, pos);
    if (seq.status != utf8::SeqStatus::Valid) return false;
    pos += seq.length;
  }
  return true;
}

// Special token kinds: tokenizer_config.json's "{kind}_token", config.json's "{kind}_token_id",
// and the GGUF key llama.cpp writes for it.
struct SpecialKind {
  const char* name;
  const char* gguf_key;
};
constexpr SpecialKind kSpecialKinds[] = {
    {"bos", "tokenizer.ggml.bos_token_id"},     {"eos", "tokenizer.ggml.eos_token_id"},
    {"unk", "tokenizer.ggml.unknown_token_id"}, {"sep", "tokenizer.ggml.seperator_token_id"},
    {"pad", "tokenizer.ggml.padding_token_id"}, {"mask", "tokenizer.ggml.mask_token_id"},
};

constexpr const char* kAddBosKey = "tokenizer.ggml.add_bos_token";
constexpr const char* kAddEosKey = "tokenizer.ggml.add_eos_token";
constexpr const char* kChatTemplateKey = "tokenizer.chat_template";
constexpr const char* kChatTemplatesKey = "tokenizer.chat_templates";

// ---------------------------------------------------------------------------------------
// GGUF -> Hugging Face

[[noreturn]] void fail_gguf(const GgufMetadata& m, const std::string& what) {
  throw Error("GGUF file '" + m.source() + "': " + what);
}

std::string describe_model_kind(const std::string& kind) {
  if (kind == "llama") return "a SentencePiece vocabulary";
  if (kind == "bert") return "a WordPiece vocabulary";
  if (kind == "t5") return "a Unigram (T5) vocabulary";
  if (kind == "rwkv") return "an RWKV world vocabulary";
  if (kind == "no_vocab" || kind == "none") return "no vocabulary";
  return "a tokenizer kind dapx does not know";
}

PreKind gguf_pre_kind(const GgufMetadata& m) {
  if (!m.has("tokenizer.ggml.pre")) return PreKind::Gpt2;
  const std::string name = m.get_string("tokenizer.ggml.pre");
  if (const auto k = pre_kind_of_name(name)) return *k;
  fail_gguf(m, "tokenizer.ggml.pre is '" + name +
                   "', a pre-tokenizer dapx does not know (known: " + kKnownPre + ")");
}

// llama.cpp adds BOS by default for the Llama 3 pre-tokenizer; the key overrides it.
bool gguf_add_bos(const GgufMetadata& m) {
  if (m.has(kAddBosKey)) return m.get_bool(kAddBosKey);
  if (!m.has("tokenizer.ggml.pre")) return false;
  const auto k = pre_kind_of_name(m.get_string("tokenizer.ggml.pre"));
  return k && *k == PreKind::Llama3;
}

bool gguf_add_eos(const GgufMetadata& m) { return m.has(kAddEosKey) && m.get_bool(kAddEosKey); }

// The id under `key`, checked against the token count; nullopt when absent.
std::optional<int> gguf_token_id(const GgufMetadata& m, const std::string& key, std::size_t n) {
  if (!m.has(key)) return std::nullopt;
  const int64_t id = m.get_int(key);
  if (id < 0 || static_cast<uint64_t>(id) >= n) {
    fail_gguf(m, key + " is " + std::to_string(id) + ", out of range for the " + std::to_string(n) +
                     " tokens of tokenizer.ggml.tokens");
  }
  return static_cast<int>(id);
}

const std::vector<std::string>& gguf_tokens(const GgufMetadata& m) {
  if (!m.has("tokenizer.ggml.model")) {
    fail_gguf(m, "has no tokenizer (no tokenizer.ggml.model key)");
  }
  const std::string kind = m.get_string("tokenizer.ggml.model");
  if (kind != "gpt2") {
    fail_gguf(m, "tokenizer.ggml.model is '" + kind + "' (" + describe_model_kind(kind) +
                     "); dapx reads byte-level BPE vocabularies only (tokenizer.ggml.model "
                     "'gpt2')");
  }
  if (!m.has("tokenizer.ggml.tokens")) fail_gguf(m, "has no tokenizer.ggml.tokens (the tokens)");
  const std::vector<std::string>& tokens = m.get_string_array("tokenizer.ggml.tokens");
  if (tokens.empty()) fail_gguf(m, "tokenizer.ggml.tokens is empty");
  return tokens;
}

std::vector<GgufTokenType> gguf_token_types(const GgufMetadata& m, std::size_t n) {
  if (!m.has("tokenizer.ggml.token_type"))
    return std::vector<GgufTokenType>(n, GgufTokenType::Normal);
  const std::vector<int64_t> raw = m.get_int_array("tokenizer.ggml.token_type");
  if (raw.size() != n) {
    fail_gguf(m, "tokenizer.ggml.token_type has " + std::to_string(raw.size()) +
                     " entries for the " + std::to_string(n) +
                     " tokens of tokenizer.ggml.tokens (one type per token)");
  }
  std::vector<GgufTokenType> types(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (raw[i] < 1 || raw[i] > 6) {
      fail_gguf(m, "tokenizer.ggml.token_type[" + std::to_string(i) + "] is " +
                       std::to_string(raw[i]) +
                       ", not a token type (1 normal, 2 unknown, 3 control, 4 user-defined, "
                       "5 unused, 6 byte)");
    }
    types[i] = static_cast<GgufTokenType>(raw[i]);
  }
  return types;
}

json gguf_merges(const GgufMetadata& m, const std::vector<std::string>& tokens) {
  if (!m.has("tokenizer.ggml.merges")) {
    fail_gguf(m, "has no tokenizer.ggml.merges (a byte-level BPE vocabulary needs its merges)");
  }
  const std::vector<std::string>& merges = m.get_string_array("tokenizer.ggml.merges");
  std::unordered_set<std::string_view> known(tokens.begin(), tokens.end());
  json out = json::array();
  out.get_ref<json::array_t&>().reserve(merges.size());
  std::string joined;
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& merge = merges[rank];
    const std::string where = "tokenizer.ggml.merges[" + std::to_string(rank) + "] '" + merge + "'";
    // Byte-level pieces never hold a plain space, so the first one separates the two.
    const std::size_t space = merge.find(' ');
    if (space == std::string::npos) fail_gguf(m, where + " is not two pieces separated by a space");
    const std::string_view left = std::string_view(merge).substr(0, space);
    const std::string_view right = std::string_view(merge).substr(space + 1);
    for (const std::string_view piece : {left, right}) {
      if (known.count(piece) == 0) {
        fail_gguf(m, where + " names '" + std::string(piece) +
                         "', which is not in tokenizer.ggml.tokens");
      }
    }
    joined.assign(left);
    joined.append(right);
    if (known.count(joined) == 0) {
      fail_gguf(m, where + " makes '" + joined + "', which is not in tokenizer.ggml.tokens");
    }
    out.push_back(merge);
  }
  return out;
}

// HF's TemplateProcessing that puts BOS first and/or EOS last (what Llama 3's tokenizer.json
// has for BOS); null when neither is added.
json post_processor(const std::vector<std::string>& tokens, std::optional<int> bos,
                    std::optional<int> eos) {
  if (!bos && !eos) return nullptr;
  const auto special = [&](int id, int type_id) {
    return json{{"SpecialToken", {{"id", tokens[id]}, {"type_id", type_id}}}};
  };
  const auto sequence = [](const char* id, int type_id) {
    return json{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  json single = json::array();
  json pair = json::array();
  json specials = json::object();
  if (bos) single.push_back(special(*bos, 0));
  single.push_back(sequence("A", 0));
  if (eos) single.push_back(special(*eos, 0));
  for (int type_id : {0, 1}) {
    if (bos) pair.push_back(special(*bos, type_id));
    pair.push_back(sequence(type_id == 0 ? "A" : "B", type_id));
    if (eos) pair.push_back(special(*eos, type_id));
  }
  for (const std::optional<int>& id : {bos, eos}) {
    if (!id) continue;
    specials[tokens[*id]] = {{"id", tokens[*id]}, {"ids", {*id}}, {"tokens", {tokens[*id]}}};
  }
  json processors = json::array();
  processors.push_back(byte_level_section(true, false, true));
  processors.push_back({{"type", "TemplateProcessing"},
                        {"single", single},
                        {"pair", pair},
                        {"special_tokens", specials}});
  return {{"type", "Sequence"}, {"processors", processors}};
}

// ---------------------------------------------------------------------------------------
// Hugging Face -> GGUF

[[noreturn]] void fail_hf(const std::string& what) { throw Error("tokenizer.json: " + what); }

// Token ids as tokenizer.json writes them; bounded like the Tokenizer's.
constexpr long long kMaxTokenId = INT32_MAX / 2;

int hf_id(const json& id, const std::string& what) {
  if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() > kMaxTokenId) {
    fail_hf(what + " has an invalid id (expected an integer from 0 to " +
            std::to_string(kMaxTokenId) + ")");
  }
  return id.get<int>();
}

// "<|...|>" (and the full-width "<｜...｜>") marks a control token even where the tokenizer
// forgot to call it special; llama.cpp's converter reads them the same way.
bool looks_special(const std::string& text) {
  const auto wrapped = [&](std::string_view open, std::string_view close) {
    return text.size() >= open.size() + close.size() && text.compare(0, open.size(), open) == 0 &&
           text.compare(text.size() - close.size(), close.size(), close) == 0;
  };
  return wrapped("<|", "|>") || wrapped("<\xEF\xBD\x9C", "\xEF\xBD\x9C>") || text == "<pad>" ||
         text == "<mask>";
}

// The text of a tokenizer_config.json token entry: a string or {"content": ...}.
std::optional<std::string> config_token_text(const json& config, const std::string& key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const json& entry = config[key];
  if (entry.is_string()) return entry.get<std::string>();
  if (entry.is_object() && entry.contains("content") && entry["content"].is_string())
    return entry["content"].get<std::string>();
  return std::nullopt;
}

// The TemplateProcessing of a post_processor (itself or inside a Sequence), null if none.
const json* template_processing(const json& post) {
  if (type_of(post) == "TemplateProcessing") return &post;
  if (type_of(post) == "Sequence" && post.contains("processors") && post["processors"].is_array()) {
    for (const json& p : post["processors"])
      if (type_of(p) == "TemplateProcessing") return &p;
  }
  return nullptr;
}

// The token named by a template entry {"SpecialToken": {"id": TEXT}}; nullopt for a sequence.
std::optional<std::string> template_special(const json& entry) {
  if (!entry.is_object() || !entry.contains("SpecialToken")) return std::nullopt;
  const json& s = entry["SpecialToken"];
  if (!s.is_object() || !s.contains("id") || !s["id"].is_string()) return std::nullopt;
  return s["id"].get<std::string>();
}

// Chat template names become part of a key: letters, digits and '_' only.
std::string template_key_name(const std::string& name) {
  std::string out;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    out += ok ? c : '_';
  }
  return out;
}

void append_chat_templates(const json& config, GgufMetadataList& out) {
  if (!config.is_object() || !config.contains("chat_template")) return;
  const json& tmpl = config["chat_template"];
  if (tmpl.is_string()) {
    out.emplace_back(kChatTemplateKey, GgufValue::string(tmpl.get<std::string>()));
    return;
  }
  if (!tmpl.is_array()) return;
  std::optional<std::string> default_template;
  std::vector<std::string> names;
  GgufMetadataList named;
  for (const json& entry : tmpl) {
    if (!entry.is_object() || !entry.contains("template") || !entry["template"].is_string())
      continue;
    const std::string name = template_key_name(entry.value("name", std::string()));
    if (name.empty()) continue;
    const std::string text = entry["template"].get<std::string>();
    if (name == "default") {
      default_template = text;
    } else if (std::find(names.begin(), names.end(), name) == names.end()) {
      names.push_back(name);
      named.emplace_back(std::string(kChatTemplateKey) + "." + name, GgufValue::string(text));
    }
  }
  if (default_template) out.emplace_back(kChatTemplateKey, GgufValue::string(*default_template));
  for (auto& entry : named) out.push_back(std::move(entry));
  if (!names.empty()) out.emplace_back(kChatTemplatesKey, GgufValue::string_array(names));
}

GgufMetadataList hf_to_gguf(const json& tok, const json& config, const json& model_config) {
  if (!tok.is_object()) fail_hf("must be a JSON object");
  if (!tok.contains("model") || !tok["model"].is_object()) fail_hf("has no \"model\" object");
  const json& model = tok["model"];
  const std::string type = model.value("type", model.contains("merges") ? "BPE" : "");
  if (type != "BPE") {
    fail_hf("model type is '" + type +
            "'; dapx writes byte-level BPE vocabularies only (model type BPE)");
  }
  if (model.value("byte_fallback", false)) {
    fail_hf(
        "model is a BPE with byte_fallback (SentencePiece style); dapx writes byte-level BPE "
        "vocabularies only");
  }
  if (tok.contains("decoder") && !tok["decoder"].is_null() &&
      type_of(tok["decoder"]) != "ByteLevel") {
    fail_hf("decoder is '" + type_of(tok["decoder"]) +
            "', not ByteLevel; dapx writes byte-level BPE vocabularies only");
  }
  const Behaviour behaviour =
      behaviour_of(tok.value("normalizer", json()), tok.value("pre_tokenizer", json()),
                   model.value("ignore_merges", false));
  if (!behaviour.byte_level) {
    fail_hf("has no ByteLevel pre-tokenizer; dapx writes byte-level BPE vocabularies only");
  }
  std::optional<PreKind> pre;
  for (const PreKind k : kPreKinds) {
    if (behaviour_of(normalizer_section(k), pre_tokenizer_section(k), ignores_merges(k)) ==
        behaviour) {
      pre = k;
    }
  }
  if (!pre) {
    fail_hf("pre-tokenizer not recognised (" + describe(behaviour) +
            "); dapx writes the GGUF pre-tokenizers " + kKnownPre + " only");
  }

  // Tokens by id: the model's vocab, then the added tokens (whose text wins, as in HF).
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail_hf("model has no \"vocab\"");
  std::map<int, std::string> by_id;
  for (const auto& [piece, id] : model["vocab"].items()) {
    by_id[hf_id(id, "vocab entry '" + piece + "'")] = piece;
  }
  std::map<int, GgufTokenType> added_type;
  std::vector<std::pair<std::string, int>> added_list;  // in file order, for lookups
  if (tok.contains("added_tokens") && !tok["added_tokens"].is_null()) {
    if (!tok["added_tokens"].is_array()) fail_hf("\"added_tokens\" must be an array");
    for (const json& t : tok["added_tokens"]) {
      const std::string content = t.at("content").get<std::string>();
      const int id = hf_id(t.at("id"), "added token '" + content + "'");
      by_id[id] = content;
      added_type[id] = t.value("special", false) || looks_special(content)
                           ? GgufTokenType::Control
                           : GgufTokenType::UserDefined;
      added_list.emplace_back(content, id);
    }
  }
  if (by_id.empty()) fail_hf("defines no tokens");
  const std::size_t n = static_cast<std::size_t>(by_id.rbegin()->first) + 1;
  if (n > 2 * by_id.size()) {
    fail_hf("token id " + std::to_string(n - 1) + " is far beyond the " +
            std::to_string(by_id.size()) + " tokens the file defines");
  }
  std::vector<std::string> tokens(n);
  std::vector<int64_t> types(n, static_cast<int64_t>(GgufTokenType::Unused));
  for (std::size_t i = 0; i < n; ++i) tokens[i] = "[PAD" + std::to_string(i) + "]";
  for (const auto& [id, text] : by_id) {
    tokens[id] = text;
    const auto it = added_type.find(id);
    types[id] = static_cast<int64_t>(it == added_type.end() ? GgufTokenType::Normal : it->second);
  }

  if (!model.contains("merges") || !model["merges"].is_array()) fail_hf("model has no \"merges\"");
  std::vector<std::string> merges;
  merges.reserve(model["merges"].size());
  for (const json& merge : model["merges"]) {
    if (merge.is_string()) {
      merges.push_back(merge.get<std::string>());
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      // The pair form may hold spaces; GGUF's "a b" cannot, so they are written as U+0120.
      std::string joined;
      for (int part = 0; part < 2; ++part) {
        if (part == 1) joined += ' ';
        for (const char c : merge[part].get<std::string>()) {
          if (c == ' ') {
            joined += "\xC4\xA0";
          } else {
            joined += c;
          }
        }
      }
      merges.push_back(std::move(joined));
    } else {
      fail_hf("merge " + std::to_string(merges.size()) + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }

  // Special token ids: tokenizer_config's texts among the added tokens, then config.json.
  std::map<std::string, int> special_ids;
  std::map<std::string, std::string> special_text;
  for (const SpecialKind& kind : kSpecialKinds) {
    const auto text = config_token_text(config, std::string(kind.name) + "_token");
    if (!text) continue;
    special_text[kind.name] = *text;
    for (const auto& [content, id] : added_list) {
      if (content == *text) {
        special_ids.emplace(kind.name, id);
        break;
      }
    }
  }
  if (model_config.is_object()) {
    for (const SpecialKind& kind : kSpecialKinds) {
      const std::string key = std::string(kind.name) + "_token_id";
      if (model_config.contains(key) && model_config[key].is_number_integer())
        special_ids.emplace(kind.name, hf_id(model_config[key], "config.json " + key));
    }
  }
  // add_bos/add_eos from the post-processor: a TemplateProcessing whose single sequence starts
  // (ends) with the BOS (EOS) token. Without a tokenizer_config it names them itself.
  std::optional<bool> add_bos;
  std::optional<bool> add_eos;
  const json post = tok.value("post_processor", json());
  if (const json* tp = template_processing(post)) {
    const json single = tp->value("single", json::array());
    const auto id_of = [&](const std::string& text) -> std::optional<int> {
      const json specials = tp->value("special_tokens", json::object());
      if (specials.contains(text) && specials[text].contains("ids") &&
          specials[text]["ids"].is_array() && specials[text]["ids"].size() == 1)
        return hf_id(specials[text]["ids"][0], "post_processor token '" + text + "'");
      return std::nullopt;
    };
    if (single.is_array() && single.size() > 1) {
      if (const auto first = template_special(single.front())) {
        if (!special_text.count("bos") && config.is_null()) special_text["bos"] = *first;
        add_bos = *first == special_text["bos"];
        if (*add_bos && !special_ids.count("bos")) {
          if (const auto id = id_of(*first)) special_ids["bos"] = *id;
        }
      }
      if (const auto last = template_special(single.back())) {
        if (!special_text.count("eos") && config.is_null()) special_text["eos"] = *last;
        add_eos = *last == special_text["eos"];
        if (*add_eos && !special_ids.count("eos")) {
          if (const auto id = id_of(*last)) special_ids["eos"] = *id;
        }
      }
    }
  }
  if (config.is_object()) {
    if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean())
      add_bos = config["add_bos_token"].get<bool>();
    if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean())
      add_eos = config["add_eos_token"].get<bool>();
  }

  GgufMetadataList out;
  out.emplace_back("tokenizer.ggml.model", GgufValue::string("gpt2"));
  out.emplace_back("tokenizer.ggml.pre", GgufValue::string(gguf_pre_name(*pre)));
  out.emplace_back("tokenizer.ggml.tokens", GgufValue::string_array(std::move(tokens)));
  out.emplace_back("tokenizer.ggml.token_type",
                   GgufValue::int_array(GgufValueType::I32, std::move(types)));
  out.emplace_back("tokenizer.ggml.merges", GgufValue::string_array(std::move(merges)));
  for (const SpecialKind& kind : kSpecialKinds) {
    const auto it = special_ids.find(kind.name);
    if (it == special_ids.end()) continue;
    if (static_cast<std::size_t>(it->second) >= n) {
      fail_hf(std::string(kind.name) + " token id " + std::to_string(it->second) +
              " is out of range for the " + std::to_string(n) + " tokens");
    }
    out.emplace_back(kind.gguf_key, GgufValue::u32(static_cast<uint32_t>(it->second)));
  }
  if (add_bos) out.emplace_back(kAddBosKey, GgufValue::boolean(*add_bos));
  if (add_eos) out.emplace_back(kAddEosKey, GgufValue::boolean(*add_eos));
  append_chat_templates(config, out);
  return out;
}

}  // namespace

nlohmann::json tokenizer_json_from_gguf(const GgufMetadata& m) {
  const std::vector<std::string>& tokens = gguf_tokens(m);
  const PreKind pre = gguf_pre_kind(m);
  const std::vector<GgufTokenType> types = gguf_token_types(m, tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (!valid_utf8(tokens[i])) {
      fail_gguf(m, "tokenizer.ggml.tokens[" + std::to_string(i) + "] is not valid UTF-8");
    }
  }
  json merges = gguf_merges(m, tokens);
  const std::optional<int> bos = gguf_token_id(m, "tokenizer.ggml.bos_token_id", tokens.size());
  const std::optional<int> eos = gguf_token_id(m, "tokenizer.ggml.eos_token_id", tokens.size());
  const std::optional<int> unk = gguf_token_id(m, "tokenizer.ggml.unknown_token_id", tokens.size());
  gguf_token_id(m, "tokenizer.ggml.padding_token_id", tokens.size());  // range check only

  // Every token is in the model's vocab (as in llama.cpp, so merges can reach any piece);
  // control and user-defined tokens are also added tokens, matched in the text before BPE.
  json vocab = json::object();
  json added = json::array();
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    vocab[tokens[i]] = i;
    if (types[i] == GgufTokenType::Control || types[i] == GgufTokenType::UserDefined) {
      added.push_back({{"id", i},
                       {"content", tokens[i]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", types[i] == GgufTokenType::Control}});
    }
  }
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", unk ? json(tokens[*unk]) : json(nullptr)},
                {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", ignores_merges(pre)},
                {"vocab", std::move(vocab)},
                {"merges", std::move(merges)}};
  const bool add_bos = gguf_add_bos(m) && bos.has_value();
  const bool add_eos = gguf_add_eos(m) && eos.has_value();
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", std::move(added)},
          {"normalizer", normalizer_section(pre)},
          {"pre_tokenizer", pre_tokenizer_section(pre)},
          {"post_processor",
           post_processor(tokens, add_bos ? bos : std::nullopt, add_eos ? eos : std::nullopt)},
          {"decoder", decoder_section()},
          {"model", std::move(model)}};
}

Tokenizer tokenizer_from_gguf(const GgufMetadata& m) {
  return Tokenizer::from_json_string(tokenizer_json_from_gguf(m).dump(),
                                     "GGUF file '" + m.source() + "'");
}

nlohmann::json tokenizer_config_from_gguf(const GgufMetadata& m) {
  json c = json::object();
  if (m.has(kChatTemplateKey)) {
    const std::string main = m.get_string(kChatTemplateKey);
    if (m.has(kChatTemplatesKey)) {
      json list = json::array({{{"name", "default"}, {"template", main}}});
      for (const std::string& name : m.get_string_array(kChatTemplatesKey)) {
        const std::string key = std::string(kChatTemplateKey) + "." + name;
        if (!m.has(key)) {
          fail_gguf(
              m, std::string(kChatTemplatesKey) + " names '" + name + "' but there is no " + key);
        }
        list.push_back({{"name", name}, {"template", m.get_string(key)}});
      }
      c["chat_template"] = std::move(list);
    } else {
      c["chat_template"] = main;
    }
  }
  if (m.has("tokenizer.ggml.tokens")) {
    const std::vector<std::string>& tokens = m.get_string_array("tokenizer.ggml.tokens");
    for (const SpecialKind& kind : kSpecialKinds) {
      if (const auto id = gguf_token_id(m, kind.gguf_key, tokens.size()))
        c[std::string(kind.name) + "_token"] = tokens[*id];
    }
  }
  c["add_bos_token"] = gguf_add_bos(m);
  if (m.has(kAddEosKey)) c["add_eos_token"] = m.get_bool(kAddEosKey);
  return c;
}

ChatFormat chat_format_from_gguf(const GgufMetadata& m) {
  const std::string config =
      tokenizer_config_from_gguf(m).dump(-1, ' ', false, json::error_handler_t::replace);
  return detect_chat_format_from_json(config, "GGUF file '" + m.source() + "'");
}

GgufMetadataList gguf_tokenizer_metadata(const nlohmann::json& tokenizer_json,
                                         const nlohmann::json& tokenizer_config,
                                         const nlohmann::json& model_config) {
  try {
    return hf_to_gguf(tokenizer_json, tokenizer_config, model_config);
  } catch (const json::exception& e) {
    // A field of the wrong type or a missing required key deep inside the files.
    throw Error(std::string("malformed tokenizer.json or tokenizer_config.json (") + e.what() +
                ")");
  }
}

}  // namespace dapx
