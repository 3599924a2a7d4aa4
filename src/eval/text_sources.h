#pragma once
// Offline text for the synthetic tasks: dictionary words and English prose from Debian packages,
// each cut into two disjoint halves so that what a model trains on never appears in evaluation.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace dapx::eval {

// Train = the training twin: disjoint words, prose, templates and seeds.
enum class Split { Eval, Train };

const char* split_name(Split split);  // "eval" / "train"

struct TextSources {
  // The split every word and paragraph below belongs to: TaskSuite and TrainingData refuse
  // sources of the other split.
  Split split = Split::Eval;
  // Lower-case alphabetic dictionary words (3 to 12 letters) of this split: needle keys, noise,
  // the cwe/fwe vocabularies and the names in the QA documents.
  std::vector<std::string> words;
  // Prose paragraphs of this split, whitespace collapsed to single spaces, printable ASCII:
  // the essay haystack, and plain text for LM training.
  std::vector<std::string> essay;
  // Evaluation only, usually empty: paragraphs that replace the noise and essay haystacks of the
  // needle tasks (a haystack no training data uses; see load_licenses).
  std::vector<std::string> haystack;
  std::string haystack_name;  // "" or the haystack's name, e.g. "licenses"

  // words: /usr/share/dict/american-english (Debian wamerican). essay: the plain-text fortune
  // files in /usr/share/games/fortunes (Debian fortunes; entries separated by lines holding "%";
  // *.dat indexes, *.u8 links, subfolders such as off/, and the art/ascii-art files are
  // skipped). A word or an entry belongs to a split by a fixed FNV-1a hash of its text, so the
  // two splits are disjoint and the same on every machine. Throws dapx::Error naming the missing
  // path and the Debian package to install.
  static TextSources load(Split split,
                          const std::filesystem::path& dict = "/usr/share/dict/american-english",
                          const std::filesystem::path& fortunes_dir = "/usr/share/games/fortunes");

  // The paragraphs of the license texts in /usr/share/common-licenses (Debian base-files, on
  // every Debian system; symbolic links such as GPL -> GPL-3 skipped, duplicates dropped),
  // whitespace collapsed as for the essay: legal prose that no training data uses, for
  // `dapx eval --haystack licenses`. Throws dapx::Error naming the folder when it holds too few.
  static std::vector<std::string> load_licenses(
      const std::filesystem::path& dir = "/usr/share/common-licenses");
};

// The haystacks `dapx eval --haystack` offers: "fortunes" (the task's own: the noise paragraph
// or the fortunes essay of the evaluation split) and "licenses" (load_licenses, for every
// needle and variable-tracking task whose haystack is text, not needles). Sets sources.haystack and
// haystack_name; throws dapx::Error listing the names for an unknown one, and for the training
// split.
void use_haystack(TextSources& sources, const std::string& name);

// 64-bit FNV-1a: the fixed hash that assigns words and paragraphs to a split.
uint64_t fnv1a64(std::string_view text);

// The split a word or paragraph belongs to.
Split split_of(std::string_view text);

}  // namespace dapx::eval
