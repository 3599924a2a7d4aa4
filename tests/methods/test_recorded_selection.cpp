// Regression guard: every method's kept cache entries, kept prompt positions and generated
// tokens on a fixed prompt with tiny random models equal a recording made in the repository.
// The recording (data/recorded_selection.json) was made with the code *before* the method
// catalogue refactor (commit 731fa46 plus this test), so a refactor that changes what any
// method keeps fails here; tova and knorm, added later, were recorded as they stood in 0988956.
// A method without a recording fails too. To re-record after an intended change of semantics:
//   export DAPX_RECORD_SELECTIONS=tests/methods/data/recorded_selection.json
//   build/tests/methods/test_methods --gtest_filter='RecordedSelection.*'
// and say in the commit why the selection changed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "engine/generator.h"
#include "method_test_util.h"
#include "methods/catalogue.h"

namespace dapx {
namespace {

// The parameters each method runs with: small budgets so that every method compresses.
nlohmann::json params_of(const std::string& name) {
  if (method_spec(name).family != Family::KV) {
    nlohmann::json p = {{"budget", 40}, {"window", 8}, {"first_layer", 1}, {"neighbors", 2}};
    if (name == "speckv-pc") p["kv_budget"] = 36;  // its SpecKV stage keeps the default window (32)
    if (name == "random-pc") p = {{"budget", 40}, {"window", 8}, {"selection_seed", 3}};
    if (name == "ppl-pc") p = {{"budget", 40}, {"window", 8}};
    return p;
  }
  if (name == "full") return nlohmann::json::object();
  if (name == "streaming") return {{"budget", 24}};
  return {{"budget", 24}, {"window", 8}};
}

nlohmann::json run(const std::string& name, const LoadedModel& target, const LoadedModel& draft,
                   const std::vector<int>& prompt) {
  auto method = make_method(name, params_of(name), testing::recording(&draft));
  const GenerationResult r = generate(target, *method, prompt, testing::greedy(6));
  nlohmann::json out = {{"tokens", r.tokens}};
  for (const char* key : {"layers", "kept_prompt_positions", "lookahead_tokens"})
    if (r.method_info.contains(key)) out[key] = r.method_info.at(key);
  return out;
}

TEST(RecordedSelection, EveryMethodKeepsWhatItKeptBeforeTheRefactor) {
  auto target = testing::load_f32(Arch::Qwen2, 7, 16);
  auto draft = testing::load_f32(Arch::Qwen2, 8, 16);
  const auto prompt = testing::prompt_of(80, target->config.vocab_size, 41, 5);
  nlohmann::json got = nlohmann::json::object();
  for (const std::string& name : method_names()) got[name] = run(name, *target, *draft, prompt);

  const std::string path = std::string(DAPX_TEST_SOURCE_DIR) + "/data/recorded_selection.json";
  if (const char* out = std::getenv("DAPX_RECORD_SELECTIONS")) {
    std::ofstream(out) << got.dump(1) << "\n";
    GTEST_SKIP() << "recorded to " << out;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing " << path;
  const nlohmann::json want = nlohmann::json::parse(in);
  for (const auto& [name, unused] : got.items())
    EXPECT_TRUE(want.contains(name)) << "method " << name << " has no recording: record it (above)";
  for (const auto& [name, expected] : want.items()) {
    ASSERT_TRUE(got.contains(name)) << "method " << name << " disappeared";
    for (const auto& [key, value] : expected.items())
      EXPECT_EQ(got[name][key], value) << name << ": " << key << " differs from the recording";
  }
}

}  // namespace
}  // namespace dapx
