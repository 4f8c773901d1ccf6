// The population behind noisy measurements: extreme deconvolution (Bovy, Hogg & Roweis 2011) of
// a Gaussian mixture, and the posterior mean of one object's true values under it.
//
// Training uses it for the labels (DESIGN §1.4): spectroscopic labels scatter about the truth by
// errors comparable to the spread of the population at fixed Teff, so a model fitted at the labels
// learns diluted slopes (regression dilution), and the joint fit inherits them. The deconvolved
// mixture is the population of the true labels; E[Theta | label] under it is the regression-
// calibrated label, and -2 ln p(Theta) the population term of a star's loss.
#pragma once

#include <Eigen/Dense>

#include "xpstellar/gaussian_mixture.hpp"

namespace xps {

// The mixture of the noiseless values behind `points` [N x D] measured with independent Gaussian
// errors of variances `variances` [N x D]: the maximum of sum_i ln sum_k w_k N(x_i | mu_k,
// Sigma_k + S_i), S_i = diag(variances_i). EM from the plain fit of `settings` to the noisy points
// (max_iterations, tolerance and reg_covar apply to both). D <= gmm_max_fast_dimension. Serial and
// deterministic; UsageError for non-finite points or non-positive variances.
GaussianMixture fit_deconvolved_gaussian_mixture(const Eigen::MatrixXd& points,
                                                 const Eigen::MatrixXd& variances,
                                                 const GmmFitSettings& settings);

// Mean ln sum_k w_k N(x_i | mu_k, Sigma_k + S_i) per point: what the deconvolution maximises.
double mean_deconvolved_log_likelihood(const GaussianMixture& population, const Eigen::MatrixXd& points,
                                       const Eigen::MatrixXd& variances);

// E[x | measured] for x drawn from `population` and measured with independent Gaussian errors of
// variances S = diag(variances): sum_k r_k (mu_k + Sigma_k (Sigma_k + S)^-1 (measured - mu_k)),
// r_k the responsibilities under the convolved components. One row per point of `measured`
// [N x D]; `variances` [N x D].
Eigen::MatrixXd posterior_means(const GaussianMixture& population, const Eigen::MatrixXd& measured,
                                const Eigen::MatrixXd& variances);

}  // namespace xps
