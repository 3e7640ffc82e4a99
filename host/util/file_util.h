// Small file helpers for the host tools. Every failure throws CliError whose
// message names the path and the reason (strerror).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace tinyzo {

// A regular file opened for reading, its size known before anything is read,
// so a caller checks the size and the header before it reads or allocates
// anything large (a 5 GB file given as a model is refused from its size, at
// no cost). Opening never blocks: a FIFO, a device, a socket or a directory is
// refused by its type ("<path>: is a FIFO (named pipe), expected a regular
// <kind> file"), a missing file with its errno text.
class InputFile {
 public:
  // `kind` names what the file should be in messages ("model", "config").
  InputFile(const std::string& path, const std::string& kind);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Throws CliError "<path>: N bytes, more than any <kind> (at most M bytes);
  // not read" when size() > max_bytes.
  void require_at_most(uint64_t max_bytes) const;
  // Reads exactly `n` bytes at `offset` (a file that shrank meanwhile is an
  // error, never a short read).
  void read_at(uint64_t offset, void* dst, size_t n) const;
  // The whole file, after require_at_most(max_bytes).
  std::vector<uint8_t> read_all(uint64_t max_bytes) const;

 private:
  std::string path_, kind_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// The whole regular file `path`, refused without reading when it is larger
// than `max_bytes` (InputFile). Every input of the host tools has a bound:
// the format's own limit or what the data can plausibly need.
std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t max_bytes,
                                     const std::string& kind = "input");

// "a FIFO (named pipe)", "a directory", "a character device", ... for an
// existing path that is not a regular file; "" for a regular file or a
// missing path (follows symlinks).
std::string non_regular_file_kind(const std::string& path);

// True when `path` names an existing regular file (follows symlinks).
bool is_regular_file(const std::string& path);
// True when `path` names an existing directory.
bool is_directory(const std::string& path);
// Creates `path` and its parents (like mkdir -p). Throws CliError.
void make_directories(const std::string& path);
// Modification time in nanoseconds since the epoch; throws CliError if missing.
int64_t modification_time_ns(const std::string& path);

// Decompresses a complete gzip stream (one or more members). Throws CliError
// "<what>: truncated gzip data" / "<what>: corrupt gzip data (<zlib msg>)",
// and "<what>: decompresses to more than <max_out> bytes" as soon as the
// output passes `max_out` (a gzip bomb never gets allocated).
std::vector<uint8_t> gunzip_bytes(const uint8_t* data, size_t size, const std::string& what,
                                  uint64_t max_out);
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
