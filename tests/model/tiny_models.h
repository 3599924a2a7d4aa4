#pragma once
// Tiny random models of every architecture, written once per test process to a temp dir.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "io/random_model.h"
#include "temp_dir.h"
#include "tokenizer/tokenizer.h"

namespace dapx::testing {

inline std::string corpus() {
  std::ifstream in(std::string(DAPX_DATA_DIR) + "/corpus_en.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline const std::string& tiny_tokenizer_json() {
  static const std::string json = train_byte_level_bpe_json(corpus(), 61);  // vocab 320
  return json;
}

// DIR of a tiny `arch` model stored in `dtype`, with seed `seed`.
// Removes the models this process wrote when it exits.
struct TempModels {
  std::vector<std::filesystem::path> dirs;
  ~TempModels() {
    for (const auto& d : dirs) test::remove_tree(d);
  }
};

inline std::filesystem::path tiny_model(Arch arch, DType dtype = DType::F32, uint64_t seed = 7) {
  const std::string key = short_name(arch) + "-" + dtype_name(dtype) + "-" + std::to_string(seed);
  const auto dir = std::filesystem::temp_directory_path() /
                   ("dapx-test-" + std::to_string(::getpid()) + "-" + key);
  if (!std::filesystem::exists(dir / "config.json")) {
    const Tokenizer tok = Tokenizer::from_json_string(tiny_tokenizer_json(), "tiny");
    ModelShape shape = shape_preset("tiny", arch);
    shape.vocab = tok.vocab_size();
    ModelConfig cfg = make_config(arch, shape);
    cfg.eos_token_ids = {*tok.token_id("<|endoftext|>")};
    write_random_model(dir, cfg, seed, dtype, tiny_tokenizer_json(), "chatml");
    static TempModels created;
    created.dirs.push_back(dir);
  }
  return dir;
}

}  // namespace dapx::testing
