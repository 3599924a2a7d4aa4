// A small byte-level BPE trainer for tiny test models (make-model). Classic algorithm:
// count adjacent symbol pairs over the pre-tokenized words (weighted by word frequency),
// merge the most frequent pair, repeat. Counts are updated incrementally, touching only the
// words that contain the merged pair, so a 50 KB corpus trains in milliseconds.
#include <algorithm>
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace dapx {

namespace {

using PairKey = std::uint64_t;

PairKey pair_key(int left, int right) {
  return (static_cast<PairKey>(static_cast<std::uint32_t>(left)) << 32) |
         static_cast<std::uint32_t>(right);
}
int pair_left(PairKey key) { return static_cast<int>(key >> 32); }
int pair_right(PairKey key) { return static_cast<int>(key & 0xFFFFFFFFu); }

struct Word {
  std::vector<int> symbols;
  std::int64_t count = 0;
  int last_visit = -1;  // merge step that last processed this word (dedupes word lists)
};

// Most frequent first; ties go to the smallest (left id, right id) so training is
// deterministic whatever the hash-map iteration order.
struct HeapEntry {
  std::int64_t count;
  PairKey key;
  bool operator<(const HeapEntry& other) const {
    return count != other.count ? count < other.count : key > other.key;
  }
};

// Byte-level pre-tokenization of the corpus into distinct words with their counts. Invalid
// UTF-8 bytes are left out: they could never form a pair across the split anyway.
std::unordered_map<std::string, std::int64_t> count_words(const std::string& corpus) {
  const SplitRegex regex(kGpt2SplitPattern);
  std::unordered_map<std::string, std::int64_t> counts;
  std::vector<std::string_view> pieces;
  const std::string_view text(corpus);
  std::size_t run = 0;
  std::size_t pos = 0;
  const auto flush_run = [&](std::size_t end) {
    pieces.clear();
    if (end > run) regex.split(text.substr(run, end - run), pieces);
    for (const std::string_view piece : pieces) ++counts[std::string(piece)];
  };
  while (pos < text.size()) {
    const utf8::Seq seq = utf8::read_sequence(text, pos);
    if (seq.status != utf8::SeqStatus::Valid) {
      flush_run(pos);
      run = pos + seq.length;
    }
    pos += seq.length;
  }
  flush_run(text.size());
  return counts;
}

class Trainer {
 public:
  explicit Trainer(const std::string& corpus);
  // Returns false when no pair is left to merge.
  bool merge_step(int step);
  nlohmann::ordered_json to_json() const;

 private:
  void add_pairs(int word, int sign);
  void push(PairKey key);

  std::vector<std::string> pieces_;  // id -> byte-level piece
  std::unordered_map<std::string, int> piece_ids_;
  std::vector<Word> words_;
  std::unordered_map<PairKey, std::int64_t> pair_counts_;
  std::unordered_map<PairKey, std::vector<int>> pair_words_;  // may hold stale entries
  std::priority_queue<HeapEntry> heap_;
  std::vector<std::pair<int, int>> merges_;
};

Trainer::Trainer(const std::string& corpus) {
  // The 256 byte symbols come first, ordered by their byte-level character (GPT-2's order).
  std::vector<int> byte_order(256);
  for (int b = 0; b < 256; ++b) byte_order[b] = b;
  const auto& cp = byte_level::byte_to_codepoint();
  std::sort(byte_order.begin(), byte_order.end(), [&](int a, int b) { return cp[a] < cp[b]; });
  std::array<int, 256> byte_id{};
  for (int id = 0; id < 256; ++id) {
    byte_id[byte_order[id]] = id;
    pieces_.push_back(byte_level::byte_to_utf8()[byte_order[id]]);
    piece_ids_.emplace(pieces_.back(), id);
  }

  for (const auto& [text, count] : count_words(corpus)) {
    Word word;
    word.count = count;
    for (const char c : text) word.symbols.push_back(byte_id[static_cast<unsigned char>(c)]);
    words_.push_back(std::move(word));
  }
  // Word order comes from a hash map; sort so every later step is reproducible.
  std::sort(words_.begin(), words_.end(),
            [](const Word& a, const Word& b) { return a.symbols < b.symbols; });
  for (int w = 0; w < static_cast<int>(words_.size()); ++w) add_pairs(w, +1);
  for (const auto& [key, count] : pair_counts_) push(key);
}

void Trainer::add_pairs(int w, int sign) {
  const Word& word = words_[w];
  for (std::size_t i = 0; i + 1 < word.symbols.size(); ++i) {
    const PairKey key = pair_key(word.symbols[i], word.symbols[i + 1]);
    pair_counts_[key] += sign * word.count;
    if (sign > 0) pair_words_[key].push_back(w);
  }
}

void Trainer::push(PairKey key) {
  const std::int64_t count = pair_counts_[key];
  if (count > 0) heap_.push({count, key});
}

bool Trainer::merge_step(int step) {
  // Skip heap entries whose count has changed since they were pushed.
  while (!heap_.empty() && pair_counts_[heap_.top().key] != heap_.top().count) heap_.pop();
  if (heap_.empty()) return false;
  const PairKey key = heap_.top().key;
  heap_.pop();
  const int left = pair_left(key);
  const int right = pair_right(key);

  const std::string merged = pieces_[left] + pieces_[right];
  auto [it, inserted] = piece_ids_.emplace(merged, static_cast<int>(pieces_.size()));
  if (inserted) pieces_.push_back(merged);
  const int merged_id = it->second;
  merges_.emplace_back(left, right);

  std::unordered_set<PairKey> touched;
  const std::vector<int> candidates = std::move(pair_words_[key]);
  pair_words_.erase(key);
  for (const int w : candidates) {
    Word& word = words_[w];
    if (word.last_visit == step) continue;
    word.last_visit = step;
    for (std::size_t i = 0; i + 1 < word.symbols.size(); ++i) {
      touched.insert(pair_key(word.symbols[i], word.symbols[i + 1]));
    }
    add_pairs(w, -1);
    std::vector<int> next;
    next.reserve(word.symbols.size());
    for (std::size_t i = 0; i < word.symbols.size(); ++i) {
      if (i + 1 < word.symbols.size() && word.symbols[i] == left && word.symbols[i + 1] == right) {
        next.push_back(merged_id);
        ++i;
      } else {
        next.push_back(word.symbols[i]);
      }
    }
    word.symbols = std::move(next);
    add_pairs(w, +1);
    for (std::size_t i = 0; i + 1 < word.symbols.size(); ++i) {
      touched.insert(pair_key(word.symbols[i], word.symbols[i + 1]));
    }
  }
  // Sorted so the heap sees the same pushes in the same order on every platform.
  std::vector<PairKey> changed(touched.begin(), touched.end());
  std::sort(changed.begin(), changed.end());
  for (const PairKey k : changed) push(k);
  return true;
}

nlohmann::ordered_json Trainer::to_json() const {
  using nlohmann::ordered_json;
  ordered_json vocab = ordered_json::object();
  for (int id = 0; id < static_cast<int>(pieces_.size()); ++id) vocab[pieces_[id]] = id;
  ordered_json merges = ordered_json::array();
  for (const auto& [left, right] : merges_) merges.push_back(pieces_[left] + " " + pieces_[right]);

  ordered_json added = ordered_json::array();
  int next_id = static_cast<int>(pieces_.size());
  for (const char* content : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    added.push_back({{"id", next_id++},
                     {"content", content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  const ordered_json byte_level = {{"type", "ByteLevel"},
                                   {"add_prefix_space", false},
                                   {"trim_offsets", true},
                                   {"use_regex", true}};
  ordered_json root;
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  root["added_tokens"] = added;
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = byte_level;
  root["post_processor"] = nullptr;
  root["decoder"] = byte_level;
  root["model"] = {{"type", "BPE"},
                   {"dropout", nullptr},
                   {"unk_token", nullptr},
                   {"continuing_subword_prefix", ""},
                   {"end_of_word_suffix", ""},
                   {"fuse_unk", false},
                   {"byte_fallback", false},
                   {"ignore_merges", false},
                   {"vocab", vocab},
                   {"merges", merges}};
  return root;
}

}  // namespace

std::string train_byte_level_bpe_json(const std::string& corpus, int num_merges) {
  if (num_merges < 0) {
    throw Error("BPE training: num_merges must be >= 0, got " + std::to_string(num_merges));
  }
  Trainer trainer(corpus);
  for (int step = 0; step < num_merges; ++step) {
    // A corpus too small for the requested merges simply yields a smaller vocabulary.
    if (!trainer.merge_step(step)) break;
  }
  return trainer.to_json().dump();
}

}  // namespace dapx
