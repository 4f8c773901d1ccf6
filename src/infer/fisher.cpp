#include "xpstellar/fisher.hpp"

#include <cmath>

namespace xps {

namespace {

using Matrix5 = Eigen::Matrix<double, 5, 5>;

Matrix5 clipped_inverse(const Matrix5& matrix) {
  const Eigen::SelfAdjointEigenSolver<Matrix5> eigen(matrix);
  const Eigen::Matrix<double, 5, 1> values = eigen.eigenvalues();
  const double floor = std::max(values.maxCoeff(), 0.0) * fisher_eigen_clip;
  const double smallest_allowed = floor > 0 ? floor : 1e-300;
  const Eigen::Matrix<double, 5, 1> inverse = values.cwiseMax(smallest_allowed).cwiseInverse();
  Matrix5 result = eigen.eigenvectors() * inverse.asDiagonal() * eigen.eigenvectors().transpose();
  return 0.5 * (result + result.transpose());
}

}  // namespace

StarUncertainty fisher_uncertainty(const Eigen::MatrixXd& whitened_jacobian, double parallax_error) {
  const auto k = whitened_jacobian.cols();
  Eigen::MatrixXd information = whitened_jacobian.transpose() * whitened_jacobian;
  if (std::isfinite(parallax_error) && parallax_error > 0)
    information(4, 4) += 1.0 / (parallax_error * parallax_error);
  StarUncertainty u;
  if (k == 5) {
    u.inverse_covariance = information;
  } else {  // marginalise the extra parameters: Schur complement
    const Eigen::MatrixXd extra = information.bottomRightCorner(k - 5, k - 5);
    const Eigen::MatrixXd cross = information.topRightCorner(5, k - 5);
    const Eigen::LDLT<Eigen::MatrixXd> solver(extra);
    const bool usable = solver.info() == Eigen::Success && solver.isPositive() &&
                        extra.diagonal().minCoeff() > 0;
    u.inverse_covariance = information.topLeftCorner(5, 5);
    if (usable) u.inverse_covariance -= cross * solver.solve(cross.transpose());
  }
  u.inverse_covariance = 0.5 * (u.inverse_covariance + u.inverse_covariance.transpose());
  u.covariance = clipped_inverse(u.inverse_covariance);
  u.error = u.covariance.diagonal().cwiseMax(0.0).cwiseSqrt();
  return u;
}

StarUncertainty uncertainty_of_covariance(const Eigen::Matrix<double, 5, 5>& covariance) {
  StarUncertainty u;
  u.covariance = 0.5 * (covariance + covariance.transpose());
  u.inverse_covariance = clipped_inverse(u.covariance);
  u.error = u.covariance.diagonal().cwiseMax(0.0).cwiseSqrt();
  return u;
}

void pack_upper_triangle(const Eigen::Matrix<double, 5, 5>& matrix, float* packed) {
  int n = 0;
  for (int i = 0; i < 5; ++i)
    for (int j = i; j < 5; ++j) packed[n++] = static_cast<float>(matrix(i, j));
}

}  // namespace xps
