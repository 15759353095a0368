// The settings table: every setting of `triglav server`, `triglav tun` and `triglav
// benchmark` once, with its TOML section and key, its command-line flag, the roles and
// commands that take it, what it accepts and its help. Three readers use it: the config
// file reader (control/config.cc), the command line (control/cli/app.cc) and the
// generated default config file (`triglav config`, control/config.cc).
//
// A new setting: a field in Settings (control/config.h) with its default, a row here
// (settings.cc), and the code that uses it. Help, ranges, file checks and the generated
// file follow from the row.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "control/config.h"

namespace triglav::ctl {

// Who takes a setting: bits of Setting::file (config files of that role) and
// Setting::cli (the flag on that command).
inline constexpr std::uint8_t kOnServer = 1;  // `triglav server` / a server config
inline constexpr std::uint8_t kOnClient = 2;  // `triglav tun` / a client config
inline constexpr std::uint8_t kOnBench = 4;   // `triglav benchmark`
inline constexpr std::uint8_t kOnMain = 8;    // before the subcommand (`triglav --log-level debug server`)

inline constexpr std::uint8_t role_bit(Role r) { return r == Role::Server ? kOnServer : kOnClient; }

enum class Kind : std::uint8_t {
  Text,      // a string; `choices` or `check` may restrict it
  Texts,     // an array of strings (a repeatable flag); `check` applies to each
  Bool,      // true or false (a flag without a value)
  Int,       // an integer in [lo, hi]
  Number,    // a number in [lo, hi]
  Duration,  // seconds in [lo, hi]: "100ms", "5m", or a bare number of seconds
  Numbers,   // an array of positive numbers (a comma-separated flag)
  Custom,    // a string (or an integer) that `apply` reads; `expect` says what it takes
};

// A check of one text value: false with `why` completing "expected ...".
using TextCheck = bool (*)(const std::string& v, std::string& why);
// A Custom setting's reader.
using Apply = bool (*)(const std::string& v, Settings& s);
// A Custom setting's value in the generated file, as TOML.
using Show = std::string (*)(const Settings& d);

struct Setting {
  const char* section = "";  // TOML section; "" for a flag only
  const char* key = "";      // TOML key
  const char* flag = "";     // CLI11 names ("--mtu", "-i,--interface", "!--no-tun-offload"); "" for files only
  std::uint8_t file = 0;     // kOnServer | kOnClient: config files that take the key
  std::uint8_t cli = 0;      // kOn*: commands that take the flag
  Kind kind = Kind::Text;
  // The field it sets: the one member matching `kind`.
  std::string Settings::*text = nullptr;
  std::vector<std::string> Settings::*texts = nullptr;
  bool Settings::*boolean = nullptr;
  int Settings::*integer = nullptr;
  double Settings::*number = nullptr;  // Number and Duration
  std::vector<double> Settings::*numbers = nullptr;
  double lo = 0, hi = 0;         // Int, Number, Duration
  const char* choices = nullptr;  // Text: the values allowed, ", "-separated
  // Text with choices: short names also taken, "short=full, ...", stored as the full name
  const char* aliases = nullptr;
  TextCheck check = nullptr;      // Text, Texts
  Apply apply = nullptr;          // Custom
  const char* expect = nullptr;   // Custom: what it accepts (completes "expected ...")
  Show show = nullptr;            // Custom, or a sample value for the generated file
  bool Settings::*implies = nullptr;  // set true when the flag is given (--metrics-listen)
  const char* help = "";          // the flag's help, a lowercase phrase
  const char* doc = nullptr;      // the generated file's comment; nullptr: the help; "": none
  // Texts: the value of the flag given without one ("--dns" alone); nullptr: it needs one
  const char* bare = nullptr;
  // Another name for the setting of this "section.key" (the first README's spelling),
  // accepted in files and left out of the generated one. Both given: one value.
  const char* same_as = nullptr;
};

// Every setting, in the order of the generated config file.
std::span<const Setting> settings();

// Sections of a role's config file, in order, and the comment heading each.
struct SectionDoc {
  const char* name;
  std::uint8_t file;
  const char* doc;  // "" for none
};
std::span<const SectionDoc> config_sections();

// "a, b, c" as {"a", "b", "c"}.
std::vector<std::string> split_choices(const char* choices);

// The long name of a setting's flag ("-i,--interface": "--interface"; "!--no-tun-offload":
// "--no-tun-offload"); "" without one.
std::string long_flag(const Setting& k);

// The full name a short one (k.aliases) stands for; any other value as it is.
std::string full_choice(const Setting& k, const std::string& value);

}  // namespace triglav::ctl
