// Starting points of the per-star fit (DESIGN §1.5): gmm_samples Theta templates drawn from the
// prior times a geometric E grid. For each template t (its flux at parallax 1 mas) the parallax
// guess comes from the observed-to-predicted flux ratio over ratio_min..ratio_max nm,
// a = parallax^2 = sum f_obs / sum t, and the screen scores
//   chi^2_diag(a t) - 2 ln p_GMM(Theta_t) [+ ((sqrt(a) - parallax_hat) / sigma)^2]
// with chi^2_diag using only the per-band inflated variances (the paper's chi^2 - 2 ln p, plus the
// parallax term of L_inf for stars with a parallax, which costs nothing here). The template fluxes are shared by
// all stars, so for a block of stars the two sums chi^2_diag needs (sum w t f, sum w t^2) and the
// ratio's denominator are three matrix products of the template table with the block's data. The
// best `rescore` starts are then scored with the full loss by the caller.
//
// Immutable after construction: one instance is shared by all threads; each thread owns a
// StartScreenWorkspace.
#pragma once

#include <Eigen/Dense>
#include <cstddef>
#include <vector>

#include "xpstellar/flux_model.hpp"
#include "xpstellar/gaussian_mixture.hpp"
#include "xpstellar/inference_settings.hpp"
#include "xpstellar/inference_star.hpp"

namespace xps {

struct StartCandidate {
  double score = 0;
  Eigen::Vector3d theta = Eigen::Vector3d::Zero();  // K, dex, dex
  double parallax = 1;    // mas
  double E = 0.1;
};

struct StartScreenWorkspace {
  Eigen::MatrixXf data;       // [M x 2B]: w f, ratio mask per star
  Eigen::MatrixXf weights;    // [M x B]: w
  Eigen::MatrixXf products;   // [T x 2B]
  Eigen::MatrixXf squares;    // [T x B]
};

class StartGrid {
public:
  StartGrid(const FluxModel& model, const GaussianMixture& prior,
            const std::vector<double>& wavelength_nm, const StartSettings& settings);

  std::size_t templates() const { return m_E.size(); }
  int samples() const { return static_cast<int>(m_theta.cols()); }
  int E_steps() const { return m_E_steps; }

  // The best min(rescore, templates) candidates of each of `count` stars (best first), into
  // candidates[i]. Stars must be prepared (FitStatus converged).
  void screen(const InferenceStar* stars, int count, StartScreenWorkspace& workspace,
              std::vector<std::vector<StartCandidate>>& candidates) const;

private:
  int m_rescore = 8;
  int m_E_steps = 0;
  Eigen::Matrix3Xd m_theta;                 // [3 x S] GMM samples
  std::vector<double> m_minus_2_ln_prior;   // [S]
  std::vector<double> m_E;                  // [T]: template t = sample t / E_steps, E index t % E_steps
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> m_flux;          // [T x M]
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> m_flux_squared;  // [T x M]
  std::vector<float> m_ratio_mask;          // [M] 1 inside the ratio range
};

}  // namespace xps
