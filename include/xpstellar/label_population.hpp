// The population of the training stars' true labels (PopulationPriorSettings): the Gaussian
// mixture deconvolved from their labels and label errors (deconvolved_mixture.hpp).
#pragma once

#include <mpi.h>

#include "xpstellar/gaussian_mixture.hpp"
#include "xpstellar/training_set.hpp"
#include "xpstellar/training_settings.hpp"

namespace xps {

// Collective over `comm`: rank 0 fits every k-th usable training star of the canonical order
// (k the smallest stride that keeps at most settings.max_stars) and every rank receives the fit,
// so it does not depend on the number of ranks. Throws UsageError (on every rank) if too few
// stars are usable or the fit fails.
GaussianMixture fit_label_population(const TrainingStars& stars, const PopulationPriorSettings& settings,
                                     MPI_Comm comm);

}  // namespace xps
