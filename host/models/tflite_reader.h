// Reads TensorFlow Lite model files (.tflite, FlatBuffers with identifier "TFL3") into plain
// host structs for the importer (host/models/tflite_import.h). Structural reading only: every
// byte is checked by flatbuffers::Verifier against tinyzo's schema subset
// (host/models/tflite/tflite_subset.fbs) before any field is read, then every index, shape and
// buffer size is checked; what an operator means is the importer's business.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tinyzo::tflite {

// The largest .tflite file read (the models tinyzo targets are a few MB).
constexpr uint64_t kMaxTfliteBytes = 256ull << 20;

// TensorFlow Lite's TensorType values (schema.fbs).
enum class TflType : int8_t {
  kFloat32 = 0, kFloat16 = 1, kInt32 = 2, kUint8 = 3, kInt64 = 4, kString = 5, kBool = 6, kInt16 = 7,
  kComplex64 = 8, kInt8 = 9, kFloat64 = 10, kComplex128 = 11, kUint64 = 12, kResource = 13, kVariant = 14,
  kUint32 = 15, kUint16 = 16, kInt4 = 17
};
// "INT8", "FLOAT32", ...; "TYPE(n)" for a value outside the enum.
std::string type_name(int type);
// Bytes per element, 0 for types without a fixed size (STRING, RESOURCE, VARIANT, INT4).
size_t type_size_bytes(int type);

// TensorFlow Lite's BuiltinOperator values that the importer names (others keep their number).
enum BuiltinOp : int32_t {
  kOpAdd = 0, kOpAveragePool2d = 1, kOpConv2d = 3, kOpDepthwiseConv2d = 4, kOpDequantize = 6,
  kOpFullyConnected = 9, kOpMaxPool2d = 17, kOpRelu = 19, kOpRelu6 = 21, kOpReshape = 22, kOpSoftmax = 25,
  kOpSvdf = 27, kOpCustom = 32, kOpPad = 34, kOpTranspose = 39, kOpMean = 40, kOpQuantize = 114
};
// "CONV_2D", "SVDF", ... for the operators of TensorFlow Lite's BuiltinOperator enum up to
// 161 (RIGHT_SHIFT); "BUILTIN(n)" beyond.
std::string builtin_name(int32_t code);

// ActivationFunctionType / Padding of the options tables.
enum class TflActivation : int8_t { kNone = 0, kRelu = 1, kReluN1To1 = 2, kRelu6 = 3, kTanh = 4, kSignBit = 5 };
enum class TflPadding : int8_t { kSame = 0, kValid = 1 };

struct TflTensor {
  std::string name;
  int type = 0;                     // TflType value as stored
  std::vector<int32_t> shape;       // every entry >= 0
  int64_t n_elements = 1;           // product of shape (1 for a scalar)
  uint32_t buffer = 0;              // index into the model's buffers
  const uint8_t* data = nullptr;    // constant data (points into TfliteModel::bytes), else null
  size_t data_size = 0;             // bytes at data: n_elements * type_size_bytes(type)
  bool is_variable = false;
  // Quantization: empty when absent. zero_points has the same length as scales.
  std::vector<float> scales;
  std::vector<int64_t> zero_points;
  int32_t quantized_dimension = 0;  // as stored (unchecked: see tflite_reader.cc)
  bool is_constant() const { return data != nullptr; }
};

// The builtin options that tinyzo reads, flattened; `options_type` is the BuiltinOptions union
// value (0 when absent) and says which fields were filled from the file (others keep these
// defaults, which are TensorFlow Lite's).
struct TflOptions {
  int options_type = 0;
  TflPadding padding = TflPadding::kSame;
  int32_t stride_w = 0, stride_h = 0;
  int32_t dilation_w = 1, dilation_h = 1;
  int32_t depth_multiplier = 0;
  int32_t filter_w = 0, filter_h = 0;
  TflActivation activation = TflActivation::kNone;
  int8_t weights_format = 0;        // FULLY_CONNECTED: 0 DEFAULT
  bool keep_num_dims = false;       // FULLY_CONNECTED
  bool asymmetric_quantize_inputs = false;
  int8_t quantized_bias_type = 0;   // CONV_2D / FULLY_CONNECTED: 0 (FLOAT32) = not set
  float beta = 0.f;                 // SOFTMAX
  bool keep_dims = false;           // MEAN
  bool pot_scale_int16 = true;      // ADD
  std::vector<int32_t> new_shape;   // RESHAPE
};

// Union values of the options tables above in TensorFlow Lite's BuiltinOptions.
enum OptionsType : int {
  kOptConv2d = 1, kOptDepthwiseConv2d = 2, kOptPool2d = 5, kOptFullyConnected = 8, kOptSoftmax = 9,
  kOptAdd = 11, kOptReshape = 17, kOptPad = 22, kOptTranspose = 26, kOptReducer = 27, kOptDequantize = 38,
  kOptQuantize = 89
};

struct TflOperator {
  int32_t builtin = 0;              // BuiltinOperator (the larger of the two code fields, as TFLite reads it)
  int32_t version = 1;
  std::string custom_code;          // for CUSTOM operators
  std::vector<int32_t> inputs;      // tensor indices; -1 = optional input absent
  std::vector<int32_t> outputs;
  bool has_intermediates = false;
  TflOptions options;
};

// A read model: subgraph 0 (the main graph; TensorFlow Lite runs that one).
struct TfliteModel {
  uint32_t schema_version = 0;
  std::string description;
  size_t n_subgraphs = 0;
  std::vector<TflTensor> tensors;
  std::vector<TflOperator> ops;     // in execution order
  std::vector<int32_t> inputs, outputs;
  std::vector<uint8_t> bytes;       // the file; TflTensor::data points into it

  TfliteModel() = default;
  TfliteModel(TfliteModel&&) = default;  // the vector's heap block moves, data pointers stay valid
  TfliteModel& operator=(TfliteModel&&) = default;
  TfliteModel(const TfliteModel&) = delete;
  TfliteModel& operator=(const TfliteModel&) = delete;
};

// Parses `bytes` (taken over). Throws CliError "<what>: <reason>" for anything that is not a
// well-formed TensorFlow Lite model in the subset tinyzo reads: a missing "TFL3" identifier,
// bytes that fail the FlatBuffers verifier (truncated, offsets out of range), schema version
// other than 3, no subgraph, an index out of range (naming the tensor / operator), a negative
// or overflowing shape, constant data whose size is not the shape's, data stored outside the
// FlatBuffer, sparse tensors, custom quantization, mismatched scale / zero point counts.
TfliteModel parse_tflite(std::vector<uint8_t> bytes, const std::string& what);

// Reads `path` (a regular file of at most kMaxTfliteBytes) and parses it.
TfliteModel read_tflite_file(const std::string& path);

// True when the bytes carry the TensorFlow Lite identifier "TFL3" at offset 4.
bool has_tflite_identifier(const uint8_t* data, size_t size);

}  // namespace tinyzo::tflite
