// Gaussian-mixture prior (DESIGN §1.5) against brute force: ln p against a direct sum of
// multivariate normal densities, gradient and Hessian against central differences, EM recovering
// a known mixture, determinism, sampling moments and the enclosed-mass level.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <barrier>
#include <cmath>
#include <numbers>
#include <thread>
#include <vector>

#include <omp.h>

#include "xpstellar/config.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/gaussian_mixture.hpp"

namespace {

using namespace xps;

// Three well separated components in (Teff [K], [Fe/H], logg), Kiel-diagram-like scales.
GaussianMixture known_mixture() {
  GaussianMixture g;
  g.weights = Eigen::Vector3d(0.5, 0.3, 0.2);
  g.means.resize(3, 3);
  g.means << 5800, -0.1, 4.4,  //
      4700, -0.3, 2.5,         //
      6800, -1.2, 3.8;
  Eigen::Matrix3d a, b, c;
  a << 250.0 * 250.0, 0.2 * 250 * 0.3 * 0.5, -0.3 * 250 * 0.2,  //
      0.2 * 250 * 0.3 * 0.5, 0.09, 0.0,                         //
      -0.3 * 250 * 0.2, 0.0, 0.04;
  b << 150.0 * 150.0, 0.0, 0.8 * 150 * 0.3,  //
      0.0, 0.04, 0.01,                       //
      0.8 * 150 * 0.3, 0.01, 0.09;
  c << 300.0 * 300.0, 20.0, 0.0,  //
      20.0, 0.16, 0.0,           //
      0.0, 0.0, 0.0625;
  g.covariances = {a, b, c};
  return g;
}

double brute_force_log_density(const GaussianMixture& g, const Eigen::VectorXd& x) {
  double p = 0.0;
  const double d = static_cast<double>(g.dimension());
  for (int k = 0; k < g.components(); ++k) {
    const Eigen::MatrixXd& cov = g.covariances[static_cast<std::size_t>(k)];
    const Eigen::VectorXd r = x - g.means.row(k).transpose();
    const double q = r.dot(cov.inverse() * r);
    p += g.weights(k) * std::exp(-0.5 * q) /
         std::sqrt(std::pow(2.0 * std::numbers::pi, d) * cov.determinant());
  }
  return std::log(p);
}

TEST(GaussianMixture, LogDensityEqualsTheDirectSumOfNormalPdfs) {
  const GaussianMixture g = known_mixture();
  const Eigen::MatrixXd points = sample_gaussian_mixture(g, 200, 11);
  for (Eigen::Index i = 0; i < points.rows(); ++i) {
    const Eigen::VectorXd x = points.row(i).transpose();
    EXPECT_NEAR(log_density(g, x), brute_force_log_density(g, x), 1e-10) << "point " << i;
  }
  // Far in the tail every exp underflows in the brute force; the log-sum-exp stays finite.
  const Eigen::Vector3d far(20000.0, 5.0, -3.0);
  EXPECT_TRUE(std::isfinite(log_density(g, far)));
  EXPECT_LT(log_density(g, far), -1000.0);
}

TEST(GaussianMixture, GradientAndHessianMatchCentralDifferences) {
  const GaussianMixture g = known_mixture();
  const GaussianMixtureDensity density(g);
  // Step per dimension ~ 1e-4 of its scale; points between components where the r_k mix.
  const Eigen::Vector3d scale(300.0, 0.3, 0.3);
  const Eigen::MatrixXd points = sample_gaussian_mixture(g, 30, 5);
  for (Eigen::Index i = 0; i < points.rows(); ++i) {
    Eigen::Vector3d x = points.row(i).transpose();
    if (i % 3 == 0) x = 0.5 * (x + g.means.row(i % 2).transpose());
    Eigen::Vector3d grad;
    Eigen::Matrix<double, 3, 3, Eigen::RowMajor> hess;
    density.evaluate(x.data(), grad.data(), hess.data());
    for (int j = 0; j < 3; ++j) {
      const double h = 1e-4 * scale(j);
      Eigen::Vector3d up = x, down = x;
      up(j) += h;
      down(j) -= h;
      Eigen::Vector3d grad_up, grad_down;
      const double f_up = density.evaluate(up.data(), grad_up.data(), nullptr);
      const double f_down = density.evaluate(down.data(), grad_down.data(), nullptr);
      const double fd = (f_up - f_down) / (2 * h);
      EXPECT_NEAR(grad(j), fd, 1e-6 * std::max(std::abs(fd), 1.0 / scale(j))) << "point " << i << " d" << j;
      for (int m = 0; m < 3; ++m) {
        const double fd2 = (grad_up(m) - grad_down(m)) / (2 * h);
        EXPECT_NEAR(hess(m, j), fd2, 1e-6 * std::max(std::abs(fd2), 1.0 / (scale(j) * scale(m))))
            << "point " << i << " H(" << m << "," << j << ")";
      }
    }
    EXPECT_EQ(hess(0, 1), hess(1, 0));
    // The value-only path agrees with the full one.
    EXPECT_DOUBLE_EQ(density.evaluate(x.data(), nullptr, nullptr),
                     density.evaluate(x.data(), grad.data(), hess.data()));
  }
}

TEST(GaussianMixture, OtherDimensionsUseTheGenericPath) {
  for (int d : {1, 2, 5, 10}) {
    GaussianMixture g;
    g.weights = Eigen::Vector2d(0.4, 0.6);
    g.means = Eigen::MatrixXd::Zero(2, d);
    g.means.row(1).setConstant(1.5);
    const Eigen::MatrixXd a = Eigen::MatrixXd::Random(d, d);
    g.covariances = {a * a.transpose() + Eigen::MatrixXd::Identity(d, d),
                     Eigen::MatrixXd::Identity(d, d) * 0.5};
    const Eigen::VectorXd x = Eigen::VectorXd::LinSpaced(d, -0.5, 1.0);
    EXPECT_NEAR(log_density(g, x), brute_force_log_density(g, x), 1e-10) << "D = " << d;
  }
}

void expect_recovered(const GaussianMixture& truth, const GaussianMixture& fit) {
  ASSERT_EQ(fit.components(), truth.components());
  for (int k = 0; k < truth.components(); ++k) {
    // Match each true component to the fitted one with the nearest standardised mean.
    Eigen::Index best = 0;
    const Eigen::RowVector3d scale(300.0, 0.3, 0.3);
    ((fit.means.rowwise() - truth.means.row(k)).array().rowwise() / scale.array())
        .matrix().rowwise().squaredNorm().minCoeff(&best);
    EXPECT_NEAR(fit.weights(best), truth.weights(k), 0.02) << "component " << k;
    for (int j = 0; j < 3; ++j) {
      const double sigma = std::sqrt(truth.covariances[static_cast<std::size_t>(k)](j, j));
      EXPECT_NEAR(fit.means(best, j), truth.means(k, j), 0.05 * sigma) << "component " << k << " d" << j;
      EXPECT_NEAR(std::sqrt(fit.covariances[static_cast<std::size_t>(best)](j, j)), sigma, 0.05 * sigma);
    }
  }
}

TEST(GaussianMixture, EmRecoversAKnownMixture) {
  const GaussianMixture truth = known_mixture();
  const Eigen::MatrixXd points = sample_gaussian_mixture(truth, 20000, 42);
  GmmFitSettings settings;
  settings.components = 3;
  settings.n_init = 2;
  const GaussianMixture fit = fit_gaussian_mixture(points, settings);
  expect_recovered(truth, fit);
  EXPECT_NEAR(fit.weights.sum(), 1.0, 1e-12);
  // The fit explains the data at least as well as the truth, within sampling noise.
  EXPECT_GT(mean_log_likelihood(fit, points), mean_log_likelihood(truth, points) - 1e-9);
}

TEST(GaussianMixture, SameSeedGivesAnIdenticalFit) {
  const Eigen::MatrixXd points = sample_gaussian_mixture(known_mixture(), 3000, 8);
  GmmFitSettings settings;
  settings.components = 5;
  settings.n_init = 2;
  settings.seed = 77;
  const GaussianMixture a = fit_gaussian_mixture(points, settings);
  const GaussianMixture b = fit_gaussian_mixture(points, settings);
  EXPECT_TRUE(a.weights == b.weights);
  EXPECT_TRUE(a.means == b.means);
  for (std::size_t k = 0; k < a.covariances.size(); ++k) EXPECT_TRUE(a.covariances[k] == b.covariances[k]);
  EXPECT_TRUE(sample_gaussian_mixture(a, 100, 3) == sample_gaussian_mixture(b, 100, 3));
}

// The EM sums are taken per block of points and added in block order: any number of OpenMP
// threads gives the same bits (the fit is part of the training output).
TEST(GaussianMixture, FitDoesNotDependOnTheNumberOfThreads) {
  const Eigen::MatrixXd points = sample_gaussian_mixture(known_mixture(), 10000, 21);  // 3 blocks
  GmmFitSettings settings;
  settings.components = 4;
  settings.max_iterations = 50;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const GaussianMixture one = fit_gaussian_mixture(points, settings);
  omp_set_num_threads(3);
  const GaussianMixture three = fit_gaussian_mixture(points, settings);
  omp_set_num_threads(threads);
  EXPECT_TRUE(one.weights == three.weights);
  EXPECT_TRUE(one.means == three.means);
  for (std::size_t k = 0; k < one.covariances.size(); ++k) EXPECT_TRUE(one.covariances[k] == three.covariances[k]);
}

// Several processes fitting together (gaussian_mixture.hpp's GmmBlockSharing), played by threads
// that hand their block rows over through one table: every part gets the fit of one process
// alone, bit for bit, also with more parts than blocks (a part without blocks).
TEST(GaussianMixture, PartsSharingTheirBlockSumsGiveTheSingleProcessFit) {
  const Eigen::MatrixXd points = sample_gaussian_mixture(known_mixture(), 10000, 21);  // 3 blocks
  GmmFitSettings settings;
  settings.components = 4;
  settings.max_iterations = 40;
  settings.n_init = 2;
  const GaussianMixture alone = fit_gaussian_mixture(points, settings);
  for (const int parts : {2, 4}) {
    std::vector<double> exchange(3 * 4 * 9);  // blocks x the widest row (K D^2)
    std::barrier sync(parts);
    std::vector<GaussianMixture> fits(static_cast<std::size_t>(parts));
    std::vector<std::thread> workers;
    for (int part = 0; part < parts; ++part) {
      GmmBlockSharing sharing{part, parts, [&, part](double* rows, std::int64_t blocks, std::int64_t width) {
                                const auto first = gmm_first_block(blocks, part, parts) * width;
                                const auto last = gmm_first_block(blocks, part + 1, parts) * width;
                                std::copy(rows + first, rows + last, exchange.begin() + first);
                                sync.arrive_and_wait();
                                std::copy(exchange.begin(), exchange.begin() + blocks * width, rows);
                                sync.arrive_and_wait();
                              }};
      workers.emplace_back([&, part, sharing] {
        fits[static_cast<std::size_t>(part)] = fit_gaussian_mixture(points, settings, sharing);
      });
    }
    for (std::thread& worker : workers) worker.join();
    for (const GaussianMixture& fit : fits) {
      EXPECT_TRUE(fit.weights == alone.weights) << parts << " parts";
      EXPECT_TRUE(fit.means == alone.means) << parts << " parts";
      for (std::size_t k = 0; k < fit.covariances.size(); ++k)
        EXPECT_TRUE(fit.covariances[k] == alone.covariances[k]) << parts << " parts";
    }
  }
  GmmBlockSharing unusable{0, 2, nullptr};
  EXPECT_THROW(fit_gaussian_mixture(points, settings, unusable), UsageError);
}

// D = 3 has its own fixed-size EM; other dimensions take the fixed-capacity (D <= 8) or the
// dynamic one. Each explains two separated blobs at least as well as the truth does.
TEST(GaussianMixture, EmFitsOtherDimensions) {
  for (int d : {1, 2, 5, 10}) {
    GaussianMixture truth;
    truth.weights = Eigen::Vector2d(0.3, 0.7);
    truth.means = Eigen::MatrixXd::Zero(2, d);
    truth.means.row(1).setConstant(4.0);
    truth.covariances = {Eigen::MatrixXd::Identity(d, d), Eigen::MatrixXd::Identity(d, d) * 0.5};
    const Eigen::MatrixXd points = sample_gaussian_mixture(truth, 6000, 5);
    GmmFitSettings settings;
    settings.components = 2;
    const GaussianMixture fit = fit_gaussian_mixture(points, settings);
    EXPECT_GT(mean_log_likelihood(fit, points), mean_log_likelihood(truth, points) - 1e-9) << "D = " << d;
    EXPECT_NEAR(std::min(fit.weights(0), fit.weights(1)), 0.3, 0.02) << "D = " << d;
  }
}

TEST(GaussianMixture, SampleMomentsMatchTheMixture) {
  const GaussianMixture g = known_mixture();
  const Eigen::MatrixXd s = sample_gaussian_mixture(g, 200000, 9);
  const Eigen::Vector3d mean = g.means.transpose() * g.weights;
  Eigen::Matrix3d cov = Eigen::Matrix3d::Zero();
  for (int k = 0; k < 3; ++k) {
    const Eigen::Vector3d dm = g.means.row(k).transpose() - mean;
    cov += g.weights(k) * (g.covariances[static_cast<std::size_t>(k)] + dm * dm.transpose());
  }
  const Eigen::Vector3d sample_mean = s.colwise().mean().transpose();
  const Eigen::MatrixXd centred = s.rowwise() - sample_mean.transpose();
  const Eigen::Matrix3d sample_cov = centred.transpose() * centred / static_cast<double>(s.rows());
  for (int i = 0; i < 3; ++i) {
    const double sigma = std::sqrt(cov(i, i));
    EXPECT_NEAR(sample_mean(i), mean(i), 0.01 * sigma);
    for (int j = 0; j < 3; ++j)
      EXPECT_NEAR(sample_cov(i, j), cov(i, j), 0.02 * sigma * std::sqrt(cov(j, j)));
  }
}

TEST(GaussianMixture, DensityLevelEnclosesTheRequestedMass) {
  const GaussianMixture g = known_mixture();
  const GaussianMixtureDensity density(g);
  for (double mass : {0.9, 0.999}) {
    const double level = density_level_enclosing(g, mass, 400000, 21);
    const Eigen::MatrixXd fresh = sample_gaussian_mixture(g, 400000, 1234);
    std::int64_t above = 0;
    for (Eigen::Index i = 0; i < fresh.rows(); ++i) {
      const Eigen::Vector3d x = fresh.row(i).transpose();
      above += density.evaluate(x.data(), nullptr, nullptr) > level;
    }
    const double fraction = static_cast<double>(above) / static_cast<double>(fresh.rows());
    // Binomial error of the two estimates ~ sqrt(2 m (1-m) / n).
    const double tolerance = 5.0 * std::sqrt(2.0 * mass * (1.0 - mass) / 400000.0);
    EXPECT_NEAR(fraction, mass, tolerance) << "mass " << mass << " level " << level;
  }
}

TEST(GaussianMixture, ConfigKeysRoundTripAndBadInputIsRejected) {
  ParameterSet p;
  declare_gmm_parameters(p, "gmm");
  const GmmPriorSettings defaults = read_gmm_parameters(p, "gmm");
  EXPECT_EQ(defaults.fit.components, 16);
  EXPECT_DOUBLE_EQ(defaults.prior_mass, 0.999);
  p.set("gmm.components", "4", "test");
  p.set("gmm.reg_covar", "1e-3", "test");
  const GmmPriorSettings s = read_gmm_parameters(p, "gmm");
  EXPECT_EQ(s.fit.components, 4);
  EXPECT_DOUBLE_EQ(s.fit.reg_covar, 1e-3);

  GmmFitSettings settings;
  settings.components = 16;
  EXPECT_THROW(fit_gaussian_mixture(Eigen::MatrixXd::Zero(10, 3), settings), UsageError);
  Eigen::MatrixXd bad = Eigen::MatrixXd::Random(100, 3);
  bad(4, 1) = std::nan("");
  EXPECT_THROW(fit_gaussian_mixture(bad, settings), UsageError);
  GaussianMixture g = known_mixture();
  g.covariances[1](0, 0) = -1.0;
  EXPECT_THROW(GaussianMixtureDensity{g}, UsageError);
}

}  // namespace
