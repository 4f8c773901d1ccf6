// The declared parameters of inference (DESIGN §1.5): starting grid, optimisers, quality flags,
// the parallax zero point and streaming. Every number is a configuration key with the paper's
// value as default (config/infer_paper.ini lists them). The covariance inflation is the model
// file's, the one the model was trained with, except for the model-error terms, which a run may
// set (model_error.*; off in the paper).
#pragma once

#include <cstdint>
#include <string>

#include "xpstellar/flux_whitening.hpp"

namespace xps {
class ParameterSet;

struct StartSettings {
  int gmm_samples = 512;          // Theta templates drawn from the prior
  double E_min = 0.01, E_max = 10;  // geometric E grid
  double E_step_dex = 0.05;
  double ratio_min_nm = 592, ratio_max_nm = 782;  // parallax guess from the flux ratio here
  int rescore = 8;                // best screened starts re-scored with the full loss
  std::uint64_t seed = 1;         // of the template draw
};

enum class InferenceOptimizer { fast, paper };

struct FastOptimizerSettings {  // Levenberg-Marquardt on (Theta, ln parallax, ln E[, xi])
  int starts = 3;                 // best starts fitted; the lowest final loss wins
  int max_iterations = 100;
  double initial_damping = 1e-3;
  double decrement_tolerance = 1e-6;  // converged: g^T H^-1 g / 2 below this (loss units)
};

struct PaperOptimizerSettings {  // DESIGN §1.5, the paper's procedure
  double adam_lr = 0.01;
  std::int64_t adam_steps = 8192;
  std::int64_t adam_decay_every = 768;
  double adam_decay_factor = 0.5;
  int sgd_rounds = 8;
  std::int64_t sgd_steps = 12288;
  double sgd_lr = 1e-5;              // round n uses sgd_lr / 2^(n-1)
  std::int64_t sgd_halve_every = 4096;
  double stop_fraction = 0.001;      // stop the rounds when fewer stars remain non-PD
};

struct QualityFlagSettings {
  double chi2_dof_max = 2;       // bit 3
  double parallax_pull_max = 10;  // bit 5
};

// The model-error terms of the whitening (CovarianceInflation::level_frac, smooth_frac,
// smooth_length_nm) for this run; a negative value keeps the model file's.
struct ModelErrorSettings {
  double level_frac = -1;
  double smooth_frac = -1;
  double smooth_length_nm = -1;
};

struct InferenceSettings {
  double parallax_zero_point = -0.017;  // mas, subtracted from the measured parallax
  bool use_parallax = true;             // false: the spectrum alone (spectrophotometric fits)
  bool calibrate = true;                // apply the model file's /calibration, if it has one
  double xi_prior_sigma = 0;            // Gaussian prior on xi; 0 = flat (as in training)
  double E_limit = 30;                  // mag; the fit's domain ends here
  std::int64_t chunk_stars = 4096;      // stars read, fitted and written at a time
  double log_interval_seconds = 10;
  InferenceOptimizer optimizer = InferenceOptimizer::fast;
  StartSettings start;
  FastOptimizerSettings fast;
  PaperOptimizerSettings paper;
  QualityFlagSettings flags;
  ModelErrorSettings model_error;
};

void declare_inference_parameters(ParameterSet& parameters);
InferenceSettings read_inference_parameters(const ParameterSet& parameters);
const char* optimizer_name(InferenceOptimizer kind);

// The model file's inflation with the run's model-error terms applied.
CovarianceInflation with_model_error(CovarianceInflation inflation, const ModelErrorSettings& model_error);

}  // namespace xps
