#include "models/model_store.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "util/errors.h"
#include "util/file_util.h"
#include "tinyzo/model_format.h"
#include "models/tflite_import.h"
#include "models/tflite_reader.h"
#include <zlib.h>

#ifndef TINYZO_SOURCE_DIR
#define TINYZO_SOURCE_DIR "."
#endif

namespace tinyzo {

// ---- LoadedModel ----

LoadedModel LoadedModel::from_bytes(const uint8_t* data, size_t size, const std::string& what) {
  LoadedModel m;
  m.path_ = what;
  m.size_ = size;
  m.storage_.resize((size + sizeof(Block) - 1) / sizeof(Block));
  if (size != 0) std::memcpy(m.storage_.data(), data, size);
  m.validate();
  return m;
}

void LoadedModel::validate() {
  const Status st = view_.init(data(), size_);
  if (st != Status::kOk) {
    const char* why = view_.error();
    throw CliError(path_ + ": " + (st == Status::kUnsupported ? "unsupported model: " : "corrupt model: ") +
                   (why != nullptr && *why != '\0' ? why : status_name(st)));
  }
}

LoadedModel LoadedModel::load(const std::string& path) {
  const InputFile file(path, "model");
  // Size and header first: nothing large is read or allocated for a file the
  // format cannot hold or whose header already says it is not a model.
  if (file.size() > kMaxModelBytes)
    throw CliError(path + ": " + std::to_string(file.size()) + " bytes, more than a .tzm model can hold (" +
                   std::to_string(kMaxModelBytes) + ": its header stores the size in 32 bits); not read");
  TzmHeader h{};
  const size_t head = size_t(std::min<uint64_t>(file.size(), sizeof h));
  file.read_at(0, &h, head);
  const auto* b = reinterpret_cast<const uint8_t*>(&h);
  if (head >= 2 && b[0] == 'P' && b[1] == 'K')
    throw CliError(path + ": a PyTorch zip file, not a .tzm model; convert it with `tinyzo import " + path +
                   " -o OUT.tzm`");
  if (head == sizeof h) {
    // The messages ModelView::init gives for the same faults.
    if (h.magic != kTzmMagic) throw CliError(path + ": corrupt model: bad magic (not a .tzm file)");
    if (h.version_major == kTzmVersionMajor && h.header_size == sizeof h && h.file_size != file.size())
      throw CliError(
          path + ": corrupt model: " + (h.file_size > file.size() ? "truncated file" : "file size mismatch"));
  }
  LoadedModel m;
  m.path_ = path;
  m.size_ = size_t(file.size());
  m.storage_.resize((m.size_ + sizeof(Block) - 1) / sizeof(Block));
  file.read_at(0, m.storage_.data(), m.size_);
  m.validate();
  return m;
}

// ---- known models ----

const std::vector<KnownModel>& known_models() {
  static const std::vector<KnownModel> kModels = {
      {"mcunet-cifar10", "mcunet_in1_cifar10.pth", "MCUNet-5fps int8, fine-tuned on CIFAR-10 (the paper's start model)"},
      {"mcunet-5fps", "mcunet-5fps.pkl", "MCUNet-5fps int8, ImageNet (1000 classes)"},
      {"mbv2-w0.35", "mbv2-w0.35.pkl", "MobileNetV2-w0.35 int8, ImageNet (1000 classes)"},
      {"proxyless-w0.3", "proxyless-w0.3.pkl", "ProxylessNAS-w0.3 int8, ImageNet (1000 classes)"},
  };
  return kModels;
}

const KnownModel* find_known_model(const std::string& name) {
  for (const KnownModel& m : known_models())
    if (name == m.name) return &m;
  return nullptr;
}

// ---- running a model ----

const KernelTable& kernels_by_name(const std::string& name) {
  if (name == "best") return best_kernels();
  if (name == "ref") return ref::table();
  throw CliError("--kernels " + name + ": unknown kernel set (best, ref)");
}

size_t required_arena_bytes(const ModelView& model, int batch, const EngineOptions& options) {
  // The probe needs a scratch arena "large enough": grow it until it is.
  for (size_t scratch_bytes = size_t(1) << 20; scratch_bytes <= (size_t(1) << 32); scratch_bytes *= 4) {
    std::vector<uint8_t> scratch_memory(scratch_bytes + 16);
    const uintptr_t base = reinterpret_cast<uintptr_t>(scratch_memory.data());
    Arena scratch(scratch_memory.data() + ((16 - base % 16) % 16), scratch_bytes);
    size_t bytes = 0;
    const Status st = Engine::required_arena_bytes(model, scratch, &bytes, batch, options);
    if (st == Status::kOk) return bytes;
    if (st != Status::kOutOfMemory) throw CliError(std::string("engine: cannot plan the model: ") + status_name(st));
  }
  throw CliError("engine: the model needs more than 4 GiB of arena");
}

EngineInstance::EngineInstance(const ModelView& model, const KernelTable& kernels, int batch,
                               const EngineOptions& options) {
  const size_t bytes = required_arena_bytes(model, batch, options);
  memory_.resize((bytes + sizeof(Block) - 1) / sizeof(Block));
  arena_ = Arena(memory_.data(), memory_.size() * sizeof(Block));
  const Status st = engine_.init(model, arena_, kernels, batch, options);
  if (st != Status::kOk) throw CliError(std::string("engine: init failed: ") + status_name(st));
}

void EngineInstance::invoke() {
  const Status st = engine_.invoke();
  if (st != Status::kOk) throw CliError(std::string("engine: invoke failed: ") + status_name(st));
}

void EngineInstance::invoke_items(int n_items) {
  const Status st = engine_.invoke_items(0, engine_.model().n_ops(), 0, n_items);
  if (st != Status::kOk) throw CliError(std::string("engine: invoke failed: ") + status_name(st));
}

void EngineInstance::logits(std::vector<float>* out, int item) const {
  const TzmTensor& t = engine_.output_info();
  if (t.dtype == static_cast<uint8_t>(DType::kFloat32)) {
    const Span<const float> y = engine_.output_f32(item);
    out->assign(y.begin(), y.end());
  } else if (t.dtype == static_cast<uint8_t>(DType::kInt8)) {
    const Span<const int8_t> y = engine_.output_s8(item);
    out->resize(y.size());
    for (size_t i = 0; i < y.size(); ++i) (*out)[i] = t.scale * float(int32_t(y[i]) - t.zero_point);
  } else {
    throw CliError("model output has dtype " + std::to_string(t.dtype) + ", expected float32 or int8");
  }
}

int argmax(const std::vector<float>& v) {
  int best = -1;
  for (size_t i = 0; i < v.size(); ++i)
    if (best < 0 || v[i] > v[size_t(best)]) best = static_cast<int>(i);
  return best;
}

// ---- the importer subprocess ----

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

// The first executable `name` on $PATH, or "".
std::string find_on_path(const std::string& name) {
  const std::string path = env("PATH");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    const std::string dir = end > start ? path.substr(start, end - start) : ".";
    const std::string candidate = dir + "/" + name;
    if (is_regular_file(candidate) && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

std::vector<std::string> python_candidates() {
  const std::string forced = env("TINYZO_PYTHON");
  if (!forced.empty()) {
    if (forced.find('/') != std::string::npos) return {forced};
    const std::string found = find_on_path(forced);
    if (found.empty()) throw CliError("$TINYZO_PYTHON=" + forced + ": not found on PATH");
    return {found};
  }
  std::vector<std::string> out;
  const std::string on_path = find_on_path("python3");
  if (!on_path.empty()) out.push_back(on_path);
  const std::string system = "/usr/bin/python3";
  std::error_code ec;
  if (is_regular_file(system) &&
      (on_path.empty() || !std::filesystem::equivalent(on_path, system, ec)))
    out.push_back(system);
  return out;
}

struct ProcessResult {
  int exit_code = -1;   // -1: killed by a signal or could not start
  std::string output;   // stdout and stderr, interleaved
  bool started = false;
};

// Runs argv[0] (a path) with `argv`, capturing stdout+stderr.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& pythonpath) {
  ProcessResult r;
  int fds[2];
  if (::pipe(fds) != 0) throw CliError(std::string("pipe: ") + std::strerror(errno));
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw CliError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    if (!pythonpath.empty()) {
      const char* old = std::getenv("PYTHONPATH");
      const std::string v = old != nullptr && *old != '\0' ? pythonpath + ":" + old : pythonpath;
      ::setenv("PYTHONPATH", v.c_str(), 1);
    }
    ::execv(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);
  char buf[4096];
  for (;;) {
    const ssize_t got = ::read(fds[0], buf, sizeof buf);
    if (got > 0) {
      r.output.append(buf, size_t(got));
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.started = true;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

std::string last_line(const std::string& text) {
  size_t end = text.size();
  while (end > 0) {
    while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' ')) --end;
    if (end == 0) break;
    const size_t start = text.rfind('\n', end - 1);
    const std::string line = text.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1));
    if (!line.empty()) return line;
    end = start == std::string::npos ? 0 : start;
  }
  return "(no output)";
}

std::string python_package_dir() { return std::string(TINYZO_SOURCE_DIR) + "/python"; }

// Newest modification time of the importer's Python package (0 if absent), so
// that a changed importer invalidates the cache.
int64_t importer_mtime_ns() {
  const std::string script = importer_script_path();
  int64_t newest = is_regular_file(script) ? modification_time_ns(script) : 0;
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::path(script).parent_path();
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".py" && is_regular_file(it->path().string()))
      newest = std::max(newest, modification_time_ns(it->path().string()));
  }
  return newest;
}

}  // namespace

std::string importer_script_path() {
  const std::string forced = env("TINYZO_IMPORTER");
  if (!forced.empty()) return forced;
  return python_package_dir() + "/tinyzo/importer.py";
}

double run_importer(const std::string& src, const std::string& out, int input_size) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!is_regular_file(src)) throw CliError(src + ": no such file");
  const std::string script = importer_script_path();
  if (!is_regular_file(script))
    throw CliError(script + ": the Python importer is missing (set $TINYZO_IMPORTER or build from the source tree)");
  const std::vector<std::string> pythons = python_candidates();
  if (pythons.empty()) throw CliError("no python3 found (on PATH or /usr/bin/python3; set $TINYZO_PYTHON)");

  const std::filesystem::path out_path(out);
  if (out_path.has_parent_path()) make_directories(out_path.parent_path().string());
  const std::string tmp = sibling_temp_path(out);
  std::string failure;
  for (const std::string& python : pythons) {
    std::vector<std::string> argv = {python, script, src, "-o", tmp};
    if (input_size > 0) argv.insert(argv.end(), {"--input-size", std::to_string(input_size)});
    ProcessResult r = run_process(argv, python_package_dir());
    if (r.exit_code == 0 && is_regular_file(tmp)) {
      failure.clear();
      break;
    }
    std::remove(tmp.c_str());
    failure = "importer failed (" + python + " " + script + ", " +
              (r.exit_code >= 0 ? "exit code " + std::to_string(r.exit_code) : std::string("killed")) +
              "): " + last_line(r.output);
  }
  if (!failure.empty()) throw CliError(src + ": " + failure);
  try {
    (void)LoadedModel::load(tmp);
  } catch (const CliError& e) {
    std::remove(tmp.c_str());
    throw CliError("importer output for " + src + " (" + e.what() + ")");
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), out.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw CliError(out + ": cannot write: " + std::strerror(err));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---- --model resolution ----

namespace {

bool cache_is_fresh(const std::string& cached, const std::string& src) {
  if (!is_regular_file(cached)) return false;
  const int64_t t = modification_time_ns(cached);
  if (is_regular_file(src) && modification_time_ns(src) > t) return false;
  return importer_mtime_ns() <= t;
}

bool cache_is_valid(const std::string& cached) {
  try {
    (void)LoadedModel::load(cached);
    return true;
  } catch (const CliError&) {
    return false;
  }
}

std::string known_names() {
  std::string s;
  for (const KnownModel& m : known_models()) s += (s.empty() ? "" : ", ") + std::string(m.name);
  return s;
}

}  // namespace

std::string import_tflite_to_cache(const std::string& src, const PathOptions& options) {
  // Keyed by the file's content (CRC-32 and size) and the importer's version: an edited model
  // or a newer mapping never reuses a stale conversion, and the same bytes convert once.
  const std::vector<uint8_t> bytes = read_file_bytes(src, tflite::kMaxTfliteBytes, "TensorFlow Lite model");
  const uint32_t crc = uint32_t(::crc32(0L, bytes.data(), uInt(bytes.size())));
  std::string stem = std::filesystem::path(src).stem().string();
  if (stem.empty()) stem = "model";
  char key[64];
  std::snprintf(key, sizeof key, "-%08x-%zu-v%d.tzm", crc, bytes.size(), kTfliteImporterVersion);
  const std::string cache_dir = resolve_cache_dir(options.cache_dir) + "/tflite";
  const std::string cached = cache_dir + "/" + stem + key;
  if (is_regular_file(cached) && cache_is_valid(cached)) return cached;
  const auto t0 = std::chrono::steady_clock::now();
  const TfliteImport imp = import_tflite(tflite::parse_tflite(std::vector<uint8_t>(bytes), src), src);
  make_directories(cache_dir);
  write_file_atomic(cached, imp.tzm.data(), imp.tzm.size());
  std::fprintf(stderr, "tinyzo: imported %s (%d ops) -> %s in %.1f s\n", src.c_str(), imp.n_ops, cached.c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return cached;
}

std::string resolve_model_path(const std::string& arg, const PathOptions& options) {
  if (arg.empty()) throw CliError("--model: empty (give a .tzm or .tflite path or one of: " + known_names() + ")");
  if (is_regular_file(arg)) return looks_like_tflite(arg) ? import_tflite_to_cache(arg, options) : arg;
  const std::string kind = non_regular_file_kind(arg);
  if (!kind.empty()) throw CliError(arg + ": is " + kind + ", expected a .tzm file");
  const KnownModel* known = find_known_model(arg);
  if (known == nullptr) {
    if (arg.find('/') != std::string::npos || arg.find('.') != std::string::npos)
      throw CliError(arg + ": no such file");
    throw CliError("unknown model '" + arg + "' (known: " + known_names() + "; or a path to a .tzm or .tflite file)");
  }
  const std::string cache_dir = resolve_cache_dir(options.cache_dir);
  const std::string cached = cache_dir + "/" + known->name + ".tzm";

  std::string src;
  try {
    const std::string data_dir = resolve_data_dir(options.data_dir);
    src = require_data_file(data_dir, std::string(kModelsRelDir) + "/" + known->file,
                            std::string("the original ") + known->name + " model");
  } catch (const CliError&) {
    // Without the data directory a converted copy still serves.
    if (is_regular_file(cached) && cache_is_valid(cached)) return cached;
    throw;
  }
  if (cache_is_fresh(cached, src) && cache_is_valid(cached)) return cached;
  // Reported after the fact only, so that a failure stays a single error line.
  const double secs = run_importer(src, cached);
  std::fprintf(stderr, "tinyzo: converted %s (%s) -> %s in %.1f s\n", known->name, src.c_str(), cached.c_str(),
               secs);
  return cached;
}

LoadedModel load_model_arg(const std::string& arg, const PathOptions& options) {
  return LoadedModel::load(resolve_model_path(arg, options));
}

}  // namespace tinyzo
