// Covariance inflation and eigen-clipped whitening of one star (DESIGN §1.2).
#include "xpstellar/flux_whitening.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include "xpstellar/config.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/kernel_dispatch.hpp"
#include "xpstellar/star_table.hpp"

namespace xps {

void declare_inflation_parameters(ParameterSet& p, const std::string& section) {
  const CovarianceInflation d;
  p.declare_real(section + ".diag_frac", d.diag_frac, "", "XP per-sample relative error added in quadrature", 0, 1);
  p.declare_real(section + ".joint_frac", d.joint_frac, "", "XP fully correlated relative error (f f^T term)", 0, 1);
  p.declare_real(section + ".bp_frac", d.bp_frac, "", "correlated relative error of the BP part", 0, 1);
  p.declare_real(section + ".rp_frac", d.rp_frac, "", "correlated relative error of the RP part", 0, 1);
  p.declare_real(section + ".unwise_frac", d.unwise_frac, "", "unWISE relative flux error added in quadrature", 0, 1);
  p.declare_real(section + ".level_frac", d.level_frac, "",
                 "model-error level: relative error fully correlated over all bands (XP and NIR); "
                 "0 in training (the paper); xps_infer's model_error.level_frac overrides it", 0, 1);
  p.declare_real(section + ".smooth_frac", d.smooth_frac, "",
                 "model-error shape: XP relative error correlated over smooth_length; 0 in training "
                 "(the paper); xps_infer's model_error.smooth_frac overrides it", 0, 1);
  p.declare_real(section + ".smooth_length", d.smooth_length_nm, "nm",
                 "correlation length (squared-exponential kernel) of the smooth_frac term", 1, 10000);
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
  inflation.level_frac = p.real(section + ".level_frac");
  inflation.smooth_frac = p.real(section + ".smooth_frac");
  inflation.smooth_length_nm = p.real(section + ".smooth_length");
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
  // g^2 exp(-(lambda_i - lambda_j)^2 / 2 l^2) over the XP pairs, once per band layout.
  const std::size_t m = m_kinds.size();
  if (inflation.smooth_frac > 0) {
    m_smooth_kernel.assign(m * m, 0.0);
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < m; ++j)
        if (m_kinds[i] == BandKind::xp && m_kinds[j] == BandKind::xp) {
          const double separation = (wavelength_nm[i] - wavelength_nm[j]) / inflation.smooth_length_nm;
          m_smooth_kernel[i * m + j] =
              inflation.smooth_frac * inflation.smooth_frac * std::exp(-0.5 * separation * separation);
        }
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
      c += inf.level_frac * inf.level_frac * fi * fj;
      if (!m_smooth_kernel.empty()) c += m_smooth_kernel[i * m + j] * fi * fj;
      covariance[i * m + j] = c;
    }
  return covariance;
}

// The eigen decomposition dominates the cost (~K^3); the few small allocations here are noise
// next to it, and whitening happens once per star at load time.
WhiteningStatus FluxWhitening::whiten(const float* flux, const float* packed, float* whitening,
                                      float* flux_for_fit, float* variance) const {
  const std::size_t m = bands();
  std::fill(whitening, whitening + m * m, 0.0f);
  std::fill(flux_for_fit, flux_for_fit + m, 0.0f);
  if (variance) std::fill(variance, variance + m, std::numeric_limits<float>::infinity());
  const PresentBands present = find_present_bands(flux, packed, m);
  if (present.status != WhiteningStatus::ok) return present.status;

  const std::vector<double> full = inflated_covariance(flux, packed);
  if (variance)
    for (std::size_t i : present.index) variance[i] = static_cast<float>(full[i * m + i]);
  const auto k = static_cast<Eigen::Index>(present.index.size());
  Eigen::MatrixXd covariance(k, k);
  for (Eigen::Index a = 0; a < k; ++a)
    for (Eigen::Index b = 0; b < k; ++b)
      covariance(a, b) = full[present.index[a] * m + present.index[b]];
  // Fast path: W = chol(C)^-1 whitens exactly like D^-1/2 U^T (both have W^T W = C^-1), and when
  // trace(C^-1) = |W|_F^2 < 1 / floor every eigenvalue is above the floor, so clipping would change
  // nothing. About five times cheaper than the eigen decomposition.
  const Eigen::LLT<Eigen::MatrixXd> cholesky(covariance);
  if (cholesky.info() == Eigen::Success) {
    Eigen::MatrixXd inverse_factor = Eigen::MatrixXd::Identity(k, k);
    cholesky.matrixL().solveInPlace(inverse_factor);
    if (inverse_factor.allFinite() && inverse_factor.squaredNorm() * m_inflation.eigen_floor < 1.0) {
      for (Eigen::Index row = 0; row < k; ++row)
        for (Eigen::Index a = 0; a <= row; ++a)
          whitening[static_cast<std::size_t>(row) * m + present.index[a]] =
              static_cast<float>(inverse_factor(row, a));
      for (std::size_t i : present.index) flux_for_fit[i] = flux[i];
      return WhiteningStatus::ok;
    }
  }
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

namespace {

constexpr int max_chi_square_bands = 256;

// The portable kernel: double products of the float L with the double residual, four partial
// sums per row (without -ffast-math the compiler otherwise keeps one serial chain).
[[maybe_unused]] double chi_square_generic(const float* whitening, const double* residual,
                                           int bands, double* gradient) {
  double whitened[max_chi_square_bands];
  double chi_square = 0.0;
  for (int row = 0; row < bands; ++row) {
    const float* l = whitening + static_cast<std::ptrdiff_t>(row) * bands;
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

#if defined(__GNUC__) && defined(__x86_64__)
#define XPS_CHI_SQUARE_X86 1

// x86-64: SSE2 is the baseline, AVX2 + FMA is chosen at run time when the CPU has it, so that
// portable builds get 4-wide fused products. Both keep every product and sum in double (the
// float entries of L convert exactly); they differ from the generic kernel only in the order of
// the sums. Pass 1 forms z = L r four rows at a time, pass 2 g = 2 L^T z sixteen columns at a
// time; L (17 kB for 66 bands) stays in L1 between them.

// Four floats of L as four doubles; the masked form reads only the lanes of `mask`.
XPS_TARGET_AVX2 inline __m256d load_l(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
XPS_TARGET_AVX2 inline __m256d load_l_masked(const float* p, __m128i mask) {
  return _mm256_cvtps_pd(_mm_maskload_ps(p, mask));
}

XPS_TARGET_AVX2 double chi_square_avx2(const float* whitening, const double* residual, int bands,
                                       double* gradient) {
  alignas(32) double whitened[max_chi_square_bands];
  const int full = bands & ~3;  // columns in whole groups of four
  const int tail = bands & 3;
  // The last partial group is read with a mask so that no load runs past the end of L.
  const __m128i tail_mask =
      _mm_setr_epi32(tail > 0 ? -1 : 0, tail > 1 ? -1 : 0, tail > 2 ? -1 : 0, 0);
  // residual is zero-padded to a multiple of four: the masked lanes multiply zeros.
  const auto load_l_tail = [tail_mask](const float* p)
                               XPS_TARGET_AVX2 { return load_l_masked(p, tail_mask); };

  int row = 0;
  __m256d chi_square4 = _mm256_setzero_pd();
  for (; row + 4 <= bands; row += 4) {
    const float* l0 = whitening + static_cast<std::ptrdiff_t>(row) * bands;
    const float* l1 = l0 + bands;
    const float* l2 = l1 + bands;
    const float* l3 = l2 + bands;
    // L streams from memory in training (17 kB per star): ask for the rows of the block after next.
    if (row + 12 <= bands)
      for (const char* p = reinterpret_cast<const char*>(l0 + 8 * bands);
           p < reinterpret_cast<const char*>(l0 + 12 * bands); p += 64)
        _mm_prefetch(p, _MM_HINT_T0);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), a2 = _mm256_setzero_pd(),
            a3 = _mm256_setzero_pd();
    for (int k = 0; k < full; k += 4) {
      const __m256d r = _mm256_load_pd(residual + k);
      a0 = _mm256_fmadd_pd(load_l(l0 + k), r, a0);
      a1 = _mm256_fmadd_pd(load_l(l1 + k), r, a1);
      a2 = _mm256_fmadd_pd(load_l(l2 + k), r, a2);
      a3 = _mm256_fmadd_pd(load_l(l3 + k), r, a3);
    }
    if (tail) {
      const __m256d r = _mm256_load_pd(residual + full);
      a0 = _mm256_fmadd_pd(load_l_tail(l0 + full), r, a0);
      a1 = _mm256_fmadd_pd(load_l_tail(l1 + full), r, a1);
      a2 = _mm256_fmadd_pd(load_l_tail(l2 + full), r, a2);
      a3 = _mm256_fmadd_pd(load_l_tail(l3 + full), r, a3);
    }
    // Horizontal sums of the four rows into one vector (z_row .. z_row+3).
    const __m256d h01 = _mm256_hadd_pd(a0, a1);
    const __m256d h23 = _mm256_hadd_pd(a2, a3);
    const __m256d z = _mm256_add_pd(_mm256_permute2f128_pd(h01, h23, 0x20),
                                    _mm256_permute2f128_pd(h01, h23, 0x31));
    _mm256_store_pd(whitened + row, z);
    chi_square4 = _mm256_fmadd_pd(z, z, chi_square4);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, chi_square4);
  double chi_square = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; row < bands; ++row) {
    const float* l = whitening + static_cast<std::ptrdiff_t>(row) * bands;
    __m256d a = _mm256_setzero_pd();
    for (int k = 0; k < full; k += 4)
      a = _mm256_fmadd_pd(load_l(l + k), _mm256_load_pd(residual + k), a);
    if (tail) a = _mm256_fmadd_pd(load_l_tail(l + full), _mm256_load_pd(residual + full), a);
    _mm256_store_pd(lanes, a);
    const double z = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    whitened[row] = z;
    chi_square += z * z;
  }
  if (!gradient) return chi_square;

  for (int r = 0; r < bands; ++r) whitened[r] *= 2.0;
  // Sixteen columns at a time, even and odd rows in separate accumulators: eight chains hide
  // the FMA latency.
  int k = 0;
  for (; k + 16 <= full; k += 16) {
    __m256d e0 = _mm256_setzero_pd(), e1 = _mm256_setzero_pd(), e2 = _mm256_setzero_pd(),
            e3 = _mm256_setzero_pd();
    __m256d o0 = _mm256_setzero_pd(), o1 = _mm256_setzero_pd(), o2 = _mm256_setzero_pd(),
            o3 = _mm256_setzero_pd();
    int r = 0;
    for (; r + 2 <= bands; r += 2) {
      const float* le = whitening + static_cast<std::ptrdiff_t>(r) * bands + k;
      const float* lo = le + bands;
      const __m256d we = _mm256_broadcast_sd(whitened + r);
      const __m256d wo = _mm256_broadcast_sd(whitened + r + 1);
      e0 = _mm256_fmadd_pd(load_l(le), we, e0);
      e1 = _mm256_fmadd_pd(load_l(le + 4), we, e1);
      e2 = _mm256_fmadd_pd(load_l(le + 8), we, e2);
      e3 = _mm256_fmadd_pd(load_l(le + 12), we, e3);
      o0 = _mm256_fmadd_pd(load_l(lo), wo, o0);
      o1 = _mm256_fmadd_pd(load_l(lo + 4), wo, o1);
      o2 = _mm256_fmadd_pd(load_l(lo + 8), wo, o2);
      o3 = _mm256_fmadd_pd(load_l(lo + 12), wo, o3);
    }
    if (r < bands) {
      const float* le = whitening + static_cast<std::ptrdiff_t>(r) * bands + k;
      const __m256d we = _mm256_broadcast_sd(whitened + r);
      e0 = _mm256_fmadd_pd(load_l(le), we, e0);
      e1 = _mm256_fmadd_pd(load_l(le + 4), we, e1);
      e2 = _mm256_fmadd_pd(load_l(le + 8), we, e2);
      e3 = _mm256_fmadd_pd(load_l(le + 12), we, e3);
    }
    _mm256_storeu_pd(gradient + k, _mm256_add_pd(e0, o0));
    _mm256_storeu_pd(gradient + k + 4, _mm256_add_pd(e1, o1));
    _mm256_storeu_pd(gradient + k + 8, _mm256_add_pd(e2, o2));
    _mm256_storeu_pd(gradient + k + 12, _mm256_add_pd(e3, o3));
  }
  // The remaining groups of four columns, then the partial group.
  for (; k < bands; k += 4) {
    const bool partial = k + 4 > bands;
    __m256d e = _mm256_setzero_pd(), o = _mm256_setzero_pd();
    int r = 0;
    for (; r + 2 <= bands; r += 2) {
      const float* le = whitening + static_cast<std::ptrdiff_t>(r) * bands + k;
      const float* lo = le + bands;
      e = _mm256_fmadd_pd(partial ? load_l_tail(le) : load_l(le), _mm256_broadcast_sd(whitened + r),
                          e);
      o = _mm256_fmadd_pd(partial ? load_l_tail(lo) : load_l(lo),
                          _mm256_broadcast_sd(whitened + r + 1), o);
    }
    if (r < bands) {
      const float* le = whitening + static_cast<std::ptrdiff_t>(r) * bands + k;
      e = _mm256_fmadd_pd(partial ? load_l_tail(le) : load_l(le), _mm256_broadcast_sd(whitened + r),
                          e);
    }
    _mm256_store_pd(lanes, _mm256_add_pd(e, o));
    for (int lane = 0; lane < 4 && k + lane < bands; ++lane) gradient[k + lane] = lanes[lane];
  }
  return chi_square;
}

// The SSE2 baseline: the same two passes two doubles wide, four rows (pass 1) or eight columns
// (pass 2) at a time; the partial group of columns is done in scalar code.
double chi_square_sse2(const float* whitening, const double* residual, int bands,
                       double* gradient) {
  alignas(16) double whitened[max_chi_square_bands];
  const int full = bands & ~3;
  // Four floats of L as two pairs of doubles.
  const auto load_l = [](const float* p, __m128d& low, __m128d& high) {
    const __m128 f = _mm_loadu_ps(p);
    low = _mm_cvtps_pd(f);
    high = _mm_cvtps_pd(_mm_movehl_ps(f, f));
  };
  double chi_square = 0.0;
  int row = 0;
  for (; row + 2 <= bands; row += 2) {
    const float* l0 = whitening + static_cast<std::ptrdiff_t>(row) * bands;
    const float* l1 = l0 + bands;
    if (row + 10 <= bands)
      for (const char* p = reinterpret_cast<const char*>(l0 + 8 * bands);
           p < reinterpret_cast<const char*>(l0 + 10 * bands); p += 64)
        _mm_prefetch(p, _MM_HINT_T0);
    __m128d a0 = _mm_setzero_pd(), b0 = _mm_setzero_pd(), a1 = _mm_setzero_pd(),
            b1 = _mm_setzero_pd();
    for (int k = 0; k < full; k += 4) {
      const __m128d r_low = _mm_load_pd(residual + k), r_high = _mm_load_pd(residual + k + 2);
      __m128d low, high;
      load_l(l0 + k, low, high);
      a0 = _mm_add_pd(a0, _mm_mul_pd(low, r_low));
      b0 = _mm_add_pd(b0, _mm_mul_pd(high, r_high));
      load_l(l1 + k, low, high);
      a1 = _mm_add_pd(a1, _mm_mul_pd(low, r_low));
      b1 = _mm_add_pd(b1, _mm_mul_pd(high, r_high));
    }
    alignas(16) double s0[2], s1[2];
    _mm_store_pd(s0, _mm_add_pd(a0, b0));
    _mm_store_pd(s1, _mm_add_pd(a1, b1));
    double z0 = s0[0] + s0[1], z1 = s1[0] + s1[1];
    for (int k = full; k < bands; ++k) {
      z0 += static_cast<double>(l0[k]) * residual[k];
      z1 += static_cast<double>(l1[k]) * residual[k];
    }
    whitened[row] = z0;
    whitened[row + 1] = z1;
    chi_square += z0 * z0 + z1 * z1;
  }
  for (; row < bands; ++row) {
    const float* l = whitening + static_cast<std::ptrdiff_t>(row) * bands;
    double z = 0.0;
    for (int k = 0; k < bands; ++k) z += static_cast<double>(l[k]) * residual[k];
    whitened[row] = z;
    chi_square += z * z;
  }
  if (!gradient) return chi_square;

  for (int r = 0; r < bands; ++r) whitened[r] *= 2.0;
  int k = 0;
  for (; k + 8 <= full; k += 8) {
    __m128d a0 = _mm_setzero_pd(), a1 = _mm_setzero_pd(), a2 = _mm_setzero_pd(),
            a3 = _mm_setzero_pd();
    for (int r = 0; r < bands; ++r) {
      const float* l = whitening + static_cast<std::ptrdiff_t>(r) * bands + k;
      const __m128d w = _mm_set1_pd(whitened[r]);
      __m128d low, high;
      load_l(l, low, high);
      a0 = _mm_add_pd(a0, _mm_mul_pd(low, w));
      a1 = _mm_add_pd(a1, _mm_mul_pd(high, w));
      load_l(l + 4, low, high);
      a2 = _mm_add_pd(a2, _mm_mul_pd(low, w));
      a3 = _mm_add_pd(a3, _mm_mul_pd(high, w));
    }
    _mm_storeu_pd(gradient + k, a0);
    _mm_storeu_pd(gradient + k + 2, a1);
    _mm_storeu_pd(gradient + k + 4, a2);
    _mm_storeu_pd(gradient + k + 6, a3);
  }
  for (; k < full; k += 4) {
    __m128d a0 = _mm_setzero_pd(), a1 = _mm_setzero_pd();
    for (int r = 0; r < bands; ++r) {
      const __m128d w = _mm_set1_pd(whitened[r]);
      __m128d low, high;
      load_l(whitening + static_cast<std::ptrdiff_t>(r) * bands + k, low, high);
      a0 = _mm_add_pd(a0, _mm_mul_pd(low, w));
      a1 = _mm_add_pd(a1, _mm_mul_pd(high, w));
    }
    _mm_storeu_pd(gradient + k, a0);
    _mm_storeu_pd(gradient + k + 2, a1);
  }
  for (; k < bands; ++k) {
    double g = 0.0;
    for (int r = 0; r < bands; ++r)
      g += whitened[r] * static_cast<double>(whitening[static_cast<std::ptrdiff_t>(r) * bands + k]);
    gradient[k] = g;
  }
  return chi_square;
}

using ChiSquareKernel = double (*)(const float*, const double*, int, double*);

ChiSquareKernel select_chi_square_kernel() {
  return use_avx2_kernels() ? chi_square_avx2 : chi_square_sse2;
}
#endif

}  // namespace

double whitened_chi_square(const float* whitening, const float* flux_for_fit,
                           const double* flux_predicted, int bands, double* gradient) {
  if (bands > max_chi_square_bands) throw std::logic_error("whitened_chi_square: too many bands");
  // Zero-padded to a multiple of four for the vector kernels.
  alignas(32) double residual[max_chi_square_bands + 4];
  int k = 0;
  for (; k < bands; ++k) residual[k] = flux_predicted[k] - static_cast<double>(flux_for_fit[k]);
  for (; k % 4 != 0; ++k) residual[k] = 0.0;
#ifdef XPS_CHI_SQUARE_X86
  static const ChiSquareKernel kernel = select_chi_square_kernel();
  return kernel(whitening, residual, bands, gradient);
#else
  return chi_square_generic(whitening, residual, bands, gradient);
#endif
}

}  // namespace xps
