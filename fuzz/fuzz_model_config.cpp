// Fuzz target: config.json (+ generation_config.json) -> ModelConfig. The input is config.json,
// optionally followed by a NUL byte and generation_config.json (JSON text never holds a raw
// NUL). The config text goes through ModelConfig::from_json; an accepted config must satisfy
// the documented invariants and survive to_json -> from_json and a trip through JSON text
// unchanged, and ModelConfig::load on the same files (which adds generation_config.json's
// token ids) must agree with it. dapx::Error is the expected rejection; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "io/model_config.h"
#include "util/error.h"

namespace {

using namespace dapx;

void check_invariants(const ModelConfig& c) {
  FUZZ_CHECK(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0, "sizes");
  FUZZ_CHECK(c.num_layers > 0 && c.num_heads > 0 && c.num_kv_heads > 0, "counts");
  FUZZ_CHECK(c.num_heads % c.num_kv_heads == 0 && c.group_size() >= 1, "heads");
  FUZZ_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, "head_dim");
  FUZZ_CHECK(c.rms_norm_eps > 0 && c.rope_theta > 0, "eps/theta");
  FUZZ_CHECK(c.max_position_embeddings > 0, "max_position_embeddings");
  if (c.rope_scaling) {
    FUZZ_CHECK(c.rope_scaling->high_freq_factor > c.rope_scaling->low_freq_factor, "rope");
    FUZZ_CHECK(c.rope_scaling->original_max_position_embeddings > 0, "rope");
  }
  for (const int id : c.eos_token_ids) FUZZ_CHECK(id >= 0, "eos id");
}

void check_round_trip(const ModelConfig& c) {
  const nlohmann::json j = c.to_json();
  FUZZ_CHECK(ModelConfig::from_json(j) == c, j.dump());
  FUZZ_CHECK(ModelConfig::from_json(nlohmann::json::parse(j.dump())) == c, j.dump());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = fuzz::as_string(data, size);
  const size_t nul = input.find('\0');
  const std::string config_text = input.substr(0, nul);
  nlohmann::json config_json;
  try {
    config_json = nlohmann::json::parse(config_text);
  } catch (const nlohmann::json::exception&) {
    return 0;  // not JSON: load() reports it as such (not this target's subject)
  }
  ModelConfig c;
  try {
    c = ModelConfig::from_json(config_json, "fuzz/config.json");
  } catch (const Error&) {
    return 0;
  }
  check_invariants(c);
  check_round_trip(c);

  // The accepted config through the files, with generation_config.json when given.
  static const std::filesystem::path dir = fuzz::scratch_dir();
  test::write_file(dir / "config.json", config_text);
  if (nul == std::string::npos) {
    std::filesystem::remove(dir / "generation_config.json");
  } else {
    test::write_file(dir / "generation_config.json", input.substr(nul + 1));
  }
  ModelConfig loaded;
  try {
    loaded = ModelConfig::load(dir);
  } catch (const Error&) {
    FUZZ_CHECK(nul != std::string::npos, "load() rejected a config from_json accepted");
    return 0;  // generation_config.json rejected
  }
  check_invariants(loaded);
  check_round_trip(loaded);
  FUZZ_CHECK(loaded.eos_token_ids.size() >= c.eos_token_ids.size(), "eos ids kept");
  ModelConfig without_generation = loaded;
  without_generation.eos_token_ids = c.eos_token_ids;
  without_generation.bos_token_id = c.bos_token_id;
  FUZZ_CHECK(without_generation == c, "load() agrees with from_json()");
  return 0;
}
