// Gaia DR3 XP continuous mean spectra -> absolute flux sampled on a wavelength grid, with the
// full covariance of the sampled spectrum (issue "xps_xpconvert"; docs/xp_converter.md).
//
// Reproduces GaiaXPy's calibrate() (gaia-dpci/GaiaXPy, src/gaiaxpy/calibrator/calibrator.py and
// src/gaiaxpy/spectrum/): the external-calibration instrument model (dispersion, response, inverse
// bases; De Angeli et al. 2023, A&A 674, A2; Montegriffo et al. 2023, A&A 674, A3) gives one design
// matrix per band for a wavelength grid, shared by every source; a source's flux is
// coefficients x design matrix, its covariance design^T x coefficient covariance x design, and BP
// and RP are merged with weights linear in wavelength across their overlap.
//
// Pieces, from the calibration to one converted source:
//   Calibration      the instrument model of both bands (built in, or read from a directory)
//   DesignMatrices   the sampled basis functions and merge weights for one grid (shared, read-only)
//   SourceConverter  per-thread workspace; converts one source into caller-provided buffers
//                    without allocating
#pragma once

#include <Eigen/Core>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace xps::xp {

enum class Band : int { bp = 0, rp = 1 };
inline constexpr std::array<Band, 2> bands{Band::bp, Band::rp};
inline constexpr std::size_t band_index(Band band) { return static_cast<std::size_t>(band); }
const char* band_name(Band band);  // "bp" or "rp", as the Archive's column prefixes

// The constants GaiaXPy uses (core/satellite.py, core/nature.py). They define the published flux
// scale, so they are fixed here rather than configurable.
struct InstrumentConstants {
  static constexpr double telescope_pupil_area_m2 = 0.7278;
  static constexpr double planck_J_s = 6.62607004e-34;
  static constexpr double light_speed_m_s = 2.99792458e8;
  static constexpr double merge_low_nm = 635.0;     // RP_WL.low: BP weight 1 below, RP weight 0
  static constexpr double merge_high_nm = 643.0;    // BP_WL.high: BP weight 0 above, RP weight 1
  static constexpr double sampling_min_nm = 330.0;  // GaiaXPy's validate_wl_sampling
  static constexpr double sampling_max_nm = 1050.0;
};

// The external-calibration instrument model of one photometer (GaiaXPy ExternalInstrumentModel).
struct BandModel {
  std::vector<double> dispersion_wavelength_nm;  // dispersion: wavelength -> pseudo-wavelength
  std::vector<double> dispersion_pseudo_wavelength;
  std::vector<double> response_wavelength_nm;  // instrument response curve
  std::vector<double> response;
  int n_bases = 0;
  double pwl_range_min = 0.0;  // pseudo-wavelength range mapped linearly onto the
  double pwl_range_max = 0.0;  // normalised range where the Hermite functions are evaluated
  double norm_range_min = 0.0;
  double norm_range_max = 0.0;
  Eigen::MatrixXd inverse_bases;   // n_bases x nInverseBasesCoefficients
  Eigen::MatrixXd transformation;  // n_bases x nTransformedBases
};

struct Calibration {
  std::array<BandModel, 2> band;  // indexed by band_index()
  std::string description;        // which files, for provenance
  const BandModel& operator[](Band b) const { return band[band_index(b)]; }
};

// GaiaXPy's calibration files bpC03_v375wi_* and rpC03_v142r_* (BSD-3, src/xp/LICENSE-GaiaXPy),
// compiled into the library (src/xp/xp_calibration_data.inc, made by
// tools/embed_xp_calibration.py), so the converter needs no data files at run time.
const Calibration& builtin_calibration();
// Reads {bp,rp}*_{dispersion,response,bases}.csv (GaiaXPy's layout) from `directory`: exactly one
// file of each kind per band. Throws IoError naming the file and what is wrong.
Calibration read_calibration(const std::string& directory);
// Parses the text of one file of each kind (`name` is used in messages). Throws IoError.
void parse_dispersion_csv(const std::string& text, const std::string& name, BandModel& model);
void parse_response_csv(const std::string& text, const std::string& name, BandModel& model);
void parse_bases_csv(const std::string& text, const std::string& name, BandModel& model);

// --sampling START:STOP:STEP in nm, inclusive of STOP (GaiaXPy: np.arange(START, STOP + STEP/2,
// STEP)); wavelength k is START + k STEP. Throws UsageError for bad text, a non-positive step or
// a grid outside [330, 1050] nm.
std::vector<double> parse_sampling(const std::string& text);

enum class CovarianceMode {
  // GaiaXPy's merged covariance (default, for compatibility): in the BP/RP overlap it weights
  // the band covariances (each divided by its standard_deviation^2) by column only, normalises
  // the result to correlations and rescales them by the merged flux errors.
  gaiaxpy,
  // The propagated covariance sum_band w_i w_j C_band,ij of the merged flux.
  propagated,
};
CovarianceMode parse_covariance_mode(const std::string& text);  // throws UsageError
const char* covariance_mode_name(CovarianceMode mode);

// The basis functions of both bands sampled on one wavelength grid, times the flux normalisation
// hc / (A R(lambda) lambda), and the merge weights (GaiaXPy SampledBasisFunctions
// .from_external_instrument_model and calibrator.__create_merge). A band contributes only where
// its weight is positive: samples [first_sample, first_sample + samples) of the grid.
class DesignMatrices {
 public:
  struct BandDesign {
    Eigen::MatrixXd matrix;  // n_bases x samples: column k is grid sample first_sample + k
    std::size_t first_sample = 0;
    std::size_t samples = 0;
    std::vector<double> weight;  // merge weight at every grid sample
  };

  DesignMatrices(const Calibration& calibration, std::vector<double> wavelength_nm);

  const std::vector<double>& wavelength_nm() const { return m_wavelength_nm; }
  std::size_t samples() const { return m_wavelength_nm.size(); }
  const BandDesign& operator[](Band b) const { return m_band[band_index(b)]; }
  int n_bases(Band b) const { return static_cast<int>(m_band[band_index(b)].matrix.rows()); }

 private:
  std::vector<double> m_wavelength_nm;
  std::array<BandDesign, 2> m_band;
};

// One band of one source as the Archive gives it. The spans point into the caller's buffers.
struct BandCoefficients {
  bool present = false;                  // false: the band is missing (empty fields)
  std::span<const double> coefficients;  // n
  std::span<const double> errors;        // n, coefficient_errors
  std::span<const double> correlations;  // n(n-1)/2: lower triangle, row by row, no diagonal
  double standard_deviation = 0.0;
  int n_relevant_bases = -1;  // -1 when not given
  int n_parameters = -1;      // -1 when not given
};

struct SourceCoefficients {
  std::int64_t source_id = 0;
  std::array<BandCoefficients, 2> band;
  const BandCoefficients& operator[](Band b) const { return band[band_index(b)]; }
};

struct ConversionOptions {
  bool truncate = false;  // use only the first n_relevant_bases bases of each band
  CovarianceMode covariance = CovarianceMode::gaiaxpy;
  bool with_covariance = true;  // false: flux and flux_error only
};

// Why `source` cannot be converted ("" when it can): no band, wrong array lengths, NaN or
// infinite values, a non-positive standard_deviation or coefficient error, a missing
// n_relevant_bases under truncation.
std::string check_source(const SourceCoefficients& source, const DesignMatrices& design,
                         const ConversionOptions& options);

// Converts sources on one grid. Holds the scratch matrices of one thread: give each thread its
// own converter (they may share one DesignMatrices). convert() does not allocate.
class SourceConverter {
 public:
  SourceConverter(const DesignMatrices& design, const ConversionOptions& options);

  // Writes flux and flux_error [M] and, with covariance, flux_cov [M x M] (row-major) in
  // W m-2 nm-1 (and its square). Samples a missing band would cover are NaN (GaiaXPy: with RP
  // only, every wavelength <= 635 nm; with BP only, >= 643 nm). `source` must pass
  // check_source(); the spans must have exactly M (and M x M) elements.
  void convert(const SourceCoefficients& source, std::span<double> flux,
               std::span<double> flux_error, std::span<double> flux_cov);

  const DesignMatrices& design() const { return *m_design; }
  const ConversionOptions& options() const { return m_options; }

 private:
  // Per band: sampled flux, and sigma^2-scaled sampled covariance S = (E A)^T R (E A).
  void convert_band(Band band, const BandCoefficients& coefficients);
  void merge_flux(const SourceCoefficients& source, std::span<double> flux,
                  std::span<double> flux_error) const;
  void merge_covariance(const SourceCoefficients& source, std::span<const double> flux_error,
                        std::span<double> flux_cov) const;

  const DesignMatrices* m_design;
  ConversionOptions m_options;
  struct BandWork {
    Eigen::MatrixXd correlation;  // n x n, lower triangle filled (and unit diagonal)
    Eigen::MatrixXd scaled;       // n x samples: errors (rows) x design
    Eigen::MatrixXd product;      // n x samples: correlation x scaled
    Eigen::MatrixXd covariance;   // samples x samples, lower triangle: S
    Eigen::VectorXd flux;         // samples
    Eigen::VectorXd variance;     // samples: diagonal of S
  };
  std::array<BandWork, 2> m_work;
};

}  // namespace xps::xp
