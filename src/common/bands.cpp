#include "xpstellar/bands.hpp"

#include <array>
#include <cmath>

namespace xps {
namespace {
constexpr std::array<double, nir_band_count> nir_wavelength_nm = {1235.0, 1662.0, 2159.0, 3352.6,
                                                                  4602.8};
constexpr std::array<const char*, nir_band_count> nir_names = {"J", "H", "Ks", "W1", "W2"};
constexpr std::array<double, nir_band_count> nir_ab_offset = {0.91, 1.39, 1.85, 2.699, 3.339};
constexpr double ab_zero_point_jy = 3631.0;
constexpr double speed_of_light = 2.99792458e8;  // m/s
constexpr double flux_unit = 1e-18;              // star tables hold 1e-18 W m-2 nm-1

// f_lambda of an AB magnitude 0 in W m-2 nm-1: 3631 Jy * c / lambda^2.
double ab_zero_flux(double wavelength_nm) {
  const double lambda_m = wavelength_nm * 1e-9;
  return ab_zero_point_jy * 1e-26 * speed_of_light / (lambda_m * lambda_m) * 1e-9;
}
}  // namespace

std::vector<double> standard_wavelengths_nm() {
  std::vector<double> wavelengths;
  for (std::size_t k = 0; k < xp_sample_count; ++k)
    wavelengths.push_back(392.0 + 10.0 * static_cast<double>(k));
  wavelengths.insert(wavelengths.end(), nir_wavelength_nm.begin(), nir_wavelength_nm.end());
  return wavelengths;
}

std::vector<std::string> standard_band_names() {
  std::vector<std::string> names;
  for (std::size_t k = 0; k < xp_sample_count; ++k)
    names.push_back("xp_" + std::to_string(392 + 10 * k));
  names.insert(names.end(), nir_names.begin(), nir_names.end());
  return names;
}

double nir_vega_to_ab_offset(std::size_t nir_index) { return nir_ab_offset.at(nir_index); }

double nir_magnitude_to_flux(std::size_t nir_index, double vega_magnitude) {
  const double zero = ab_zero_flux(nir_wavelength_nm.at(nir_index));
  return zero * std::pow(10.0, -0.4 * (vega_magnitude + nir_ab_offset[nir_index])) / flux_unit;
}

double nir_flux_to_magnitude(std::size_t nir_index, double flux) {
  const double zero = ab_zero_flux(nir_wavelength_nm.at(nir_index));
  return -2.5 * std::log10(flux * flux_unit / zero) - nir_ab_offset[nir_index];
}

}  // namespace xps
