// tflm_driver MODEL.tflite IN.npy OUT.npy
//
// Runs a .tflite with TensorFlow Lite Micro's reference interpreter on every item of IN.npy and
// writes the raw output tensors to OUT.npy: the cross-check runtime of scripts/tflm_crosscheck.sh
// (built out of the tinyzo tree against a TFLM checkout, never part of tinyzo).
//
// IN.npy holds the model input's dtype (int8 / uint8 / int16 / float32) and either exactly the
// input's shape (one item) or a leading item axis followed by the input's elements (N items, each
// the input's shape). OUT.npy has shape (N, output elements) with the output's dtype, or the
// output's shape when IN was a single item. Errors: one line on stderr, exit status 1.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "tflm_driver: error: %s\n", why.c_str());
  std::exit(1);
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) die(path + ": cannot open");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

struct Npy {
  std::string descr;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

// A minimal .npy reader (format 1.0 / 2.0 / 3.0, C order): enough for the inputs tinyzo writes
// and numpy saves.
Npy read_npy(const std::string& path) {
  const std::vector<uint8_t> b = read_all(path);
  if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) die(path + ": not a .npy file");
  size_t hlen = 0, at = 0;
  if (b[6] == 1) {
    hlen = size_t(b[8]) | size_t(b[9]) << 8;
    at = 10;
  } else {
    if (b.size() < 12) die(path + ": truncated");
    hlen = size_t(b[8]) | size_t(b[9]) << 8 | size_t(b[10]) << 16 | size_t(b[11]) << 24;
    at = 12;
  }
  if (at + hlen > b.size()) die(path + ": truncated header");
  const std::string h(reinterpret_cast<const char*>(b.data() + at), hlen);
  Npy n;
  const size_t d = h.find("'descr'");
  const size_t q1 = h.find('\'', h.find(':', d) + 1), q2 = h.find('\'', q1 + 1);
  if (d == std::string::npos || q1 == std::string::npos || q2 == std::string::npos) die(path + ": no descr");
  n.descr = h.substr(q1 + 1, q2 - q1 - 1);
  if (h.find("'fortran_order': True") != std::string::npos) die(path + ": Fortran order");
  const size_t s = h.find('(', h.find("'shape'")), e = h.find(')', s);
  std::string dims = h.substr(s + 1, e - s - 1);
  size_t p = 0;
  while (p < dims.size()) {
    while (p < dims.size() && (dims[p] == ' ' || dims[p] == ',')) ++p;
    if (p >= dims.size()) break;
    n.shape.push_back(std::stoll(dims.substr(p)));
    while (p < dims.size() && dims[p] != ',') ++p;
  }
  n.data.assign(b.begin() + long(at + hlen), b.end());
  return n;
}

void write_npy(const std::string& path, const std::string& descr, const std::vector<int64_t>& shape, const void* data,
               size_t size) {
  std::string dims;
  for (int64_t v : shape) dims += std::to_string(v) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 2);
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::ofstream f(path, std::ios::binary);
  const uint8_t head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, uint8_t(h.size() & 0xff), uint8_t(h.size() >> 8)};
  f.write(reinterpret_cast<const char*>(head), 10);
  f.write(h.data(), std::streamsize(h.size()));
  f.write(static_cast<const char*>(data), std::streamsize(size));
  if (!f) die(path + ": write failed");
}

const char* descr_of(TfLiteType t) {
  switch (t) {
    case kTfLiteInt8: return "|i1";
    case kTfLiteUInt8: return "|u1";
    case kTfLiteInt16: return "<i2";
    case kTfLiteInt32: return "<i4";
    case kTfLiteFloat32: return "<f4";
    default: die("unsupported tensor type " + std::to_string(int(t)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) die("usage: tflm_driver MODEL.tflite IN.npy OUT.npy");
  const std::vector<uint8_t> file = read_all(argv[1]);
  // The interpreter reads the model in place; FlatBuffers wants it 16-byte aligned.
  std::unique_ptr<uint64_t[]> model_mem(new uint64_t[(file.size() + 15) / 8]);
  std::memcpy(model_mem.get(), file.data(), file.size());
  const tflite::Model* model = tflite::GetModel(model_mem.get());
  if (model->version() != TFLITE_SCHEMA_VERSION) die("schema version " + std::to_string(model->version()));

  // The operators tinyzo imports and exports (docs/import.md).
  static tflite::MicroMutableOpResolver<13> resolver;
  resolver.AddConv2D();
  resolver.AddDepthwiseConv2D();
  resolver.AddFullyConnected();
  resolver.AddAdd();
  resolver.AddAveragePool2D();
  resolver.AddMaxPool2D();
  resolver.AddMean();
  resolver.AddPad();
  resolver.AddReshape();
  resolver.AddTranspose();
  resolver.AddSoftmax();
  resolver.AddQuantize();
  resolver.AddDequantize();

  const size_t arena_size = size_t(64) << 20;
  std::unique_ptr<uint64_t[]> arena(new uint64_t[arena_size / 8]);
  tflite::MicroInterpreter interp(model, resolver, reinterpret_cast<uint8_t*>(arena.get()), arena_size);
  if (interp.AllocateTensors() != kTfLiteOk) die(std::string(argv[1]) + ": AllocateTensors failed");
  TfLiteTensor* in = interp.input(0);
  TfLiteTensor* out = interp.output(0);

  const Npy x = read_npy(argv[2]);
  if (x.descr != descr_of(in->type)) die(std::string(argv[2]) + ": dtype " + x.descr + ", the model input is " + descr_of(in->type));
  if (x.data.size() % in->bytes != 0 || x.data.empty())
    die(std::string(argv[2]) + ": " + std::to_string(x.data.size()) + " bytes are not a whole number of inputs of " +
        std::to_string(in->bytes) + " bytes");
  const size_t n = x.data.size() / in->bytes;
  bool single = x.shape.size() == size_t(in->dims->size);
  for (int i = 0; single && i < in->dims->size; ++i) single = x.shape[size_t(i)] == in->dims->data[i];

  std::vector<uint8_t> y(n * out->bytes);
  for (size_t k = 0; k < n; ++k) {
    std::memcpy(in->data.raw, x.data.data() + k * in->bytes, in->bytes);
    if (interp.Invoke() != kTfLiteOk) die("Invoke failed on item " + std::to_string(k));
    std::memcpy(y.data() + k * out->bytes, out->data.raw, out->bytes);
  }
  std::vector<int64_t> shape;
  if (single) {
    for (int i = 0; i < out->dims->size; ++i) shape.push_back(out->dims->data[i]);
  } else {
    shape = {int64_t(n), int64_t(out->bytes / TfLiteTypeGetSize(out->type))};
  }
  write_npy(argv[3], descr_of(out->type), shape, y.data(), y.size());
  std::printf("tflm: %s: %zu item%s, arena %zu bytes used\n", argv[1], n, n == 1 ? "" : "s", interp.arena_used_bytes());
  return 0;
}
