// Training checkpoints (`DIR/checkpoint.bin`): everything a run needs to
// continue bit-identically. There is no random-generator state to save: every
// draw (perturbations, stochastic rounding, epoch order, augmentation) is a
// pure function of the run seed and the step / epoch / image index, so the
// step counter and the integer weights are the whole state, plus the float
// momentum buffers of a run with --momentum.
//
// File layout (little-endian; docs/training.md):
//   "TZCK" u32 version=1 | fingerprint (16 ASCII hex) | u32 step | i32 best_epoch
//   | f64 best_val | f64 val_before | f64 test_before | u64 log_bytes
//   | f64 elapsed_seconds | u64 total_macs | u32 n_layers
//   | per layer: i32 op, u8 node, u32 d_w, u32 c_out, d_w x i8 weights,
//     c_out x i32 biases, d_w x i8 best weights, c_out x i32 best biases
//     [version 2 only: u32 n_mw (0 or d_w), u32 n_mb (0 or c_out),
//      n_mw x f32 weight momentum, n_mb x f32 bias momentum]
//   | u32 CRC-32 of every byte before it
// Version 2 is written only when some layer has momentum, so a run without it
// writes the version-1 bytes it always did; both versions are read, and a
// version-2 file without momentum is refused (one encoding per checkpoint).
// Written to a temporary file, fsynced and renamed, so a crash leaves either
// the previous checkpoint or the new one, never a torn file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tinyzo {

struct CheckpointLayer {
  int op = -1;
  bool node = false;
  std::vector<int8_t> weights, best_weights;
  std::vector<int32_t> biases, best_biases;
  std::vector<float> momentum_w, momentum_b;  // ZoTrainer::momentum_w / _b; empty without momentum
};

struct Checkpoint {
  std::string fingerprint;     // config_fingerprint() of the run (16 hex digits)
  uint32_t step = 0;           // steps completed
  int32_t best_epoch = -1;     // epoch (1-based) of the best validation accuracy; -1 none yet
  double best_val = -1;        // its validation accuracy in [0, 1]
  double val_before = -1;      // accuracies of the start model, [0, 1]
  double test_before = -1;
  uint64_t log_bytes = 0;      // size of log.jsonl when this was written
  double elapsed_seconds = 0;  // training wall time so far
  uint64_t total_macs = 0;     // forward MACs of the training steps so far
  std::vector<CheckpointLayer> layers;
};

constexpr uint32_t kCheckpointMagic = 0x4B435A54u;  // "TZCK"
constexpr uint32_t kCheckpointVersion = 2;  // the newest; 1 (no momentum) is still read and written

std::vector<uint8_t> serialize_checkpoint(const Checkpoint& c);
// Throws CliError "<what>: ..." for a bad magic or version, a truncated file,
// a CRC mismatch or inconsistent sizes.
Checkpoint parse_checkpoint(const uint8_t* data, size_t size, const std::string& what);

// Bytes of the serialized checkpoint of `layers` (their weights, biases and
// momentum sizes): what a run's checkpoint must measure exactly.
uint64_t checkpoint_size_bytes(const std::vector<CheckpointLayer>& layers);

// The fixed-size head of a checkpoint file, read without the rest.
struct CheckpointHead {
  std::string fingerprint;
  uint32_t step = 0;
  uint64_t log_bytes = 0;
  uint64_t file_bytes = 0;  // size of the whole file
};
// Reads the head of `path` (magic, version, fingerprint, step, log length),
// nothing more. Throws CliError for a missing or non-regular file, a bad
// magic or version, or a file shorter than the head. The CRC is not checked
// here (load_checkpoint does).
CheckpointHead peek_checkpoint(const std::string& path);

// Atomic write (temporary file + rename); throws CliError.
void save_checkpoint(const std::string& path, const Checkpoint& c);
// Reads and checks a whole checkpoint. The file is refused from its size
// alone, before it is read, when it exceeds `max_bytes` (a run passes the
// exact size of its own checkpoint, checkpoint_size_bytes()).
constexpr uint64_t kMaxCheckpointBytes = uint64_t(1) << 31;
Checkpoint load_checkpoint(const std::string& path, uint64_t max_bytes = kMaxCheckpointBytes);

}  // namespace tinyzo
