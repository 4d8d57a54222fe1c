#include "util/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace skerry {

TEST(Crc32c, KnownVectors) {
  // Test vectors from RFC 3720 (iSCSI), appendix B.4.
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros), 0x8A9136AAu);
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(ones), 0x62A8AB43u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
}

TEST(Crc32c, ExtendsIncrementally) {
  std::string s = "the quick brown fox jumps over the lazy dog, twice over";
  uint32_t whole = Crc32c(s);
  uint32_t part = Crc32c(0, s.data(), 13);
  part = Crc32c(part, s.data() + 13, s.size() - 13);
  EXPECT_EQ(whole, part);
}

}  // namespace skerry
