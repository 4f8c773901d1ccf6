#include "xpstellar/star_loss.hpp"

#include <cmath>

namespace xps {

double star_measurement_terms(const double* p, const StarMeasurements& m, double* gradient) {
  double loss = 0;
  for (int k = 0; k < 3; ++k) {
    const double pull = (p[k] - m.label(k)) / m.label_error(k);
    loss += pull * pull;
    gradient[k] = 2 * pull / m.label_error(k);
  }
  const double parallax = std::exp(p[3]);
  const double parallax_pull = (parallax - m.parallax) / m.parallax_error;
  loss += parallax_pull * parallax_pull - 2 * p[3];
  gradient[3] = 2 * parallax_pull * parallax / m.parallax_error - 2;
  loss -= 2 * p[4];
  gradient[4] = -2;
  if (std::isfinite(m.E_prior)) {
    const double E = std::exp(p[4]);
    const double E_pull = (E - m.E_prior) / m.E_prior_error;
    loss += E_pull * E_pull;
    gradient[4] += 2 * E_pull * E / m.E_prior_error;
  }
  return loss;
}

void star_measurement_hessian_diagonal(const double* p, const StarMeasurements& m, double* diagonal) {
  for (int k = 0; k < 3; ++k) diagonal[k] = 2 / (m.label_error(k) * m.label_error(k));
  const double parallax_slope = std::exp(p[3]) / m.parallax_error;
  diagonal[3] = 2 * parallax_slope * parallax_slope;
  diagonal[4] = 0;
  if (std::isfinite(m.E_prior)) {
    const double E_slope = std::exp(p[4]) / m.E_prior_error;
    diagonal[4] = 2 * E_slope * E_slope;
  }
}

}  // namespace xps
