// The standard 66-band setup (DESIGN §1.1): 61 Gaia XP samples 392-992 nm every 10 nm, then
// 2MASS J, H, Ks and unWISE W1, W2 at the paper's central wavelengths.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace xps {

inline constexpr std::size_t xp_sample_count = 61;
inline constexpr std::size_t nir_band_count = 5;
inline constexpr std::size_t standard_band_count = xp_sample_count + nir_band_count;
inline constexpr std::size_t band_j = 61, band_h = 62, band_ks = 63, band_w1 = 64, band_w2 = 65;

std::vector<double> standard_wavelengths_nm();
std::vector<std::string> standard_band_names();  // "xp_392", ..., "xp_992", "J", "H", "Ks", "W1", "W2"

// Vega -> AB offsets of the NIR bands (2MASS from the paper; unWISE magnitudes are Vega with the
// usual 2.699 / 3.339 offsets). Index 0..4 = J, H, Ks, W1, W2.
double nir_vega_to_ab_offset(std::size_t nir_index);
// f_lambda [1e-18 W m-2 nm-1] of a Vega magnitude in NIR band `nir_index`, and back:
// f = 3631 Jy * c / lambda^2 * 10^(-0.4 (m + dm)).
double nir_magnitude_to_flux(std::size_t nir_index, double vega_magnitude);
double nir_flux_to_magnitude(std::size_t nir_index, double flux);

}  // namespace xps
