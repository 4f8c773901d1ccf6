#include "xpstellar/uncertainty_calibration.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace xps {

namespace {

std::size_t bin_of(const std::vector<double>& edges, double value) {
  return static_cast<std::size_t>(std::upper_bound(edges.begin(), edges.end(), value) - edges.begin());
}

bool increasing_and_finite(const std::vector<double>& values) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) return false;
    if (i > 0 && !(values[i] > values[i - 1])) return false;
  }
  return true;
}

bool non_negative_and_finite(const std::vector<double>& values) {
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v) && v >= 0; });
}

}  // namespace

std::size_t UncertaintyCalibration::cell_of(double teff_kK, double logg) const {
  return bin_of(teff_edges_kK, teff_kK) * (logg_edges.size() + 1) + bin_of(logg_edges, logg);
}

double UncertaintyCalibration::offset_of(std::size_t cell, double feh, int k) const {
  double value = offset[cell * calibrated_labels + k];
  if (feh_knots.empty()) return value;
  const std::size_t last = feh_knots.size() - 1;
  if (!(feh > feh_knots.front())) return value + feh_offset[k];  // also NaN: the end value
  if (feh >= feh_knots[last]) return value + feh_offset[last * calibrated_labels + k];
  const std::size_t upper = bin_of(feh_knots, feh);  // feh_knots[upper - 1] <= feh < feh_knots[upper]
  const double t = (feh - feh_knots[upper - 1]) / (feh_knots[upper] - feh_knots[upper - 1]);
  return value + (1.0 - t) * feh_offset[(upper - 1) * calibrated_labels + k] +
         t * feh_offset[upper * calibrated_labels + k];
}

std::string calibration_problem(const UncertaintyCalibration& c) {
  if (!increasing_and_finite(c.teff_edges_kK)) return "teff_edges_kK must be finite and increasing";
  if (!increasing_and_finite(c.logg_edges)) return "logg_edges must be finite and increasing";
  const std::size_t cells = c.cells();
  const std::string expected = std::to_string(cells) + " cells = (teff edges + 1) x (logg edges + 1)";
  if (c.offset.size() != cells * calibrated_labels) return "offset is not [" + expected + " x 4]";
  if (c.floor.size() != cells * calibrated_labels) return "floor is not [" + expected + " x 4]";
  if (c.parallax_offset_frac.size() != cells) return "parallax_offset_frac is not [" + expected + "]";
  if (c.parallax_floor_frac.size() != cells) return "parallax_floor_frac is not [" + expected + "]";
  if (c.stars.size() != cells) return "stars is not [" + expected + "]";
  if (!std::all_of(c.offset.begin(), c.offset.end(), [](double v) { return std::isfinite(v); }))
    return "offset holds non-finite values";
  if (!std::all_of(c.parallax_offset_frac.begin(), c.parallax_offset_frac.end(),
                   [](double v) { return std::isfinite(v); }))
    return "parallax_offset_frac holds non-finite values";
  if (!non_negative_and_finite(c.floor)) return "floor must be finite and non-negative";
  if (c.feh_knots.size() == 1) return "feh_knots needs none or at least two knots";
  if (!increasing_and_finite(c.feh_knots)) return "feh_knots must be finite and increasing";
  if (c.feh_offset.size() != c.feh_knots.size() * calibrated_labels)
    return "feh_offset is not [" + std::to_string(c.feh_knots.size()) + " knots x 4]";
  if (!std::all_of(c.feh_offset.begin(), c.feh_offset.end(), [](double v) { return std::isfinite(v); }))
    return "feh_offset holds non-finite values";
  if (!non_negative_and_finite(c.parallax_floor_frac))
    return "parallax_floor_frac must be finite and non-negative";
  return "";
}

ParallaxEstimate spectrophotometric_parallax(double parallax, double variance, MeasuredParallax measured) {
  if (!measured.usable()) return {parallax, variance};
  // The marginal information is the spectrum's plus the measurement's (which informs the parallax
  // alone): take the measurement back out.
  const double measured_variance = measured.error * measured.error;
  const double room = measured_variance - variance;
  if (!(room > spectrum_information_min * measured_variance)) return {};
  const double spectro_variance = variance * measured_variance / room;
  return {parallax + (parallax - measured.value) * spectro_variance / measured_variance, spectro_variance};
}

namespace {

// The spectrophotometric parallax calibrated: the fit's parallax is the scale (precise, and what
// tools/calibrate_uncertainties.py used).
ParallaxEstimate calibrated_spectro(ParallaxEstimate spectro, double parallax, double offset_frac,
                                    double floor_frac) {
  const double spectro_floor = floor_frac * parallax;
  return {spectro.value - offset_frac * parallax, spectro.variance + spectro_floor * spectro_floor};
}

}  // namespace

void calibrate_star(const UncertaintyCalibration& calibration, double* estimate,
                    Eigen::Matrix<double, 5, 5>& covariance, MeasuredParallax measured,
                    ParallaxEstimate* spectro_out) {
  const std::size_t cell = calibration.cell_of(estimate[0], estimate[2]);
  double offset[calibrated_labels];
  for (int k = 0; k < calibrated_labels; ++k) offset[k] = calibration.offset_of(cell, estimate[1], k);
  const double* floor = &calibration.floor[cell * calibrated_labels];
  const double variance = covariance(4, 4);
  const ParallaxEstimate raw_spectro = spectrophotometric_parallax(estimate[4], variance, measured);
  ParallaxEstimate spectro;  // none where the spectrum carries no parallax information
  double parallax = estimate[4], parallax_variance = variance;  // then the fit's stays
  if (raw_spectro.available()) {
    spectro = calibrated_spectro(raw_spectro, estimate[4], calibration.parallax_offset_frac[cell],
                                 calibration.parallax_floor_frac[cell]);
    parallax = spectro.value, parallax_variance = spectro.variance;
    if (measured.usable()) {  // recombined with the measurement
      const double measured_information = 1.0 / (measured.error * measured.error);
      parallax_variance = 1.0 / (1.0 / spectro.variance + measured_information);
      parallax = parallax_variance * (spectro.value / spectro.variance + measured.value * measured_information);
    }
  }
  if (spectro_out) *spectro_out = spectro;
  estimate[4] = parallax;
  if (variance > 0) {
    const double scale = std::sqrt(parallax_variance / variance);
    covariance.row(4) *= scale;
    covariance.col(4) *= scale;
  }
  covariance(4, 4) = parallax_variance;
  for (int k = 0; k < calibrated_labels; ++k) {
    estimate[k] -= offset[k];
    covariance(k, k) += floor[k] * floor[k];
  }
}

}  // namespace xps
