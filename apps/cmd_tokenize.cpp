// dapx tokenize / detokenize: see exactly what the model sees.
#include <iostream>
#include <sstream>

#include "common.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace dapx::cli {
namespace {

Tokenizer load_tokenizer(const std::string& model) {
  const std::filesystem::path p = std::filesystem::is_directory(model)
                                      ? std::filesystem::path(model) / "tokenizer.json"
                                      : std::filesystem::path(model);
  return Tokenizer::load(p);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  struct Flags {
    std::string model, text, file;
    bool json = false;
    std::vector<int> ids;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* tok = app.add_subcommand("tokenize", "Print the token ids (and pieces) of a text");
  tok->add_option("--model,-m", f->model, "Model directory or tokenizer.json")->required();
  tok->add_option("--text,-t", f->text, "Text to tokenize");
  tok->add_option("--file,-f", f->file, "Read the text from a file");
  tok->add_flag("--json", f->json, "JSON output: ids and pieces");
  tok->callback([f, tok] {
    const bool has_text = tok->count("--text") > 0, has_file = tok->count("--file") > 0;
    if (has_text == has_file)
      throw Error(has_text ? "give either --text or --file, not both"
                           : "nothing to tokenize: pass --text TEXT or --file FILE");
    const Tokenizer t = load_tokenizer(f->model);
    const std::string text = has_file ? read_file(f->file) : f->text;
    const std::vector<int> ids = t.encode(text);
    if (f->json) {
      nlohmann::json pieces = nlohmann::json::array();
      for (int id : ids) pieces.push_back(t.token_piece(id));
      std::cout << nlohmann::json{{"ids", ids}, {"pieces", pieces}, {"count", ids.size()}}.dump(
                       -1, ' ', false, nlohmann::json::error_handler_t::replace)
                << "\n";
      return;
    }
    for (int id : ids) std::cout << id << "\t" << t.token_piece(id) << "\n";
    std::cerr << ids.size() << " tokens\n";
  });

  CLI::App* detok = app.add_subcommand("detokenize", "Print the text of token ids");
  detok->add_option("--model,-m", f->model, "Model directory or tokenizer.json")->required();
  detok->add_option("ids", f->ids, "Token ids")->required();
  detok->callback([f] {
    const Tokenizer t = load_tokenizer(f->model);
    for (int id : f->ids)
      if (id < 0 || id >= t.vocab_size())
        throw Error("token id " + std::to_string(id) + " is outside the vocabulary (size " +
                    std::to_string(t.vocab_size()) + ")");
    std::cout << t.decode(f->ids) << "\n";
  });
}

}  // namespace dapx::cli
