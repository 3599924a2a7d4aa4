#include "tokenizer/added_tokens.h"

#include <algorithm>

namespace dapx {

int AddedTokenMatcher::child(int node, unsigned char byte) const {
  const auto& children = nodes_[node].children;
  const auto it = std::lower_bound(children.begin(), children.end(), byte,
                                   [](const auto& c, unsigned char b) { return c.first < b; });
  return it != children.end() && it->first == byte ? it->second : -1;
}

void AddedTokenMatcher::add(std::string_view content, int id) {
  if (content.empty()) return;  // an empty token would match everywhere
  first_byte_[static_cast<unsigned char>(content[0])] = true;
  int node = 0;
  for (const char ch : content) {
    const auto byte = static_cast<unsigned char>(ch);
    int next = child(node, byte);
    if (next < 0) {
      next = static_cast<int>(nodes_.size());
      nodes_.emplace_back();
      auto& children = nodes_[node].children;
      const auto at = std::lower_bound(children.begin(), children.end(), byte,
                                       [](const auto& c, unsigned char b) { return c.first < b; });
      children.insert(at, {byte, next});
    }
    node = next;
  }
  nodes_[node].id = id;
}

AddedTokenMatcher::Match AddedTokenMatcher::longest_at(std::string_view text,
                                                       std::size_t pos) const {
  Match best;
  if (pos >= text.size() || !first_byte_[static_cast<unsigned char>(text[pos])]) return best;
  int node = 0;
  for (std::size_t i = pos; i < text.size(); ++i) {
    node = child(node, static_cast<unsigned char>(text[i]));
    if (node < 0) break;
    if (nodes_[node].id >= 0) best = {i + 1 - pos, nodes_[node].id};
  }
  return best;
}

}  // namespace dapx
