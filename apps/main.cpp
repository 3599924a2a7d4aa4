// dapx: draft-based approximate inference for long-context LLMs.
#include <CLI/CLI.hpp>
#include <iostream>

#include "engine/heap.h"
#include "util/error.h"

namespace dapx::cli {
void register_generate(CLI::App& app);
void register_make_model(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_train(CLI::App& app);
void register_convert(CLI::App& app);
void register_eval(CLI::App& app);
void register_demo(CLI::App& app);
void register_analyze(CLI::App& app);
void register_methods(CLI::App& app);
#ifdef DAPX_SERVER
void register_serve(CLI::App& app);
void register_bench_serve(CLI::App& app);
#endif
void register_bench(CLI::App& app);
std::string version_text();
}  // namespace dapx::cli

int main(int argc, char** argv) {
  dapx::keep_freed_blocks_for_reuse();
  CLI::App app{
      "dapx: draft-based approximate inference of long-context LLMs.\n"
      "A small draft model guides a large target so that the target keeps only the KV pairs\n"
      "and prompt tokens that matter. Models are Hugging Face directories (config.json,\n"
      "*.safetensors, tokenizer.json).",
      "dapx"};
  app.require_subcommand(1);
  app.set_version_flag(
      "--version", [] { return dapx::cli::version_text(); },
      "Version, source commit, build type, LibTorch, CPU kernels, CUDA");
  dapx::cli::register_generate(app);
  dapx::cli::register_make_model(app);
  dapx::cli::register_tokenize(app);
  dapx::cli::register_train(app);
  dapx::cli::register_convert(app);
  dapx::cli::register_eval(app);
  dapx::cli::register_demo(app);
  dapx::cli::register_analyze(app);
  dapx::cli::register_methods(app);
#ifdef DAPX_SERVER
  dapx::cli::register_serve(app);
  dapx::cli::register_bench_serve(app);
#endif
  dapx::cli::register_bench(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const dapx::Error& e) {
    std::cerr << "dapx: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "dapx: internal error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
