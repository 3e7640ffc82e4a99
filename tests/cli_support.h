// Running the `tinyzo` binary from GoogleTest (header-only, shared by
// cli_test.cc and cli_train_test.cc): temporary directories, file helpers, a
// synchronous run through the shell and an asynchronous one (for signals and
// concurrent runs). Needs $TINYZO_TEST_BINARY_DIR (set by ctest).
#pragma once
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "data/cifar10.h"
#include "temp_dir.h"
#include "test_models.h"

extern char** environ;

namespace tinyzo {
namespace cli_testing {

namespace fs = std::filesystem;

using test::TempDir;

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

struct RunResult {
  int code = -1;
  std::string out, err;
};

inline std::string tinyzo_binary() {
  const char* dir = std::getenv("TINYZO_TEST_BINARY_DIR");
  if (dir == nullptr || *dir == '\0') return "";
  return std::string(dir) + "/tinyzo";
}

// Runs `[env] tinyzo args` through the shell in `cwd`, after `shell_prefix`
// (e.g. "ulimit -v 1000000 && ").
inline RunResult run_tinyzo(const std::string& args, const std::string& cwd, const std::string& env = "",
                            const std::string& shell_prefix = "") {
  RunResult r;
  const std::string bin = tinyzo_binary();
  if (bin.empty()) {
    ADD_FAILURE() << "TINYZO_TEST_BINARY_DIR is not set (run through ctest)";
    return r;
  }
  const std::string out = cwd + "/.stdout", err = cwd + "/.stderr";
  const std::string cmd = shell_prefix + "cd '" + cwd + "' && env " + env + " '" + bin + "' " + args + " >'" +
                          out + "' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  std::remove(out.c_str());
  std::remove(err.c_str());
  return r;
}

// A failed command prints exactly one line, "tinyzo: error: ...", and nothing on stdout.
inline void expect_one_error_line(const RunResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_EQ(r.err.rfind("tinyzo: error: ", 0), 0u) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

// n CIFAR-10 records: label (i * 3) % 10, pixels from a fixed LCG.
inline std::vector<uint8_t> synthetic_cifar(size_t n) {
  std::vector<uint8_t> bytes;
  uint32_t x = 99;
  for (size_t i = 0; i < n; ++i) {
    bytes.push_back(static_cast<uint8_t>(i * 3 % 10));
    for (size_t j = 0; j < kCifar10ImageBytes; ++j) {
      x = x * 1664525u + 1013904223u;
      bytes.push_back(static_cast<uint8_t>(x >> 24));
    }
  }
  return bytes;
}

// A `tinyzo` process running in the background (fork + exec, no shell), its
// stdout and stderr going to files in `cwd`.
class Background {
 public:
  // `args` after the binary; `env` entries "NAME=value" added to ours.
  Background(const std::vector<std::string>& args, const std::string& cwd,
             const std::vector<std::string>& env = {})
      : out_(cwd + "/.bg_stdout." + std::to_string(serial())),
        err_(cwd + "/.bg_stderr." + std::to_string(serial())) {
    ++serial();
    std::vector<std::string> argv_s = {tinyzo_binary()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<std::string> env_s;
    for (char** e = environ; *e != nullptr; ++e) env_s.push_back(*e);
    env_s.insert(env_s.end(), env.begin(), env.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      if (::chdir(cwd.c_str()) != 0) ::_exit(126);
      std::FILE* o = std::freopen(out_.c_str(), "w", stdout);
      std::FILE* e = std::freopen(err_.c_str(), "w", stderr);
      if (o == nullptr || e == nullptr) ::_exit(126);
      std::vector<char*> av, ev;
      for (std::string& a : argv_s) av.push_back(a.data());
      av.push_back(nullptr);
      for (std::string& a : env_s) ev.push_back(a.data());
      ev.push_back(nullptr);
      ::execve(av[0], av.data(), ev.data());
      ::_exit(127);
    }
  }
  ~Background() {
    if (pid_ > 0 && !done_) {
      ::kill(pid_, SIGKILL);
      (void)wait();
    }
    std::remove(out_.c_str());
    std::remove(err_.c_str());
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) { ::kill(pid_, sig); }
  // The exit code, or 128 + the signal that killed it.
  int wait() {
    if (done_) return code_;
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    done_ = true;
    code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return code_;
  }
  bool running() {
    if (done_) return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      done_ = true;
      code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    return true;
  }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }

 private:
  static int& serial() {
    static int n = 0;
    return n;
  }
  std::string out_, err_;
  pid_t pid_ = -1;
  bool done_ = false;
  int code_ = -1;
};

// Polls `cond` every 10 ms until it holds (true) or `seconds` pass (false).
// A bound against hangs, not a timing assertion.
inline bool wait_until(const std::function<bool()>& cond, double seconds = 120) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

// A working directory with the trainable test model (m.tzm) and a data
// directory (data/) whose CIFAR-10 test batch holds 80 coloured images: the
// setting of the tests that train and evaluate through the binary
// (cli_train_test.cc, cli_data_test.cc). run() passes a private cache and
// that data directory.
class TrainableCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tinyzo_binary().empty()) << "TINYZO_TEST_BINARY_DIR is not set (run through ctest)";
    write_bytes(dir_.file("m.tzm"), testing::trainable_model_bytes());
    fs::create_directories(dir_.file("data/cifar10"));
    write_bytes(dir_.file("data/cifar10/test_batch.bin"),
                testing::cifar_file_bytes(testing::coloured_cifar_images(8, 1)));
  }
  RunResult run(const std::string& args, const std::string& prefix = "") {
    return run_tinyzo("--cache-dir cache " + args, dir_.path(), "TINYZO_DATA='" + dir_.file("data") + "'", prefix);
  }
  TempDir dir_;
};

}  // namespace cli_testing
}  // namespace tinyzo
