// Status codes of the device library. No exceptions cross any tinyzo API.
#pragma once

namespace tinyzo {

enum class [[nodiscard]] Status : int {
  kOk = 0,
  kInvalidArgument,  // a caller passed something the contract forbids
  kUnsupported,      // valid, but this build or op cannot do it
  kOutOfMemory,      // the caller-owned arena is too small
  kOutOfRange,       // an index, offset or count outside its table
  kCorruptModel,     // the model bytes fail a format check
  kInternal,         // a broken invariant inside tinyzo
  kCorruptData,      // stored data (not a model) fails a check: e.g. a weight slot for other layers
  kIoError,          // a storage device failed or read back what was not written
};

// A short, static, human-readable name ("ok", "corrupt model", ...).
const char* status_name(Status s);

#define TZ_RETURN_IF_ERROR(expr)                            \
  do {                                                      \
    const ::tinyzo::Status tz_status_ = (expr);             \
    if (tz_status_ != ::tinyzo::Status::kOk) return tz_status_; \
  } while (0)

}  // namespace tinyzo
