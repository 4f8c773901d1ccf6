#include "xpstellar/inference_loss.hpp"

#include <cmath>
#include <limits>

namespace xps {

InferenceLoss::InferenceLoss(const FluxModel& model, const GaussianMixtureDensity* prior,
                             double xi_prior_sigma, double E_limit)
    : m_model(model), m_prior(prior), m_xi_prior_sigma(xi_prior_sigma), m_ln_E_limit(std::log(E_limit)) {
  m_batch.theta.resize(3, 1);
  m_batch.ln_parallax.resize(1);
  m_batch.ln_E.resize(1);
  m_batch.xi.setZero(1);
  m_flux_gradient.resize(model.bands());
}

InferenceLoss::InferenceLoss(const FluxModel& model, const GaussianMixtureDensity& prior,
                             double xi_prior_sigma, double E_limit)
    : InferenceLoss(model, &prior, xi_prior_sigma, E_limit) {}

InferenceLoss::InferenceLoss(const FluxModel& model, double xi_prior_sigma, double E_limit)
    : InferenceLoss(model, nullptr, xi_prior_sigma, E_limit) {}

Eigen::Vector3d InferenceLoss::theta(const StarVector& p) const {
  const FluxNetwork& net = m_model.network;
  return net.input_offset + net.input_scale.cwiseProduct(p.head<3>());
}

StarVector InferenceLoss::parameters_of(const Eigen::Vector3d& theta, double parallax, double E,
                                        double xi) const {
  const FluxNetwork& net = m_model.network;
  StarVector p(parameters());
  p.head<3>() = (theta - net.input_offset).cwiseQuotient(net.input_scale);
  p(3) = std::log(parallax);
  p(4) = std::log(E);
  if (m_model.use_xi) p(5) = xi;
  return p;
}

// chi^2 and the terms that need no Jacobian; fills m_flux_gradient if asked.
double InferenceLoss::forward(const InferenceStar& star, const StarVector& p,
                              InferenceLossParts* parts, bool flux_gradient) {
  const Eigen::Vector3d th = theta(p);
  m_batch.theta.col(0) = th;
  m_batch.ln_parallax(0) = p(3);
  m_batch.ln_E(0) = p(4);
  m_batch.xi(0) = m_model.use_xi ? p(5) : 0.0;
  flux_model_forward(m_model, m_batch, m_workspace);
  const int bands = m_model.bands();
  const double chi2 = whitened_chi_square(star.whitening, star.flux_for_fit, m_workspace.flux.data(),
                                          bands, flux_gradient ? m_flux_gradient.data() : nullptr);
  double parallax_term = 0, ln_prior = 0, total = 0;
  if (star.labels) {
    const double physical[5] = {th(0), th(1), th(2), p(3), p(4)};
    const double pull = (std::exp(p(3)) - star.labels->parallax) / star.labels->parallax_error;
    parallax_term = pull * pull;
    const double measurement = star_measurement_terms(physical, *star.labels, m_measurement_gradient);
    ln_prior = -0.5 * (measurement - parallax_term + 2 * p(3) + 2 * p(4));
    total = chi2 + measurement;
    if (m_prior) {  // training with a population prior
      const double ln_population = m_prior->evaluate(th.data(), flux_gradient ? m_prior_gradient.data() : nullptr,
                                                     flux_gradient ? m_prior_hessian.data() : nullptr);
      ln_prior += ln_population;
      total -= 2 * ln_population;
    }
  } else {
    if (star.has_parallax) {
      const double pull = (std::exp(p(3)) - star.parallax) / star.parallax_error;
      parallax_term = pull * pull;
    }
    ln_prior = m_prior->evaluate(th.data(), flux_gradient ? m_prior_gradient.data() : nullptr,
                                 flux_gradient ? m_prior_hessian.data() : nullptr);
    total = chi2 + parallax_term - 2 * ln_prior - 2 * p(3) - 2 * p(4);
  }
  if (m_model.use_xi && m_xi_prior_sigma > 0) total += (p(5) / m_xi_prior_sigma) * (p(5) / m_xi_prior_sigma);
  if (!std::isfinite(total) || p(4) > m_ln_E_limit) total = std::numeric_limits<double>::infinity();
  if (parts) *parts = {chi2, parallax_term, ln_prior, total};
  return total;
}

double InferenceLoss::value(const InferenceStar& star, const StarVector& p, InferenceLossParts* parts) {
  return forward(star, p, parts, false);
}

void InferenceLoss::jacobian() {
  flux_model_jacobian(m_model, m_batch, m_workspace, 0, m_jacobian_scratch, m_jacobian);
  // d/dx = d/dTheta * scale
  m_jacobian.leftCols(3) *= m_model.network.input_scale.asDiagonal();
}

double InferenceLoss::value_gradient(const InferenceStar& star, const StarVector& p,
                                     StarVector& gradient, InferenceLossParts* parts) {
  const double total = forward(star, p, parts, true);
  const int k = parameters();
  gradient.resize(k);
  if (!std::isfinite(total)) {
    gradient.setZero();
    return total;
  }
  jacobian();
  gradient.noalias() = m_jacobian.transpose() * m_flux_gradient;
  const Eigen::Vector3d& scale = m_model.network.input_scale;
  if (star.labels) {
    for (int i = 0; i < 3; ++i) gradient(i) += scale(i) * m_measurement_gradient[i];
    gradient(3) += m_measurement_gradient[3];
    gradient(4) += m_measurement_gradient[4];
    if (m_prior) gradient.head<3>() -= 2.0 * scale.cwiseProduct(m_prior_gradient);
  } else {
    gradient.head<3>() -= 2.0 * scale.cwiseProduct(m_prior_gradient);
    if (star.has_parallax) {
      const double parallax = std::exp(p(3));
      gradient(3) += 2 * (parallax - star.parallax) * parallax / (star.parallax_error * star.parallax_error);
    }
    gradient(3) -= 2;
    gradient(4) -= 2;
  }
  if (m_model.use_xi && m_xi_prior_sigma > 0) gradient(5) += 2 * p(5) / (m_xi_prior_sigma * m_xi_prior_sigma);
  return total;
}

void InferenceLoss::whiten_jacobian(const InferenceStar& star) {
  m_whitened.resize(m_jacobian.rows(), m_jacobian.cols());
  whiten_columns(star.whitening, m_jacobian, m_whitened);
}

double InferenceLoss::value_gradient_hessian(const InferenceStar& star, const StarVector& p,
                                             StarVector& gradient, StarMatrix& hessian,
                                             InferenceLossParts* parts) {
  const double total = value_gradient(star, p, gradient, parts);
  const int k = parameters();
  hessian.setZero(k, k);
  if (!std::isfinite(total)) return total;
  whiten_jacobian(star);
  hessian.noalias() = 2.0 * m_whitened.transpose() * m_whitened;
  // Second-order chi^2 terms in u and v: exact and cheap, because f depends on them analytically
  // (d2f/du2 = 4 f, d2f/dudv = -2 E R f, d2f/dv2 = (E^2 R^2 - E R) f). Without them the curvature
  // in ln E of a nearly unreddened star is E^2-small and Levenberg-Marquardt crawls.
  const auto flux = m_workspace.flux.col(0);
  const auto curve = m_workspace.effective_R.col(0);
  const double E = std::exp(p(4));
  const double uu = 4.0 * m_flux_gradient.dot(flux);
  const double uv = -2.0 * E * m_flux_gradient.dot(curve.cwiseProduct(flux));
  const double vv = m_flux_gradient.dot(((E * curve).array().square() - E * curve.array()).matrix().cwiseProduct(flux));
  hessian(3, 3) += uu;
  hessian(3, 4) += uv;
  hessian(4, 3) += uv;
  hessian(4, 4) += vv;
  const Eigen::Vector3d& scale = m_model.network.input_scale;
  if (star.labels) {
    const Eigen::Vector3d th = theta(p);
    const double physical[5] = {th(0), th(1), th(2), p(3), p(4)};
    double diagonal[5];
    star_measurement_hessian_diagonal(physical, *star.labels, diagonal);
    for (int i = 0; i < 3; ++i) hessian(i, i) += scale(i) * scale(i) * diagonal[i];
    hessian(3, 3) += diagonal[3];
    hessian(4, 4) += diagonal[4];
    if (m_prior) hessian.topLeftCorner<3, 3>() -= 2.0 * scale.asDiagonal() * m_prior_hessian * scale.asDiagonal();
  } else {
    hessian.topLeftCorner<3, 3>() -= 2.0 * scale.asDiagonal() * m_prior_hessian * scale.asDiagonal();
    if (star.has_parallax) {
      const double slope = std::exp(p(3)) / star.parallax_error;
      hessian(3, 3) += 2 * slope * slope;
    }
  }
  if (m_model.use_xi && m_xi_prior_sigma > 0) hessian(5, 5) += 2 / (m_xi_prior_sigma * m_xi_prior_sigma);
  return total;
}

const Eigen::MatrixXd& InferenceLoss::whitened_catalog_jacobian(const InferenceStar& star,
                                                                 const StarVector& p) {
  forward(star, p, nullptr, false);
  jacobian();
  // p -> q: x -> Teff [kK] via scale / 1000 per kK ... d/dq = d/dp * dp/dq
  const Eigen::Vector3d& scale = m_model.network.input_scale;
  m_jacobian.col(0) *= 1000.0 / scale(0);  // x_teff = (Teff[K] - offset) / scale
  m_jacobian.col(1) /= scale(1);
  m_jacobian.col(2) /= scale(2);
  m_jacobian.col(3) /= std::exp(p(3));  // u = ln parallax
  m_jacobian.col(4) /= std::exp(p(4));  // v = ln E
  // The optimiser's order is (Theta, parallax, E); the catalog's is (Theta, E, parallax), and the
  // Fisher matrix adds the parallax measurement to its last parameter.
  m_jacobian.col(3).swap(m_jacobian.col(4));
  whiten_jacobian(star);
  return m_whitened;
}

}  // namespace xps
