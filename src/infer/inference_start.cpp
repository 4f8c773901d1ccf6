#include "xpstellar/inference_start.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "xpstellar/error.hpp"
#include "xpstellar/float_product.hpp"

namespace xps {

StartGrid::StartGrid(const FluxModel& model, const GaussianMixture& prior,
                     const std::vector<double>& wavelength_nm, const StartSettings& settings)
    : m_rescore(settings.rescore) {
  const int bands = model.bands();
  if (static_cast<int>(wavelength_nm.size()) != bands)
    throw UsageError("start grid: the model has " + std::to_string(bands) + " bands but " +
                     std::to_string(wavelength_nm.size()) + " wavelengths were given");
  const Eigen::MatrixXd samples = sample_gaussian_mixture(prior, settings.gmm_samples, settings.seed);
  const auto S = static_cast<Eigen::Index>(samples.rows());
  m_theta = samples.transpose();
  const GaussianMixtureDensity density(prior);
  m_minus_2_ln_prior.resize(static_cast<std::size_t>(S));
  for (Eigen::Index s = 0; s < S; ++s) {
    const Eigen::Vector3d theta = m_theta.col(s);
    m_minus_2_ln_prior[static_cast<std::size_t>(s)] = -2.0 * density.evaluate(theta.data(), nullptr, nullptr);
  }

  m_E_steps = static_cast<int>(std::floor(std::log10(settings.E_max / settings.E_min) / settings.E_step_dex + 1e-9)) + 1;
  StarBatch batch;
  batch.theta = m_theta;
  batch.ln_parallax.setZero(S);
  batch.ln_E.setConstant(S, std::log(settings.E_min));
  batch.xi.setZero(S);
  FluxModelWorkspace workspace;
  flux_model_forward(model, batch, workspace);  // ln_flux_abs: flux at 1 mas, no extinction

  const auto T = S * m_E_steps;
  m_E.resize(static_cast<std::size_t>(T));
  m_flux.resize(T, bands);
  m_flux_squared.resize(T, bands);
  for (Eigen::Index s = 0; s < S; ++s)
    for (int j = 0; j < m_E_steps; ++j) {
      const Eigen::Index t = s * m_E_steps + j;
      const double E = settings.E_min * std::pow(10.0, j * settings.E_step_dex);
      m_E[static_cast<std::size_t>(t)] = E;
      for (int b = 0; b < bands; ++b) {
        const double flux = std::exp(workspace.ln_flux_abs(b, s) - E * model.extinction_R(b));
        m_flux(t, b) = static_cast<float>(flux);
        m_flux_squared(t, b) = static_cast<float>(flux * flux);
      }
    }
  m_ratio_mask.resize(static_cast<std::size_t>(bands));
  for (int b = 0; b < bands; ++b) {
    const double nm = wavelength_nm[static_cast<std::size_t>(b)];
    m_ratio_mask[static_cast<std::size_t>(b)] =
        nm >= settings.ratio_min_nm - 1e-9 && nm <= settings.ratio_max_nm + 1e-9 ? 1.0f : 0.0f;
  }
}

void StartGrid::screen(const InferenceStar* stars, int count, StartScreenWorkspace& ws,
                       std::vector<std::vector<StartCandidate>>& candidates) const {
  const auto bands = static_cast<int>(m_ratio_mask.size());
  ws.data.resize(bands, 2 * count);
  ws.weights.resize(bands, count);
  for (int i = 0; i < count; ++i)
    for (int b = 0; b < bands; ++b) {
      const float w = stars[i].flux_weight[b];
      ws.data(b, 2 * i) = w * stars[i].flux_for_fit[b];
      ws.data(b, 2 * i + 1) = w > 0 ? m_ratio_mask[static_cast<std::size_t>(b)] : 0.0f;
      ws.weights(b, i) = w;
    }
  float_product(m_flux, ws.data, ws.products);
  float_product(m_flux_squared, ws.weights, ws.squares);

  const auto T = static_cast<Eigen::Index>(m_E.size());
  const int keep = static_cast<int>(std::min<Eigen::Index>(m_rescore, T));
  candidates.resize(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    const InferenceStar& star = stars[i];
    double observed_in_range = 0, chi2_constant = 0;
    for (int b = 0; b < bands; ++b) {
      const double f = star.flux_for_fit[b], w = star.flux_weight[b];
      if (w > 0) observed_in_range += m_ratio_mask[static_cast<std::size_t>(b)] * f;
      chi2_constant += w * f * f;
    }
    // A parallax^2 to fall back on when the flux ratio is useless (no flux in the range, or < 0).
    const double fallback = star.has_parallax && star.parallax > 0 ? star.parallax * star.parallax : 1e-4;
    auto& best = candidates[static_cast<std::size_t>(i)];
    StartCandidate empty;
    empty.score = std::numeric_limits<double>::infinity();
    best.assign(static_cast<std::size_t>(keep), empty);
    for (Eigen::Index t = 0; t < T; ++t) {
      const double predicted_in_range = ws.products(t, 2 * i + 1);
      double a = observed_in_range / predicted_in_range;
      if (!(a > 0) || !std::isfinite(a)) a = fallback;
      const double chi2 = a * a * ws.squares(t, i) - 2 * a * ws.products(t, 2 * i) + chi2_constant;
      const std::size_t sample = static_cast<std::size_t>(t / m_E_steps);
      double score = chi2 + m_minus_2_ln_prior[sample];
      if (star.has_parallax) {
        const double pull = (std::sqrt(a) - star.parallax) / star.parallax_error;
        score += pull * pull;
      }
      if (!(score < best.back().score)) continue;
      const double parallax = std::sqrt(a);
      const double E = m_E[static_cast<std::size_t>(t)];
      int slot = keep - 1;
      while (slot > 0 && score < best[static_cast<std::size_t>(slot - 1)].score) {
        best[static_cast<std::size_t>(slot)] = best[static_cast<std::size_t>(slot - 1)];
        --slot;
      }
      best[static_cast<std::size_t>(slot)] = {score, m_theta.col(static_cast<Eigen::Index>(sample)), parallax, E};
    }
  }
}

}  // namespace xps
