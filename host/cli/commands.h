// Each `tinyzo` subcommand lives in its own cmd_<name>.cc and registers itself
// on the CLI11 app here. A command's callback throws tinyzo::CliError (or any
// std::exception) on failure; main() prints one line and exits non-zero.
#pragma once
#include <CLI/CLI.hpp>

namespace tinyzo::cli {

void register_info_command(CLI::App& app);
void register_eval_command(CLI::App& app);
void register_dump_command(CLI::App& app);
void register_import_command(CLI::App& app);
void register_export_command(CLI::App& app);
void register_plan_command(CLI::App& app);
void register_corrupt_command(CLI::App& app);
void register_train_command(CLI::App& app);
void register_select_command(CLI::App& app);
void register_split_command(CLI::App& app);
void register_batches_command(CLI::App& app);
void register_run_command(CLI::App& app);
void register_convert_command(CLI::App& app);
void register_fw_commands(CLI::App& app);  // fw-data, fw-size, fw-ref, fw-check

// The exit code of a command that succeeded in part (main() returns it):
// `train` stopped by SIGINT / SIGTERM exits 130 / 143 after saving its run.
void set_exit_code(int code);

}  // namespace tinyzo::cli
