// Covariance inflation and eigen-clipped whitening of one star (DESIGN §1.2).
#include "xpstellar/flux_whitening.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "xpstellar/config.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/star_table.hpp"

namespace xps {

void declare_inflation_parameters(ParameterSet& p, const std::string& section) {
  const CovarianceInflation d;
  p.declare_real(section + ".diag_frac", d.diag_frac, "", "XP per-sample relative error added in quadrature", 0, 1);
  p.declare_real(section + ".joint_frac", d.joint_frac, "", "XP fully correlated relative error (f f^T term)", 0, 1);
  p.declare_real(section + ".bp_frac", d.bp_frac, "", "correlated relative error of the BP part", 0, 1);
  p.declare_real(section + ".rp_frac", d.rp_frac, "", "correlated relative error of the RP part", 0, 1);
  p.declare_real(section + ".unwise_frac", d.unwise_frac, "", "unWISE relative flux error added in quadrature", 0, 1);
  p.declare_real(section + ".eigen_floor", d.eigen_floor, "(1e-18 W m-2 nm-1)^2", "lower clip of the covariance eigenvalues", 0, 1e30);
  p.declare_real(section + ".merge_start", d.merge_start_nm, "nm", "BP merge weight is 1 below this wavelength", 300, 1100);
  p.declare_real(section + ".merge_end", d.merge_end_nm, "nm", "BP merge weight reaches 0 at this wavelength", 300, 1100);
}

CovarianceInflation read_inflation_parameters(const ParameterSet& p, const std::string& section) {
  CovarianceInflation inflation;
  inflation.diag_frac = p.real(section + ".diag_frac");
  inflation.joint_frac = p.real(section + ".joint_frac");
  inflation.bp_frac = p.real(section + ".bp_frac");
  inflation.rp_frac = p.real(section + ".rp_frac");
  inflation.unwise_frac = p.real(section + ".unwise_frac");
  inflation.eigen_floor = p.real(section + ".eigen_floor");
  inflation.merge_start_nm = p.real(section + ".merge_start");
  inflation.merge_end_nm = p.real(section + ".merge_end");
  if (inflation.merge_end_nm <= inflation.merge_start_nm)
    throw UsageError(section + ".merge_end must exceed " + section + ".merge_start");
  return inflation;
}

std::vector<BandKind> classify_bands(const std::vector<std::string>& names,
                                     const std::vector<double>& wavelength_nm) {
  if (names.size() != wavelength_nm.size())
    throw UsageError("band names and wavelengths differ in number");
  std::vector<BandKind> kinds;
  for (std::size_t k = 0; k < names.size(); ++k) {
    const std::string& name = names[k];
    if (name == "J" || name == "H" || name == "Ks") kinds.push_back(BandKind::two_mass);
    else if (name == "W1" || name == "W2") kinds.push_back(BandKind::unwise);
    else if (wavelength_nm[k] < 1100.0) kinds.push_back(BandKind::xp);
    else throw UsageError("band '" + name + "' at " + std::to_string(wavelength_nm[k]) +
                          " nm is neither an XP sample nor a 2MASS/unWISE band");
  }
  return kinds;
}

const char* whitening_status_name(WhiteningStatus status) {
  switch (status) {
    case WhiteningStatus::ok: return "ok";
    case WhiteningStatus::no_bands: return "all bands missing";
    case WhiteningStatus::non_finite_flux: return "NaN or infinite flux";
    case WhiteningStatus::non_positive_variance: return "non-positive variance";
    case WhiteningStatus::not_positive_semidefinite: return "covariance not positive semi-definite";
  }
  return "unknown";
}

FluxWhitening::FluxWhitening(const std::vector<std::string>& band_names,
                             const std::vector<double>& wavelength_nm,
                             const CovarianceInflation& inflation)
    : m_kinds(classify_bands(band_names, wavelength_nm)), m_inflation(inflation) {
  for (std::size_t k = 0; k < m_kinds.size(); ++k) {
    double bp = 0.0;
    if (m_kinds[k] == BandKind::xp)
      bp = std::clamp((inflation.merge_end_nm - wavelength_nm[k]) /
                          (inflation.merge_end_nm - inflation.merge_start_nm), 0.0, 1.0);
    m_bp_weight.push_back(bp);
    m_rp_weight.push_back(m_kinds[k] == BandKind::xp ? 1.0 - bp : 0.0);
  }
}

namespace {

struct PresentBands {
  std::vector<std::size_t> index;
  WhiteningStatus status = WhiteningStatus::ok;
};

PresentBands find_present_bands(const float* flux, const float* packed, std::size_t bands) {
  PresentBands present;
  for (std::size_t k = 0; k < bands; ++k) {
    const float variance = packed[packed_triangle_index(k, k, bands)];
    if (std::isnan(variance) || std::isinf(variance)) continue;  // missing band
    if (!std::isfinite(flux[k])) return {{}, WhiteningStatus::non_finite_flux};
    if (!(variance > 0.0f)) return {{}, WhiteningStatus::non_positive_variance};
    present.index.push_back(k);
  }
  if (present.index.empty()) present.status = WhiteningStatus::no_bands;
  return present;
}

}  // namespace

std::vector<double> FluxWhitening::inflated_covariance(const float* flux,
                                                       const float* packed) const {
  const std::size_t m = bands();
  std::vector<double> covariance(m * m, std::nan(""));
  const PresentBands present = find_present_bands(flux, packed, m);
  const auto& inf = m_inflation;
  for (std::size_t i : present.index)
    for (std::size_t j : present.index) {
      const double fi = flux[i], fj = flux[j];
      double c = packed[packed_triangle_index(std::min(i, j), std::max(i, j), m)];
      if (m_kinds[i] == BandKind::xp && m_kinds[j] == BandKind::xp) {
        if (i == j) c += std::pow(inf.diag_frac * fi, 2);
        c += inf.joint_frac * inf.joint_frac * fi * fj;
        c += inf.bp_frac * inf.bp_frac * m_bp_weight[i] * m_bp_weight[j] * fi * fj;
        c += inf.rp_frac * inf.rp_frac * m_rp_weight[i] * m_rp_weight[j] * fi * fj;
      } else if (i != j) {
        c = 0.0;  // NIR bands carry their own variances only, as in the authors' code
      } else if (m_kinds[i] == BandKind::unwise) {
        c += std::pow(inf.unwise_frac * fi, 2);
      }
      covariance[i * m + j] = c;
    }
  return covariance;
}

// The eigen decomposition dominates the cost (~K^3); the few small allocations here are noise
// next to it, and whitening happens once per star at load time.
WhiteningStatus FluxWhitening::whiten(const float* flux, const float* packed, float* whitening,
                                      float* flux_for_fit) const {
  const std::size_t m = bands();
  std::fill(whitening, whitening + m * m, 0.0f);
  std::fill(flux_for_fit, flux_for_fit + m, 0.0f);
  const PresentBands present = find_present_bands(flux, packed, m);
  if (present.status != WhiteningStatus::ok) return present.status;

  const std::vector<double> full = inflated_covariance(flux, packed);
  const auto k = static_cast<Eigen::Index>(present.index.size());
  Eigen::MatrixXd covariance(k, k);
  for (Eigen::Index a = 0; a < k; ++a)
    for (Eigen::Index b = 0; b < k; ++b)
      covariance(a, b) = full[present.index[a] * m + present.index[b]];
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(covariance);
  const Eigen::VectorXd& values = eigen.eigenvalues();
  if (eigen.info() != Eigen::Success || !values.allFinite() ||
      values.minCoeff() < -m_inflation.negative_eigen_tolerance * values.maxCoeff())
    return WhiteningStatus::not_positive_semidefinite;

  for (Eigen::Index row = 0; row < k; ++row) {
    const double scale = 1.0 / std::sqrt(std::max(values[row], m_inflation.eigen_floor));
    for (Eigen::Index a = 0; a < k; ++a)
      whitening[static_cast<std::size_t>(row) * m + present.index[a]] =
          static_cast<float>(scale * eigen.eigenvectors()(a, row));
  }
  for (std::size_t i : present.index) flux_for_fit[i] = flux[i];
  return WhiteningStatus::ok;
}

double whitened_chi_square(const float* whitening, const float* flux_for_fit,
                           const double* flux_predicted, int bands, double* gradient) {
  constexpr int max_bands = 256;
  double residual[max_bands];
  double whitened[max_bands];
  if (bands > max_bands) throw std::logic_error("whitened_chi_square: too many bands");
  for (int k = 0; k < bands; ++k) residual[k] = flux_predicted[k] - flux_for_fit[k];
  double chi_square = 0.0;
  for (int row = 0; row < bands; ++row) {
    const float* l = whitening + static_cast<std::ptrdiff_t>(row) * bands;
    // Four partial sums: without -ffast-math the compiler keeps one serial chain otherwise.
    double partial[4] = {0.0, 0.0, 0.0, 0.0};
    int k = 0;
    for (; k + 4 <= bands; k += 4)
      for (int lane = 0; lane < 4; ++lane)
        partial[lane] += static_cast<double>(l[k + lane]) * residual[k + lane];
    for (; k < bands; ++k) partial[0] += static_cast<double>(l[k]) * residual[k];
    const double sum = (partial[0] + partial[1]) + (partial[2] + partial[3]);
    whitened[row] = sum;
    chi_square += sum * sum;
  }
  if (gradient) {
    for (int k = 0; k < bands; ++k) gradient[k] = 0.0;
    for (int row = 0; row < bands; ++row) {
      const float* l = whitening + static_cast<std::ptrdiff_t>(row) * bands;
      const double w2 = 2.0 * whitened[row];
      for (int k = 0; k < bands; ++k) gradient[k] += w2 * static_cast<double>(l[k]);
    }
  }
  return chi_square;
}

}  // namespace xps
