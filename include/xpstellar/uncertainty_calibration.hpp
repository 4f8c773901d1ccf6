// Calibration of the catalog's estimates and uncertainties against the labelled training split
// (not in the paper; docs/inference.md "Calibration"). The Fisher errors see only the data noise
// and the model-error terms of the whitening; a data-driven model is also wrong in ways that look
// like a bias of a few hundredths of a dex that changes across the Kiel diagram, and those errors
// do not shrink with S/N. tools/calibrate_uncertainties.py measures them per cell of
// (Teff, log g), on the training split's labels and measured parallaxes, and stores them in the
// model file (/calibration); xps_infer applies them to every star it writes:
//
//   Teff, [Fe/H], log g, E:  estimate -= offset[cell] + feh_offset([Fe/H]),  covariance(k, k) += floor[cell]^2
//   parallax:                p_sp -> p_sp - c p,  s^2 -> s^2 + (f p)^2, combined afresh with the
//                            measured parallax (p the fit's parallax, c = parallax_offset_frac[cell],
//                            f = parallax_floor_frac[cell])
//
// feh_offset is piecewise linear in the fit's [Fe/H] between feh_knots (constant beyond the end
// knots; none without knots): the model's biases depend on metallicity as much as on the cell
// (metal-poor stars came out up to 0.5 dex too metal-rich on the mock), and a star's cell and
// curve both go by its uncalibrated estimate, which is what the tool fitted them against.
//
// The fit's parallax is the precision-weighted mean of the spectrophotometric parallax p_sp (Fisher
// variance s^2) and the measured one, so both come back out of it exactly: 1/s^2 = 1/variance -
// 1/parallax_error^2. The fit trusts p_sp with s, 2-3 times too small for a model-limited spectrum;
// recombined with its calibrated error, the parallax leans on the measurement as much as it
// deserves. The parallax row and column of the covariance are rescaled to the new variance
// (correlations kept), the floors are added on the diagonal: the covariance stays positive
// semidefinite and its inverse is taken as the Fisher one is.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include <Eigen/Dense>

namespace xps {

inline constexpr int calibrated_labels = 4;  // Teff [kK], [Fe/H], log g, E

struct UncertaintyCalibration {
  // Interior cell edges, increasing: cell (i, j) holds teff_kK in [edge i-1, edge i) and log g in
  // [edge j-1, edge j), the outer cells open-ended (numpy.digitize's convention).
  std::vector<double> teff_edges_kK;
  std::vector<double> logg_edges;
  // Per cell, row-major with log g fastest: cells() rows.
  std::vector<double> offset;               // [cells x 4] subtracted from the estimates
  std::vector<double> floor;                // [cells x 4] added in quadrature to the errors
  std::vector<double> parallax_offset_frac; // [cells] offset of the spectrophotometric parallax / parallax
  std::vector<double> parallax_floor_frac;  // [cells] relative error of the spectrophotometric parallax
  std::vector<double> stars;                // [cells] training stars the cell's values came from (0: global)
  // Optional: knots in the estimate's [Fe/H], increasing (none or at least two), and the offsets
  // at them [knots x 4], added to the cell's.
  std::vector<double> feh_knots;
  std::vector<double> feh_offset;

  std::size_t cells() const { return (teff_edges_kK.size() + 1) * (logg_edges.size() + 1); }
  std::size_t cell_of(double teff_kK, double logg) const;
  // The offsets of label k for a star: the cell's plus the [Fe/H] curve's.
  double offset_of(std::size_t cell, double feh, int k) const;
};

// What is wrong with `calibration` (sizes, order of edges, negative or non-finite values), or "".
std::string calibration_problem(const UncertaintyCalibration& calibration);

// The parallax measurement a star's fit used: zero point subtracted; error <= 0 or non-finite
// (or a non-finite value): none.
struct MeasuredParallax {
  double value = 0;  // mas
  double error = 0;  // mas
  bool usable() const { return std::isfinite(value) && std::isfinite(error) && error > 0; }
};

// Below this share of the parallax information (relative to the measurement's) the spectrum has
// none: the parallax is left as the fit wrote it.
inline constexpr double spectrum_information_min = 1e-6;

// A parallax and its variance; NaN both where there is none.
struct ParallaxEstimate {
  double value = std::nan("");
  double variance = std::nan("");
  bool available() const { return std::isfinite(value) && std::isfinite(variance) && variance > 0; }
};

// The spectrophotometric parallax p_sp and its variance s^2 taken back out of a joint fit's
// parallax and variance (1/s^2 = 1/variance - 1/error^2); the fit's own without a measurement;
// none where the spectrum adds less than spectrum_information_min of the measurement's information.
ParallaxEstimate spectrophotometric_parallax(double parallax, double variance, MeasuredParallax measured);

// Calibrates one star in the catalog's parameters (Teff kK, [Fe/H], log g, E, parallax mas).
// The covariance is the fit's (Fisher, with the measurement); it is updated and the caller
// recomputes errors and the inverse covariance. `spectro`, if given, receives the calibrated
// spectrophotometric parallax (p_sp - c p, s^2 + (f p)^2) that the parallax was combined from.
void calibrate_star(const UncertaintyCalibration& calibration, double* estimate,
                    Eigen::Matrix<double, 5, 5>& covariance, MeasuredParallax measured,
                    ParallaxEstimate* spectro = nullptr);

}  // namespace xps
