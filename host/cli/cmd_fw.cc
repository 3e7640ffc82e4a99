// Host side of the Cortex-M firmware (firmware/, docs/mcu.md):
//   tinyzo fw-data   writes a sample stream (preprocessed int8 inputs + labels)
//                    that the firmware reads through semihosting;
//   tinyzo fw-size   the arena an image needs for a job (build time: a linker
//                    --defsym), next to the memory model's prediction;
//   tinyzo fw-ref    the host reference: the firmware's own loop
//                    (firmware/common/fw_protocol.h) on the host, same files out;
//   tinyzo fw-check  compares a device output with the host's bit for bit, and
//                    exports trained weights as a .tzm for `tinyzo eval`;
//   tinyzo fw-floatcheck  the digests of the firmware's float-check mode
//                    (firmware/common/fw_floatcheck.h) computed on the host.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../../firmware/common/fw_floatcheck.h"
#include "../../firmware/common/fw_persist.h"
#include "../../firmware/common/fw_protocol.h"
#include "data/cifar10.h"
#include "commands.h"
#include "data/data_dir.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "models/model_store.h"
#include "options.h"
#include "data/preprocess.h"
#include "data/protocol.h"
#include "train/trainer_run.h"
#include "train/train_config.h"
#include "tinyzo/flash.h"
#include "tinyzo/slot_store.h"
#include "models/tzm_writer.h"

namespace tinyzo::cli {
namespace {

void check(Status s, const std::string& what) {
  if (s != Status::kOk) throw CliError(what + ": " + status_name(s));
}

// 16-byte aligned heap memory for an Arena.
struct ArenaMemory {
  struct alignas(16) Block {
    uint8_t b[16];
  };
  std::vector<Block> blocks;
  explicit ArenaMemory(size_t bytes) : blocks(bytes / 16 + 1) {}
  Arena arena() { return Arena(blocks.data(), blocks.size() * 16); }
};

fw::RunConfig parse_tokens(const std::vector<std::string>& tokens, fw::PersistConfig* persist = nullptr) {
  fw::RunConfig c;
  for (const std::string& t : tokens)
    if (!fw::apply_token(&c, t.c_str()) && !(persist && fw::apply_persist_token(persist, t.c_str())))
      throw CliError("bad key=value '" + t +
                     "' (keys: steps batch first qw qb qnp sigma_w sigma_b mu two_sided bias "
                     "rounding estimation lr baseline lr_wp lr_np passes momentum step_norm params bias_mu plus_biases anchor seed "
                     "layers" +
                     std::string(persist ? "; persistence: store slot_kb val val_every margin)" : ")"));
  return c;
}

// The firmware's slot file on the host: the same flash geometry and bytes as
// firmware/src/host_flash.cc (erased 0xFF when new), held in RAM by a RamFlash
// (which also enforces the flash rules) and written back by save().
class SlotFile {
 public:
  SlotFile(const std::string& path, uint32_t size) : path_(path), bytes_(size, 0xFF) {
    if (is_regular_file(path)) {
      // Bounded: a slot file is exactly `size` bytes; a larger one is refused unread.
      std::vector<uint8_t> old = read_file_bytes(path, size, "slot file");
      if (old.size() != size)
        throw CliError(path + ": " + std::to_string(old.size()) + " bytes, a slot file of this layout has " +
                       std::to_string(size));
      bytes_ = std::move(old);
    }
    check(ram_.init(Span<uint8_t>(bytes_.data(), bytes_.size()), fw::kStoreEraseBytes, fw::kStoreProgramBytes),
          path);
  }
  FlashDevice device() { return ram_.device(); }
  void save() const { write_file_atomic(path_, bytes_.data(), bytes_.size()); }

 private:
  std::string path_;
  std::vector<uint8_t> bytes_;
  RamFlash ram_;
};

std::vector<TrainLayer> resolve(const ModelView& m, const fw::RunConfig& c) {
  std::vector<TrainLayer> layers(fw::kMaxRunLayers);
  int n = 0;
  if (fw::resolve_layers(m, c.layers, layers.data(), int(layers.size()), &n) != Status::kOk)
    throw CliError(std::string("layers=") + c.layers +
                   ": not a Conv2d layer set of this model (paper, paper-wp, all, "
                   "or names like 1.4.conv.0:wp)");
  layers.resize(size_t(n));
  std::vector<TrainLayer> rest(size_t(m.n_ops()));
  if (c.plus_biases > 0 && plus_bias_layers(m, Span<const TrainLayer>(layers.data(), layers.size()),
                                            rest.data(), int(rest.size())) == 0)
    throw CliError(std::string("plus_biases=: layers=") + c.layers +
                   " is every conv already; no bias is left");
  return layers;
}

// ------------------------------------------------------------------ sample streams

struct Stream {
  fw::SampleStreamHeader h{};
  std::vector<uint8_t> bytes;
};

Stream read_stream(const std::string& path, const ModelView& m) {
  Stream s;
  // The header decides the size; the samples are read only when the file has exactly that size.
  const InputFile file(path, "sample stream");
  if (file.size() < sizeof s.h) throw CliError(path + ": not a sample stream (too short)");
  file.read_at(0, &s.h, sizeof s.h);
  if (std::memcmp(s.h.magic, "TZSS", 4) != 0 || s.h.version != fw::kFormatVersion)
    throw CliError(path + ": not a tinyzo sample stream (tinyzo fw-data writes one)");
  if (s.h.record_bytes != fw::sample_record_bytes(s.h.input_bytes) ||
      file.size() != uint64_t(sizeof s.h) + uint64_t(s.h.n_samples) * s.h.record_bytes || s.h.n_samples == 0)
    throw CliError(path + ": truncated or inconsistent sample stream");
  s.bytes = file.read_all(file.size());
  const size_t input = tensor_elements(m.tensor(m.input_tensor()));
  const size_t classes = tensor_elements(m.tensor(m.output_tensor()));
  if (s.h.input_bytes != input || s.h.n_classes != classes)
    throw CliError(path + ": samples of " + std::to_string(s.h.input_bytes) + " bytes / " +
                   std::to_string(s.h.n_classes) + " classes, the model wants " + std::to_string(input) +
                   " / " + std::to_string(classes));
  return s;
}

Status load_from(const Stream& s, uint32_t index, Span<int8_t> input, int* label) {
  if (index >= s.h.n_samples || input.size() != s.h.input_bytes) return Status::kOutOfRange;
  const uint8_t* rec = s.bytes.data() + fw::sample_offset(s.h, index);
  uint32_t lab;
  std::memcpy(&lab, rec, 4);
  std::memcpy(input.data(), rec + 4, input.size());
  *label = int(lab);
  return Status::kOk;
}

struct DataOptions {
  std::string model = "mcunet-cifar10";
  std::string out;
  std::string split = "clean";
  std::string corruption = "gaussian_noise";
  int severity = 5;
  uint64_t corruption_seed = 0;
  size_t n = 16;
  size_t first = 0;
};

void run_fw_data(const DataOptions& o) {
  const LoadedModel model = load_model_arg(o.model);
  const ModelView& m = model.view();
  const InputPreprocessor prep(m.tensor(m.input_tensor()));
  const std::string data_dir = resolve_data_dir();
  Cifar10Set set;
  std::string what;
  if (o.split == "clean") {
    set = load_cifar10(cifar10_test_batch_path(data_dir));
    what = "CIFAR-10 test batch";
  } else {
    ProtocolSpec spec;
    spec.corruption = o.corruption;
    spec.severity = o.severity;
    spec.corruption_seed = o.corruption_seed;
    ProtocolData d = load_protocol_data(data_dir, spec);
    const ImageSet& part = o.split == "train" ? d.train : o.split == "val" ? d.val : d.test;
    set.labels = part.labels;
    set.pixels = part.pixels;  // CIFAR-10 images: the 3072-byte records back to back
    what = "protocol " + o.split + " split of " + o.corruption + "-" + std::to_string(o.severity);
  }
  if (o.first >= set.size())
    throw CliError("--first " + std::to_string(o.first) + ": the set has " + std::to_string(set.size()) +
                   " images");
  const size_t n = std::min(o.n, set.size() - o.first);
  fw::SampleStreamHeader h{};
  std::memcpy(h.magic, "TZSS", 4);
  h.version = fw::kFormatVersion;
  h.n_samples = uint32_t(n);
  h.input_bytes = uint32_t(prep.output_elements());
  h.n_classes = uint32_t(tensor_elements(m.tensor(m.output_tensor())));
  h.record_bytes = fw::sample_record_bytes(h.input_bytes);
  std::vector<uint8_t> bytes(fw::sample_offset(h, h.n_samples), 0);
  std::memcpy(bytes.data(), &h, sizeof h);
  for (size_t i = 0; i < n; ++i) {
    uint8_t* rec = bytes.data() + fw::sample_offset(h, uint32_t(i));
    const uint32_t label = set.labels[o.first + i];
    std::memcpy(rec, &label, 4);
    prep.run(set.image(o.first + i), reinterpret_cast<int8_t*>(rec + 4));
  }
  write_file_atomic(o.out, bytes.data(), bytes.size());
  std::printf("%s: %zu samples (%s, images %zu..%zu), %u bytes each, %zu bytes\n", o.out.c_str(), n,
              what.c_str(), o.first, o.first + n - 1, h.input_bytes, bytes.size());
}

// ------------------------------------------------------------------ sizing

struct SizeOptions {
  std::string model = "mcunet-cifar10";
  std::vector<std::string> tokens;
  std::string rsp;
};

void run_fw_size(const SizeOptions& o) {
  const LoadedModel model = load_model_arg(o.model);
  const ModelView& m = model.view();
  const fw::RunConfig c = parse_tokens(o.tokens);
  ArenaMemory mem(size_t(64) << 20);
  Arena arena = mem.arena();
  Engine engine;
  check(engine.init(m, arena, ref::table()), "engine init");
  const size_t engine_bytes = arena.used();
  size_t trainer_bytes = 0;
  const bool inference_only = std::strcmp(c.layers, "none") == 0;
  std::vector<TrainLayer> layers;
  ZoTrainer* trainers[fw::kMaxGroups] = {};
  if (!inference_only) {
    layers = resolve(m, c);
    int groups = 0;
    check(fw::create_trainers(engine, layers.data(), int(layers.size()), c, arena, trainers, &groups),
          "trainer init");
    trainer_bytes = arena.used() - engine_bytes;
  }
  // Host tables hold 8-byte pointers and size_t where the device has 4, so this
  // is an upper bound of the device's need (the firmware prints the exact one).
  const size_t total = (arena.used() + 15) / 16 * 16;
  std::printf(
      "fw-size: layers=%s engine_arena=%zu trainer_arena=%zu arena=%zu (host figures: an upper bound of "
      "the device's)\n",
      inference_only ? "none" : c.layers, engine_bytes, trainer_bytes, total);
  if (!inference_only) {
    std::vector<LayerChoice> lc;
    for (const TrainLayer& l : layers) lc.push_back(LayerChoice{l.op, l.mode == PerturbMode::kNode});
    try {
      const ZoConfig zc = fw::zo_config(c);
      std::vector<TrainerGroup> groups{TrainerGroup{lc, zc}};
      if (c.plus_biases > 0) groups.push_back(plus_bias_group(m, lc, zc, int(c.plus_biases)));
      const MemoryPrediction p = predict_group_memory(m, groups, c.queries_w + c.queries_b, int(c.batch));
      std::printf("fw-size: memory model (tinyzo plan): inference=%zu zo_extra=%zu total=%zu\n",
                  p.inference_bytes, p.zo_extra_bytes, p.total_bytes());
    } catch (const CliError& e) {
      std::printf("fw-size: memory model: %s\n", e.what());
    }
  }
  if (!o.rsp.empty()) {
    const std::string line = "-Wl,--defsym=__arena_size__=" + std::to_string(total) + "\n";
    write_file_atomic(o.rsp, line.data(), line.size());
  }
}

// ------------------------------------------------------------------ reference runs

struct RefOptions {
  std::string model = "mcunet-cifar10";
  std::string kernels = "best";
  std::string samples, out;
  std::vector<std::string> tokens;
};

void run_ref_infer(const RefOptions& o) {
  const LoadedModel model = load_model_arg(o.model);
  const ModelView& m = model.view();
  const Stream s = read_stream(o.samples, m);
  uint64_t limit = ~0ull, first = 0;
  for (const std::string& t : o.tokens) {
    if (t.rfind("n=", 0) == 0 && fw::detail::parse_u64(t.c_str() + 2, &limit)) continue;
    if (t.rfind("first=", 0) == 0 && fw::detail::parse_u64(t.c_str() + 6, &first)) continue;
    throw CliError("fw-ref infer: bad argument '" + t + "' (n=N first=K)");
  }
  if (first >= s.h.n_samples) first = 0;
  const uint32_t n = uint32_t(std::min<uint64_t>(limit, s.h.n_samples - first));
  EngineInstance inst(m, kernels_by_name(o.kernels));
  Engine& e = inst.engine();
  const int classes = int(s.h.n_classes);
  AtomicFileWriter out(o.out);
  const fw::LogitsHeader lh{{'T', 'Z', 'L', 'G'}, fw::kFormatVersion, n, uint32_t(classes)};
  out.write(&lh, sizeof lh);
  uint32_t correct = 0;
  std::vector<float> logits(static_cast<size_t>(classes), 0.f);
  for (uint32_t i = 0; i < n; ++i) {
    int label = -1;
    check(load_from(s, uint32_t(first) + i, e.input(), &label), "reading a sample");
    inst.invoke();
    fw::read_logits(e, logits.data(), classes);
    const int32_t pred = fw::argmax(logits.data(), classes);
    correct += pred == label ? 1u : 0u;
    const uint32_t rec[2] = {uint32_t(label), uint32_t(pred)};
    out.write(rec, sizeof rec);
    out.write(logits.data(), logits.size() * 4);
  }
  out.commit();
  std::printf("fw-ref infer: top-1 %u/%u, %s kernels, logits in %s\n", correct, n, e.kernels().name,
              o.out.c_str());
}

void run_ref_train(const RefOptions& o) {
  const LoadedModel model = load_model_arg(o.model);
  const ModelView& m = model.view();
  const Stream s = read_stream(o.samples, m);
  fw::PersistConfig p;
  const fw::RunConfig c = parse_tokens(o.tokens, &p);
  if (p.margin >= 0.f && (p.store[0] == 0 || p.val_n == 0))
    throw CliError("margin= needs store= and val= (the guard restores the best saved weights)");
  const std::vector<TrainLayer> layers = resolve(m, c);
  ArenaMemory mem(size_t(64) << 20);
  Arena arena = mem.arena();
  Engine engine;
  check(engine.init(m, arena, kernels_by_name(o.kernels)), "engine init");
  ZoTrainer* trainers[fw::kMaxGroups] = {};
  int groups = 0;
  check(fw::create_trainers(engine, layers.data(), int(layers.size()), c, arena, trainers, &groups),
        "trainer init");

  AtomicFileWriter out(o.out);
  fw::TrainedHeader th{};
  std::memcpy(th.magic, "TZTW", 4);
  th.version = fw::kFormatVersion;
  for (int g = 0; g < groups; ++g) th.n_layers += uint32_t(trainers[g]->n_layers());  // with plus_biases' group
  th.n_samples = s.h.n_samples;
  th.config = c;
  out.write(&th, sizeof th);
  auto load = [&](uint32_t index, Span<int8_t> input, int* label) {
    return load_from(s, index, input, label);
  };
  // Power-safe weights and the divergence guard: the firmware's decisions (fw_persist.h).
  std::unique_ptr<SlotFile> slot_file;
  SlotStore store;
  DivergenceGuard guard(p.margin);
  bool restored = false;
  if (p.store[0]) {
    slot_file = std::make_unique<SlotFile>(p.store, fw::store_bytes(p));
    check(store.init(slot_file->device(), 0, p.slot_kb * 1024u, fw::store_tag(m)), "slot store");
    fw::BootReport boot;
    check(fw::boot_weights(store, trainers, groups, &boot), "reading the slots");
    restored = boot.slot >= 0;
    std::printf("boot: %s\n", restored ? ("restored slot " + std::string(1, "AB"[boot.slot]) + " sequence " +
                                            std::to_string(boot.sequence)).c_str()
                                        : "no valid record for these layers: model weights");
  }
  auto validate = [&](uint32_t steps_done, bool resumed) {
    float loss = 0.f;
    check(fw::validation_loss(engine, *trainers[0], p, s.h.n_samples, load, &loss), "validation");
    fw::GuardEvent ev;
    if (resumed) {
      guard.set_best(loss);
    } else {
      check(fw::guard_step(p.store[0] ? &store : nullptr, guard, trainers, groups, steps_done, loss, &ev),
            "saving or restoring the weights");
      if (slot_file && ev.action != DivergenceGuard::Action::kNone) slot_file->save();
    }
    std::printf("val after %u steps: loss=%.5f (0x%08x) best=%.5f action=%s\n", steps_done, double(loss),
                fw::bits_of_float(loss), double(guard.best()), resumed ? "resume" : fw::action_name(ev.action));
  };
  if (p.val_n) validate(0, restored);
  auto on_step = [&](uint32_t step, float loss, float lr) {
    out.write(&loss, 4);
    uint32_t bits;
    std::memcpy(&bits, &loss, 4);
    std::printf("step %u/%u loss=%.5f (0x%08x) lr=%.7f\n", step + 1, c.steps, double(loss), bits, double(lr));
    if (p.val_n && (step + 1) % p.val_every == 0) validate(step + 1, false);
  };
  check(fw::run_training(engine, trainers, groups, c, s.h.n_samples, load, load, on_step, [] {}), "training");
  uint32_t checksum = 0;
  for (int g = 0; g < groups; ++g) {
    for (int i = 0; i < trainers[g]->n_layers(); ++i) {
      const Span<int8_t> w = trainers[g]->weights(i);
      const Span<int32_t> b = trainers[g]->biases(i);
      const fw::LayerRecord rec{trainers[g]->layer(i).op, uint32_t(trainers[g]->layer(i).mode),
                                uint32_t(w.size()), uint32_t(b.size())};
      out.write(&rec, sizeof rec);
      out.write(w.data(), w.size());
      const uint32_t zero = 0;
      if (w.size() % 4) out.write(&zero, 4 - w.size() % 4);
      out.write(b.data(), b.size() * 4);
      checksum = crc32_update(checksum, reinterpret_cast<const uint8_t*>(w.data()), w.size());
      checksum = crc32_update(checksum, reinterpret_cast<const uint8_t*>(b.data()), b.size() * 4);
    }
  }
  out.commit();
  if (slot_file) slot_file->save();  // as the device leaves it (created erased when it was new)
  std::printf(
      "fw-ref train: %u layers, %d trainer%s, %s kernels; trained weights crc32=%08x written to %s\n",
      unsigned(th.n_layers), groups, groups > 1 ? "s" : "", engine.kernels().name, checksum, o.out.c_str());
}

// ------------------------------------------------------------------ comparison

struct CheckOptions {
  std::string expected, actual;
  std::string model;
  std::string export_path;
};

struct TrainedFile {
  fw::TrainedHeader h{};
  std::vector<float> losses;
  struct Layer {
    fw::LayerRecord rec{};
    std::vector<int8_t> w;
    std::vector<int32_t> b;
  };
  std::vector<Layer> layers;
};

TrainedFile parse_trained(const std::vector<uint8_t>& bytes, const std::string& path) {
  TrainedFile t;
  size_t at = 0;
  auto take = [&](void* dst, size_t n) {
    if (bytes.size() - at < n) throw CliError(path + ": truncated trained-weights file");
    std::memcpy(dst, bytes.data() + at, n);
    at += n;
  };
  take(&t.h, sizeof t.h);
  if (t.h.version != fw::kFormatVersion || t.h.n_layers > uint32_t(fw::kMaxRunLayers))
    throw CliError(path + ": unsupported trained-weights file");
  t.losses.resize(t.h.config.steps);
  take(t.losses.data(), t.losses.size() * 4);
  t.layers.resize(t.h.n_layers);
  for (TrainedFile::Layer& l : t.layers) {
    take(&l.rec, sizeof l.rec);
    if (l.rec.d_w > (1u << 26) || l.rec.c_out > (1u << 20)) throw CliError(path + ": corrupt layer record");
    l.w.resize(l.rec.d_w);
    take(l.w.data(), l.w.size());
    uint8_t pad[4];
    if (l.w.size() % 4) take(pad, 4 - l.w.size() % 4);
    l.b.resize(l.rec.c_out);
    take(l.b.data(), l.b.size() * 4);
  }
  if (at != bytes.size()) throw CliError(path + ": trailing bytes after the last layer");
  return t;
}

bool same_bits(const void* a, const void* b, size_t n) { return std::memcmp(a, b, n) == 0; }

// Returns true when the files match bit for bit.
bool check_logits(const std::vector<uint8_t>& e, const std::vector<uint8_t>& a, const CheckOptions& o) {
  fw::LogitsHeader he{}, ha{};
  if (e.size() < sizeof he || a.size() < sizeof ha) throw CliError("logits file too short");
  std::memcpy(&he, e.data(), sizeof he);
  std::memcpy(&ha, a.data(), sizeof ha);
  const size_t rec = 8 + size_t(he.n_classes) * 4;
  if (e.size() != sizeof he + rec * he.n_samples) throw CliError(o.expected + ": inconsistent logits file");
  if (!same_bits(&he, &ha, sizeof he) || a.size() != e.size()) {
    std::printf("fw-check: MISMATCH: %s has %u samples x %u classes, %s has %u x %u\n", o.expected.c_str(),
                he.n_samples, he.n_classes, o.actual.c_str(), ha.n_samples, ha.n_classes);
    return false;
  }
  size_t bad = 0, first_bad = ~size_t(0);
  uint32_t correct = 0;
  for (uint32_t i = 0; i < he.n_samples; ++i) {
    const uint8_t* pe = e.data() + sizeof he + rec * i;
    const uint8_t* pa = a.data() + sizeof ha + rec * i;
    uint32_t lab, pred;
    std::memcpy(&lab, pe, 4);
    std::memcpy(&pred, pe + 4, 4);
    correct += lab == pred ? 1u : 0u;
    if (!same_bits(pe, pa, rec)) {
      ++bad;
      if (first_bad == ~size_t(0)) first_bad = i;
    }
  }
  if (bad) {
    std::printf("fw-check: MISMATCH: logits of %zu of %u samples differ (first: sample %zu)\n", bad,
                he.n_samples, first_bad);
    return false;
  }
  std::printf("fw-check: logits bitwise identical: %u samples x %u classes (top-1 %u/%u)\n", he.n_samples,
              he.n_classes, correct, he.n_samples);
  return true;
}

bool check_trained(const std::vector<uint8_t>& eb, const std::vector<uint8_t>& ab, const CheckOptions& o) {
  const TrainedFile e = parse_trained(eb, o.expected), a = parse_trained(ab, o.actual);
  bool ok = true;
  if (!same_bits(&e.h, &a.h, sizeof e.h)) {
    std::printf("fw-check: MISMATCH: the runs' headers (configuration, layer count, stream) differ\n");
    return false;
  }
  for (size_t s = 0; s < e.losses.size(); ++s) {
    if (!same_bits(&e.losses[s], &a.losses[s], 4)) {
      std::printf("fw-check: MISMATCH: loss of step %zu: %.9g vs %.9g\n", s + 1, double(e.losses[s]),
                  double(a.losses[s]));
      ok = false;
    }
  }
  size_t params = 0, moved = 0;
  for (size_t i = 0; i < e.layers.size(); ++i) {
    const TrainedFile::Layer &le = e.layers[i], &la = a.layers[i];
    if (!same_bits(&le.rec, &la.rec, sizeof le.rec)) {
      std::printf("fw-check: MISMATCH: layer %zu: different op/mode/shape\n", i);
      return false;
    }
    size_t dw = 0, db = 0;
    for (size_t k = 0; k < le.w.size(); ++k) dw += le.w[k] != la.w[k];
    for (size_t k = 0; k < le.b.size(); ++k) db += le.b[k] != la.b[k];
    params += le.w.size() + le.b.size();
    if (dw || db) {
      std::printf("fw-check: MISMATCH: layer %zu (op %d): %zu weights and %zu biases differ\n", i, le.rec.op,
                  dw, db);
      ok = false;
    }
  }
  if (!o.model.empty()) {
    const LoadedModel model = load_model_arg(o.model);
    const ModelView& m = model.view();
    for (const TrainedFile::Layer& l : e.layers) {
      if (l.rec.op < 0 || l.rec.op >= m.n_ops()) throw CliError("layer op outside the model");
      const TzmOp& op = m.op(l.rec.op);
      const int8_t* w0 = static_cast<const int8_t*>(m.data(op.inputs[1]));
      const int32_t* b0 = static_cast<const int32_t*>(m.data(op.inputs[2]));
      for (size_t k = 0; k < l.w.size(); ++k) moved += l.w[k] != w0[k];
      for (size_t k = 0; k < l.b.size(); ++k) moved += l.b[k] != b0[k];
    }
  }
  if (ok) {
    std::printf("fw-check: trained weights bitwise identical: %zu layers, %zu parameters, %u step losses",
                e.layers.size(), params, e.h.config.steps);
    if (!o.model.empty()) std::printf(", %zu parameters moved from the model's", moved);
    std::printf("\n");
  }
  return ok;
}

// A copy of the model with the actual file's trained tensors.
void export_tzm(const std::vector<uint8_t>& ab, const CheckOptions& o) {
  if (o.model.empty()) throw CliError("--export needs --model (the model the run started from)");
  const TrainedFile t = parse_trained(ab, o.actual);
  const LoadedModel model = load_model_arg(o.model);
  const ModelView& m = model.view();
  std::map<int, std::vector<uint8_t>> repl;
  for (const TrainedFile::Layer& l : t.layers) {
    if (l.rec.op < 0 || l.rec.op >= m.n_ops() || static_cast<OpType>(m.op(l.rec.op).type) != OpType::kConv2d)
      throw CliError(o.actual + ": layer op " + std::to_string(l.rec.op) + " is not a Conv2d of " + o.model);
    const TzmOp& op = m.op(l.rec.op);
    if (!l.w.empty())  // a bias-only run (params=bias) trains no weights: the model's stay
      repl[op.inputs[1]] = std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(l.w.data()),
                                                reinterpret_cast<const uint8_t*>(l.w.data()) + l.w.size());
    repl[op.inputs[2]] = std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(l.b.data()),
                                              reinterpret_cast<const uint8_t*>(l.b.data()) + l.b.size() * 4);
  }
  const std::vector<uint8_t> bytes = rewrite_with_constants(m, repl);
  write_file_atomic(o.export_path, bytes.data(), bytes.size());
  std::printf("fw-check: wrote %s (%zu bytes, %zu tensors replaced)\n", o.export_path.c_str(), bytes.size(),
              repl.size());
}

void run_fw_check(const CheckOptions& o) {
  // Logits and trained-weights files of the firmware: far below this bound.
  constexpr uint64_t kMaxDeviceFileBytes = uint64_t(1) << 30;
  const std::vector<uint8_t> e = read_file_bytes(o.expected, kMaxDeviceFileBytes, "device output"),
                             a = read_file_bytes(o.actual, kMaxDeviceFileBytes, "device output");
  if (e.size() < 4 || a.size() < 4) throw CliError("fw-check: file too short");
  bool ok;
  if (std::memcmp(e.data(), "TZLG", 4) == 0 && std::memcmp(a.data(), "TZLG", 4) == 0) {
    ok = check_logits(e, a, o);
  } else if (std::memcmp(e.data(), "TZTW", 4) == 0 && std::memcmp(a.data(), "TZTW", 4) == 0) {
    ok = check_trained(e, a, o);
  } else {
    throw CliError("fw-check: " + o.expected + " and " + o.actual +
                   " are not two logits or two trained-weights files");
  }
  if (!o.export_path.empty()) export_tzm(a, o);
  if (!ok) throw CliError("fw-check: " + o.actual + " differs from " + o.expected);
}

// tinyzo fw-floatcheck [n=N] [seed=S]: the line the firmware's float-check mode prints.
void run_fw_floatcheck(const std::vector<std::string>& tokens) {
  uint32_t n = 20000, seed = 1;
  for (const std::string& t : tokens) {
    const bool is_n = t.rfind("n=", 0) == 0, is_seed = t.rfind("seed=", 0) == 0;
    const std::string v = is_n ? t.substr(2) : is_seed ? t.substr(5) : "";
    char* end = nullptr;
    const unsigned long x = v.empty() ? 0 : std::strtoul(v.c_str(), &end, 10);
    if (v.empty() || end == nullptr || *end != 0 || v[0] == '-' || x > 0xffffffffUL)
      throw CliError("fw-floatcheck: bad argument '" + t + "' (n=N seed=S)");
    (is_n ? n : seed) = uint32_t(x);
  }
  const fw::FloatCheckResult r = fw::float_check(n, seed);
  std::printf("float-check n=%lu seed=%lu", (unsigned long)n, (unsigned long)seed);
  for (int c = 0; c < fw::kFcClasses; ++c)
    std::printf(" %s=%08lx/%lu", fw::float_check_class_name(c), (unsigned long)r.crc[c], (unsigned long)r.values[c]);
  std::printf("\n");
}

}  // namespace

void register_fw_commands(CLI::App& app) {
  auto data = std::make_shared<DataOptions>();
  CLI::App* d =
      app.add_subcommand("fw-data", "write a sample stream for the firmware (int8 inputs + labels)");
  d->add_option("--model,-m", data->model, "the model whose input the samples are preprocessed for")
      ->capture_default_str();
  d->add_option("--out,-o", data->out, "the stream file to write")->required();
  d->add_option(
       "--split", data->split,
       "clean (the CIFAR-10 test batch) or train / val / test (the protocol's splits of --corruption)")
      ->check(CLI::IsMember({"clean", "train", "val", "test"}))
      ->capture_default_str();
  d->add_option("--corruption", data->corruption, "CORRUPTIONS.md name, or none")->capture_default_str();
  add_int_option(d, "--severity", &data->severity, 1, 5, "1..5 (default 5)");
  add_u64_option(d, "--corruption-seed", &data->corruption_seed,
                 "seed of the random corruptions (default 0)");
  add_int_option(d, "-n", &data->n, 1, UINT32_MAX, "number of samples (default 16)");
  add_int_option(d, "--first", &data->first, 0, INT64_MAX, "first image of the set (default 0)");
  d->callback([data]() { run_fw_data(*data); });

  auto size = std::make_shared<SizeOptions>();
  CLI::App* s =
      app.add_subcommand("fw-size", "the arena a firmware image needs for a run (key=value as the firmware)");
  s->add_option("--model,-m", size->model, "a .tzm file or a reference model name")->capture_default_str();
  s->add_option("--rsp", size->rsp,
                "write '-Wl,--defsym=__arena_size__=N' to this file (a compiler response file)");
  s->add_option("params", size->tokens, "key=value run settings (layers=none: inference only)");
  s->callback([size]() { run_fw_size(*size); });

  auto ref = std::make_shared<RefOptions>();
  CLI::App* r =
      app.add_subcommand("fw-ref", "the firmware's run on the host: infer|train SAMPLES OUT [key=value...]");
  std::shared_ptr<std::string> mode = std::make_shared<std::string>();
  r->add_option("mode", *mode, "infer or train")->required()->check(CLI::IsMember({"infer", "train"}));
  r->add_option("samples", ref->samples, "sample stream (tinyzo fw-data)")->required();
  r->add_option("out", ref->out, "logits or trained-weights file to write")->required();
  r->add_option("params", ref->tokens,
                "n=/first= (infer) or key=value run settings (train; also store=, slot_kb=, val=, val_every=, margin=: "
                "power-safe weights, docs/mcu.md)");
  r->add_option("--model,-m", ref->model, "the model the firmware embeds")->capture_default_str();
  r->add_option("--kernels", ref->kernels, "best or ref (bit-identical)")
      ->check(CLI::IsMember({"best", "ref"}))
      ->capture_default_str();
  r->callback([ref, mode]() {
    if (*mode == "infer")
      run_ref_infer(*ref);
    else
      run_ref_train(*ref);
  });

  auto fc_tokens = std::make_shared<std::vector<std::string>>();
  CLI::App* fc = app.add_subcommand(
      "fw-floatcheck", "binary32 digests (arithmetic, conversions, requantization, the trainer's math) "
                       "to compare with the firmware's float-check mode");
  fc->add_option("params", *fc_tokens, "n=N (rounds, default 20000) seed=S (default 1)");
  fc->callback([fc_tokens]() { run_fw_floatcheck(*fc_tokens); });

  auto chk = std::make_shared<CheckOptions>();
  CLI::App* c =
      app.add_subcommand("fw-check", "compare a device output with the host reference, bit for bit");
  c->add_option("expected", chk->expected, "host file (tinyzo fw-ref)")->required();
  c->add_option("actual", chk->actual, "device file")->required();
  c->add_option("--model,-m", chk->model, "the starting model (counts moved parameters; needed by --export)");
  c->add_option("--export", chk->export_path,
                "write the model with the actual file's trained weights as .tzm");
  c->callback([chk]() { run_fw_check(*chk); });
}

}  // namespace tinyzo::cli
