// Uncertainties from the Fisher matrix (DESIGN §1.5), in the catalog's linear parameters
// q = (Teff [kK], [Fe/H], logg, E, parallax [mas]):
//   I = A^T A + diag(0, 0, 0, 0, 1 / sigma_parallax^2),   A = L dF/dq (the whitened Jacobian),
// without the prior. A model with xi adds a sixth column; xi is then marginalised: the reported
// inverse covariance is the Schur complement of I over xi, the covariance the 5 x 5 block of I^-1.
// The covariance is the inverse of the inverse covariance through its eigen decomposition with the
// eigenvalues clipped from below at a tiny fraction of the largest, so that it is symmetric
// positive semidefinite even when a direction is unconstrained (its variance is then huge, not
// negative or NaN).
#pragma once

#include <Eigen/Dense>

namespace xps {

struct StarUncertainty {
  Eigen::Matrix<double, 5, 5> inverse_covariance;
  Eigen::Matrix<double, 5, 5> covariance;
  Eigen::Matrix<double, 5, 1> error;  // sqrt(diag(covariance))
};

inline constexpr double fisher_eigen_clip = 1e-14;  // relative to the largest eigenvalue

// `whitened_jacobian`: [M x 5] or [M x 6] (xi last); parallax_error <= 0 or non-finite: no term.
StarUncertainty fisher_uncertainty(const Eigen::MatrixXd& whitened_jacobian, double parallax_error);

// The same for a covariance changed after the fit (uncertainty_calibration.hpp): the inverse
// covariance through the same clipped eigen decomposition, errors = sqrt(diag).
StarUncertainty uncertainty_of_covariance(const Eigen::Matrix<double, 5, 5>& covariance);

// The packed upper triangle (row-major, i <= j) of a symmetric 5 x 5 matrix: 15 numbers.
void pack_upper_triangle(const Eigen::Matrix<double, 5, 5>& matrix, float* packed);

}  // namespace xps
