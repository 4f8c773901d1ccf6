// Every number of the mock survey's truth and observation models, declared once with its default,
// unit and meaning (docs/mock.md explains the models; config/mock_default.ini lists the keys).
#include <cmath>

#include "xpstellar/config.hpp"
#include "xpstellar/mock_survey.hpp"

namespace xps::mock {

namespace {

void declare_survey(ParameterSet& p) {
  p.declare_integer("survey.stars", 20000, "stars", "number of sources in the survey", 1,
                    (std::int64_t{1} << 35) - 1);
  p.declare_integer("survey.seed", 42, "", "random seed: same seed => same survey at any rank count", 0);
  p.declare_integer("survey.healpix_level", 1, "", "HEALPix level of the output partitions", 0, 8);
  p.declare_real("survey.g_limit", 17.65, "mag", "faint limit in G (Gaia DR3 XP spectra: G < 17.65)", 5, 21);
  p.declare_real("survey.g_bright", 6.0, "mag", "bright limit in G", -2, 17);
}

void declare_population(ParameterSet& p) {
  p.declare_real("population.main_sequence_fraction", 0.62, "", "share of main-sequence primaries", 0, 1);
  p.declare_real("population.giant_branch_fraction", 0.25, "", "share of subgiant/giant-branch primaries", 0, 1);
  p.declare_real("population.red_clump_fraction", 0.13, "", "share of red-clump primaries (the three shares sum to 1)", 0, 1);
  p.declare_real("population.ms_teff_min", 4000, "K", "main sequence: lowest Teff", 2500, 20000);
  p.declare_real("population.ms_teff_max", 12000, "K", "main sequence: highest Teff", 2500, 30000);
  p.declare_real("population.ms_teff_peak", 5900, "K", "main sequence: Teff at the peak of the lognormal Teff distribution", 2500, 30000);
  p.declare_real("population.ms_teff_log_sigma", 0.18, "dex(e)", "main sequence: sigma of ln Teff", 0.01, 2);
  p.declare_real("population.ms_logg_evolution", 0.12, "dex", "main sequence: mean logg decrease below the track (stars evolving)", 0, 1);
  p.declare_real("population.ms_logg_scatter", 0.08, "dex", "main sequence: logg scatter about the track", 0, 1);
  p.declare_real("population.gb_logg_min", 0.5, "dex", "giant branch: lowest logg", 0, 4);
  p.declare_real("population.gb_logg_max", 4.0, "dex", "giant branch: highest logg (subgiants)", 0, 4.2);
  p.declare_real("population.gb_teff_scatter", 70, "K", "giant branch: Teff scatter about the track", 0, 1000);
  p.declare_real("population.gb_teff_feh_slope", -200, "K/dex", "giant branch and clump: Teff shift per dex of [Fe/H]", -2000, 2000);
  p.declare_real("population.rc_logg_mean", 2.45, "dex", "red clump: mean logg", 0, 4);
  p.declare_real("population.rc_logg_sigma", 0.08, "dex", "red clump: logg scatter", 0, 1);
  p.declare_real("population.rc_teff_mean", 4750, "K", "red clump: mean Teff at [Fe/H] = 0", 3000, 8000);
  p.declare_real("population.rc_teff_sigma", 90, "K", "red clump: Teff scatter", 0, 1000);
  p.declare_real("population.giant_mass", 1.3, "Msun", "giants: median mass", 0.5, 10);
  p.declare_real("population.giant_mass_log_sigma", 0.25, "dex(e)", "giants: sigma of ln mass", 0, 2);
  p.declare_real("population.ms_mass_teff_exponent", 0.6, "", "main sequence: Teff/Teff_sun = (M/Msun)^exponent", 0.1, 2);
  p.declare_real("population.feh_plane", 0.0, "dex", "[Fe/H] mean in the Galactic plane", -3, 1);
  p.declare_real("population.feh_gradient_z", -0.3, "dex/kpc", "[Fe/H] gradient with height |z|", -3, 3);
  p.declare_real("population.feh_sigma", 0.22, "dex", "[Fe/H] scatter", 0, 2);
  p.declare_real("population.metal_poor_fraction", 0.02, "", "share of a metal-poor (halo-like) [Fe/H] component", 0, 1);
  p.declare_real("population.metal_poor_feh_mean", -1.5, "dex", "metal-poor component: mean [Fe/H]", -4, 0);
  p.declare_real("population.metal_poor_feh_sigma", 0.5, "dex", "metal-poor component: [Fe/H] scatter", 0, 2);
  p.declare_real("population.feh_min", -2.5, "dex", "lowest [Fe/H]", -5, 1);
  p.declare_real("population.feh_max", 0.5, "dex", "highest [Fe/H]", -5, 1);
}

void declare_galaxy(ParameterSet& p) {
  p.declare_real("galaxy.sun_r", 8.2, "kpc", "Galactocentric radius of the Sun", 1, 20);
  p.declare_real("galaxy.sun_z", 0.02, "kpc", "height of the Sun above the plane", -0.5, 0.5);
  p.declare_real("galaxy.disk_scale_length", 2.6, "kpc", "stellar disk: exponential scale length in R", 0.5, 10);
  p.declare_real("galaxy.thin_scale_height", 0.3, "kpc", "thin disk: exponential scale height", 0.05, 3);
  p.declare_real("galaxy.thick_scale_height", 0.9, "kpc", "thick disk: exponential scale height", 0.1, 5);
  p.declare_real("galaxy.thick_fraction", 0.12, "", "thick disk: share of the local mid-plane density", 0, 1);
  p.declare_real("galaxy.max_distance", 12.0, "kpc", "largest heliocentric distance drawn", 0.1, 50);
}

void declare_dust(ParameterSet& p) {
  p.declare_text("dust.extinction_law", "fitzpatrick99", "extinction curve of the truth model",
                 {"fitzpatrick99", "ccm89"});
  p.declare_real("dust.r_v_mean", 3.1, "", "mean R_V", 2, 6);
  p.declare_real("dust.r_v_scatter", 0.2, "", "R_V scatter (0 = universal curve)", 0, 1.5);
  p.declare_real("dust.r_v_correlation_angle", 10.0, "deg", "angular correlation length of the R_V field", 0.5, 180);
  p.declare_real("dust.e_per_kpc", 0.3, "mag/kpc", "E (about E(B-V)) per kpc in the mid-plane at the Sun", 0, 5);
  p.declare_real("dust.scale_height", 0.1, "kpc", "dust layer: exponential scale height", 0.01, 2);
  p.declare_real("dust.scale_length", 3.0, "kpc", "dust layer: exponential scale length in R", 0.5, 20);
  p.declare_real("dust.e_scatter", 0.1, "dex(e)", "lognormal star-to-star scatter of E (unresolved structure)", 0, 2);
  p.declare_integer("dust.clumps", 300, "", "number of dense clouds", 0, 100000);
  p.declare_real("dust.clump_region", 3.0, "kpc", "clouds are spread within this distance of the Sun", 0.1, 20);
  p.declare_real("dust.clump_radius", 0.03, "kpc", "median cloud radius", 0.001, 1);
  p.declare_real("dust.clump_e_mean", 0.3, "mag", "mean E through a cloud's centre", 0, 10);
}

void declare_spectra(ParameterSet& p) {
  p.declare_real("spectra.line_width", 12.0, "nm", "Gaussian sigma of absorption features at XP resolution", 1, 50);
  p.declare_real("spectra.blanketing", 0.35, "", "metal-line blanketing depth (ln flux) in the blue at Teff 5500 K, [Fe/H] 0", 0, 3);
  p.declare_real("spectra.blanketing_scale", 80.0, "nm", "blanketing e-folding length redwards of 392 nm", 1, 1000);
  p.declare_real("spectra.balmer_depth", 0.35, "", "Balmer line depth (ln flux) at its peak Teff", 0, 3);
  p.declare_real("spectra.balmer_teff_peak", 9000, "K", "Teff of strongest Balmer lines", 4000, 20000);
  p.declare_real("spectra.balmer_teff_width", 2800, "K", "Teff width of the Balmer strength", 100, 20000);
  p.declare_real("spectra.balmer_jump", 0.3, "", "Balmer-jump depth (ln flux) below 400 nm, gravity sensitive", 0, 3);
  p.declare_real("spectra.ca_hk_depth", 0.4, "", "Ca II H&K depth at [Fe/H] 0 in cool stars", 0, 3);
  p.declare_real("spectra.mg_depth", 0.15, "", "Mg b + MgH depth at [Fe/H] 0 in cool dwarfs", 0, 3);
  p.declare_real("spectra.na_depth", 0.06, "", "Na D depth at [Fe/H] 0 in cool stars", 0, 3);
  p.declare_real("spectra.ca_triplet_depth", 0.12, "", "Ca triplet depth at [Fe/H] 0 in cool giants", 0, 3);
  p.declare_real("spectra.tio_depth", 0.5, "", "TiO band depth in the coolest stars", 0, 3);
  p.declare_real("spectra.gravity_slope", 0.04, "", "red continuum slope change per dex of logg (H- opacity)", -1, 1);
  p.declare_real("spectra.co_depth", 0.12, "", "CO depth in W2 for cool giants (a tenth of it in Ks)", 0, 3);
}

void declare_binaries(ParameterSet& p) {
  p.declare_real("binaries.fraction", 0.2, "", "share of unresolved binaries", 0, 1);
  p.declare_real("binaries.q_min", 0.8, "", "lowest mass ratio", 0.01, 1);
  p.declare_real("binaries.q_max", 1.0, "", "highest mass ratio", 0.01, 1);
  p.declare_real("binaries.giant_companion_logg", 4.0, "dex", "logg of a giant's companion (it sits at the turn-off)", 3, 5);
}

void declare_observation(ParameterSet& p) {
  p.declare_real("observation.xp_noise", 0.006, "", "XP relative error scale at G = 15 (times the real error profile)", 0, 1);
  p.declare_real("observation.xp_background_g", 18.5, "mag", "G at which the XP background term equals the photon term", 10, 25);
  p.declare_real("observation.xp_calibration_floor", 0.002, "", "XP relative calibration error floor", 0, 1);
  p.declare_real("observation.tmass_sigma_floor", 0.02, "mag", "2MASS magnitude error floor", 0, 1);
  p.declare_real("observation.tmass_sigma_at_limit", 0.1, "mag", "2MASS magnitude error at the detection limit", 0, 1);
  p.declare_real("observation.tmass_limit_j", 15.8, "mag", "2MASS J detection limit (fainter: missing)", 5, 25);
  p.declare_real("observation.tmass_limit_h", 15.1, "mag", "2MASS H detection limit", 5, 25);
  p.declare_real("observation.tmass_limit_ks", 14.3, "mag", "2MASS Ks detection limit", 5, 25);
  p.declare_real("observation.unwise_sigma_floor", 0.01, "", "unWISE relative flux error floor", 0, 1);
  p.declare_real("observation.unwise_sigma_at_limit", 0.15, "", "unWISE relative flux error at the detection limit", 0, 1);
  p.declare_real("observation.unwise_limit_w1", 17.0, "mag", "unWISE W1 detection limit", 5, 25);
  p.declare_real("observation.unwise_limit_w2", 16.0, "mag", "unWISE W2 detection limit", 5, 25);
  p.declare_real("observation.norm_dg_base", -22, "", "norm_dg at high Galactic latitude", -60, 10);
  p.declare_real("observation.norm_dg_plane", 15, "", "norm_dg increase towards the Galactic plane", 0, 60);
  p.declare_real("observation.norm_dg_plane_width", 8, "deg", "latitude scale of the norm_dg increase", 0.1, 90);
  p.declare_real("observation.norm_dg_scatter", 5, "", "star-to-star scatter of norm_dg", 0, 30);
  p.declare_real("observation.tmass_crowding_norm_dg", -5, "", "2MASS bands missing where norm_dg is above this", -60, 10);
  p.declare_real("observation.wise_crowding_norm_dg", -10, "", "unWISE bands missing where norm_dg is above this", -60, 10);
  p.declare_real("observation.parallax_zero_point", -0.017, "mas", "global parallax zero-point offset added to the measured parallax", -1, 1);
  p.declare_real("observation.parallax_error_scale", 1.0, "", "scale of the Gaia parallax-error law sqrt(40 + 800 z + 30 z^2) uas", 0.01, 100);
  p.declare_real("observation.ruwe_sigma", 0.06, "dex(e)", "lognormal scatter of RUWE for single stars", 0, 2);
  p.declare_real("observation.binary_ruwe_fraction", 0.3, "", "share of binaries with an elevated RUWE", 0, 1);
}

void declare_labels(ParameterSet& p) {
  p.declare_real("labels.fraction", 0.02, "", "share of all sources with spectroscopic labels, drawn among those brighter than labels.g_max (1 = all of those)", 0, 1);
  p.declare_real("labels.g_max", 16.5, "mag", "faintest G with spectroscopic labels", 0, 25);
  p.declare_real("labels.g_min", 9.0, "mag", "G where label errors are smallest", 0, 25);
  p.declare_real("labels.teff_err_min", 40, "K", "Teff error of the brightest labelled stars", 0, 2000);
  p.declare_real("labels.teff_err_max", 150, "K", "Teff error at labels.g_max", 0, 2000);
  p.declare_real("labels.logg_err_min", 0.05, "dex", "logg error of the brightest labelled stars", 0, 2);
  p.declare_real("labels.logg_err_max", 0.25, "dex", "logg error at labels.g_max", 0, 2);
  p.declare_real("labels.feh_err_min", 0.03, "dex", "[Fe/H] error of the brightest labelled stars", 0, 2);
  p.declare_real("labels.feh_err_max", 0.15, "dex", "[Fe/H] error at labels.g_max", 0, 2);
  p.declare_real("labels.e_prior_err_min", 0.02, "mag", "E prior error floor", 0, 2);
  p.declare_integer("labels.pilot_stars", 4000, "stars", "truth stars drawn to estimate the share brighter than labels.g_max", 100, 10000000);
  p.declare_real("labels.e_prior_err_frac", 0.05, "", "E prior error per unit E", 0, 2);
}

void declare_pathology(ParameterSet& p) {
  p.declare_real("pathology.corrupted_fraction", 0.015, "", "share of sources with a corrupted XP spectrum", 0, 1);
  p.declare_real("pathology.white_dwarf_fraction", 0.005, "", "share of white dwarfs (outside the training range)", 0, 1);
  p.declare_real("pathology.hot_star_fraction", 0.005, "", "share of hot stars, Teff 12,500-20,000 K (outside the training range)", 0, 1);
  p.declare_real("pathology.cool_dwarf_fraction", 0.005, "", "share of M dwarfs, Teff 3,000-3,900 K (outside the training range)", 0, 1);
}

}  // namespace

void declare_mock_parameters(ParameterSet& parameters) {
  declare_survey(parameters);
  declare_population(parameters);
  declare_galaxy(parameters);
  declare_dust(parameters);
  declare_spectra(parameters);
  declare_binaries(parameters);
  declare_observation(parameters);
  declare_labels(parameters);
  declare_pathology(parameters);
}

}  // namespace xps::mock
