// The coordinated step of training (not in the paper): a Gauss-Newton step of part of the model on
// the profile loss F(theta) = sum_i min_s L_i(theta, s), in which every star follows the model.
//
// Alternating model and star steps descend F quickly along the directions the fluxes pin down, but
// a change of the model that the stars can absorb by moving together (the Teff axis shifted, the
// flux level traded against every parallax, log g stretched) is held only by the labels and the
// parallaxes: first-order model steps, whose size is set by the steep directions, crawl along it
// (docs/training.md measures how far the trained state sits from the optimum of F). Eliminating
// each star's own block (the Schur complement) leaves the curvature of F itself, so one step
// crosses such a valley.
//
// Per star, with A = L dF/dtheta [M x P] (the model parameters below), B = L dF/ds [M x k] (the
// star's own), H_ss the star's Hessian and g_s its gradient, the star adds
//   H += w (2 A^T A - C^T H_ss^-1 C),   g += w (g_theta - C^T H_ss^-1 g_s),   C = 2 B^T A,
// with w the tempering weight of its chi^2 (1 without tempering). Pure kernels: the caller owns
// the stars, the threads and the reduction.
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "xpstellar/flux_model.hpp"
#include "xpstellar/inference_loss.hpp"

namespace xps {

// The model parameters a coordinated step moves, as indices into the packed global vector
// (model_parameters.hpp), in this order: the first layer's weights (column-major), every layer's
// biases (first to last), then ln R when `extinction`. The first layer carries any affine change of
// the network's inputs; the hidden biases shift its units one by one; the output bias is the level.
std::vector<Eigen::Index> coordinated_parameter_indices(const FluxModel& model, bool extinction);

// d ln f_pred / d(those parameters) [M x P] of star `index` of a batch after flux_model_forward,
// columns in the same order. Reverse mode through the hidden layers: no allocation once the
// workspace has its sizes.
struct ParameterJacobianWorkspace {
  Eigen::MatrixXd upstream, next;  // d ln f / d (layer output), d ln f / d (pre-activation)
  Eigen::VectorXd slope;
};
void coordinated_parameter_jacobian(const FluxModel& model, const StarBatch& stars,
                                    const FluxModelWorkspace& workspace, Eigen::Index index,
                                    bool extinction, ParameterJacobianWorkspace& scratch,
                                    Eigen::MatrixXd& jacobian);

// The Gauss-Newton system of F summed over stars. Stars are stacked and added to the P x P matrix a
// block at a time (one symmetric rank-k update per block, not per star).
class ProfileSystem {
public:
  ProfileSystem(Eigen::Index parameters, int bands, int stars_per_block = 32);

  // One star at its current parameters, right after loss.value_gradient_hessian(star, p, g_s,
  // H_ss): uses the loss's flux workspace, d chi^2/df and whitened Jacobian. `whitening` is the
  // star's stored L (flux_whitening.hpp). Returns false (and adds nothing) if H_ss is not positive
  // definite: the star does not follow the model smoothly there.
  bool add_star(const InferenceLoss& loss, const float* whitening, const StarVector& star_gradient,
                const StarMatrix& star_hessian, double weight, bool extinction);

  // The sums so far (flushes the stacked stars first): the lower triangle is the Hessian.
  const Eigen::MatrixXd& hessian();
  const Eigen::VectorXd& gradient();
  Eigen::Index parameters() const { return m_gradient.size(); }

private:
  void flush();

  Eigen::MatrixXd m_hessian;     // [P x P], lower triangle
  Eigen::VectorXd m_gradient;    // [P]
  Eigen::MatrixXd m_stacked_model;  // sqrt(2w) A of stacked stars, [stars_per_block * M x P]
  Eigen::MatrixXd m_stacked_schur;  // sqrt(w) L_ss^-1 C, [stars_per_block * 6 x P]
  Eigen::Index m_model_rows = 0, m_schur_rows = 0;
  int m_bands;
  // Per-star scratch.
  ParameterJacobianWorkspace m_jacobian_scratch;
  Eigen::MatrixXd m_log_jacobian, m_flux_jacobian, m_coupling;
};

}  // namespace xps
