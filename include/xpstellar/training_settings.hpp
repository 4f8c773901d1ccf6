// The training recipe of DESIGN §1.4 as declared parameters: the data selection (split, quality
// cuts, priors), the network, and a list of phases, each with what it updates, on which stars,
// for how long, with which optimisers and learning-rate schedule. Defaults are the paper's values
// (Zhang, Green & Rix 2023, Table 1); config/train_paper.ini restates them, config/train_fast.ini
// is a short recipe for the main job and the tests.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

#include "xpstellar/flux_model.hpp"
#include "xpstellar/flux_whitening.hpp"
#include "xpstellar/gaussian_mixture.hpp"

namespace xps {
class ParameterSet;

// What a phase does. `model`: global parameters only, stars fixed. `alternate`: per batch, a model
// step then a star step on the same stars. `stars`: every selected star takes `steps` steps of its
// own optimiser, the model fixed. `self_cleaning`: flags outliers (no optimisation).
// `coordinated`: `steps` Gauss-Newton steps of part of the model on the loss with every star
// re-solved (coordinated_step.hpp; not in the paper).
enum class PhaseKind { model, alternate, stars, self_cleaning, coordinated };
// HQ subset, every usable training star, or the stars that survived self-cleaning.
enum class StarSelection { high_quality, all, clean };
// levenberg_marquardt: star parameters only; each step solves every star of the step for its
// optimum of L_star at the current model (inference's Levenberg-Marquardt, StarSolveSettings).
enum class OptimizerKind { sgd, adam, levenberg_marquardt };

struct StarSolveSettings {  // [star_solve]
  int max_iterations = 30;
  double initial_damping = 1e-3;
  double decrement_tolerance = 1e-3;  // L_star units
  double E_limit = 30;
};

// The coordinated phase's Levenberg-Marquardt control: each step solves
// (H + damping diag(H)) d = -g, re-solves every star and keeps the step if the loss fell; else the
// damping grows tenfold and it tries again, at most `attempts` times. Every step starts from
// `initial_damping`, so a resumed run repeats exactly what an uninterrupted one does.
struct CoordinatedStepSettings {  // [coordinated]
  double initial_damping = 1e-3;
  int attempts = 6;
};

// The population of the true labels, deconvolved from the training stars' labels and errors
// (deconvolved_mixture.hpp). When enabled, every star starts at E[Theta | label] under it (the
// regression-calibrated label, so that a model fitted at the starting labels is not diluted) and
// its star loss gains -2 ln p(Theta). Not in the paper: off by default.
struct PopulationPriorSettings {  // [population_prior]
  bool enabled = false;
  GmmFitSettings fit;               // components, EM iterations, tolerance, seed
  std::int64_t max_stars = 100000;  // fitted to every k-th usable training star (canonical order)
};

// lr(t) = initial * drop_factor^(number of drop points <= t) * decay_factor^floor(t / decay_every)
// with t the phase's epoch for model and alternate phases and its step for stars phases.
struct LearningRateSchedule {
  double initial = 1e-3;
  std::vector<std::int64_t> drop_at;
  double drop_factor = 0.1;
  std::int64_t decay_every = 0;  // 0 = never
  double decay_factor = 0.5;
  double at(std::int64_t t) const;
};

struct OptimizerSettings {
  OptimizerKind kind = OptimizerKind::sgd;
  LearningRateSchedule learning_rate;
  double momentum = 0;  // SGD
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;  // Adam
};

struct TrainingPhase {
  std::string name;  // "phase1" ...
  PhaseKind kind = PhaseKind::model;
  StarSelection selection = StarSelection::high_quality;
  std::int64_t epochs = 0;  // model and alternate phases
  std::int64_t steps = 0;   // stars phases: steps per star
  OptimizerSettings model_optimizer, star_optimizer;
  bool update_extinction = true;  // model steps also move R (and R1)
};

enum class CleaningRule { separate, joint };

struct CleaningSettings {
  CleaningRule rule = CleaningRule::separate;
  double label_parallax_sigma = 4;  // separate: any Theta_i or parallax this far from its measurement
  double flux_sigma = 4;            // separate: any flux residual this many sigma
  double joint_sigma = 3.5;         // joint: (dlogg/s)^2 + (dparallax/s)^2 > joint_sigma^2
};

struct NetworkSettings {
  int hidden_layers = 3;
  int width = 32;
  Activation activation = Activation::tanh;
  bool use_xi = false;
  Eigen::Vector3d input_offset{5000.0, -0.3, 3.5};  // teff [K], feh, logg
  Eigen::Vector3d input_scale{1000.0, 0.4, 1.0};
  std::string initial_extinction_law = "fitzpatrick99";  // or ccm89, or flat
  double initial_r_v = 3.1;
  double initial_ln_flux = 0;  // output bias at start; 0 = estimated from the data
};

struct TrainingDataSettings {
  double validation_fraction = 0.2;
  std::uint64_t split_salt = 0;  // the split depends on source_id and this salt only
  double parallax_zero_point = -0.017;  // mas, subtracted from the measured parallax
  // HQ subset
  double hq_teff_err = 200, hq_feh_err = 0.2, hq_logg_err = 0.2, hq_parallax_snr = 10,
         hq_E_err = 0.1;
  // E prior inflation: sqrt(sigma^2 + (frac E)^2 + floor^2)
  double E_prior_frac = 0.10, E_prior_floor = 0.03;
  // Labels outside these ranges are absurd (excluded with a count).
  double teff_min = 2000, teff_max = 60000, logg_min = -1.5, logg_max = 9.5, feh_min = -5,
         feh_max = 1.5;
};

struct TrainingSettings {
  TrainingDataSettings data;
  NetworkSettings network;
  CovarianceInflation inflation;
  CleaningSettings cleaning;
  std::vector<TrainingPhase> phases;
  std::int64_t batch_size = 512;
  int virtual_shards = 16;        // units of the deterministic reduction; ranks <= this
  std::uint64_t seed = 1;
  double temper_scale = 0;        // chi^2 -> c asinh(chi^2 / c) with c = temper_scale * M; 0 = off
  StarSolveSettings star_solve;   // the levenberg_marquardt star optimiser (plain chi^2)
  CoordinatedStepSettings coordinated;
  PopulationPriorSettings population_prior;
  std::int64_t checkpoint_every = 1000;  // steps
  int checkpoint_keep = 2;
  double log_interval_seconds = 10;
};

inline constexpr int max_training_phases = 8;

void declare_training_parameters(ParameterSet& parameters);
TrainingSettings read_training_parameters(const ParameterSet& parameters);

const char* phase_kind_name(PhaseKind kind);
const char* selection_name(StarSelection selection);

}  // namespace xps
