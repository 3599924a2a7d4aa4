#pragma once
// LongBench's scoring functions (THUDM/LongBench LongBench/metrics.py), reimplemented so that a
// prediction scores what the Python scorer gives it, quirks included: a C++ score that drifts
// from the published one would make our numbers incomparable with the papers'. Each function
// returns 0..1; inputs are UTF-8 and compared per code point, as Python compares str.
#include <string>
#include <vector>

namespace dapx::eval {

// Lower case, ASCII punctuation removed, the words a/an/the removed, whitespace runs collapsed
// to single spaces (SQuAD's normalisation, as LongBench's normalize_answer).
std::string normalize_answer(const std::string& s);

// Token F1 over the normalized words (multiset overlap); 0 when nothing overlaps.
double qa_f1(const std::string& prediction, const std::string& reference);

// ROUGE-L F as the `rouge` package (1.0.1, defaults) computes it for LongBench: texts split into
// sentences at '.', summary-level union LCS over whitespace tokens, with tokens counted as
// sets (unique words); F = 2PR / (P + R + 1e-8). An empty text scores 0.
double rouge_l(const std::string& prediction, const std::string& reference);

// 1/k when the reference is among the k class names found (as substrings) in the prediction,
// after LongBench's pruning of names contained in the reference; else 0.
double classification_score(const std::string& prediction, const std::string& reference,
                            const std::vector<std::string>& all_classes);

// The reference holds "Paragraph N"; the share of the numbers in the prediction that equal N.
// A reference without "Paragraph N" throws dapx::Error.
double retrieval_score(const std::string& prediction, const std::string& reference);

// The share of the numbers in the prediction that equal the reference.
double count_score(const std::string& prediction, const std::string& reference);

// The first line of the prediction that holds none of ` # // (leading newlines skipped)
// against the reference by fuzzywuzzy's fuzz.ratio with python-Levenshtein (indel ratio
// (len1 + len2 - indel distance) / (len1 + len2), x100 rounded half to even), divided by 100.
double code_sim(const std::string& prediction, const std::string& reference);

// Dispatch by metric name: "qa_f1", "rouge_l", "classification", "retrieval", "count",
// "code_sim". An unknown name throws dapx::Error listing the known ones.
double score_metric(const std::string& metric, const std::string& prediction,
                    const std::string& reference, const std::vector<std::string>& all_classes);

std::vector<std::string> metric_names();

}  // namespace dapx::eval
