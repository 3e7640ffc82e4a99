#include "train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "train/checkpoint.h"
#include "util/errors.h"
#include "util/file_util.h"
#include "train/train_config.h"

namespace tinyzo {

namespace {

constexpr const char* kFormat = "tinyzo-run";
constexpr int kManifestVersion = 1;
constexpr uint64_t kMaxManifestBytes = 1 << 20;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// "NAME.tmp.PID.N", what sibling_temp_path() makes for NAME.
bool is_temporary_of(const std::string& entry, const std::string& name) {
  const std::string prefix = name + ".tmp.";
  if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix) != 0) return false;
  return std::all_of(entry.begin() + long(prefix.size()), entry.end(),
                     [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// A manifest's file name must stay inside the directory.
bool is_plain_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\0') == std::string::npos;
}

}  // namespace

const std::vector<std::string>& RunDirectory::run_files() {
  // Removal order of --overwrite: the checkpoint first (a crash midway never
  // leaves a resumable checkpoint beside a half-removed run), the manifest last.
  static const std::vector<std::string> kFiles = {"checkpoint.bin", "best.tzm", "summary.json", "log.jsonl",
                                                  "config.json",    kLock,      kManifest};
  return kFiles;
}

const char* RunDirectory::state_name(State s) {
  switch (s) {
    case State::kRunning:
      return "running";
    case State::kStopped:
      return "stopped";
    case State::kFinished:
      return "finished";
    case State::kNone:
      break;
  }
  return "none";
}

RunDirectory::RunDirectory(const std::string& dir, Mode mode) : dir_(dir), mode_(mode) {
  if (dir_.empty()) throw CliError("--out: is empty (give the run's directory)");
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  try {
    const std::string kind = non_regular_file_kind(dir_);
    if (is_regular_file(dir_) || (!kind.empty() && !is_directory(dir_)))
      throw CliError("--out " + dir_ + ": exists and is not a directory");
    if (!is_directory(dir_)) {
      if (mode_ == Mode::kResume)
        throw CliError("--resume: " + dir_ + " does not exist (is --out the run's directory?)");
      make_directories(dir_);
      created_dir_ = true;
    }
    lock();
    read_manifest();
    remove_temporaries();

    const bool is_run = previous_state_ != State::kNone;
    const std::vector<std::string> present = entries();
    std::vector<std::string> unowned;  // run-file names that no run here owns
    if (!is_run)
      for (const std::string& f : run_files())
        if (f != kLock && contains(present, f)) unowned.push_back(f);
    const bool has_checkpoint = is_regular_file(path("checkpoint.bin"));
    std::string what = std::string("a ") + state_name(previous_state_) + " run";
    if (previous_state_ == State::kRunning) what = "a run that was killed or crashed";
    if (has_checkpoint && previous_state_ != State::kFinished) {
      try {
        const CheckpointHead h = peek_checkpoint(path("checkpoint.bin"));
        what += " (checkpoint at step " + std::to_string(h.step) +
                (total_steps_ > 0 ? " of " + std::to_string(total_steps_) : std::string()) + ")";
      } catch (const CliError&) {
        what += " (its checkpoint.bin is damaged)";
      }
    }
    switch (mode_) {
      case Mode::kStart:
        // A run that died before its first checkpoint holds nothing to
        // resume or keep (no checkpoint, no best.tzm, no summary): a new run
        // replaces it, as a start into a fresh directory would.
        replaces_dead_run_ = is_run && !has_checkpoint && !is_regular_file(path("best.tzm")) &&
                             !is_regular_file(path("summary.json"));
        if (is_run && !replaces_dead_run_)
          throw CliError("--out " + dir_ + " already holds " + what +
                         ": add --resume to continue it, --overwrite to replace it, or choose another --out");
        if (!unowned.empty())
          throw CliError(
              "--out " + dir_ + " holds " + join(unowned) +
              " that no tinyzo run there owns (no run.json): move them away or choose another --out");
        break;
      case Mode::kOverwrite:
        if (!unowned.empty())
          throw CliError(
              "--out " + dir_ + " holds " + join(unowned) +
              " that no tinyzo run there owns (no run.json), and --overwrite replaces only a run's own "
              "files: move them away or choose another --out");
        break;
      case Mode::kResume:
        if (!is_run) throw CliError("--resume: " + dir_ + " holds no run (no run.json)");
        if (!has_checkpoint)
          throw CliError("--resume: " + dir_ + " holds " + what +
                         " without a checkpoint.bin (it stopped before its first checkpoint, or the file was "
                         "removed): start it again with --overwrite");
        break;
    }
  } catch (...) {
    if (!begun_ && created_lock_) ::unlink(path(kLock).c_str());
    if (lock_fd_ >= 0) ::close(lock_fd_);
    if (created_dir_) ::rmdir(dir_.c_str());  // only when still empty
    throw;
  }
}

RunDirectory::~RunDirectory() {
  // A run that never began leaves the directory as it found it. Unlinking
  // the lock file while holding it is safe: lock() re-checks that the path
  // still names the file it locked.
  if (!begun_ && created_lock_) ::unlink(path(kLock).c_str());
  if (lock_fd_ >= 0) ::close(lock_fd_);
  if (!begun_ && created_dir_) ::rmdir(dir_.c_str());
}

void RunDirectory::lock() {
  const std::string p = path(kLock);
  for (int attempt = 0; attempt < 64; ++attempt) {
    bool created = true;
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) {
      created = false;
      fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT) continue;  // removed meanwhile: create it again
    }
    if (fd < 0) throw CliError(p + ": cannot open the run's lock file: " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      char buf[64] = {0};
      const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      ::close(fd);
      if (err != EWOULDBLOCK) throw CliError(p + ": cannot lock: " + std::strerror(err));
      std::string holder(buf, n > 0 ? size_t(n) : 0);
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      throw CliError("--out " + dir_ + " is in use by another tinyzo train" +
                         (holder.empty() ? std::string() : " (" + holder + ")") +
                         ": wait for it to end, stop it (Ctrl-C or kill -TERM: it saves a checkpoint, then "
                         "--resume), or choose another --out",
                     kExitBusy);
    }
    // The lock holds only if the path still names the file locked (a process
    // that gave up may have unlinked it between our open and our flock).
    struct stat a, b;
    if (::fstat(fd, &a) == 0 && ::stat(p.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      lock_fd_ = fd;
      created_lock_ = created;
      const std::string who = "pid " + std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, who.data(), who.size(), 0) != ssize_t(who.size())) {
        // The pid is only for messages; the lock is what counts.
      }
      return;
    }
    ::close(fd);
  }
  throw CliError(p + ": cannot lock (the lock file keeps being replaced)");
}

std::vector<std::string> RunDirectory::entries() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path().filename().string());
  if (ec) throw CliError(dir_ + ": cannot list: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

void RunDirectory::remove_temporaries() {
  std::vector<std::string> names = run_files();
  for (const std::string& f : owned_)
    if (!contains(names, f)) names.push_back(f);
  for (const std::string& e : entries())
    for (const std::string& f : names)
      if (is_temporary_of(e, f)) {
        // The lock proves the writer of the temporary is gone.
        if (::unlink(path(e).c_str()) != 0 && errno != ENOENT)
          throw CliError(path(e) + ": cannot remove a stale temporary: " + std::strerror(errno));
        break;
      }
}

void RunDirectory::read_manifest() {
  const std::string p = path(kManifest);
  if (!is_regular_file(p) && non_regular_file_kind(p).empty()) {
    // No manifest: a run written before manifests existed is recognised by
    // its own files, so it can still be resumed or replaced.
    if (looks_like_legacy_run()) {
      legacy_ = true;
      owned_ = run_files();
      previous_state_ = is_regular_file(path("summary.json")) ? State::kFinished : State::kStopped;
    }
    return;
  }
  const std::vector<uint8_t> bytes = read_file_bytes(p, kMaxManifestBytes, "run manifest");
  const nlohmann::json j = parse_json_strict(std::string(bytes.begin(), bytes.end()), p);
  const std::string fix = " (repair or remove it by hand if the directory is to be reused)";
  if (!j.is_object() || j.value("format", "") != kFormat || !j.contains("files") || !j["files"].is_array())
    throw CliError(p + ": not a tinyzo run manifest" + fix);
  if (!j.contains("version") || !j["version"].is_number_integer() ||
      j["version"].get<int64_t>() > kManifestVersion)
    throw CliError(p + ": a run manifest of another version of tinyzo" + fix);
  for (const auto& f : j["files"]) {
    if (!f.is_string() || !is_plain_name(f.get<std::string>()))
      throw CliError(p + ": a file name in 'files' is not a plain name" + fix);
    owned_.push_back(f.get<std::string>());
  }
  const std::string state = j.value("state", "");
  previous_state_ = state == "finished"  ? State::kFinished
                    : state == "stopped" ? State::kStopped
                                         : State::kRunning;
  fingerprint_ = j.value("fingerprint", "");
  if (j.contains("total_steps") && j["total_steps"].is_number_unsigned())
    total_steps_ = uint32_t(std::min<uint64_t>(j["total_steps"].get<uint64_t>(), UINT32_MAX));
}

bool RunDirectory::looks_like_legacy_run() const {
  try {
    if (is_regular_file(path("checkpoint.bin"))) {
      (void)peek_checkpoint(path("checkpoint.bin"));
      return true;
    }
  } catch (const CliError&) {
  }
  // Or a log whose first line is the start record of `tinyzo train`.
  try {
    const InputFile log(path("log.jsonl"), "log");
    std::string head(size_t(std::min<uint64_t>(log.size(), 64 << 10)), '\0');
    log.read_at(0, head.data(), head.size());
    const size_t nl = head.find('\n');
    if (nl == std::string::npos) return false;
    const nlohmann::json j = nlohmann::json::parse(head.substr(0, nl));
    return j.is_object() && j.value("type", "") == "start" && j.contains("fingerprint");
  } catch (const std::exception&) {
    return false;
  }
}

void RunDirectory::remove_old_run() {
  if ((mode_ != Mode::kOverwrite && !replaces_dead_run_) || previous_state_ == State::kNone) return;
  std::vector<std::string> order;
  for (const std::string& f : run_files())
    if (contains(owned_, f) && f != kLock && f != kManifest) order.push_back(f);
  for (const std::string& f : owned_)
    if (!contains(order, f) && f != kLock && f != kManifest) order.push_back(f);
  order.push_back(kManifest);
  for (const std::string& f : order)
    if (::unlink(path(f).c_str()) != 0 && errno != ENOENT)
      throw CliError("--overwrite: cannot remove " + path(f) + ": " + std::strerror(errno));
  owned_.clear();
  previous_state_ = State::kNone;
}

void RunDirectory::begin(const std::string& fingerprint, uint32_t step, uint32_t total_steps) {
  fingerprint_ = fingerprint;
  total_steps_ = total_steps;
  write_manifest(State::kRunning, step);
  begun_ = true;
}

void RunDirectory::set_state(State state, uint32_t step) { write_manifest(state, step); }

void RunDirectory::write_manifest(State state, uint32_t step) {
  std::vector<std::string> files = run_files();
  for (const std::string& f : owned_)
    if (!contains(files, f)) files.push_back(f);
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = kManifestVersion;
  j["files"] = files;
  j["state"] = state_name(state);
  j["fingerprint"] = fingerprint_;
  j["step"] = step;
  j["total_steps"] = total_steps_;
  j["pid"] = int64_t(::getpid());
  const std::string text = j.dump(2) + "\n";
  write_file_atomic(path(kManifest), text.data(), text.size());
}

}  // namespace tinyzo
