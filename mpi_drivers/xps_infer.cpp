// xps_infer: star tables + trained model -> catalogs (DESIGN §1.5-1.6), one per partition.
#include <iostream>
#include <string>

#include "xpstellar/config.hpp"
#include "xpstellar/driver.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/inference_run.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  xps::DriverSpec spec;
  spec.name = "xps_infer";
  spec.usage =
      "Usage: xps_infer --model MODEL.h5 --stars DIR --output DIR [--partitions A:B] [--force]\n"
      "                 [--optimizer fast|paper] [--config FILE]...\n"
      "Infers Teff, [Fe/H], logg, E and parallax with uncertainties for every star of the star\n"
      "tables DIR/stars_<L>_<pixel>.h5 and writes OUTPUT/catalog_<L>_<pixel>.h5 (docs/catalog.md).\n"
      "Partitions are handed out to the ranks dynamically; finished ones (catalog present) are\n"
      "skipped unless --force. --partitions A:B takes the star tables at positions A..B-1 of the\n"
      "pixel-sorted list (one task of a job array; A: to the end; A alone: one table).";
  spec.declare_options = [](po::options_description& options) {
    options.add_options()("model", po::value<std::string>(), "model file from xps_train (required)")(
        "stars", po::value<std::string>(), "directory of star tables (required)")(
        "output", po::value<std::string>(), "directory of the catalogs (required; created)")(
        "partitions", po::value<std::string>(), "A:B, A: or A: positions in the sorted list of star tables")(
        "force", po::bool_switch(), "redo partitions whose catalog exists")(
        "optimizer", po::value<std::string>(), "fast or paper (same as --inference.optimizer)");
  };
  spec.declare_parameters = xps::declare_inference_parameters;
  spec.run = [](const po::variables_map& values, xps::ParameterSet& parameters, xps::MpiSession& mpi) {
    for (const char* required : {"model", "stars", "output"})
      if (!values.count(required)) throw xps::UsageError(std::string("--") + required + " is required");
    if (values.count("optimizer"))
      parameters.set("inference.optimizer", values["optimizer"].as<std::string>(), "--optimizer");
    xps::InferenceRunOptions options;
    options.model_path = values["model"].as<std::string>();
    options.stars_dir = values["stars"].as<std::string>();
    options.output_dir = values["output"].as<std::string>();
    if (values.count("partitions"))
      options.partitions = xps::parse_partition_range(values["partitions"].as<std::string>());
    options.force = values["force"].as<bool>();
    options.settings = xps::read_inference_parameters(parameters);
    options.config_text = parameters.effective_ini(false);
    const xps::InferenceRunSummary summary = xps::run_inference(options, mpi.world());
    if (mpi.is_io_rank()) std::cout << xps::format_inference_summary(summary, options.output_dir);
    return summary.partitions_failed > 0 ? int{xps::exit_partial} : int{xps::exit_success};
  };
  return xps::run_driver(argc, argv, spec);
}
