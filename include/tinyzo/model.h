// ModelView: a validated, read-in-place view of a .tzm model (docs/format.md).
// No allocation: the view only keeps pointers into the caller's bytes, which
// must outlive it (on a device they sit in flash).
#pragma once
#include <cstddef>
#include <cstdint>

#include "tinyzo/model_format.h"
#include "tinyzo/span.h"
#include "tinyzo/status.h"

namespace tinyzo {

// Element size of a dtype in bytes (1, 4 or 4).
size_t dtype_size(DType t);
// Number of elements of a tensor record (product of its dims).
size_t tensor_elements(const TzmTensor& t);
// Computes CRC-32 (zlib's polynomial) of `n` bytes, continuing from `crc` (start with 0).
uint32_t crc32_update(uint32_t crc, const uint8_t* data, size_t n);

class ModelView {
 public:
  ModelView() = default;

  // Validates every header field, table, offset, count, blob, dtype, op type,
  // parameter and shape (see docs/format.md, "Validation"). On failure returns
  // kCorruptModel (or kUnsupported for a newer major version) and leaves the
  // view empty; error() then names the first failed check.
  Status init(const uint8_t* bytes, size_t size);

  bool valid() const { return header_ != nullptr; }
  const TzmHeader& header() const { return *header_; }
  int n_tensors() const { return static_cast<int>(header_->n_tensors); }
  int n_ops() const { return static_cast<int>(header_->n_ops); }
  const TzmTensor& tensor(int i) const { return tensors_[i]; }
  const TzmOp& op(int i) const { return ops_[i]; }
  int input_tensor() const { return header_->input_tensor; }
  int output_tensor() const { return header_->output_tensor; }

  // Constant blob of tensor i (valid only for constant tensors).
  const void* data(int i) const { return bytes_ + header_->data_offset + tensors_[i].data_offset; }
  // Per-channel float scales of tensor i (quant_count entries), or nullptr.
  const float* channel_scales(int i) const;
  // Index of the op that produces tensor i, or -1 (constants and the model input).
  int producer(int tensor) const;
  // Multiply-accumulates of op i for one sample.
  uint64_t op_macs(int i) const;
  // The model bytes (for checksumming and export).
  Span<const uint8_t> bytes() const { return Span<const uint8_t>(bytes_, size_); }

  // Static text naming the first failed validation check ("" when valid).
  const char* error() const { return error_; }

 private:
  Status fail(const char* why);
  Status validate_tensors();
  Status validate_ops();

  const uint8_t* bytes_ = nullptr;
  size_t size_ = 0;
  const TzmHeader* header_ = nullptr;
  const TzmTensor* tensors_ = nullptr;
  const TzmOp* ops_ = nullptr;
  const char* error_ = "";
};

}  // namespace tinyzo
