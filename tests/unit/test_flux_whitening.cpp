// Covariance inflation and whitening (DESIGN §1.2) against brute force: chi^2 through L equals
// r^T C^-1 r solved directly, every inflation term as written in the design, missing bands.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "xpstellar/bands.hpp"
#include "xpstellar/config.hpp"
#include "xpstellar/flux_whitening.hpp"
#include "xpstellar/mock_survey.hpp"

namespace {

using namespace xps;

constexpr std::size_t m = standard_band_count;

FluxWhitening standard_whitening(const CovarianceInflation& inflation = {}) {
  return FluxWhitening(standard_band_names(), standard_wavelengths_nm(), inflation);
}

// The dense M x M form of a stored L, in double.
Eigen::MatrixXd dense_l(const std::vector<float>& l) {
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> dense(m, m);
  unpack_whitening(l.data(), m, dense.data());
  return dense.cast<double>();
}

StarTable mock_table(std::int64_t stars) {
  ParameterSet parameters;
  mock::declare_mock_parameters(parameters);
  const mock::TruthModel truth(parameters);
  const mock::ObservationModel observation(parameters, truth);
  std::vector<mock::TruthStar> drawn;
  for (std::int64_t i = 0; i < stars; ++i) drawn.push_back(truth.draw(i));
  return mock::make_star_table(drawn, observation, truth, 1, 0);
}

TEST(FluxWhitening, ChiSquareThroughLEqualsTheDirectSolve) {
  const StarTable table = mock_table(200);
  const FluxWhitening whitening = standard_whitening();
  std::mt19937 random(3);
  std::normal_distribution<double> normal;
  std::vector<float> l(whitening_size(m)), flux_for_fit(m);
  int checked = 0;
  for (std::size_t row = 0; row < table.rows(); ++row) {
    const float* flux = &table.flux[row * m];
    const float* packed = &table.flux_cov[row * packed_triangle_size(m)];
    ASSERT_EQ(whitening.whiten(flux, packed, l.data(), flux_for_fit.data()), WhiteningStatus::ok);
    const std::vector<double> covariance = whitening.inflated_covariance(flux, packed);
    std::vector<std::size_t> present;
    for (std::size_t k = 0; k < m; ++k)
      if (!std::isnan(covariance[k * m + k])) present.push_back(k);
    const auto n = static_cast<Eigen::Index>(present.size());
    Eigen::MatrixXd c(n, n);
    Eigen::VectorXd r(n);
    Eigen::VectorXd r_full = Eigen::VectorXd::Zero(m);
    for (Eigen::Index a = 0; a < n; ++a) {
      for (Eigen::Index b = 0; b < n; ++b) c(a, b) = covariance[present[a] * m + present[b]];
      r[a] = normal(random) * std::sqrt(c(a, a));
      r_full[static_cast<Eigen::Index>(present[a])] = r[a];
    }
    const double direct = r.dot(c.ldlt().solve(r));
    const Eigen::MatrixXd lf = dense_l(l);
    const double whitened = (lf * r_full).squaredNorm();
    EXPECT_NEAR(whitened, direct, 2e-4 * direct) << "row " << row;
    for (std::size_t k = 0; k < m; ++k) {
      const bool missing = std::isnan(covariance[k * m + k]);
      EXPECT_EQ(flux_for_fit[k], missing ? 0.0f : flux[k]);
      if (missing) {  // the row and the column of a missing band are zero
        EXPECT_EQ(lf.col(Eigen::Index(k)).cwiseAbs().maxCoeff(), 0.0);
        EXPECT_EQ(lf.row(Eigen::Index(k)).cwiseAbs().maxCoeff(), 0.0);
      }
    }
    // The padding of every stored row is zero: packing the dense form gives back the same floats.
    std::vector<float> dense(m * m), repacked(whitening_size(m), -1.0f);
    unpack_whitening(l.data(), m, dense.data());
    ASSERT_TRUE(pack_whitening(dense.data(), m, repacked.data()));
    EXPECT_EQ(repacked, l) << "row " << row;
    ++checked;
  }
  EXPECT_EQ(checked, 200);
}

TEST(FluxWhitening, InflationTermsAreTheDesignsFormula) {
  CovarianceInflation inflation;
  inflation.diag_frac = 0.01;
  inflation.joint_frac = 0.02;
  inflation.bp_frac = 0.03;
  inflation.rp_frac = 0.04;
  inflation.unwise_frac = 0.1;
  const FluxWhitening whitening = standard_whitening(inflation);
  std::vector<float> flux(m), packed(packed_triangle_size(m), 0.0f);
  for (std::size_t k = 0; k < m; ++k) {
    flux[k] = 100.0f + static_cast<float>(k);
    packed[packed_triangle_index(k, k, m)] = 1.0f;
  }
  packed[packed_triangle_index(2, 5, m)] = 0.25f;
  const auto c = whitening.inflated_covariance(flux.data(), packed.data());
  const auto wavelengths = standard_wavelengths_nm();
  auto bp_weight = [&](std::size_t k) { return std::clamp((643.0 - wavelengths[k]) / 8.0, 0.0, 1.0); };
  for (std::size_t i : {0ul, 2ul, 24ul, 25ul, 60ul})
    for (std::size_t j : {0ul, 5ul, 25ul, 26ul, 60ul}) {
      const double fi = flux[i], fj = flux[j];
      double expected = (i == j ? 1.0 : 0.0) + (i == 2 && j == 5 ? 0.25 : 0.0);
      expected += (i == j ? std::pow(0.01 * fi, 2) : 0.0) + 0.02 * 0.02 * fi * fj +
                  0.03 * 0.03 * bp_weight(i) * bp_weight(j) * fi * fj +
                  0.04 * 0.04 * (1 - bp_weight(i)) * (1 - bp_weight(j)) * fi * fj;
      EXPECT_NEAR(c[i * m + j], expected, 1e-9 * std::abs(expected)) << i << "," << j;
    }
  // 639 nm (sample 24 is 632 nm, 25 is 642 nm) sits inside the merge ramp.
  EXPECT_GT(bp_weight(25), 0.0);
  EXPECT_LT(bp_weight(25), 1.0);
  EXPECT_EQ(c[band_j * m + band_h], 0.0);
  EXPECT_EQ(c[0 * m + band_j], 0.0);
  EXPECT_NEAR(c[band_j * m + band_j], 1.0, 1e-12);
  EXPECT_NEAR(c[band_w1 * m + band_w1], 1.0 + std::pow(0.1 * flux[band_w1], 2), 1e-6);
}

// The model-error terms of inference: a level e^2 f_i f_j over every present band (NIR included,
// whose other cross terms are zero) and a smooth XP term g^2 f_i f_j exp(-(dlambda / l)^2 / 2).
TEST(FluxWhitening, ModelErrorTermsAddTheirFormulaToThePapersCovariance) {
  CovarianceInflation paper;
  CovarianceInflation with_error = paper;
  with_error.level_frac = 0.03;
  with_error.smooth_frac = 0.02;
  with_error.smooth_length_nm = 80.0;
  std::vector<float> flux(m), packed(packed_triangle_size(m), 0.0f);
  for (std::size_t k = 0; k < m; ++k) {
    flux[k] = 50.0f + 3.0f * static_cast<float>(k);
    packed[packed_triangle_index(k, k, m)] = 2.0f;
  }
  flux[band_h] = std::nanf("");  // a missing band gets no term
  packed[packed_triangle_index(band_h, band_h, m)] = std::nanf("");
  const auto base = standard_whitening(paper).inflated_covariance(flux.data(), packed.data());
  const auto c = standard_whitening(with_error).inflated_covariance(flux.data(), packed.data());
  const auto wavelengths = standard_wavelengths_nm();
  for (std::size_t i : {0ul, 10ul, 30ul, 60ul, band_j, band_w2})
    for (std::size_t j : {0ul, 11ul, 45ul, 60ul, band_ks, band_w1}) {
      const double fi = flux[i], fj = flux[j];
      const bool both_xp = i < 61 && j < 61;
      const double separation = (wavelengths[i] - wavelengths[j]) / 80.0;
      const double expected = 0.03 * 0.03 * fi * fj +
                              (both_xp ? 0.02 * 0.02 * fi * fj * std::exp(-0.5 * separation * separation) : 0.0);
      EXPECT_NEAR(c[i * m + j] - base[i * m + j], expected, 1e-9 * std::abs(c[i * m + j])) << i << "," << j;
    }
  EXPECT_TRUE(std::isnan(c[band_h * m + band_h]));
  EXPECT_TRUE(std::isnan(c[0 * m + band_h]));
  // Still a covariance: the whitening of the larger one succeeds.
  std::vector<float> whitening(whitening_size(m)), flux_for_fit(m);
  EXPECT_EQ(standard_whitening(with_error).whiten(flux.data(), packed.data(), whitening.data(),
                                                  flux_for_fit.data()),
            WhiteningStatus::ok);
}

TEST(FluxWhitening, BadStarsGetAReasonNotACrash) {
  const FluxWhitening whitening = standard_whitening();
  std::vector<float> flux(m, 100.0f), packed(packed_triangle_size(m), 0.0f), l(whitening_size(m)), fit(m);
  for (std::size_t k = 0; k < m; ++k) packed[packed_triangle_index(k, k, m)] = 4.0f;
  EXPECT_EQ(whitening.whiten(flux.data(), packed.data(), l.data(), fit.data()), WhiteningStatus::ok);

  auto bad_flux = flux;
  bad_flux[10] = std::nanf("");
  EXPECT_EQ(whitening.whiten(bad_flux.data(), packed.data(), l.data(), fit.data()), WhiteningStatus::non_finite_flux);
  EXPECT_EQ(l[0], 0.0f);

  auto zero_variance = packed;
  zero_variance[packed_triangle_index(3, 3, m)] = 0.0f;
  EXPECT_EQ(whitening.whiten(flux.data(), zero_variance.data(), l.data(), fit.data()), WhiteningStatus::non_positive_variance);

  auto indefinite = packed;
  indefinite[packed_triangle_index(4, 5, m)] = 1e6f;  // |rho| >> 1
  EXPECT_EQ(whitening.whiten(flux.data(), indefinite.data(), l.data(), fit.data()), WhiteningStatus::not_positive_semidefinite);

  std::vector<float> missing_flux(m, std::nanf("")), missing_cov(packed_triangle_size(m), std::nanf(""));
  EXPECT_EQ(whitening.whiten(missing_flux.data(), missing_cov.data(), l.data(), fit.data()), WhiteningStatus::no_bands);
}

TEST(FluxWhitening, EigenvaluesAreClippedAtTheFloor) {
  CovarianceInflation inflation;
  inflation.diag_frac = inflation.joint_frac = inflation.bp_frac = inflation.rp_frac = 0.0;
  inflation.unwise_frac = 0.0;
  inflation.eigen_floor = 0.5;
  const FluxWhitening whitening = standard_whitening(inflation);
  std::vector<float> flux(m, 1.0f), packed(packed_triangle_size(m), 0.0f), l(whitening_size(m)), fit(m);
  // Variance 0.01 everywhere: every eigenvalue lies below the floor, so L = U / sqrt(0.5).
  for (std::size_t k = 0; k < m; ++k) packed[packed_triangle_index(k, k, m)] = 0.01f;
  ASSERT_EQ(whitening.whiten(flux.data(), packed.data(), l.data(), fit.data()), WhiteningStatus::ok);
  const Eigen::MatrixXd lf = dense_l(l);
  const Eigen::MatrixXd expected = Eigen::MatrixXd::Identity(m, m) * 2.0;  // L^T L = C^-1 clipped
  EXPECT_LT(((lf.transpose() * lf) - expected).cwiseAbs().maxCoeff(), 1e-5);
}

// Real covariances with the floor among their eigenvalues: the stored (triangular) L has the
// L^T L of the clipped eigen-whitening, U max(D, floor)^-1 U^T, from an independent solver.
TEST(FluxWhitening, ClippedWhiteningIsTriangularWithTheClippedInverse) {
  const StarTable table = mock_table(30);
  std::vector<float> l(whitening_size(m)), fit(m);
  int clipped_stars = 0;
  for (std::size_t row = 0; row < table.rows(); ++row) {
    const float* flux = &table.flux[row * m];
    const float* packed = &table.flux_cov[row * packed_triangle_size(m)];
    const std::vector<double> full = standard_whitening().inflated_covariance(flux, packed);
    std::vector<Eigen::Index> present;
    for (std::size_t k = 0; k < m; ++k)
      if (!std::isnan(full[k * m + k])) present.push_back(Eigen::Index(k));
    const auto n = Eigen::Index(present.size());
    Eigen::MatrixXd c(n, n);
    for (Eigen::Index a = 0; a < n; ++a)
      for (Eigen::Index b = 0; b < n; ++b) c(a, b) = full[std::size_t(present[std::size_t(a)]) * m + std::size_t(present[std::size_t(b)])];
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(c);
    CovarianceInflation inflation;
    inflation.eigen_floor = eigen.eigenvalues()[n / 4];  // a quarter of the eigenvalues clipped
    ASSERT_EQ(standard_whitening(inflation).whiten(flux, packed, l.data(), fit.data()), WhiteningStatus::ok);
    const Eigen::VectorXd clipped_inverse = eigen.eigenvalues().cwiseMax(inflation.eigen_floor).cwiseInverse();
    const Eigen::MatrixXd expected = eigen.eigenvectors() * clipped_inverse.asDiagonal() * eigen.eigenvectors().transpose();
    const Eigen::MatrixXd lf = dense_l(l);
    Eigen::MatrixXd lf_present(n, n);
    for (Eigen::Index a = 0; a < n; ++a)
      for (Eigen::Index b = 0; b < n; ++b) lf_present(a, b) = lf(present[std::size_t(a)], present[std::size_t(b)]);
    const Eigen::MatrixXd product = lf_present.transpose() * lf_present;
    // float L: relative to the largest entry of the clipped inverse
    EXPECT_LT((product - expected).cwiseAbs().maxCoeff(), 1e-5 * expected.cwiseAbs().maxCoeff()) << "row " << row;
    EXPECT_EQ(lf.triangularView<Eigen::StrictlyUpper>().toDenseMatrix().cwiseAbs().maxCoeff(), 0.0);
    ++clipped_stars;
  }
  EXPECT_EQ(clipped_stars, 30);
}

TEST(FluxWhitening, PackedLRoundTripsAndWhitensColumnsLikeTheDenseProduct) {
  std::mt19937 random(4);
  std::normal_distribution<double> normal;
  for (std::size_t n : {1ul, 3ul, 4ul, 5ul, 9ul, 66ul}) {
    std::vector<float> dense(n * n, 0.0f), stored(whitening_size(n)), back(n * n);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j <= i; ++j) dense[i * n + j] = static_cast<float>(normal(random));
    ASSERT_TRUE(pack_whitening(dense.data(), n, stored.data()));
    unpack_whitening(stored.data(), n, back.data());
    EXPECT_EQ(back, dense) << n;
    const Eigen::MatrixXd a = Eigen::MatrixXd::Random(Eigen::Index(n), 6);
    // written into the middle rows of a larger matrix, as the coordinated phases do: the rows
    // around it stay untouched
    Eigen::MatrixXd stacked = Eigen::MatrixXd::Constant(Eigen::Index(n) + 5, 6, -7.0);
    whiten_columns(stored.data(), a, stacked.middleRows(2, Eigen::Index(n)));
    const Eigen::MatrixXd out = stacked.middleRows(2, Eigen::Index(n));
    const Eigen::MatrixXd expected =
        Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
            dense.data(), Eigen::Index(n), Eigen::Index(n)).cast<double>() * a;
    EXPECT_LT((out - expected).cwiseAbs().maxCoeff(), 1e-12 * (1.0 + expected.cwiseAbs().maxCoeff())) << n;
    EXPECT_TRUE((stacked.topRows(2).array() == -7.0).all() && (stacked.bottomRows(3).array() == -7.0).all()) << n;
    if (n > 1) {
      dense[1] = 1.0f;  // above the diagonal: refused, nothing written
      std::vector<float> untouched(whitening_size(n), 7.0f);
      EXPECT_FALSE(pack_whitening(dense.data(), n, untouched.data()));
      EXPECT_EQ(untouched, std::vector<float>(whitening_size(n), 7.0f));
    }
  }
  EXPECT_EQ(whitening_size(66), 2312u);
  EXPECT_EQ(whitening_row_offset(5) + whitening_row_length(5), whitening_row_offset(6));
}

}  // namespace

namespace {

TEST(FluxWhitening, WhitenedChiSquareAndItsGradient) {
  const StarTable table = mock_table(20);
  const FluxWhitening whitening = standard_whitening();
  std::vector<float> l(whitening_size(m)), fit(m);
  for (std::size_t row = 0; row < table.rows(); ++row) {
    ASSERT_EQ(whitening.whiten(&table.flux[row * m], &table.flux_cov[row * packed_triangle_size(m)], l.data(), fit.data()),
              WhiteningStatus::ok);
    std::vector<double> predicted(m), gradient(m);
    for (std::size_t k = 0; k < m; ++k) predicted[k] = table.truth.flux[row * m + k];
    const double chi2 = whitened_chi_square(l.data(), fit.data(), predicted.data(), int(m), gradient.data());
    const Eigen::MatrixXd lf = dense_l(l);
    Eigen::VectorXd residual(m);
    for (std::size_t k = 0; k < m; ++k) residual[Eigen::Index(k)] = predicted[k] - fit[k];
    EXPECT_NEAR(chi2, (lf * residual).squaredNorm(), 1e-9 * chi2);
    for (std::size_t k : {0ul, 30ul, 60ul, std::size_t(band_j), std::size_t(band_w2)}) {
      const double step = 1e-6 * std::abs(predicted[k]);
      auto shifted = predicted;
      shifted[k] += step;
      const double up = whitened_chi_square(l.data(), fit.data(), shifted.data(), int(m), nullptr);
      shifted[k] -= 2 * step;
      const double down = whitened_chi_square(l.data(), fit.data(), shifted.data(), int(m), nullptr);
      EXPECT_NEAR(gradient[k], (up - down) / (2 * step), 1e-5 * std::abs(gradient[k]) + 1e-9) << "band " << k;
    }
  }
}

// Long-double reference of the kernel and a bound on the rounding of any summation order in
// double: each whitened component z_i = sum_k L_ik r_k may differ by (n + 2) eps sum_k |L_ik r_k|.
struct ChiSquareReference {
  double chi_square = 0, chi_square_bound = 0;
  std::vector<double> gradient, gradient_bound;
};

ChiSquareReference chi_square_reference(const float* l, const double* residual, int n) {
  constexpr double eps = 0x1p-52;
  ChiSquareReference reference;
  const auto size = static_cast<std::size_t>(n);
  std::vector<long double> z(size, 0.0L);
  std::vector<double> z_bound(size, 0.0);
  long double chi_square = 0.0L;
  for (int i = 0; i < n; ++i) {
    double magnitude = 0;
    for (int k = 0; k < n; ++k) {
      z[std::size_t(i)] += static_cast<long double>(l[i * n + k]) * residual[k];
      magnitude += std::abs(static_cast<double>(l[i * n + k]) * residual[k]);
    }
    z_bound[std::size_t(i)] = (n + 2) * eps * magnitude;
    chi_square += z[std::size_t(i)] * z[std::size_t(i)];
    reference.chi_square_bound +=
        2 * std::abs(static_cast<double>(z[std::size_t(i)])) * z_bound[std::size_t(i)] +
        z_bound[std::size_t(i)] * z_bound[std::size_t(i)];
  }
  reference.chi_square = static_cast<double>(chi_square);
  reference.chi_square_bound += (n + 2) * eps * reference.chi_square;
  for (int k = 0; k < n; ++k) {
    long double g = 0.0L;
    double bound = 0;
    for (int i = 0; i < n; ++i) {
      const double lik = std::abs(static_cast<double>(l[i * n + k]));
      g += 2.0L * static_cast<long double>(l[i * n + k]) * z[std::size_t(i)];
      bound += 2 * lik *
               (z_bound[std::size_t(i)] +
                (n + 2) * eps * std::abs(static_cast<double>(z[std::size_t(i)])));
    }
    reference.gradient.push_back(static_cast<double>(g));
    reference.gradient_bound.push_back(bound);
  }
  return reference;
}

// `dense_l` is the n x n lower-triangular L the reference uses, `stored_l` the same L packed as
// the kernel reads it.
void expect_kernel_matches_reference(const float* dense_l, const float* stored_l,
                                     const float* observed, const double* predicted, int n,
                                     const std::string& what) {
  const auto size = static_cast<std::size_t>(n);
  std::vector<double> residual(size), gradient(size, -1.0);
  for (int k = 0; k < n; ++k)
    residual[std::size_t(k)] = predicted[k] - static_cast<double>(observed[k]);
  const ChiSquareReference reference = chi_square_reference(dense_l, residual.data(), n);
  EXPECT_NEAR(whitened_chi_square(stored_l, observed, predicted, n, gradient.data()),
              reference.chi_square, reference.chi_square_bound)
      << what;
  EXPECT_EQ(whitened_chi_square(stored_l, observed, predicted, n, nullptr),
            whitened_chi_square(stored_l, observed, predicted, n, gradient.data()))
      << what;
  for (int k = 0; k < n; ++k)
    ASSERT_NEAR(gradient[std::size_t(k)], reference.gradient[std::size_t(k)],
                reference.gradient_bound[std::size_t(k)])
        << what << " band " << k;
}

// The vector kernels (AVX2 + FMA where the CPU has it, else SSE2; XPS_KERNELS=portable forces
// the latter) against the reference for every tail of the vector widths and beyond 66 bands.
TEST(FluxWhitening, ChiSquareKernelIsWithinRoundingOfTheReferenceForAnyBandCount) {
  std::mt19937 random(5);
  std::normal_distribution<double> normal;
  for (int n :
       {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 19, 31, 32, 33, 61, 66, 67, 130, 256}) {
    const auto size = static_cast<std::size_t>(n);
    std::vector<float> l(size * size, 0.0f), stored_l(whitening_size(size)), observed(size);
    std::vector<double> predicted(size);
    // Lower-triangular entries over six decades, as in a whitening with clipped eigenvalues.
    for (std::size_t i = 0; i < size; ++i)
      for (std::size_t k = 0; k <= i; ++k)
        l[i * size + k] = static_cast<float>(normal(random) * std::pow(10.0, 3 * normal(random)));
    ASSERT_TRUE(pack_whitening(l.data(), size, stored_l.data()));
    for (int k = 0; k < n; ++k) {
      observed[std::size_t(k)] = static_cast<float>(100 + 10 * normal(random));
      predicted[std::size_t(k)] = observed[std::size_t(k)] * (1 + 0.01 * normal(random));
    }
    expect_kernel_matches_reference(l.data(), stored_l.data(), observed.data(), predicted.data(),
                                    n, "bands " + std::to_string(n));
  }
  std::vector<float> l(whitening_size(257)), observed(257);
  std::vector<double> predicted(257);
  EXPECT_THROW(whitened_chi_square(l.data(), observed.data(), predicted.data(), 257, nullptr),
               std::logic_error);
}

// Bright stars: the inflation terms (0.5 % of the flux, fully correlated) dominate the
// covariance, whose small eigenvalues then give L large entries and the products L r
// cancellation; the kernel still stays within double rounding of the reference.
TEST(FluxWhitening, ChiSquareKernelKeepsDoublePrecisionForBrightStars) {
  StarTable table = mock_table(40);
  const FluxWhitening whitening = standard_whitening();
  std::mt19937 random(9);
  std::normal_distribution<double> normal;
  std::vector<float> l(whitening_size(m)), dense_l(m * m), fit(m);
  for (std::size_t row = 0; row < table.rows(); ++row) {
    // 10^4 times brighter: flux x 1e4, Poisson-like variances x 1e4, relative errors / 100.
    for (std::size_t k = 0; k < m; ++k) table.flux[row * m + k] *= 1e4f;
    for (std::size_t k = 0; k < packed_triangle_size(m); ++k)
      table.flux_cov[row * packed_triangle_size(m) + k] *= 1e4f;
    ASSERT_EQ(whitening.whiten(&table.flux[row * m], &table.flux_cov[row * packed_triangle_size(m)],
                               l.data(), fit.data()),
              WhiteningStatus::ok);
    std::vector<double> predicted(m);
    for (std::size_t k = 0; k < m; ++k) predicted[k] = fit[k] * (1 + 0.003 * normal(random));
    unpack_whitening(l.data(), m, dense_l.data());
    expect_kernel_matches_reference(dense_l.data(), l.data(), fit.data(), predicted.data(), int(m),
                                    "star " + std::to_string(row));
  }
}

}  // namespace
