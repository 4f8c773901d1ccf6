// Inference (src/infer): the loss and its derivatives against finite differences, the Fisher
// covariances against direct inverses, the starting grid and both optimisers on stars made from
// the model itself.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <tuple>

#include "model_file_fixture.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/fisher.hpp"
#include "xpstellar/float_product.hpp"
#include "xpstellar/inference_loss.hpp"
#include "xpstellar/inference_run.hpp"
#include "xpstellar/inference_start.hpp"
#include "xpstellar/star_fit.hpp"
#include "xpstellar/star_inference.hpp"
#include "xpstellar/star_table.hpp"

namespace xps {
namespace {

// A one-row star table holding the model's own flux for (theta, parallax, E, xi), with a diagonal
// covariance of `relative_error` and the measured parallax given.
StarTable star_from_model(const ModelFile& file, const Eigen::Vector3d& theta, double parallax, double E,
                          double xi, double relative_error, double measured_parallax,
                          double parallax_error) {
  StarBatch batch;
  batch.theta = theta;
  batch.ln_parallax = Eigen::VectorXd::Constant(1, std::log(parallax));
  batch.ln_E = Eigen::VectorXd::Constant(1, std::log(E));
  batch.xi = Eigen::VectorXd::Constant(1, xi);
  FluxModelWorkspace workspace;
  flux_model_forward(file.model, batch, workspace);
  const auto m = static_cast<std::size_t>(file.model.bands());
  StarTable table;
  table.wavelength_nm = file.wavelength_nm;
  table.band_names = file.band_names;
  table.resize(1);
  table.source_id[0] = 1;
  for (std::size_t b = 0; b < m; ++b) {
    const double f = workspace.flux(static_cast<Eigen::Index>(b), 0);
    table.flux[b] = static_cast<float>(f);
    for (std::size_t c = b; c < m; ++c)
      table.flux_cov[packed_triangle_index(b, c, m)] =
          b == c ? static_cast<float>(std::pow(relative_error * f, 2)) : 0.0f;
  }
  table.parallax[0] = static_cast<float>(measured_parallax);
  table.parallax_error[0] = static_cast<float>(parallax_error);
  return table;
}

struct Fixture {
  ModelFile file;
  GaussianMixtureDensity prior;
  FluxWhitening whitening;
  InferenceChunk chunk;

  explicit Fixture(bool use_xi = false)
      : file(make_file(use_xi)),
        prior(file.prior->mixture),
        whitening(file.band_names, file.wavelength_nm, file.inflation) {}

  static ModelFile make_file(bool use_xi) {
    test::ModelFixtureOptions options;
    options.use_xi = use_xi;
    options.seed = 7;
    return test::make_random_model_file(options);
  }

  InferenceStar prepare(const StarTable& table) {
    chunk.reset(1, file.model.bands());
    prepare_inference_star(table, 0, whitening, 0.0, file.model.use_xi ? 6 : 5, chunk, 0);
    EXPECT_EQ(chunk.status[0], FitStatus::converged);
    return chunk.star(0);
  }
};

// Central differences of the loss against its analytic gradient at p.
void expect_gradient_matches_finite_differences(InferenceLoss& loss, const InferenceStar& star,
                                                const StarVector& p) {
  StarVector gradient;
  loss.value_gradient(star, p, gradient);
  for (int k = 0; k < loss.parameters(); ++k) {
    const double h = 1e-6;
    StarVector up = p, down = p;
    up(k) += h;
    down(k) -= h;
    const double numeric = (loss.value(star, up) - loss.value(star, down)) / (2 * h);
    EXPECT_NEAR(gradient(k), numeric, 1e-5 * std::max(1.0, std::abs(numeric))) << "parameter " << k;
  }
}

// Central differences of the gradient against the Hessian (Theta, u, v) at p.
void expect_hessian_matches_finite_differences(InferenceLoss& loss, const InferenceStar& star,
                                               const StarVector& p) {
  StarVector gradient;
  StarMatrix hessian;
  loss.value_gradient_hessian(star, p, gradient, hessian);
  for (int k = 0; k < 5; ++k) {
    const double h = 1e-5;
    StarVector up = p, down = p, g_up, g_down;
    up(k) += h;
    down(k) -= h;
    loss.value_gradient(star, up, g_up);
    loss.value_gradient(star, down, g_down);
    const StarVector column = (g_up - g_down) / (2 * h);
    for (int j = 0; j < 5; ++j)
      EXPECT_NEAR(hessian(j, k), column(j), 2e-4 * std::max(1.0, std::abs(column(j)))) << j << "," << k;
  }
}

TEST(InferenceLoss, GradientMatchesFiniteDifferences) {
  for (const bool use_xi : {false, true}) {
    Fixture f(use_xi);
    // Observed flux away from the evaluation point, so that every term has a gradient.
    const StarTable table = star_from_model(f.file, {5200, -0.4, 4.1}, 1.3, 0.4, 0.1, 0.02, 1.1, 0.05);
    const InferenceStar star = f.prepare(table);
    InferenceLoss loss(f.file.model, f.prior, use_xi ? 0.3 : 0.0, 30.0);
    StarVector p = loss.parameters_of({5600, -0.2, 3.8}, 1.2, 0.5, 0.05);
    expect_gradient_matches_finite_differences(loss, star, p);
  }
}

TEST(InferenceLoss, HessianIsExactAtAZeroResidualPoint) {
  // With the model's own flux and the parallax measured exactly, the Gauss-Newton terms are the
  // exact Hessian: it must equal finite differences of the gradient.
  Fixture f;
  const Eigen::Vector3d theta(5400, -0.3, 3.9);
  const StarTable table = star_from_model(f.file, theta, 0.9, 0.3, 0, 0.01, 0.9, 0.04);
  const InferenceStar star = f.prepare(table);
  InferenceLoss loss(f.file.model, f.prior, 0, 30.0);
  const StarVector p = loss.parameters_of(theta, 0.9, 0.3, 0);
  expect_hessian_matches_finite_differences(loss, star, p);
}

TEST(InferenceLoss, LabelledStarsGiveTheStarLossWithItsDerivatives) {
  // Training's Levenberg-Marquardt star solve: L_star = chi^2 + the terms of star_loss.hpp, its
  // gradient against finite differences, and at a point where every pull and residual vanishes
  // (the -2u - 2v terms have no curvature) the Hessian against finite differences of the gradient.
  Fixture f;
  const Eigen::Vector3d theta(5400, -0.3, 3.9);
  const StarTable table = star_from_model(f.file, theta, 0.9, 0.3, 0, 0.01, 0.9, 0.04);
  InferenceStar star = f.prepare(table);
  StarMeasurements measured;
  measured.label = {5450, -0.25, 3.8};
  measured.label_error = {80, 0.07, 0.1};
  measured.parallax = 0.85;
  measured.parallax_error = 0.04;
  measured.E_prior = 0.33;
  measured.E_prior_error = 0.05;
  star.labels = &measured;
  InferenceLoss loss(f.file.model, 0.0, 30.0);
  const StarVector p = loss.parameters_of({5500, -0.2, 3.85}, 0.95, 0.28, 0);
  InferenceLossParts parts;
  const double value = loss.value(star, p, &parts);
  const double physical[5] = {5500, -0.2, 3.85, std::log(0.95), std::log(0.28)};
  double unused[5];
  EXPECT_NEAR(value, parts.chi2 + star_measurement_terms(physical, measured, unused), 1e-9 * value);
  EXPECT_GT(parts.chi2, 0);
  expect_gradient_matches_finite_differences(loss, star, p);

  StarMeasurements exact = measured;
  exact.label = theta;
  exact.parallax = 0.9;
  exact.E_prior = 0.3;
  star.labels = &exact;
  expect_hessian_matches_finite_differences(loss, star, loss.parameters_of(theta, 0.9, 0.3, 0));

  // The solve from a displaced start lands where the gradient vanishes.
  FastOptimizerSettings lm;
  lm.decrement_tolerance = 1e-10;
  star.labels = &measured;
  const StarFit fit = fit_star_fast(loss, star, p, lm);
  EXPECT_TRUE(fit.converged);
  StarVector gradient;
  loss.value_gradient(star, fit.parameters, gradient);
  EXPECT_LT(gradient.norm(), 1e-3);
  EXPECT_LT(fit.parts.total, value);
}

TEST(InferenceLoss, LabelledStarsWithAPopulationPriorAddMinusTwoLnP) {
  // Training with population_prior.enabled: L_star - 2 ln p(Theta), the prior's gradient and
  // Hessian exact, so the Hessian still matches finite differences at a zero-residual point.
  Fixture f;
  const Eigen::Vector3d theta(5400, -0.3, 3.9);
  const StarTable table = star_from_model(f.file, theta, 0.9, 0.3, 0, 0.01, 0.9, 0.04);
  InferenceStar star = f.prepare(table);
  StarMeasurements measured;
  measured.label = theta;
  measured.label_error = {80, 0.07, 0.1};
  measured.parallax = 0.9;
  measured.parallax_error = 0.04;
  measured.E_prior = 0.3;
  measured.E_prior_error = 0.05;
  star.labels = &measured;
  InferenceLoss with_prior(f.file.model, f.prior, 0.0, 30.0);
  InferenceLoss without(f.file.model, 0.0, 30.0);
  const StarVector p = with_prior.parameters_of({5500, -0.2, 3.85}, 0.95, 0.28, 0);
  const Eigen::Vector3d at(5500, -0.2, 3.85);
  InferenceLossParts parts;
  EXPECT_NEAR(with_prior.value(star, p, &parts), without.value(star, p) - 2 * f.prior.log_density(at), 1e-9);
  expect_gradient_matches_finite_differences(with_prior, star, p);
  expect_hessian_matches_finite_differences(with_prior, star, with_prior.parameters_of(theta, 0.9, 0.3, 0));
}

// The Fisher matrix takes the whitened Jacobian in the catalog's order (Teff [kK], [Fe/H], logg, E,
// parallax [mas][, xi]) and adds the parallax measurement to the fifth parameter: each column
// must be the derivative of the whitened model flux along that catalog parameter.
TEST(InferenceLoss, CatalogJacobianIsTheWhitenedFluxDerivativeInCatalogOrder) {
  for (const bool use_xi : {false, true}) {
    Fixture f(use_xi);
    const StarTable table = star_from_model(f.file, {5200, -0.4, 4.1}, 1.3, 0.4, 0.1, 0.02, 1.1, 0.05);
    const InferenceStar star = f.prepare(table);
    InferenceLoss loss(f.file.model, f.prior, 0.0, 30.0);
    const double catalog[6] = {5.6, -0.2, 3.8, 0.5, 1.2, 0.05};  // Teff kK, [Fe/H], logg, E, parallax, xi
    const StarVector p = loss.parameters_of({1000 * catalog[0], catalog[1], catalog[2]}, catalog[4],
                                            catalog[3], catalog[5]);
    const Eigen::MatrixXd analytic = loss.whitened_catalog_jacobian(star, p);
    const auto m = f.file.model.bands();
    ASSERT_EQ(analytic.cols(), use_xi ? 6 : 5);
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> whitening(m, m);
    unpack_whitening(star.whitening, static_cast<std::size_t>(m), whitening.data());
    const auto whitened_flux = [&](const double* q) {
      StarBatch batch;
      batch.theta = Eigen::Vector3d(1000 * q[0], q[1], q[2]);
      batch.ln_E = Eigen::VectorXd::Constant(1, std::log(q[3]));
      batch.ln_parallax = Eigen::VectorXd::Constant(1, std::log(q[4]));
      batch.xi = Eigen::VectorXd::Constant(1, q[5]);
      FluxModelWorkspace workspace;
      flux_model_forward(f.file.model, batch, workspace);
      return Eigen::VectorXd(whitening.cast<double>() * workspace.flux.col(0));
    };
    for (Eigen::Index k = 0; k < analytic.cols(); ++k) {
      const double h = 1e-5 * std::max(1.0, std::abs(catalog[k]));
      double up[6], down[6];
      std::copy(catalog, catalog + 6, up);
      std::copy(catalog, catalog + 6, down);
      up[k] += h;
      down[k] -= h;
      const Eigen::VectorXd numeric = (whitened_flux(up) - whitened_flux(down)) / (2 * h);
      // float whitening inside the analytic path: 1e-5 of the column's size
      EXPECT_LT((analytic.col(k) - numeric).norm(), 1e-5 * numeric.norm()) << "catalog parameter " << k;
    }
  }
}

TEST(Fisher, CovarianceInvertsTheInformationAndStaysFiniteWhenSingular) {
  std::mt19937_64 engine(3);
  std::normal_distribution<double> normal;
  Eigen::MatrixXd jacobian(20, 5);
  for (Eigen::Index i = 0; i < jacobian.size(); ++i) jacobian(i) = normal(engine);
  const StarUncertainty u = fisher_uncertainty(jacobian, 0.1);
  Eigen::Matrix<double, 5, 5> information = jacobian.transpose() * jacobian;
  information(4, 4) += 100.0;
  EXPECT_LT((u.inverse_covariance - information).norm(), 1e-12 * information.norm());
  EXPECT_LT((u.covariance * information - Eigen::Matrix<double, 5, 5>::Identity()).norm(), 1e-9);
  EXPECT_NEAR(u.error(2), std::sqrt(information.inverse()(2, 2)), 1e-9);

  // [Fe/H] unconstrained: a huge but finite variance, PSD covariance.
  jacobian.col(1).setZero();
  const StarUncertainty singular = fisher_uncertainty(jacobian, 0.1);
  EXPECT_TRUE(singular.covariance.allFinite());
  EXPECT_GT(singular.error(1), 1e3 * singular.error(0));
  using Solver = Eigen::SelfAdjointEigenSolver<Eigen::Matrix<double, 5, 5>>;
  EXPECT_GE(Solver(singular.covariance).eigenvalues().minCoeff(), 0.0);

  // A sixth parameter is marginalised: the covariance is the 5 x 5 block of the full inverse.
  Eigen::MatrixXd with_xi(20, 6);
  for (Eigen::Index i = 0; i < with_xi.size(); ++i) with_xi(i) = normal(engine);
  const StarUncertainty marginal = fisher_uncertainty(with_xi, 0.2);
  Eigen::MatrixXd full = with_xi.transpose() * with_xi;
  full(4, 4) += 25.0;
  const Eigen::MatrixXd full_inverse = full.inverse();
  EXPECT_LT((marginal.covariance - full_inverse.topLeftCorner(5, 5)).norm(), 1e-9 * full_inverse.norm());

  float packed[15];
  pack_upper_triangle(u.covariance, packed);
  EXPECT_FLOAT_EQ(packed[0], static_cast<float>(u.covariance(0, 0)));
  EXPECT_FLOAT_EQ(packed[5], static_cast<float>(u.covariance(1, 1)));
  EXPECT_FLOAT_EQ(packed[14], static_cast<float>(u.covariance(4, 4)));
  EXPECT_FLOAT_EQ(packed[6], static_cast<float>(u.covariance(1, 2)));
}

// The screen's float products (float_product.hpp) against a double-precision reference, with row
// and column counts that leave partial panels (16 rows, 6 columns) on both sides.
TEST(FloatProduct, MatchesADoublePrecisionProductIncludingPartialPanels) {
  std::mt19937_64 engine(5);
  std::uniform_real_distribution<float> uniform(0.0f, 2.0f);
  for (const auto& [rows, depth, cols] : {std::tuple{1000, 66, 128}, std::tuple{37, 66, 13},
                                           std::tuple{16, 5, 6}, std::tuple{5, 66, 1}}) {
    Eigen::MatrixXf a(rows, depth), b(depth, cols), c;
    for (Eigen::Index i = 0; i < a.size(); ++i) a(i) = uniform(engine);
    for (Eigen::Index i = 0; i < b.size(); ++i) b(i) = uniform(engine) - 1.0f;
    float_product(a, b, c);
    ASSERT_EQ(c.rows(), rows);
    ASSERT_EQ(c.cols(), cols);
    const Eigen::MatrixXd exact = a.cast<double>() * b.cast<double>();
    const Eigen::MatrixXd scale = a.cast<double>().cwiseAbs() * b.cast<double>().cwiseAbs();
    // float sums of `depth` products: a few units of float rounding of the sum of magnitudes
    const double worst = ((c.cast<double>() - exact).cwiseAbs().array() / scale.array()).maxCoeff();
    EXPECT_LT(worst, 1e-6 * depth) << rows << " x " << depth << " x " << cols << " (" << float_product_kernel_name() << ")";
  }
  Eigen::MatrixXf a(3, 4), b(5, 2), c;
  EXPECT_THROW(float_product(a, b, c), std::logic_error);
}

TEST(StartGrid, AStarMadeFromATemplateFindsIt) {
  Fixture f;
  StartSettings settings;
  settings.gmm_samples = 64;
  settings.rescore = 4;
  const StartGrid grid(f.file.model, f.file.prior->mixture, f.file.wavelength_nm, settings);
  EXPECT_EQ(grid.E_steps(), 61);  // 10^-2 ... 10 in steps of 0.05 dex
  EXPECT_EQ(grid.templates(), 64u * 61u);
  // The 20th sample at the 30th E step, at parallax 2 mas, observed noiselessly.
  const Eigen::MatrixXd samples = sample_gaussian_mixture(f.file.prior->mixture, 64, settings.seed);
  const Eigen::Vector3d theta = samples.row(20).transpose();
  const double E = 0.01 * std::pow(10.0, 30 * 0.05);
  const StarTable table = star_from_model(f.file, theta, 2.0, E, 0, 0.01, 2.0, 0.02);
  const InferenceStar star = f.prepare(table);
  StartScreenWorkspace workspace;
  std::vector<std::vector<StartCandidate>> candidates;
  grid.screen(&star, 1, workspace, candidates);
  ASSERT_EQ(candidates.size(), 1u);
  ASSERT_EQ(candidates[0].size(), 4u);
  const StartCandidate& best = candidates[0][0];
  EXPECT_LT((best.theta - theta).norm(), 1e-9 * theta.norm());
  EXPECT_NEAR(best.E, E, 1e-9 * E);
  EXPECT_NEAR(best.parallax, 2.0, 1e-4);
  for (std::size_t i = 1; i < candidates[0].size(); ++i) EXPECT_LE(candidates[0][i - 1].score, candidates[0][i].score);
}

TEST(StarFit, BothOptimisersRecoverANoiselessStarAndFastIsNoWorse) {
  Fixture f;
  const Eigen::Vector3d theta(5300, -0.25, 3.7);
  const StarTable table = star_from_model(f.file, theta, 1.5, 0.6, 0, 0.003, 1.5, 0.01);
  const InferenceStar star = f.prepare(table);
  InferenceLoss loss(f.file.model, f.prior, 0, 30.0);
  const StarVector truth = loss.parameters_of(theta, 1.5, 0.6, 0);
  StarVector start = truth;
  start(0) += 0.15;
  start(2) -= 0.1;
  start(4) += 0.3;
  FastOptimizerSettings fast;
  const StarFit fit = fit_star_fast(loss, star, start, fast);
  EXPECT_TRUE(fit.converged);
  EXPECT_LE(fit.parts.total, loss.value(star, truth) + 1e-6);
  EXPECT_LT(fit.iterations, 40);
  // The prior and the -2 ln terms move the optimum slightly off the truth at this S/N.
  EXPECT_NEAR(loss.theta(fit.parameters)(0), theta(0), 20.0);
  EXPECT_NEAR(std::exp(fit.parameters(3)), 1.5, 0.02);

  PaperOptimizerSettings paper;
  paper.adam_steps = 3000;
  paper.sgd_steps = 500;
  const StarFit paper_fit = fit_star_paper(loss, star, start, paper);
  EXPECT_LE(fit.parts.total, paper_fit.parts.total + 1e-6);
  EXPECT_LT(paper_fit.parts.total, loss.value(star, start));
}

TEST(StarInference, UnfittableStarsGetAFlagAndNaNEstimatesOnly) {
  Fixture f;
  StarTable table = star_from_model(f.file, {5300, -0.25, 3.7}, 1.5, 0.6, 0, 0.01, 1.5, 0.05);
  table.resize(3);
  // Row 1: every band missing. Row 2: NaN in a band with a variance.
  const auto m = table.bands();
  for (std::size_t b = 0; b < m; ++b) table.flux[1 * m + b] = std::nanf("");
  std::fill(table.flux_cov.begin() + static_cast<std::ptrdiff_t>(packed_triangle_size(m)),
            table.flux_cov.begin() + static_cast<std::ptrdiff_t>(2 * packed_triangle_size(m)), std::nanf(""));
  std::copy(table.flux.begin(), table.flux.begin() + static_cast<std::ptrdiff_t>(m), table.flux.begin() + static_cast<std::ptrdiff_t>(2 * m));
  std::copy(table.flux_cov.begin(), table.flux_cov.begin() + static_cast<std::ptrdiff_t>(packed_triangle_size(m)),
            table.flux_cov.begin() + static_cast<std::ptrdiff_t>(2 * packed_triangle_size(m)));
  table.flux[2 * m + 3] = std::nanf("");
  for (std::size_t i = 1; i < 3; ++i) {
    table.source_id[i] = static_cast<std::int64_t>(i + 1);
    table.parallax[i] = 1.0f;
    table.parallax_error[i] = 0.1f;
  }
  InferenceChunk chunk;
  chunk.reset(3, f.file.model.bands());
  for (std::size_t i = 0; i < 3; ++i) prepare_inference_star(table, i, f.whitening, 0.0, 5, chunk, i);
  EXPECT_EQ(chunk.status[1], FitStatus::no_bands);
  EXPECT_EQ(chunk.status[2], FitStatus::non_finite_flux);

  InferenceSettings settings;
  settings.start.gmm_samples = 32;
  const StartGrid grid(f.file.model, f.file.prior->mixture, f.file.wavelength_nm, settings.start);
  const InferenceContext context{f.file.model, f.prior, grid, f.file.prior->ln_prior_cut, settings};
  InferenceWorker worker(context);
  CatalogRows rows;
  rows.reset(3);
  worker.infer_block(chunk, 0, 3, rows);
  EXPECT_EQ(rows.fit_status[0], static_cast<std::uint8_t>(FitStatus::converged));
  EXPECT_LT(rows.quality_flags[0], quality_not_converged);
  for (int k = 0; k < 5; ++k) EXPECT_TRUE(std::isfinite(rows.stellar_params_est[static_cast<std::size_t>(k)]));
  for (std::size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(rows.quality_flags[i], quality_not_fitted);
    EXPECT_TRUE(std::isnan(rows.stellar_params_est[i * 5]));
    EXPECT_TRUE(std::isnan(rows.chi2_opt[i]));
  }
  EXPECT_EQ(rows.fit_status[1], static_cast<std::uint8_t>(FitStatus::no_bands));
  EXPECT_EQ(rows.fit_status[2], static_cast<std::uint8_t>(FitStatus::non_finite_flux));
}

// inference.use_parallax = false: the spectrum alone gives the parallax, a discrepant measured
// parallax neither pulls the fit nor raises the parallax-excess bit; with it, the fit moves.
TEST(StarInference, WithoutTheMeasuredParallaxTheSpectrumAloneSetsIt) {
  Fixture f;
  // Noiseless flux of a star at parallax 1.5 mas; the "measured" parallax says 2.5 +- 0.05.
  const StarTable table = star_from_model(f.file, {5300, -0.25, 3.7}, 1.5, 0.6, 0, 0.003, 2.5, 0.05);
  InferenceSettings settings;
  settings.start.gmm_samples = 64;
  const StartGrid grid(f.file.model, f.file.prior->mixture, f.file.wavelength_nm, settings.start);
  const InferenceContext context{f.file.model, f.prior, grid, f.file.prior->ln_prior_cut, settings};
  InferenceWorker worker(context);
  float parallax_estimate[2];
  std::uint8_t flags[2];
  for (const bool use_parallax : {false, true}) {
    InferenceChunk chunk;
    chunk.reset(1, f.file.model.bands());
    prepare_inference_star(table, 0, f.whitening, 0.0, 5, chunk, 0, use_parallax);
    ASSERT_EQ(chunk.status[0], FitStatus::converged);
    EXPECT_EQ(chunk.has_parallax[0], use_parallax ? 1 : 0);
    CatalogRows rows;
    rows.reset(1);
    worker.infer_block(chunk, 0, 1, rows);
    parallax_estimate[use_parallax] = rows.stellar_params_est[4];
    flags[use_parallax] = rows.quality_flags[0];
  }
  EXPECT_NEAR(parallax_estimate[0], 1.5, 0.03);
  EXPECT_EQ(flags[0] & quality_parallax_excess, 0);
  EXPECT_GT(parallax_estimate[1], 1.6);  // the 20-sigma measurement pulls it
}

TEST(InferenceSettings, ModelErrorKeysOverrideTheModelFileOnlyWhenSet) {
  CovarianceInflation from_file;
  from_file.level_frac = 0.01;
  from_file.smooth_frac = 0.02;
  from_file.smooth_length_nm = 60;
  const CovarianceInflation kept = with_model_error(from_file, ModelErrorSettings{});
  EXPECT_EQ(kept.level_frac, 0.01);
  EXPECT_EQ(kept.smooth_frac, 0.02);
  EXPECT_EQ(kept.smooth_length_nm, 60);
  ModelErrorSettings run;
  run.level_frac = 0.0;
  run.smooth_frac = 0.03;
  const CovarianceInflation set = with_model_error(from_file, run);
  EXPECT_EQ(set.level_frac, 0.0);
  EXPECT_EQ(set.smooth_frac, 0.03);
  EXPECT_EQ(set.smooth_length_nm, 60);
  EXPECT_EQ(set.diag_frac, from_file.diag_frac);
}

TEST(InferenceRun, PartitionRangesParseOrSayWhy) {
  EXPECT_EQ(parse_partition_range("3:7").begin, 3);
  EXPECT_EQ(*parse_partition_range("3:7").end, 7);
  EXPECT_FALSE(parse_partition_range("5:").end.has_value());
  EXPECT_EQ(*parse_partition_range("4").end, 5);
  for (const char* bad : {"", "a:b", "-1:3", "5:2", "1:2:3"})
    EXPECT_THROW(parse_partition_range(bad), UsageError) << bad;
}

}  // namespace
}  // namespace xps
