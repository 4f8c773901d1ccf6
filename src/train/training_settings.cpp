#include "xpstellar/training_settings.hpp"

#include <cmath>
#include <sstream>

#include "xpstellar/config.hpp"
#include "xpstellar/error.hpp"

namespace xps {

double LearningRateSchedule::at(std::int64_t t) const {
  double rate = initial;
  for (const std::int64_t drop : drop_at)
    if (t >= drop) rate *= drop_factor;
  if (decay_every > 0) rate *= std::pow(decay_factor, static_cast<double>(t / decay_every));
  return rate;
}

const char* phase_kind_name(PhaseKind kind) {
  switch (kind) {
    case PhaseKind::model: return "model";
    case PhaseKind::alternate: return "alternate";
    case PhaseKind::stars: return "stars";
    case PhaseKind::self_cleaning: return "self_cleaning";
    case PhaseKind::coordinated: return "coordinated";
  }
  return "?";
}

const char* selection_name(StarSelection selection) {
  switch (selection) {
    case StarSelection::high_quality: return "hq";
    case StarSelection::all: return "all";
    case StarSelection::clean: return "clean";
  }
  return "?";
}

namespace {

// The paper's recipe (DESIGN §1.4): the defaults of phase1 ... phase6.
struct PhaseDefaults {
  const char* kind;
  const char* selection;
  std::int64_t epochs, steps;
  const char* model_optimizer;
  double model_lr, model_momentum;
  const char* star_optimizer;
  double star_lr, star_momentum;
  const char* drops;
  std::int64_t decay_every;
};

constexpr PhaseDefaults paper_phases[max_training_phases] = {
    {"model", "hq", 128, 0, "sgd", 1e-3, 0.5, "sgd", 1e-4, 0.0, "32,64,96", 0},
    {"alternate", "hq", 128, 0, "sgd", 1e-5, 0.5, "sgd", 1e-4, 0.0, "32,64,96", 0},
    {"stars", "all", 0, 128, "sgd", 1e-5, 0.5, "sgd", 1e-4, 0.0, "32,64,96", 0},
    {"self_cleaning", "all", 0, 0, "sgd", 1e-5, 0.5, "sgd", 1e-4, 0.0, "", 0},
    {"alternate", "clean", 128, 0, "sgd", 1e-7, 0.5, "sgd", 1e-5, 0.0, "32,64,96", 0},
    {"stars", "clean", 0, 4096, "sgd", 1e-7, 0.5, "adam", 1e-2, 0.0, "", 512},
    {"off", "all", 0, 0, "sgd", 1e-5, 0.5, "sgd", 1e-4, 0.0, "", 0},
    {"off", "all", 0, 0, "sgd", 1e-5, 0.5, "sgd", 1e-4, 0.0, "", 0},
};

void declare_phase(ParameterSet& p, int index) {
  const PhaseDefaults& d = paper_phases[index];
  const std::string s = "phase" + std::to_string(index + 1) + ".";
  p.declare_text(s + "kind", d.kind,
                 "model: global parameters only; alternate: per batch a model step then a star "
                 "step; stars: every selected star takes `steps` steps; self_cleaning: flag "
                 "outliers; coordinated: `steps` Gauss-Newton steps of the first layer, the biases "
                 "(and R) with every star re-solved ([coordinated]); off: skip",
                 {"model", "alternate", "stars", "self_cleaning", "coordinated", "off"});
  p.declare_text(s + "selection", d.selection,
                 "which training stars: hq (high-quality subset), all, clean (survivors of "
                 "self-cleaning)",
                 {"hq", "all", "clean"});
  p.declare_integer(s + "epochs", d.epochs, "epochs",
                    "passes over the selected stars (model and alternate phases)", 0);
  p.declare_integer(s + "steps", d.steps, "steps", "steps per star (stars phases), Gauss-Newton steps (coordinated)", 0);
  p.declare_text(s + "model_optimizer", d.model_optimizer, "optimiser of the global parameters",
                 {"sgd", "adam"});
  p.declare_real(s + "model_lr", d.model_lr, "", "learning rate of the global parameters", 0);
  p.declare_real(s + "model_momentum", d.model_momentum, "", "SGD momentum of the model step", 0,
                 0.999999);
  p.declare_text(s + "star_optimizer", d.star_optimizer,
                 "optimiser of every star's parameters (normalised Theta, ln parallax, ln E, xi); "
                 "lm: solve each star to its optimum (Levenberg-Marquardt, [star_solve]) at every "
                 "step, star_lr unused",
                 {"sgd", "adam", "lm"});
  p.declare_real(s + "star_lr", d.star_lr, "", "learning rate of the star parameters", 0);
  p.declare_real(s + "star_momentum", d.star_momentum, "", "SGD momentum of the star step", 0,
                 0.999999);
  p.declare_flag(s + "update_extinction", true,
                 "model steps also update the extinction curve R (and R1); off keeps it where it is, "
                 "e.g. while the stars sit at labels whose E errors would bias its scale");
  p.declare_text(s + "lr_drops", d.drops,
                 "comma-separated epochs (model/alternate) or steps (stars) at which both learning "
                 "rates are multiplied by lr_drop_factor");
  p.declare_real(s + "lr_drop_factor", 0.1, "", "factor applied at each lr_drops point", 0, 1);
  p.declare_integer(s + "lr_decay_every", d.decay_every, "epochs or steps",
                    "multiply the learning rates by lr_decay_factor every this many; 0 = never", 0);
  p.declare_real(s + "lr_decay_factor", 0.5, "", "factor of the periodic decay", 0, 1);
}

std::vector<std::int64_t> parse_drop_list(const std::string& key, const std::string& text) {
  std::vector<std::int64_t> drops;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (item.find_first_not_of(" \t") == std::string::npos) continue;
    try {
      std::size_t used = 0;
      const long long value = std::stoll(item, &used);
      if (value < 0 || item.find_first_not_of(" \t", used) != std::string::npos)
        throw std::invalid_argument(item);
      drops.push_back(value);
    } catch (const std::exception&) {
      throw UsageError(key + ": '" + text + "' is not a comma-separated list of non-negative integers");
    }
  }
  return drops;
}

OptimizerKind parse_optimizer(const std::string& name) {
  if (name == "lm") return OptimizerKind::levenberg_marquardt;
  return name == "adam" ? OptimizerKind::adam : OptimizerKind::sgd;
}

StarSelection parse_selection(const std::string& name) {
  if (name == "hq") return StarSelection::high_quality;
  if (name == "clean") return StarSelection::clean;
  return StarSelection::all;
}

PhaseKind parse_kind(const std::string& name) {
  if (name == "alternate") return PhaseKind::alternate;
  if (name == "stars") return PhaseKind::stars;
  if (name == "self_cleaning") return PhaseKind::self_cleaning;
  if (name == "coordinated") return PhaseKind::coordinated;
  return PhaseKind::model;
}

}  // namespace

void declare_training_parameters(ParameterSet& p) {
  p.declare_integer("training.seed", 1, "", "seed of the network initialisation and batch order", 0);
  p.declare_integer("training.batch_size", 512, "stars", "stars per batch of a model step", 1);
  p.declare_integer("training.virtual_shards", 16, "",
                    "the stars are cut into this many shards whose gradients are summed in a fixed "
                    "order, so results do not depend on the number of ranks (at most this many)",
                    1, 4096);
  p.declare_real("training.temper_scale", 0, "",
                 "tempering of outliers chi^2 -> c asinh(chi^2/c), c = temper_scale * bands "
                 "(the authors' code uses 20); 0 = off (the paper)", 0);
  p.declare_integer("training.checkpoint_every", 1000, "steps",
                    "write a checkpoint every this many steps (and at every phase end)", 1);
  p.declare_integer("training.checkpoint_keep", 2, "files", "checkpoints kept on disk", 1, 100);
  p.declare_real("training.log_interval", 10, "s", "seconds between progress lines", 0);

  p.declare_real("data.validation_fraction", 0.2, "",
                 "share of labelled stars held out for validation (by a hash of source_id)", 0, 0.99);
  p.declare_integer("data.split_salt", 0, "", "salt of the source_id hash of the split", 0);
  p.declare_real("data.parallax_zero_point", -0.017, "mas",
                 "subtracted from the measured parallax before use (Gaia DR3 global value)");
  p.declare_real("data.hq_teff_err", 200, "K", "HQ subset: sigma Teff below this");
  p.declare_real("data.hq_feh_err", 0.2, "dex", "HQ subset: sigma [Fe/H] below this");
  p.declare_real("data.hq_logg_err", 0.2, "dex", "HQ subset: sigma log g below this");
  p.declare_real("data.hq_parallax_snr", 10, "", "HQ subset: parallax / sigma above this");
  p.declare_real("data.hq_E_err", 0.1, "mag", "HQ subset: sigma of the E prior below this");
  p.declare_real("data.E_prior_frac", 0.10, "", "E prior inflation: relative term", 0);
  p.declare_real("data.E_prior_floor", 0.03, "mag", "E prior inflation: floor term", 0);
  p.declare_real("data.teff_min", 2000, "K", "labels outside [teff_min, teff_max] are absurd");
  p.declare_real("data.teff_max", 60000, "K", "see teff_min");
  p.declare_real("data.logg_min", -1.5, "dex", "labels outside [logg_min, logg_max] are absurd");
  p.declare_real("data.logg_max", 9.5, "dex", "see logg_min");
  p.declare_real("data.feh_min", -5, "dex", "labels outside [feh_min, feh_max] are absurd");
  p.declare_real("data.feh_max", 1.5, "dex", "see feh_min");

  p.declare_integer("network.hidden_layers", 3, "", "hidden layers of the flux network", 1, 16);
  p.declare_integer("network.width", 32, "", "neurons per hidden layer (DESIGN §1.1: 32)", 1, 4096);
  p.declare_text("network.activation", "tanh", "activation of the hidden layers",
                 {"tanh", "silu", "relu", "softplus", "elu", "sigmoid"});
  p.declare_flag("network.use_xi", false,
                 "learn a second extinction curve R1 with a per-star amplitude xi (R_V proxy)");
  p.declare_real("network.teff_offset", 5000, "K", "input normalisation: (Teff - offset) / scale");
  p.declare_real("network.teff_scale", 1000, "K", "see teff_offset", 1e-9);
  p.declare_real("network.feh_offset", -0.3, "dex", "input normalisation of [Fe/H]");
  p.declare_real("network.feh_scale", 0.4, "dex", "see feh_offset", 1e-9);
  p.declare_real("network.logg_offset", 3.5, "dex", "input normalisation of log g");
  p.declare_real("network.logg_scale", 1.0, "dex", "see logg_offset", 1e-9);
  p.declare_text("network.initial_extinction", "fitzpatrick99",
                 "starting extinction curve R (E normalised like E(B-V)); flat = 1 everywhere",
                 {"fitzpatrick99", "ccm89", "flat"});
  p.declare_real("network.initial_r_v", 3.1, "", "R_V of the starting curve", 1, 10);

  p.declare_text("cleaning.rule", "separate",
                 "separate: label/parallax criterion and flux criterion (the paper's text); "
                 "joint: (dlogg/s)^2 + (dparallax/s)^2 > joint_sigma^2 (its Fig. 4)",
                 {"separate", "joint"});
  p.declare_real("cleaning.label_parallax_sigma", 4, "sigma",
                 "flag a star with any Theta_i or parallax this far from its measurement", 0);
  p.declare_real("cleaning.flux_sigma", 4, "sigma", "flag a star with any flux residual this large", 0);
  p.declare_real("cleaning.joint_sigma", 3.5, "sigma", "threshold of the joint rule", 0);

  p.declare_integer("star_solve.max_iterations", 30, "iterations",
                    "Levenberg-Marquardt iterations per star and step (star_optimizer = lm)", 1);
  p.declare_real("star_solve.initial_damping", 1e-3, "", "starting damping, relative to the Hessian diagonal", 0);
  p.declare_real("star_solve.decrement_tolerance", 1e-3, "",
                 "a star is solved when its Newton decrement g^T H^-1 g / 2 is below this", 0);
  p.declare_real("star_solve.E_limit", 30, "mag", "largest E a solve may reach", 0);
  p.declare_real("coordinated.initial_damping", 1e-3, "",
                 "Levenberg-Marquardt damping of a coordinated step, relative to the diagonal", 0);
  p.declare_integer("coordinated.attempts", 6, "", "tries per coordinated step, the damping x10 after each rejected one", 1);

  p.declare_flag("population_prior.enabled", false,
                 "start every star at E[Theta | label] under the population deconvolved from the "
                 "training labels, and add -2 ln p(Theta) to its star loss (not in the paper)");
  p.declare_integer("population_prior.components", 16, "", "Gaussians of the deconvolved population", 1, 1000);
  p.declare_integer("population_prior.max_iterations", 300, "", "EM iterations of the deconvolution", 1, 100000);
  p.declare_real("population_prior.tolerance", 1e-6, "",
                 "EM stops when the mean ln-likelihood per star changes less", 0, 1);
  p.declare_integer("population_prior.max_stars", 100000, "stars",
                    "the fit uses every k-th usable training star, k chosen to stay below this", 100);
  p.declare_integer("population_prior.seed", 1, "", "seed of the k-means++ start of the fit", 0);

  p.declare_real("optimizer.adam_beta1", 0.9, "", "Adam first-moment decay", 0, 0.999999);
  p.declare_real("optimizer.adam_beta2", 0.999, "", "Adam second-moment decay", 0, 0.999999999);
  p.declare_real("optimizer.adam_epsilon", 1e-8, "", "Adam denominator floor", 0);

  declare_inflation_parameters(p, "inflation");
  for (int i = 0; i < max_training_phases; ++i) declare_phase(p, i);
}

TrainingSettings read_training_parameters(const ParameterSet& p) {
  TrainingSettings s;
  s.seed = static_cast<std::uint64_t>(p.integer("training.seed"));
  s.batch_size = p.integer("training.batch_size");
  s.virtual_shards = static_cast<int>(p.integer("training.virtual_shards"));
  s.temper_scale = p.real("training.temper_scale");
  s.checkpoint_every = p.integer("training.checkpoint_every");
  s.checkpoint_keep = static_cast<int>(p.integer("training.checkpoint_keep"));
  s.log_interval_seconds = p.real("training.log_interval");

  auto& d = s.data;
  d.validation_fraction = p.real("data.validation_fraction");
  d.split_salt = static_cast<std::uint64_t>(p.integer("data.split_salt"));
  d.parallax_zero_point = p.real("data.parallax_zero_point");
  d.hq_teff_err = p.real("data.hq_teff_err");
  d.hq_feh_err = p.real("data.hq_feh_err");
  d.hq_logg_err = p.real("data.hq_logg_err");
  d.hq_parallax_snr = p.real("data.hq_parallax_snr");
  d.hq_E_err = p.real("data.hq_E_err");
  d.E_prior_frac = p.real("data.E_prior_frac");
  d.E_prior_floor = p.real("data.E_prior_floor");
  d.teff_min = p.real("data.teff_min");
  d.teff_max = p.real("data.teff_max");
  d.logg_min = p.real("data.logg_min");
  d.logg_max = p.real("data.logg_max");
  d.feh_min = p.real("data.feh_min");
  d.feh_max = p.real("data.feh_max");

  auto& n = s.network;
  n.hidden_layers = static_cast<int>(p.integer("network.hidden_layers"));
  n.width = static_cast<int>(p.integer("network.width"));
  n.activation = parse_activation(p.text("network.activation"));
  n.use_xi = p.flag("network.use_xi");
  n.input_offset = {p.real("network.teff_offset"), p.real("network.feh_offset"),
                    p.real("network.logg_offset")};
  n.input_scale = {p.real("network.teff_scale"), p.real("network.feh_scale"),
                   p.real("network.logg_scale")};
  n.initial_extinction_law = p.text("network.initial_extinction");
  n.initial_r_v = p.real("network.initial_r_v");

  s.cleaning.rule = p.text("cleaning.rule") == "joint" ? CleaningRule::joint : CleaningRule::separate;
  s.cleaning.label_parallax_sigma = p.real("cleaning.label_parallax_sigma");
  s.cleaning.flux_sigma = p.real("cleaning.flux_sigma");
  s.cleaning.joint_sigma = p.real("cleaning.joint_sigma");

  s.inflation = read_inflation_parameters(p, "inflation");
  s.star_solve.max_iterations = static_cast<int>(p.integer("star_solve.max_iterations"));
  s.star_solve.initial_damping = p.real("star_solve.initial_damping");
  s.star_solve.decrement_tolerance = p.real("star_solve.decrement_tolerance");
  s.star_solve.E_limit = p.real("star_solve.E_limit");
  s.coordinated.initial_damping = p.real("coordinated.initial_damping");
  s.coordinated.attempts = static_cast<int>(p.integer("coordinated.attempts"));

  auto& population = s.population_prior;
  population.enabled = p.flag("population_prior.enabled");
  population.fit.components = static_cast<int>(p.integer("population_prior.components"));
  population.fit.max_iterations = static_cast<int>(p.integer("population_prior.max_iterations"));
  population.fit.tolerance = p.real("population_prior.tolerance");
  population.fit.n_init = 1;
  population.fit.seed = static_cast<std::uint64_t>(p.integer("population_prior.seed"));
  population.max_stars = p.integer("population_prior.max_stars");

  const double beta1 = p.real("optimizer.adam_beta1");
  const double beta2 = p.real("optimizer.adam_beta2");
  const double epsilon = p.real("optimizer.adam_epsilon");
  for (int i = 0; i < max_training_phases; ++i) {
    const std::string name = "phase" + std::to_string(i + 1);
    const std::string k = name + ".";
    if (p.text(k + "kind") == "off") continue;
    TrainingPhase phase;
    phase.name = name;
    phase.kind = parse_kind(p.text(k + "kind"));
    phase.selection = parse_selection(p.text(k + "selection"));
    phase.epochs = p.integer(k + "epochs");
    phase.steps = p.integer(k + "steps");
    LearningRateSchedule schedule;
    schedule.drop_at = parse_drop_list(k + "lr_drops", p.text(k + "lr_drops"));
    schedule.drop_factor = p.real(k + "lr_drop_factor");
    schedule.decay_every = p.integer(k + "lr_decay_every");
    schedule.decay_factor = p.real(k + "lr_decay_factor");
    auto optimizer = [&](const std::string& which) {
      OptimizerSettings o;
      o.kind = parse_optimizer(p.text(k + which + "_optimizer"));
      o.learning_rate = schedule;
      o.learning_rate.initial = p.real(k + which + "_lr");
      o.momentum = p.real(k + which + "_momentum");
      o.beta1 = beta1;
      o.beta2 = beta2;
      o.epsilon = epsilon;
      return o;
    };
    phase.update_extinction = p.flag(k + "update_extinction");
    phase.model_optimizer = optimizer("model");
    phase.star_optimizer = optimizer("star");
    if ((phase.kind == PhaseKind::model || phase.kind == PhaseKind::alternate) && phase.epochs == 0)
      throw UsageError(k + "epochs must be positive for a " + phase_kind_name(phase.kind) + " phase");
    if ((phase.kind == PhaseKind::stars || phase.kind == PhaseKind::coordinated) && phase.steps == 0)
      throw UsageError(k + "steps must be positive for a " + phase_kind_name(phase.kind) + " phase");
    s.phases.push_back(std::move(phase));
  }
  if (s.phases.empty()) throw UsageError("every training phase is off: nothing to do");
  return s;
}

}  // namespace xps
