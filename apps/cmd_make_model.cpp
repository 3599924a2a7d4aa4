// dapx make-model: a random-weight Hugging Face directory of a real model's shape, with a
// working tokenizer, for tests, benchmarks and the default demo pair.
#include <iostream>

#include "common.h"
#include "io/random_model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace dapx::cli {
namespace {

struct Flags {
  std::string arch = "qwen2", shape = "tiny", out, tokenizer = "auto", dtype = "bf16",
              chat = "auto";
  uint64_t seed = 0;
  int merges = 500;
  int max_position = 0;  // 0: the preset's
};

// Text the small trained vocabulary is learnt from: plain English shipped with the project.
std::string training_corpus() { return read_file(default_data_dir() + "/corpus_en.txt"); }

std::string tokenizer_json(const Flags& f, Arch arch) {
  std::string which = f.tokenizer;
  if (which == "auto") which = (arch == Arch::Qwen2 || arch == Arch::Qwen3) ? "qwen2" : "llama3";
  if (which == "trained") return train_byte_level_bpe_json(training_corpus(), f.merges);
  if (which == "gpt2" || which == "qwen2" || which == "llama3")
    return read_file(default_data_dir() + "/tokenizers/" + which + "/tokenizer.json");
  return read_file(which);  // a path to a tokenizer.json
}

std::string pick_chat_format(const Flags& f, const Tokenizer& tok) {
  if (f.chat != "auto") return f.chat;
  if (tok.token_id("<|start_header_id|>")) return "llama3";
  if (tok.token_id("<|im_start|>")) return "chatml";
  return "raw";
}

void run(const Flags& f) {
  if (f.out.empty()) throw Error("--out DIR is required");
  const Arch arch = arch_from_short_name(f.arch);
  const std::string tok_json = tokenizer_json(f, arch);
  const Tokenizer tok = Tokenizer::from_json_string(tok_json, "tokenizer for " + f.out);
  ModelShape shape = shape_preset(f.shape, arch);
  if (f.tokenizer == "trained" || shape.vocab < tok.vocab_size()) shape.vocab = tok.vocab_size();
  if (f.max_position > 0) shape.max_pos = f.max_position;
  ModelConfig cfg = make_config(arch, shape);
  for (const char* eos : {"<|endoftext|>", "<|im_end|>", "<|end_of_text|>", "<|eot_id|>"})
    if (auto id = tok.token_id(eos)) cfg.eos_token_ids.push_back(*id);
  if (auto bos = tok.token_id("<|begin_of_text|>")) cfg.bos_token_id = *bos;
  const DType dtype = f.dtype == "f32" ? DType::F32 : f.dtype == "f16" ? DType::F16 : DType::BF16;
  cfg.torch_dtype = f.dtype == "f32" ? "float32" : f.dtype == "f16" ? "float16" : "bfloat16";
  write_random_model(f.out, cfg, f.seed, dtype, tok_json, pick_chat_format(f, tok));
  std::cerr << "wrote " << f.out << ": " << f.arch << " " << f.shape << ", vocab " << cfg.vocab_size
            << ", " << cfg.num_layers << " layers, seed " << f.seed << "\n";
}

}  // namespace

void register_make_model(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "make-model", "Write a random-weight HF model directory of a real model's shape");
  cmd->add_option("--arch", f->arch, "llama, qwen2, qwen3 or mistral")
      ->check(CLI::IsMember({"llama", "qwen2", "qwen3", "mistral"}));
  std::string shapes;
  for (const std::string& n : shape_preset_names()) shapes += (shapes.empty() ? "" : ", ") + n;
  cmd->add_option("--shape", f->shape, shapes);
  cmd->add_option("--seed", f->seed, "Weight seed (same seed, same weights)")->check(seed_value());
  cmd->add_option("--out,-o", f->out, "Output directory")->required();
  cmd->add_option("--tokenizer", f->tokenizer,
                  "auto (the arch's real vocabulary), trained (small BPE learnt from the bundled "
                  "corpus), gpt2, qwen2, llama3, or a path to a tokenizer.json");
  cmd->add_option("--merges", f->merges, "BPE merges for --tokenizer trained")
      ->check(int_range(1, 100000));
  cmd->add_option("--max-position", f->max_position,
                  "Context length (max_position_embeddings); default: the preset's")
      ->check(int_range(1, 1 << 24));
  cmd->add_option("--dtype", f->dtype, "Stored dtype: bf16, f16 or f32")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  cmd->add_option("--chat-format", f->chat, "auto, chatml, llama3 or raw")
      ->check(CLI::IsMember({"auto", "chatml", "llama3", "raw"}));
  cmd->callback([f] { run(*f); });
}

}  // namespace dapx::cli
