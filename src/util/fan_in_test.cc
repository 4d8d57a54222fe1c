#include "util/fan_in.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace skerry {
namespace {

// `done` runs once, after the starter's count and every added one, with the first error.
TEST(FanInTest, DoneRunsOnceAfterEveryPieceWithTheFirstError) {
  for (int round = 0; round < 50; round++) {
    std::atomic<int> calls{0};
    std::atomic<int> finished{0};
    Status seen;
    FanIn* fan = FanIn::Start([&](Status st) {
      EXPECT_EQ(finished.load(), 8) << "done before every piece finished";
      seen = st;
      calls++;
    });
    std::vector<std::thread> pieces;
    for (int i = 0; i < 8; i++) {
      fan->Add();
      pieces.emplace_back([&, i] {
        finished++;
        fan->Finish(i == 5 ? Status::IOError("piece 5") : Status::OK());
      });
    }
    EXPECT_EQ(calls.load(), 0);  // the starter still holds its count
    for (auto& t : pieces) t.join();
    EXPECT_EQ(calls.load(), 0);
    fan->Finish(Status::OK());
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(seen.code(), Code::kIOError);
  }
}

TEST(FanInTest, NoPiecesCompletesWithTheStartersStatus) {
  Status seen = Status::IOError("not called");
  FanIn::Start([&](Status st) { seen = st; })->Finish(Status::InvalidArgument("bad range"));
  EXPECT_EQ(seen.code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace skerry
