// The sampled basis functions of both XP bands on a wavelength grid (GaiaXPy
// SampledBasisFunctions.from_external_instrument_model) and the BP/RP merge weights
// (calibrator.__create_merge), plus the parsing of the grid and covariance options.
#include <cmath>
#include <stdexcept>
#include <string_view>

#include "xp/cubic_spline.hpp"
#include "xp/hermite.hpp"
#include "xp/text_fields.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/xp_converter.hpp"

namespace xps::xp {

namespace {

using Constants = InstrumentConstants;

constexpr std::size_t max_samples = 100000;

// BP weight 1 below merge_low, 0 above merge_high, linear between; RP the complement (written
// as GaiaXPy writes both, so that the weights are bit for bit the same).
double merge_weight(Band band, double wavelength) {
  const double low = Constants::merge_low_nm;
  const double high = Constants::merge_high_nm;
  if (band == Band::bp) {
    return wavelength < low    ? 1.0
           : wavelength > high ? 0.0
                               : 1.0 - (wavelength - low) / (high - low);
  }
  return wavelength < low ? 0.0 : wavelength > high ? 1.0 : (wavelength - low) / (high - low);
}

// hc / (A R(lambda) lambda): photon counts per second to W m-2 nm-1; 0 where R <= 0 (GaiaXPy).
double flux_normalisation(double response, double wavelength) {
  const double hc = 1.e9 * Constants::light_speed_m_s * Constants::planck_J_s;
  return response > 0.0 ? hc / (Constants::telescope_pupil_area_m2 * response * wavelength) : 0.0;
}

DesignMatrices::BandDesign make_band_design(Band band, const BandModel& model,
                                            const std::vector<double>& wavelength) {
  DesignMatrices::BandDesign design;
  design.weight.resize(wavelength.size());
  for (std::size_t s = 0; s < wavelength.size(); ++s)
    design.weight[s] = merge_weight(band, wavelength[s]);
  // The weights are monotonic in wavelength, so the samples a band contributes to are contiguous.
  std::size_t first = 0;
  while (first < wavelength.size() && !(design.weight[first] > 0.0)) ++first;
  std::size_t last = first;
  while (last < wavelength.size() && design.weight[last] > 0.0) ++last;
  design.first_sample = first;
  design.samples = last - first;

  const std::string name = std::string(band_name(band));
  const CubicSpline dispersion(model.dispersion_wavelength_nm, model.dispersion_pseudo_wavelength,
                               name + " dispersion");
  const CubicSpline response(model.response_wavelength_nm, model.response, name + " response");
  const double scale =
      (model.norm_range_max - model.norm_range_min) / (model.pwl_range_max - model.pwl_range_min);
  const double offset = model.norm_range_min - model.pwl_range_min * scale;

  const auto n_hermite = model.inverse_bases.cols();
  const auto columns = static_cast<Eigen::Index>(design.samples);
  Eigen::MatrixXd hermite(n_hermite, columns);
  Eigen::VectorXd normalisation(columns);
  for (Eigen::Index k = 0; k < columns; ++k) {
    const double lambda = wavelength[first + static_cast<std::size_t>(k)];
    const double x = dispersion(lambda) * scale + offset;
    hermite_functions(
        x, std::span<double>(hermite.col(k).data(), static_cast<std::size_t>(n_hermite)));
    normalisation[k] = flux_normalisation(response(lambda), lambda);
  }
  const Eigen::MatrixXd inverse = model.inverse_bases * hermite;
  design.matrix = model.transformation * inverse;
  design.matrix *= normalisation.asDiagonal();
  return design;
}

}  // namespace

std::vector<double> parse_sampling(const std::string& text) {
  const std::string usage = "--sampling '" + text + "': ";
  std::array<double, 3> part{};
  std::string_view rest = text;
  for (std::size_t i = 0; i < part.size(); ++i) {
    const std::size_t colon = rest.find(':');
    if ((i < 2) == (colon == std::string_view::npos) ||
        !text::parse_double(rest.substr(0, colon), part[i]) || !std::isfinite(part[i])) {
      throw UsageError(usage + "expected START:STOP:STEP, three numbers in nm (e.g. 392:992:10)");
    }
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
  }
  const auto [start, stop, step] = part;
  if (!(step > 0.0) || stop < start) {
    throw UsageError(usage + "STEP must be positive and STOP not below START");
  }
  if (start < Constants::sampling_min_nm || stop > Constants::sampling_max_nm) {
    throw UsageError(usage + "the grid must lie within [330, 1050] nm (GaiaXPy's range)");
  }
  // Inclusive of STOP up to rounding (e.g. 330:1050:0.1).
  const double intervals = std::floor((stop - start) / step + 1e-9);
  if (intervals + 1.0 > static_cast<double>(max_samples)) {
    throw UsageError(usage + "more than " + std::to_string(max_samples) + " samples");
  }
  const auto count = static_cast<std::size_t>(intervals) + 1;
  std::vector<double> wavelength(count);
  for (std::size_t k = 0; k < count; ++k) wavelength[k] = start + static_cast<double>(k) * step;
  wavelength.back() = std::min(wavelength.back(), stop);
  return wavelength;
}

CovarianceMode parse_covariance_mode(const std::string& text) {
  if (text == "gaiaxpy") return CovarianceMode::gaiaxpy;
  if (text == "propagated") return CovarianceMode::propagated;
  throw UsageError("--covariance '" + text + "': expected gaiaxpy or propagated");
}

const char* covariance_mode_name(CovarianceMode mode) {
  return mode == CovarianceMode::gaiaxpy ? "gaiaxpy" : "propagated";
}

DesignMatrices::DesignMatrices(const Calibration& calibration, std::vector<double> wavelength_nm)
    : m_wavelength_nm(std::move(wavelength_nm)) {
  for (std::size_t s = 0; s < m_wavelength_nm.size(); ++s) {
    const double lambda = m_wavelength_nm[s];
    if (!(lambda >= Constants::sampling_min_nm && lambda <= Constants::sampling_max_nm)) {
      throw std::invalid_argument("DesignMatrices: wavelength " + std::to_string(lambda) +
                                  " nm outside [330, 1050] nm");
    }
    if (s > 0 && !(lambda > m_wavelength_nm[s - 1])) {
      throw std::invalid_argument("DesignMatrices: wavelengths not strictly increasing");
    }
  }
  for (const Band band : bands) {
    m_band[band_index(band)] = make_band_design(band, calibration[band], m_wavelength_nm);
  }
}

}  // namespace xps::xp
