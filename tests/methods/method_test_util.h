#pragma once
// Helpers shared by the method tests: tiny f32 models, a deterministic prompt, greedy
// generation parameters, and the message of an expected dapx::Error.
#include <memory>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "error_message.h"
#include "methods/method_args.h"
#include "tiny_models.h"
#include "util/error.h"

namespace dapx::testing {

inline std::unique_ptr<LoadedModel> load_f32(Arch arch, uint64_t seed = 7, int64_t chunk = 16) {
  ComputeOptions o;
  o.weight_dtype = at::kFloat;
  o.prefill_chunk = chunk;
  return LoadedModel::load(tiny_model(arch, DType::F32, seed), o);
}

inline std::vector<int> prompt_of(int n, int vocab, int stride = 29, int offset = 3) {
  std::vector<int> t;
  for (int i = 0; i < n; ++i) t.push_back((i * stride + offset) % vocab);
  return t;
}

inline GenerationParams greedy(int n) {
  GenerationParams g;
  g.max_new_tokens = n;
  g.ignore_eos = true;
  return g;
}

// Method options that record the kept positions (info["layers"]), with an optional draft.
inline MethodOptions recording(const LoadedModel* draft = nullptr) {
  MethodOptions o;
  o.record_selection = true;
  o.draft = draft ? &draft->transformer : nullptr;
  return o;
}

using test::error_of;  // the message of the dapx::Error f throws, or "(no error)"

}  // namespace dapx::testing
