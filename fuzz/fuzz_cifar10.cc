// libFuzzer target: the CIFAR-10 reader (host/cifar10.cc): plain records and
// gzip-compressed files, through load_cifar10 as the CLI reads a data file.
// Every input must load or be refused with a CliError; a loaded set must
// hold whole records with labels 0..9.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "data/cifar10.h"
#include "util/errors.h"
#include "util/file_util.h"

namespace {

std::string temp_path() {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  return std::string(dir) + "/tinyzo-fuzz-cifar-" + std::to_string(getpid()) + ".bin";
}

void check(const tinyzo::Cifar10Set& s) {
  if (s.size() == 0 || s.pixels.size() != s.size() * tinyzo::kCifar10ImageBytes) __builtin_trap();
  for (uint8_t l : s.labels)
    if (l >= tinyzo::kCifar10Classes) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // In memory: what the loader does after reading and (if gzip) inflating.
  try {
    if (tinyzo::has_gzip_magic(data, size)) {
      const std::vector<uint8_t> plain = tinyzo::gunzip_bytes(data, size, "fuzz", tinyzo::kMaxCifar10Bytes);
      check(tinyzo::parse_cifar10(plain.data(), plain.size(), "fuzz"));
    } else {
      check(tinyzo::parse_cifar10(data, size, "fuzz"));
    }
  } catch (const tinyzo::CliError&) {
  }
  // Through a file, as `tinyzo` reads --data (the file and gzip stream paths).
  static const std::string path = temp_path();
  if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
  } else {
    __builtin_trap();
  }
  try {
    check(tinyzo::load_cifar10(path));
  } catch (const tinyzo::CliError&) {
  }
  return 0;
}
