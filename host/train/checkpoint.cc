#include "train/checkpoint.h"

#include <cstring>
#include <type_traits>

#include "util/errors.h"
#include "util/file_util.h"
#include "tinyzo/model.h"

namespace tinyzo {

namespace {

constexpr size_t kFingerprintLen = 16;
// magic, version, fingerprint, step, best epoch, best val, val before, test
// before, log bytes, elapsed seconds, total MACs, layer count.
constexpr size_t kHeadBytes = 4 + 4 + kFingerprintLen + 4 + 4 + 8 + 8 + 8 + 8 + 8 + 8 + 4;
// A layer larger than this is not a conv of any model tinyzo runs; the bound
// keeps a corrupt count from asking for gigabytes.
constexpr uint32_t kMaxElements = 1u << 28;

class Writer {
 public:
  template <class T>
  void put(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // the host is little-endian (x86-64, AArch64)
    out_.insert(out_.end(), b, b + sizeof(T));
  }
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  std::vector<uint8_t>& data() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const std::string& what) : p_(p), n_(n), what_(what) {}
  template <class T>
  T get() {
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  const uint8_t* take(size_t n) {
    if (n > n_ - pos_) throw CliError(what_ + ": truncated checkpoint");
    const uint8_t* r = p_ + pos_;
    pos_ += n;
    return r;
  }
  size_t remaining() const { return n_ - pos_; }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  std::string what_;
};

bool has_momentum(const std::vector<CheckpointLayer>& layers) {
  for (const CheckpointLayer& l : layers)
    if (!l.momentum_w.empty() || !l.momentum_b.empty()) return true;
  return false;
}

void check_version(uint32_t version, const std::string& what) {
  if (version != 1 && version != kCheckpointVersion)
    throw CliError(what + ": checkpoint version " + std::to_string(version) + ", expected 1 or " +
                   std::to_string(kCheckpointVersion));
}

}  // namespace

std::vector<uint8_t> serialize_checkpoint(const Checkpoint& c) {
  if (c.fingerprint.size() != kFingerprintLen) throw CliError("checkpoint: fingerprint must be 16 characters");
  const bool v2 = has_momentum(c.layers);
  Writer w;
  w.put<uint32_t>(kCheckpointMagic);
  w.put<uint32_t>(v2 ? 2u : 1u);
  w.bytes(c.fingerprint.data(), kFingerprintLen);
  w.put<uint32_t>(c.step);
  w.put<int32_t>(c.best_epoch);
  w.put<double>(c.best_val);
  w.put<double>(c.val_before);
  w.put<double>(c.test_before);
  w.put<uint64_t>(c.log_bytes);
  w.put<double>(c.elapsed_seconds);
  w.put<uint64_t>(c.total_macs);
  w.put<uint32_t>(static_cast<uint32_t>(c.layers.size()));
  for (const CheckpointLayer& l : c.layers) {
    if (l.best_weights.size() != l.weights.size() || l.best_biases.size() != l.biases.size())
      throw CliError("checkpoint: best and current weights differ in size");
    w.put<int32_t>(l.op);
    w.put<uint8_t>(l.node ? 1 : 0);
    w.put<uint32_t>(static_cast<uint32_t>(l.weights.size()));
    w.put<uint32_t>(static_cast<uint32_t>(l.biases.size()));
    w.bytes(l.weights.data(), l.weights.size());
    w.bytes(l.biases.data(), l.biases.size() * 4);
    w.bytes(l.best_weights.data(), l.best_weights.size());
    w.bytes(l.best_biases.data(), l.best_biases.size() * 4);
    if (v2) {
      if ((!l.momentum_w.empty() && l.momentum_w.size() != l.weights.size()) ||
          (!l.momentum_b.empty() && l.momentum_b.size() != l.biases.size()))
        throw CliError("checkpoint: momentum and weights differ in size");
      w.put<uint32_t>(static_cast<uint32_t>(l.momentum_w.size()));
      w.put<uint32_t>(static_cast<uint32_t>(l.momentum_b.size()));
      w.bytes(l.momentum_w.data(), l.momentum_w.size() * 4);
      w.bytes(l.momentum_b.data(), l.momentum_b.size() * 4);
    }
  }
  const uint32_t crc = crc32_update(0, w.data().data(), w.data().size());
  w.put<uint32_t>(crc);
  return std::move(w.data());
}

Checkpoint parse_checkpoint(const uint8_t* data, size_t size, const std::string& what) {
  if (size < 12) throw CliError(what + ": truncated checkpoint");
  Reader r(data, size, what);
  if (r.get<uint32_t>() != kCheckpointMagic) throw CliError(what + ": not a tinyzo checkpoint");
  const uint32_t version = r.get<uint32_t>();
  check_version(version, what);
  uint32_t stored_crc;
  std::memcpy(&stored_crc, data + size - 4, 4);
  if (crc32_update(0, data, size - 4) != stored_crc) throw CliError(what + ": checksum mismatch (corrupt checkpoint)");
  Checkpoint c;
  const uint8_t* fp = r.take(kFingerprintLen);
  c.fingerprint.assign(reinterpret_cast<const char*>(fp), kFingerprintLen);
  c.step = r.get<uint32_t>();
  c.best_epoch = r.get<int32_t>();
  c.best_val = r.get<double>();
  c.val_before = r.get<double>();
  c.test_before = r.get<double>();
  c.log_bytes = r.get<uint64_t>();
  c.elapsed_seconds = r.get<double>();
  c.total_macs = r.get<uint64_t>();
  const uint32_t n = r.get<uint32_t>();
  if (n > 4096) throw CliError(what + ": implausible layer count " + std::to_string(n));
  for (uint32_t i = 0; i < n; ++i) {
    CheckpointLayer l;
    l.op = r.get<int32_t>();
    const uint8_t node = r.get<uint8_t>();
    if (node > 1)
      throw CliError(what + ": layer " + std::to_string(i) + " has perturbation mode " + std::to_string(node) +
                     ", expected 0 (WP) or 1 (NP)");
    l.node = node == 1;
    const uint32_t d_w = r.get<uint32_t>(), c_out = r.get<uint32_t>();
    if (d_w > kMaxElements || c_out > kMaxElements) throw CliError(what + ": implausible layer size");
    auto read_into = [&](auto& v, uint32_t count) {
      using T = typename std::decay_t<decltype(v)>::value_type;
      // The bytes must be there before anything is allocated for them (a corrupt count in
      // a small file must not allocate gigabytes), and an empty tensor copies nothing
      // (memcpy to an empty vector's null data() is undefined).
      const uint8_t* src = r.take(size_t(count) * sizeof(T));
      v.resize(count);
      if (count) std::memcpy(v.data(), src, size_t(count) * sizeof(T));
    };
    read_into(l.weights, d_w);
    read_into(l.biases, c_out);
    read_into(l.best_weights, d_w);
    read_into(l.best_biases, c_out);
    if (version >= 2) {
      const uint32_t n_mw = r.get<uint32_t>(), n_mb = r.get<uint32_t>();
      if ((n_mw != 0 && n_mw != d_w) || (n_mb != 0 && n_mb != c_out))
        throw CliError(what + ": layer " + std::to_string(i) + " has momentum of " + std::to_string(n_mw) + " + " +
                       std::to_string(n_mb) + " values for " + std::to_string(d_w) + " weights and " +
                       std::to_string(c_out) + " biases");
      read_into(l.momentum_w, n_mw);
      read_into(l.momentum_b, n_mb);
    }
    c.layers.push_back(std::move(l));
  }
  if (r.remaining() != 4) throw CliError(what + ": trailing bytes after the checkpoint");
  // One encoding per checkpoint: version 2 exists for momentum (serialize_checkpoint writes version 1 without it).
  if (version >= 2 && !has_momentum(c.layers))
    throw CliError(what + ": checkpoint version 2 without momentum (such a checkpoint is version 1)");
  return c;
}

void save_checkpoint(const std::string& path, const Checkpoint& c) {
  const std::vector<uint8_t> bytes = serialize_checkpoint(c);
  write_file_atomic(path, bytes.data(), bytes.size());
}

uint64_t checkpoint_size_bytes(const std::vector<CheckpointLayer>& layers) {
  uint64_t n = kHeadBytes + 4;  // + the CRC
  const bool v2 = has_momentum(layers);
  for (const CheckpointLayer& l : layers) {
    n += 13 + 2 * (uint64_t(l.weights.size()) + 4 * uint64_t(l.biases.size()));
    if (v2) n += 8 + 4 * (uint64_t(l.momentum_w.size()) + uint64_t(l.momentum_b.size()));
  }
  return n;
}

namespace {

CheckpointHead read_head(const InputFile& file) {
  const std::string& what = file.path();
  uint8_t b[kHeadBytes];
  if (file.size() < 8) throw CliError(what + ": truncated checkpoint");
  file.read_at(0, b, 8);
  Reader r(b, 8, what);
  if (r.get<uint32_t>() != kCheckpointMagic) throw CliError(what + ": not a tinyzo checkpoint");
  check_version(r.get<uint32_t>(), what);
  if (file.size() < kHeadBytes + 4) throw CliError(what + ": truncated checkpoint");
  file.read_at(0, b, kHeadBytes);
  Reader h(b + 8, kHeadBytes - 8, what);
  CheckpointHead head;
  head.fingerprint.assign(reinterpret_cast<const char*>(h.take(kFingerprintLen)), kFingerprintLen);
  head.step = h.get<uint32_t>();
  (void)h.take(4 + 8 * 3);  // best epoch, best val, val and test before
  head.log_bytes = h.get<uint64_t>();
  head.file_bytes = file.size();
  return head;
}

}  // namespace

CheckpointHead peek_checkpoint(const std::string& path) { return read_head(InputFile(path, "checkpoint")); }

Checkpoint load_checkpoint(const std::string& path, uint64_t max_bytes) {
  const InputFile file(path, "checkpoint");
  (void)read_head(file);  // a file that is not a checkpoint is refused before its size matters
  if (file.size() > max_bytes)
    throw CliError(path + ": " + std::to_string(file.size()) + " bytes, more than the " +
                   std::to_string(max_bytes) +
                   " expected (a checkpoint of other layers, or damaged); not read");
  const std::vector<uint8_t> bytes = file.read_all(max_bytes);
  return parse_checkpoint(bytes.data(), bytes.size(), path);
}

}  // namespace tinyzo
