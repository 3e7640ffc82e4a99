// libFuzzer target: the training-checkpoint reader (parse_checkpoint,
// host/checkpoint.cc). Every input must either parse or be refused with a
// CliError; whatever parses must serialize back to the same bytes.
//
// The harness repairs the trailing CRC-32 (in a copy) so that mutations reach
// the field and size checks behind it; a stale CRC is covered by the unit tests.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "train/checkpoint.h"
#include "util/errors.h"
#include "tinyzo/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> b(data, data + size);
  if (b.size() >= 4) {
    const uint32_t crc = tinyzo::crc32_update(0, b.data(), b.size() - 4);
    std::memcpy(b.data() + b.size() - 4, &crc, 4);
  }
  tinyzo::Checkpoint c;
  try {
    c = tinyzo::parse_checkpoint(b.data(), b.size(), "fuzz");
  } catch (const tinyzo::CliError&) {
    return 0;
  }
  if (tinyzo::serialize_checkpoint(c) != b) __builtin_trap();  // a round trip must be exact
  return 0;
}
