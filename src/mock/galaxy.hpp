// The mock's Galaxy: an exponential thin + thick stellar disk seen from the Sun, an exponential dust
// layer with dense clouds, and a spatially correlated R_V field (docs/mock.md §Galaxy, §Dust).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "xpstellar/random_stream.hpp"

namespace xps {
class ParameterSet;
}

namespace xps::mock {

struct SkyPosition {
  double l = 0, b = 0;        // deg
  double ra = 0, dec = 0;     // deg, ICRS
  double distance_kpc = 0;
  double galactic_z_kpc = 0;  // height above the plane
  std::array<double, 3> direction{};  // heliocentric Galactic unit vector (x to l=0, z to NGP)
};

class Galaxy {
public:
  explicit Galaxy(const ParameterSet& parameters, std::uint64_t seed);

  // A star drawn from the stellar disk density within `max_distance_kpc` of the Sun.
  SkyPosition draw_position(RandomStream& random, double max_distance_kpc) const;
  // Dust column E from the Sun to `position` (smooth layer + clouds), before star-to-star scatter.
  double extinction(const SkyPosition& position) const;
  // R_V along the direction of `position`.
  double r_v(const SkyPosition& position) const;

private:
  struct Cloud {
    std::array<double, 3> centre{};  // heliocentric Galactic, kpc
    double radius = 0, central_e = 0;
  };
  double stellar_density(double x, double y, double z) const;
  SkyPosition make_position(const std::array<double, 3>& heliocentric) const;

  double m_sun_r, m_sun_z, m_scale_length, m_thin_height, m_thick_height, m_thick_fraction;
  double m_max_distance;
  double m_dust_e_per_kpc, m_dust_height, m_dust_length;
  double m_r_v_mean, m_r_v_scatter;
  std::vector<Cloud> m_clouds;
  std::vector<std::array<double, 4>> m_r_v_modes;  // wave vector (3) and phase
};

}  // namespace xps::mock
