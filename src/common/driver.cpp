#include "xpstellar/driver.hpp"

#include <iostream>

#include "xpstellar/error.hpp"

namespace xps {

int run_driver(int argc, char** argv, const DriverSpec& spec) {
  MpiSession mpi(argc, argv);
  const bool talks = mpi.is_io_rank();
  boost::program_options::options_description options(spec.name + " options");
  spec.declare_options(options);
  ParameterSet parameters;
  if (spec.declare_parameters) spec.declare_parameters(parameters);
  try {
    boost::program_options::variables_map values;
    const CommandLine command_line = parse_command_line(argc, argv, options, values, parameters);
    if (command_line.help) {
      if (talks) std::cout << help_text(spec.usage, options, parameters);
      return exit_success;
    }
    if (command_line.version) {
      if (talks) std::cout << version_text(spec.name);
      return exit_success;
    }
    if (command_line.print_config) {
      if (talks) std::cout << parameters.effective_ini();
      return exit_success;
    }
    return spec.run(values, parameters, mpi);
  } catch (const UsageError& error) {
    if (talks) std::cerr << spec.name << ": error: " << error.what() << "\n(try " << spec.name << " --help)\n";
    return exit_fatal;
  } catch (const std::exception& error) {
    std::cerr << spec.name << ": fatal [rank " << mpi.rank() << "]: " << error.what() << '\n';
    // Other ranks may be waiting in a collective call: end the whole job.
    if (mpi.size() > 1) MPI_Abort(mpi.world(), exit_fatal);
    return exit_fatal;
  }
}

}  // namespace xps
