// Test-only readers for the TFLite goldens in the shared data directory
// (models/tflite/, docs/import.md): the few FlatBuffer fields of a .tflite file
// an operator test needs (tensors, their quantization and constant data,
// operators with their options) and .npy / .npz (zip, stored or deflated)
// arrays. Not the importer's reader: just enough to feed one operator's TFLM
// input through a tinyzo kernel and compare with TFLM's output. Throws
// std::runtime_error on anything unexpected.
#pragma once
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace tinyzo::testing {

inline std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// ---- FlatBuffers: tables, vectors, scalars (little-endian, bounds-checked) ----

class FbView {
 public:
  explicit FbView(const std::vector<uint8_t>& b) : b_(b) {}
  template <class T>
  T get(size_t at) const {
    if (at + sizeof(T) > b_.size()) throw std::runtime_error("flatbuffer read out of range");
    T v;
    std::memcpy(&v, b_.data() + at, sizeof(T));
    return v;
  }
  size_t root() const { return get<uint32_t>(0); }
  // Position of field `id` inside table `table`, or 0 when absent.
  size_t field(size_t table, int id) const {
    const size_t vt = table - static_cast<size_t>(int64_t(get<int32_t>(table)));
    const uint16_t vsize = get<uint16_t>(vt);
    if (4u + 2u * id >= vsize) return 0;
    const uint16_t off = get<uint16_t>(vt + 4 + 2 * id);
    return off ? table + off : 0;
  }
  template <class T>
  T scalar(size_t table, int id, T dflt) const {
    const size_t at = field(table, id);
    return at ? get<T>(at) : dflt;
  }
  // Target of an offset field (table, vector or string), or 0.
  size_t deref(size_t table, int id) const {
    const size_t at = field(table, id);
    return at ? at + get<uint32_t>(at) : 0;
  }
  size_t vec_len(size_t vec) const { return vec ? get<uint32_t>(vec) : 0; }
  // Element i of a vector of tables.
  size_t vec_table(size_t vec, size_t i) const {
    const size_t at = vec + 4 + 4 * i;
    return at + get<uint32_t>(at);
  }
  template <class T>
  std::vector<T> vec_scalars(size_t vec) const {
    std::vector<T> v(vec_len(vec));
    for (size_t i = 0; i < v.size(); ++i) v[i] = get<T>(vec + 4 + sizeof(T) * i);
    return v;
  }

 private:
  const std::vector<uint8_t>& b_;
};

struct GoldenTensor {
  std::vector<int32_t> shape;
  int type = 0;  // TFLite TensorType: 0 FLOAT32, 2 INT32, 7 INT16, 9 INT8
  float scale = 0.f;
  int64_t zero_point = 0;
  std::vector<uint8_t> data;  // constant data (empty for activations)
};

struct GoldenOp {
  int32_t builtin = 0;
  std::vector<int32_t> inputs, outputs;
  // Options used by the operator tests (TFLite field defaults otherwise).
  int padding = 0;  // 0 SAME, 1 VALID
  int32_t stride_w = 1, stride_h = 1, filter_w = 1, filter_h = 1;
  int activation = 0;
  float beta = 1.f;
  bool keep_dims = false;
};

struct GoldenModel {
  std::vector<GoldenTensor> tensors;
  std::vector<GoldenOp> ops;
  std::vector<int32_t> inputs, outputs;
};

// schema.fbs field ids: Model {operator_codes 1, subgraphs 2, buffers 4}; OperatorCode
// {deprecated_builtin_code 0, builtin_code 3}; SubGraph {tensors 0, inputs 1, outputs 2,
// operators 3}; Tensor {shape 0, type 1, buffer 2, quantization 4}; QuantizationParameters
// {scale 2, zero_point 3}; Operator {opcode_index 0, inputs 1, outputs 2, builtin_options 4};
// Buffer {data 0}; Pool2DOptions {padding 0, stride_w 1, stride_h 2, filter_width 3,
// filter_height 4, fused_activation_function 5}; AddOptions {fused_activation_function 0};
// SoftmaxOptions {beta 0}; ReducerOptions {keep_dims 0}.
inline GoldenModel parse_golden_tflite(const std::vector<uint8_t>& bytes) {
  if (bytes.size() < 8 || std::memcmp(bytes.data() + 4, "TFL3", 4) != 0) throw std::runtime_error("not a .tflite");
  FbView fb(bytes);
  const size_t model = fb.root();
  const size_t codes = fb.deref(model, 1);
  const size_t buffers = fb.deref(model, 4);
  const size_t sub = fb.vec_table(fb.deref(model, 2), 0);
  GoldenModel m;
  const size_t tensors = fb.deref(sub, 0);
  for (size_t i = 0; i < fb.vec_len(tensors); ++i) {
    const size_t t = fb.vec_table(tensors, i);
    GoldenTensor g;
    g.shape = fb.vec_scalars<int32_t>(fb.deref(t, 0));
    g.type = fb.scalar<int8_t>(t, 1, 0);
    const uint32_t buf = fb.scalar<uint32_t>(t, 2, 0);
    if (buf != 0 && buf < fb.vec_len(buffers)) g.data = fb.vec_scalars<uint8_t>(fb.deref(fb.vec_table(buffers, buf), 0));
    if (const size_t q = fb.deref(t, 4)) {
      const std::vector<float> s = fb.vec_scalars<float>(fb.deref(q, 2));
      const std::vector<int64_t> z = fb.vec_scalars<int64_t>(fb.deref(q, 3));
      if (!s.empty()) g.scale = s[0];
      if (!z.empty()) g.zero_point = z[0];
    }
    m.tensors.push_back(std::move(g));
  }
  m.inputs = fb.vec_scalars<int32_t>(fb.deref(sub, 1));
  m.outputs = fb.vec_scalars<int32_t>(fb.deref(sub, 2));
  const size_t ops = fb.deref(sub, 3);
  for (size_t i = 0; i < fb.vec_len(ops); ++i) {
    const size_t o = fb.vec_table(ops, i);
    GoldenOp g;
    const size_t code = fb.vec_table(codes, fb.scalar<uint32_t>(o, 0, 0));
    const int32_t deprecated = fb.scalar<int8_t>(code, 0, 0);
    const int32_t builtin = fb.scalar<int32_t>(code, 3, 0);
    g.builtin = builtin > deprecated ? builtin : deprecated;
    g.inputs = fb.vec_scalars<int32_t>(fb.deref(o, 1));
    g.outputs = fb.vec_scalars<int32_t>(fb.deref(o, 2));
    if (const size_t opt = fb.deref(o, 4)) {
      switch (g.builtin) {
        case 1:   // AVERAGE_POOL_2D
        case 17:  // MAX_POOL_2D
          g.padding = fb.scalar<int8_t>(opt, 0, 0);
          g.stride_w = fb.scalar<int32_t>(opt, 1, 0);
          g.stride_h = fb.scalar<int32_t>(opt, 2, 0);
          g.filter_w = fb.scalar<int32_t>(opt, 3, 0);
          g.filter_h = fb.scalar<int32_t>(opt, 4, 0);
          g.activation = fb.scalar<int8_t>(opt, 5, 0);
          break;
        case 0:  // ADD
          g.activation = fb.scalar<int8_t>(opt, 0, 0);
          break;
        case 25:  // SOFTMAX
          g.beta = fb.scalar<float>(opt, 0, 0.f);
          break;
        case 40:  // MEAN
          g.keep_dims = fb.scalar<uint8_t>(opt, 0, 0) != 0;
          break;
        default: break;
      }
    }
    m.ops.push_back(std::move(g));
  }
  return m;
}

// ---- .npy / .npz ----

struct GoldenArray {
  std::string descr;  // "|i1", "<f4", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

inline GoldenArray parse_npy_bytes(const uint8_t* p, size_t n) {
  if (n < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) throw std::runtime_error("not a .npy");
  const int major = p[6];
  size_t header_len = 0, at = 0;
  if (major == 1) {
    header_len = p[8] | (size_t(p[9]) << 8);
    at = 10;
  } else {
    if (n < 12) throw std::runtime_error("short .npy");
    header_len = p[8] | (size_t(p[9]) << 8) | (size_t(p[10]) << 16) | (size_t(p[11]) << 24);
    at = 12;
  }
  if (at + header_len > n) throw std::runtime_error("short .npy header");
  const std::string h(reinterpret_cast<const char*>(p + at), header_len);
  GoldenArray a;
  const size_t d = h.find("'descr':");
  const size_t q1 = h.find('\'', d + 8), q2 = h.find('\'', q1 + 1);
  a.descr = h.substr(q1 + 1, q2 - q1 - 1);
  if (h.find("'fortran_order': False") == std::string::npos) throw std::runtime_error("fortran-order .npy");
  const size_t s = h.find('(', h.find("'shape':")), e = h.find(')', s);
  size_t count = 1;
  for (size_t i = s + 1; i < e;) {
    while (i < e && (h[i] < '0' || h[i] > '9')) ++i;
    if (i >= e) break;
    int64_t v = 0;
    while (i < e && h[i] >= '0' && h[i] <= '9') v = v * 10 + (h[i++] - '0');
    a.shape.push_back(v);
    count *= size_t(v);
  }
  const size_t item = a.descr.size() >= 3 ? size_t(a.descr[2] - '0') : 0;
  const size_t bytes = count * item;
  if (at + header_len + bytes != n) throw std::runtime_error(".npy size mismatch");
  a.data.assign(p + at + header_len, p + n);
  return a;
}

inline GoldenArray read_npy(const std::string& path) {
  const std::vector<uint8_t> b = read_file_bytes(path);
  return parse_npy_bytes(b.data(), b.size());
}

// Members of a .npz by name (without ".npy"): the central directory gives the sizes, the local
// headers the data; method 0 (stored) or 8 (deflate).
inline std::map<std::string, GoldenArray> read_npz(const std::string& path) {
  const std::vector<uint8_t> b = read_file_bytes(path);
  FbView v(b);  // for bounds-checked little-endian reads
  if (b.size() < 22) throw std::runtime_error(path + ": not a zip");
  size_t eocd = b.size() - 22;  // the end record, searched backwards over a trailing comment
  while (v.get<uint32_t>(eocd) != 0x06054b50u) {
    if (eocd == 0) throw std::runtime_error(path + ": no zip end record");
    --eocd;
  }
  const uint16_t count = v.get<uint16_t>(eocd + 10);
  size_t at = v.get<uint32_t>(eocd + 16);
  std::map<std::string, GoldenArray> out;
  for (uint16_t k = 0; k < count; ++k) {
    if (v.get<uint32_t>(at) != 0x02014b50u) throw std::runtime_error(path + ": bad central directory");
    const uint16_t method = v.get<uint16_t>(at + 10);
    const uint32_t csize = v.get<uint32_t>(at + 20), usize = v.get<uint32_t>(at + 24);
    const uint16_t nlen = v.get<uint16_t>(at + 28), xlen = v.get<uint16_t>(at + 30), clen = v.get<uint16_t>(at + 32);
    const uint32_t local = v.get<uint32_t>(at + 42);
    std::string name(reinterpret_cast<const char*>(b.data() + at + 46), nlen);
    at += 46 + nlen + xlen + clen;
    const size_t data = local + 30 + v.get<uint16_t>(local + 26) + v.get<uint16_t>(local + 28);
    if (data + csize > b.size()) throw std::runtime_error(path + ": member out of range");
    std::vector<uint8_t> raw(usize);
    if (method == 0) {
      std::memcpy(raw.data(), b.data() + data, usize);
    } else if (method == 8) {
      z_stream z{};
      if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw std::runtime_error("inflateInit2");
      z.next_in = const_cast<Bytef*>(b.data() + data);
      z.avail_in = csize;
      z.next_out = raw.data();
      z.avail_out = usize;
      const int rc = inflate(&z, Z_FINISH);
      inflateEnd(&z);
      if (rc != Z_STREAM_END || z.total_out != usize) throw std::runtime_error(path + ": inflate failed");
    } else {
      throw std::runtime_error(path + ": unsupported zip method");
    }
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    out[name] = parse_npy_bytes(raw.data(), raw.size());
  }
  return out;
}

}  // namespace tinyzo::testing
