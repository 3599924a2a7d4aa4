#pragma once
// BPE merge table and the rank-ordered merge loop.
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace dapx {

class BpeMerges {
 public:
  // Later duplicates of a pair are ignored: the first (lowest) rank wins.
  void add(int left, int right, int merged, int rank);
  std::size_t size() const { return merges_.size(); }
  // Repeatedly merges the adjacent pair with the lowest rank (leftmost first among equal
  // ranks) until no pair is in the table. O(n log n) in the number of symbols.
  void apply(std::vector<int>& ids) const;

 private:
  struct Merge {
    int rank;
    int merged;
  };
  static std::uint64_t key(int left, int right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
           static_cast<std::uint32_t>(right);
  }
  const Merge* find(int left, int right) const;

  std::unordered_map<std::uint64_t, Merge> merges_;
};

}  // namespace dapx
