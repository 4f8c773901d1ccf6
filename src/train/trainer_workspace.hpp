// The per-thread scratch of the Trainer (trainer.cpp, coordinated_phase.cpp): one per OpenMP
// thread, so that the hot loops do not allocate.
#pragma once

#include <Eigen/Dense>
#include <memory>

#include "xpstellar/flux_model.hpp"
#include "xpstellar/inference_loss.hpp"
#include "xpstellar/trainer.hpp"

namespace xps {

struct Trainer::Workspace {
  StarBatch batch;
  FluxModelWorkspace flux;
  Eigen::MatrixXd loss_flux_gradient;  // [M x B]
  Eigen::VectorXd chi_square;          // [B]
  FluxModelGradient global;
  StarGradient star;
  Eigen::VectorXd step;                // [6]
  std::unique_ptr<InferenceLoss> solve_loss;  // star_optimizer = lm, coordinated steps
};

}  // namespace xps
