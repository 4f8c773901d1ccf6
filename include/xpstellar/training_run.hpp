// The training stage as a whole (what xps_train runs): load the training stars, train or resume,
// fit the Gaussian-mixture prior on the trained stars' Theta, write the model file and the per-star
// results next to it.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "xpstellar/gaussian_mixture.hpp"
#include "xpstellar/trainer.hpp"
#include "xpstellar/training_set.hpp"

namespace xps {
class ParameterSet;

struct TrainingRunPaths {
  std::string stars_dir;       // star tables stars_<L>_<pixel>.h5
  std::string model_path;      // MODEL.h5
  std::string checkpoint_dir;  // empty: no checkpoints
  bool resume = false;
};

struct TrainingRunSummary {
  TrainingSetSummary data;
  std::vector<PhaseReport> phases;
  std::string model_path;
  std::string results_dir;  // per-star results, training_<L>_<pixel>.h5
  int prior_components = 0;
  double ln_prior_cut = 0;
  double seconds = 0;
};

// Every key of the training stage: the recipe (training_settings.hpp) and the prior ([gmm]).
void declare_train_parameters(ParameterSet& parameters);

// Collective over `comm`. Throws UsageError (bad configuration, a phase without stars, checkpoints
// present without --resume) or IoError (unreadable input, unwritable output).
TrainingRunSummary run_training(const ParameterSet& parameters, const TrainingRunPaths& paths,
                                MPI_Comm comm);

std::string format_training_summary(const TrainingRunSummary& summary);

// The ranks of `comm` as the parts of one Gaussian-mixture fit (each rank holds every point; the
// EM's block sums are all-gathered): the prior is fitted this way, in the time of one rank's share.
GmmBlockSharing gmm_block_sharing(MPI_Comm comm);

// `<dir of model>/<model stem>_training`
std::string training_results_dir(const std::string& model_path);

}  // namespace xps
