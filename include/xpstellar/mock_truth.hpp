// The mock survey's truth model (docs/mock.md): who the stars are, where they are, what light
// leaves them and how much dust dims it. Every star is a pure function of (seed, index), so any
// rank can make any star and the survey does not depend on the rank count.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "xpstellar/bands.hpp"
#include "xpstellar/extinction_curve.hpp"

namespace xps {
class ParameterSet;
}

namespace xps::mock {

using BandFluxes = std::array<double, standard_band_count>;

struct StarComponent {
  double teff = 0;  // K
  double logg = 0;  // dex (cgs)
  double feh = 0;   // dex
  double mass = 0;  // Msun
};

enum class StarKind : std::uint8_t {
  main_sequence,
  giant_branch,
  red_clump,
  white_dwarf,
  hot_star,
  cool_dwarf
};

// /truth/pathology codes; a corrupted spectrum is applied by the observation model.
enum class Pathology : std::uint8_t {
  none = 0,
  corrupted_spectrum = 1,
  white_dwarf = 2,
  hot_star = 3,
  cool_dwarf = 4
};

// One source of the survey as the truth model made it. Trivially copyable: ranks exchange it as
// bytes.
struct TruthStar {
  std::int64_t index = 0;
  double ra = 0, dec = 0;          // deg, ICRS
  double l = 0, b = 0;             // deg, Galactic
  double distance_pc = 0;
  double parallax = 0;             // mas
  double E = 0;                    // f = f0 exp(-E R)
  double r_v = 3.1;
  double g_mag = 0;                // noiseless apparent G
  StarComponent primary;
  StarComponent secondary;         // mass 0 for single stars
  double mass_ratio = 0;
  StarKind kind = StarKind::main_sequence;
  Pathology pathology = Pathology::none;
  bool is_binary = false;
  BandFluxes flux{};               // noiseless observed flux, 1e-18 W m-2 nm-1
};

// Synthetic Gaia-like broad bands computed from the 61 XP samples.
struct BroadBandMagnitudes {
  double g = 0, bp = 0, rp = 0;
};

class TruthModel {
public:
  explicit TruthModel(const ParameterSet& parameters);
  ~TruthModel();
  TruthModel(TruthModel&&) noexcept;
  TruthModel& operator=(TruthModel&&) noexcept;

  TruthStar draw(std::int64_t index) const;

  // Flux of one component at 1 kpc (parallax 1 mas), no dust, 1e-18 W m-2 nm-1.
  BandFluxes absolute_flux(const StarComponent& component) const;
  // The companion of `primary` with mass ratio q (same age and metallicity).
  StarComponent companion(const StarComponent& primary, StarKind kind, double q) const;
  // R of f = f0 exp(-E R) at every band for a given R_V (E normalised as E(B-V)).
  BandFluxes extinction_R(double r_v) const;
  BroadBandMagnitudes broad_band_magnitudes(const BandFluxes& flux) const;
  // Main-sequence star of a given Teff on the track (logg offset 0), solar metallicity unless given.
  StarComponent main_sequence_star(double teff, double feh = 0.0) const;
  double r_v_mean() const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// The paper's tracks (seed paper, Zhang+2023): logg of the main sequence at Teff, Teff of the
// giant branch at logg.
double main_sequence_logg(double teff);
double giant_branch_teff(double logg);

}  // namespace xps::mock
