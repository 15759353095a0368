// `triglav completions bash|zsh|fish`: a completion script generated from the command
// line's own definition, so it always knows every subcommand and option.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace triglav::ctl {

// The script for `shell` (bash, zsh or fish); throws std::runtime_error for another.
std::string completion_script(const CLI::App& app, const std::string& shell);

}  // namespace triglav::ctl
