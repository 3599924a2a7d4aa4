// dapx generate: one prompt in, text out (streamed), optional JSON result with stats.
#include <fstream>
#include <iostream>
#include <memory>

#include "common.h"
#include "engine/generator.h"
#include "method_flags.h"
#include "methods/catalogue.h"
#include "util/error.h"

namespace dapx::cli {
namespace {

struct GenerateFlags {
  std::string model, prompt, prompt_file, system, chat_format = "auto", method = "full";
  std::string dump_selection, draft, prefix_cache_dir, prefix_cache_dir_bytes;
  MethodFlags method_flags;
  bool chat = false, json = false, quiet = false, show_compressed = false;
  GenerationParams gen;
  RuntimeFlags runtime;
};

std::vector<int> build_prompt(const GenerateFlags& f, const LoadedModel& m) {
  if (!f.prompt.empty() && !f.prompt_file.empty())
    throw Error("give either --prompt or --prompt-file, not both");
  std::string text = f.prompt_file.empty() ? f.prompt : read_prompt_file(f.prompt_file, m.config);
  if (text.empty()) throw Error("the prompt is empty: pass --prompt TEXT or --prompt-file FILE");
  if (f.chat) {
    ChatFormat fmt = f.chat_format == "auto" ? m.chat_format : chat_format_from_name(f.chat_format);
    if (f.chat_format == "auto" && fmt == ChatFormat::Raw) {
      const std::string config = (m.dir / "tokenizer_config.json").string();
      std::cerr << "[dapx] warning: --chat: "
                << (chat_template_text(m.dir).empty()
                        ? "the model has no chat template in " + config
                        : "the chat template in " + config +
                              " is neither ChatML nor Llama 3, the formats dapx renders")
                << "; the prompt is sent as raw text (choose one with --chat-format)\n";
    }
    std::vector<ChatMessage> msgs;
    if (!f.system.empty()) msgs.push_back({"system", f.system});
    msgs.push_back({"user", text});
    text = apply_chat_format(fmt, msgs, true);
  }
  return m.tokenizer.encode(text);
}

// --dump-selection: the kept original positions per layer and KV head. A prompt method's
// target saw the compressed prompt, so its cache positions index that prompt: they are mapped
// back to positions of the original prompt.
void write_selection(const std::string& path, const std::string& method, const ModelConfig& cfg,
                     const std::vector<int>& prompt, const GenerationResult& r) {
  nlohmann::json layers = r.method_info.value("layers", nlohmann::json::array());
  const nlohmann::json kept_prompt =
      r.method_info.value("kept_prompt_positions", nlohmann::json::array());
  if (layers.empty()) {  // the method kept everything it read
    std::vector<int64_t> all(kept_prompt.empty() ? prompt.size() : kept_prompt.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    for (int l = 0; l < cfg.num_layers; ++l)
      layers.push_back(
          {{"layer", l}, {"kept", std::vector<std::vector<int64_t>>(cfg.num_kv_heads, all)}});
  }
  if (!kept_prompt.empty())
    for (auto& layer : layers)
      for (auto& head : layer["kept"])
        for (auto& pos : head) pos = kept_prompt.at(pos.get<size_t>());
  std::ofstream out(path);
  if (!out) throw Error("cannot write --dump-selection file '" + path + "'");
  nlohmann::json dump = {{"method", method}, {"prompt_tokens", prompt.size()}, {"layers", layers}};
  if (!kept_prompt.empty()) dump["kept_prompt_positions"] = kept_prompt;  // what the target read
  out << dump.dump() << "\n";
}

// The prefill GEMM's dtype this run used (--gemm auto resolved; a GPU multiplies in the
// weight dtype).
std::string gemm_used(const LoadedModel& m, const ComputeOptions& opts, const RuntimeFlags& r) {
  if (!opts.device.is_cpu()) return r.dtype;
  return m.transformer.linear_format().gemm == at::kBFloat16 ? "bf16" : "f32";
}

void run(const GenerateFlags& f) {
  const int64_t dir_bytes =  // -1: PrefixDisk's default
      f.prefix_cache_dir_bytes.empty() ? -1
      : f.prefix_cache_dir_bytes == "0"
          ? 0
          : parse_bytes(f.prefix_cache_dir_bytes, "--prefix-cache-dir-bytes");
  const ComputeOptions opts = apply_runtime_flags(f.runtime);
  const auto [model, draft] = load_target_and_draft(f.model, f.draft, opts);
  const std::vector<int> prompt = build_prompt(f, *model);
  MethodOptions options;
  options.record_selection = !f.dump_selection.empty();
  options.draft = draft ? &draft->transformer : nullptr;
  if (draft && !method_spec(f.method).needs_draft)
    std::cerr << "[dapx] warning: --method " << f.method << " does not read the draft\n";
  auto method = make_method(f.method, method_params_from_flags(f.method, f.method_flags), options);
  const bool stream = !f.quiet && !f.json;
  // --prefix-cache-dir: the prompt's blocks read from and written to the folder (no RAM kept
  // beyond this run: the folder is what a second run on the same document finds).
  std::unique_ptr<PrefixCache> cache, draft_cache;
  GenerationParams gen = f.gen;
  if (!f.prefix_cache_dir.empty()) {
    cache = std::make_unique<PrefixCache>(0, opts.prefill_chunk);
    attach_prefix_disk(*cache, *model, f.prefix_cache_dir);
    gen.prefix_cache = cache.get();
    if (draft) {
      draft_cache = std::make_unique<PrefixCache>(0, opts.prefill_chunk);
      attach_prefix_disk(*draft_cache, *draft, f.prefix_cache_dir);
      gen.draft_prefix_cache = draft_cache.get();
    }
    if (dir_bytes >= 0)  // both bound the whole folder
      for (PrefixCache* c : {cache.get(), draft_cache.get()})
        if (c) c->set_disk_max_bytes(dir_bytes);
  }
  GenerationResult r = generate(*model, *method, prompt, gen, [&](const std::string& s) {
    if (stream) std::cout << s << std::flush;
  });
  if (stream) std::cout << "\n";
  if (draft) count_draft_weights(r.stats, draft->transformer);
  if (!f.dump_selection.empty())
    write_selection(f.dump_selection, method->name(), model->config, prompt, r);
  r.method_info.erase("layers");  // in the dump file, not the result
  if (r.method_info.contains("compressed_prompt_tokens")) {
    const auto ids = r.method_info["compressed_prompt_tokens"].get<std::vector<int>>();
    if (f.show_compressed)
      std::cerr << "[dapx] compressed prompt (" << ids.size() << " of " << prompt.size()
                << " tokens):\n"
                << model->tokenizer.decode(ids) << "\n[dapx] end of compressed prompt\n";
    r.method_info.erase("compressed_prompt_tokens");
    r.method_info.erase("kept_prompt_positions");  // in --dump-selection
  }
  if (r.method_info.contains("lookahead_tokens"))
    r.method_info["lookahead_text"] =
        model->tokenizer.decode(r.method_info["lookahead_tokens"].get<std::vector<int>>());
  if (f.json) {
    nlohmann::json j = {{"text", r.text},
                        {"tokens", r.tokens},
                        {"method", method->name()},
                        {"model", f.model},
                        {"dtype", f.runtime.dtype},
                        {"kv_dtype", f.runtime.kv_dtype},
                        {"weights", f.runtime.weights},
                        {"gemm", gemm_used(*model, opts, f.runtime)},
                        {"threads", at::get_num_threads()},
                        {"stats", r.stats.to_json()},
                        {"method_info", r.method_info}};
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else if (!f.quiet) {
    const auto& s = r.stats;
    std::cerr << "[dapx] " << s.prompt_tokens << " prompt tokens, " << s.generated_tokens
              << " generated (" << s.finish_reason << "); TTFT " << s.ttft_s << " s, "
              << (s.tpot_s > 0 ? 1.0 / s.tpot_s : 0.0) << " tok/s decode, KV "
              << s.kv_bytes / 1048576.0 << " MiB, peak RSS " << s.peak_rss_bytes / 1048576.0
              << " MiB, tensor peak " << s.tensor_peak_bytes / 1048576.0 << " MiB\n";
  }
}

}  // namespace

void register_generate(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  CLI::App* cmd =
      app.add_subcommand("generate", "Generate text from a prompt with a chosen method");
  cmd->add_option("--model,-m", f->model, "Target model: a Hugging Face directory")->required();
  cmd->add_option("--prompt,-p", f->prompt, "Prompt text");
  cmd->add_option("--prompt-file,-f", f->prompt_file, "Read the prompt from a file");
  cmd->add_flag("--chat", f->chat, "Wrap the prompt as a user turn in the model's chat format");
  cmd->add_option("--chat-format", f->chat_format,
                  "auto (from tokenizer_config.json), chatml, llama3 or raw")
      ->check(CLI::IsMember({"auto", "chatml", "llama3", "raw"}));
  cmd->add_option("--system", f->system, "System message (with --chat)");
  cmd->add_option("--draft,-d", f->draft,
                  "Draft model directory (same tokenizer family) for draft-based methods");
  cmd->add_option("--method", f->method, "Method: " + method_list_help());
  cmd->add_flag("--show-compressed", f->show_compressed,
                "Prompt methods: print the compressed prompt text on stderr");
  add_method_flags(*cmd, f->method_flags);
  cmd->add_option("--prefix-cache-dir", f->prefix_cache_dir,
                  "Read the prompt's cached blocks (full K/V of prefill chunks) from this folder "
                  "and write the new ones: a second run on the same document prefills only what "
                  "follows it (files are named for the model; bad ones are logged and recomputed)");
  cmd->add_option("--prefix-cache-dir-bytes", f->prefix_cache_dir_bytes,
                  "Bound of --prefix-cache-dir's block files, e.g. 20G (default: half of the "
                  "disk's free space at start, counting the folder's blocks as free; 0: "
                  "unbounded): after a write, the least recently used files are deleted");
  cmd->add_option("--dump-selection", f->dump_selection,
                  "Write the kept original positions per layer and KV head as JSON to this file");
  cmd->add_option("--max-new-tokens,-n", f->gen.max_new_tokens, "Tokens to generate at most")
      ->check(int_range(1, 1 << 24));
  cmd->add_option("--temperature", f->gen.sampling.temperature, "0 = greedy (default)");
  cmd->add_option("--top-k", f->gen.sampling.top_k,
                  "Sample among the k most likely tokens (0 = all)");
  cmd->add_option("--top-p", f->gen.sampling.top_p, "Nucleus sampling mass (1 = all)");
  cmd->add_option("--seed", f->gen.sampling.seed, "Sampling seed")->check(seed_value());
  cmd->add_option("--stop", f->gen.stop, "Stop when this string appears (repeatable)");
  cmd->add_flag("--ignore-eos", f->gen.ignore_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", f->json,
                "Print a JSON result (text, tokens, stats) instead of streaming");
  cmd->add_flag("--quiet,-q", f->quiet, "Print nothing but errors (for timing runs)");
  add_runtime_flags(*cmd, f->runtime);
  cmd->callback([f] { run(*f); });
}

}  // namespace dapx::cli
