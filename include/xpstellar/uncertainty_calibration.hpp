// Calibration of the catalog's estimates and uncertainties against the labelled training split
// (not in the paper; docs/inference.md "Calibration"). The Fisher errors see only the data noise
// and the model-error terms of the whitening; a data-driven model is also wrong in ways that look
// like a bias of a few hundredths of a dex that changes across the Kiel diagram, and those errors
// do not shrink with S/N. tools/calibrate_uncertainties.py measures them per cell of
// (Teff, log g), on the training split's labels and measured parallaxes, and stores them in the
// model file (/calibration); xps_infer applies them to every star it writes:
//
//   Teff, [Fe/H], log g, E:  estimate -= offset[cell],  covariance(k, k) += floor[cell]^2
//   parallax:                covariance(4, 4) += (a * parallax_floor_frac[cell] * parallax)^2
//
// where a = share of the parallax information that came from the spectrum: the spectrophotometric
// parallax is what the model error makes wrong, and the estimate leans on it with weight a
// (1 without a parallax measurement). The added terms are independent per parameter, so the
// covariance stays positive semidefinite and its inverse is taken as the Fisher one is.
#pragma once

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
  std::vector<double> parallax_floor_frac;  // [cells] relative error of the spectrophotometric parallax
  std::vector<double> stars;                // [cells] training stars the cell's values came from (0: global)

  std::size_t cells() const { return (teff_edges_kK.size() + 1) * (logg_edges.size() + 1); }
  std::size_t cell_of(double teff_kK, double logg) const;
};

// What is wrong with `calibration` (sizes, order of edges, negative or non-finite values), or "".
std::string calibration_problem(const UncertaintyCalibration& calibration);

// Calibrates one star in the catalog's parameters (Teff kK, [Fe/H], log g, E, parallax mas).
// `parallax_error` is the measured parallax's error the fit used (<= 0 or non-finite: none).
// The covariance is updated; the caller recomputes errors and the inverse covariance.
void calibrate_star(const UncertaintyCalibration& calibration, double* estimate,
                    Eigen::Matrix<double, 5, 5>& covariance, double parallax_error);

}  // namespace xps
