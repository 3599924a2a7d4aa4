// LongBench metrics against values computed by hand (each checked against LongBench's
// metrics.py with the `rouge` 1.0.1 and fuzzywuzzy + python-Levenshtein packages).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "error_message.h"
#include "eval/metrics.h"
#include "util/error.h"

namespace dapx::eval {
namespace {

// ---- normalize_answer ----

TEST(NormalizeAnswer, LowersDropsPunctuationArticlesAndExtraSpace) {
  // "The" / "A" / "an" go (after lowering), punctuation goes, runs of spaces become one.
  EXPECT_EQ(normalize_answer("  The Cat, sat on  A mat!  \"an\" apple; THEory  "),
            "cat sat on mat apple theory");
}

TEST(NormalizeAnswer, ArticlesOnlyAsWholeWords) {
  // "anthem"/"theme" keep their letters; "a-team" loses the hyphen before the article check, so
  // it is the word "ateam"; "3a" is one word (a digit is a word character).
  EXPECT_EQ(normalize_answer("An anthem, the theme: a-team"), "anthem theme ateam");
  EXPECT_EQ(normalize_answer("3a the_end"), "3a theend");
}

TEST(NormalizeAnswer, UnicodeAsPython) {
  // Curly quotes are not ASCII punctuation, so they stay, but they are not word characters:
  // "the" between them is still an article.
  EXPECT_EQ(normalize_answer("\u201cThe\u201d Caf\u00c9"), "\u201c \u201d caf\u00e9");
  // U+0130 lowers to "i" + combining dot, as str.lower.
  EXPECT_EQ(normalize_answer("\u0130stanbul"), "i\u0307stanbul");
  // No-break space, \x1c and the ideographic space all split words (str.split()).
  EXPECT_EQ(normalize_answer("a\u00a0b\x1c"
                             "c\u3000d"),
            "b c d");
  // An em dash is no word character: "the" between two of them goes.
  EXPECT_EQ(normalize_answer("x\u2014the\u2014y"), "x\u2014 \u2014y");
}

TEST(NormalizeAnswer, FinalSigmaAsStrLower) {
  // Capital sigma lowers to the final form after a letter when no letter follows; lowering runs
  // before punctuation is removed, so the apostrophes (case-ignorable) are looked through.
  EXPECT_EQ(normalize_answer("\u039f\u0394\u039f\u03a3"), "\u03bf\u03b4\u03bf\u03c2");
  EXPECT_EQ(normalize_answer("\u0391\u03a3\u0391"), "\u03b1\u03c3\u03b1");
  EXPECT_EQ(normalize_answer("\u03a3"), "\u03c3");
  EXPECT_EQ(normalize_answer("\u0391'\u03a3'"), "\u03b1\u03c2");
}

TEST(NormalizeAnswer, EmptyAndOnlyArticles) {
  EXPECT_EQ(normalize_answer(""), "");
  EXPECT_EQ(normalize_answer("The a AN ..."), "");
}

// ---- qa_f1 ----

TEST(QaF1, PartialOverlap) {
  // "the cat sat" -> [cat, sat]; "a cat sat down" -> [cat, sat, down]. Overlap 2:
  // precision 2/2 = 1, recall 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8.
  EXPECT_DOUBLE_EQ(qa_f1("the cat sat", "a cat sat down"), 0.8);
}

TEST(QaF1, CountsRepeatsAsMultiset) {
  // [cat, cat, dog] vs [cat, dog, dog]: overlap min(2,1) + min(1,2) = 2, P = R = 2/3, F1 = 2/3.
  EXPECT_DOUBLE_EQ(qa_f1("cat cat dog", "cat dog dog"), 2.0 / 3.0);
}

TEST(QaF1, ExactAfterNormalisationAndNoOverlap) {
  EXPECT_DOUBLE_EQ(qa_f1("The Eiffel Tower.", "eiffel tower"), 1.0);
  EXPECT_DOUBLE_EQ(qa_f1("Paris", "London"), 0.0);
  EXPECT_DOUBLE_EQ(qa_f1("the", "an"), 0.0);  // both normalise to nothing
}

// ---- rouge_l ----

TEST(RougeL, OneSentenceCountsUniqueWords) {
  // ref "the cat is on the mat", hyp "the cat sat on the mat": LCS "the cat on the mat", whose
  // distinct words are {the, cat, on, mat} = 4; distinct ref words 5, distinct hyp words 5.
  // R = P = 4/5, F = 2 * 0.64 / (1.6 + 1e-8). (A plain token LCS would give 5/6.)
  EXPECT_NEAR(rouge_l("the cat sat on the mat", "the cat is on the mat"), 0.8, 1e-8);
  EXPECT_NEAR(rouge_l("the cat sat on the mat", "the cat is on the mat"),
              2.0 * (0.64 / (1.6 + 1e-8)), 1e-15);
}

TEST(RougeL, UnionLcsOverSentences) {
  // Lin's example: r = w1 w2 w3 w4 w5, c1 = w1 w2 w6 w7 w8, c2 = w1 w3 w8 w9 w5.
  // LCS(r, c1) = w1 w2, LCS(r, c2) = w1 w3 w5, union {w1 w2 w3 w5} = 4; m = 5, n = 8 distinct
  // hypothesis words. R = 0.8, P = 0.5, F = 2 * 0.4 / 1.3 = 0.6153846...
  EXPECT_NEAR(rouge_l("w1 w2 w6 w7 w8. w1 w3 w8 w9 w5", "w1 w2 w3 w4 w5"), 0.8 / 1.3, 1e-8);
}

TEST(RougeL, KeepsThePackagesChoiceAmongEqualLcs) {
  // ref "a b" vs hyp sentence "b a": both "a" and "b" are an LCS; the package's table walk
  // picks "b". With the second sentence "a" the union is {a, b}: R = P = 1, F = 1. Picking "a"
  // would give union {a}, F = 0.5.
  EXPECT_NEAR(rouge_l("b a. a", "a b"), 1.0, 1e-8);
}

TEST(RougeL, WhitespaceSentenceIsAnEmptyWord) {
  // "cat. " -> sentences ["cat", ""]: the empty word counts as a hypothesis word, n = 2, m = 1,
  // union {cat}: R = 1, P = 0.5, F = 2/3.
  EXPECT_NEAR(rouge_l("cat. ", "cat"), 2.0 / 3.0, 1e-8);
}

TEST(RougeL, EmptySideScoresZero) {
  EXPECT_EQ(rouge_l("", "a summary"), 0.0);
  EXPECT_EQ(rouge_l("...", "a summary"), 0.0);  // only empty sentences
  EXPECT_EQ(rouge_l("a summary", ""), 0.0);
  EXPECT_NEAR(rouge_l("x", "x"), 1.0, 1e-8);
}

// ---- classification ----

TEST(Classification, SingleMatch) {
  const std::vector<std::string> classes = {"Individual", "City", "Other location"};
  EXPECT_DOUBLE_EQ(classification_score("Type: City", "City", classes), 1.0);
  EXPECT_DOUBLE_EQ(classification_score("Type: City", "Individual", classes), 0.0);
  EXPECT_DOUBLE_EQ(classification_score("no idea", "City", classes), 0.0);
}

TEST(Classification, ClassNameInsideAnother) {
  const std::vector<std::string> classes = {"Person", "Person description", "Location"};
  // Gold "Person description": "Person" also matches but is part of the gold, so it is pruned:
  // one match left, score 1.
  EXPECT_DOUBLE_EQ(classification_score("Person description", "Person description", classes), 1.0);
  // Gold "Person": both names match and neither is pruned (pruning needs a proper part of the
  // gold), so the credit is shared: 1/2.
  EXPECT_DOUBLE_EQ(classification_score("Person description", "Person", classes), 0.5);
  // Two different classes named: shared credit.
  EXPECT_DOUBLE_EQ(classification_score("Location or Person", "Location", classes), 0.5);
}

TEST(Classification, KeepsLongBenchsRemoveWhileIterating) {
  // Matches [A, AB, ABC] for gold ABC: "A" is removed, which shifts "AB" under the iterator,
  // so "AB" is never checked and stays: [AB, ABC] -> 1/2 (a clean pruning would give 1).
  EXPECT_DOUBLE_EQ(classification_score("ABC", "ABC", {"A", "AB", "ABC"}), 0.5);
}

// ---- retrieval / count ----

TEST(Retrieval, ShareOfNumbersEqualToTheParagraph) {
  EXPECT_DOUBLE_EQ(retrieval_score("Paragraph 2", "Paragraph 2"), 1.0);
  // Numbers 2, 12, 2: two of three equal "2" (12 is compared as a whole number, not a digit).
  EXPECT_DOUBLE_EQ(retrieval_score("Paragraph 2, not paragraph 12 or 2", "Paragraph 2"), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(retrieval_score("Paragraph 21", "Paragraph 2"), 0.0);
  EXPECT_DOUBLE_EQ(retrieval_score("I cannot tell", "Paragraph 2"), 0.0);
  // The first "Paragraph <digits>" of the reference is the gold one.
  EXPECT_DOUBLE_EQ(retrieval_score("7", "Paragraph x, Paragraph 7 and Paragraph 9"), 1.0);
}

TEST(Retrieval, ReferenceWithoutParagraphThrows) {
  test::expect_error([] { retrieval_score("Paragraph 2", "2"); }, {"Paragraph N"});
}

TEST(Count, ShareOfNumbersEqualToTheReference) {
  // Numbers 3 and 5, one equals "3": 1/2.
  EXPECT_DOUBLE_EQ(count_score("There are 3 unique paragraphs out of 5", "3"), 0.5);
  EXPECT_DOUBLE_EQ(count_score("13", "3"), 0.0);
  EXPECT_DOUBLE_EQ(count_score("none", "3"), 0.0);
  EXPECT_DOUBLE_EQ(count_score("03", "3"), 0.0);  // compared as strings
  // A full-width digit is a number too (\d on str), one that is not "3".
  EXPECT_DOUBLE_EQ(count_score("\uff13 and 3", "3"), 0.5);
}

// ---- code_sim ----

TEST(CodeSim, IndelRatioRoundedHalfToEven) {
  // "abc" vs "abd": LCS 2, lensum 6, indel distance 2, ratio 4/6 -> 66.67 -> 67.
  EXPECT_DOUBLE_EQ(code_sim("abc", "abd"), 0.67);
  // LCS 1 of lensum 16: ratio 2/16 -> 12.5, Python rounds to the even 12 (not 13).
  EXPECT_DOUBLE_EQ(code_sim("abcdefgh", "aijklmno"), 0.12);
  // LCS 3 of lensum 16: 37.5 -> 38.
  EXPECT_DOUBLE_EQ(code_sim("abcdefgh", "abcijklm"), 0.38);
  EXPECT_DOUBLE_EQ(code_sim("return x", "return x"), 1.0);
  EXPECT_DOUBLE_EQ(code_sim("", ""), 1.0);  // equal strings win before the empty check
  EXPECT_DOUBLE_EQ(code_sim("", "x = 1"), 0.0);
  EXPECT_DOUBLE_EQ(code_sim("x = 1", ""), 0.0);
}

TEST(CodeSim, FirstCleanLineOnly) {
  // Leading newlines skipped; the comment and the fence line are passed over; the first clean
  // line "return x + 1" (12 chars) vs "return x+1" (10): LCS 10, ratio 20/22 -> 91.
  EXPECT_DOUBLE_EQ(code_sim("\n\n# comment\n```python\nreturn x + 1\nmore", "return x+1"), 0.91);
  // A line with // is skipped too.
  EXPECT_DOUBLE_EQ(code_sim("y = 2  // note\nx = 1", "x = 1"), 1.0);
  // No clean line at all: the prediction is empty.
  EXPECT_DOUBLE_EQ(code_sim("# a\n// b", "x = 1"), 0.0);
}

TEST(CodeSim, CountsCodePointsNotBytes) {
  // "é" vs "e": one code point each, LCS 0 -> 0; "aé" vs "ae": LCS 1 of lensum 4 -> 50.
  EXPECT_DOUBLE_EQ(code_sim("a\u00e9", "ae"), 0.5);
}

// ---- dispatch ----

TEST(ScoreMetric, DispatchesByName) {
  EXPECT_DOUBLE_EQ(score_metric("qa_f1", "the cat sat", "a cat sat down", {}), 0.8);
  EXPECT_NEAR(score_metric("rouge_l", "cat. ", "cat", {}), 2.0 / 3.0, 1e-8);
  EXPECT_DOUBLE_EQ(score_metric("classification", "ABC", "ABC", {"A", "AB", "ABC"}), 0.5);
  EXPECT_DOUBLE_EQ(score_metric("retrieval", "Paragraph 4", "Paragraph 4", {}), 1.0);
  EXPECT_DOUBLE_EQ(score_metric("count", "3 5", "3", {}), 0.5);
  EXPECT_DOUBLE_EQ(score_metric("code_sim", "abc", "abd", {}), 0.67);
  const std::vector<std::string> names = metric_names();
  EXPECT_EQ(names, (std::vector<std::string>{"qa_f1", "rouge_l", "classification", "retrieval",
                                             "count", "code_sim"}));
}

TEST(ScoreMetric, UnknownNameListsTheKnownOnes) {
  test::expect_error([] { score_metric("bleu", "a", "a", {}); },
                     {"\"bleu\"", "qa_f1, rouge_l, classification, retrieval, count, code_sim"});
}

}  // namespace
}  // namespace dapx::eval
