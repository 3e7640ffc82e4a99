// The `tinyzo` command-line tool. Every failure ends as one line on stderr,
// "tinyzo: error: <message>", with exit code 2 for usage errors (bad flags,
// missing arguments, an unknown command), 75 when another process holds the
// run directory (kExitBusy) and 1 for everything else. `train` stopped by
// SIGINT / SIGTERM exits 130 / 143 after saving its run.
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "commands.h"
#include "data/data_dir.h"
#include "util/errors.h"

namespace tinyzo::cli {

namespace {
int g_exit_code = 0;
}  // namespace

void set_exit_code(int code) { g_exit_code = code; }

}  // namespace tinyzo::cli

namespace {

// Error text on one line: CLI11 and nested messages may contain newlines.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

int fail(const std::string& message, int code) {
  std::fflush(stdout);
  std::fprintf(stderr, "tinyzo: error: %s\n", one_line(message).c_str());
  return code;
}

// The first word of the command line that is neither an option nor the value
// of a global option: the command the user meant ("" when there is none).
std::string command_word(int argc, char** argv, const CLI::App& app) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") return i + 1 < argc ? argv[i + 1] : "";
    if (arg.empty() || arg[0] != '-') return arg;
    // A global option given as two words consumes the next one.
    if (arg.find('=') == std::string::npos) {
      const CLI::Option* o = app.get_option_no_throw(arg);
      if (o != nullptr && o->get_type_size_max() != 0) ++i;
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tinyzo: int8 CNN inference and zeroth-order training for microcontrollers (host tools)",
               "tinyzo"};
  app.set_version_flag("--version", "tinyzo 0.1.0");
  tinyzo::PathOptions& paths = tinyzo::global_path_options();
  app.add_option("--data-dir", paths.data_dir,
                 "shared data directory (default: $TINYZO_DATA, ../shared/data, <source>/../shared/data)");
  app.add_option("--cache-dir", paths.cache_dir,
                 "cache for converted models (default: $TINYZO_CACHE, $XDG_CACHE_HOME/tinyzo, ~/.cache/tinyzo)");
  app.require_subcommand(1);
  app.fallthrough();  // global options are accepted after the subcommand too

  tinyzo::cli::register_info_command(app);
  tinyzo::cli::register_eval_command(app);
  tinyzo::cli::register_run_command(app);
  tinyzo::cli::register_dump_command(app);
  tinyzo::cli::register_import_command(app);
  tinyzo::cli::register_export_command(app);
  tinyzo::cli::register_plan_command(app);
  tinyzo::cli::register_corrupt_command(app);
  tinyzo::cli::register_train_command(app);
  tinyzo::cli::register_select_command(app);
  tinyzo::cli::register_split_command(app);
  tinyzo::cli::register_batches_command(app);
  tinyzo::cli::register_convert_command(app);
  tinyzo::cli::register_fw_commands(app);

  // CLI11 would call an unknown command a missing one ("A subcommand is required").
  const std::string word = command_word(argc, argv, app);
  if (!word.empty()) {
    std::string names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
      known = known || sub->check_name(word);
    }
    if (!known) return fail("unknown command '" + word + "' (commands: " + names + "; see tinyzo --help)", 2);
  }

  try {
    // Subcommand callbacks run inside parse(), after all arguments are checked.
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + " (see tinyzo --help)", 2);
  } catch (const tinyzo::CliError& e) {
    return fail(e.what(), e.exit_code());
  } catch (const std::bad_alloc&) {
    return fail("out of memory", 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  } catch (...) {
    return fail("unknown error", 1);
  }
  if (std::fflush(stdout) != 0) return fail("cannot write to standard output", 1);
  return tinyzo::cli::g_exit_code;
}
