#include "intrinsic_spectrum.hpp"

#include <algorithm>
#include <cmath>

#include "xpstellar/config.hpp"

namespace xps::mock {
namespace {

constexpr double planck_h = 6.62607015e-34;      // J s
constexpr double light_speed = 2.99792458e8;     // m/s
constexpr double boltzmann_k = 1.380649e-23;     // J/K
constexpr double solar_radius_m = 6.957e8;
constexpr double kiloparsec_m = 3.0856775814913673e19;
constexpr double solar_logg = 4.438;
constexpr double flux_unit = 1e-18;              // W m-2 nm-1

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double gaussian(double x, double centre, double sigma) {
  const double u = (x - centre) / sigma;
  return std::exp(-0.5 * u * u);
}

}  // namespace

SpectrumFeatures read_spectrum_features(const ParameterSet& p) {
  SpectrumFeatures f;
  f.line_width = p.real("spectra.line_width");
  f.blanketing = p.real("spectra.blanketing");
  f.blanketing_scale = p.real("spectra.blanketing_scale");
  f.balmer_depth = p.real("spectra.balmer_depth");
  f.balmer_teff_peak = p.real("spectra.balmer_teff_peak");
  f.balmer_teff_width = p.real("spectra.balmer_teff_width");
  f.balmer_jump = p.real("spectra.balmer_jump");
  f.ca_hk_depth = p.real("spectra.ca_hk_depth");
  f.mg_depth = p.real("spectra.mg_depth");
  f.na_depth = p.real("spectra.na_depth");
  f.ca_triplet_depth = p.real("spectra.ca_triplet_depth");
  f.tio_depth = p.real("spectra.tio_depth");
  f.gravity_slope = p.real("spectra.gravity_slope");
  f.co_depth = p.real("spectra.co_depth");
  return f;
}

double stellar_radius(double mass, double logg) {
  return std::sqrt(mass * std::pow(10.0, solar_logg - logg));
}

IntrinsicSpectrumModel::IntrinsicSpectrumModel(const SpectrumFeatures& features,
                                               const std::vector<double>& wavelengths_nm)
    : m_features(features) {
  const double w = features.line_width;
  for (const double lambda : wavelengths_nm) {
    const double lambda_m = lambda * 1e-9;
    m_log_wavelength_term.push_back(
        std::log(std::numbers::pi * 2.0 * planck_h * light_speed * light_speed * 1e-9) -
        5.0 * std::log(lambda_m));
    m_planck_exponent.push_back(planck_h * light_speed / (lambda_m * boltzmann_k));
    std::array<double, profile_count> profile{};
    profile[blanketing] = std::exp(-(lambda - 392.0) / features.blanketing_scale);
    profile[balmer_lines] = 1.0 * gaussian(lambda, 656.3, w) + 0.8 * gaussian(lambda, 486.1, w) +
                            0.6 * gaussian(lambda, 434.0, w) + 0.5 * gaussian(lambda, 410.2, w);
    profile[balmer_jump] = sigmoid((400.0 - lambda) / 6.0);
    profile[ca_hk] = gaussian(lambda, 395.0, w);
    profile[mg] = gaussian(lambda, 517.0, w);
    profile[na] = gaussian(lambda, 589.0, w);
    profile[ca_triplet] = (gaussian(lambda, 850.0, w) + gaussian(lambda, 854.0, w) +
                           gaussian(lambda, 866.0, w)) / 3.0;
    profile[tio] = gaussian(lambda, 710.0, 1.6 * w) + 0.8 * gaussian(lambda, 760.0, 1.3 * w) +
                   0.6 * gaussian(lambda, 845.0, 1.6 * w);
    profile[co] = 0.1 * gaussian(lambda, 2159.0, 50.0) + gaussian(lambda, 4602.8, 200.0);
    profile[red_lever] = (std::min(lambda, 1000.0) - 700.0) / 300.0;
    m_profiles.push_back(profile);
  }
}

// Feature strengths: smooth in (Teff, logg, [Fe/H]) and deliberately not separable, so the
// learned model has real structure to find. Positive = absorption, except the red-lever slope.
std::array<double, IntrinsicSpectrumModel::profile_count> IntrinsicSpectrumModel::strengths(
    const StarComponent& star) const {
  const auto& f = m_features;
  const double metals = std::pow(10.0, std::clamp(star.feh, -5.0, 1.0));
  const double cool = sigmoid((6500.0 - star.teff) / 700.0);
  const double hot = std::exp(-std::pow((star.teff - f.balmer_teff_peak) / f.balmer_teff_width, 2));
  const double low_gravity = 4.0 - star.logg;
  std::array<double, profile_count> s{};
  s[blanketing] = f.blanketing * std::pow(metals, 0.7) * std::pow(5500.0 / star.teff, 2);
  s[balmer_lines] = f.balmer_depth * hot * std::max(0.2, 1.0 + 0.15 * low_gravity);
  s[balmer_jump] = f.balmer_jump * hot * std::max(0.0, 1.0 + 0.3 * low_gravity);
  s[ca_hk] = f.ca_hk_depth * std::sqrt(metals) * cool;
  s[mg] = f.mg_depth * std::pow(metals, 0.6) * cool * std::max(0.2, 1.4 - 0.4 * low_gravity);
  s[na] = f.na_depth * std::sqrt(metals) * cool;
  s[ca_triplet] = f.ca_triplet_depth * std::pow(metals, 0.4) * cool *
                  std::max(0.2, 1.0 + 0.25 * (low_gravity + 0.5));
  s[tio] = f.tio_depth * sigmoid((4300.0 - star.teff) / 200.0) * std::max(0.2, 1.0 + 0.2 * low_gravity);
  s[co] = f.co_depth * sigmoid((4800.0 - star.teff) / 250.0) * std::max(0.0, 1.0 + 0.5 * (3.0 - star.logg));
  // H- opacity makes the red continuum of dwarfs slightly steeper than that of giants.
  s[red_lever] = -f.gravity_slope * (star.logg - 4.0) * (0.5 + cool);
  return s;
}

BandFluxes IntrinsicSpectrumModel::flux(const StarComponent& star) const {
  const auto s = strengths(star);
  const double radius_over_distance =
      stellar_radius(star.mass, star.logg) * solar_radius_m / kiloparsec_m;
  const double log_dilution = 2.0 * std::log(radius_over_distance) - std::log(flux_unit);
  const double inverse_teff = 1.0 / star.teff;
  BandFluxes flux{};
  for (std::size_t k = 0; k < flux.size(); ++k) {
    double depth = 0.0;
    for (int p = 0; p < profile_count; ++p) depth += s[p] * m_profiles[k][p];
    flux[k] = std::exp(m_log_wavelength_term[k] + log_dilution - depth) /
              std::expm1(m_planck_exponent[k] * inverse_teff);
  }
  return flux;
}

}  // namespace xps::mock
