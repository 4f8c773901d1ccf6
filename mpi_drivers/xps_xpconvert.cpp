// xps_xpconvert: Gaia DR3 XP continuous mean spectra (Archive CSV/ECSV) -> absolute flux sampled
// on a wavelength grid, with errors and full covariance, as one HDF5 file (docs/xp_converter.md).
#include <omp.h>

#include <iostream>
#include <sstream>
#include <string>

#include "xpstellar/driver.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/xp_convert_file.hpp"
#include "xpstellar/xp_converter.hpp"

namespace po = boost::program_options;

namespace {

std::string required(const po::variables_map& values, const std::string& option,
                     const std::string& what) {
  if (!values.count(option)) throw xps::UsageError("--" + option + " " + what + " is required");
  return values[option].as<std::string>();
}

std::string provenance_text(int argc, char** argv, const xps::xp::Calibration& calibration) {
  std::ostringstream text;
  text << "xps_xpconvert (xpstellar " << XPS_VERSION << ")\ncommand:";
  for (int i = 0; i < argc; ++i) text << ' ' << argv[i];
  text << "\ncalibration: " << calibration.description << '\n';
  return text.str();
}

int convert(int argc, char** argv, const po::variables_map& values, xps::MpiSession& mpi) {
  namespace xp = xps::xp;
  const std::string input = required(values, "input", "FILE.csv");
  const std::string output = required(values, "output", "FILE.h5");
  std::vector<double> wavelength =
      xp::parse_sampling(required(values, "sampling", "START:STOP:STEP"));
  xp::FileConversionOptions options;
  options.conversion.truncate = values["truncate"].as<bool>();
  options.conversion.covariance = xp::parse_covariance_mode(values["covariance"].as<std::string>());
  options.threads = omp_get_max_threads();
  // The file is converted by one process; other ranks of an mpirun job have nothing to do.
  if (!mpi.is_io_rank()) return xps::exit_success;

  const xp::Calibration calibration =
      values.count("calibration-dir")
          ? xp::read_calibration(values["calibration-dir"].as<std::string>())
          : xp::builtin_calibration();
  const xp::DesignMatrices design(calibration, std::move(wavelength));
  const auto warn = [](const std::string& message) {
    std::cerr << "xps_xpconvert: warning: " << message << '\n';
  };
  const xp::FileConversionSummary summary = xp::convert_xp_file(
      input, output, design, options, provenance_text(argc, argv, calibration), warn);
  std::cout << "xps_xpconvert: " << summary.converted << " of " << summary.rows
            << " sources converted on " << design.samples() << " wavelengths ("
            << xp::covariance_mode_name(options.conversion.covariance) << " covariance"
            << (options.conversion.truncate ? ", truncated bases" : "") << ") -> " << output
            << '\n';
  if (summary.skipped > 0) {
    std::cout << "xps_xpconvert: " << summary.skipped << " rows skipped (see warnings)\n";
    return xps::exit_partial;
  }
  return xps::exit_success;
}

}  // namespace

int main(int argc, char** argv) {
  xps::DriverSpec spec;
  spec.name = "xps_xpconvert";
  spec.usage =
      "Usage: xps_xpconvert --input FILE.csv --sampling START:STOP:STEP --output FILE.h5\n"
      "                     [--truncate] [--covariance gaiaxpy|propagated] [--calibration-dir "
      "DIR]\n"
      "Converts Gaia DR3 XP continuous mean spectra (Gaia Archive CSV or ECSV) to absolute flux\n"
      "(W m-2 nm-1) sampled at START, START+STEP, ..., STOP nm (within 330-1050 nm), with errors "
      "and\n"
      "full covariance, as GaiaXPy's calibrate() does. Exit status: 0 all rows converted, 1 some\n"
      "rows skipped (one warning each), 2 usage or fatal error. Runs on one process (rank 0).";
  spec.declare_options = [](po::options_description& options) {
    options.add_options()("input", po::value<std::string>(),
                          "Archive XP continuous mean spectra, CSV or ECSV (required)")(
        "sampling", po::value<std::string>(),
        "wavelength grid START:STOP:STEP in nm, STOP included, e.g. 392:992:10 (required)")(
        "output", po::value<std::string>(), "output HDF5 file (required)")(
        "truncate", po::bool_switch()->default_value(false),
        "use only the first n_relevant_bases bases of each band (default: all, as GaiaXPy)")(
        "covariance", po::value<std::string>()->default_value("gaiaxpy"),
        "covariance in the BP/RP overlap (635-643 nm): gaiaxpy (GaiaXPy's, default) or "
        "propagated (sum over bands of w_i w_j C_ij)")(
        "calibration-dir", po::value<std::string>(),
        "read {bp,rp}*_{bases,dispersion,response}.csv from DIR instead of the built-in GaiaXPy "
        "calibration");
  };
  spec.run = [argc, argv](const po::variables_map& values, xps::ParameterSet&,
                          xps::MpiSession& mpi) { return convert(argc, argv, values, mpi); };
  return xps::run_driver(argc, argv, spec);
}
