// The standardised units in which the mixture fits work (gaussian_mixture.cpp,
// deconvolved_mixture.cpp): per dimension, the points' mean subtracted and their standard
// deviation divided out (1 for a constant dimension), so that reg_covar and k-means distances
// mean the same in every dimension.
#pragma once

#include <Eigen/Dense>

#include "xpstellar/gaussian_mixture.hpp"

namespace xps {

struct MixtureStandardisation {
  explicit MixtureStandardisation(const Eigen::MatrixXd& points)  // [N x D]
      : centre(points.colwise().mean()),
        scale(((points.rowwise() - centre).colwise().squaredNorm() / static_cast<double>(points.rows()))
                  .cwiseSqrt()) {
    for (Eigen::Index j = 0; j < scale.size(); ++j)
      if (!(scale(j) > 0.0)) scale(j) = 1.0;
  }

  Eigen::MatrixXd points(const Eigen::MatrixXd& original) const {  // [N x D]
    return (original.rowwise() - centre).array().rowwise() / scale.array();
  }
  Eigen::MatrixXd variances(const Eigen::MatrixXd& original) const {  // [N x D]
    return original.array().rowwise() / scale.array().square();
  }
  // A mixture fitted in standardised units, back in the original ones: x = centre + scale . z.
  void restore(GaussianMixture& mixture) const {
    mixture.means = (mixture.means.array().rowwise() * scale.array()).rowwise() + centre.array();
    for (auto& cov : mixture.covariances) cov = scale.asDiagonal() * cov * scale.asDiagonal();
  }

  Eigen::RowVectorXd centre, scale;
};

}  // namespace xps
