// The mock's truth model against what it promises (docs/mock.md): population ranges, magnitude
// limits, binaries, the configured extinction curve, and independence from the rank layout.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <vector>

#include "xpstellar/config.hpp"
#include "xpstellar/extinction_curve.hpp"
#include "xpstellar/mock_survey.hpp"

namespace {

using namespace xps;
using namespace xps::mock;

ParameterSet mock_parameters() {
  ParameterSet parameters;
  declare_mock_parameters(parameters);
  return parameters;
}

std::vector<TruthStar> draw_stars(const TruthModel& truth, std::int64_t count) {
  std::vector<TruthStar> stars;
  for (std::int64_t index = 0; index < count; ++index) stars.push_back(truth.draw(index));
  return stars;
}

TEST(MockTruth, StarsArePureFunctionsOfSeedAndIndex) {
  const auto parameters = mock_parameters();
  const TruthModel truth(parameters);
  const TruthModel other(parameters);
  for (std::int64_t index : {0, 7, 123456, 99999999}) {
    const TruthStar a = truth.draw(index), b = other.draw(index);
    EXPECT_EQ(a.ra, b.ra);
    EXPECT_EQ(a.E, b.E);
    EXPECT_EQ(a.flux, b.flux);
  }
  auto reseeded = mock_parameters();
  reseeded.set("survey.seed", "43", "test");
  EXPECT_NE(TruthModel(reseeded).draw(7).ra, truth.draw(7).ra);
}

TEST(MockTruth, PopulationStaysInsideConfiguredRanges) {
  const auto parameters = mock_parameters();
  const TruthModel truth(parameters);
  const auto stars = draw_stars(truth, 4000);
  int binaries = 0;
  double feh_near = 0, feh_far = 0;
  int near = 0, far = 0;
  for (const auto& star : stars) {
    EXPECT_LE(star.g_mag, parameters.real("survey.g_limit"));
    EXPECT_GE(star.g_mag, parameters.real("survey.g_bright"));
    EXPECT_GE(star.E, 0.0);
    EXPECT_GE(star.primary.feh, -2.5);
    EXPECT_LE(star.primary.feh, 0.5);
    EXPECT_NEAR(star.parallax, 1000.0 / star.distance_pc, 1e-12);
    if (star.kind == StarKind::main_sequence) {
      EXPECT_GE(star.primary.teff, 4000.0);
      EXPECT_LE(star.primary.teff, 12000.0);
    }
    if (star.pathology == Pathology::none) {
      EXPECT_GE(star.primary.logg, 0.3);
    }
    binaries += star.is_binary;
    if (star.is_binary) {
      EXPECT_GE(star.mass_ratio, 0.8);
      EXPECT_LE(star.mass_ratio, 1.0);
    }
    const double height = std::abs(star.distance_pc * std::sin(star.b * M_PI / 180.0));
    if (height < 150) feh_near += star.primary.feh, ++near;
    if (height > 600) feh_far += star.primary.feh, ++far;
  }
  EXPECT_NEAR(binaries / 4000.0, 0.2, 0.03);
  ASSERT_GT(near, 100);
  ASSERT_GT(far, 100);
  // [Fe/H] falls with height above the plane.
  EXPECT_LT(feh_far / far, feh_near / near - 0.1);
}

TEST(MockTruth, NearEqualMassBinariesAreBrighterByUpToTwoPointFiveLogTwo) {
  const TruthModel truth(mock_parameters());
  for (double teff : {4200.0, 5000.0, 5800.0, 7000.0, 9000.0}) {
    const StarComponent primary = truth.main_sequence_star(teff);
    const double single_g = truth.broad_band_magnitudes(truth.absolute_flux(primary)).g;
    double previous = 0.0;
    for (double q : {0.8, 0.85, 0.9, 0.95, 0.975, 1.0}) {
      const StarComponent secondary = truth.companion(primary, StarKind::main_sequence, q);
      auto flux = truth.absolute_flux(primary);
      const auto second = truth.absolute_flux(secondary);
      for (std::size_t k = 0; k < flux.size(); ++k) flux[k] += second[k];
      const double brightening = single_g - truth.broad_band_magnitudes(flux).g;
      EXPECT_GT(brightening, previous) << "Teff " << teff << " q " << q;
      EXPECT_LE(brightening, 2.5 * std::log10(2.0) + 1e-12);
      if (q == 0.8) {
        EXPECT_GE(brightening, 0.3) << "Teff " << teff;
      }
      if (q >= 0.95) {
        EXPECT_GE(brightening, 0.6) << "Teff " << teff << " q " << q;
      }
      if (q == 1.0) {
        EXPECT_NEAR(brightening, 2.5 * std::log10(2.0), 1e-9);
      }
      previous = brightening;
    }
  }
}

// Noiseless fluxes divided by the intrinsic flux give exp(-E R): fitting R back across stars must
// return the configured curve.
TEST(MockTruth, ExtinctionFollowsTheConfiguredCurve) {
  for (const char* law : {"fitzpatrick99", "ccm89"}) {
    auto parameters = mock_parameters();
    parameters.set("dust.r_v_scatter", "0", "test");
    parameters.set("dust.extinction_law", law, "test");
    const TruthModel truth(parameters);
    const auto stars = draw_stars(truth, 600);
    BandFluxes numerator{}, denominator{};
    for (const auto& star : stars) {
      auto intrinsic = truth.absolute_flux(star.primary);
      if (star.is_binary) {
        const auto second = truth.absolute_flux(star.secondary);
        for (std::size_t k = 0; k < intrinsic.size(); ++k) intrinsic[k] += second[k];
      }
      for (std::size_t k = 0; k < intrinsic.size(); ++k) {
        const double y = -std::log(star.flux[k] / (intrinsic[k] * star.parallax * star.parallax));
        numerator[k] += y * star.E;
        denominator[k] += star.E * star.E;
      }
    }
    const auto wavelengths = standard_wavelengths_nm();
    const ExtinctionLaw configured = parse_extinction_law(law);
    for (std::size_t k = 0; k < wavelengths.size(); ++k) {
      const double fitted = numerator[k] / denominator[k];
      const double expected =
          0.4 * std::log(10.0) * 3.1 * extinction_a_over_av(configured, wavelengths[k], 3.1);
      EXPECT_NEAR(fitted, expected, 1e-9 * expected) << law << " at " << wavelengths[k] << " nm";
    }
  }
}

TEST(MockTruth, PerStarRvCurvesMatchTheLawAtThatRv) {
  const auto parameters = mock_parameters();
  const TruthModel truth(parameters);
  int varied = 0;
  for (const auto& star : draw_stars(truth, 300)) {
    if (star.E < 0.05) continue;
    varied += std::abs(star.r_v - 3.1) > 0.05;
    auto intrinsic = truth.absolute_flux(star.primary);
    if (star.is_binary) {
      const auto second = truth.absolute_flux(star.secondary);
      for (std::size_t k = 0; k < intrinsic.size(); ++k) intrinsic[k] += second[k];
    }
    const auto curve = truth.extinction_R(star.r_v);
    for (std::size_t k = 0; k < intrinsic.size(); ++k) {
      const double r = -std::log(star.flux[k] / (intrinsic[k] * star.parallax * star.parallax)) / star.E;
      EXPECT_NEAR(r, curve[k], 2e-5 * curve[k] + 1e-9);
    }
  }
  EXPECT_GT(varied, 20);  // R_V really varies from star to star by default
}

}  // namespace
