#include "util/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "util/errors.h"

namespace tinyzo {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

[[noreturn]] void throw_io(const std::string& path, int err) {
  throw CliError(path + ": " + errno_text(err));
}

}  // namespace

namespace {

std::string mode_kind(mode_t m) {
  if (S_ISREG(m)) return "";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

}  // namespace

std::string non_regular_file_kind(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "";
  return mode_kind(st.st_mode);
}

InputFile::InputFile(const std::string& path, const std::string& kind) : path_(path), kind_(kind) {
  if (path.empty()) throw CliError("empty path (expected a " + kind + " file)");
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused
  // below by its type, which fstat reads from the open descriptor (no race
  // between the check and the read).
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) throw_io(path, errno);
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw_io(path, err);
  }
  const std::string what = mode_kind(st.st_mode);
  if (!what.empty()) {
    ::close(fd_);
    fd_ = -1;
    throw CliError(path + ": is " + what + ", expected a regular " + kind + " file");
  }
  size_ = uint64_t(st.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void InputFile::require_at_most(uint64_t max_bytes) const {
  if (size_ > max_bytes)
    throw CliError(path_ + ": " + std::to_string(size_) + " bytes, more than any " + kind_ + " (at most " +
                   std::to_string(max_bytes) + " bytes); not read");
}

void InputFile::read_at(uint64_t offset, void* dst, size_t n) const {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, size_t(1) << 30);
    const ssize_t got = ::pread(fd_, p, chunk, off_t(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw_io(path_, errno);
    if (got == 0) throw CliError(path_ + ": shorter than its size (changed while being read?)");
    p += got;
    offset += uint64_t(got);
    n -= size_t(got);
  }
}

std::vector<uint8_t> InputFile::read_all(uint64_t max_bytes) const {
  require_at_most(max_bytes);
  std::vector<uint8_t> bytes(static_cast<size_t>(size_));
  read_at(0, bytes.data(), bytes.size());
  return bytes;
}

std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t max_bytes, const std::string& kind) {
  return InputFile(path, kind).read_all(max_bytes);
}

bool is_regular_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void make_directories(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw CliError(path + ": cannot create directory: " + ec.message());
  if (!is_directory(path)) throw CliError(path + ": exists and is not a directory");
}

int64_t modification_time_ns(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw_io(path, errno);
  return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::vector<uint8_t> gunzip_bytes(const uint8_t* data, size_t size, const std::string& what,
                                  uint64_t max_out) {
  if (!has_gzip_magic(data, size)) throw CliError(what + ": not gzip data");
  std::vector<uint8_t> out;
  z_stream zs{};
  // 15 + 16: a gzip wrapper (not zlib, not raw deflate), largest window.
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw CliError(what + ": zlib initialisation failed");
  size_t pos = 0;
  uint8_t buf[1 << 16];
  int ret = Z_OK;
  // One pass per gzip member: `gzip a; gzip b; cat` streams are legal gzip.
  while (pos < size) {
    zs.next_in = const_cast<Bytef*>(data + pos);
    const size_t chunk = std::min<size_t>(size - pos, 1u << 30);
    zs.avail_in = static_cast<uInt>(chunk);
    do {
      zs.next_out = buf;
      zs.avail_out = sizeof buf;
      ret = inflate(&zs, Z_NO_FLUSH);
      if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_MEM_ERROR || ret == Z_STREAM_ERROR) {
        const std::string msg = zs.msg != nullptr ? zs.msg : "invalid data";
        inflateEnd(&zs);
        throw CliError(what + ": corrupt gzip data (" + msg + ")");
      }
      out.insert(out.end(), buf, buf + (sizeof buf - zs.avail_out));
      if (out.size() > max_out) {
        inflateEnd(&zs);
        throw CliError(what + ": decompresses to more than " + std::to_string(max_out) +
                       " bytes; not read further");
      }
      // Loop while input remains, or while the last call filled the output
      // buffer (inflate may hold more output without needing more input).
    } while (ret != Z_STREAM_END && (zs.avail_in > 0 || zs.avail_out == 0));
    pos += chunk - zs.avail_in;
    if (ret == Z_STREAM_END) {
      // Trailing zero padding after the last member is tolerated (tar-style).
      bool only_zeros = true;
      for (size_t i = pos; i < size && only_zeros; ++i) only_zeros = data[i] == 0;
      if (pos >= size || only_zeros) break;
      if (!has_gzip_magic(data + pos, size - pos)) {
        inflateEnd(&zs);
        throw CliError(what + ": corrupt gzip data (garbage after the compressed stream)");
      }
      inflateReset(&zs);
      ret = Z_OK;
    } else if (pos >= size) {
      break;  // input exhausted mid-stream: truncated
    }
  }
  inflateEnd(&zs);
  if (ret != Z_STREAM_END) throw CliError(what + ": truncated gzip data (the file ends inside the compressed stream)");
  return out;
}

std::string sibling_temp_path(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  if (path_.empty()) throw CliError("empty output path");
  if (is_directory(path_)) throw CliError(path_ + ": is a directory");
  temp_path_ = sibling_temp_path(path_);
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (file_ == nullptr) {
    const int err = errno;
    // Report the path the user named, not our temporary one.
    throw CliError(path_ + ": cannot write: " + errno_text(err));
  }
}

AtomicFileWriter::~AtomicFileWriter() { abandon(); }

void AtomicFileWriter::abandon() noexcept {
  if (file_ != nullptr) {
    std::fclose(file_);
    file_ = nullptr;
    std::remove(temp_path_.c_str());
  }
}

void AtomicFileWriter::write(const void* data, size_t size) {
  if (file_ == nullptr) throw CliError(path_ + ": write after commit");
  if (size != 0 && std::fwrite(data, 1, size, file_) != size) {
    const int err = errno;
    abandon();
    throw CliError(path_ + ": write failed: " + errno_text(err));
  }
}

void AtomicFileWriter::write_u32(uint32_t v) {
  const uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  write(b, 4);
}

void AtomicFileWriter::commit() {
  if (file_ == nullptr) throw CliError(path_ + ": commit twice");
  int err = 0;
  if (std::fflush(file_) != 0 || ::fsync(fileno(file_)) != 0) err = errno;
  if (err != 0) {
    abandon();
    throw CliError(path_ + ": write failed: " + errno_text(err));
  }
  std::FILE* f = file_;
  file_ = nullptr;
  if (std::fclose(f) != 0) {
    err = errno;
    std::remove(temp_path_.c_str());
    throw CliError(path_ + ": write failed: " + errno_text(err));
  }
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    err = errno;
    std::remove(temp_path_.c_str());
    throw CliError(path_ + ": cannot rename into place: " + errno_text(err));
  }
  // The rename itself reaches the disk with the directory: without this a
  // power cut could bring back the old file (or none) after we reported the new.
  const size_t slash = path_.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);  // best effort: some file systems refuse fsync on a directory
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  AtomicFileWriter w(path);
  w.write(data, size);
  w.commit();
}

}  // namespace tinyzo
