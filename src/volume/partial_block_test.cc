// The granule logic of partial blocks on its own (volume/partial_block.h); partial_test.cc
// drives the same through whole volumes.
#include "volume/partial_block.h"

#include <gtest/gtest.h>

namespace skerry::volume {
namespace {

constexpr uint32_t kBs = 64 * 1024;  // 16 granules
constexpr uint64_t G = kGranuleSize;

VolumeId Id(uint8_t b) {
  VolumeId id;
  id.bytes.fill(b);
  return id;
}

// A partial entry of volume 1 (epoch 5) over volume 2's object (epoch 3), holding `granules`.
Entry PartialHolding(std::initializer_list<uint64_t> granules) {
  auto held = StartPartial(Entry::Private(Id(2), 3), kBs);
  for (uint64_t g : granules) held = WithGranules(*held, g * G, (g + 1) * G, kBs);
  return Entry::Partial(Id(1), 5, held);
}

TEST(PartialBlock, APrivateEntryIsOnePiece) {
  auto pieces = Pieces(Entry::Private(Id(1), 5), 7, 100, 5000);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].object, BlockObject(Id(1), 5, 7));
  EXPECT_EQ(pieces[0].off, 100u);
  EXPECT_EQ(pieces[0].len, 5000u);
}

TEST(PartialBlock, PiecesAlternateBetweenOwnObjectAndBase) {
  Entry e = PartialHolding({1, 2, 5});
  const std::string own = BlockObject(Id(1), 5, 7), base = BlockObject(Id(2), 3, 7);
  // From the middle of granule 0 to the middle of granule 6.
  auto pieces = Pieces(e, 7, G / 2, 6 * G);
  ASSERT_EQ(pieces.size(), 5u);
  EXPECT_EQ(pieces[0].object, base);  // rest of granule 0
  EXPECT_EQ(pieces[0].off, G / 2);
  EXPECT_EQ(pieces[0].len, G / 2);
  EXPECT_EQ(pieces[1].object, own);  // granules 1-2, merged into one run
  EXPECT_EQ(pieces[1].off, G);
  EXPECT_EQ(pieces[1].len, 2 * G);
  EXPECT_EQ(pieces[2].object, base);  // 3-4
  EXPECT_EQ(pieces[2].len, 2 * G);
  EXPECT_EQ(pieces[3].object, own);  // 5
  EXPECT_EQ(pieces[3].len, G);
  EXPECT_EQ(pieces[4].object, base);  // first half of 6
  EXPECT_EQ(pieces[4].off, 6 * G);
  EXPECT_EQ(pieces[4].len, G / 2);
  uint64_t total = 0;
  for (auto& p : pieces) total += p.len;
  EXPECT_EQ(total, 6 * G);
}

TEST(PartialBlock, EdgesTheOwnObjectLacksAreWidenedToGranules) {
  auto held = StartPartial(Entry::Private(Id(2), 3), kBs);
  GranuleSpan s = WholeGranules(*held, G + 10, 3 * G - 10, kBs);
  EXPECT_EQ(s.a, G);
  EXPECT_EQ(s.b, 3 * G);
  // Aligned edges stay.
  s = WholeGranules(*held, G, 3 * G, kBs);
  EXPECT_EQ(s.a, G);
  EXPECT_EQ(s.b, 3 * G);
  // An edge granule the own object holds already is not completed from the base.
  held = WithGranules(*held, G, 2 * G, kBs);
  s = WholeGranules(*held, G + 10, 3 * G - 10, kBs);
  EXPECT_EQ(s.a, G + 10);
  EXPECT_EQ(s.b, 3 * G);
  // Never past the block.
  s = WholeGranules(*held, kBs - 10, kBs, kBs);
  EXPECT_EQ(s.b, uint64_t{kBs});
}

TEST(PartialBlock, WithGranulesGrowsAShortBitmapAndSetsTheTouchedBits) {
  PartialBase short_one;
  short_one.owner = Id(2);
  short_one.epoch = 3;  // no words: as a bitmap read from the store may be
  auto next = WithGranules(short_one, 14 * G + 1, 15 * G + 2, kBs);
  EXPECT_EQ(next->written.size(), 1u);
  EXPECT_FALSE(next->Has(13));
  EXPECT_TRUE(next->Has(14));
  EXPECT_TRUE(next->Has(15));
  EXPECT_TRUE(short_one.written.empty());  // the old one is unchanged (shared, immutable)
}

TEST(PartialBlock, HoldsWholeBlockCountsOnlyTheBlocksLength) {
  auto held = StartPartial(Entry::Private(Id(2), 3), kBs);
  held = WithGranules(*held, 0, 4 * G, kBs);
  EXPECT_FALSE(HoldsWholeBlock(*held, kBs));
  EXPECT_TRUE(HoldsWholeBlock(*held, 4 * G));   // a short last block
  EXPECT_TRUE(HoldsWholeBlock(*held, 3 * G + 1));
  EXPECT_FALSE(HoldsWholeBlock(*held, 4 * G + 1));
}

}  // namespace
}  // namespace skerry::volume
