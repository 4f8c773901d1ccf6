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

std::string calibration_problem(const UncertaintyCalibration& c) {
  if (!increasing_and_finite(c.teff_edges_kK)) return "teff_edges_kK must be finite and increasing";
  if (!increasing_and_finite(c.logg_edges)) return "logg_edges must be finite and increasing";
  const std::size_t cells = c.cells();
  const std::string expected = std::to_string(cells) + " cells = (teff edges + 1) x (logg edges + 1)";
  if (c.offset.size() != cells * calibrated_labels) return "offset is not [" + expected + " x 4]";
  if (c.floor.size() != cells * calibrated_labels) return "floor is not [" + expected + " x 4]";
  if (c.parallax_floor_frac.size() != cells) return "parallax_floor_frac is not [" + expected + "]";
  if (c.stars.size() != cells) return "stars is not [" + expected + "]";
  if (!std::all_of(c.offset.begin(), c.offset.end(), [](double v) { return std::isfinite(v); }))
    return "offset holds non-finite values";
  if (!non_negative_and_finite(c.floor)) return "floor must be finite and non-negative";
  if (!non_negative_and_finite(c.parallax_floor_frac))
    return "parallax_floor_frac must be finite and non-negative";
  return "";
}

void calibrate_star(const UncertaintyCalibration& calibration, double* estimate,
                    Eigen::Matrix<double, 5, 5>& covariance, double parallax_error) {
  const std::size_t cell = calibration.cell_of(estimate[0], estimate[2]);
  const double* offset = &calibration.offset[cell * calibrated_labels];
  const double* floor = &calibration.floor[cell * calibrated_labels];
  for (int k = 0; k < calibrated_labels; ++k) {
    estimate[k] -= offset[k];
    covariance(k, k) += floor[k] * floor[k];
  }
  // The marginal parallax information is the spectrum's plus 1 / parallax_error^2 (the measurement
  // informs the parallax alone), so the spectrum's share is what remains of 1 / variance.
  double spectrum_share = 1.0;
  if (std::isfinite(parallax_error) && parallax_error > 0) {
    const double variance = covariance(4, 4);
    const double measurement_information = 1.0 / (parallax_error * parallax_error);
    spectrum_share = std::clamp(1.0 - variance * measurement_information, 0.0, 1.0);
  }
  const double spectrum_error = spectrum_share * calibration.parallax_floor_frac[cell] * estimate[4];
  covariance(4, 4) += spectrum_error * spectrum_error;
}

}  // namespace xps
