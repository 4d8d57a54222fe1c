// TestTempDir: a fresh directory for one test, removed with everything in it at the end.
//
// Made under $SKERRY_TEST_DIR when set (to run the dir store tests on another file
// system: xfs or btrfs for reflinks, an NFS mount), else $TMPDIR, else /tmp.
// Thread-safety: a plain value owned by one test.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace skerry {

class TestTempDir {
 public:
  TestTempDir() {
    const char* base = getenv("SKERRY_TEST_DIR");
    if (base == nullptr || *base == '\0') base = getenv("TMPDIR");
    if (base == nullptr || *base == '\0') base = "/tmp";
    std::string tmpl = std::string(base) + "/skerry-store-test.XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp " + tmpl + " failed");
    path_ = tmpl;
  }
  ~TestTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TestTempDir(const TestTempDir&) = delete;
  TestTempDir& operator=(const TestTempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace skerry
