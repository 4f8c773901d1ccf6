#include "xpstellar/star_inference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "xpstellar/fisher.hpp"
#include "xpstellar/star_fit.hpp"

namespace xps {

namespace {
constexpr float nan_value = std::numeric_limits<float>::quiet_NaN();
}

InferenceWorker::InferenceWorker(const InferenceContext& context)
    : m_context(context), m_loss(context.model, context.prior, context.settings.xi_prior_sigma, context.settings.E_limit) {}

void write_not_fitted(FitStatus status, int bands_used, std::size_t row, CatalogRows& rows) {
  const auto r = row;
  for (int k = 0; k < catalog_parameters; ++k) {
    rows.stellar_params_est[r * catalog_parameters + k] = nan_value;
    rows.stellar_params_err[r * catalog_parameters + k] = nan_value;
  }
  for (int k = 0; k < catalog_triangle; ++k) {
    rows.stellar_params_icov_triu[r * catalog_triangle + k] = nan_value;
    rows.stellar_params_cov_triu[r * catalog_triangle + k] = nan_value;
  }
  rows.chi2_opt[r] = rows.ln_prior[r] = rows.chi2_dof[r] = rows.xi_est[r] = nan_value;
  rows.parallax_spectro[r] = rows.parallax_spectro_error[r] = nan_value;
  rows.teff_confidence[r] = rows.feh_confidence[r] = rows.logg_confidence[r] = nan_value;
  rows.loss_opt[r] = std::numeric_limits<double>::quiet_NaN();
  rows.quality_flags[r] = quality_not_fitted;
  rows.fit_status[r] = static_cast<std::uint8_t>(status);
  rows.iterations[r] = 0;
  rows.bands_used[r] = static_cast<std::uint8_t>(bands_used);
}

void InferenceWorker::write_fit(const InferenceStar& star, const StarFit& fit, std::size_t r,
                                CatalogRows& rows) {
  const StarVector& p = fit.parameters;
  const Eigen::Vector3d theta = m_loss.theta(p);
  const double parallax = std::exp(p(3)), E = std::exp(p(4));
  double estimate[catalog_parameters] = {theta(0) / 1000.0, theta(1), theta(2), E, parallax};
  bool finite = std::isfinite(fit.parts.total);
  for (double v : estimate) finite = finite && std::isfinite(static_cast<float>(v));
  if (!finite) {
    write_not_fitted(FitStatus::not_converged, star.bands_used, r, rows);
    rows.quality_flags[r] |= quality_not_converged;
    return;
  }
  const double parallax_error = star.has_parallax ? star.parallax_error : 0.0;
  StarUncertainty u = fisher_uncertainty(m_loss.whitened_catalog_jacobian(star, p), parallax_error);
  const MeasuredParallax measured{star.parallax, parallax_error};
  ParallaxEstimate spectro;
  if (m_context.calibration) {
    calibrate_star(*m_context.calibration, estimate, u.covariance, measured, &spectro);
    u = uncertainty_of_covariance(u.covariance);
  } else {
    spectro = spectrophotometric_parallax(estimate[4], u.covariance(4, 4), measured);
  }
  if (spectro.available()) {
    rows.parallax_spectro[r] = static_cast<float>(spectro.value);
    rows.parallax_spectro_error[r] = static_cast<float>(std::sqrt(spectro.variance));
  }
  for (int k = 0; k < catalog_parameters; ++k) {
    rows.stellar_params_est[r * catalog_parameters + k] = static_cast<float>(estimate[k]);
    rows.stellar_params_err[r * catalog_parameters + k] = static_cast<float>(u.error(k));
  }
  pack_upper_triangle(u.inverse_covariance, &rows.stellar_params_icov_triu[r * catalog_triangle]);
  pack_upper_triangle(u.covariance, &rows.stellar_params_cov_triu[r * catalog_triangle]);

  const int dof = star.bands_used - m_loss.parameters();
  const double chi2_dof = dof > 0 ? fit.parts.chi2 / dof : std::numeric_limits<double>::infinity();
  rows.chi2_opt[r] = static_cast<float>(fit.parts.chi2);
  rows.chi2_dof[r] = static_cast<float>(chi2_dof);
  rows.ln_prior[r] = static_cast<float>(fit.parts.ln_prior);
  rows.xi_est[r] = m_loss.parameters() > 5 ? static_cast<float>(p(5)) : nan_value;
  rows.loss_opt[r] = fit.parts.total;
  rows.teff_confidence[r] = rows.feh_confidence[r] = rows.logg_confidence[r] = nan_value;

  const QualityFlagSettings& flags = m_context.settings.flags;
  std::uint8_t quality = 0;
  if (!(chi2_dof <= flags.chi2_dof_max)) quality |= quality_chi2;
  if (fit.parts.ln_prior < m_context.ln_prior_cut) quality |= quality_ln_prior;
  if (star.has_parallax && std::abs(star.parallax - parallax) / star.parallax_error > flags.parallax_pull_max)
    quality |= quality_parallax_excess;
  if (!fit.converged) quality |= quality_not_converged;
  rows.quality_flags[r] = quality;
  rows.fit_status[r] = static_cast<std::uint8_t>(fit.converged ? FitStatus::converged : FitStatus::not_converged);
  rows.iterations[r] = fit.iterations;
  rows.bands_used[r] = static_cast<std::uint8_t>(star.bands_used);
}

void InferenceWorker::infer_block(const InferenceChunk& chunk, std::size_t begin, std::size_t end,
                                  CatalogRows& rows) {
  m_block.clear();
  m_block_rows.clear();
  for (std::size_t i = begin; i < end; ++i) {
    if (chunk.status[i] != FitStatus::converged) {
      write_not_fitted(chunk.status[i], chunk.bands_used[i], i, rows);
      continue;
    }
    m_block.push_back(chunk.star(i));
    m_block_rows.push_back(i);
  }
  if (m_block.empty()) return;
  m_context.start_grid.screen(m_block.data(), static_cast<int>(m_block.size()), m_screen, m_candidates);

  const InferenceSettings& settings = m_context.settings;
  for (std::size_t b = 0; b < m_block.size(); ++b) {
    const InferenceStar& star = m_block[b];
    // The screened candidates by their full loss, best first.
    m_starts.clear();
    for (const StartCandidate& candidate : m_candidates[b]) {
      if (!std::isfinite(candidate.score)) continue;
      const StarVector p = m_loss.parameters_of(candidate.theta, candidate.parallax, candidate.E, 0.0);
      const double value = m_loss.value(star, p);
      if (std::isfinite(value)) m_starts.push_back({value, p});
    }
    if (m_starts.empty()) {
      write_not_fitted(FitStatus::not_converged, star.bands_used, m_block_rows[b], rows);
      rows.quality_flags[m_block_rows[b]] |= quality_not_converged;
      continue;
    }
    std::stable_sort(m_starts.begin(), m_starts.end(),
                     [](const ScoredStart& x, const ScoredStart& y) { return x.loss < y.loss; });
    // The fast optimiser is cheap enough to try a few starts: it then rarely ends in a worse local
    // minimum than the paper's long Adam run.
    const std::size_t tries = settings.optimizer == InferenceOptimizer::fast
                                  ? std::min<std::size_t>(m_starts.size(), static_cast<std::size_t>(settings.fast.starts))
                                  : 1;
    StarFit fit;
    for (std::size_t t = 0; t < tries; ++t) {
      const StarFit trial = settings.optimizer == InferenceOptimizer::fast
                                ? fit_star_fast(m_loss, star, m_starts[t].parameters, settings.fast)
                                : fit_star_paper(m_loss, star, m_starts[t].parameters, settings.paper);
      if (t == 0 || trial.parts.total < fit.parts.total) fit = trial;
    }
    write_fit(star, fit, m_block_rows[b], rows);
  }
}

}  // namespace xps
