// xps_train: star tables -> trained flux model (DESIGN §1.4), restartable from checkpoints.
#include <iostream>
#include <string>

#include "xpstellar/driver.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/training_run.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  xps::DriverSpec spec;
  spec.name = "xps_train";
  spec.usage =
      "Usage: xps_train --stars DIR --output MODEL.h5 [--checkpoint-dir DIR [--resume]]\n"
      "                 [--config FILE]...\n"
      "Trains the flux model on the labelled stars of the star tables DIR/stars_<L>_<pixel>.h5 with\n"
      "the phases of the recipe (config/train_paper.ini, config/train_fast.ini), fits the prior on\n"
      "Theta, and writes MODEL.h5 and per-star results MODEL_training/training_<L>_<pixel>.h5.\n"
      "With --resume it continues from the newest valid checkpoint of --checkpoint-dir.";
  spec.declare_options = [](po::options_description& options) {
    options.add_options()("stars", po::value<std::string>(), "directory of star tables (required)")(
        "output", po::value<std::string>(), "model file to write (required)")(
        "checkpoint-dir", po::value<std::string>(), "directory of checkpoints (none if absent)")(
        "resume", po::bool_switch(), "continue from the newest valid checkpoint");
  };
  spec.declare_parameters = xps::declare_train_parameters;
  spec.run = [](const po::variables_map& values, xps::ParameterSet& parameters, xps::MpiSession& mpi) {
    for (const char* required : {"stars", "output"})
      if (!values.count(required)) throw xps::UsageError(std::string("--") + required + " is required");
    xps::TrainingRunPaths paths;
    paths.stars_dir = values["stars"].as<std::string>();
    paths.model_path = values["output"].as<std::string>();
    if (values.count("checkpoint-dir")) paths.checkpoint_dir = values["checkpoint-dir"].as<std::string>();
    paths.resume = values["resume"].as<bool>();
    if (paths.resume && paths.checkpoint_dir.empty())
      throw xps::UsageError("--resume needs --checkpoint-dir");
    const auto summary = xps::run_training(parameters, paths, mpi.world());
    if (mpi.is_io_rank()) std::cout << xps::format_training_summary(summary);
    return int{xps::exit_success};
  };
  return xps::run_driver(argc, argv, spec);
}
