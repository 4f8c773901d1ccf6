// xps_prepare: real survey data (converted XP spectra + Gaia, 2MASS, unWISE, labels) -> star tables.
#include <iostream>
#include <string>

#include "xpstellar/driver.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/prepare.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  xps::DriverSpec spec;
  spec.name = "xps_prepare";
  spec.usage =
      "Usage: xps_prepare --xp FILE.h5 --gaia FILE.csv [--tmass FILE.csv] [--unwise FILE.csv]\n"
      "                   [--labels FILE.csv] --output DIR [--healpix-level L] [--config FILE]...\n"
      "Joins XP spectra converted by xps_xpconvert (--sampling 392:992:10) with Gaia, 2MASS, unWISE\n"
      "and spectroscopic labels into star tables DIR/stars_<L>_<pixel>.h5. Input columns: "
      "docs/prepare.md.\nExit status 1 if some XP rows were skipped (each reported on stderr).";
  spec.declare_options = [](po::options_description& options) {
    options.add_options()("xp", po::value<std::string>(), "XP spectra from xps_xpconvert (HDF5, required)")(
        "gaia", po::value<std::string>(), "Gaia source table (CSV, required)")(
        "tmass", po::value<std::string>(), "2MASS photometry (CSV)")(
        "unwise", po::value<std::string>(), "unWISE photometry (CSV)")(
        "labels", po::value<std::string>(), "spectroscopic labels and E priors (CSV)")(
        "output", po::value<std::string>(), "output directory (required)")(
        "healpix-level", po::value<std::int64_t>(), "HEALPix level of the partitions (same as --prepare.healpix_level)");
  };
  spec.declare_parameters = xps::declare_prepare_parameters;
  spec.run = [](const po::variables_map& values, xps::ParameterSet& parameters, xps::MpiSession& mpi) {
    xps::apply_option_alias<std::int64_t>(values, "healpix-level", parameters, "prepare.healpix_level");
    for (const char* required : {"xp", "gaia", "output"})
      if (!values.count(required)) throw xps::UsageError(std::string("--") + required + " is required");
    const auto text = [&](const char* name) {
      return values.count(name) ? values[name].as<std::string>() : std::string();
    };
    const xps::PrepareInputs inputs{text("xp"), text("gaia"), text("tmass"), text("unwise"), text("labels")};
    const auto summary = xps::run_prepare(parameters, inputs, text("output"), mpi.world());
    if (mpi.is_io_rank()) std::cout << xps::format_prepare_summary(summary);
    return summary.skipped > 0 ? int{xps::exit_partial} : int{xps::exit_success};
  };
  return xps::run_driver(argc, argv, spec);
}
