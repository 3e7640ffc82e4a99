#include "tinyzo/status.h"

namespace tinyzo {

const char* status_name(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kInvalidArgument: return "invalid argument";
    case Status::kUnsupported: return "unsupported";
    case Status::kOutOfMemory: return "out of memory";
    case Status::kOutOfRange: return "out of range";
    case Status::kCorruptModel: return "corrupt model";
    case Status::kInternal: return "internal error";
    case Status::kCorruptData: return "corrupt data";
    case Status::kIoError: return "storage error";
  }
  return "unknown status";
}

}  // namespace tinyzo
