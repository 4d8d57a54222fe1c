// The store contract: the behaviour every ObjectStore must show, as a value-parameterised
// GoogleTest suite, so each store (mem, dir, later rados) runs the same tests.
//
// To run it against a store, link the skerry_store_contract object library into the
// store's test binary and instantiate the suite with a factory that returns a new,
// empty store for every test:
//
//   INSTANTIATE_TEST_SUITE_P(Mem, StoreContractTest,
//       ::testing::Values(StoreContractParam{"mem", [] { return std::make_shared<MemStore>(); }}),
//       StoreContractName);
//
// The factory may return a shared_ptr whose deleter also removes what the store used
// (a temporary directory, a pool namespace).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "skerry/object_store.h"

namespace skerry {

struct StoreContractParam {
  std::string name;  // suffix of the test names, e.g. "mem"
  std::function<std::shared_ptr<ObjectStore>()> make;  // a new, empty store
  bool checks_names = true;  // the store refuses invalid object names (InvalidArgument)
};

class StoreContractTest : public ::testing::TestWithParam<StoreContractParam> {
 protected:
  void SetUp() override;
  void TearDown() override;
  std::shared_ptr<ObjectStore> store_;
};

std::string StoreContractName(const ::testing::TestParamInfo<StoreContractParam>& info);
// Names the store in failure messages instead of dumping the parameter's bytes.
void PrintTo(const StoreContractParam& param, std::ostream* os);

}  // namespace skerry
