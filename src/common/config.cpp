#include "xpstellar/config.hpp"

#include <boost/program_options.hpp>

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include "xpstellar/error.hpp"

namespace po = boost::program_options;

namespace xps {
namespace {

std::string format_real(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  // Shortest form that round-trips, so printed configs read like the INI files people write.
  for (int precision = 1; precision <= 17; ++precision) {
    std::ostringstream trial;
    trial.precision(precision);
    trial << value;
    if (std::stod(trial.str()) == value) return trial.str();
  }
  return out.str();
}

bool parse_real(const std::string& text, double& value) {
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [end, error] = std::from_chars(first, last, value);
  return error == std::errc() && end == last;
}

bool parse_integer(const std::string& text, std::int64_t& value) {
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [end, error] = std::from_chars(first, last, value);
  return error == std::errc() && end == last;
}

bool parse_flag(const std::string& text, bool& value) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return value = true, true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return value = false, true;
  return false;
}

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

po::options_description key_options(const ParameterSet& parameters) {
  po::options_description options("Configuration keys");
  for (const auto& declaration : parameters.declarations())
    options.add_options()(declaration.key.c_str(), po::value<std::string>());
  return options;
}

}  // namespace

void ParameterSet::declare(ParameterDeclaration declaration) {
  if (m_index.count(declaration.key))
    throw std::logic_error("parameter declared twice: " + declaration.key);
  m_index[declaration.key] = m_declarations.size();
  m_values[declaration.key] = declaration.default_value;
  m_declarations.push_back(std::move(declaration));
}

void ParameterSet::declare_real(const std::string& key, double default_value,
                                const std::string& unit, const std::string& doc, double min,
                                double max) {
  declare({key, ParameterDeclaration::Kind::real, format_real(default_value), unit, doc, min, max,
           {}});
}

void ParameterSet::declare_integer(const std::string& key, std::int64_t default_value,
                                   const std::string& unit, const std::string& doc,
                                   std::int64_t min, std::int64_t max) {
  declare({key, ParameterDeclaration::Kind::integer, std::to_string(default_value), unit, doc,
           static_cast<double>(min), static_cast<double>(max), {}});
}

void ParameterSet::declare_text(const std::string& key, const std::string& default_value,
                                const std::string& doc, std::vector<std::string> choices) {
  declare({key, ParameterDeclaration::Kind::text, default_value, "", doc,
           -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
           std::move(choices)});
}

void ParameterSet::declare_flag(const std::string& key, bool default_value,
                                const std::string& doc) {
  declare({key, ParameterDeclaration::Kind::flag, default_value ? "true" : "false", "", doc,
           -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(), {}});
}

const ParameterDeclaration& ParameterSet::find(const std::string& key) const {
  const auto it = m_index.find(key);
  if (it == m_index.end()) throw UsageError("unknown configuration key '" + key + "'");
  return m_declarations[it->second];
}

void ParameterSet::set(const std::string& key, const std::string& raw_value,
                       const std::string& origin) {
  const auto it = m_index.find(key);
  if (it == m_index.end())
    throw UsageError(origin + ": unknown configuration key '" + key + "'");
  const ParameterDeclaration& declaration = m_declarations[it->second];
  const std::string value = trim(raw_value);
  const std::string where = origin + ": " + key + " = '" + value + "'";
  switch (declaration.kind) {
    case ParameterDeclaration::Kind::real: {
      double number = 0;
      if (!parse_real(value, number) || !std::isfinite(number))
        throw UsageError(where + " is not a finite number");
      if (number < declaration.min || number > declaration.max)
        throw UsageError(where + " is outside [" + format_real(declaration.min) + ", " +
                         format_real(declaration.max) + "]");
      break;
    }
    case ParameterDeclaration::Kind::integer: {
      std::int64_t number = 0;
      if (!parse_integer(value, number)) throw UsageError(where + " is not an integer");
      if (static_cast<double>(number) < declaration.min ||
          static_cast<double>(number) > declaration.max)
        throw UsageError(where + " is outside [" + format_real(declaration.min) + ", " +
                         format_real(declaration.max) + "]");
      break;
    }
    case ParameterDeclaration::Kind::flag: {
      bool flag_value = false;
      if (!parse_flag(value, flag_value)) throw UsageError(where + " is not true or false");
      break;
    }
    case ParameterDeclaration::Kind::text:
      if (!declaration.choices.empty()) {
        bool allowed = false;
        std::string listed;
        for (const auto& choice : declaration.choices) {
          allowed = allowed || choice == value;
          listed += (listed.empty() ? "" : ", ") + choice;
        }
        if (!allowed) throw UsageError(where + " is not one of: " + listed);
      }
      break;
  }
  m_values[key] = value;
}

void ParameterSet::load_ini(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw UsageError("cannot open configuration file '" + path + "'");
  po::parsed_options parsed(nullptr);
  try {
    parsed = po::parse_config_file(file, key_options(*this), false);
  } catch (const po::error& error) {
    throw UsageError("configuration file '" + path + "': " + error.what());
  }
  for (const auto& option : parsed.options)
    for (const auto& value : option.value) set(option.string_key, value, "'" + path + "'");
}

double ParameterSet::real(const std::string& key) const {
  const auto& declaration = find(key);
  if (declaration.kind != ParameterDeclaration::Kind::real)
    throw std::logic_error(key + " is not a real parameter");
  double number = 0;
  parse_real(m_values.at(key), number);
  return number;
}

std::int64_t ParameterSet::integer(const std::string& key) const {
  const auto& declaration = find(key);
  if (declaration.kind != ParameterDeclaration::Kind::integer)
    throw std::logic_error(key + " is not an integer parameter");
  std::int64_t number = 0;
  parse_integer(m_values.at(key), number);
  return number;
}

const std::string& ParameterSet::text(const std::string& key) const {
  find(key);
  return m_values.at(key);
}

bool ParameterSet::flag(const std::string& key) const {
  const auto& declaration = find(key);
  if (declaration.kind != ParameterDeclaration::Kind::flag)
    throw std::logic_error(key + " is not a flag parameter");
  bool value = false;
  parse_flag(m_values.at(key), value);
  return value;
}

std::string ParameterSet::effective_ini(bool with_docs) const {
  std::ostringstream out;
  std::string section;
  for (const auto& declaration : m_declarations) {
    const auto dot = declaration.key.find('.');
    const std::string key_section = declaration.key.substr(0, dot);
    if (key_section != section) {
      out << (section.empty() ? "" : "\n") << '[' << key_section << "]\n";
      section = key_section;
    }
    if (with_docs) {
      out << "# " << declaration.doc;
      if (!declaration.unit.empty()) out << " [" << declaration.unit << ']';
      out << '\n';
    }
    out << declaration.key.substr(dot + 1) << " = " << m_values.at(declaration.key) << '\n';
  }
  return out.str();
}

CommandLine parse_command_line(int argc, const char* const* argv,
                               const po::options_description& driver_options,
                               po::variables_map& driver_values, ParameterSet& parameters) {
  po::options_description generic("Generic options");
  generic.add_options()("help,h", "print this help and exit")(
      "version", "print the version and exit")(
      "config", po::value<std::vector<std::string>>()->composing(),
      "INI file; repeatable, later files win")("print-config",
                                               "print the effective configuration and exit");
  po::options_description all;
  all.add(generic).add(driver_options).add(key_options(parameters));
  try {
    po::store(po::command_line_parser(argc, argv).options(all).run(), driver_values);
    po::notify(driver_values);
  } catch (const po::error& error) {
    throw UsageError(std::string("command line: ") + error.what());
  }
  CommandLine command_line;
  command_line.help = driver_values.count("help") > 0;
  command_line.version = driver_values.count("version") > 0;
  command_line.print_config = driver_values.count("print-config") > 0;
  if (driver_values.count("config"))
    command_line.config_files = driver_values["config"].as<std::vector<std::string>>();
  if (command_line.help || command_line.version) return command_line;
  for (const auto& path : command_line.config_files) parameters.load_ini(path);
  for (const auto& declaration : parameters.declarations())
    if (driver_values.count(declaration.key))
      parameters.set(declaration.key, driver_values[declaration.key].as<std::string>(),
                     "command line");
  return command_line;
}

std::string help_text(const std::string& usage, const po::options_description& driver_options,
                      const ParameterSet& parameters) {
  std::ostringstream out;
  out << usage << "\n\n" << driver_options << '\n';
  out << "Generic options:\n"
      << "  -h [ --help ]          print this help and exit\n"
      << "  --version              print the version and exit\n"
      << "  --config FILE          INI file; repeatable, later files win\n"
      << "  --print-config         print the effective configuration (INI) and exit\n\n"
      << "Configuration keys (INI [section] key = value, or --section.key VALUE, which wins):\n";
  for (const auto& declaration : parameters.declarations()) {
    out << "  --" << declaration.key << " (default " << declaration.default_value;
    if (!declaration.unit.empty()) out << ", " << declaration.unit;
    out << ")\n      " << declaration.doc;
    if (!declaration.choices.empty()) {
      out << " {";
      for (std::size_t i = 0; i < declaration.choices.size(); ++i)
        out << (i ? "|" : "") << declaration.choices[i];
      out << '}';
    }
    out << '\n';
  }
  return out.str();
}

std::string version_text(const std::string& program) {
  return program + " (xpstellar) " + XPS_VERSION + "\n";
}

}  // namespace xps
