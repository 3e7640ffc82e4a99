// tinyzo firmware: int8 inference and quantized zeroth-order training of the
// embedded model on a Cortex-M (QEMU mps2-an386 / mps2-an500), inside the SRAM
// budget the linker script enforces.
//
//   <elf> info
//   <elf> infer SAMPLES LOGITS_OUT [n=N] [first=K]
//   <elf> train SAMPLES WEIGHTS_OUT [key=value ...]     (keys: firmware/common/fw_protocol.h,
//                                                        persistence keys: fw_persist.h)
//   <elf> persist STORE DUMP_OUT [save=1] [key=value ...] (power-safe weights: boot from the
//                                                        slots, dump; save=1: write new ones)
//   <elf> size RSP_OUT [key=value ...]                  (the probe image: measures an arena)
//   <elf> fault-stack | fault-flash                     (the MPU guards must fire: exit 99)
//   <elf> kernel-test [cases=N] [seed=S]                (armv7em-dsp vs ref kernels: kernel_selftest.cc)
//   <elf> float-check [n=N] [seed=S]                    (binary32 digests to compare with `tinyzo fw-floatcheck`)
//
// Placement, as on a real part: the .tzm model is `const` in flash (section
// .model, read in place by ModelView; the MPU makes flash read-only); the only
// SRAM is the stack, a few static objects and one arena (section .arena, sized
// at build time for the image's job) that holds the engine's activations and
// the trainer's copies of the trainable tensors and its buffers. Samples are
// streamed from a host file one at a time, straight into the engine's input
// tensor; results go back through semihosting. Exit status 0 on success, 1 for
// a usage error, 2 for a failed run (host file, arena too small, ...).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "board.h"
#include "fw_floatcheck.h"
#include "fw_persist.h"
#include "fw_protocol.h"
#include "host_flash.h"
#include "semihost.h"
#include "tinyzo/arena.h"
#include "tinyzo/engine.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/model.h"
#include "tinyzo/slot_store.h"
#include "tinyzo/train/weight_slots.h"
#include "tinyzo/train/zo_trainer.h"

int run_kernel_test(int argc, char** argv);  // kernel_selftest.cc

extern "C" const uint8_t tz_model_start[];
extern "C" const uint8_t tz_model_end[];

// Called before every forward of `infer` and after the last; in `train` at the
// start of every step, before every sample, and after the last step. The
// instruction-count plugin (tools/qemu_plugin) records its count at each call.
extern "C" __attribute__((noinline, used)) void tz_fw_mark(void) { __asm__ volatile("" ::: "memory"); }

namespace {

using tinyzo::Arena;
using tinyzo::Engine;
using tinyzo::ModelView;
using tinyzo::Span;
using tinyzo::Status;
using tinyzo::ZoTrainer;
namespace fw = tinyzo::fw;

constexpr int kUsage = 1, kRunFailed = 2;
constexpr int kMaxClasses = 64;

// Static, so they show in the linker's .bss figure.
ModelView g_model;
Engine g_engine;
ZoTrainer* g_trainers[fw::kMaxGroups];  // constructed in the arena (fw::create_trainers)
Arena g_arena;
size_t g_engine_bytes = 0, g_trainer_bytes = 0;

// ------------------------------------------------------------------ command line

constexpr int kMaxArgs = 24;
char g_cmdline[512];  // train with persistence names up to five host paths
char* g_argv[kMaxArgs];
int g_argc = 0;

void split_cmdline() {
  if (sh_cmdline(g_cmdline, sizeof g_cmdline) < 0) {
    board_printf("FAIL: the command line is longer than %u bytes (shorter paths?)\n", unsigned(sizeof g_cmdline - 1));
    sh_exit(kUsage);
  }
  char* p = g_cmdline;
  while (*p && g_argc < kMaxArgs) {
    while (*p == ' ') *p++ = 0;
    if (!*p) break;
    g_argv[g_argc++] = p;
    while (*p && *p != ' ') ++p;
  }
}

[[noreturn]] void fail(int code, const char* what, Status s) {
  board_printf("FAIL: %s: %s\n", what, tinyzo::status_name(s));
  sh_exit(code);
}

// ------------------------------------------------------------------ memory report

size_t static_ram_bytes() { return size_t(__bss_end__ - __data_start__); }

void print_memory(const char* job) {
  const size_t ram = size_t(__ram_size__);
  const size_t stack = size_t(__stack_top__ - __stack_limit__);
  const size_t arena = size_t(__arena_end__ - __arena_start__);
  const size_t used_end = size_t(__arena_end__ - __ram_origin__);
  // The stack lives in the RAM region (mps2) or in a memory of its own (the STM32F405's CCM).
  const uintptr_t stack_lo = reinterpret_cast<uintptr_t>(__stack_limit__);
  const uintptr_t ram_lo = reinterpret_cast<uintptr_t>(__ram_origin__);
  const bool stack_in_ram = stack_lo >= ram_lo && stack_lo < ram_lo + ram;
  board_printf(
      "MEM job=%s core=%s ram_budget=%u ram_linked=%u stack_region=%u stack_guard=%u stack_peak=%u "
      "stack_in=%s data_bss=%u arena_reserved=%u arena_used=%u engine_arena=%u trainer_arena=%u "
      "peak_sram=%u model_flash=%u\n",
      job, board_core_name(), unsigned(ram), unsigned(used_end), unsigned(stack),
      unsigned(size_t(__stack_guard_size__)), unsigned(board_stack_peak_bytes()), stack_in_ram ? "ram" : "ccm",
      unsigned(static_ram_bytes()), unsigned(arena), unsigned(g_arena.high_water()), unsigned(g_engine_bytes),
      unsigned(g_trainer_bytes),
      // What this job actually needed of the RAM region: static data + used arena + the deepest
      // stack when the stack is in it (the guard is not RAM).
      unsigned(static_ram_bytes() + g_arena.high_water() + (stack_in_ram ? board_stack_peak_bytes() : 0)),
      unsigned(size_t(tz_model_end - tz_model_start)));
}

// ------------------------------------------------------------------ setup

fw::RunConfig g_config;  // static: keeps run_train's frame (on the deepest stack path) small

void setup_engine() {
  const size_t model_bytes = size_t(tz_model_end - tz_model_start);
  const Status s = g_model.init(tz_model_start, model_bytes);
  if (s != Status::kOk) {
    board_printf("FAIL: embedded model: %s (%s)\n", tinyzo::status_name(s), g_model.error());
    sh_exit(kRunFailed);
  }
  g_arena = Arena(__arena_start__, size_t(__arena_end__ - __arena_start__));
#if defined(TZ_FW_FUSE)
  // Fused blocks where they lower the arena, the run's trained layers (layers=...) kept out of
  // them: the trainer needs their input boundary and full output.
  static int unfused[fw::kMaxRunLayers];
  int n_unfused = 0;
  if (g_config.layers[0]) {
    tinyzo::TrainLayer layers[fw::kMaxRunLayers];
    if (fw::resolve_layers(g_model, g_config.layers, layers, fw::kMaxRunLayers, &n_unfused) != Status::kOk)
      n_unfused = 0;  // reported by prepare_training
    for (int i = 0; i < n_unfused; ++i) unfused[i] = layers[i].op;
  }
  tinyzo::EngineOptions options;
  options.fuse = true;
  options.unfused_ops = tinyzo::Span<const int>(unfused, size_t(n_unfused));
  const Status e = g_engine.init(g_model, g_arena, tinyzo::best_kernels(), 1, options);
#else
  const Status e = g_engine.init(g_model, g_arena, tinyzo::best_kernels());
#endif
  if (e != Status::kOk) {
    board_printf("FAIL: engine init: %s (arena %u bytes)\n", tinyzo::status_name(e),
                 unsigned(__arena_end__ - __arena_start__));
    sh_exit(kRunFailed);
  }
  g_engine_bytes = g_engine.arena_bytes();
}

int n_classes() { return int(tinyzo::tensor_elements(g_model.tensor(g_model.output_tensor()))); }

// MACs of one forward, split by the kernel the engine picks (same rule as
// Engine::run_op), for the instructions-per-MAC report.
void print_macs() {
  uint64_t pw = 0, dw = 0, general = 0, other = 0;
  for (int i = 0; i < g_model.n_ops(); ++i) {
    const tinyzo::TzmOp& op = g_model.op(i);
    const uint64_t macs = g_model.op_macs(i);
    if (static_cast<tinyzo::OpType>(op.type) != tinyzo::OpType::kConv2d) {
      other += macs;
      continue;
    }
    const tinyzo::TzmTensor& x = g_model.tensor(op.inputs[0]);
    const tinyzo::TzmTensor& y = g_model.tensor(op.output);
    const int32_t* p = op.params;
    const int in_c = x.dims[2], out_c = y.dims[2];
    if (p[tinyzo::kConvGroups] == in_c && in_c == out_c && p[tinyzo::kConvGroups] > 1) {
      dw += macs;
    } else if (p[tinyzo::kConvKh] == 1 && p[tinyzo::kConvKw] == 1 && p[tinyzo::kConvStrideH] == 1 &&
               p[tinyzo::kConvStrideW] == 1 && p[tinyzo::kConvGroups] == 1 && p[tinyzo::kConvPadTop] == 0 &&
               p[tinyzo::kConvPadLeft] == 0 && y.dims[0] == x.dims[0] && y.dims[1] == x.dims[1]) {
      pw += macs;
    } else {
      general += macs;
    }
  }
  board_printf("MACS per_forward=%lu pointwise=%lu depthwise=%lu conv=%lu other=%lu\n",
               (unsigned long)(pw + dw + general + other), (unsigned long)pw, (unsigned long)dw,
               (unsigned long)general, (unsigned long)other);
}

// ------------------------------------------------------------------ host files

struct SampleStream {
  int handle = -1;
  fw::SampleStreamHeader h{};
};

void open_stream(const char* path, SampleStream* s) {
  s->handle = sh_open(path, kShModeRead);
  if (s->handle < 0) {
    board_printf("FAIL: cannot open sample stream '%s' on the host\n", path);
    sh_exit(kRunFailed);
  }
  if (sh_read(s->handle, &s->h, sizeof s->h) != long(sizeof s->h) ||
      std::memcmp(s->h.magic, "TZSS", 4) != 0 || s->h.version != fw::kFormatVersion) {
    board_printf("FAIL: %s is not a tinyzo sample stream (tinyzo fw-data writes one)\n", path);
    sh_exit(kRunFailed);
  }
  const long expected = long(fw::sample_offset(s->h, s->h.n_samples));
  if (sh_flen(s->handle) != expected) {
    board_printf("FAIL: %s: %ld bytes, the header promises %ld (truncated?)\n", path, sh_flen(s->handle),
                 expected);
    sh_exit(kRunFailed);
  }
  if (s->h.input_bytes != g_engine.input().size() || int(s->h.n_classes) != n_classes() ||
      s->h.record_bytes != fw::sample_record_bytes(s->h.input_bytes) || s->h.n_samples == 0) {
    board_printf("FAIL: %s: %u samples of %u bytes, %u classes; the model wants %u bytes, %d classes\n", path,
                 unsigned(s->h.n_samples), unsigned(s->h.input_bytes), unsigned(s->h.n_classes),
                 unsigned(g_engine.input().size()), n_classes());
    sh_exit(kRunFailed);
  }
}

// Reads sample `index` straight into `input` (the engine's input tensor).
Status load_sample(const SampleStream& s, uint32_t index, Span<int8_t> input, int* label) {
  if (index >= s.h.n_samples) return Status::kOutOfRange;
  uint32_t lab = 0;
  if (sh_seek(s.handle, fw::sample_offset(s.h, index)) != 0 || sh_read(s.handle, &lab, 4) != 4 ||
      sh_read(s.handle, input.data(), input.size()) != long(input.size()))
    return Status::kOutOfRange;
  *label = int(lab);
  return Status::kOk;
}

int create_output(const char* path) {
  const int h = sh_open(path, kShModeWrite);
  if (h < 0) {
    board_printf("FAIL: cannot create '%s' on the host\n", path);
    sh_exit(kRunFailed);
  }
  return h;
}

void write_or_fail(int handle, const void* data, size_t n) {
  if (sh_write(handle, data, n) != 0) {
    board_printf("FAIL: writing %u bytes to the host failed\n", unsigned(n));
    sh_exit(kRunFailed);
  }
}

// ------------------------------------------------------------------ modes

int run_info() {
  setup_engine();
  board_printf("model: %u bytes in flash at %p, %d ops, %d tensors, input %u bytes, %d classes\n",
               unsigned(tz_model_end - tz_model_start), static_cast<const void*>(tz_model_start),
               g_model.n_ops(), g_model.n_tensors(), unsigned(g_engine.input().size()), n_classes());
  board_printf("kernels: %s; engine arena %u bytes (activations %u)\n", g_engine.kernels().name,
               unsigned(g_engine.arena_bytes()), unsigned(g_engine.activation_bytes()));
  board_printf("clock: %s; flash at %p, RAM at %p, stack [%p, %p)\n", board_clock_name(),
               static_cast<const void*>(__flash_origin__), static_cast<const void*>(__ram_origin__),
               static_cast<const void*>(__stack_limit__), static_cast<const void*>(__stack_top__));
  print_macs();
  print_memory("info");
  return 0;
}

int run_infer(int argc, char** argv) {
  if (argc < 2) {
    board_printf("usage: infer SAMPLES LOGITS_OUT [n=N] [first=K]\n");
    return kUsage;
  }
  uint64_t limit = ~0ull, first = 0;
  for (int i = 2; i < argc; ++i) {
    if (std::strncmp(argv[i], "n=", 2) == 0 && fw::detail::parse_u64(argv[i] + 2, &limit)) continue;
    if (std::strncmp(argv[i], "first=", 6) == 0 && fw::detail::parse_u64(argv[i] + 6, &first)) continue;
    board_printf("FAIL: infer: bad argument '%s'\n", argv[i]);
    return kUsage;
  }
  setup_engine();
  print_macs();
  SampleStream stream;
  open_stream(argv[0], &stream);
  if (first >= stream.h.n_samples) first = 0;
  const uint32_t n = uint32_t(limit < stream.h.n_samples - first ? limit : stream.h.n_samples - first);
  const int classes = n_classes();
  if (classes > kMaxClasses) fail(kRunFailed, "infer", Status::kUnsupported);
  const int out = create_output(argv[1]);
  const fw::LogitsHeader lh{{'T', 'Z', 'L', 'G'}, fw::kFormatVersion, n, uint32_t(classes)};
  write_or_fail(out, &lh, sizeof lh);
  uint32_t correct = 0;
  tz_fw_mark();
  for (uint32_t i = 0; i < n; ++i) {
    int label = -1;
    Status s = load_sample(stream, uint32_t(first) + i, g_engine.input(), &label);
    if (s != Status::kOk) fail(kRunFailed, "reading a sample", s);
    s = g_engine.invoke();
    if (s != Status::kOk) fail(kRunFailed, "invoke", s);
    tz_fw_mark();
    float logits[kMaxClasses];
    fw::read_logits(g_engine, logits, classes);
    const int32_t pred = fw::argmax(logits, classes);
    correct += pred == label ? 1u : 0u;
    const uint32_t rec[2] = {uint32_t(label), uint32_t(pred)};
    write_or_fail(out, rec, sizeof rec);
    write_or_fail(out, logits, size_t(classes) * 4);
    board_printf("sample %u: label %d predicted %d logit[0]=0x%08lx\n", unsigned(first + i), label, int(pred),
                 (unsigned long)board_float_bits(logits[0]));
  }
  sh_close(out);
  sh_close(stream.handle);
  board_printf("top-1 %u/%u\n", unsigned(correct), unsigned(n));
  print_memory("infer");
  return 0;
}

// Resolves the layers and builds the trainers in the arena. Its own frame
// (with the 64-entry layer table) is gone before training starts, so it does
// not add to the stack peak, which end_step's gradient pass sets.
__attribute__((noinline)) int prepare_training(const fw::RunConfig& c) {
  tinyzo::TrainLayer layers[fw::kMaxRunLayers];
  int n_layers = 0;
  if (fw::resolve_layers(g_model, c.layers, layers, fw::kMaxRunLayers, &n_layers) != Status::kOk) {
    board_printf("FAIL: layers=%s: no such Conv2d layer set\n", c.layers);
    sh_exit(kUsage);
  }
  const size_t before = g_arena.used();
  int groups = 0;
  const Status s = fw::create_trainers(g_engine, layers, n_layers, c, g_arena, g_trainers, &groups);
  if (s != Status::kOk) {
    board_printf("FAIL: trainer init: %s (arena %u bytes, engine took %u, trainers %u so far)\n",
                 tinyzo::status_name(s), unsigned(g_arena.capacity()), unsigned(g_engine_bytes),
                 unsigned(g_arena.used() - before));
    sh_exit(kRunFailed);
  }
  g_trainer_bytes = g_arena.used() - before;
  size_t params = 0;
  int n_np = 0;
  for (int i = 0; i < n_layers; ++i) n_np += layers[i].mode == tinyzo::PerturbMode::kNode ? 1 : 0;
  for (int g = 0; g < groups; ++g)
    for (int i = 0; i < g_trainers[g]->n_layers(); ++i)
      params += g_trainers[g]->weights(i).size() + g_trainers[g]->biases(i).size();
  char lr_text[24], seed_text[24];
  board_printf(
      "train: layers=%s (%d layers: %d WP, %d NP; %u parameters; %d trainer%s), steps=%u batch=%u, "
      "lr0=%s, seed=%s\n",
      c.layers, n_layers, n_layers - n_np, n_np, unsigned(params), groups, groups > 1 ? "s" : "",
      unsigned(c.steps), unsigned(c.batch), board_fixed(lr_text, fw::effective_lr(c), 6),
      board_u64(seed_text, c.seed));
  if (c.plus_biases > 0)
    board_printf("train: plus the biases of the %d other convs (%u queries per sample, model-wise)\n",
                 g_trainers[groups - 1]->n_layers(), unsigned(c.plus_biases));
  return groups;
}

__attribute__((noinline)) void write_trained_header(int out, const fw::RunConfig& c, int groups,
                                                    uint32_t n_samples) {
  fw::TrainedHeader th{};
  std::memcpy(th.magic, "TZTW", 4);
  th.version = fw::kFormatVersion;
  for (int g = 0; g < groups; ++g) th.n_layers += uint32_t(g_trainers[g]->n_layers());
  th.n_samples = n_samples;
  th.config = c;
  write_or_fail(out, &th, sizeof th);
}

__attribute__((noinline)) void write_trained_layers(int out, int groups, const char* path) {
  uint32_t checksum = 0;
  for (int g = 0; g < groups; ++g) {
    const ZoTrainer& t = *g_trainers[g];
    for (int i = 0; i < t.n_layers(); ++i) {
      const Span<int8_t> w = t.weights(i);
      const Span<int32_t> b = t.biases(i);
      const fw::LayerRecord rec{t.layer(i).op, uint32_t(t.layer(i).mode), uint32_t(w.size()),
                                uint32_t(b.size())};
      write_or_fail(out, &rec, sizeof rec);
      write_or_fail(out, w.data(), w.size());
      const uint32_t zero = 0;
      if (w.size() % 4) write_or_fail(out, &zero, 4 - w.size() % 4);
      write_or_fail(out, b.data(), b.size() * 4);
      checksum = tinyzo::crc32_update(checksum, reinterpret_cast<const uint8_t*>(w.data()), w.size());
      checksum = tinyzo::crc32_update(checksum, reinterpret_cast<const uint8_t*>(b.data()), b.size() * 4);
    }
  }
  board_printf("trained weights crc32=%08lx written to %s\n", (unsigned long)checksum, path);
}


// ------------------------------------------------------------------ power-safe weights

fw::PersistConfig g_persist;
HostFileFlash g_flash;
tinyzo::SlotStore g_store;
tinyzo::DivergenceGuard g_guard;

char slot_name(int slot) { return slot == 0 ? 'A' : slot == 1 ? 'B' : '-'; }

// Opens the slot file and restores the newest valid record into the trainers;
// true when it did.
__attribute__((noinline)) bool open_store(int groups) {
  const fw::PersistConfig& p = g_persist;
  Status s = g_flash.open(p.store, fw::store_bytes(p));
  if (s != Status::kOk) {
    board_printf("FAIL: store %s: %s (a file of %u bytes, or none)\n", p.store, tinyzo::status_name(s),
                 unsigned(fw::store_bytes(p)));
    sh_exit(kRunFailed);
  }
  s = g_store.init(g_flash.device(), 0, p.slot_kb * 1024u, fw::store_tag(g_model));
  if (s != Status::kOk) fail(kRunFailed, "slot store", s);
  fw::BootReport boot;
  s = fw::boot_weights(g_store, g_trainers, groups, &boot);
  if (s != Status::kOk) fail(kRunFailed, "reading the slots", s);
  for (int k = 0; k < tinyzo::SlotStore::kSlots; ++k) {
    const tinyzo::SlotInfo& i = g_store.info(k);
    if (i.valid)
      board_printf("BOOT slot %c: valid, sequence %lu, %lu bytes, crc32 %08lx\n", slot_name(k),
                   (unsigned long)i.sequence, (unsigned long)i.payload_bytes, (unsigned long)i.payload_crc32);
    else
      board_printf("BOOT slot %c: no valid record\n", slot_name(k));
  }
  const uint32_t crc = tinyzo::weights_crc32(g_trainers, groups);
  if (boot.slot >= 0) {
    char l[24];
    board_printf("BOOT restored slot %c sequence %lu (saved after %lu steps, validation loss %s): weights crc32 %08lx\n",
                 slot_name(boot.slot), (unsigned long)boot.sequence, (unsigned long)boot.steps,
                 board_fixed(l, boot.loss, 5), (unsigned long)crc);
  } else if (g_store.newest() >= 0) {
    board_printf("BOOT newest record is not for these layers (%s): model weights, crc32 %08lx\n",
                 tinyzo::status_name(boot.restore), (unsigned long)crc);
  } else {
    board_printf("BOOT no valid record: model weights, crc32 %08lx\n", (unsigned long)crc);
  }
  return boot.slot >= 0;
}

// One validation and the guard's decision (train with val=...).
template <class Load>
void validate(uint32_t steps_done, int groups, uint32_t n_samples, Load&& load, bool restored) {
  float loss = 0.f;
  Status s = fw::validation_loss(g_engine, *g_trainers[0], g_persist, n_samples, load, &loss);
  if (s != Status::kOk) fail(kRunFailed, "validation", s);
  fw::GuardEvent ev;
  if (restored) {
    g_guard.set_best(loss);  // the restored record is the best so far: nothing to save
  } else {
    s = fw::guard_step(g_persist.store[0] ? &g_store : nullptr, g_guard, g_trainers, groups, steps_done, loss, &ev);
    if (s != Status::kOk) fail(kRunFailed, "saving or restoring the weights", s);
  }
  char a[24], b[24];
  board_printf("VAL after %lu steps: loss=%s (0x%08lx) best=%s action=%s", (unsigned long)steps_done,
               board_fixed(a, loss, 5), (unsigned long)board_float_bits(loss), board_fixed(b, g_guard.best(), 5),
               restored ? "resume" : fw::action_name(ev.action));
  if (ev.action != tinyzo::DivergenceGuard::Action::kNone && g_persist.store[0])
    board_printf(" slot %c sequence %lu weights crc32 %08lx\n", slot_name(g_store.newest()),
                 (unsigned long)ev.sequence, (unsigned long)tinyzo::weights_crc32(g_trainers, groups));
  else
    board_printf("\n");
}

int run_train(int argc, char** argv) {
  if (argc < 2) {
    board_printf("usage: train SAMPLES WEIGHTS_OUT [key=value ...]\n");
    return kUsage;
  }
  fw::RunConfig& c = g_config;
  for (int i = 2; i < argc; ++i) {
    if (!fw::apply_token(&c, argv[i]) && !fw::apply_persist_token(&g_persist, argv[i])) {
      board_printf("FAIL: train: bad argument '%s'\n", argv[i]);
      return kUsage;
    }
  }
  if (g_persist.margin >= 0.f && (g_persist.store[0] == 0 || g_persist.val_n == 0)) {
    board_printf("FAIL: train: margin= needs store= and val= (the guard restores the best saved weights)\n");
    return kUsage;
  }
  g_guard = tinyzo::DivergenceGuard(g_persist.margin);
  setup_engine();
  const int groups = prepare_training(c);
  SampleStream stream;
  open_stream(argv[0], &stream);
  const bool restored = g_persist.store[0] != 0 && open_store(groups);
  const int out = create_output(argv[1]);
  write_trained_header(out, c, groups, stream.h.n_samples);

  auto load = [&](uint32_t index, Span<int8_t> input, int* label) {
    tz_fw_mark();  // per sample (and group): the cost report splits a step into samples and the update
    return load_sample(stream, index, input, label);
  };
  auto load_val = [&](uint32_t index, Span<int8_t> input, int* label) {
    return load_sample(stream, index, input, label);
  };
  if (g_persist.val_n) validate(0, groups, stream.h.n_samples, load_val, restored);
  auto on_step = [&](uint32_t step, float loss, float lr) {
    write_or_fail(out, &loss, 4);
    uint64_t macs = 0;
    int changed = 0;
    for (int g = 0; g < groups; ++g) {
      macs += g_trainers[g]->last_step().forward_macs;
      changed += g_trainers[g]->last_step().weights_changed;
    }
    char a[24], b[24], m[24];
    board_printf("step %u/%u loss=%s (0x%08lx) lr=%s forward_macs=%s changed=%d\n", unsigned(step + 1),
                 unsigned(c.steps), board_fixed(a, loss, 5), (unsigned long)board_float_bits(loss),
                 board_fixed(b, lr, 7), board_u64(m, macs), changed);
    if (g_persist.val_n && (step + 1) % g_persist.val_every == 0)
      validate(step + 1, groups, stream.h.n_samples, load_val, false);
  };
  const Status s =
      fw::run_training(g_engine, g_trainers, groups, c, stream.h.n_samples, load, load_val, on_step, tz_fw_mark);
  if (s != Status::kOk) fail(kRunFailed, "training", s);
  write_trained_layers(out, groups, argv[1]);
  sh_close(out);
  sh_close(stream.handle);
  if (g_persist.store[0]) {
    char best[24];
    board_printf("PERSIST best validation loss %s, %d restore%s, newest slot %c sequence %lu\n",
                 g_guard.has_best() ? board_fixed(best, g_guard.best(), 5) : "none",
                 g_guard.n_restores(), g_guard.n_restores() == 1 ? "" : "s", slot_name(g_store.newest()),
                 (unsigned long)(g_store.newest() >= 0 ? g_store.info(g_store.newest()).sequence : 0));
    g_flash.close();
  }
  print_memory("train");
  return 0;
}

// The fault-injection mode (scripts/fw_powercut.sh): boots from the slots in
// STORE like `train store=STORE` does, writes the weights it came up with to
// DUMP_OUT (raw: per layer int8 weights then int32 biases), and with save=1
// writes new weights: every trained weight and bias + 1 (wrapping), so every
// byte differs from the last record and a mix of the two could not hide. The
// marker tz_fw_mark() runs before the save, before every flash operation (each
// program unit and erase chunk) and after the save: the sweep cuts the power
// at instruction counts between them.
int run_persist(int argc, char** argv) {
  if (argc < 2) {
    board_printf("usage: persist STORE DUMP_OUT [save=1] [slot_kb=N] [layers=...]\n");
    return kUsage;
  }
  fw::RunConfig& c = g_config;
  bool save = false;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "save=1") == 0) {
      save = true;
      continue;
    }
    if (std::strcmp(argv[i], "save=0") == 0) continue;
    if (!fw::apply_token(&c, argv[i]) && !fw::apply_persist_token(&g_persist, argv[i])) {
      board_printf("FAIL: persist: bad argument '%s'\n", argv[i]);
      return kUsage;
    }
  }
  if (std::strlen(argv[0]) + 1 > sizeof g_persist.store) return kUsage;
  std::strcpy(g_persist.store, argv[0]);
  setup_engine();
  const int groups = prepare_training(c);
  open_store(groups);
  const int out = create_output(argv[1]);
  for (int g = 0; g < groups; ++g)
    for (int i = 0; i < g_trainers[g]->n_layers(); ++i) {
      write_or_fail(out, g_trainers[g]->weights(i).data(), g_trainers[g]->weights(i).size());
      write_or_fail(out, g_trainers[g]->biases(i).data(), g_trainers[g]->biases(i).size_bytes());
    }
  sh_close(out);
  if (save) {
    for (int g = 0; g < groups; ++g)
      for (int i = 0; i < g_trainers[g]->n_layers(); ++i) {
        for (int8_t& w : g_trainers[g]->weights(i)) w = int8_t(uint8_t(w) + 1u);
        for (int32_t& b : g_trainers[g]->biases(i)) b = int32_t(uint32_t(b) + 1u);
      }
    const int target = g_store.newest() < 0 ? 0 : 1 - g_store.newest();
    const uint32_t sequence = g_store.next_sequence();
    uint32_t meta[3];
    fw::record_meta(0, 0.f, meta);
    tz_fw_mark();
    g_flash.set_op_hook(tz_fw_mark);
    const Status s = tinyzo::save_weights(g_store, g_trainers, groups, meta);
    g_flash.set_op_hook(nullptr);
    tz_fw_mark();
    if (s != Status::kOk) fail(kRunFailed, "saving the weights", s);
    board_printf("SAVED slot %c sequence %lu: %lu bytes, weights crc32 %08lx\n", slot_name(target),
                 (unsigned long)sequence, (unsigned long)g_store.info(target).payload_bytes,
                 (unsigned long)tinyzo::weights_crc32(g_trainers, groups));
  }
  g_flash.close();
  return 0;
}

// The sizing probe (an image whose arena is the rest of a 4 MB RAM): builds
// the engine and, unless layers=none, the trainers of the run described by
// the key=value arguments, then writes the arena that took as the linker
// option of the real image: "-Wl,--defsym=__arena_size__=N" into RSP_OUT.
int run_size(int argc, char** argv) {
  if (argc < 1) {
    board_printf("usage: size RSP_OUT [key=value ...] (layers=none: inference only)\n");
    return kUsage;
  }
  fw::RunConfig& c = g_config;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "layers=none") == 0) {
      c.layers[0] = 0;
      continue;
    }
    if (!fw::apply_token(&c, argv[i])) {
      board_printf("FAIL: size: bad argument '%s'\n", argv[i]);
      return kUsage;
    }
  }
  setup_engine();
  if (c.layers[0]) {
    prepare_training(c);
  }
  const size_t need = (g_arena.high_water() + 15) / 16 * 16;
  char line[64];
  const int n = snprintf(line, sizeof line, "-Wl,--defsym=__arena_size__=%u\n", unsigned(need));
  const int out = create_output(argv[0]);
  write_or_fail(out, line, size_t(n));
  sh_close(out);
  board_printf("ARENA layers=%s engine=%u trainer=%u arena=%u\n", c.layers[0] ? c.layers : "none",
               unsigned(g_engine_bytes), unsigned(g_trainer_bytes), unsigned(need));
  return 0;
}

// float-check [n=N] [seed=S]: the digests of fw::float_check (common/fw_floatcheck.h), printed as
// the one line `tinyzo fw-floatcheck` prints on the host for the same arguments.
int run_float_check(int argc, char** argv) {
  uint32_t n = 20000, seed = 1;
  for (int i = 0; i < argc; ++i) {
    char* end = nullptr;
    if (std::strncmp(argv[i], "n=", 2) == 0) {
      n = uint32_t(std::strtoul(argv[i] + 2, &end, 10));
    } else if (std::strncmp(argv[i], "seed=", 5) == 0) {
      seed = uint32_t(std::strtoul(argv[i] + 5, &end, 10));
    }
    if (end == nullptr || *end != 0) {
      board_printf("usage: float-check [n=N] [seed=S] (bad argument '%s')\n", argv[i]);
      return kUsage;
    }
  }
  const fw::FloatCheckResult r = fw::float_check(n, seed);
  board_printf("float-check n=%lu seed=%lu", (unsigned long)n, (unsigned long)seed);
  for (int c = 0; c < fw::kFcClasses; ++c)
    board_printf(" %s=%08lx/%lu", fw::float_check_class_name(c), (unsigned long)r.crc[c], (unsigned long)r.values[c]);
  board_printf("\n");
  return 0;
}

// The guards must turn these into faults (exit 99), not silent corruption.
__attribute__((noinline)) int recurse(int depth) {
  volatile char frame[512];
  frame[0] = char(depth);
  return depth <= 0 ? frame[0] : recurse(depth - 1) + frame[0];
}

int run_fault(const char* which) {
  if (std::strcmp(which, "fault-stack") == 0) {
    board_printf("recursing past the stack (%u usable bytes)\n", unsigned(board_stack_usable_bytes()));
    return recurse(int(board_stack_usable_bytes() / 512) + 8);
  }
  board_printf("writing to the model in flash at %p\n", static_cast<const void*>(tz_model_start));
  *const_cast<volatile uint8_t*>(tz_model_start + 64) = 0x5a;
  return 0;
}

}  // namespace

int main() {
  board_paint_stack();
  split_cmdline();
  // argv[0] is the image name.
  if (g_argc < 2) {
    board_printf(
        "usage: %s info | infer SAMPLES LOGITS_OUT [n=N] | train SAMPLES WEIGHTS_OUT [key=value...]\n",
        g_argc ? g_argv[0] : "fw");
    return kUsage;
  }
  const char* mode = g_argv[1];
  if (std::strcmp(mode, "info") == 0) return run_info();
  if (std::strcmp(mode, "infer") == 0) return run_infer(g_argc - 2, g_argv + 2);
  if (std::strcmp(mode, "train") == 0) return run_train(g_argc - 2, g_argv + 2);
  if (std::strcmp(mode, "persist") == 0) return run_persist(g_argc - 2, g_argv + 2);
  if (std::strcmp(mode, "size") == 0) return run_size(g_argc - 2, g_argv + 2);
  if (std::strncmp(mode, "fault-", 6) == 0) return run_fault(mode);
  if (std::strcmp(mode, "kernel-test") == 0) return run_kernel_test(g_argc - 2, g_argv + 2);
  if (std::strcmp(mode, "float-check") == 0) return run_float_check(g_argc - 2, g_argv + 2);
  board_printf("unknown mode '%s'\n", mode);
  return kUsage;
}
