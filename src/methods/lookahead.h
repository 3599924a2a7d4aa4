#pragma once
// Greedy lookahead: a model continues the prompt for L tokens with its own full cache. The
// draft's lookahead drives SpecKV; the target's own drives LAQ.
#include <vector>

#include "model/transformer.h"

namespace dapx {

struct Lookahead {
  std::vector<int> tokens;
  double seconds = 0;
  int64_t kv_bytes = 0;  // the generating model's full cache
};

Lookahead greedy_lookahead(const Transformer& model, const std::vector<int>& prompt,
                           int64_t length);

}  // namespace dapx
