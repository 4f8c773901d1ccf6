// The truth model: population (kinds, labels, masses, binaries), positions, dust and the
// noiseless observed flux of every star (docs/mock.md).
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "galaxy.hpp"
#include "intrinsic_spectrum.hpp"
#include "xpstellar/random_stream.hpp"
#include "xpstellar/config.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/mock_truth.hpp"

namespace xps::mock {

double main_sequence_logg(double teff) {
  if (teff < 5000.0) return 4.6;
  if (teff < 6300.0) return 4.6 - 5.0e-4 * (teff - 5000.0);
  return 3.95;
}

double giant_branch_teff(double logg) {
  if (logg < 3.65) return 5200.0 - 441.86 * (3.65 - logg);
  return 5900.0 - 1400.0 * (4.15 - logg);
}

namespace {

constexpr double solar_teff = 5772.0;
constexpr double sun_g_abs = 4.67, sun_bp_abs = 5.03, sun_rp_abs = 4.20;
constexpr double r_v_grid_min = 2.0, r_v_grid_max = 6.0, r_v_grid_step = 0.005;
constexpr int max_survey_attempts = 2000;

struct Population {
  double ms_share, gb_share;
  double ms_teff_min, ms_teff_max, ms_teff_peak, ms_teff_log_sigma;
  double ms_logg_evolution, ms_logg_scatter;
  double gb_logg_min, gb_logg_max, gb_teff_scatter, teff_feh_slope;
  double rc_logg_mean, rc_logg_sigma, rc_teff_mean, rc_teff_sigma;
  double giant_mass, giant_mass_log_sigma, mass_teff_exponent;
  double feh_plane, feh_gradient_z, feh_sigma, metal_poor_fraction, metal_poor_mean,
      metal_poor_sigma, feh_min, feh_max;
  double binary_fraction, q_min, q_max, giant_companion_logg;
  double wd_fraction, hot_fraction, cool_fraction, corrupted_fraction;
  double g_limit, g_bright, e_scatter;
};

Population read_population(const ParameterSet& p) {
  const double ms = p.real("population.main_sequence_fraction");
  const double gb = p.real("population.giant_branch_fraction");
  const double rc = p.real("population.red_clump_fraction");
  if (std::abs(ms + gb + rc - 1.0) > 1e-6)
    throw UsageError("population.main_sequence_fraction + giant_branch_fraction + "
                     "red_clump_fraction must sum to 1 (they sum to " +
                     std::to_string(ms + gb + rc) + ")");
  if (p.real("population.ms_teff_min") >= p.real("population.ms_teff_max"))
    throw UsageError("population.ms_teff_min must be below population.ms_teff_max");
  if (p.real("binaries.q_min") > p.real("binaries.q_max"))
    throw UsageError("binaries.q_min must not exceed binaries.q_max");
  if (p.real("population.feh_min") >= p.real("population.feh_max"))
    throw UsageError("population.feh_min must be below population.feh_max");
  if (p.real("survey.g_bright") >= p.real("survey.g_limit"))
    throw UsageError("survey.g_bright must be brighter (smaller) than survey.g_limit");
  const double odd = p.real("pathology.white_dwarf_fraction") +
                     p.real("pathology.hot_star_fraction") +
                     p.real("pathology.cool_dwarf_fraction");
  if (odd > 1.0) throw UsageError("pathology fractions of star kinds sum to more than 1");
  return {ms,
          gb,
          p.real("population.ms_teff_min"),
          p.real("population.ms_teff_max"),
          p.real("population.ms_teff_peak"),
          p.real("population.ms_teff_log_sigma"),
          p.real("population.ms_logg_evolution"),
          p.real("population.ms_logg_scatter"),
          p.real("population.gb_logg_min"),
          p.real("population.gb_logg_max"),
          p.real("population.gb_teff_scatter"),
          p.real("population.gb_teff_feh_slope"),
          p.real("population.rc_logg_mean"),
          p.real("population.rc_logg_sigma"),
          p.real("population.rc_teff_mean"),
          p.real("population.rc_teff_sigma"),
          p.real("population.giant_mass"),
          p.real("population.giant_mass_log_sigma"),
          p.real("population.ms_mass_teff_exponent"),
          p.real("population.feh_plane"),
          p.real("population.feh_gradient_z"),
          p.real("population.feh_sigma"),
          p.real("population.metal_poor_fraction"),
          p.real("population.metal_poor_feh_mean"),
          p.real("population.metal_poor_feh_sigma"),
          p.real("population.feh_min"),
          p.real("population.feh_max"),
          p.real("binaries.fraction"),
          p.real("binaries.q_min"),
          p.real("binaries.q_max"),
          p.real("binaries.giant_companion_logg"),
          p.real("pathology.white_dwarf_fraction"),
          p.real("pathology.hot_star_fraction"),
          p.real("pathology.cool_dwarf_fraction"),
          p.real("pathology.corrupted_fraction"),
          p.real("survey.g_limit"),
          p.real("survey.g_bright"),
          p.real("dust.e_scatter")};
}

// Passband weights on the XP samples: crude but smooth stand-ins for G, BP and RP.
double g_weight(double lambda) { return std::exp(-0.5 * std::pow((lambda - 640.0) / 200.0, 2)); }
double bp_weight(double lambda) { return 1.0 / (1.0 + std::exp((lambda - 660.0) / 12.0)); }
double rp_weight(double lambda) { return 1.0 / (1.0 + std::exp((650.0 - lambda) / 12.0)); }

}  // namespace

struct TruthModel::Impl {
  std::uint64_t seed;
  Population population;
  SpectrumFeatures features;
  Galaxy galaxy;
  ExtinctionLaw law;
  double r_v_mean;
  std::vector<double> wavelengths;
  IntrinsicSpectrumModel spectrum;
  std::vector<std::array<double, 3>> passband_weights;  // per XP sample: G, BP, RP
  std::array<double, 3> zero_points{};
  std::vector<BandFluxes> r_grid;  // R at R_V = r_v_grid_min + i * r_v_grid_step

  Impl(const ParameterSet& p)
      : seed(static_cast<std::uint64_t>(p.integer("survey.seed"))),
        population(read_population(p)),
        features(read_spectrum_features(p)),
        galaxy(p, seed),
        law(parse_extinction_law(p.text("dust.extinction_law"))),
        r_v_mean(p.real("dust.r_v_mean")),
        wavelengths(standard_wavelengths_nm()),
        spectrum(features, wavelengths) {
    for (std::size_t k = 0; k < xp_sample_count; ++k)
      passband_weights.push_back(
          {g_weight(wavelengths[k]), bp_weight(wavelengths[k]), rp_weight(wavelengths[k])});
    StarComponent sun{solar_teff, 4.438, 0.0, 1.0};
    BandFluxes sun_at_10pc = spectrum.flux(sun);
    for (auto& f : sun_at_10pc) f *= 1e4;  // parallax 100 mas
    const auto raw = raw_magnitudes(sun_at_10pc);
    zero_points = {sun_g_abs - raw[0], sun_bp_abs - raw[1], sun_rp_abs - raw[2]};
    const auto grid_size =
        static_cast<std::size_t>(std::lround((r_v_grid_max - r_v_grid_min) / r_v_grid_step)) + 1;
    for (std::size_t i = 0; i < grid_size; ++i)
      r_grid.push_back(exact_r(r_v_grid_min + r_v_grid_step * static_cast<double>(i)));
  }

  std::array<double, 3> raw_magnitudes(const BandFluxes& flux) const {
    std::array<double, 3> sums{};
    for (std::size_t k = 0; k < xp_sample_count; ++k)
      for (int band = 0; band < 3; ++band) sums[band] += passband_weights[k][band] * flux[k];
    return {-2.5 * std::log10(sums[0]), -2.5 * std::log10(sums[1]), -2.5 * std::log10(sums[2])};
  }

  double g_magnitude(const BandFluxes& flux) const {
    double sum = 0;
    for (std::size_t k = 0; k < xp_sample_count; ++k) sum += passband_weights[k][0] * flux[k];
    return -2.5 * std::log10(sum) + zero_points[0];
  }

  // E is normalised like E(B-V): R = (ln 10 / 2.5) R_V A(lambda)/A(V).
  BandFluxes exact_r(double r_v) const {
    BandFluxes r{};
    for (std::size_t k = 0; k < r.size(); ++k)
      r[k] = 0.4 * std::log(10.0) * r_v * extinction_a_over_av(law, wavelengths[k], r_v);
    return r;
  }

  BandFluxes interpolated_r(double r_v) const {
    const double position = (std::clamp(r_v, r_v_grid_min, r_v_grid_max) - r_v_grid_min) /
                            r_v_grid_step;
    const auto i = std::min(static_cast<std::size_t>(position), r_grid.size() - 2);
    const double t = position - static_cast<double>(i);
    BandFluxes r{};
    for (std::size_t k = 0; k < r.size(); ++k)
      r[k] = (1.0 - t) * r_grid[i][k] + t * r_grid[i + 1][k];
    return r;
  }

  double main_sequence_mass(double teff) const {
    return std::pow(teff / solar_teff, 1.0 / population.mass_teff_exponent);
  }

  StarKind draw_kind(RandomStream& random) const {
    const double u = random.uniform();
    const auto& pop = population;
    if (u < pop.wd_fraction) return StarKind::white_dwarf;
    if (u < pop.wd_fraction + pop.hot_fraction) return StarKind::hot_star;
    if (u < pop.wd_fraction + pop.hot_fraction + pop.cool_fraction) return StarKind::cool_dwarf;
    const double v = random.uniform();
    if (v < pop.ms_share) return StarKind::main_sequence;
    if (v < pop.ms_share + pop.gb_share) return StarKind::giant_branch;
    return StarKind::red_clump;
  }

  // Teff, logg and mass at [Fe/H] = 0; [Fe/H] (which depends on position) is applied later.
  StarComponent draw_base_labels(RandomStream& random, StarKind kind) const {
    const auto& pop = population;
    StarComponent star;
    switch (kind) {
      case StarKind::main_sequence: {
        do {
          star.teff = pop.ms_teff_peak * std::exp(random.normal(0.0, pop.ms_teff_log_sigma));
        } while (star.teff < pop.ms_teff_min || star.teff > pop.ms_teff_max);
        star.logg = main_sequence_logg(star.teff) -
                    pop.ms_logg_evolution * std::abs(random.normal()) +
                    random.normal(0.0, pop.ms_logg_scatter);
        star.mass = main_sequence_mass(star.teff);
        break;
      }
      case StarKind::giant_branch:
        star.logg = random.uniform(pop.gb_logg_min, pop.gb_logg_max);
        star.teff = giant_branch_teff(star.logg) + random.normal(0.0, pop.gb_teff_scatter);
        star.mass = pop.giant_mass * std::exp(random.normal(0.0, pop.giant_mass_log_sigma));
        break;
      case StarKind::red_clump:
        star.logg = random.normal(pop.rc_logg_mean, pop.rc_logg_sigma);
        star.teff = random.normal(pop.rc_teff_mean, pop.rc_teff_sigma);
        star.mass = pop.giant_mass * std::exp(random.normal(0.0, pop.giant_mass_log_sigma));
        break;
      case StarKind::white_dwarf:
        star.teff = random.uniform(6000.0, 20000.0);
        star.logg = random.normal(8.0, 0.15);
        star.mass = 0.6;
        break;
      case StarKind::hot_star:
        star.teff = random.uniform(12500.0, 20000.0);
        star.logg = main_sequence_logg(star.teff) + random.normal(0.0, pop.ms_logg_scatter);
        star.mass = main_sequence_mass(star.teff);
        break;
      case StarKind::cool_dwarf:
        star.teff = random.uniform(3000.0, 3900.0);
        star.logg = random.normal(4.8, 0.1);
        star.mass = main_sequence_mass(star.teff);
        break;
    }
    return star;
  }

  StarComponent with_metallicity(StarComponent star, StarKind kind, double feh) const {
    star.feh = feh;
    if (kind == StarKind::giant_branch || kind == StarKind::red_clump)
      star.teff += population.teff_feh_slope * feh;
    return star;
  }

  double draw_metallicity(RandomStream& random, double height_kpc) const {
    const auto& pop = population;
    const bool metal_poor = random.bernoulli(pop.metal_poor_fraction);
    const double mean =
        metal_poor ? pop.metal_poor_mean : pop.feh_plane + pop.feh_gradient_z * std::abs(height_kpc);
    const double sigma = metal_poor ? pop.metal_poor_sigma : pop.feh_sigma;
    for (int attempt = 0; attempt < 32; ++attempt) {
      const double feh = random.normal(mean, sigma);
      if (feh >= pop.feh_min && feh <= pop.feh_max) return feh;
    }
    return std::clamp(mean, pop.feh_min, pop.feh_max);
  }

  StarComponent companion(const StarComponent& primary, StarKind kind, double q) const {
    const double a = population.mass_teff_exponent;
    StarComponent secondary;
    secondary.feh = primary.feh;
    secondary.mass = q * primary.mass;
    if (kind == StarKind::giant_branch || kind == StarKind::red_clump) {
      secondary.teff = solar_teff * std::pow(secondary.mass, a);
      secondary.logg = population.giant_companion_logg;
    } else {
      // Homologous main-sequence scaling with L ~ M^4: Teff ~ M^a, R^2 ~ M^(4-4a), g ~ M^(4a-3).
      secondary.teff = primary.teff * std::pow(q, a);
      secondary.logg = primary.logg + (4.0 * a - 3.0) * std::log10(q);
    }
    return secondary;
  }

  BandFluxes system_flux(const StarComponent& primary, const StarComponent* secondary) const {
    BandFluxes flux = spectrum.flux(primary);
    if (secondary) {
      const BandFluxes second = spectrum.flux(*secondary);
      for (std::size_t k = 0; k < flux.size(); ++k) flux[k] += second[k];
    }
    return flux;
  }

  // Absolute G of the system at [Fe/H] = feh (for the reach of the magnitude limit).
  double absolute_g(const StarComponent& base, StarKind kind, double feh, bool binary,
                    double q) const {
    const StarComponent primary = with_metallicity(base, kind, feh);
    const StarComponent secondary = companion(primary, kind, q);
    const BandFluxes flux = system_flux(primary, binary ? &secondary : nullptr);
    return g_magnitude(flux) - 10.0;  // the flux is at 1 kpc
  }

  TruthStar draw(std::int64_t index) const {
    RandomStream random(seed, static_cast<std::uint64_t>(index), StreamPurpose::truth);
    const auto& pop = population;
    TruthStar star;
    star.index = index;
    for (int attempt = 0; attempt < max_survey_attempts; ++attempt) {
      star.kind = draw_kind(random);
      star.pathology = star.kind == StarKind::white_dwarf  ? Pathology::white_dwarf
                       : star.kind == StarKind::hot_star   ? Pathology::hot_star
                       : star.kind == StarKind::cool_dwarf ? Pathology::cool_dwarf
                                                           : Pathology::none;
      if (star.pathology == Pathology::none && random.bernoulli(pop.corrupted_fraction))
        star.pathology = Pathology::corrupted_spectrum;
      star.is_binary = star.kind != StarKind::white_dwarf && random.bernoulli(pop.binary_fraction);
      star.mass_ratio = star.is_binary ? random.uniform(pop.q_min, pop.q_max) : 0.0;
      const StarComponent base = draw_base_labels(random, star.kind);
      // Metal-poor stars are the brightest in G (less blanketing, hotter giants): their reach
      // bounds the sphere in which this star can pass the magnitude limit.
      const double brightest =
          absolute_g(base, star.kind, pop.feh_min, star.is_binary, star.mass_ratio);
      const double reach_kpc = std::pow(10.0, (pop.g_limit - brightest + 0.2) / 5.0 - 2.0);
      // A few positions per star: extinction may push a star past the limit; then it is redrawn.
      for (int placement = 0; placement < 16; ++placement) {
        const SkyPosition position = galaxy.draw_position(random, reach_kpc);
        const double feh = draw_metallicity(random, position.galactic_z_kpc);
        star.primary = with_metallicity(base, star.kind, feh);
        star.secondary = star.is_binary ? companion(star.primary, star.kind, star.mass_ratio)
                                        : StarComponent{};
        star.distance_pc = position.distance_kpc * 1000.0;
        star.parallax = 1.0 / position.distance_kpc;
        star.r_v = galaxy.r_v(position);
        star.E = galaxy.extinction(position) * std::exp(random.normal(0.0, pop.e_scatter));
        star.ra = position.ra;
        star.dec = position.dec;
        star.l = position.l;
        star.b = position.b;
        const BandFluxes intrinsic =
            system_flux(star.primary, star.is_binary ? &star.secondary : nullptr);
        const BandFluxes r = interpolated_r(star.r_v);
        const double dilution = star.parallax * star.parallax;
        for (std::size_t k = 0; k < star.flux.size(); ++k)
          star.flux[k] = intrinsic[k] * dilution * std::exp(-star.E * r[k]);
        star.g_mag = g_magnitude(star.flux);
        if (star.g_mag <= pop.g_limit && star.g_mag >= pop.g_bright) return star;
      }
    }
    throw std::runtime_error("mock: star " + std::to_string(index) +
                             " could not be placed within the magnitude limits; check "
                             "survey.g_limit and survey.g_bright");
  }
};

TruthModel::TruthModel(const ParameterSet& parameters)
    : m_impl(std::make_unique<Impl>(parameters)) {}
TruthModel::~TruthModel() = default;
TruthModel::TruthModel(TruthModel&&) noexcept = default;
TruthModel& TruthModel::operator=(TruthModel&&) noexcept = default;

TruthStar TruthModel::draw(std::int64_t index) const { return m_impl->draw(index); }

BandFluxes TruthModel::absolute_flux(const StarComponent& component) const {
  return m_impl->spectrum.flux(component);
}

StarComponent TruthModel::companion(const StarComponent& primary, StarKind kind, double q) const {
  return m_impl->companion(primary, kind, q);
}

BandFluxes TruthModel::extinction_R(double r_v) const { return m_impl->exact_r(r_v); }

BroadBandMagnitudes TruthModel::broad_band_magnitudes(const BandFluxes& flux) const {
  const auto raw = m_impl->raw_magnitudes(flux);
  return {raw[0] + m_impl->zero_points[0], raw[1] + m_impl->zero_points[1],
          raw[2] + m_impl->zero_points[2]};
}

StarComponent TruthModel::main_sequence_star(double teff, double feh) const {
  return {teff, main_sequence_logg(teff), feh, m_impl->main_sequence_mass(teff)};
}

double TruthModel::r_v_mean() const { return m_impl->r_v_mean; }

}  // namespace xps::mock
