#pragma once
// Methods by name, with the parameters the CLI exposes. Defaults are each method's own
// (SnapKV: window 32, kernel 7, max pool, max reduction; H2O: no pooling; StreamingLLM: 4 sinks).
#include <memory>
#include <string>
#include <vector>

#include "methods/method.h"

namespace dapx {

struct MethodParams {
  int64_t budget = 256;  // KV entries kept per head for the prompt, window included
  int64_t window = -1;   // -1: the method's default
  int64_t kernel = -1;
  std::string pool;    // "max", "avg", "none"; empty: default
  std::string reduce;  // "max", "mean"; empty: default
  int64_t sinks = 4;   // StreamingLLM
  double pyramid_beta = 20;
  bool record_selection = false;  // fill info["layers"] with the kept positions
};

std::unique_ptr<Method> make_method(const std::string& name, const MethodParams& p);
std::vector<std::string> method_names();

}  // namespace dapx
