#include "xpstellar/inference_settings.hpp"

#include "xpstellar/config.hpp"
#include "xpstellar/error.hpp"

namespace xps {

const char* optimizer_name(InferenceOptimizer kind) {
  return kind == InferenceOptimizer::fast ? "fast" : "paper";
}

void declare_inference_parameters(ParameterSet& p) {
  p.declare_real("inference.parallax_zero_point", -0.017, "mas",
                 "parallax zero point, subtracted from the measured parallax before use", -1, 1);
  p.declare_flag("inference.use_parallax", true,
                 "use the measured parallax in the fit; false fits the spectrum alone "
                 "(spectrophotometric parallaxes, to compare with the astrometric ones)");
  p.declare_flag("inference.calibrate", true,
                 "apply the model file's /calibration (tools/calibrate_uncertainties.py) to the "
                 "estimates and uncertainties; false writes the fit's own (Fisher) values");
  p.declare_real("inference.xi_prior_sigma", 0, "",
                 "width of a Gaussian prior on the extinction-curve shape xi (models with xi); 0 = "
                 "flat, as in training",
                 0);
  p.declare_real("inference.E_limit", 30, "mag",
                 "largest E a fit may reach (L_inf falls without bound as E grows once the model "
                 "flux has vanished)",
                 1e-3);
  p.declare_integer("inference.chunk_stars", 4096, "stars",
                    "stars read, fitted and written at a time (memory per rank grows with it)", 1);
  p.declare_integer("inference.log_interval", 10, "s", "seconds between progress lines", 1);
  p.declare_text("inference.optimizer", "fast",
                 "fast: Levenberg-Marquardt with the analytic Jacobian; paper: Adam then SGD "
                 "rounds on stars with a non-positive-definite Hessian (Zhang et al. 2023)",
                 {"fast", "paper"});

  p.declare_integer("start.gmm_samples", 512, "", "Theta templates drawn from the GMM prior", 1);
  p.declare_real("start.E_min", 0.01, "mag", "smallest E of the starting grid", 1e-6);
  p.declare_real("start.E_max", 10, "mag", "largest E of the starting grid", 1e-6);
  p.declare_real("start.E_step_dex", 0.05, "dex", "step of the geometric E grid", 1e-4);
  p.declare_real("start.ratio_min_nm", 592, "nm",
                 "parallax guess: observed / predicted flux summed from this wavelength", 0);
  p.declare_real("start.ratio_max_nm", 782, "nm", "... to this wavelength", 0);
  p.declare_integer("start.rescore", 8, "",
                    "best starts of the (diagonal-covariance) grid screen re-scored with the full "
                    "loss",
                    1);
  p.declare_integer("start.seed", 1, "", "seed of the template draw", 0);

  p.declare_integer("fast.starts", 3, "",
                    "best starts (by the full loss) each fitted; the lowest final loss wins", 1);
  p.declare_integer("fast.max_iterations", 100, "", "Levenberg-Marquardt iterations per star", 1);
  p.declare_real("fast.initial_damping", 1e-3, "", "initial damping (relative to the diagonal)", 0);
  p.declare_real("fast.decrement_tolerance", 1e-6, "",
                 "converged when the Newton decrement g^T H^-1 g / 2 is below this and H is "
                 "positive definite",
                 0);

  p.declare_real("paper.adam_lr", 0.01, "", "Adam learning rate", 0);
  p.declare_integer("paper.adam_steps", 8192, "steps", "Adam steps", 0);
  p.declare_integer("paper.adam_decay_every", 768, "steps",
                    "multiply the Adam rate by adam_decay_factor this often (the text also gives "
                    "12,288 steps divided by 8 every 512)",
                    1);
  p.declare_real("paper.adam_decay_factor", 0.5, "", "factor of each Adam decay", 0, 1);
  p.declare_integer("paper.sgd_rounds", 8, "", "SGD rounds at most", 0);
  p.declare_integer("paper.sgd_steps", 12288, "steps", "steps per SGD round", 0);
  p.declare_real("paper.sgd_lr", 1e-5, "", "rate of the first SGD round; round n: lr / 2^(n-1)", 0);
  p.declare_integer("paper.sgd_halve_every", 4096, "steps", "halve the SGD rate this often", 1);
  p.declare_real("paper.stop_fraction", 0.001, "",
                 "stop the SGD rounds when fewer stars than this share have a non-PD Hessian", 0, 1);

  p.declare_real("model_error.level_frac", -1, "",
                 "model-error level: relative flux error fully correlated over all bands; negative: "
                 "the model file's (0 from xps_train)", -1, 1);
  p.declare_real("model_error.smooth_frac", -1, "",
                 "model-error shape: XP relative flux error correlated over smooth_length; "
                 "negative: the model file's (0 from xps_train)", -1, 1);
  p.declare_real("model_error.smooth_length", -1, "nm",
                 "correlation length of the smooth_frac term; negative: the model file's", -1, 10000);

  p.declare_real("flags.chi2_dof_max", 2, "", "quality bit 3 when chi2_opt / dof exceeds this", 0);
  p.declare_real("flags.parallax_pull_max", 10, "",
                 "quality bit 5 when |parallax_hat - parallax_est| / sigma exceeds this", 0);
}

InferenceSettings read_inference_parameters(const ParameterSet& p) {
  InferenceSettings s;
  s.parallax_zero_point = p.real("inference.parallax_zero_point");
  s.use_parallax = p.flag("inference.use_parallax");
  s.calibrate = p.flag("inference.calibrate");
  s.xi_prior_sigma = p.real("inference.xi_prior_sigma");
  s.E_limit = p.real("inference.E_limit");
  s.chunk_stars = p.integer("inference.chunk_stars");
  s.log_interval_seconds = static_cast<double>(p.integer("inference.log_interval"));
  s.optimizer = p.text("inference.optimizer") == "paper" ? InferenceOptimizer::paper : InferenceOptimizer::fast;

  StartSettings& st = s.start;
  st.gmm_samples = static_cast<int>(p.integer("start.gmm_samples"));
  st.E_min = p.real("start.E_min");
  st.E_max = p.real("start.E_max");
  st.E_step_dex = p.real("start.E_step_dex");
  st.ratio_min_nm = p.real("start.ratio_min_nm");
  st.ratio_max_nm = p.real("start.ratio_max_nm");
  st.rescore = static_cast<int>(p.integer("start.rescore"));
  st.seed = static_cast<std::uint64_t>(p.integer("start.seed"));
  if (st.E_max < st.E_min) throw UsageError("start.E_max is below start.E_min");
  if (st.ratio_max_nm <= st.ratio_min_nm)
    throw UsageError("start.ratio_max_nm must exceed start.ratio_min_nm");

  s.fast.starts = static_cast<int>(p.integer("fast.starts"));
  s.fast.max_iterations = static_cast<int>(p.integer("fast.max_iterations"));
  s.fast.initial_damping = p.real("fast.initial_damping");
  s.fast.decrement_tolerance = p.real("fast.decrement_tolerance");

  PaperOptimizerSettings& pa = s.paper;
  pa.adam_lr = p.real("paper.adam_lr");
  pa.adam_steps = p.integer("paper.adam_steps");
  pa.adam_decay_every = p.integer("paper.adam_decay_every");
  pa.adam_decay_factor = p.real("paper.adam_decay_factor");
  pa.sgd_rounds = static_cast<int>(p.integer("paper.sgd_rounds"));
  pa.sgd_steps = p.integer("paper.sgd_steps");
  pa.sgd_lr = p.real("paper.sgd_lr");
  pa.sgd_halve_every = p.integer("paper.sgd_halve_every");
  pa.stop_fraction = p.real("paper.stop_fraction");

  s.flags.chi2_dof_max = p.real("flags.chi2_dof_max");
  s.flags.parallax_pull_max = p.real("flags.parallax_pull_max");
  s.model_error.level_frac = p.real("model_error.level_frac");
  s.model_error.smooth_frac = p.real("model_error.smooth_frac");
  s.model_error.smooth_length_nm = p.real("model_error.smooth_length");
  if (s.model_error.smooth_length_nm >= 0 && s.model_error.smooth_length_nm < 1)
    throw UsageError("model_error.smooth_length must be at least 1 nm (or negative: the model file's)");
  return s;
}

CovarianceInflation with_model_error(CovarianceInflation inflation, const ModelErrorSettings& model_error) {
  if (model_error.level_frac >= 0) inflation.level_frac = model_error.level_frac;
  if (model_error.smooth_frac >= 0) inflation.smooth_frac = model_error.smooth_frac;
  if (model_error.smooth_length_nm >= 0) inflation.smooth_length_nm = model_error.smooth_length_nm;
  return inflation;
}

}  // namespace xps
