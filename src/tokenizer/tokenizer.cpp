// Byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json.
//
// Encoding pipeline (matching HF tokenizers for the GPT-2 / Qwen2 / Llama-3 families):
//   1. added tokens are found in the raw text (longest match first) and emitted as-is;
//   2. the text between them is cut into runs of valid UTF-8 and invalid bytes;
//   3. valid runs are NFC-normalised (when the file asks for it), split by the pre-tokenizer
//      patterns and BPE-merged;
//   4. each invalid byte becomes its single-byte token.
// Step 4 is our own choice: HF works on Rust strings and never sees invalid UTF-8. Emitting
// the byte tokens keeps decode(encode(x)) == x for any byte string (NFC aside), which is what
// a byte-level vocabulary promises.
#include "tokenizer/tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace dapx {

using nlohmann::json;

namespace {

// Pieces longer than this are rare (long runs without spaces) and not worth caching.
constexpr std::size_t kMaxCachedPieceBytes = 256;
// Bounds the cache's memory on huge, varied inputs; it is simply cleared when full.
constexpr std::size_t kMaxCacheEntries = 1 << 18;

bool is_ascii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// NFC of valid UTF-8 (utf8proc requires it). Length-based so embedded NULs survive.
std::string nfc(std::string_view text) {
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &result,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(result, &std::free);
  if (n < 0) throw Error(std::string("NFC normalisation failed: ") + utf8proc_errmsg(n));
  return std::string(reinterpret_cast<const char*>(result), static_cast<std::size_t>(n));
}

// Escapes a literal so PCRE2 matches it verbatim (backslash before ASCII punctuation is
// always a literal in PCRE2; non-ASCII bytes need no escaping).
std::string regex_escape(const std::string& literal) {
  std::string out;
  for (const char c : literal) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x80 && !std::isalnum(b)) out += '\\';
    out += c;
  }
  return out;
}

// Token ids as tokenizer.json writes them: non-negative JSON integers. Larger than any real
// vocabulary, and far from INT32_MAX so that "id + 1" cannot overflow.
constexpr long long kMaxTokenId = INT32_MAX / 2;
const std::string kIdRange = " (expected an integer from 0 to " + std::to_string(kMaxTokenId) + ")";

bool valid_id(const json& id) {
  return id.is_number_integer() && id.get<long long>() >= 0 && id.get<long long>() <= kMaxTokenId;
}

std::string type_of(const json& node) {
  if (!node.is_object() || !node.contains("type") || !node["type"].is_string()) return "";
  return node["type"].get<std::string>();
}

}  // namespace

struct Tokenizer::Impl {
  std::string source;
  std::unordered_map<std::string, int> vocab;      // model vocab: piece -> id
  std::unordered_map<std::string, int> added_ids;  // added token content -> id
  std::vector<std::string> pieces;                 // id -> piece ("" where no token)
  std::vector<std::string> bytes;                  // id -> raw bytes
  std::vector<bool> special;
  std::vector<int> special_ids;     // added tokens marked "special": true
  std::array<int, 256> byte_ids{};  // byte -> its single-byte token
  BpeMerges merges;
  bool ignore_merges = false;
  bool nfc = false;
  bool add_prefix_space = false;
  bool byte_level = false;
  PreTokenizer pre;
  AddedTokenMatcher added;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int>> cache;

  [[noreturn]] void fail(const std::string& what) const { throw Error(source + ": " + what); }

  void load(const json& root);
  void load_normalizer(const json& node);
  void load_pre_tokenizer(const json& node);
  void check_decoder(const json& node) const;
  void load_model(const json& model);
  void load_merge(const json& merge, int rank);
  void load_added_tokens(const json& tokens);
  void build_tables();

  void encode_segment(std::string_view text, std::vector<int>& out) const;
  void encode_valid(std::string_view text, std::vector<int>& out) const;
  void encode_piece(std::string_view piece, std::vector<int>& out) const;
  std::vector<int> bpe(std::string_view piece) const;
  void check_id(int id) const;
};

// ---------------------------------------------------------------------------------------
// Loading

void Tokenizer::Impl::load(const json& root) {
  if (!root.is_object()) fail("tokenizer.json must be a JSON object");
  if (!root.contains("model") || !root["model"].is_object()) fail("no \"model\" object");
  if (root.contains("normalizer")) load_normalizer(root["normalizer"]);
  if (root.contains("pre_tokenizer")) load_pre_tokenizer(root["pre_tokenizer"]);
  if (!byte_level) {
    fail("unsupported tokenizer: no ByteLevel pre-tokenizer (only byte-level BPE is supported)");
  }
  if (root.contains("decoder")) check_decoder(root["decoder"]);
  load_model(root["model"]);
  if (root.contains("added_tokens")) load_added_tokens(root["added_tokens"]);
  build_tables();
}

void Tokenizer::Impl::load_normalizer(const json& node) {
  if (node.is_null()) return;
  const std::string type = type_of(node);
  if (type == "NFC") {
    nfc = true;
  } else if (type == "Sequence") {
    for (const json& child : node.at("normalizers")) load_normalizer(child);
  } else {
    fail("unsupported normalizer type \"" + type + "\" (supported: NFC, Sequence)");
  }
}

void Tokenizer::Impl::load_pre_tokenizer(const json& node) {
  if (node.is_null()) return;
  const std::string type = type_of(node);
  if (type == "Sequence") {
    for (const json& child : node.at("pretokenizers")) load_pre_tokenizer(child);
  } else if (type == "Split") {
    const json& pattern = node.at("pattern");
    const std::string behavior = node.value("behavior", "Isolated");
    if (behavior != "Isolated") fail("unsupported Split behavior \"" + behavior + "\"");
    if (node.value("invert", false)) fail("unsupported Split with invert true");
    std::string regex;
    if (pattern.contains("Regex")) {
      regex = pattern["Regex"].get<std::string>();
    } else if (pattern.contains("String")) {
      regex = regex_escape(pattern["String"].get<std::string>());
    } else {
      fail("Split pattern needs \"Regex\" or \"String\"");
    }
    try {
      pre.add_split(regex);
    } catch (const Error& e) {
      fail(e.what());
    }
  } else if (type == "ByteLevel") {
    // HF's defaults for absent fields: add_prefix_space and use_regex are true.
    byte_level = true;
    add_prefix_space = node.value("add_prefix_space", true);
    if (node.value("use_regex", true)) pre.add_split(kGpt2SplitPattern);
  } else {
    fail("unsupported pre_tokenizer type \"" + type + "\" (supported: Sequence, Split, ByteLevel)");
  }
}

void Tokenizer::Impl::check_decoder(const json& node) const {
  // Decoding is always byte-level; only reject decoders that would mean something else.
  if (node.is_null()) return;
  const std::string type = type_of(node);
  if (type != "ByteLevel") {
    fail("unsupported decoder type \"" + type + "\" (only ByteLevel)");
  }
}

void Tokenizer::Impl::load_model(const json& model) {
  const std::string type = model.value("type", model.contains("merges") ? "BPE" : "");
  if (type != "BPE") fail("unsupported model type \"" + type + "\" (only BPE)");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("model has no \"vocab\"");
  if (!model.contains("merges") || !model["merges"].is_array()) fail("model has no \"merges\"");
  for (const char* field : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(field) && model[field].is_string() &&
        !model[field].get_ref<const std::string&>().empty()) {
      fail(std::string("unsupported BPE option ") + field);
    }
  }
  ignore_merges = model.value("ignore_merges", false);

  vocab.reserve(model["vocab"].size());
  for (const auto& [piece, id] : model["vocab"].items()) {
    if (!valid_id(id)) fail("vocab entry \"" + piece + "\" has an invalid id" + kIdRange);
    vocab.emplace(piece, id.get<int>());
  }
  const json& merges_json = model["merges"];
  for (std::size_t rank = 0; rank < merges_json.size(); ++rank) {
    load_merge(merges_json[rank], static_cast<int>(rank));
  }
}

void Tokenizer::Impl::load_merge(const json& merge, int rank) {
  std::string left;
  std::string right;
  if (merge.is_string()) {
    // "a b": byte-level pieces never contain a plain space, so the first one separates.
    const std::string& text = merge.get_ref<const std::string&>();
    const std::size_t space = text.find(' ');
    if (space == std::string::npos)
      fail("merge " + std::to_string(rank) + " \"" + text + "\" is not \"a b\"");
    left = text.substr(0, space);
    right = text.substr(space + 1);
  } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
             merge[1].is_string()) {
    left = merge[0].get<std::string>();
    right = merge[1].get<std::string>();
  } else {
    fail("merge " + std::to_string(rank) + " is neither \"a b\" nor [\"a\", \"b\"]");
  }
  const auto find = [&](const std::string& piece) {
    const auto it = vocab.find(piece);
    if (it == vocab.end()) {
      fail("merge " + std::to_string(rank) + " uses \"" + piece + "\", which is not in the vocab");
    }
    return it->second;
  };
  // Looked up one by one so the error names the first missing piece.
  const int left_id = find(left);
  const int right_id = find(right);
  merges.add(left_id, right_id, find(left + right), rank);
}

void Tokenizer::Impl::load_added_tokens(const json& tokens) {
  if (!tokens.is_array()) fail("\"added_tokens\" must be an array");
  for (const json& token : tokens) {
    const json& id_json = token.at("id");
    if (!valid_id(id_json)) fail("added token with an invalid id" + kIdRange);
    const int id = id_json.get<int>();
    const std::string content = token.at("content").get<std::string>();
    added.add(content, id);
    added_ids[content] = id;
    if (token.value("special", false)) special_ids.push_back(id);
  }
}

void Tokenizer::Impl::build_tables() {
  int size = 0;
  for (const auto& [piece, id] : vocab) size = std::max(size, id + 1);
  for (const auto& [content, id] : added_ids) size = std::max(size, id + 1);
  // The tables below have one slot per id up to the largest: a file defining a few tokens
  // must not make them huge. Real files number their tokens densely from 0.
  const std::size_t defined = vocab.size() + added_ids.size();
  if (static_cast<std::size_t>(size) > 2 * defined) {
    fail("token id " + std::to_string(size - 1) + " is far beyond the " + std::to_string(defined) +
         " tokens the file defines (vocab + added_tokens); ids must be below " +
         std::to_string(2 * defined) + ", numbered from 0");
  }
  pieces.assign(size, "");
  bytes.assign(size, "");
  special.assign(size, false);
  for (const auto& [piece, id] : vocab) {
    pieces[id] = piece;
    bytes[id] = byte_level::decode(piece);
  }
  for (const auto& [content, id] : added_ids) {
    // Added tokens are stored verbatim, not in the byte-level alphabet.
    pieces[id] = content;
    bytes[id] = content;
  }
  for (const int id : special_ids) special[id] = true;
  for (int b = 0; b < 256; ++b) {
    const auto it = vocab.find(byte_level::byte_to_utf8()[b]);
    if (it == vocab.end()) {
      std::ostringstream msg;
      msg << "not a byte-level vocabulary: no token for byte 0x" << std::hex << b;
      fail(msg.str());
    }
    byte_ids[b] = it->second;
  }
}

// ---------------------------------------------------------------------------------------
// Encoding

void Tokenizer::Impl::encode_segment(std::string_view text, std::vector<int>& out) const {
  if (text.empty()) return;
  std::string prefixed;
  if (add_prefix_space && text[0] != ' ') {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  std::size_t run = 0;  // start of the current valid run
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const utf8::Seq seq = utf8::read_sequence(text, pos);
    if (seq.status == utf8::SeqStatus::Valid) {
      pos += seq.length;
      continue;
    }
    encode_valid(text.substr(run, pos - run), out);
    for (std::size_t i = pos; i < pos + seq.length; ++i) {
      out.push_back(byte_ids[static_cast<unsigned char>(text[i])]);
    }
    pos += seq.length;
    run = pos;
  }
  encode_valid(text.substr(run), out);
}

void Tokenizer::Impl::encode_valid(std::string_view text, std::vector<int>& out) const {
  if (text.empty()) return;
  std::string normalized;
  if (nfc && !is_ascii(text)) {
    normalized = dapx::nfc(text);
    text = normalized;
  }
  if (pre.empty()) {
    encode_piece(text, out);
    return;
  }
  for (const std::string_view piece : pre.split(text)) encode_piece(piece, out);
}

void Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<int>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_ids[static_cast<unsigned char>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= kMaxCachedPieceBytes;
  std::string key;
  if (cacheable) {
    key.assign(piece);
    const std::lock_guard<std::mutex> lock(cache_mutex);
    const auto it = cache.find(key);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int> ids = bpe(piece);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    const std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() >= kMaxCacheEntries) cache.clear();
    cache.emplace(std::move(key), std::move(ids));
  }
}

std::vector<int> Tokenizer::Impl::bpe(std::string_view piece) const {
  if (ignore_merges) {
    // Llama-3: a pre-token that is itself a vocab entry is taken whole, even where the merge
    // order would not reach it.
    const auto it = vocab.find(byte_level::encode(piece));
    if (it != vocab.end()) return {it->second};
  }
  std::vector<int> ids;
  ids.reserve(piece.size());
  for (const char c : piece) ids.push_back(byte_ids[static_cast<unsigned char>(c)]);
  merges.apply(ids);
  return ids;
}

void Tokenizer::Impl::check_id(int id) const {
  if (id < 0 || id >= static_cast<int>(pieces.size())) {
    throw Error("token id " + std::to_string(id) + " is out of range for " + source +
                " (vocab size " + std::to_string(pieces.size()) + ")");
  }
}

// ---------------------------------------------------------------------------------------
// Public API

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::filesystem::path& tokenizer_json) {
  std::ifstream in(tokenizer_json, std::ios::binary);
  if (!in) throw Error("cannot open tokenizer file " + tokenizer_json.string());
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw Error("cannot read tokenizer file " + tokenizer_json.string());
  return from_json_string(content.str(), tokenizer_json.string());
}

Tokenizer Tokenizer::from_json_string(const std::string& text, const std::string& source) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    // parse_error, or out_of_range for a number too large for a double (1e400).
    throw Error(source + ": not valid JSON (" + e.what() + ")");
  }
  auto impl = std::make_unique<Impl>();
  impl->source = source;
  try {
    impl->load(root);
  } catch (const json::exception& e) {
    // A field of the wrong type or a missing required key deep inside the file.
    throw Error(source + ": malformed tokenizer.json (" + e.what() + ")");
  }
  return Tokenizer(std::move(impl));
}

std::vector<int> Tokenizer::encode(const std::string& text) const {
  std::vector<int> out;
  out.reserve(text.size() / 3 + 1);
  const std::string_view view(text);
  std::size_t segment = 0;  // start of the text not yet encoded
  std::size_t pos = 0;
  while (pos < view.size()) {
    const AddedTokenMatcher::Match match = impl_->added.longest_at(view, pos);
    if (match.length == 0) {
      ++pos;
      continue;
    }
    impl_->encode_segment(view.substr(segment, pos - segment), out);
    out.push_back(match.id);
    pos += match.length;
    segment = pos;
  }
  impl_->encode_segment(view.substr(segment), out);
  return out;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string out;
  for (const int id : ids) {
    impl_->check_id(id);
    out += impl_->bytes[id];
  }
  return out;
}

std::string Tokenizer::token_bytes(int id) const {
  impl_->check_id(id);
  return impl_->bytes[id];
}

std::string Tokenizer::token_piece(int id) const {
  impl_->check_id(id);
  return impl_->pieces[id];
}

std::optional<int> Tokenizer::token_id(const std::string& piece) const {
  if (const auto it = impl_->added_ids.find(piece); it != impl_->added_ids.end()) {
    return it->second;
  }
  if (const auto it = impl_->vocab.find(piece); it != impl_->vocab.end()) return it->second;
  return std::nullopt;
}

int Tokenizer::vocab_size() const { return static_cast<int>(impl_->pieces.size()); }

bool Tokenizer::is_special(int id) const {
  return id >= 0 && id < vocab_size() && impl_->special[id];
}

}  // namespace dapx
