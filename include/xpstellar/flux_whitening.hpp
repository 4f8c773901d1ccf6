// The data covariance of one star and its whitening (DESIGN §1.2), shared by training and
// inference: the XP block of the star-table covariance is inflated,
//   C = C_gaia + diag(a f)^2 + b^2 f f^T + c^2 f_BP f_BP^T + d^2 f_RP f_RP^T,
// plus the model-error terms of inference (a level over all bands and a smooth shape term),
// with f_BP = w_BP . f and f_RP = w_RP . f (the converter's merge weights), the 2MASS bands keep
// their variances, the unWISE bands get a relative error added in quadrature, and missing bands
// drop out. Then C = U D U^T, D is clipped from below, and L = D^-1/2 U^T, so that
// chi^2 = |L (f_pred - f_obs)|^2. When no eigenvalue can be below the floor (trace C^-1 < 1/floor)
// the clip is a no-op and L is the inverse Cholesky factor instead, which gives the same chi^2 at a
// fifth of the cost. L is stored lower triangular in band order (see whitening_row_offset), in
// float32; the rows and columns of missing bands are zero.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <string>
#include <vector>

namespace xps {
class ParameterSet;

struct CovarianceInflation {
  double diag_frac = 0.005;    // a: per-sample relative error added in quadrature
  double joint_frac = 0.005;   // b: fully correlated relative error over the XP block
  double bp_frac = 0.001;      // c: correlated relative error of the BP part
  double rp_frac = 0.001;      // d: correlated relative error of the RP part
  double unwise_frac = 0.10;   // relative flux error added in quadrature to W1, W2
  // The model error of a trained model (not in the paper; 0 in training, set for inference):
  // e: a level, fully correlated over every present band (XP and NIR), e^2 f_i f_j: the model's
  //    overall scale is uncertain to this fraction, so a spectrum cannot pin the parallax
  //    (f ~ parallax^2) better than e/2;
  // g, l: a smooth shape error over the XP block, g^2 f_i f_j exp(-(lambda_i - lambda_j)^2 / 2 l^2):
  //    a learned model's errors are smooth in wavelength, so they mimic small changes of Teff,
  //    [Fe/H] and E, which the per-sample term a cannot express.
  // Both scale with the observed flux, so predicting no flux at all costs only ~1/e^2 (or ~1/g^2)
  // in chi^2: a star the model cannot describe (a white dwarf) may then run to the E limit.
  double level_frac = 0.0;
  double smooth_frac = 0.0;
  double smooth_length_nm = 100.0;
  double eigen_floor = 1e-9;   // lower clip of the eigenvalues, (1e-18 W m-2 nm-1)^2
  double merge_start_nm = 635;  // BP weight 1 below, falling linearly to 0 at merge_end_nm
  double merge_end_nm = 643;
  double negative_eigen_tolerance = 1e-6;  // C_gaia with eigenvalues below -tol * max is not PSD
};

// Declares the keys of `section` (e.g. "inflation") with the paper's values as defaults.
void declare_inflation_parameters(ParameterSet& parameters, const std::string& section);
CovarianceInflation read_inflation_parameters(const ParameterSet& parameters,
                                              const std::string& section);

// The storage of L: row i holds columns 0 .. i (and zeros up to the next multiple of four), rows one
// after another. Every L is made lower triangular (the inverse Cholesky factor is; a clipped
// eigen-whitening is replaced by the triangular factor with the same L^T L), so a star needs
// 2,312 floats (9.2 kB) for 66 bands instead of 4,356: the training chi^2 streams L from memory,
// and the rows padded to whole vectors need no masked loads. Rows 4b .. 4b+3 have length 4(b+1).
constexpr std::size_t whitening_row_length(std::size_t row) { return (row + 4) & ~std::size_t{3}; }
constexpr std::size_t whitening_row_offset(std::size_t row) {
  const std::size_t block = row / 4;
  return 8 * block * (block + 1) + 4 * (block + 1) * (row % 4);
}
// Floats per star for M bands.
constexpr std::size_t whitening_size(std::size_t bands) { return whitening_row_offset(bands); }

// Asks the CPU to start loading a stored L (and the star's M fluxes) into cache. Training visits
// its stars in a shuffled order, so each star's 9 kB of L would otherwise arrive from memory
// while the chi^2 waits; callers prefetch the next star while they compute the current one.
inline void prefetch_whitening(const float* whitening, const float* flux, std::size_t bands) {
#if defined(__GNUC__)
  const auto* bytes = reinterpret_cast<const char*>(whitening);
  const std::size_t size = whitening_size(bands) * sizeof(float);
  for (std::size_t offset = 0; offset < size; offset += 64) __builtin_prefetch(bytes + offset);
  const auto* flux_bytes = reinterpret_cast<const char*>(flux);
  for (std::size_t offset = 0; offset < bands * sizeof(float); offset += 64)
    __builtin_prefetch(flux_bytes + offset);
#else
  (void)whitening;
  (void)flux;
  (void)bands;
#endif
}

// The dense M x M row-major form of a stored L (zero above the diagonal).
void unpack_whitening(const float* whitening, std::size_t bands, float* dense);
// The stored form of a dense lower-triangular M x M row-major L. Returns false, writing nothing,
// when an entry above the diagonal is not zero.
bool pack_whitening(const float* dense, std::size_t bands, float* whitening);
// out = L a for a stored L [M x M] and a [M x C] (the whitened Jacobians of inference and of the
// coordinated training phases). `out` has a's shape and may be a block of a larger matrix (the
// coordinated phases write each star's rows of the stacked system in place).
void whiten_columns(const float* whitening, const Eigen::MatrixXd& a, Eigen::Ref<Eigen::MatrixXd> out);

enum class BandKind { xp, two_mass, unwise };

// Which instrument each band belongs to, from its name ("J", "H", "Ks", "W1", "W2" are NIR;
// anything else sampled below 1100 nm is XP). Throws UsageError for a band it cannot place.
std::vector<BandKind> classify_bands(const std::vector<std::string>& band_names,
                                     const std::vector<double>& wavelength_nm);

enum class WhiteningStatus {
  ok,
  no_bands,               // every band missing
  non_finite_flux,        // a band with a finite variance but NaN or infinite flux
  non_positive_variance,  // a present band with variance <= 0
  not_positive_semidefinite  // C_gaia of the present bands has a clearly negative eigenvalue
};
const char* whitening_status_name(WhiteningStatus status);

// Everything about the bands a whitening needs, computed once per band layout.
class FluxWhitening {
public:
  FluxWhitening(const std::vector<std::string>& band_names, const std::vector<double>& wavelength_nm,
                const CovarianceInflation& inflation);

  std::size_t bands() const { return m_kinds.size(); }

  // One star: `flux` [M] and `packed_covariance` [M(M+1)/2] as in a star table. Writes
  // `whitening` [whitening_size(M)] and `flux_for_fit` [M] (missing bands set to 0 so that products
  // with the zero columns of L stay 0) and returns the status; on failure the outputs are zero.
  // If `variance` is not null it receives the inflated variance of each band [M] (infinity where
  // missing, and everywhere on failure).
  WhiteningStatus whiten(const float* flux, const float* packed_covariance, float* whitening,
                         float* flux_for_fit, float* variance = nullptr) const;

  // The inflated covariance of the present bands (for tests and diagnostics), [M x M] row-major,
  // NaN in rows and columns of missing bands.
  std::vector<double> inflated_covariance(const float* flux, const float* packed_covariance) const;

private:
  std::vector<BandKind> m_kinds;
  std::vector<double> m_smooth_kernel;  // [M x M] g^2 exp(...) of the smooth term; empty if g = 0
  std::vector<double> m_bp_weight, m_rp_weight;  // merge weights on the XP bands, 0 elsewhere
  CovarianceInflation m_inflation;
};

// chi^2 = |L (f_pred - f_obs)|^2 of one star from its stored whitening L [whitening_size(M)] and
// flux_for_fit [M] (as FluxWhitening::whiten wrote them); if `gradient` is not null it receives
// d chi^2 / d f_pred = 2 L^T L (f_pred - f_obs) [M]. Allocation-free: the training hot loop.
double whitened_chi_square(const float* whitening, const float* flux_for_fit,
                           const double* flux_predicted, int bands, double* gradient);

}  // namespace xps
