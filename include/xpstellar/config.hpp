// Declared parameters (deal.II's ParameterHandler, AMReX's ParmParse): every key is declared
// once with its default, unit, allowed range and a doc string. INI files and `--section.key VALUE`
// on the command line set them; an unknown key or a value out of range is a UsageError that names
// the key and where it came from. The effective configuration (defaults included) is written into
// every output file's provenance.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace boost::program_options {
class options_description;
class variables_map;
}  // namespace boost::program_options

namespace xps {

struct ParameterDeclaration {
  enum class Kind { real, integer, text, flag };
  std::string key;  // "section.name"
  Kind kind = Kind::real;
  std::string default_value;
  std::string unit;
  std::string doc;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  // text only; empty = any
};

class ParameterSet {
public:
  void declare_real(const std::string& key, double default_value, const std::string& unit,
                    const std::string& doc,
                    double min = -std::numeric_limits<double>::infinity(),
                    double max = std::numeric_limits<double>::infinity());
  void declare_integer(const std::string& key, std::int64_t default_value, const std::string& unit,
                       const std::string& doc,
                       std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                       std::int64_t max = std::numeric_limits<std::int64_t>::max());
  void declare_text(const std::string& key, const std::string& default_value,
                    const std::string& doc, std::vector<std::string> choices = {});
  void declare_flag(const std::string& key, bool default_value, const std::string& doc);

  // `origin` names where the value came from (file or "command line") for error messages.
  void set(const std::string& key, const std::string& value, const std::string& origin);
  // Reads an INI file ([section] then key = value); unknown keys are errors naming file and key.
  void load_ini(const std::string& path);

  double real(const std::string& key) const;
  std::int64_t integer(const std::string& key) const;
  const std::string& text(const std::string& key) const;
  bool flag(const std::string& key) const;

  const std::vector<ParameterDeclaration>& declarations() const { return m_declarations; }
  // The whole configuration as an INI file, each key preceded by its doc and unit as a comment.
  std::string effective_ini(bool with_docs = true) const;

private:
  const ParameterDeclaration& find(const std::string& key) const;
  void declare(ParameterDeclaration declaration);

  std::vector<ParameterDeclaration> m_declarations;
  std::map<std::string, std::size_t> m_index;
  std::map<std::string, std::string> m_values;
};

// What a driver's command line asked for, after --config files and --section.key overrides were
// applied to the ParameterSet.
struct CommandLine {
  bool help = false;
  bool version = false;
  bool print_config = false;
  std::vector<std::string> config_files;
};

// Parses argv for a driver: its own options (`driver_options`), --help, --version, --config FILE
// (repeatable, later files win), --print-config, and every declared key as --section.key VALUE
// (wins over files). Throws UsageError naming an unknown option or key.
CommandLine parse_command_line(int argc, const char* const* argv,
                               const boost::program_options::options_description& driver_options,
                               boost::program_options::variables_map& driver_values,
                               ParameterSet& parameters);

// --help text: usage line, the driver's options, then every declared key with default and unit.
std::string help_text(const std::string& usage,
                      const boost::program_options::options_description& driver_options,
                      const ParameterSet& parameters);

std::string version_text(const std::string& program);

}  // namespace xps
