// Extreme deconvolution against a known population: noisy draws of a known mixture give back its
// noiseless components (the plain fit gives the convolved ones), the deconvolved fit is the better
// one by its own likelihood, and posterior means match the closed form of one Gaussian and undo
// regression dilution.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>

#include "xpstellar/deconvolved_mixture.hpp"
#include "xpstellar/error.hpp"

namespace {

using namespace xps;

// Two Kiel-diagram-like components (Teff [K], [Fe/H], logg): dwarfs and giants.
GaussianMixture population() {
  GaussianMixture g;
  g.weights = Eigen::Vector2d(0.6, 0.4);
  g.means.resize(2, 3);
  g.means << 5600, -0.2, 4.4,  //
      4700, -0.4, 2.5;
  Eigen::Matrix3d dwarfs, giants;
  dwarfs << 400.0 * 400.0, 0.3 * 400 * 0.3, -0.5 * 400 * 0.12,  //
      0.3 * 400 * 0.3, 0.09, 0.0,                                //
      -0.5 * 400 * 0.12, 0.0, 0.0144;
  giants << 200.0 * 200.0, 0.0, 0.8 * 200 * 0.3,  //
      0.0, 0.0625, 0.0,                           //
      0.8 * 200 * 0.3, 0.0, 0.09;
  g.covariances = {dwarfs, giants};
  return g;
}

struct NoisyDraws {
  Eigen::MatrixXd truth, measured, variances;  // [N x 3]
};

// Label-like errors: per point a factor in [0.5, 1.5) times (150 K, 0.15 dex, 0.15 dex), so the
// log g errors of the dwarfs exceed their true spread, as in a spectroscopic survey.
NoisyDraws noisy_draws(std::int64_t count, std::uint64_t seed) {
  NoisyDraws d;
  d.truth = sample_gaussian_mixture(population(), count, seed);
  GaussianMixture unit;
  unit.weights = Eigen::VectorXd::Ones(1);
  unit.means = Eigen::MatrixXd::Zero(1, 3);
  unit.covariances = {Eigen::MatrixXd::Identity(3, 3)};
  const Eigen::MatrixXd normal = sample_gaussian_mixture(unit, count, seed + 1);
  const Eigen::RowVector3d typical(150.0, 0.15, 0.15);
  d.measured.resize(count, 3);
  d.variances.resize(count, 3);
  for (Eigen::Index i = 0; i < count; ++i) {
    const double factor = 0.5 + std::fmod(0.6180339887 * static_cast<double>(i), 1.0);
    const Eigen::RowVector3d sigma = factor * typical;
    d.variances.row(i) = sigma.array().square();
    d.measured.row(i) = d.truth.row(i) + normal.row(i).cwiseProduct(sigma);
  }
  return d;
}

Eigen::Index nearest_component(const GaussianMixture& fit, const Eigen::RowVector3d& mean) {
  Eigen::Index best = 0;
  const Eigen::RowVector3d scale(300.0, 0.3, 0.3);
  ((fit.means.rowwise() - mean).array().rowwise() / scale.array()).matrix().rowwise().squaredNorm().minCoeff(&best);
  return best;
}

TEST(DeconvolvedMixture, RecoversTheNoiselessPopulationWhereThePlainFitIsBroadened) {
  const NoisyDraws d = noisy_draws(40000, 5);
  GmmFitSettings settings;
  settings.components = 2;
  settings.n_init = 2;
  settings.tolerance = 1e-8;
  const GaussianMixture plain = fit_gaussian_mixture(d.measured, settings);
  const GaussianMixture deconvolved = fit_deconvolved_gaussian_mixture(d.measured, d.variances, settings);
  const GaussianMixture truth = population();
  ASSERT_EQ(deconvolved.components(), 2);
  for (int k = 0; k < 2; ++k) {
    const Eigen::Index p = nearest_component(plain, truth.means.row(k));
    const Eigen::Index x = nearest_component(deconvolved, truth.means.row(k));
    EXPECT_NEAR(deconvolved.weights(x), truth.weights(k), 0.02) << "component " << k;
    for (int j = 0; j < 3; ++j) {
      const double sigma = std::sqrt(truth.covariances[static_cast<std::size_t>(k)](j, j));
      EXPECT_NEAR(deconvolved.means(x, j), truth.means(k, j), 0.05 * sigma) << k << "," << j;
      EXPECT_NEAR(std::sqrt(deconvolved.covariances[static_cast<std::size_t>(x)](j, j)), sigma, 0.06 * sigma)
          << "component " << k << ", dimension " << j;
    }
    // The dwarfs' log g spread (0.12 dex against errors of 0.075-0.225 dex) is where the plain
    // fit is most broadened: it must be, or this test would not tell the two fits apart.
    if (k == 0) {
      EXPECT_GT(std::sqrt(plain.covariances[static_cast<std::size_t>(p)](2, 2)), 1.4 * 0.12);
    }
  }
  EXPECT_GT(mean_deconvolved_log_likelihood(deconvolved, d.measured, d.variances),
            mean_deconvolved_log_likelihood(plain, d.measured, d.variances));
}

TEST(DeconvolvedMixture, PosteriorMeanOfOneGaussianIsTheClosedForm) {
  GaussianMixture one;
  one.weights = Eigen::VectorXd::Ones(1);
  one.means = population().means.topRows(1);
  one.covariances = {population().covariances[0]};
  const NoisyDraws d = noisy_draws(50, 9);
  const Eigen::MatrixXd means = posterior_means(one, d.measured, d.variances);
  const Eigen::Vector3d mu = one.means.row(0).transpose();
  const Eigen::Matrix3d sigma = one.covariances[0];
  for (Eigen::Index i = 0; i < d.measured.rows(); ++i) {
    const Eigen::Matrix3d convolved = sigma + Eigen::Matrix3d(d.variances.row(i).asDiagonal());
    const Eigen::Vector3d expected = mu + sigma * convolved.ldlt().solve(d.measured.row(i).transpose() - mu);
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(means(i, j), expected(j), 1e-9 * std::abs(expected(j)) + 1e-12);
  }
}

// Regressing the truth on the measured labels gives slope < 1 (dilution); on the posterior means
// under the deconvolved population, slope 1: what phase 1 of training needs.
TEST(DeconvolvedMixture, PosteriorMeansUndoRegressionDilution) {
  const NoisyDraws d = noisy_draws(40000, 21);
  GmmFitSettings settings;
  settings.components = 2;
  const GaussianMixture deconvolved = fit_deconvolved_gaussian_mixture(d.measured, d.variances, settings);
  const Eigen::MatrixXd calibrated = posterior_means(deconvolved, d.measured, d.variances);
  const auto slope = [&](const Eigen::MatrixXd& x, int j) {
    // Within the dwarfs (true log g > 3.6) so that the bimodality does not set the slope.
    double sxx = 0, sxy = 0, mx = 0, my = 0, n = 0;
    for (Eigen::Index i = 0; i < x.rows(); ++i)
      if (d.truth(i, 2) > 3.6) mx += x(i, j), my += d.truth(i, j), n += 1;
    mx /= n, my /= n;
    for (Eigen::Index i = 0; i < x.rows(); ++i)
      if (d.truth(i, 2) > 3.6) sxx += (x(i, j) - mx) * (x(i, j) - mx), sxy += (x(i, j) - mx) * (d.truth(i, j) - my);
    return sxy / sxx;
  };
  EXPECT_LT(slope(d.measured, 2), 0.6);  // logg: true spread 0.12, errors ~0.16
  EXPECT_NEAR(slope(calibrated, 2), 1.0, 0.1);
  EXPECT_NEAR(slope(calibrated, 0), 1.0, 0.05);
}

TEST(DeconvolvedMixture, RejectsBadInput) {
  const NoisyDraws d = noisy_draws(100, 3);
  GmmFitSettings settings;
  settings.components = 2;
  Eigen::MatrixXd zero_variance = d.variances;
  zero_variance(7, 1) = 0.0;
  EXPECT_THROW(fit_deconvolved_gaussian_mixture(d.measured, zero_variance, settings), UsageError);
  Eigen::MatrixXd nan_point = d.measured;
  nan_point(3, 0) = std::nan("");
  EXPECT_THROW(fit_deconvolved_gaussian_mixture(nan_point, d.variances, settings), UsageError);
  EXPECT_THROW(fit_deconvolved_gaussian_mixture(d.measured, d.variances.topRows(50), settings), UsageError);
}

}  // namespace
