#include "util/sizes.h"

#include <gtest/gtest.h>

namespace skerry {

TEST(Sizes, ParsesSuffixes) {
  EXPECT_EQ(*ParseSize("512"), 512u);
  EXPECT_EQ(*ParseSize("4M"), 4u << 20);
  EXPECT_EQ(*ParseSize("4MiB"), 4u << 20);
  EXPECT_EQ(*ParseSize("10g"), 10ull << 30);
  EXPECT_EQ(*ParseSize("1T"), 1ull << 40);
  EXPECT_EQ(*ParseSize("64k"), 64u << 10);
}

TEST(Sizes, RejectsJunkAndOverflow) {
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("G").ok());
  EXPECT_FALSE(ParseSize("1.5G").ok());
  EXPECT_FALSE(ParseSize("10X").ok());
  EXPECT_FALSE(ParseSize("-1").ok());
  EXPECT_FALSE(ParseSize("99999999999999999999").ok());
  EXPECT_FALSE(ParseSize("100000P").ok());
  EXPECT_EQ(ParseSize("10X").status().code(), Code::kInvalidArgument);
}

TEST(Sizes, Formats) {
  EXPECT_EQ(FormatSize(4u << 20), "4 MiB");
  EXPECT_EQ(FormatSize(1536), "1.5 KiB");
  EXPECT_EQ(FormatSize(100), "100 B");
}

}  // namespace skerry
