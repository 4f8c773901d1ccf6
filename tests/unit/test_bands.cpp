// NIR magnitude <-> flux with the paper's Vega->AB offsets, against the formula evaluated here.
#include <gtest/gtest.h>

#include <cmath>

#include "xpstellar/bands.hpp"
#include "xpstellar/prepare.hpp"

namespace {

TEST(Bands, StandardSetupHas61XpSamplesThenFiveNirBands) {
  const auto wavelengths = xps::standard_wavelengths_nm();
  const auto names = xps::standard_band_names();
  ASSERT_EQ(wavelengths.size(), 66u);
  EXPECT_EQ(wavelengths[0], 392.0);
  EXPECT_EQ(wavelengths[60], 992.0);
  EXPECT_EQ(names[60], "xp_992");
  EXPECT_EQ(names[xps::band_ks], "Ks");
  EXPECT_EQ(wavelengths[xps::band_w2], 4602.8);
}

TEST(Bands, MagnitudeToFluxFollowsThePaperAndRoundTrips) {
  const double lambda_um[5] = {1.235, 1.662, 2.159, 3.3526, 4.6028};
  const double offset[5] = {0.91, 1.39, 1.85, 2.699, 3.339};
  for (std::size_t n = 0; n < 5; ++n) {
    for (double magnitude : {-1.0, 5.0, 12.3, 17.0}) {
      // f_lambda = 3631 Jy c / lambda^2 10^(-0.4 (m + dm)), in 1e-18 W m-2 nm-1.
      const double lambda_m = lambda_um[n] * 1e-6;
      const double expected = 3631e-26 * 299792458.0 / (lambda_m * lambda_m) * 1e-9 *
                              std::pow(10.0, -0.4 * (magnitude + offset[n])) * 1e18;
      const double flux = xps::nir_magnitude_to_flux(n, magnitude);
      EXPECT_NEAR(flux, expected, 1e-12 * expected);
      EXPECT_NEAR(xps::nir_flux_to_magnitude(n, flux), magnitude, 1e-12);
    }
  }
  // unWISE nanomaggies are Vega: 1 nMgy is magnitude 22.5.
  EXPECT_NEAR(xps::unwise_nanomaggy_flux(3), xps::nir_magnitude_to_flux(3, 22.5), 1e-20);
}

}  // namespace
