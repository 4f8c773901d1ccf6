// The calibration xps_infer applies to each star (src/infer/uncertainty_calibration.cpp): the cell
// lookup against numpy.digitize's convention, offsets and floors, and the parallax recombined from
// the calibrated spectrophotometric parallax and the measurement, checked against the product of
// the two Gaussians built explicitly in 5-d information form.
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
  c.parallax_offset_frac = {0.02, -0.05};
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
    calibrate_star(c, estimate, covariance, MeasuredParallax{});  // no measurement: the spectrum's alone
    const double original[5] = {teff, -0.2, 4.4, 0.3, 1.7};
    for (int k = 0; k < 4; ++k) {
      EXPECT_DOUBLE_EQ(estimate[k], original[k] - c.offset[cell * 4 + k]) << k;
      EXPECT_NEAR(covariance(k, k), fisher_covariance(k, k) + c.floor[cell * 4 + k] * c.floor[cell * 4 + k],
                  1e-15 * fisher_covariance(k, k));
    }
    EXPECT_NEAR(estimate[4], 1.7 * (1.0 - c.parallax_offset_frac[cell]), 1e-15);
    const double parallax_term = c.parallax_floor_frac[cell] * 1.7;
    const double variance = fisher_covariance(4, 4) + parallax_term * parallax_term;
    EXPECT_NEAR(covariance(4, 4), variance, 1e-14);
    // Off the diagonal: the labels' block untouched, the parallax's correlations kept.
    for (int i = 0; i < 4; ++i) {
      for (int j = 0; j < 4; ++j)
        if (i != j) {
          EXPECT_EQ(covariance(i, j), fisher_covariance(i, j)) << i << "," << j;
        }
      const double correlation_before =
          fisher_covariance(i, 4) / std::sqrt(fisher_covariance(i, i) * fisher_covariance(4, 4));
      EXPECT_NEAR(covariance(i, 4) / std::sqrt((covariance(i, i) - c.floor[cell * 4 + i] * c.floor[cell * 4 + i]) *
                                               covariance(4, 4)),
                  correlation_before, 1e-12);
      EXPECT_NEAR(covariance(i, 4), covariance(4, i), 1e-12 * covariance(4, 4));
    }
  }
}

// The metallicity curve: linear between its knots in the fit's [Fe/H], its end values beyond them,
// added to the cell's offset for every label; the floors and the parallax do not see it.
TEST(UncertaintyCalibration, MetallicityCurveAddsToTheCellOffsets) {
  UncertaintyCalibration c = two_cell_calibration();
  c.feh_knots = {-1.0, -0.5, 0.25};
  c.feh_offset = {0.08, 0.40, -0.10, 0.002,  //
                  0.00, 0.05, 0.02, -0.001,  //
                  -0.02, 0.10, 0.06, 0.003};
  ASSERT_EQ(calibration_problem(c), "");
  const Matrix5 fisher_covariance = random_information(5).inverse();
  struct Case {
    double feh;
    double weight[3];  // of the three knots' offsets
  };
  const Case cases[] = {{-2.0, {1, 0, 0}},    {-1.0, {1, 0, 0}},    {-0.8, {0.6, 0.4, 0}},
                        {-0.5, {0, 1, 0}},    {0.1, {0, 0.2, 0.8}}, {0.25, {0, 0, 1}},
                        {0.9, {0, 0, 1}}};
  for (const Case& test : cases) {
    double estimate[5] = {6.0, test.feh, 4.4, 0.3, 1.7};
    Matrix5 covariance = fisher_covariance;
    calibrate_star(c, estimate, covariance, MeasuredParallax{});
    UncertaintyCalibration without_curve = two_cell_calibration();
    double plain[5] = {6.0, test.feh, 4.4, 0.3, 1.7};
    Matrix5 plain_covariance = fisher_covariance;
    calibrate_star(without_curve, plain, plain_covariance, MeasuredParallax{});
    for (int k = 0; k < 4; ++k) {
      double curve = 0;
      for (int knot = 0; knot < 3; ++knot) curve += test.weight[knot] * c.feh_offset[knot * 4 + k];
      EXPECT_NEAR(estimate[k], plain[k] - curve, 1e-14) << "[Fe/H] " << test.feh << ", label " << k;
    }
    EXPECT_EQ(estimate[4], plain[4]);
    EXPECT_EQ(covariance, plain_covariance);
  }
}

// The fit's parallax combines the spectrophotometric parallax (Gaussian, covariance C_sp from the
// flux Fisher matrix) with the measurement. Calibrating must give what combining the calibrated
// spectrophotometric parallax with the measurement gives, done here in full 5-d information form.
TEST(UncertaintyCalibration, ParallaxIsRecombinedFromTheCalibratedSpectrophotometricOne) {
  UncertaintyCalibration c = two_cell_calibration();
  const Matrix5 flux_information = random_information(11);
  const Matrix5 spectro_covariance = flux_information.inverse();
  const double spectro_sd = std::sqrt(spectro_covariance(4, 4));
  Eigen::Matrix<double, 5, 1> spectro_mean;
  spectro_mean << 5.5, 0.0, 4.0, 0.1, 2.0;
  const Eigen::Matrix<double, 5, 1> along_parallax = Eigen::Matrix<double, 5, 1>::Unit(4);
  for (double offset_frac : {0.0, -0.06, 0.2}) {
    for (double floor_frac : {0.0, 0.15}) {
      for (double measured_over_spectro : {0.3, 1.0, 4.0}) {
        c.parallax_offset_frac = {0.0, offset_frac};
        c.parallax_floor_frac = {0.0, floor_frac};
        c.offset.assign(8, 0.0);
        c.floor.assign(8, 0.0);
        const MeasuredParallax measured{2.0 + 0.7 * spectro_sd, measured_over_spectro * spectro_sd};
        const double measured_information = 1.0 / (measured.error * measured.error);
        // The fit: spectrum and measurement combined.
        Matrix5 joint_information = flux_information;
        joint_information(4, 4) += measured_information;
        Matrix5 covariance = joint_information.inverse();
        const Eigen::Matrix<double, 5, 1> joint_mean =
            covariance * (flux_information * spectro_mean + along_parallax * measured.value * measured_information);
        double estimate[5];
        for (int k = 0; k < 5; ++k) estimate[k] = joint_mean(k);
        ParallaxEstimate spectro;
        const ParallaxEstimate uncalibrated = spectrophotometric_parallax(joint_mean(4), covariance(4, 4), measured);
        calibrate_star(c, estimate, covariance, measured, &spectro);
        // The spectrum's parallax taken back out of the fit is the flux-only Gaussian's marginal.
        EXPECT_NEAR(uncalibrated.value, spectro_mean(4), 1e-9 * spectro_mean(4));
        EXPECT_NEAR(uncalibrated.variance, spectro_covariance(4, 4), 1e-9 * spectro_covariance(4, 4));
        // Brute force: the calibrated spectrum's Gaussian (shifted and widened along the parallax)
        // times the measurement.
        Eigen::Matrix<double, 5, 1> calibrated_mean = spectro_mean;
        calibrated_mean(4) -= offset_frac * joint_mean(4);
        Matrix5 calibrated_covariance = spectro_covariance;
        calibrated_covariance(4, 4) += std::pow(floor_frac * joint_mean(4), 2);
        Matrix5 information = calibrated_covariance.inverse();
        const Eigen::Matrix<double, 5, 1> weighted = information * calibrated_mean +
                                                     along_parallax * measured.value * measured_information;
        information(4, 4) += measured_information;
        const Matrix5 expected_covariance = information.inverse();
        const Eigen::Matrix<double, 5, 1> expected_mean = expected_covariance * weighted;
        const std::string what = "offset " + std::to_string(offset_frac) + ", floor " + std::to_string(floor_frac) +
                                 ", measured/spectro " + std::to_string(measured_over_spectro);
        EXPECT_NEAR(estimate[4], expected_mean(4), 1e-9 * expected_mean(4)) << what;
        EXPECT_NEAR(spectro.value, calibrated_mean(4), 1e-9 * calibrated_mean(4)) << what;
        EXPECT_NEAR(spectro.variance, calibrated_covariance(4, 4), 1e-9 * calibrated_covariance(4, 4)) << what;
        EXPECT_NEAR(covariance(4, 4), expected_covariance(4, 4), 1e-9 * expected_covariance(4, 4)) << what;
        for (int k = 0; k < 4; ++k) EXPECT_NEAR(estimate[k], joint_mean(k), 1e-12) << "labels keep the fit's values";
        // Never less precise than the measurement alone.
        EXPECT_LE(covariance(4, 4), measured.error * measured.error * (1 + 1e-12)) << what;
        EXPECT_GE(Eigen::SelfAdjointEigenSolver<Matrix5>(covariance).eigenvalues().minCoeff(),
                  -1e-12 * covariance.norm()) << what;
      }
    }
  }
  // A parallax the spectrum adds nothing to: left as it was.
  double estimate[5] = {5.5, 0.0, 4.0, 0.1, 2.0};
  Matrix5 covariance = Matrix5::Identity() * 0.04;
  ParallaxEstimate spectro{1.0, 1.0};
  calibrate_star(c, estimate, covariance, MeasuredParallax{2.1, 0.2}, &spectro);
  EXPECT_DOUBLE_EQ(covariance(4, 4), 0.04);
  EXPECT_DOUBLE_EQ(estimate[4], 2.0);
  EXPECT_FALSE(spectro.available()) << "no spectrophotometric parallax to report";
  EXPECT_TRUE(std::isnan(spectro.value) && std::isnan(spectro.variance));
  // Without a measurement the fit's parallax is the spectrum's.
  const ParallaxEstimate alone = spectrophotometric_parallax(2.0, 0.04, MeasuredParallax{});
  EXPECT_EQ(alone.value, 2.0);
  EXPECT_EQ(alone.variance, 0.04);
}

TEST(UncertaintyCalibration, WithoutParallaxTermsTheFitsParallaxStays) {
  UncertaintyCalibration c = two_cell_calibration();
  c.parallax_offset_frac = {0.0, 0.0};
  c.parallax_floor_frac = {0.0, 0.0};
  const Matrix5 information = random_information(7);
  Matrix5 joint_information = information;
  joint_information(4, 4) += 1.0 / (0.05 * 0.05);
  const Matrix5 before = joint_information.inverse();
  Matrix5 covariance = before;
  double estimate[5] = {5.5, 0.0, 4.0, 0.1, 2.0};
  calibrate_star(c, estimate, covariance, MeasuredParallax{1.93, 0.05});
  EXPECT_NEAR(estimate[4], 2.0, 1e-12);
  for (int k = 0; k < 5; ++k) EXPECT_NEAR(covariance(k, 4), before(k, 4), 1e-12 * before(4, 4)) << k;
}

TEST(UncertaintyCalibration, InverseOfTheCalibratedCovariance) {
  const UncertaintyCalibration c = two_cell_calibration();
  Matrix5 covariance = random_information(5).inverse();
  double estimate[5] = {4.2, 0.1, 2.5, 0.5, 0.8};
  calibrate_star(c, estimate, covariance, MeasuredParallax{0.78, 0.05});
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
  c = two_cell_calibration();
  c.parallax_offset_frac = {0.0};
  EXPECT_NE(calibration_problem(c).find("parallax_offset_frac is not [2 cells"), std::string::npos);
  c = two_cell_calibration();
  c.parallax_offset_frac[1] = std::nan("");
  EXPECT_NE(calibration_problem(c).find("parallax_offset_frac holds non-finite values"), std::string::npos);
  c = two_cell_calibration();
  c.feh_knots = {0.0};
  c.feh_offset = {0, 0, 0, 0};
  EXPECT_NE(calibration_problem(c).find("feh_knots needs none or at least two"), std::string::npos);
  c.feh_knots = {0.0, -0.5};
  c.feh_offset.resize(8, 0.0);
  EXPECT_NE(calibration_problem(c).find("feh_knots must be finite and increasing"), std::string::npos);
  c.feh_knots = {-0.5, 0.0};
  c.feh_offset.resize(7);
  EXPECT_NE(calibration_problem(c).find("feh_offset is not [2 knots x 4]"), std::string::npos);
  c.feh_offset.assign(8, std::nan(""));
  EXPECT_NE(calibration_problem(c).find("feh_offset holds non-finite values"), std::string::npos);
}

}  // namespace
}  // namespace xps
