// .npy / .npz reading and writing. See npy.h. Format references: numpy's
// "NEP 1 — A simple file format for NumPy arrays" and PKWARE's APPNOTE (zip).
#include "util/npy.h"

#include <zlib.h>

#include <cstring>
#include <limits>
#include <set>

#include "util/errors.h"
#include "util/file_util.h"

namespace tinyzo {

namespace {

constexpr uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr size_t kMaxHeaderBytes = 1 << 16;  // numpy itself refuses headers over 10,000 bytes by default
constexpr size_t kMaxDims = 32;              // numpy's NPY_MAXDIMS

[[noreturn]] void fail(const std::string& what, const std::string& reason) { throw CliError(what + ": " + reason); }

struct TypeInfo {
  NpyType type;
  const char* descr;
  const char* name;
  size_t bytes;
};
constexpr TypeInfo kTypes[] = {
    {NpyType::kInt8, "|i1", "int8", 1},       {NpyType::kUint8, "|u1", "uint8", 1},
    {NpyType::kInt16, "<i2", "int16", 2},     {NpyType::kInt32, "<i4", "int32", 4},
    {NpyType::kInt64, "<i8", "int64", 8},     {NpyType::kFloat32, "<f4", "float32", 4},
    {NpyType::kFloat64, "<f8", "float64", 8}, {NpyType::kBool, "|b1", "bool", 1},
};

const TypeInfo& info(NpyType t) {
  for (const TypeInfo& i : kTypes)
    if (i.type == t) return i;
  return kTypes[0];
}

// Parser of the header dict, a Python literal such as
// {'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& what) : s_(text), what_(what) {}

  void parse(std::string* descr, bool* fortran, std::vector<int64_t>* shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') {
        ++i_;
        break;
      }
      const std::string key = string_literal();
      expect(':');
      skip_ws();
      if (key == "descr") {
        *descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        *fortran = boolean();
        have_fortran = true;
      } else if (key == "shape") {
        *shape = tuple();
        have_shape = true;
      } else {
        bad("unknown header key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect('}');
      break;
    }
    skip_ws();
    if (i_ != s_.size()) bad("text after the header dict");
    if (!have_descr || !have_fortran || !have_shape) bad("header lacks 'descr', 'fortran_order' or 'shape'");
  }

 private:
  [[noreturn]] void bad(const std::string& why) { fail(what_, "malformed .npy header (" + why + ")"); }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string string_literal() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a string");
    ++i_;
    const size_t start = i_;
    while (i_ < s_.size() && s_[i_] != q) ++i_;
    if (i_ >= s_.size()) bad("unterminated string");
    return s_.substr(start, i_++ - start);
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    bad("expected True or False");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> out;
    expect('(');
    for (;;) {
      skip_ws();
      if (peek() == ')') {
        ++i_;
        return out;
      }
      if (peek() < '0' || peek() > '9') bad("expected a dimension");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) bad("dimension too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (peek() == 'L') ++i_;  // Python 2 longs
      out.push_back(v);
      if (out.size() > kMaxDims) bad("more than 32 dimensions");
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect(')');
      return out;
    }
  }

  const std::string& s_;
  const std::string& what_;
  size_t i_ = 0;
};

NpyType type_from_descr(const std::string& d, const std::string& what) {
  if (d.size() >= 2) {
    const char order = d[0];
    const std::string code = d.substr(1);
    for (const TypeInfo& t : kTypes) {
      if (code != std::string(t.descr + 1)) continue;
      // One-byte types have no byte order ('|'); numpy also accepts '<' or '=' for them.
      if (order == '<' || order == '|' || (order == '=' && t.bytes > 0)) return t.type;
      if (order == '>' && t.bytes == 1) return t.type;
      fail(what, "big-endian dtype '" + d + "' is not supported (save little-endian)");
    }
  }
  fail(what, "dtype '" + d + "' is not supported (int8, uint8, int16, int32, int64, float32, float64, bool)");
}

uint32_t read_u32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint16_t read_u16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
uint64_t read_u64(const uint8_t* p) { return uint64_t(read_u32(p)) | uint64_t(read_u32(p + 4)) << 32; }
void put_u16(std::vector<uint8_t>& b, uint16_t v) { b.push_back(uint8_t(v)); b.push_back(uint8_t(v >> 8)); }
void put_u32(std::vector<uint8_t>& b, uint32_t v) { put_u16(b, uint16_t(v)); put_u16(b, uint16_t(v >> 16)); }

}  // namespace

const char* npy_descr(NpyType t) { return info(t).descr; }
size_t npy_item_bytes(NpyType t) { return info(t).bytes; }
const char* npy_type_name(NpyType t) { return info(t).name; }

int64_t NpyArray::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string npy_shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

NpyArray parse_npy(const uint8_t* data, size_t size, const std::string& what, uint64_t max_bytes) {
  if (size < 10 || std::memcmp(data, kMagic, 6) != 0) fail(what, "not a .npy file (no \\x93NUMPY magic)");
  const uint8_t major = data[6];
  size_t header_len = 0, pos = 0;
  if (major == 1) {
    header_len = read_u16(data + 8);
    pos = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) fail(what, "truncated .npy header");
    header_len = read_u32(data + 8);
    pos = 12;
  } else {
    fail(what, ".npy format version " + std::to_string(major) + "." + std::to_string(data[7]) +
                   " is not supported (1.0, 2.0, 3.0)");
  }
  if (header_len > kMaxHeaderBytes) fail(what, ".npy header of " + std::to_string(header_len) + " bytes (at most 65536)");
  if (header_len > size - pos) fail(what, "truncated .npy header");
  const std::string header(reinterpret_cast<const char*>(data + pos), header_len);
  pos += header_len;
  std::string descr;
  bool fortran = false;
  NpyArray a;
  HeaderParser(header, what).parse(&descr, &fortran, &a.shape);
  a.type = type_from_descr(descr, what);
  if (fortran) fail(what, "Fortran-order arrays are not supported (save with np.ascontiguousarray)");
  uint64_t bytes = npy_item_bytes(a.type);
  for (int64_t d : a.shape) {
    if (d != 0 && bytes > max_bytes / uint64_t(d)) {
      fail(what, "shape " + npy_shape_string(a.shape) + " is more than " + std::to_string(max_bytes) + " bytes");
    }
    bytes *= uint64_t(d);
  }
  if (bytes > max_bytes) fail(what, "shape " + npy_shape_string(a.shape) + " is more than " + std::to_string(max_bytes) + " bytes");
  if (size - pos != bytes)
    fail(what, "shape " + npy_shape_string(a.shape) + " " + npy_type_name(a.type) + " needs " + std::to_string(bytes) +
                   " data bytes, the file has " + std::to_string(size - pos));
  a.data.assign(data + pos, data + size);
  return a;
}

NpyArray read_npy_file(const std::string& path, uint64_t max_bytes) {
  const std::vector<uint8_t> b = read_file_bytes(path, max_bytes + 12 + kMaxHeaderBytes, ".npy");
  return parse_npy(b.data(), b.size(), path, max_bytes);
}

std::vector<uint8_t> serialize_npy(const NpyArray& a) {
  std::string header = std::string("{'descr': '") + npy_descr(a.type) + "', 'fortran_order': False, 'shape': " +
                       npy_shape_string(a.shape) + ", }";
  // Pad with spaces to a 64-byte boundary (numpy >= 1.x does), ending in '\n'.
  const bool v2 = header.size() + 1 + 10 > 65535;
  const size_t prefix = v2 ? 12 : 10;
  const size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header.push_back('\n');
  std::vector<uint8_t> out(kMagic, kMagic + 6);
  out.push_back(v2 ? 2 : 1);
  out.push_back(0);
  if (v2) put_u32(out, uint32_t(header.size()));
  else put_u16(out, uint16_t(header.size()));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), a.data.begin(), a.data.end());
  return out;
}

void write_npy_file(const std::string& path, const NpyArray& a) {
  const std::vector<uint8_t> b = serialize_npy(a);
  write_file_atomic(path, b.data(), b.size());
}

// ---- .npz (zip) ----

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64LocatorSig = 0x07064b50, kEnd64Sig = 0x06064b50;

std::vector<uint8_t> inflate_raw(const uint8_t* data, size_t size, uint64_t out_size, const std::string& what) {
  std::vector<uint8_t> out(static_cast<size_t>(out_size));
  z_stream zs{};
  if (inflateInit2(&zs, -15) != Z_OK) fail(what, "zlib initialisation failed");
  zs.next_in = const_cast<Bytef*>(data);
  zs.avail_in = uInt(size);
  zs.next_out = out.data();
  zs.avail_out = uInt(out.size());
  const int ret = inflate(&zs, Z_FINISH);
  const bool ok = ret == Z_STREAM_END && zs.avail_out == 0;
  const std::string msg = zs.msg != nullptr ? zs.msg : "";
  inflateEnd(&zs);
  if (!ok) fail(what, "corrupt deflate data" + (msg.empty() ? std::string() : " (" + msg + ")"));
  return out;
}

}  // namespace

NpzArchive parse_npz(const uint8_t* data, size_t size, const std::string& what, uint64_t max_total_bytes) {
  if (size < 22) fail(what, "not a .npz (zip) file");
  // The end-of-central-directory record: the last 22 bytes plus up to 64 KB of comment.
  size_t end = size;
  const size_t lowest = size >= 22 + 65535 ? size - 22 - 65535 : 0;
  for (size_t p = size - 22 + 1; p-- > lowest;) {
    if (read_u32(data + p) == kEndSig && p + 22 + read_u16(data + p + 20) == size) {
      end = p;
      break;
    }
  }
  if (end == size) fail(what, "not a .npz (zip) file: no end-of-central-directory record");
  uint64_t n_entries = read_u16(data + end + 10);
  uint64_t cd_size = read_u32(data + end + 12);
  uint64_t cd_offset = read_u32(data + end + 16);
  if (read_u16(data + end + 4) != 0 || read_u16(data + end + 6) != 0) fail(what, "multi-disk zip archives are not supported");
  if ((n_entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_offset == 0xFFFFFFFFu) && end >= 20 &&
      read_u32(data + end - 20) == kEnd64LocatorSig) {
    const uint64_t e64 = read_u64(data + end - 20 + 8);
    if (size < 56 || e64 > size - 56 || read_u32(data + e64) != kEnd64Sig) fail(what, "corrupt zip64 end record");
    n_entries = read_u64(data + e64 + 32);
    cd_size = read_u64(data + e64 + 40);
    cd_offset = read_u64(data + e64 + 48);
  }
  if (cd_offset > size || cd_size > size - cd_offset) fail(what, "central directory out of bounds (truncated file?)");
  if (n_entries > cd_size / 46) fail(what, "central directory too short for " + std::to_string(n_entries) + " members");

  NpzArchive out;
  std::set<std::string> seen;
  uint64_t total = 0;
  size_t p = size_t(cd_offset);
  const size_t cd_end = size_t(cd_offset + cd_size);
  for (uint64_t e = 0; e < n_entries; ++e) {
    if (cd_end - p < 46 || read_u32(data + p) != kCentralSig) fail(what, "corrupt central directory entry " + std::to_string(e));
    const uint16_t flags = read_u16(data + p + 8);
    const uint16_t method = read_u16(data + p + 10);
    const uint32_t crc = read_u32(data + p + 16);
    uint64_t csize = read_u32(data + p + 20);
    uint64_t usize = read_u32(data + p + 24);
    const size_t name_len = read_u16(data + p + 28), extra_len = read_u16(data + p + 30), comment_len = read_u16(data + p + 32);
    uint64_t local = read_u32(data + p + 42);
    if (cd_end - p - 46 < name_len + extra_len + comment_len) fail(what, "corrupt central directory entry " + std::to_string(e));
    std::string name(reinterpret_cast<const char*>(data + p + 46), name_len);
    // zip64 extra field: the 64-bit values of the fields set to 0xFFFFFFFF, in order.
    const uint8_t* x = data + p + 46 + name_len;
    for (size_t q = 0; q + 4 <= extra_len;) {
      const uint16_t id = read_u16(x + q), len = read_u16(x + q + 2);
      if (q + 4 + len > extra_len) break;
      if (id == 1) {
        size_t r = q + 4;
        auto take = [&](uint64_t* v) {
          if (*v != 0xFFFFFFFFu) return;
          if (r + 8 > q + 4 + len) fail(what, name + ": corrupt zip64 field");
          *v = read_u64(x + r);
          r += 8;
        };
        take(&usize);
        take(&csize);
        take(&local);
      }
      q += 4 + size_t(len);
    }
    p += 46 + name_len + extra_len + comment_len;
    const std::string member = what + ": " + name;
    if (flags & 1) fail(member, "encrypted zip members are not supported");
    if (method != 0 && method != 8) fail(member, "zip compression method " + std::to_string(method) + " is not supported (stored or deflate)");
    if (usize > kMaxNpyBytes + 12 + kMaxHeaderBytes) fail(member, "member of " + std::to_string(usize) + " bytes is too large");
    total += usize;
    if (total > max_total_bytes) fail(what, "more than " + std::to_string(max_total_bytes) + " bytes uncompressed");
    if (local > size || size - local < 30 || read_u32(data + local) != kLocalSig) fail(member, "local header out of bounds or corrupt");
    const uint64_t data_start = local + 30 + read_u16(data + local + 26) + read_u16(data + local + 28);
    if (data_start > size || csize > size - data_start) fail(member, "data out of bounds (truncated file?)");
    if (method == 0 && csize != usize) fail(member, "stored member with different sizes");
    std::vector<uint8_t> bytes = method == 0 ? std::vector<uint8_t>(data + data_start, data + data_start + csize)
                                             : inflate_raw(data + data_start, size_t(csize), usize, member);
    if (uint32_t(crc32(0L, bytes.data(), uInt(bytes.size()))) != crc) fail(member, "CRC-32 mismatch (corrupt archive)");
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    if (!seen.insert(name).second) fail(what, "duplicate member '" + name + "'");
    out.arrays.emplace(name, parse_npy(bytes.data(), bytes.size(), member));
    out.names.push_back(name);
  }
  return out;
}

NpzArchive read_npz_file(const std::string& path, uint64_t max_total_bytes) {
  const std::vector<uint8_t> b = read_file_bytes(path, max_total_bytes + (64u << 20), ".npz");
  return parse_npz(b.data(), b.size(), path, max_total_bytes);
}

void write_npz_file(const std::string& path, const NpzArchive& archive) {
  std::vector<uint8_t> out, central;
  for (const std::string& name : archive.names) {
    const auto it = archive.arrays.find(name);
    if (it == archive.arrays.end()) throw CliError(path + ": no array named '" + name + "'");
    const std::vector<uint8_t> npy = serialize_npy(it->second);
    const std::string fname = name + ".npy";
    if (out.size() > 0xFFFFFFFFu - npy.size() - 1024) throw CliError(path + ": archive over 4 GB");
    const uint32_t crc = uint32_t(crc32(0L, npy.data(), uInt(npy.size())));
    const uint32_t offset = uint32_t(out.size());
    // Local header: version 20, no flags, stored, DOS time 1980-01-01.
    put_u32(out, kLocalSig); put_u16(out, 20); put_u16(out, 0); put_u16(out, 0); put_u16(out, 0); put_u16(out, 0x21);
    put_u32(out, crc); put_u32(out, uint32_t(npy.size())); put_u32(out, uint32_t(npy.size()));
    put_u16(out, uint16_t(fname.size())); put_u16(out, 0);
    out.insert(out.end(), fname.begin(), fname.end());
    out.insert(out.end(), npy.begin(), npy.end());
    put_u32(central, kCentralSig); put_u16(central, 20); put_u16(central, 20); put_u16(central, 0); put_u16(central, 0);
    put_u16(central, 0); put_u16(central, 0x21); put_u32(central, crc); put_u32(central, uint32_t(npy.size()));
    put_u32(central, uint32_t(npy.size())); put_u16(central, uint16_t(fname.size())); put_u16(central, 0);
    put_u16(central, 0); put_u16(central, 0); put_u16(central, 0); put_u32(central, 0); put_u32(central, offset);
    central.insert(central.end(), fname.begin(), fname.end());
  }
  if (archive.names.size() > 0xFFFF) throw CliError(path + ": more than 65535 arrays");
  const uint32_t cd_offset = uint32_t(out.size());
  out.insert(out.end(), central.begin(), central.end());
  put_u32(out, kEndSig); put_u16(out, 0); put_u16(out, 0);
  put_u16(out, uint16_t(archive.names.size())); put_u16(out, uint16_t(archive.names.size()));
  put_u32(out, uint32_t(central.size())); put_u32(out, cd_offset); put_u16(out, 0);
  write_file_atomic(path, out.data(), out.size());
}

}  // namespace tinyzo
