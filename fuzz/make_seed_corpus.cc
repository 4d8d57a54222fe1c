// Writes valid encodings of each metadata object as seed inputs for format_fuzz
// (the first byte selects the decoder, as in format_fuzz.cc). Run once; the output is
// committed under fuzz/corpus/format/.
#include <fstream>
#include <string>

#include "volume/format.h"

using namespace skerry::volume;

static void Write(const std::string& dir, const std::string& name, char selector, const std::string& bytes) {
  std::ofstream(dir + "/" + name, std::ios::binary) << selector << bytes;
}

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : ".";
  Header h;
  h.id = VolumeId::Random();
  h.size = 1ull << 30;
  h.block_size = 4 << 20;
  h.chunks.resize(1);
  h.chunks[0] = ChunkRef{h.id, 1};
  SnapshotEntry s;
  s.id = 1;
  s.epoch = 1;
  s.size = h.size;
  s.name = "gold";
  s.children = {VolumeId::Random()};
  h.snapshots.push_back(s);
  h.epoch = 2;
  Write(dir, "header", 0, EncodeHeader(h));
  Chunk c;
  c.owner = h.id;
  c.epoch = 1;
  c.entries.resize(8);
  c.entries[1] = Entry::Private(h.id, 1);
  c.entries[2].kind = Entry::Kind::kContent;
  Write(dir, "chunk", 1, EncodeChunk(c));
  SnapshotRecord r;
  r.volume = h.id;
  r.id = 1;
  r.epoch = 1;
  r.size = h.size;
  r.block_size = h.block_size;
  r.chunks = h.chunks;
  Write(dir, "snapshot", 2, EncodeSnapshotRecord(r));
  Directory d;
  d.entries = {{"debian-12", h.id}, {"vm-0001", VolumeId::Random()}};
  Write(dir, "directory", 3, EncodeDirectory(d));
  return 0;
}
