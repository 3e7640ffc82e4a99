// Command-line options checked by the one definition of the settings
// (host/train_config.h): the flags of the train settings table, and numeric
// options of single commands parsed by the same strict parsers. A refused
// value is a usage error (exit code 2) naming the flag: "--lr: inf is not a
// finite number", "--count: -5 is outside 1..9223372036854775807".
#pragma once
#include <CLI/CLI.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/train_config.h"

namespace tinyzo::cli {

// Flags of train settings on one command. The values are checked while the
// command line is parsed and applied over a TrainConfig afterwards, so a
// flag given on the command line beats the config file whatever the order.
class SettingFlags {
 public:
  explicit SettingFlags(CLI::App* cmd) : cmd_(cmd) {}
  // Adds the flag of setting `key` (its names, help and range from the
  // table); `help` replaces the table's text when not empty.
  CLI::Option* add(const std::string& key, const std::string& help = "");
  // Adds every setting of the table.
  void add_all();
  // True when the flag of `key` was given.
  bool given(const std::string& key) const;
  // Sets each given flag's value in *c and records its flag in *sources.
  void apply(TrainConfig* c, SettingSources* sources) const;

 private:
  struct Entry {
    const Setting* setting = nullptr;
    CLI::Option* option = nullptr;
    std::string text;    // the value of a valued flag
    bool value = false;  // the value of a boolean flag
  };
  CLI::App* cmd_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

// An integer option in [min, max] (strict: "1e3", "-1" for min 0, "12abc" and
// values past the range are refused, nothing wraps).
CLI::Option* add_int_option(CLI::App* cmd, const std::string& names, int* dst, int64_t min, int64_t max,
                            const std::string& help);
CLI::Option* add_int_option(CLI::App* cmd, const std::string& names, int64_t* dst, int64_t min, int64_t max,
                            const std::string& help);
CLI::Option* add_int_option(CLI::App* cmd, const std::string& names, size_t* dst, int64_t min, int64_t max,
                            const std::string& help);
// A 64-bit seed (0..2^64-1; "-1" and "1e23" are refused, not wrapped or clamped).
CLI::Option* add_u64_option(CLI::App* cmd, const std::string& names, uint64_t* dst, const std::string& help);
// A finite real in [min, max] (inf, nan and 1e309 are refused).
CLI::Option* add_real_option(CLI::App* cmd, const std::string& names, double* dst, double min, double max,
                             const std::string& help);

}  // namespace tinyzo::cli
