// The mock's observation model: covariances symmetric positive definite and consistent with the
// noise actually drawn, crowding, magnitude limits, labels, parallax zero-point.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <vector>

#include "xpstellar/config.hpp"
#include "xpstellar/mock_survey.hpp"
#include "xpstellar/partition.hpp"

namespace {

using namespace xps;
using namespace xps::mock;

struct ObservedSample {
  ParameterSet parameters;
  std::unique_ptr<TruthModel> truth;
  std::unique_ptr<ObservationModel> observation;
  std::vector<TruthStar> stars;
  StarTable table;

  explicit ObservedSample(std::int64_t count, double label_fraction = 0.02) {
    declare_mock_parameters(parameters);
    parameters.set("labels.fraction", std::to_string(label_fraction), "test");
    truth = std::make_unique<TruthModel>(parameters);
    observation = std::make_unique<ObservationModel>(parameters, *truth);
    for (std::int64_t index = 0; index < count; ++index) stars.push_back(truth->draw(index));
    table = make_star_table(stars, *observation, *truth, 1, 0);
  }

  // Covariance of the bands that are present, as a dense matrix, and their indices.
  Eigen::MatrixXd present_covariance(std::size_t row, std::vector<std::size_t>& present) const {
    const std::size_t bands = table.bands();
    present.clear();
    for (std::size_t k = 0; k < bands; ++k)
      if (std::isfinite(table.flux[row * bands + k])) present.push_back(k);
    const auto n = static_cast<Eigen::Index>(present.size());
    Eigen::MatrixXd covariance(n, n);
    const float* packed = &table.flux_cov[row * packed_triangle_size(bands)];
    for (Eigen::Index a = 0; a < n; ++a)
      for (Eigen::Index b = 0; b < n; ++b) {
        const std::size_t i = std::min(present[a], present[b]), j = std::max(present[a], present[b]);
        covariance(a, b) = packed[packed_triangle_index(i, j, bands)];
      }
    return covariance;
  }
};

TEST(MockObservation, CovariancesAreSymmetricPositiveDefinite) {
  ObservedSample sample(1500);
  const auto model_covariance = sample.observation->xp_covariance(sample.stars[0].flux, 15.0);
  for (std::size_t i = 0; i < xp_sample_count; ++i)
    for (std::size_t j = 0; j < xp_sample_count; ++j)
      EXPECT_EQ(model_covariance[i * xp_sample_count + j], model_covariance[j * xp_sample_count + i]);
  for (std::size_t row = 0; row < sample.table.rows(); ++row) {
    std::vector<std::size_t> present;
    const Eigen::MatrixXd covariance = sample.present_covariance(row, present);
    ASSERT_GE(present.size(), xp_sample_count);
    Eigen::LLT<Eigen::MatrixXd> llt(covariance);
    ASSERT_EQ(llt.info(), Eigen::Success) << "row " << row;
    EXPECT_GT(Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(covariance).eigenvalues().minCoeff(), 0.0);
  }
}

// The noise drawn must follow the covariance written: whitened residuals of ordinary stars have
// chi^2 with mean = number of bands and the right spread.
TEST(MockObservation, NoiseFollowsTheWrittenCovariance) {
  ObservedSample sample(3000);
  double chi2_sum = 0, dof_sum = 0;
  std::vector<double> standardised;
  for (std::size_t row = 0; row < sample.table.rows(); ++row) {
    if (sample.table.truth.pathology[row] == 1) continue;
    std::vector<std::size_t> present;
    const Eigen::MatrixXd covariance = sample.present_covariance(row, present);
    Eigen::VectorXd residual(static_cast<Eigen::Index>(present.size()));
    for (std::size_t a = 0; a < present.size(); ++a) {
      const std::size_t k = present[a];
      residual[static_cast<Eigen::Index>(a)] =
          double(sample.table.flux[row * sample.table.bands() + k]) - sample.stars[row].flux[k];
    }
    const double chi2 = residual.dot(covariance.ldlt().solve(residual));
    chi2_sum += chi2;
    dof_sum += static_cast<double>(present.size());
    standardised.push_back((chi2 - double(present.size())) / std::sqrt(2.0 * double(present.size())));
  }
  const double n = static_cast<double>(standardised.size());
  EXPECT_NEAR(chi2_sum / dof_sum, 1.0, 4.0 * std::sqrt(2.0 / dof_sum) + 0.01);
  double variance = 0;
  for (double s : standardised) variance += s * s;
  EXPECT_NEAR(variance / n, 1.0, 0.15);
}

TEST(MockObservation, CrowdedSourcesLoseTheirNearInfraredBands) {
  ObservedSample sample(3000);
  const std::size_t bands = sample.table.bands();
  int crowded_tmass = 0, crowded_wise = 0, present_tmass = 0;
  for (std::size_t row = 0; row < sample.table.rows(); ++row) {
    const float norm_dg = sample.table.norm_dg[row];
    const float* flux = &sample.table.flux[row * bands];
    if (norm_dg > -5.0f) {
      ++crowded_tmass;
      for (std::size_t k : {band_j, band_h, band_ks}) EXPECT_TRUE(std::isnan(flux[k]));
    }
    if (norm_dg > -10.0f) {
      ++crowded_wise;
      for (std::size_t k : {band_w1, band_w2}) EXPECT_TRUE(std::isnan(flux[k]));
    }
    for (std::size_t k = xp_sample_count; k < bands; ++k) {
      const float variance = sample.table.flux_cov[row * packed_triangle_size(bands) + packed_triangle_index(k, k, bands)];
      EXPECT_EQ(std::isnan(flux[k]), std::isnan(variance)) << "row " << row << " band " << k;
      if (!std::isnan(flux[k])) continue;
      for (std::size_t i = 0; i < bands; ++i) {
        EXPECT_TRUE(std::isnan(sample.table.flux_cov[row * packed_triangle_size(bands) +
                                                     packed_triangle_index(std::min(i, k), std::max(i, k), bands)]));
      }
    }
    present_tmass += std::isfinite(flux[band_j]);
  }
  EXPECT_GT(crowded_tmass, 10);
  EXPECT_GT(crowded_wise, crowded_tmass);
  EXPECT_GT(present_tmass, 1000);
}

TEST(MockObservation, ParallaxesCarryTheZeroPointAndTheirErrors) {
  ObservedSample sample(6000);
  double weighted = 0, weights = 0, pull2 = 0;
  for (std::size_t row = 0; row < sample.table.rows(); ++row) {
    const double sigma = sample.table.parallax_error[row];
    const double offset = double(sample.table.parallax[row]) - sample.table.truth.parallax[row];
    weighted += offset / (sigma * sigma);
    weights += 1.0 / (sigma * sigma);
    pull2 += std::pow((offset + 0.017) / sigma, 2);
  }
  EXPECT_NEAR(weighted / weights, -0.017, 4.0 / std::sqrt(weights));
  EXPECT_NEAR(pull2 / double(sample.table.rows()), 1.0, 0.08);
}

TEST(MockObservation, LabelsOnlyForBrightStarsWithTheirErrors) {
  ObservedSample sample(3000, 0.5);
  int labelled = 0;
  double pull2 = 0;
  for (std::size_t row = 0; row < sample.table.rows(); ++row) {
    const bool has = std::isfinite(sample.table.labels.teff[row]);
    if (!has) {
      EXPECT_TRUE(std::isnan(sample.table.labels.E_prior[row]));
      continue;
    }
    ++labelled;
    EXPECT_LT(sample.stars[row].g_mag, 16.5);
    pull2 += std::pow((sample.table.labels.teff[row] - sample.table.truth.teff[row]) /
                          sample.table.labels.teff_err[row], 2);
    EXPECT_TRUE(std::isfinite(sample.table.labels.E_prior_err[row]));
  }
  ASSERT_GT(labelled, 300);
  EXPECT_NEAR(pull2 / labelled, 1.0, 0.2);
}

TEST(MockObservation, TheConfiguredShareOfAllStarsIsLabelled) {
  ObservedSample sample(8000);
  int labelled = 0;
  for (std::size_t row = 0; row < sample.table.rows(); ++row)
    labelled += std::isfinite(sample.table.labels.teff[row]) ? 1 : 0;
  EXPECT_NEAR(labelled / 8000.0, 0.02, 4.0 * std::sqrt(0.02 * 0.98 / 8000.0) + 0.002);
}

TEST(MockObservation, SourceIdsCarryTheLevel12Pixel) {
  ObservedSample sample(500);
  for (std::size_t row = 0; row < sample.table.rows(); ++row) {
    const auto pixel = healpix_pixel_from_radec(sample.table.ra[row], sample.table.dec[row], 12);
    EXPECT_EQ(healpix_pixel_from_source_id(sample.table.source_id[row], 12), pixel);
    EXPECT_EQ(sample.table.source_id[row] & ((std::int64_t{1} << 35) - 1), sample.stars[row].index);
  }
}

}  // namespace
