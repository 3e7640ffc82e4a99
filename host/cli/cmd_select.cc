// `tinyzo select` (placeholder while being written).
#include "commands.h"
namespace tinyzo::cli {
void register_select_command(CLI::App& app) { (void)app; }
}  // namespace tinyzo::cli
