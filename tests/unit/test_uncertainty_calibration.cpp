// The calibration xps_infer applies to each star (src/infer/uncertainty_calibration.cpp): the cell
// lookup against numpy.digitize's convention, offsets and floors, and the parallax term whose
// weight (the spectrum's share of the parallax information) is checked against the flux-only and
// joint Fisher matrices built explicitly.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "xpstellar/fisher.hpp"
#include "xpstellar/uncertainty_calibration.hpp"

namespace xps {
namespace {

using Matrix5 = Eigen::Matrix<double, 5, 5>;

UncertaintyCalibration two_cell_calibration() {
  UncertaintyCalibration c;
  c.teff_edges_kK = {5.0};  // cells: Teff < 5 kK, Teff >= 5 kK; no log g edges
  c.offset = {0.010, -0.020, 0.030, 0.004,  //
              -0.050, 0.060, -0.070, 0.008};
  c.floor = {0.040, 0.030, 0.050, 0.010,  //
             0.080, 0.000, 0.020, 0.005};
  c.parallax_floor_frac = {0.10, 0.25};
  c.stars = {500, 800};
  return c;
}

// A flux-only Fisher matrix with correlations, and the parallax's place in it.
Matrix5 random_information(std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  Eigen::Matrix<double, 8, 5> whitened_jacobian;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 5; ++j) whitened_jacobian(i, j) = normal(rng) * (j == 4 ? 20.0 : 10.0);
  return whitened_jacobian.transpose() * whitened_jacobian;
}

TEST(UncertaintyCalibration, CellsFollowNumpyDigitize) {
  UncertaintyCalibration c;
  c.teff_edges_kK = {4.0, 5.0};
  c.logg_edges = {3.0};
  ASSERT_EQ(c.cells(), 6u);
  EXPECT_EQ(c.cell_of(3.9, 2.0), 0u);
  EXPECT_EQ(c.cell_of(3.9, 3.0), 1u);  // a value on an edge belongs to the cell above it
  EXPECT_EQ(c.cell_of(4.0, 2.9), 2u);
  EXPECT_EQ(c.cell_of(4.99, 4.5), 3u);
  EXPECT_EQ(c.cell_of(5.0, -1.0), 4u);
  EXPECT_EQ(c.cell_of(9.0, 9.0), 5u);
}

TEST(UncertaintyCalibration, OffsetsAndFloorsOfTheStarsCell) {
  const UncertaintyCalibration c = two_cell_calibration();
  ASSERT_EQ(calibration_problem(c), "");
  const Matrix5 information = random_information(3);
  const Matrix5 fisher_covariance = information.inverse();
  for (double teff : {4.5, 6.0}) {
    const std::size_t cell = teff < 5.0 ? 0 : 1;
    double estimate[5] = {teff, -0.2, 4.4, 0.3, 1.7};
    Matrix5 covariance = fisher_covariance;
    calibrate_star(c, estimate, covariance, 0.0);  // no parallax measurement: the spectrum's share is 1
    const double original[5] = {teff, -0.2, 4.4, 0.3, 1.7};
    for (int k = 0; k < 4; ++k) {
      EXPECT_DOUBLE_EQ(estimate[k], original[k] - c.offset[cell * 4 + k]) << k;
      EXPECT_NEAR(covariance(k, k), fisher_covariance(k, k) + c.floor[cell * 4 + k] * c.floor[cell * 4 + k],
                  1e-15 * fisher_covariance(k, k));
    }
    EXPECT_EQ(estimate[4], 1.7) << "the parallax gets no offset";
    const double parallax_term = c.parallax_floor_frac[cell] * 1.7;
    EXPECT_NEAR(covariance(4, 4), fisher_covariance(4, 4) + parallax_term * parallax_term, 1e-14);
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < 5; ++j)
        if (i != j) {
          EXPECT_EQ(covariance(i, j), fisher_covariance(i, j)) << i << "," << j;
        }
  }
}

TEST(UncertaintyCalibration, ParallaxTermIsWeightedByTheSpectrumsShare) {
  const UncertaintyCalibration c = two_cell_calibration();
  const Matrix5 flux_information = random_information(11);
  const double spectrophotometric_variance = flux_information.inverse()(4, 4);
  for (double measured_over_spectro : {0.3, 1.0, 4.0}) {
    const double parallax_error = measured_over_spectro * std::sqrt(spectrophotometric_variance);
    Matrix5 joint_information = flux_information;
    joint_information(4, 4) += 1.0 / (parallax_error * parallax_error);
    const Matrix5 covariance_before = joint_information.inverse();
    // The joint estimate weighs the spectrophotometric parallax by its share of the information.
    const double share = (1.0 / spectrophotometric_variance) /
                         (1.0 / spectrophotometric_variance + 1.0 / (parallax_error * parallax_error));
    double estimate[5] = {5.5, 0.0, 4.0, 0.1, 2.0};
    Matrix5 covariance = covariance_before;
    calibrate_star(c, estimate, covariance, parallax_error);
    const double added = share * c.parallax_floor_frac[1] * 2.0;
    EXPECT_NEAR(covariance(4, 4), covariance_before(4, 4) + added * added,
                1e-9 * covariance_before(4, 4))
        << "parallax error / spectrophotometric error " << measured_over_spectro;
  }
  // A parallax the spectrum adds nothing to: no term.
  double estimate[5] = {5.5, 0.0, 4.0, 0.1, 2.0};
  Matrix5 covariance = Matrix5::Identity() * 0.04;
  calibrate_star(c, estimate, covariance, 0.2);
  EXPECT_DOUBLE_EQ(covariance(4, 4), 0.04);
}

TEST(UncertaintyCalibration, InverseOfTheCalibratedCovariance) {
  const UncertaintyCalibration c = two_cell_calibration();
  Matrix5 covariance = random_information(5).inverse();
  double estimate[5] = {4.2, 0.1, 2.5, 0.5, 0.8};
  calibrate_star(c, estimate, covariance, 0.05);
  const StarUncertainty u = uncertainty_of_covariance(covariance);
  EXPECT_LT((u.covariance * u.inverse_covariance - Matrix5::Identity()).cwiseAbs().maxCoeff(), 1e-8);
  for (int k = 0; k < 5; ++k) EXPECT_DOUBLE_EQ(u.error(k), std::sqrt(covariance(k, k)));
}

TEST(UncertaintyCalibration, ProblemsAreNamed) {
  UncertaintyCalibration c = two_cell_calibration();
  c.stars.push_back(1);
  EXPECT_NE(calibration_problem(c).find("stars is not [2 cells"), std::string::npos);
  c = two_cell_calibration();
  c.floor[1] = -0.01;
  EXPECT_NE(calibration_problem(c).find("floor must be finite and non-negative"), std::string::npos);
  c = two_cell_calibration();
  c.teff_edges_kK = {5.0, 5.0};
  EXPECT_NE(calibration_problem(c).find("teff_edges_kK must be finite and increasing"), std::string::npos);
}

}  // namespace
}  // namespace xps
