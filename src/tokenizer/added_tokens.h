#pragma once
// Finds added/special tokens (e.g. "<|im_start|>") in raw text: longest match wins.
#include <array>
#include <cstddef>
#include <string_view>
#include <vector>

namespace dapx {

class AddedTokenMatcher {
 public:
  void add(std::string_view content, int id);
  bool empty() const { return nodes_.size() == 1; }

  struct Match {
    std::size_t length = 0;  // 0: no token starts here
    int id = -1;
  };
  // The longest added token that starts at `pos` of `text`.
  Match longest_at(std::string_view text, std::size_t pos) const;

 private:
  // A byte trie; the children are few, so a sorted vector beats a map here.
  struct Node {
    std::vector<std::pair<unsigned char, int>> children;
    int id = -1;
  };
  int child(int node, unsigned char byte) const;

  std::vector<Node> nodes_{Node{}};
  std::array<bool, 256> first_byte_{};  // cheap rejection for most text positions
};

}  // namespace dapx
