// The mock's stellar spectra: a blackbody continuum scaled by the stellar radius, with absorption
// features whose strengths depend smoothly on Teff, logg and [Fe/H] (docs/mock.md §Spectra).
// Each feature is a strength (a function of the star) times a fixed profile over the bands, so
// the profiles are tabulated once and a spectrum costs two transcendental calls per band.
#pragma once

#include <array>
#include <vector>

#include "xpstellar/mock_truth.hpp"

namespace xps::mock {

struct SpectrumFeatures {
  double line_width = 12, blanketing = 0.35, blanketing_scale = 80;
  double balmer_depth = 0.35, balmer_teff_peak = 9000, balmer_teff_width = 2800, balmer_jump = 0.3;
  double ca_hk_depth = 0.4, mg_depth = 0.15, na_depth = 0.06, ca_triplet_depth = 0.12;
  double tio_depth = 0.5, gravity_slope = 0.04, co_depth = 0.12;
};

SpectrumFeatures read_spectrum_features(const ParameterSet& parameters);

// Stellar radius in solar radii from mass and surface gravity.
double stellar_radius(double mass, double logg);

class IntrinsicSpectrumModel {
public:
  IntrinsicSpectrumModel(const SpectrumFeatures& features, const std::vector<double>& wavelengths_nm);
  // Flux at 1 kpc of a star, 1e-18 W m-2 nm-1, at the model's bands.
  BandFluxes flux(const StarComponent& star) const;

private:
  enum Profile { blanketing, balmer_lines, balmer_jump, ca_hk, mg, na, ca_triplet, tio, co, red_lever, profile_count };
  // Strength of every feature for one star (ln-flux depth per unit profile).
  std::array<double, profile_count> strengths(const StarComponent& star) const;

  SpectrumFeatures m_features;
  std::vector<double> m_log_wavelength_term;  // ln(2 pi h c^2 1e-9) - 5 ln(lambda)
  std::vector<double> m_planck_exponent;      // h c / (lambda k), K
  std::vector<std::array<double, profile_count>> m_profiles;  // per band
};

}  // namespace xps::mock
