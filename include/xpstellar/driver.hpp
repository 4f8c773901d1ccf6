// What every driver main() shares (deal.II-style thin main): MPI lifetime, option parsing with
// --help/--version/--config/--print-config, and the exit-status contract of DESIGN §5:
// 0 = all done, 1 = done with skipped or failed items, 2 = usage or fatal error.
#pragma once

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>
#include <functional>
#include <string>

#include "xpstellar/config.hpp"
#include "xpstellar/mpi_session.hpp"

namespace xps {

enum ExitStatus : int { exit_success = 0, exit_partial = 1, exit_fatal = 2 };

struct DriverSpec {
  std::string name;   // e.g. "xps_mock"
  std::string usage;  // one-line usage plus a sentence on what it does
  std::function<void(boost::program_options::options_description&)> declare_options;
  std::function<void(ParameterSet&)> declare_parameters;
  // Runs the stage; returns an ExitStatus. Throw UsageError for bad options.
  std::function<int(const boost::program_options::variables_map&, ParameterSet&, MpiSession&)> run;
};

int run_driver(int argc, char** argv, const DriverSpec& spec);

// Copies an option given on the command line (if any) into a configuration key, so that
// `--stars N` and `--survey.stars N` mean the same; the named option wins.
template <typename T>
void apply_option_alias(const boost::program_options::variables_map& values,
                        const std::string& option, ParameterSet& parameters,
                        const std::string& key) {
  if (values.count(option))
    parameters.set(key, std::to_string(values[option].as<T>()), "--" + option);
}

}  // namespace xps
