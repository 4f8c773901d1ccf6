// The measurement terms of the per-star training loss (DESIGN §1.3):
//   L_star = chi^2 + ((parallax - parallax_hat) / s_parallax)^2 + ((E - E_hat) / s_E)^2
//            + sum_i ((Theta_i - Theta_hat_i) / s_i)^2 - 2 ln parallax - 2 ln E
// with u = ln parallax and v = ln E the free variables (the -2 u - 2 v terms are the Jacobians of
// flat priors on parallax and E). chi^2 comes from the flux model; this is everything else.
#pragma once

#include <Eigen/Dense>

namespace xps {

struct StarMeasurements {
  Eigen::Vector3d label, label_error;  // teff [K], feh, logg
  double parallax = 0, parallax_error = 1;  // mas, zero point subtracted
  double E_prior = 0, E_prior_error = 0;    // NaN prior: no E term
};

// `parameters`: teff, feh, logg, ln parallax, ln E. Returns the terms above (without chi^2) and
// writes their gradient with respect to those five into `gradient`.
double star_measurement_terms(const double* parameters, const StarMeasurements& measured,
                              double* gradient);

// The diagonal of their Hessian with respect to the same five parameters, exact for the labels
// and Gauss-Newton for the parallax and E pulls (never negative, like the inference loss's
// parallax term), for the Levenberg-Marquardt star solve.
void star_measurement_hessian_diagonal(const double* parameters, const StarMeasurements& measured,
                                       double* diagonal);

}  // namespace xps
