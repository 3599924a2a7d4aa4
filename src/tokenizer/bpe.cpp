#include "tokenizer/bpe.h"

#include <functional>
#include <queue>

namespace dapx {

void BpeMerges::add(int left, int right, int merged, int rank) {
  merges_.emplace(key(left, right), Merge{rank, merged});
}

const BpeMerges::Merge* BpeMerges::find(int left, int right) const {
  const auto it = merges_.find(key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

namespace {

// A symbol of the word being merged, kept in a doubly linked list so that merging is O(1).
struct Symbol {
  int id;    // -1 once merged into its left neighbour
  int prev;  // index of the previous live symbol, -1 at the start
  int next;  // index of the next live symbol, -1 at the end
};

// A pair that could be merged. It may go stale when a neighbour merges first; the ids it
// recorded tell (symbols only ever grow, so an id never comes back).
struct Candidate {
  int rank;
  int left;
  int right;
  int left_id;
  int right_id;
  bool operator>(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : left > other.left;
  }
};

}  // namespace

void BpeMerges::apply(std::vector<int>& ids) const {
  const int n = static_cast<int>(ids.size());
  if (n < 2) return;
  std::vector<Symbol> symbols(n);
  for (int i = 0; i < n; ++i) symbols[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1};

  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    if (const Merge* m = find(symbols[left].id, symbols[right].id)) {
      queue.push({m->rank, left, right, symbols[left].id, symbols[right].id});
    }
  };
  for (int i = 0; i + 1 < n; ++i) consider(i, i + 1);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.left];
    Symbol& right = symbols[c.right];
    if (left.id != c.left_id || right.id != c.right_id || left.next != c.right) continue;
    left.id = find(c.left_id, c.right_id)->merged;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    right.id = -1;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }

  ids.clear();
  for (int i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

}  // namespace dapx
