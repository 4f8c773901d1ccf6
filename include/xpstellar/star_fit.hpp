// The per-star optimisers of the inference loss (DESIGN §1.5), both starting from the best start:
//  - fast (default): Levenberg-Marquardt on p = (x_Theta, ln parallax, ln E[, xi]) with the
//    Hessian of InferenceLoss (Gauss-Newton for the data, exact for the prior), damping relative to
//    its diagonal; converged when the Hessian is positive definite and the Newton decrement
//    g^T H^-1 g / 2 is below the tolerance.
//  - paper: Adam (lr 0.01, decayed), then SGD rounds while the Hessian is not positive definite.
//    The paper batches stars only to use a GPU; every star's updates depend on that star alone,
//    so fitting star by star gives the same trajectories. The paper stops the rounds when < 0.1 %
//    of a batch remains non-PD; here every star runs its rounds until its own Hessian is PD.
#pragma once

#include "xpstellar/inference_loss.hpp"
#include "xpstellar/inference_settings.hpp"

namespace xps {

struct StarFit {
  StarVector parameters;
  InferenceLossParts parts;   // at `parameters`
  int iterations = 0;         // LM iterations, or optimiser steps of the paper procedure
  bool converged = false;
  bool hessian_positive_definite = false;
};

StarFit fit_star_fast(InferenceLoss& loss, const InferenceStar& star, const StarVector& start,
                      const FastOptimizerSettings& settings);
StarFit fit_star_paper(InferenceLoss& loss, const InferenceStar& star, const StarVector& start,
                       const PaperOptimizerSettings& settings);

}  // namespace xps
