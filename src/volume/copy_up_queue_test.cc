#include "volume/held_writes.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>

namespace skerry::volume {
namespace {

// What the overlay's extents put in a block of `size` bytes that held `fill`.
std::string Apply(const HeldWriteOverlay& o, size_t size, char fill) {
  std::string block(size, fill);
  uint64_t last_end = 0;
  for (const HeldExtent& e : o.Extents()) {
    EXPECT_GE(e.off, last_end) << "extents overlap or are out of order";
    EXPECT_FALSE(e.data.empty());
    block.replace(e.off, e.data.size(), e.data);
    last_end = e.off + e.data.size();
  }
  return block;
}

TEST(HeldWriteOverlayTest, LaterWritesWinWhereTheyOverlap) {
  HeldWriteOverlay o;
  const std::string a(10, 'a'), b = "bb", c(6, 'c'), d = "d";
  o.Add(0, a);   // aaaaaaaaaa
  o.Add(4, b);   // aaaabbaaaa  (inside a: a splits in three)
  o.Add(8, c);   // aaaabbaacccccc (over a's tail and past it)
  o.Add(3, d);   // aaadbbaacccccc
  EXPECT_EQ(Apply(o, 16, '.'), "aaadbbaacccccc..");
  EXPECT_EQ(o.Extents().size(), 5u);  // a, d, b, a, c: adjacent pieces are not merged
  o.Add(0, std::string_view(a).substr(0, 9));  // over all of it but c's last five bytes
  EXPECT_EQ(Apply(o, 16, '.'), "aaaaaaaaaccccc..");
  EXPECT_EQ(o.Extents().size(), 2u);
}

// Against a byte-by-byte model, on random writes of random sizes (overlapping a lot).
TEST(HeldWriteOverlayTest, MatchesApplyingTheWritesInOrder) {
  std::mt19937_64 rng(20261122);
  for (int round = 0; round < 200; round++) {
    const size_t size = 1 + rng() % 4096;
    std::string model(size, '.');
    std::deque<std::string> writes;  // keeps the bytes the overlay points at
    HeldWriteOverlay o;
    int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; i++) {
      size_t off = rng() % size;
      size_t len = rng() % 3 == 0 ? 0 : 1 + rng() % (size - off);
      writes.emplace_back(len, static_cast<char>('A' + i % 26));
      o.Add(off, writes.back());
      model.replace(off, len, writes.back());
    }
    ASSERT_EQ(Apply(o, size, '.'), model) << "round " << round;
  }
}

}  // namespace
}  // namespace skerry::volume
