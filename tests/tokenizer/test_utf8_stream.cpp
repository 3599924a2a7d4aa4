#include <gtest/gtest.h>

#include <string>

#include "tokenizer/tokenizer.h"

namespace dapx {
namespace {

TEST(Utf8StreamDecoder, HoldsBackASplitTwoByteChar) {
  Utf8StreamDecoder d;
  EXPECT_EQ(d.push("caf\xC3"), "caf");
  EXPECT_EQ(d.push("\xA9!"), "\xC3\xA9!");
  EXPECT_EQ(d.flush(), "");
}

TEST(Utf8StreamDecoder, EmojiArrivesOneByteAtATime) {
  Utf8StreamDecoder d;
  const std::string emoji = "\xF0\x9F\x98\x80";
  EXPECT_EQ(d.push(emoji.substr(0, 1)), "");
  EXPECT_EQ(d.push(emoji.substr(1, 1)), "");
  EXPECT_EQ(d.push(emoji.substr(2, 1)), "");
  EXPECT_EQ(d.push(emoji.substr(3, 1) + "x"), emoji + "x");
}

TEST(Utf8StreamDecoder, InvalidBytesBecomeReplacementChars) {
  Utf8StreamDecoder d;
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(d.push("a\xFF"
                   "b"),
            "a" + fffd + "b");
  // A lead byte followed by a non-continuation: one U+FFFD, then the ASCII byte.
  EXPECT_EQ(d.push("\xC3(ok"), fffd + "(ok");
  // Surrogates (ED A0 80) are not valid UTF-8.
  EXPECT_EQ(d.push("\xED\xA0\x80"), fffd + fffd + fffd);
}

TEST(Utf8StreamDecoder, FlushReplacesAnUnfinishedChar) {
  Utf8StreamDecoder d;
  EXPECT_EQ(d.push("x\xE2\x82"), "x");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(d.flush(), "");
  EXPECT_EQ(d.push("y"), "y");
}

}  // namespace
}  // namespace dapx
