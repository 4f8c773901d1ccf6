#include "galaxy.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "xpstellar/config.hpp"

namespace xps::mock {
namespace {

constexpr double degree = std::numbers::pi / 180.0;
constexpr int dust_integration_steps = 32;
constexpr int r_v_field_modes = 64;
constexpr int max_position_tries = 200000;

// ICRS -> Galactic rotation (Hipparcos, ESA 1997 vol. 1 §1.5.3); its transpose maps back.
constexpr double icrs_to_galactic[3][3] = {
    {-0.0548755604162154, -0.8734370902348850, -0.4838350155487132},
    {+0.4941094278755837, -0.4448296299600112, +0.7469822444972189},
    {-0.8676661490190047, -0.1980763734312015, +0.4559837761750669}};

std::array<double, 3> random_direction(RandomStream& random) {
  const double z = random.uniform(-1.0, 1.0);
  const double phi = random.uniform(0.0, 2.0 * std::numbers::pi);
  const double s = std::sqrt(1.0 - z * z);
  return {s * std::cos(phi), s * std::sin(phi), z};
}

}  // namespace

Galaxy::Galaxy(const ParameterSet& p, std::uint64_t seed)
    : m_sun_r(p.real("galaxy.sun_r")),
      m_sun_z(p.real("galaxy.sun_z")),
      m_scale_length(p.real("galaxy.disk_scale_length")),
      m_thin_height(p.real("galaxy.thin_scale_height")),
      m_thick_height(p.real("galaxy.thick_scale_height")),
      m_thick_fraction(p.real("galaxy.thick_fraction")),
      m_max_distance(p.real("galaxy.max_distance")),
      m_dust_e_per_kpc(p.real("dust.e_per_kpc")),
      m_dust_height(p.real("dust.scale_height")),
      m_dust_length(p.real("dust.scale_length")),
      m_r_v_mean(p.real("dust.r_v_mean")),
      m_r_v_scatter(p.real("dust.r_v_scatter")) {
  RandomStream random(seed, 0, StreamPurpose::survey);
  const double region = p.real("dust.clump_region");
  const double median_radius = p.real("dust.clump_radius");
  const double mean_e = p.real("dust.clump_e_mean");
  const auto clouds = static_cast<std::size_t>(p.integer("dust.clumps"));
  m_clouds.resize(clouds);
  for (auto& cloud : m_clouds) {
    const double r = region * std::sqrt(random.uniform());
    const double phi = random.uniform(0.0, 2.0 * std::numbers::pi);
    const double height = random.normal(0.0, m_dust_height);
    cloud.centre = {r * std::cos(phi), r * std::sin(phi), height - m_sun_z};
    cloud.radius = median_radius * std::exp(0.5 * random.normal());
    cloud.central_e = random.exponential(mean_e);
  }
  // Random Fourier features: a Gaussian random field on the sky with unit variance and the
  // configured correlation angle.
  const double wave_number = 1.0 / (p.real("dust.r_v_correlation_angle") * degree);
  m_r_v_modes.resize(r_v_field_modes);
  for (auto& mode : m_r_v_modes)
    mode = {random.normal(0.0, wave_number), random.normal(0.0, wave_number),
            random.normal(0.0, wave_number), random.uniform(0.0, 2.0 * std::numbers::pi)};
}

double Galaxy::stellar_density(double x, double y, double z) const {
  const double gx = m_sun_r - x;
  const double radius = std::sqrt(gx * gx + y * y);
  const double height = std::abs(z + m_sun_z);
  return std::exp(-(radius - m_sun_r) / m_scale_length) *
         ((1.0 - m_thick_fraction) * std::exp(-height / m_thin_height) +
          m_thick_fraction * std::exp(-height / m_thick_height));
}

SkyPosition Galaxy::make_position(const std::array<double, 3>& h) const {
  SkyPosition position;
  position.distance_kpc = std::sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2]);
  for (int i = 0; i < 3; ++i) position.direction[i] = h[i] / position.distance_kpc;
  const auto& n = position.direction;
  position.l = std::atan2(n[1], n[0]) / degree;
  if (position.l < 0) position.l += 360.0;
  position.b = std::asin(std::clamp(n[2], -1.0, 1.0)) / degree;
  std::array<double, 3> icrs{};
  for (int i = 0; i < 3; ++i)
    icrs[i] = icrs_to_galactic[0][i] * n[0] + icrs_to_galactic[1][i] * n[1] +
              icrs_to_galactic[2][i] * n[2];
  position.ra = std::atan2(icrs[1], icrs[0]) / degree;
  if (position.ra < 0) position.ra += 360.0;
  position.dec = std::asin(std::clamp(icrs[2], -1.0, 1.0)) / degree;
  position.galactic_z_kpc = h[2] + m_sun_z;
  return position;
}

// Exact rejection sampling of the disk density inside a sphere around the Sun, with whichever of
// two proposals wastes fewer draws: uniform in the sphere (nearby, faint stars) or the disk
// density itself (luminous stars seen far away).
SkyPosition Galaxy::draw_position(RandomStream& random, double max_distance_kpc) const {
  const double reach = std::clamp(max_distance_kpc, 1e-3, m_max_distance);
  const double density_bound = std::exp(std::min(reach, m_sun_r) / m_scale_length);
  const double sphere_cost = 4.0 / 3.0 * std::numbers::pi * reach * reach * reach * density_bound;
  const double disk_mass = 2.0 * std::numbers::pi * m_scale_length * m_scale_length *
                           std::exp(m_sun_r / m_scale_length) * 2.0 *
                           ((1.0 - m_thick_fraction) * m_thin_height +
                            m_thick_fraction * m_thick_height);
  const double thick_mass_share = m_thick_fraction * m_thick_height /
                                  ((1.0 - m_thick_fraction) * m_thin_height +
                                   m_thick_fraction * m_thick_height);
  std::array<double, 3> h{};
  for (int attempt = 0; attempt < max_position_tries; ++attempt) {
    if (sphere_cost < disk_mass) {
      const auto n = random_direction(random);
      const double d = reach * std::cbrt(random.uniform());
      h = {d * n[0], d * n[1], d * n[2]};
      if (random.uniform() * density_bound < stellar_density(h[0], h[1], h[2])) break;
    } else {
      const double radius = -m_scale_length * std::log(random.uniform() * random.uniform());
      const double phi = random.uniform(0.0, 2.0 * std::numbers::pi);
      const double height = random.bernoulli(thick_mass_share) ? m_thick_height : m_thin_height;
      const double z = (random.bernoulli(0.5) ? 1.0 : -1.0) * random.exponential(height);
      h = {m_sun_r - radius * std::cos(phi), radius * std::sin(phi), z - m_sun_z};
      if (h[0] * h[0] + h[1] * h[1] + h[2] * h[2] <= reach * reach) break;
    }
  }
  if (h[0] == 0 && h[1] == 0 && h[2] == 0) h = {1e-3, 0, 0};
  return make_position(h);
}

double Galaxy::extinction(const SkyPosition& position) const {
  const auto& n = position.direction;
  const double d = position.distance_kpc;
  const double step = d / dust_integration_steps;
  double column = 0.0;
  for (int i = 0; i < dust_integration_steps; ++i) {
    const double s = (i + 0.5) * step;
    const double x = m_sun_r - s * n[0], y = s * n[1], z = s * n[2] + m_sun_z;
    const double radius = std::sqrt(x * x + y * y);
    column += std::exp(-(radius - m_sun_r) / m_dust_length - std::abs(z) / m_dust_height);
  }
  double e = m_dust_e_per_kpc * column * step;
  for (const auto& cloud : m_clouds) {
    const double along = cloud.centre[0] * n[0] + cloud.centre[1] * n[1] + cloud.centre[2] * n[2];
    const double centre2 = cloud.centre[0] * cloud.centre[0] + cloud.centre[1] * cloud.centre[1] +
                           cloud.centre[2] * cloud.centre[2];
    const double impact2 = centre2 - along * along;
    if (impact2 >= cloud.radius * cloud.radius) continue;
    const double half_chord = std::sqrt(cloud.radius * cloud.radius - impact2);
    const double inside = std::min(d, along + half_chord) - std::max(0.0, along - half_chord);
    if (inside > 0) e += cloud.central_e * inside / (2.0 * cloud.radius);
  }
  return e;
}

double Galaxy::r_v(const SkyPosition& position) const {
  if (m_r_v_scatter == 0.0) return m_r_v_mean;
  const auto& n = position.direction;
  double field = 0.0;
  for (const auto& mode : m_r_v_modes)
    field += std::cos(mode[0] * n[0] + mode[1] * n[1] + mode[2] * n[2] + mode[3]);
  field *= std::sqrt(2.0 / static_cast<double>(m_r_v_modes.size()));
  return std::clamp(m_r_v_mean + m_r_v_scatter * field, 2.0, 6.0);
}

}  // namespace xps::mock
