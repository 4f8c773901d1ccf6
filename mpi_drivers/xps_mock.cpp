// xps_mock: the synthetic survey (truth model + observation model) as partitioned star tables.
#include <cstdint>
#include <iostream>
#include <string>

#include "xpstellar/driver.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/mock_survey.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  xps::DriverSpec spec;
  spec.name = "xps_mock";
  spec.usage =
      "Usage: xps_mock --output DIR [--stars N] [--seed S] [--healpix-level L] [--config FILE]...\n"
      "Generates a synthetic survey with its truth as star tables DIR/stars_<L>_<pixel>.h5.\n"
      "Run under mpirun -np K for K ranks; the output is identical for any K.";
  spec.declare_options = [](po::options_description& options) {
    options.add_options()("output", po::value<std::string>(), "output directory (required)")(
        "stars", po::value<std::int64_t>(), "number of stars (same as --survey.stars)")(
        "seed", po::value<std::int64_t>(), "random seed (same as --survey.seed)")(
        "healpix-level", po::value<std::int64_t>(),
        "HEALPix level of the partitions (same as --survey.healpix_level)");
  };
  spec.declare_parameters = xps::mock::declare_mock_parameters;
  spec.run = [](const po::variables_map& values, xps::ParameterSet& parameters,
                xps::MpiSession& mpi) {
    xps::apply_option_alias<std::int64_t>(values, "stars", parameters, "survey.stars");
    xps::apply_option_alias<std::int64_t>(values, "seed", parameters, "survey.seed");
    xps::apply_option_alias<std::int64_t>(values, "healpix-level", parameters,
                                          "survey.healpix_level");
    if (!values.count("output")) throw xps::UsageError("--output DIR is required");
    const auto summary =
        xps::mock::run_mock_survey(parameters, values["output"].as<std::string>(), mpi.world());
    if (mpi.is_io_rank()) std::cout << xps::mock::format_mock_summary(summary);
    return int{xps::exit_success};
  };
  return xps::run_driver(argc, argv, spec);
}
