// The observation model: what Gaia, 2MASS, unWISE and a LAMOST-like survey would measure of a
// truth star (docs/mock.md §Observation).
#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

#include "xpstellar/random_stream.hpp"
#include "xpstellar/config.hpp"
#include "xpstellar/mock_survey.hpp"
#include "xpstellar/partition.hpp"

namespace xps::mock {
namespace {

#include "xp_noise_template.inc"

constexpr double nan = std::numeric_limits<double>::quiet_NaN();
constexpr double magnitude_to_flux_error = 0.4 * 2.302585092994046;  // ln 10 / 2.5

struct ObservationSettings {
  std::uint64_t seed;
  double xp_noise, xp_background_g, xp_calibration_floor;
  double tmass_sigma_floor, tmass_sigma_at_limit;
  std::array<double, 3> tmass_limit;
  double unwise_sigma_floor, unwise_sigma_at_limit;
  std::array<double, 2> unwise_limit;
  double norm_dg_base, norm_dg_plane, norm_dg_plane_width, norm_dg_scatter;
  double tmass_crowding, wise_crowding;
  double parallax_zero_point, parallax_error_scale;
  double ruwe_sigma, binary_ruwe_fraction;
  double label_fraction, label_g_max, label_g_min;
  std::int64_t label_pilot_stars;
  std::array<double, 2> teff_err, logg_err, feh_err;
  double e_prior_err_min, e_prior_err_frac;
};

ObservationSettings read_settings(const ParameterSet& p) {
  return {static_cast<std::uint64_t>(p.integer("survey.seed")),
          p.real("observation.xp_noise"),
          p.real("observation.xp_background_g"),
          p.real("observation.xp_calibration_floor"),
          p.real("observation.tmass_sigma_floor"),
          p.real("observation.tmass_sigma_at_limit"),
          {p.real("observation.tmass_limit_j"), p.real("observation.tmass_limit_h"),
           p.real("observation.tmass_limit_ks")},
          p.real("observation.unwise_sigma_floor"),
          p.real("observation.unwise_sigma_at_limit"),
          {p.real("observation.unwise_limit_w1"), p.real("observation.unwise_limit_w2")},
          p.real("observation.norm_dg_base"),
          p.real("observation.norm_dg_plane"),
          p.real("observation.norm_dg_plane_width"),
          p.real("observation.norm_dg_scatter"),
          p.real("observation.tmass_crowding_norm_dg"),
          p.real("observation.wise_crowding_norm_dg"),
          p.real("observation.parallax_zero_point"),
          p.real("observation.parallax_error_scale"),
          p.real("observation.ruwe_sigma"),
          p.real("observation.binary_ruwe_fraction"),
          p.real("labels.fraction"),
          p.real("labels.g_max"),
          p.real("labels.g_min"),
          p.integer("labels.pilot_stars"),
          {p.real("labels.teff_err_min"), p.real("labels.teff_err_max")},
          {p.real("labels.logg_err_min"), p.real("labels.logg_err_max")},
          {p.real("labels.feh_err_min"), p.real("labels.feh_err_max")},
          p.real("labels.e_prior_err_min"),
          p.real("labels.e_prior_err_frac")};
}

// Gaia DR3-like parallax error (the Gaia science-performance law), in mas.
double parallax_error(double g_mag, double scale) {
  const double z = std::pow(10.0, 0.4 * (std::max(g_mag, 13.0) - 15.0));
  return scale * std::sqrt(40.0 + 800.0 * z + 30.0 * z * z) / 1000.0;
}

}  // namespace

struct ObservationModel::Impl {
  ObservationSettings settings;
  const TruthModel* truth;
  using XpMatrix = Eigen::Matrix<double, xp_sample_count, xp_sample_count>;
  using XpVector = Eigen::Matrix<double, xp_sample_count, 1>;
  XpMatrix correlation_cholesky;
  double excess_normalisation = 1.0;
  double label_probability = 0.0;  // per eligible star, so that label_fraction of all are labelled

  Impl(const ParameterSet& p, const TruthModel& truth_model)
      : settings(read_settings(p)), truth(&truth_model) {
    const XpMatrix correlation = Eigen::Map<const XpMatrix>(xp_noise_correlation);
    Eigen::LLT<XpMatrix> llt(correlation);
    correlation_cholesky = llt.matrixL();
    // Scale the BP+RP over G flux excess so that a solar-type star has the typical 1.18.
    const BandFluxes sun = truth_model.absolute_flux(truth_model.main_sequence_star(5772.0));
    excess_normalisation = 1.18 / raw_excess(sun);
    label_probability = std::min(1.0, settings.label_fraction / eligible_share());
  }

  bool label_eligible(const TruthStar& star) const {
    return star.g_mag < settings.label_g_max && star.pathology != Pathology::white_dwarf;
  }

  // Share of survey stars a spectroscopic survey could label, from the first stars of the survey
  // itself (a pure function of the seed, so every rank finds the same value).
  double eligible_share() const {
    std::int64_t eligible = 0;
    for (std::int64_t index = 0; index < settings.label_pilot_stars; ++index)
      eligible += label_eligible(truth->draw(index)) ? 1 : 0;
    return std::max(static_cast<double>(eligible), 1.0) /
           static_cast<double>(settings.label_pilot_stars);
  }

  double raw_excess(const BandFluxes& flux) const {
    const auto m = truth->broad_band_magnitudes(flux);
    return (std::pow(10.0, -0.4 * m.bp) + std::pow(10.0, -0.4 * m.rp)) / std::pow(10.0, -0.4 * m.g);
  }

  // sigma_k = sqrt((eta(G) r_k)^2 f_k <f> + (floor f_k)^2): a photon-like term shaped by the real
  // XP error profile, growing with G, with a background term that takes over at faint G.
  std::array<double, xp_sample_count> xp_sigma(const BandFluxes& flux, double g_mag) const {
    const auto& s = settings;
    double mean_flux = 0;
    for (std::size_t k = 0; k < xp_sample_count; ++k) mean_flux += flux[k];
    mean_flux /= static_cast<double>(xp_sample_count);
    const double photon = std::pow(10.0, 0.4 * (g_mag - 15.0));
    const double background = photon * photon / std::pow(10.0, 0.4 * (s.xp_background_g - 15.0));
    const double eta2 = s.xp_noise * s.xp_noise * (photon + background);
    std::array<double, xp_sample_count> sigma{};
    for (std::size_t k = 0; k < xp_sample_count; ++k) {
      const double f = std::max(flux[k], 1e-6 * mean_flux);
      sigma[k] = std::sqrt(eta2 * xp_noise_profile[k] * xp_noise_profile[k] * f * mean_flux +
                           std::pow(s.xp_calibration_floor * f, 2));
    }
    return sigma;
  }

  void observe(const TruthStar& star, StarTable& table, std::size_t row) const {
    const auto& s = settings;
    RandomStream random(s.seed, static_cast<std::uint64_t>(star.index), StreamPurpose::observation);
    const std::size_t bands = standard_band_count;
    const std::size_t packed = packed_triangle_size(bands);
    float* flux = &table.flux[row * bands];
    float* cov = &table.flux_cov[row * packed];
    std::fill(cov, cov + packed, 0.0f);

    table.source_id[row] =
        make_source_id(healpix_pixel_from_radec(star.ra, star.dec, source_id_healpix_level),
                       star.index);
    table.ra[row] = star.ra;
    table.dec[row] = star.dec;

    // XP: correlated noise with the real correlation structure.
    const auto sigma = xp_sigma(star.flux, star.g_mag);
    XpVector white;
    for (std::size_t k = 0; k < xp_sample_count; ++k) white[static_cast<Eigen::Index>(k)] = random.normal();
    const XpVector correlated = correlation_cholesky.triangularView<Eigen::Lower>() * white;
    for (std::size_t i = 0; i < xp_sample_count; ++i) {
      flux[i] = static_cast<float>(star.flux[i] + sigma[i] * correlated[static_cast<Eigen::Index>(i)]);
      for (std::size_t j = i; j < xp_sample_count; ++j)
        cov[packed_triangle_index(i, j, bands)] = static_cast<float>(
            sigma[i] * sigma[j] *
            xp_noise_correlation[i * xp_sample_count + j]);
    }
    double excess = excess_normalisation * raw_excess(star.flux) * (1.0 + random.normal(0.0, 0.005));
    if (star.pathology == Pathology::corrupted_spectrum) {
      // A stretch of samples scaled by a wrong factor, as a bad calibration or a blend would do.
      const auto length = static_cast<std::size_t>(random.uniform(4.0, 13.0));
      const auto start = static_cast<std::size_t>(random.uniform(0.0, double(xp_sample_count - length)));
      const double factor = std::exp(random.normal(0.0, 0.7));
      for (std::size_t k = start; k < start + length; ++k) flux[k] = static_cast<float>(flux[k] * factor);
      excess *= random.uniform(1.2, 1.6);
    }

    // Crowding decides which NIR bands exist at all.
    const double norm_dg = s.norm_dg_base +
                           s.norm_dg_plane * std::exp(-std::abs(star.b) / s.norm_dg_plane_width) +
                           random.normal(0.0, s.norm_dg_scatter);
    if (norm_dg > s.tmass_crowding) excess += 0.05;
    for (std::size_t n = 0; n < 3; ++n) {
      const std::size_t band = xp_sample_count + n;
      const double magnitude = nir_flux_to_magnitude(n, star.flux[band]);
      const double sigma_m = std::hypot(
          s.tmass_sigma_floor, s.tmass_sigma_at_limit * std::pow(10.0, 0.4 * (magnitude - s.tmass_limit[n])));
      const double observed_m = magnitude + random.normal(0.0, sigma_m);
      const bool missing = norm_dg > s.tmass_crowding || magnitude > s.tmass_limit[n];
      set_nir(flux, cov, band, missing, nir_magnitude_to_flux(n, observed_m), sigma_m * magnitude_to_flux_error);
    }
    for (std::size_t n = 0; n < 2; ++n) {
      const std::size_t band = xp_sample_count + 3 + n;
      const double magnitude = nir_flux_to_magnitude(3 + n, star.flux[band]);
      const double relative = std::hypot(
          s.unwise_sigma_floor, s.unwise_sigma_at_limit * std::pow(10.0, 0.4 * (magnitude - s.unwise_limit[n])));
      const double observed = star.flux[band] * (1.0 + random.normal(0.0, relative));
      const bool missing = norm_dg > s.wise_crowding || magnitude > s.unwise_limit[n];
      set_nir(flux, cov, band, missing, observed, relative * star.flux[band] / observed);
    }

    // Astrometry and photometry.
    const double sigma_parallax = parallax_error(star.g_mag, s.parallax_error_scale);
    table.parallax[row] = static_cast<float>(star.parallax + s.parallax_zero_point +
                                             random.normal(0.0, sigma_parallax));
    table.parallax_error[row] = static_cast<float>(sigma_parallax);
    const auto magnitudes = truth->broad_band_magnitudes(star.flux);
    table.phot_g_mean_mag[row] = static_cast<float>(star.g_mag + random.normal(0.0, 0.003));
    table.bp_rp[row] = static_cast<float>(magnitudes.bp - magnitudes.rp + random.normal(0.0, 0.01));
    double ruwe = std::exp(random.normal(0.0, s.ruwe_sigma));
    if (star.is_binary && random.bernoulli(s.binary_ruwe_fraction)) ruwe += random.exponential(0.5);
    table.ruwe[row] = static_cast<float>(ruwe);
    double fidelity = 1.0 - random.exponential(0.01);
    if (star.pathology == Pathology::corrupted_spectrum) fidelity = random.uniform(0.0, 0.6);
    table.fidelity_v2[row] = static_cast<float>(std::clamp(fidelity, 0.0, 1.0));
    table.norm_dg[row] = static_cast<float>(norm_dg);
    table.phot_bp_rp_excess_factor[row] = static_cast<float>(excess);

    observe_labels(star, table, row, random);
    fill_truth(star, table, row);
  }

  void set_nir(float* flux, float* cov, std::size_t band, bool missing, double value,
               double sigma) const {
    const std::size_t bands = standard_band_count;
    if (missing || !std::isfinite(value) || !(sigma > 0)) {
      flux[band] = static_cast<float>(nan);
      for (std::size_t i = 0; i < bands; ++i)
        cov[packed_triangle_index(std::min(i, band), std::max(i, band), bands)] = static_cast<float>(nan);
      return;
    }
    flux[band] = static_cast<float>(value);
    cov[packed_triangle_index(band, band, bands)] = static_cast<float>(sigma * sigma * value * value);
  }

  void observe_labels(const TruthStar& star, StarTable& table, std::size_t row,
                      RandomStream& random) const {
    const auto& s = settings;
    if (!(random.bernoulli(label_probability) && label_eligible(star))) return;
    const double t = std::pow(std::clamp((star.g_mag - s.label_g_min) / (s.label_g_max - s.label_g_min), 0.0, 1.0), 2);
    const auto error = [t](const std::array<double, 2>& range) { return range[0] + (range[1] - range[0]) * t; };
    const double teff_err = error(s.teff_err), logg_err = error(s.logg_err), feh_err = error(s.feh_err);
    auto& labels = table.labels;
    labels.teff[row] = static_cast<float>(star.primary.teff + random.normal(0.0, teff_err));
    labels.logg[row] = static_cast<float>(star.primary.logg + random.normal(0.0, logg_err));
    labels.feh[row] = static_cast<float>(star.primary.feh + random.normal(0.0, feh_err));
    labels.teff_err[row] = static_cast<float>(teff_err);
    labels.logg_err[row] = static_cast<float>(logg_err);
    labels.feh_err[row] = static_cast<float>(feh_err);
    const double e_err = s.e_prior_err_min + s.e_prior_err_frac * star.E;
    labels.E_prior[row] = static_cast<float>(star.E + random.normal(0.0, e_err));
    labels.E_prior_err[row] = static_cast<float>(e_err);
  }

  void fill_truth(const TruthStar& star, StarTable& table, std::size_t row) const {
    auto& truth_table = table.truth;
    truth_table.teff[row] = static_cast<float>(star.primary.teff);
    truth_table.logg[row] = static_cast<float>(star.primary.logg);
    truth_table.feh[row] = static_cast<float>(star.primary.feh);
    truth_table.E[row] = static_cast<float>(star.E);
    truth_table.parallax[row] = static_cast<float>(star.parallax);
    truth_table.mass_ratio[row] = static_cast<float>(star.mass_ratio);
    truth_table.xi[row] = static_cast<float>(star.r_v - truth->r_v_mean());
    truth_table.is_binary[row] = star.is_binary ? 1 : 0;
    truth_table.pathology[row] = static_cast<std::uint8_t>(star.pathology);
    truth_table.r_v[row] = static_cast<float>(star.r_v);
    truth_table.distance_pc[row] = static_cast<float>(star.distance_pc);
    for (std::size_t k = 0; k < standard_band_count; ++k)
      truth_table.flux[row * standard_band_count + k] = static_cast<float>(star.flux[k]);
  }
};

ObservationModel::ObservationModel(const ParameterSet& parameters, const TruthModel& truth)
    : m_impl(std::make_unique<Impl>(parameters, truth)) {}
ObservationModel::~ObservationModel() = default;
ObservationModel::ObservationModel(ObservationModel&&) noexcept = default;
ObservationModel& ObservationModel::operator=(ObservationModel&&) noexcept = default;

void ObservationModel::observe(const TruthStar& star, StarTable& table, std::size_t row) const {
  m_impl->observe(star, table, row);
}

std::vector<double> ObservationModel::xp_covariance(const BandFluxes& flux, double g_mag) const {
  const auto sigma = m_impl->xp_sigma(flux, g_mag);
  std::vector<double> covariance(xp_sample_count * xp_sample_count);
  for (std::size_t i = 0; i < xp_sample_count; ++i)
    for (std::size_t j = 0; j < xp_sample_count; ++j)
      covariance[i * xp_sample_count + j] = sigma[i] * sigma[j] * xp_noise_correlation[i * xp_sample_count + j];
  return covariance;
}

}  // namespace xps::mock
