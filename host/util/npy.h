// NumPy array files for the host tools: .npy (format versions 1.0, 2.0 and 3.0) read and
// written, .npz archives (zip of .npy members, stored or deflated) read and written (stored).
// Every read is bounded and validated: the header's length, dtype, shape and the exact data size
// are checked before anything is allocated; a bad file is one CliError naming it, never a crash.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tinyzo {

// The element types tinyzo reads and writes (little-endian; numpy's '<' / '|' descr).
enum class NpyType : uint8_t { kInt8, kUint8, kInt16, kInt32, kInt64, kFloat32, kFloat64, kBool };
// numpy's descr for the type: "|i1", "<i4", "<f4", ...
const char* npy_descr(NpyType t);
size_t npy_item_bytes(NpyType t);
// "int8", "float32", ... (numpy's dtype names).
const char* npy_type_name(NpyType t);

// The largest .npy (or .npz member) read: more than any model input or intermediate tensor.
constexpr uint64_t kMaxNpyBytes = 1ull << 30;

struct NpyArray {
  NpyType type = NpyType::kInt8;
  std::vector<int64_t> shape;  // empty = a scalar (one element)
  std::vector<uint8_t> data;   // C order, little-endian, element count * item bytes

  int64_t n_elements() const;
  const int8_t* s8() const { return reinterpret_cast<const int8_t*>(data.data()); }
};

// numpy's shape text, "(1, 96, 96, 1)".
std::string npy_shape_string(const std::vector<int64_t>& shape);

// Parses .npy bytes. Throws CliError "<what>: <reason>" for a bad magic, an unsupported version,
// an oversized or malformed header, a big-endian or unsupported dtype, Fortran order, a shape
// whose byte size overflows or exceeds `max_bytes`, or data that is not exactly that size.
NpyArray parse_npy(const uint8_t* data, size_t size, const std::string& what, uint64_t max_bytes = kMaxNpyBytes);
// Reads a .npy file (at most max_bytes of data plus its header).
NpyArray read_npy_file(const std::string& path, uint64_t max_bytes = kMaxNpyBytes);
// .npy format version 1.0 bytes (2.0 only when the header outgrows 1.0's 16-bit length).
std::vector<uint8_t> serialize_npy(const NpyArray& a);
// serialize_npy() written atomically.
void write_npy_file(const std::string& path, const NpyArray& a);

// A .npz archive's members by name without the ".npy" suffix, in archive order.
struct NpzArchive {
  std::vector<std::string> names;
  std::map<std::string, NpyArray> arrays;
};
// Reads a .npz (zip; members stored or deflated, zip64 local headers as numpy writes them).
// Throws CliError for anything else: no end record, members out of bounds, a CRC mismatch,
// encrypted or otherwise compressed members, duplicate names, a member that is not a valid
// .npy, or more than `max_total_bytes` of uncompressed data.
NpzArchive read_npz_file(const std::string& path, uint64_t max_total_bytes = 4ull << 30);
NpzArchive parse_npz(const uint8_t* data, size_t size, const std::string& what,
                     uint64_t max_total_bytes = 4ull << 30);
// Writes a .npz (stored members, no compression) atomically; np.load reads it.
void write_npz_file(const std::string& path, const NpzArchive& archive);

}  // namespace tinyzo
