#include "eval/text_sources.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace dapx::eval {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMinWordLetters = 3;   // shorter words are substrings of too many others
constexpr size_t kMaxWordLetters = 12;  // longer ones are rare and cost many tokens
constexpr size_t kMinParagraphBytes = 40;
constexpr double kMinLetterShare = 0.8;  // drops tables, code and ASCII drawings

bool is_lower_word(const std::string& w) {
  if (w.size() < kMinWordLetters || w.size() > kMaxWordLetters) return false;
  return std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// Collapses runs of whitespace to one space; "" when the entry is not printable ASCII prose.
std::string clean_paragraph(const std::string& raw) {
  std::string out;
  size_t letters = 0;
  bool space = false;
  for (const char c : raw) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (c < 0x21 || c > 0x7e) return "";
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) ++letters;
  }
  if (out.size() < kMinParagraphBytes) return "";
  const size_t spaces = static_cast<size_t>(std::count(out.begin(), out.end(), ' '));
  if (static_cast<double>(letters + spaces) < kMinLetterShare * static_cast<double>(out.size())) {
    return "";
  }
  return out;
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Plain fortune files only: the .dat indexes, the .u8 links to the same files, subfolders
// (offensive fortunes) and the pictures are not prose.
bool is_prose_fortune_file(const fs::directory_entry& entry) {
  if (entry.is_symlink() || !entry.is_regular_file()) return false;
  const std::string name = entry.path().filename().string();
  if (name == "art" || name == "ascii-art") return false;
  const std::string ext = entry.path().extension().string();
  return ext != ".dat" && ext != ".u8";
}

void add_fortunes(const fs::path& file, Split split, std::vector<std::string>& out) {
  std::istringstream lines(read_all(file));
  std::string line;
  std::string entry;
  auto flush = [&] {
    std::string paragraph = clean_paragraph(entry);
    if (!paragraph.empty() && split_of(paragraph) == split) out.push_back(std::move(paragraph));
    entry.clear();
  };
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "%") {
      flush();
    } else {
      entry += line;
      entry += '\n';
    }
  }
  flush();
}

}  // namespace

const char* split_name(Split split) { return split == Split::Eval ? "eval" : "train"; }

uint64_t fnv1a64(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// The top bit: FNV-1a's low bits mix poorly (bit 0 is just the parity of odd bytes).
Split split_of(std::string_view text) {
  return (fnv1a64(text) >> 63) == 0 ? Split::Eval : Split::Train;
}

TextSources TextSources::load(Split split, const fs::path& dict, const fs::path& fortunes_dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dict, ec)) {
    throw Error("word list " + dict.string() +
                " not found: install the Debian package wamerican (apt-get install wamerican)");
  }
  if (!fs::is_directory(fortunes_dir, ec)) {
    throw Error("fortune directory " + fortunes_dir.string() +
                " not found: install the Debian package fortunes (apt-get install fortunes)");
  }
  TextSources sources;
  sources.split = split;
  std::istringstream dict_lines(read_all(dict));
  std::string word;
  while (std::getline(dict_lines, word)) {
    if (!word.empty() && word.back() == '\r') word.pop_back();
    if (is_lower_word(word) && split_of(word) == split) sources.words.push_back(word);
  }
  std::sort(sources.words.begin(), sources.words.end());
  sources.words.erase(std::unique(sources.words.begin(), sources.words.end()), sources.words.end());

  // Sorted file order: directory iteration order differs between file systems.
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(fortunes_dir)) {
    if (is_prose_fortune_file(entry)) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) add_fortunes(file, split, sources.essay);

  if (sources.words.size() < 1000) {
    throw Error("word list " + dict.string() + " has only " + std::to_string(sources.words.size()) +
                " usable lower-case words for the " + split_name(split) +
                " split: install the Debian package wamerican (apt-get install wamerican)");
  }
  if (sources.essay.size() < 100) {
    throw Error("fortune directory " + fortunes_dir.string() + " has only " +
                std::to_string(sources.essay.size()) + " prose entries for the " +
                split_name(split) +
                " split: install the Debian package fortunes (apt-get install fortunes)");
  }
  return sources;
}

std::vector<std::string> TextSources::load_licenses(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error("license folder " + dir.string() +
                " not found: it comes with the Debian package base-files (apt-get install "
                "--reinstall base-files)");
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_symlink() && entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> out;
  std::vector<std::string> seen;
  for (const auto& file : files) {
    std::istringstream lines(read_all(file));
    std::string line, entry;
    const auto flush = [&] {
      std::string paragraph = clean_paragraph(entry);
      entry.clear();
      if (paragraph.empty() || std::find(seen.begin(), seen.end(), paragraph) != seen.end()) return;
      seen.push_back(paragraph);
      out.push_back(std::move(paragraph));
    };
    while (std::getline(lines, line)) {
      if (line.find_first_not_of(" \t\r\f") == std::string::npos) {
        flush();
      } else {
        entry += line;
        entry += '\n';
      }
    }
    flush();
  }
  if (out.size() < 100) {
    throw Error("license folder " + dir.string() + " has only " + std::to_string(out.size()) +
                " paragraphs of prose (100 needed): it comes with the Debian package base-files");
  }
  return out;
}

void use_haystack(TextSources& sources, const std::string& name) {
  if (name == "fortunes") {
    sources.haystack.clear();
    sources.haystack_name.clear();
    return;
  }
  if (name != "licenses") {
    throw Error("unknown haystack \"" + name + "\" (known: fortunes, licenses)");
  }
  if (sources.split != Split::Eval) {
    throw Error(std::string("the ") + name + " haystack is for the eval split only, not the " +
                split_name(sources.split) + " split: no training data may use it");
  }
  sources.haystack = TextSources::load_licenses();
  sources.haystack_name = name;
}

}  // namespace dapx::eval
