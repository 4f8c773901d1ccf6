// The inference loss of one star (DESIGN §1.3),
//   L_inf = chi^2 + ((parallax - parallax_hat) / sigma)^2 - 2 ln p_GMM(Theta) - 2 ln parallax - 2 ln E
//           [+ (xi / sigma_xi)^2 for a model with xi and a prior width set],
// or, for a star that carries its labels (InferenceStar::labels, training), the star loss L_star
// with the same chi^2 and the label, parallax and E-prior terms of star_loss.hpp (and -2 ln p(Theta)
// if the loss has a prior: training with a population prior),
// in the optimiser's coordinates p = (x_teff, x_feh, x_logg, u = ln parallax, v = ln E[, xi]),
// x = (Theta - offset) / scale the network's normalised inputs (they make the parameters comparable
// in size). value_gradient_hessian gives the gradient and a Hessian that is exact in (u, v) and
// for the prior, and Gauss-Newton in the chi^2's dependence on Theta (which would need the
// network's second derivatives) and for the parallax term: what the convergence test asks to be
// positive definite.
//
// One instance per thread: it keeps the flux model's workspaces, so evaluations do not allocate.
#pragma once

#include <Eigen/Dense>

#include "xpstellar/flux_model.hpp"
#include "xpstellar/gaussian_mixture.hpp"
#include "xpstellar/inference_star.hpp"

namespace xps {

inline constexpr int max_star_parameters = 6;
using StarVector = Eigen::Matrix<double, Eigen::Dynamic, 1, 0, max_star_parameters, 1>;
using StarMatrix =
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, max_star_parameters, max_star_parameters>;

struct InferenceLossParts {
  double chi2 = 0;           // flux chi^2
  double parallax_term = 0;  // ((parallax - parallax_hat) / sigma)^2
  double ln_prior = 0;       // ln p_GMM(Theta); labelled stars: -1/2 of their measurement terms (+ ln p)
  double total = 0;          // L_inf
};

class InferenceLoss {
public:
  // E above E_limit is outside the domain (the loss is +inf there): once a model's flux has
  // vanished, -2 ln E makes L_inf fall without bound as E grows.
  InferenceLoss(const FluxModel& model, const GaussianMixtureDensity& prior, double xi_prior_sigma,
                double E_limit);
  // For labelled stars only (L_star without a population prior).
  InferenceLoss(const FluxModel& model, double xi_prior_sigma, double E_limit);

  int parameters() const { return m_model.use_xi ? 6 : 5; }
  const FluxModel& model() const { return m_model; }

  // Theta [K, dex, dex] of p, and p of (Theta, parallax, E, xi).
  Eigen::Vector3d theta(const StarVector& p) const;
  StarVector parameters_of(const Eigen::Vector3d& theta, double parallax, double E, double xi) const;

  // L_inf at p (+inf if the model overflows).
  double value(const InferenceStar& star, const StarVector& p, InferenceLossParts* parts = nullptr);
  // L_inf and its gradient (first-order optimisers).
  double value_gradient(const InferenceStar& star, const StarVector& p, StarVector& gradient,
                        InferenceLossParts* parts = nullptr);
  // L_inf, gradient and the Hessian described above.
  double value_gradient_hessian(const InferenceStar& star, const StarVector& p, StarVector& gradient,
                                StarMatrix& hessian, InferenceLossParts* parts = nullptr);

  // What the last value_gradient_hessian left behind, for callers that combine the star's
  // system with derivatives of their own (the training's coordinated step): the flux model's
  // workspace and one-star batch at p, d chi^2 / d f_pred [M], and the whitened Jacobian
  // L dF/dp [M x k] in the optimiser's coordinates.
  const FluxModelWorkspace& flux_workspace() const { return m_workspace; }
  const StarBatch& star_batch() const { return m_batch; }
  const Eigen::VectorXd& flux_gradient() const { return m_flux_gradient; }
  const Eigen::MatrixXd& whitened_jacobian() const { return m_whitened; }

  // The whitened Jacobian L dF/dq [M x k] at p, with q the catalog's linear parameters
  // (Teff [kK], [Fe/H], logg, E, parallax [mas][, xi]): what the Fisher matrix needs.
  const Eigen::MatrixXd& whitened_catalog_jacobian(const InferenceStar& star, const StarVector& p);

private:
  InferenceLoss(const FluxModel& model, const GaussianMixtureDensity* prior, double xi_prior_sigma,
                double E_limit);
  double forward(const InferenceStar& star, const StarVector& p, InferenceLossParts* parts,
                 bool flux_gradient);
  void jacobian();  // d f / d p into m_jacobian at the point of the last forward
  void whiten_jacobian(const InferenceStar& star);  // m_whitened = L m_jacobian

  const FluxModel& m_model;
  const GaussianMixtureDensity* m_prior;  // null: labelled stars only
  double m_xi_prior_sigma;
  double m_ln_E_limit;
  StarBatch m_batch;
  FluxModelWorkspace m_workspace;
  FluxJacobianWorkspace m_jacobian_scratch;
  Eigen::VectorXd m_flux_gradient;  // d chi^2 / d f_pred
  Eigen::MatrixXd m_jacobian;       // d f / d p [M x k]
  Eigen::MatrixXd m_whitened;
  Eigen::Vector3d m_prior_gradient;
  Eigen::Matrix3d m_prior_hessian;
  double m_measurement_gradient[5];  // labelled stars: d(measurement terms)/d(Theta, u, v)
};

}  // namespace xps
