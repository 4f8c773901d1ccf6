// One source's XP coefficients -> sampled absolute flux, error and covariance (GaiaXPy
// spectrum/absolute_sampled_spectrum.py generate_spectra, calibration_absolute_sampled_spectrum.py
// __merge_output, spectrum/utils.py _correlation_to_covariance_dr3int5).
//
// With D = diag(coefficient_errors), R the coefficient correlations and sigma the band's
// standard_deviation, GaiaXPy takes the coefficient covariance C = D R D / sigma^2, the sampled
// error sigma sqrt(diag(A^T C A)) and the sampled covariance A^T C A. Here every band keeps
// S = (D A)^T R (D A) = sigma^2 A^T C A, so that its diagonal is the squared error.
#include "xpstellar/xp_converter.hpp"

#include <cmath>
#include <limits>
#include <string>

namespace xps::xp {

namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

bool all_finite(std::span<const double> values) {
  for (double value : values)
    if (!std::isfinite(value)) return false;
  return true;
}

bool all_non_negative(std::span<const double> values) {
  for (double value : values)
    if (!(value >= 0.0)) return false;
  return true;
}

std::string wrong_length(Band band, const char* column, std::size_t actual, std::size_t expected) {
  return std::string(band_name(band)) + "_" + column + " has " + std::to_string(actual) +
         " values, expected " + std::to_string(expected);
}

std::string check_band(Band band, const BandCoefficients& coefficients, std::size_t n_bases) {
  const std::string prefix = std::string(band_name(band)) + "_";
  const std::size_t n_correlations = n_bases * (n_bases - 1) / 2;
  if (coefficients.n_parameters >= 0 &&
      static_cast<std::size_t>(coefficients.n_parameters) != n_bases) {
    return prefix + "n_parameters is " + std::to_string(coefficients.n_parameters) + ", expected " +
           std::to_string(n_bases);
  }
  if (coefficients.coefficients.size() != n_bases)
    return wrong_length(band, "coefficients", coefficients.coefficients.size(), n_bases);
  if (coefficients.errors.size() != n_bases)
    return wrong_length(band, "coefficient_errors", coefficients.errors.size(), n_bases);
  if (coefficients.correlations.size() != n_correlations) {
    return wrong_length(band, "coefficient_correlations", coefficients.correlations.size(),
                        n_correlations);
  }
  if (!all_finite(coefficients.coefficients)) return prefix + "coefficients contain NaN or Inf";
  if (!all_finite(coefficients.errors) || !all_non_negative(coefficients.errors))
    return prefix + "coefficient_errors contain NaN, Inf or negative values";
  if (!all_finite(coefficients.correlations))
    return prefix + "coefficient_correlations contain NaN or Inf";
  if (!(coefficients.standard_deviation > 0.0) || !std::isfinite(coefficients.standard_deviation))
    return prefix + "standard_deviation missing or not positive";
  return {};
}

// How many bases a band uses: all, or with truncation its n_relevant_bases when that is positive
// (GaiaXPy ignores a missing or zero value and uses all bases).
Eigen::Index bases_used(const BandCoefficients& coefficients, Eigen::Index n_bases, bool truncate) {
  if (!truncate || coefficients.n_relevant_bases <= 0) return n_bases;
  return std::min<Eigen::Index>(coefficients.n_relevant_bases, n_bases);
}

}  // namespace

std::string check_source(const SourceCoefficients& source, const DesignMatrices& design,
                         const ConversionOptions&) {
  if (!source[Band::bp].present && !source[Band::rp].present) return "both bands missing";
  for (const Band band : bands) {
    if (!source[band].present) continue;
    std::string problem =
        check_band(band, source[band], static_cast<std::size_t>(design.n_bases(band)));
    if (!problem.empty()) return problem;
  }
  return {};
}

SourceConverter::SourceConverter(const DesignMatrices& design, const ConversionOptions& options)
    : m_design(&design), m_options(options) {
  for (const Band band : bands) {
    const auto n = static_cast<Eigen::Index>(design.n_bases(band));
    const auto samples = static_cast<Eigen::Index>(design[band].samples);
    BandWork& work = m_work[band_index(band)];
    work.correlation = Eigen::MatrixXd::Identity(n, n);
    work.scaled.resize(n, samples);
    work.product.resize(n, samples);
    work.covariance.resize(samples, samples);
    work.flux.resize(samples);
    work.variance.resize(samples);
  }
}

void SourceConverter::convert_band(Band band, const BandCoefficients& coefficients) {
  const DesignMatrices::BandDesign& design = (*m_design)[band];
  BandWork& work = m_work[band_index(band)];
  const Eigen::Index n = bases_used(coefficients, design.matrix.rows(), m_options.truncate);
  const auto design_used = design.matrix.topRows(n);
  const Eigen::Map<const Eigen::VectorXd> values(coefficients.coefficients.data(), n);
  const Eigen::Map<const Eigen::VectorXd> errors(coefficients.errors.data(), n);
  work.flux.noalias() = design_used.transpose() * values;

  // Lower triangle of R, row by row as the Archive lists it; a truncated band uses the first rows.
  const double* correlation = coefficients.correlations.data();
  for (Eigen::Index i = 1; i < n; ++i)
    for (Eigen::Index j = 0; j < i; ++j) work.correlation(i, j) = *correlation++;

  auto scaled = work.scaled.topRows(n);
  auto product = work.product.topRows(n);
  scaled.noalias() = errors.asDiagonal() * design_used;
  product.noalias() = work.correlation.topLeftCorner(n, n).selfadjointView<Eigen::Lower>() * scaled;
  if (m_options.with_covariance) {
    work.covariance.triangularView<Eigen::Lower>() = scaled.transpose() * product;
    work.variance = work.covariance.diagonal();
  } else {
    work.variance = scaled.cwiseProduct(product).colwise().sum().transpose();
  }
}

void SourceConverter::convert(const SourceCoefficients& source, std::span<double> flux,
                              std::span<double> flux_error, std::span<double> flux_cov) {
  for (const Band band : bands)
    if (source[band].present) convert_band(band, source[band]);
  merge_flux(source, flux, flux_error);
  if (m_options.with_covariance) merge_covariance(source, flux_error, flux_cov);
}

void SourceConverter::merge_flux(const SourceCoefficients& source, std::span<double> flux,
                                 std::span<double> flux_error) const {
  const bool both = source[Band::bp].present && source[Band::rp].present;
  for (std::size_t s = 0; s < flux.size(); ++s) {
    flux[s] = both ? 0.0 : nan;
    flux_error[s] = both ? 0.0 : nan;  // a variance until the square root below
  }
  for (const Band band : bands) {
    if (!source[band].present) continue;
    const DesignMatrices::BandDesign& design = (*m_design)[band];
    const BandWork& work = m_work[band_index(band)];
    for (std::size_t k = 0; k < design.samples; ++k) {
      const std::size_t s = design.first_sample + k;
      const auto index = static_cast<Eigen::Index>(k);
      // With one band GaiaXPy uses it unweighted (and masks what it does not cover).
      const double weight = both ? design.weight[s] : 1.0;
      if (both) {
        flux[s] += weight * work.flux[index];
        flux_error[s] += weight * weight * work.variance[index];
      } else {
        flux[s] = work.flux[index];
        flux_error[s] = work.variance[index];
      }
    }
  }
  for (double& error : flux_error) error = std::sqrt(error);
}

void SourceConverter::merge_covariance(const SourceCoefficients& source,
                                       std::span<const double> flux_error,
                                       std::span<double> flux_cov) const {
  const std::size_t m = flux_error.size();
  const bool both = source[Band::bp].present && source[Band::rp].present;
  const bool gaiaxpy = both && m_options.covariance == CovarianceMode::gaiaxpy;
  for (double& value : flux_cov) value = both ? 0.0 : nan;
  // Accumulate the lower triangle (row a >= column c) of the merged matrix:
  //   propagated: sum_b w_a w_c S_b,ac   (the weights of the merged flux, both sides)
  //   gaiaxpy:    sum_b w_c S_b,ac / sigma_b^2   (GaiaXPy weights columns of A^T C A only)
  for (const Band band : bands) {
    if (!source[band].present) continue;
    const DesignMatrices::BandDesign& design = (*m_design)[band];
    const BandWork& work = m_work[band_index(band)];
    const double inverse_variance =
        1.0 / (source[band].standard_deviation * source[band].standard_deviation);
    for (std::size_t kc = 0; kc < design.samples; ++kc) {
      const std::size_t c = design.first_sample + kc;
      const double column_weight = !both     ? 1.0
                                   : gaiaxpy ? design.weight[c] * inverse_variance
                                             : design.weight[c];
      for (std::size_t ka = kc; ka < design.samples; ++ka) {
        const std::size_t a = design.first_sample + ka;
        const double row_weight = both && !gaiaxpy ? design.weight[a] : 1.0;
        const double value =
            work.covariance(static_cast<Eigen::Index>(ka), static_cast<Eigen::Index>(kc));
        if (both) {
          flux_cov[a * m + c] += row_weight * column_weight * value;
        } else {
          flux_cov[a * m + c] = value;
        }
      }
    }
  }
  // GaiaXPy reports correlation_ac = M_ac / sqrt(M_aa M_cc) (a > c) times the flux errors.
  if (gaiaxpy) {
    // The diagonal holds each sample's scale error / sqrt(M_aa) while the rest is rescaled.
    for (std::size_t a = 0; a < m; ++a)
      flux_cov[a * m + a] = flux_error[a] / std::sqrt(flux_cov[a * m + a]);
    for (std::size_t a = 0; a < m; ++a)
      for (std::size_t c = 0; c < a; ++c)
        flux_cov[a * m + c] *= flux_cov[a * m + a] * flux_cov[c * m + c];
    for (std::size_t a = 0; a < m; ++a) flux_cov[a * m + a] = flux_error[a] * flux_error[a];
  }
  for (std::size_t a = 0; a < m; ++a)
    for (std::size_t c = 0; c < a; ++c) flux_cov[c * m + a] = flux_cov[a * m + c];
}

}  // namespace xps::xp
