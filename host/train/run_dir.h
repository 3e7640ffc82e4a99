// A run directory (`tinyzo train --out DIR`) kept like a small database, so
// that no run's results are ever lost or mixed with another's
// (docs/run-directories.md):
//   - one writer: DIR/run.lock is flock()ed for the life of the run, so a
//     second `tinyzo train` into DIR, or a --resume of a live run, is refused
//     at once (exit code kExitBusy) instead of interleaving two logs;
//   - ownership: DIR/run.json (the manifest) lists the files the run owns. It
//     is written before any of them, so whatever a crash leaves is covered.
//     --overwrite removes exactly those files; files the run does not own are
//     never read, replaced or removed, and a directory whose run-file names
//     (config.json, log.jsonl, ...) belong to no run is refused;
//   - recovery: temporaries of interrupted atomic writes (NAME.tmp.PID.N) are
//     removed when the directory is opened (the lock proves their writer dead).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tinyzo {

class RunDirectory {
 public:
  enum class Mode {
    kStart,      // a new run: DIR is missing, empty, holds only files no run writes, or a run that
                 // died before its first checkpoint (nothing to resume or keep: it is replaced)
    kResume,     // continue the run in DIR from its checkpoint
    kOverwrite,  // a new run replacing the (finished, stopped or dead) run in DIR, or a new run
  };
  enum class State { kNone, kRunning, kStopped, kFinished };

  // The manifest's name, the lock's, and the files a run owns (all in DIR).
  static constexpr const char* kManifest = "run.json";
  static constexpr const char* kLock = "run.lock";
  static const std::vector<std::string>& run_files();

  // Opens DIR for `mode`: creates it when missing (not for kResume), takes
  // the lock, removes stale temporaries, reads the manifest and checks what
  // DIR holds against the mode. Throws CliError naming DIR (exit code
  // kExitBusy when another process holds the lock); a refused open leaves DIR
  // as it was.
  RunDirectory(const std::string& dir, Mode mode);
  ~RunDirectory();
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  const std::string& dir() const { return dir_; }
  Mode mode() const { return mode_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // What the manifest said when DIR was opened (kNone: no run there).
  State previous_state() const { return previous_state_; }
  // A run written before manifests existed (adopted on resume or overwrite).
  bool legacy() const { return legacy_; }
  // kStart over a run that died before its first checkpoint (remove_old_run() removes it).
  bool replaces_dead_run() const { return replaces_dead_run_; }

  // kOverwrite (and kStart over a dead run, replaces_dead_run()): removes
  // the old run's files (the checkpoint first, so a crash midway never
  // leaves a checkpoint beside another run's log), keeping the lock. Call it
  // when everything the new run needs has been loaded. No-op otherwise.
  void remove_old_run();
  // Declares the run: writes the manifest (state running, this pid) before
  // any other file is written. For kResume it marks the run running again.
  void begin(const std::string& fingerprint, uint32_t step, uint32_t total_steps);
  // Records the run's state (stopped with a checkpoint, or finished).
  void set_state(State state, uint32_t step);

  // "running", "stopped", "finished" ("none" for kNone).
  static const char* state_name(State s);

 private:
  void lock();
  void remove_temporaries();
  void read_manifest();
  void write_manifest(State state, uint32_t step);
  bool looks_like_legacy_run() const;
  std::vector<std::string> entries() const;

  std::string dir_;
  Mode mode_;
  int lock_fd_ = -1;
  bool created_dir_ = false, created_lock_ = false, begun_ = false;
  bool legacy_ = false;
  bool replaces_dead_run_ = false;
  State previous_state_ = State::kNone;
  std::vector<std::string> owned_;  // names the old run's manifest lists
  std::string fingerprint_;
  uint32_t total_steps_ = 0, previous_step_ = 0;
};

}  // namespace tinyzo
