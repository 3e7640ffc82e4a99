// Small file helpers for the host tools. Every failure throws CliError whose
// message names the path and the reason (strerror).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace tinyzo {

// Reads the whole file. Throws CliError ("<path>: <reason>") when it cannot.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// True when `path` names an existing regular file (follows symlinks).
bool is_regular_file(const std::string& path);
// True when `path` names an existing directory.
bool is_directory(const std::string& path);
// Creates `path` and its parents (like mkdir -p). Throws CliError.
void make_directories(const std::string& path);
// Modification time in nanoseconds since the epoch; throws CliError if missing.
int64_t modification_time_ns(const std::string& path);

// Decompresses a complete gzip stream (one or more members). Throws CliError
// "<what>: truncated gzip data" / "<what>: corrupt gzip data (<zlib msg>)".
std::vector<uint8_t> gunzip_bytes(const uint8_t* data, size_t size, const std::string& what);
// True when the bytes start with the gzip magic 1f 8b.
inline bool has_gzip_magic(const uint8_t* data, size_t size) {
  return size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

// Writes a file atomically: bytes go to a temporary file next to `path`,
// which replaces `path` (rename) only on commit(). A writer destroyed without
// commit() removes the temporary file, so a failed command leaves no partial
// output behind.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);
  void write_u32(uint32_t v);  // little-endian
  void write_u8(uint8_t v) { write(&v, 1); }
  // Flushes, fsyncs and renames the temporary file onto the target path.
  void commit();
  const std::string& temp_path() const { return temp_path_; }

 private:
  void abandon() noexcept;

  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;
};

// Writes `bytes` to `path` atomically (AtomicFileWriter).
void write_file_atomic(const std::string& path, const void* data, size_t size);

// A unique temporary path next to `path` ("<path>.tmp.<pid>.<n>"), not created.
std::string sibling_temp_path(const std::string& path);

}  // namespace tinyzo
