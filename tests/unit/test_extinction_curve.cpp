// Unit tests for the F99 and CCM89 extinction curves (src/model/extinction_curve.cpp).
// The value-by-value comparison with python3-extinction lives in
// tests/integration/check_extinction.py; these test shape properties that hold for any R_V.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

#include "xpstellar/error.hpp"
#include "xpstellar/extinction_curve.hpp"

namespace {

constexpr std::array<double, 4> k_r_v_values = {2.5, 3.1, 4.0, 5.0};
constexpr std::array<xps::ExtinctionLaw, 2> k_laws = {xps::ExtinctionLaw::fitzpatrick99,
                                                      xps::ExtinctionLaw::ccm89};

std::string law_name(xps::ExtinctionLaw law) {
  return law == xps::ExtinctionLaw::ccm89 ? "ccm89" : "fitzpatrick99";
}

TEST(ExtinctionCurve, NormalisedNearV) {
  for (double r_v : k_r_v_values) {
    // CCM89 is normalised at 549.45 nm by construction (a = 1, b = 0 at x = 1.82).
    EXPECT_NEAR(xps::extinction_ccm89(1000.0 / 1.82, r_v), 1.0, 1e-5) << "R_V=" << r_v;
    EXPECT_NEAR(xps::extinction_ccm89(550.0, r_v), 1.0, 2e-3) << "R_V=" << r_v;
    // F99 normalises to the broad-band Johnson V and B-V of a reddened star, so the
    // monochromatic value at 550 nm sits about 2% below 1.
    EXPECT_NEAR(xps::extinction_fitzpatrick99(550.0, r_v), 1.0, 3e-2) << "R_V=" << r_v;
  }
}

TEST(ExtinctionCurve, DecreasesWithWavelengthOverXpAnd2MassAndWise) {
  for (auto law : k_laws) {
    for (double r_v : k_r_v_values) {
      double previous = xps::extinction_a_over_av(law, 392.0, r_v);
      for (double wavelength = 393.0; wavelength <= 4603.0; wavelength += 1.0) {
        const double value = xps::extinction_a_over_av(law, wavelength, r_v);
        ASSERT_LT(value, previous) << law_name(law) << " R_V=" << r_v << " at " << wavelength;
        ASSERT_GT(value, 0.0) << law_name(law) << " R_V=" << r_v << " at " << wavelength;
        previous = value;
      }
    }
  }
}

TEST(ExtinctionCurve, HigherRvIsFlatterInTheBlue) {
  for (auto law : k_laws) {
    for (std::size_t i = 1; i < k_r_v_values.size(); ++i) {
      const double low = xps::extinction_a_over_av(law, 400.0, k_r_v_values[i - 1]);
      const double high = xps::extinction_a_over_av(law, 400.0, k_r_v_values[i]);
      EXPECT_LT(high, low) << law_name(law) << " R_V " << k_r_v_values[i - 1] << " -> "
                           << k_r_v_values[i];
      EXPECT_GT(high, 1.0) << law_name(law);
    }
  }
}

TEST(ExtinctionCurve, KnownValuesAtRv31) {
  // Reference values from python3-extinction 0.4.6 (Barbary), rounded to 1e-6.
  EXPECT_NEAR(xps::extinction_fitzpatrick99(550.0, 3.1), 0.977795, 1e-6);
  EXPECT_NEAR(xps::extinction_ccm89(550.0, 3.1), 0.998850, 1e-6);
}

// Value just below and just above a wavelength, in the law's own variable x = 1/lambda.
double jump_at(xps::ExtinctionLaw law, double x_boundary, double r_v) {
  constexpr double eps = 1e-10;
  return xps::extinction_a_over_av(law, 1000.0 / (x_boundary - eps), r_v) -
         xps::extinction_a_over_av(law, 1000.0 / (x_boundary + eps), r_v);
}

TEST(ExtinctionCurve, Fitzpatrick99ContinuousAtSplineAnchorsAndUvJoin) {
  constexpr std::array<double, 8> anchors_um = {2.65, 1.22, 0.600, 0.547,
                                                0.467, 0.411, 0.270, 0.260};
  for (double r_v : k_r_v_values) {
    for (double anchor : anchors_um) {
      EXPECT_NEAR(jump_at(xps::ExtinctionLaw::fitzpatrick99, 1.0 / anchor, r_v), 0.0, 1e-8)
          << "R_V=" << r_v << " at " << anchor << " um";
    }
  }
}

TEST(ExtinctionCurve, Ccm89BranchJumpsAreSmall) {
  // CCM89's pieces do not join exactly: the published coefficients leave jumps of a few 1e-4.
  constexpr std::array<double, 3> boundaries_x = {1.1, 3.3, 8.0};
  for (double r_v : k_r_v_values) {
    for (double x : boundaries_x) {
      EXPECT_NEAR(jump_at(xps::ExtinctionLaw::ccm89, x, r_v), 0.0, 1e-3)
          << "R_V=" << r_v << " at x=" << x;
    }
  }
}

TEST(ExtinctionCurve, Ccm89ExtrapolatesInfraredPowerLaw) {
  // Beyond 3.33 um the IR power law continues: A/A(V) = (0.574 - 0.527 / R_V) x^1.61.
  const double x = 1.0 / 4.6028;
  EXPECT_NEAR(xps::extinction_ccm89(4602.8, 3.1), (0.574 - 0.527 / 3.1) * std::pow(x, 1.61),
              1e-14);
}

TEST(ExtinctionCurve, RejectsOutOfRangeInput) {
  for (auto law : k_laws) {
    EXPECT_THROW(xps::extinction_a_over_av(law, 99.0, 3.1), std::domain_error);
    EXPECT_THROW(xps::extinction_a_over_av(law, 6001.0, 3.1), std::domain_error);
    EXPECT_THROW(xps::extinction_a_over_av(law, std::nan(""), 3.1), std::domain_error);
    EXPECT_THROW(xps::extinction_a_over_av(law, 550.0, 0.0), std::domain_error);
    EXPECT_THROW(xps::extinction_a_over_av(law, 550.0, INFINITY), std::domain_error);
    EXPECT_NO_THROW(xps::extinction_a_over_av(law, 100.0, 3.1));
    EXPECT_NO_THROW(xps::extinction_a_over_av(law, 6000.0, 3.1));
  }
}

TEST(ExtinctionCurve, ParseLawNames) {
  EXPECT_EQ(xps::parse_extinction_law("fitzpatrick99"), xps::ExtinctionLaw::fitzpatrick99);
  EXPECT_EQ(xps::parse_extinction_law("ccm89"), xps::ExtinctionLaw::ccm89);
  try {
    xps::parse_extinction_law("F99");
    FAIL() << "expected UsageError";
  } catch (const xps::UsageError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("F99"), std::string::npos) << message;
    EXPECT_NE(message.find("fitzpatrick99"), std::string::npos) << message;
    EXPECT_NE(message.find("ccm89"), std::string::npos) << message;
  }
}

TEST(ExtinctionCurve, DispatchMatchesDirectCalls) {
  EXPECT_EQ(xps::extinction_a_over_av(xps::ExtinctionLaw::fitzpatrick99, 700.0, 3.1),
            xps::extinction_fitzpatrick99(700.0, 3.1));
  EXPECT_EQ(xps::extinction_a_over_av(xps::ExtinctionLaw::ccm89, 700.0, 3.1),
            xps::extinction_ccm89(700.0, 3.1));
}

}  // namespace
