#include "control/cli/completions.h"

#include <CLI/CLI.hpp>
#include <stdexcept>
#include <vector>

namespace triglav::ctl {
namespace {

struct Command {
  std::string path;  // "server", "uplink show"
  std::string description;
  std::vector<std::string> options;  // "--listen", "-i", ...
  std::vector<std::string> subcommands;
};

void collect(const CLI::App& app, const std::string& path, std::vector<Command>& out) {
  Command c;
  c.path = path;
  c.description = app.get_description();
  for (const CLI::Option* o : app.get_options()) {
    for (const auto& l : o->get_lnames()) c.options.push_back("--" + l);
    for (const auto& s : o->get_snames()) c.options.push_back("-" + s);
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    c.subcommands.push_back(sub->get_name());
  out.push_back(c);
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    collect(*sub, path.empty() ? sub->get_name() : path + " " + sub->get_name(), out);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

// Words a shell must not see unquoted: descriptions go into single quotes.
std::string single_quoted(const std::string& v) {
  std::string o = "'";
  for (char c : v) {
    if (c == '\'') o += "'\\''";
    else o += c;
  }
  return o + "'";
}

std::string bash(const std::vector<Command>& cmds) {
  std::string s =
      "# bash completion for triglav: source it, or install it as\n"
      "# /usr/share/bash-completion/completions/triglav\n"
      "_triglav() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" path=\"\" w i\n"
      "  # The subcommand path so far: the words before the cursor that name subcommands.\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    w=\"${COMP_WORDS[i]}\"\n"
      "    case \"${path:+$path }$w\" in\n";
  for (const auto& c : cmds)
    if (!c.path.empty()) s += "      \"" + c.path + "\") path=\"" + c.path + "\" ;;\n";
  s += "    esac\n"
       "  done\n"
       "  local words\n"
       "  case \"$path\" in\n";
  for (const auto& c : cmds)
    s += "    \"" + c.path + "\") words=\"" + join(c.subcommands) + (c.subcommands.empty() ? "" : " ") +
         join(c.options) + "\" ;;\n";
  s += "  esac\n"
       "  if [[ \"$cur\" != -* ]]; then\n"
       "    local subs=\"\" x\n"
       "    for x in $words; do [[ \"$x\" != -* ]] && subs+=\"$x \"; done\n"
       "    if [[ -n \"$subs\" ]]; then COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\")); return; fi\n"
       "    COMPREPLY=($(compgen -f -- \"$cur\")); return\n"
       "  fi\n"
       "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
       "}\n"
       "complete -F _triglav triglav\n";
  return s;
}

std::string fish(const std::vector<Command>& cmds) {
  std::string s = "# fish completion for triglav: install as ~/.config/fish/completions/triglav.fish\n";
  s += "complete -c triglav -f\n";
  for (const auto& c : cmds) {
    // The condition: exactly this subcommand path has been typed.
    std::string cond;
    if (c.path.empty()) {
      cond = "__fish_use_subcommand";
    } else {
      cond = "__fish_seen_subcommand_from " + c.path.substr(c.path.rfind(' ') == std::string::npos ? 0 : c.path.rfind(' ') + 1);
    }
    for (const auto& sub : c.subcommands) {
      const Command* child = nullptr;
      for (const auto& d : cmds)
        if (d.path == (c.path.empty() ? sub : c.path + " " + sub)) child = &d;
      s += "complete -c triglav -n " + single_quoted(cond) + " -a " + sub +
           (child ? " -d " + single_quoted(child->description) : "") + "\n";
    }
    for (const auto& o : c.options) {
      if (o.rfind("--", 0) == 0) s += "complete -c triglav -n " + single_quoted(cond) + " -l " + o.substr(2) + "\n";
      else s += "complete -c triglav -n " + single_quoted(cond) + " -s " + o.substr(1) + "\n";
    }
  }
  return s;
}

}  // namespace

std::string completion_script(const CLI::App& app, const std::string& shell) {
  std::vector<Command> cmds;
  collect(app, "", cmds);
  if (shell == "bash") return bash(cmds);
  if (shell == "zsh")  // zsh runs the bash completion through its compatibility layer
    return "#compdef triglav\n# zsh completion for triglav: install as _triglav in a directory of $fpath\n"
           "autoload -U +X bashcompinit && bashcompinit\n" +
           bash(cmds);
  if (shell == "fish") return fish(cmds);
  throw std::runtime_error("completions: '" + shell + "' is not one of bash, zsh, fish");
}

}  // namespace triglav::ctl
