// Covariance inflation and eigen-clipped whitening of one star (DESIGN §1.2).
#include "xpstellar/flux_whitening.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cassert>
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

namespace {

// Writes the lower triangle of `factor` (present bands x present bands) into a stored L.
void store_lower_triangle(const Eigen::MatrixXd& factor, const std::vector<std::size_t>& present,
                          float* whitening) {
  for (Eigen::Index row = 0; row < factor.rows(); ++row) {
    float* stored_row = whitening + whitening_row_offset(present[static_cast<std::size_t>(row)]);
    for (Eigen::Index a = 0; a <= row; ++a)
      stored_row[present[static_cast<std::size_t>(a)]] = static_cast<float>(factor(row, a));
  }
}

}  // namespace

// The eigen decomposition dominates the cost (~K^3); the few small allocations here are noise
// next to it, and whitening happens once per star at load time.
WhiteningStatus FluxWhitening::whiten(const float* flux, const float* packed, float* whitening,
                                      float* flux_for_fit, float* variance) const {
  const std::size_t m = bands();
  std::fill(whitening, whitening + whitening_size(m), 0.0f);
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
      store_lower_triangle(inverse_factor, present.index, whitening);
      for (std::size_t i : present.index) flux_for_fit[i] = flux[i];
      return WhiteningStatus::ok;
    }
  }
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(covariance);
  const Eigen::VectorXd& values = eigen.eigenvalues();
  if (eigen.info() != Eigen::Success || !values.allFinite() ||
      values.minCoeff() < -m_inflation.negative_eigen_tolerance * values.maxCoeff())
    return WhiteningStatus::not_positive_semidefinite;

  Eigen::MatrixXd clipped(k, k);  // D^-1/2 U^T
  for (Eigen::Index row = 0; row < k; ++row)
    clipped.row(row) = eigen.eigenvectors().col(row).transpose() /
                       std::sqrt(std::max(values[row], m_inflation.eigen_floor));
  // The lower-triangular factor with the same L^T L, from QR rather than a Cholesky of L^T L,
  // which would square the condition number: with J the reversal, D^-1/2 U^T J = Q R gives
  // L = J R J (lower triangular) and L^T L = J R^T R J = U D^-1 U^T.
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(clipped.rowwise().reverse());
  const Eigen::MatrixXd upper = qr.matrixQR().triangularView<Eigen::Upper>();
  store_lower_triangle(upper.reverse(), present.index, whitening);
  for (std::size_t i : present.index) flux_for_fit[i] = flux[i];
  return WhiteningStatus::ok;
}

void unpack_whitening(const float* whitening, std::size_t bands, float* dense) {
  std::fill(dense, dense + bands * bands, 0.0f);
  for (std::size_t row = 0; row < bands; ++row)
    std::copy_n(whitening + whitening_row_offset(row), row + 1, dense + row * bands);
}

bool pack_whitening(const float* dense, std::size_t bands, float* whitening) {
  for (std::size_t row = 0; row < bands; ++row)
    for (std::size_t column = row + 1; column < bands; ++column)
      if (dense[row * bands + column] != 0.0f) return false;
  std::fill(whitening, whitening + whitening_size(bands), 0.0f);
  for (std::size_t row = 0; row < bands; ++row)
    std::copy_n(dense + row * bands, row + 1, whitening + whitening_row_offset(row));
  return true;
}

void whiten_columns(const float* whitening, const Eigen::MatrixXd& a, Eigen::Ref<Eigen::MatrixXd> out) {
  const Eigen::Index bands = a.rows();
  assert(out.rows() == bands && out.cols() == a.cols());
  for (Eigen::Index row = 0; row < bands; ++row) {
    const float* l = whitening + whitening_row_offset(static_cast<std::size_t>(row));
    for (Eigen::Index column = 0; column < a.cols(); ++column) {
      const double* x = a.col(column).data();
      double partial[4] = {0.0, 0.0, 0.0, 0.0};
      Eigen::Index k = 0;
      for (; k + 4 <= row + 1; k += 4)
        for (int lane = 0; lane < 4; ++lane)
          partial[lane] += static_cast<double>(l[k + lane]) * x[k + lane];
      for (; k <= row; ++k) partial[0] += static_cast<double>(l[k]) * x[k];
      out(row, column) = (partial[0] + partial[1]) + (partial[2] + partial[3]);
    }
  }
}

namespace {

constexpr int max_chi_square_bands = 256;
constexpr int padded(int bands) { return (bands + 3) & ~3; }

// The portable kernel: double products of the float L with the double residual (zero-padded to a
// multiple of four, like the rows of L), four partial sums per row (without -ffast-math the
// compiler otherwise keeps one serial chain).
[[maybe_unused]] double chi_square_generic(const float* whitening, const double* residual,
                                           int bands, double* gradient) {
  double whitened[max_chi_square_bands];
  double chi_square = 0.0;
  for (int row = 0; row < bands; ++row) {
    const float* l = whitening + whitening_row_offset(static_cast<std::size_t>(row));
    const int length = static_cast<int>(whitening_row_length(static_cast<std::size_t>(row)));
    double partial[4] = {0.0, 0.0, 0.0, 0.0};
    for (int k = 0; k < length; k += 4)
      for (int lane = 0; lane < 4; ++lane)
        partial[lane] += static_cast<double>(l[k + lane]) * residual[k + lane];
    const double sum = (partial[0] + partial[1]) + (partial[2] + partial[3]);
    whitened[row] = sum;
    chi_square += sum * sum;
  }
  if (gradient) {
    for (int k = 0; k < bands; ++k) gradient[k] = 0.0;
    for (int row = 0; row < bands; ++row) {
      const float* l = whitening + whitening_row_offset(static_cast<std::size_t>(row));
      const double w2 = 2.0 * whitened[row];
      for (int k = 0; k <= row; ++k) gradient[k] += w2 * static_cast<double>(l[k]);
    }
  }
  return chi_square;
}

#if defined(__GNUC__) && defined(__x86_64__)
#define XPS_CHI_SQUARE_X86 1

// x86-64: SSE2 is the baseline, AVX2 + FMA is chosen at run time when the CPU has it, so that
// portable builds get 4-wide fused products. Both keep every product and sum in double (the
// float entries of L convert exactly); they differ from the generic kernel only in the order of
// the sums. Pass 1 forms z = L r a block of four rows at a time (the four rows have the same
// stored length), pass 2 g = 2 L^T z sixteen (AVX2) or eight (SSE2) columns at a time over the rows
// that reach them; L (9 kB for 66 bands) stays in L1 between the passes.

XPS_TARGET_AVX2 inline __m256d load_l(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }

XPS_TARGET_AVX2 inline double horizontal_sum(__m256d v) {
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, v);
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

// Columns 4 first_group .. 4 (first_group + Groups) of 2 L^T z into `out`. A row in block b has the
// groups up to b, so the rows of the first Groups - 1 blocks reach only some of them.
template <int Groups>
XPS_TARGET_AVX2 inline void gradient_columns_avx2(const float* whitening, const double* whitened2,
                                                  int bands, int first_group, double* out) {
  __m256d even[Groups], odd[Groups];
  for (int g = 0; g < Groups; ++g) even[g] = odd[g] = _mm256_setzero_pd();
  int row = 4 * first_group;
  const float* l = whitening + whitening_row_offset(static_cast<std::size_t>(row)) + 4 * first_group;
  const int ramp_end = std::min(bands, 4 * (first_group + Groups - 1));
  for (; row < ramp_end; ++row) {
    const int reach = row / 4 - first_group + 1;
    const __m256d w = _mm256_broadcast_sd(whitened2 + row);
    for (int g = 0; g < Groups; ++g)
      if (g < reach) even[g] = _mm256_fmadd_pd(load_l(l + 4 * g), w, even[g]);
    l += whitening_row_length(static_cast<std::size_t>(row));
  }
  // Even and odd rows in separate accumulators: 2 x Groups chains hide the FMA latency.
  for (; row + 2 <= bands; row += 2) {
    const float* lo = l + whitening_row_length(static_cast<std::size_t>(row));
    const __m256d we = _mm256_broadcast_sd(whitened2 + row);
    const __m256d wo = _mm256_broadcast_sd(whitened2 + row + 1);
    for (int g = 0; g < Groups; ++g) {
      even[g] = _mm256_fmadd_pd(load_l(l + 4 * g), we, even[g]);
      odd[g] = _mm256_fmadd_pd(load_l(lo + 4 * g), wo, odd[g]);
    }
    l = lo + whitening_row_length(static_cast<std::size_t>(row + 1));
  }
  if (row < bands) {
    const __m256d w = _mm256_broadcast_sd(whitened2 + row);
    for (int g = 0; g < Groups; ++g) even[g] = _mm256_fmadd_pd(load_l(l + 4 * g), w, even[g]);
  }
  for (int g = 0; g < Groups; ++g) _mm256_store_pd(out + 4 * g, _mm256_add_pd(even[g], odd[g]));
}

XPS_TARGET_AVX2 double chi_square_avx2(const float* whitening, const double* residual, int bands,
                                       double* gradient) {
  alignas(32) double whitened[max_chi_square_bands + 4];
  const int whole_blocks = bands / 4;
  __m256d chi_square4 = _mm256_setzero_pd();
  for (int block = 0; block < whole_blocks; ++block) {
    const int length = 4 * (block + 1);
    const float* l0 = whitening + whitening_row_offset(4 * static_cast<std::size_t>(block));
    const float* l1 = l0 + length;
    const float* l2 = l1 + length;
    const float* l3 = l2 + length;
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), a2 = _mm256_setzero_pd(),
            a3 = _mm256_setzero_pd();
    for (int k = 0; k < length; k += 4) {
      const __m256d r = _mm256_load_pd(residual + k);
      a0 = _mm256_fmadd_pd(load_l(l0 + k), r, a0);
      a1 = _mm256_fmadd_pd(load_l(l1 + k), r, a1);
      a2 = _mm256_fmadd_pd(load_l(l2 + k), r, a2);
      a3 = _mm256_fmadd_pd(load_l(l3 + k), r, a3);
    }
    // Horizontal sums of the four rows into one vector (z_row .. z_row+3).
    const __m256d h01 = _mm256_hadd_pd(a0, a1);
    const __m256d h23 = _mm256_hadd_pd(a2, a3);
    const __m256d z = _mm256_add_pd(_mm256_permute2f128_pd(h01, h23, 0x20),
                                    _mm256_permute2f128_pd(h01, h23, 0x31));
    _mm256_store_pd(whitened + 4 * block, z);
    chi_square4 = _mm256_fmadd_pd(z, z, chi_square4);
  }
  double chi_square = horizontal_sum(chi_square4);
  for (int row = 4 * whole_blocks; row < bands; ++row) {
    const float* l = whitening + whitening_row_offset(static_cast<std::size_t>(row));
    const int length = static_cast<int>(whitening_row_length(static_cast<std::size_t>(row)));
    __m256d a = _mm256_setzero_pd();
    for (int k = 0; k < length; k += 4)
      a = _mm256_fmadd_pd(load_l(l + k), _mm256_load_pd(residual + k), a);
    const double z = horizontal_sum(a);
    whitened[row] = z;
    chi_square += z * z;
  }
  if (!gradient) return chi_square;

  for (int r = 0; r < bands; ++r) whitened[r] *= 2.0;
  alignas(32) double padded_gradient[max_chi_square_bands + 16];
  const int groups = padded(bands) / 4;
  for (int first = 0; first < groups; first += 4) {
    double* out = padded_gradient + 4 * first;
    switch (std::min(4, groups - first)) {
      case 4: gradient_columns_avx2<4>(whitening, whitened, bands, first, out); break;
      case 3: gradient_columns_avx2<3>(whitening, whitened, bands, first, out); break;
      case 2: gradient_columns_avx2<2>(whitening, whitened, bands, first, out); break;
      default: gradient_columns_avx2<1>(whitening, whitened, bands, first, out); break;
    }
  }
  std::copy_n(padded_gradient, bands, gradient);
  return chi_square;
}

// The SSE2 baseline: the same two passes two doubles wide, a block of four rows (pass 1) or eight
// columns (pass 2) at a time.
inline void load_l_sse2(const float* p, __m128d& low, __m128d& high) {
  const __m128 f = _mm_loadu_ps(p);
  low = _mm_cvtps_pd(f);
  high = _mm_cvtps_pd(_mm_movehl_ps(f, f));
}

// One stored row of `length` floats against the residual: z = sum_k l_k r_k.
inline double row_product_sse2(const float* l, const double* residual, int length) {
  __m128d a = _mm_setzero_pd(), b = _mm_setzero_pd();
  for (int k = 0; k < length; k += 4) {
    __m128d low, high;
    load_l_sse2(l + k, low, high);
    a = _mm_add_pd(a, _mm_mul_pd(low, _mm_load_pd(residual + k)));
    b = _mm_add_pd(b, _mm_mul_pd(high, _mm_load_pd(residual + k + 2)));
  }
  alignas(16) double s[2];
  _mm_store_pd(s, _mm_add_pd(a, b));
  return s[0] + s[1];
}

template <int Groups>
inline void gradient_columns_sse2(const float* whitening, const double* whitened2, int bands,
                                  int first_group, double* out) {
  __m128d low[Groups], high[Groups];
  for (int g = 0; g < Groups; ++g) low[g] = high[g] = _mm_setzero_pd();
  int row = 4 * first_group;
  const float* l = whitening + whitening_row_offset(static_cast<std::size_t>(row)) + 4 * first_group;
  for (; row < bands; ++row) {
    const int reach = row / 4 - first_group + 1;
    const __m128d w = _mm_set1_pd(whitened2[row]);
    for (int g = 0; g < Groups; ++g)
      if (g < reach) {
        __m128d l_low, l_high;
        load_l_sse2(l + 4 * g, l_low, l_high);
        low[g] = _mm_add_pd(low[g], _mm_mul_pd(l_low, w));
        high[g] = _mm_add_pd(high[g], _mm_mul_pd(l_high, w));
      }
    l += whitening_row_length(static_cast<std::size_t>(row));
  }
  for (int g = 0; g < Groups; ++g) {
    _mm_store_pd(out + 4 * g, low[g]);
    _mm_store_pd(out + 4 * g + 2, high[g]);
  }
}

double chi_square_sse2(const float* whitening, const double* residual, int bands,
                       double* gradient) {
  alignas(16) double whitened[max_chi_square_bands + 4];
  double chi_square = 0.0;
  const float* l = whitening;
  for (int row = 0; row < bands; ++row) {
    const int length = static_cast<int>(whitening_row_length(static_cast<std::size_t>(row)));
    const double z = row_product_sse2(l, residual, length);
    whitened[row] = z;
    chi_square += z * z;
    l += length;
  }
  if (!gradient) return chi_square;

  for (int r = 0; r < bands; ++r) whitened[r] *= 2.0;
  alignas(16) double padded_gradient[max_chi_square_bands + 8];
  const int groups = padded(bands) / 4;
  for (int first = 0; first < groups; first += 2) {
    if (groups - first >= 2)
      gradient_columns_sse2<2>(whitening, whitened, bands, first, padded_gradient + 4 * first);
    else
      gradient_columns_sse2<1>(whitening, whitened, bands, first, padded_gradient + 4 * first);
  }
  std::copy_n(padded_gradient, bands, gradient);
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
  // Zero-padded to a multiple of four, like the stored rows of L.
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
