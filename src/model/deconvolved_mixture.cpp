// Extreme deconvolution of a Gaussian mixture and posterior means under it.
#include "xpstellar/deconvolved_mixture.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "xpstellar/error.hpp"
#include "mixture_standardisation.hpp"
#include "mixture_types.hpp"

namespace xps {
namespace {

constexpr double ln_2pi = 1.8378770664093453;

// The mixture in those types.
template <int Dim>
struct Components {
  using SmallVector = typename MixtureTypes<Dim>::Vector;
  using SmallMatrix = typename MixtureTypes<Dim>::Matrix;
  explicit Components(const GaussianMixture& g) {
    for (int k = 0; k < g.components(); ++k) {
      ln_weight.push_back(std::log(g.weights(k)));
      mean.emplace_back(g.means.row(k).transpose());
      covariance.emplace_back(g.covariances[static_cast<std::size_t>(k)]);
    }
  }
  std::vector<double> ln_weight;
  std::vector<SmallVector> mean;
  std::vector<SmallMatrix> covariance;
};

// One measured point seen through the mixture convolved with its errors, T_k = Sigma_k + S:
// per component ln(w_k N(x | mu_k, T_k)), then the responsibilities, and the moments of the true
// value given the point and the component, b_k = mu_k + Sigma_k T_k^-1 (x - mu_k) and
// B_k = Sigma_k - Sigma_k T_k^-1 Sigma_k.
template <int Dim>
struct PointPosterior {
  using SmallVector = typename MixtureTypes<Dim>::Vector;
  using SmallMatrix = typename MixtureTypes<Dim>::Matrix;
  explicit PointPosterior(const Components<Dim>& c)
      : responsibility(c.mean.size()), mean(c.mean.size()), covariance(c.mean.size()) {}

  // Returns ln sum_k w_k N(x | mu_k, T_k) (-inf if no T_k is positive definite).
  double compute(const Components<Dim>& c, const double* x_ptr, const double* variance_ptr, bool want_covariance) {
    const auto d = static_cast<Eigen::Index>(c.mean.front().size());
    const Eigen::Map<const SmallVector> x(x_ptr, d), variance(variance_ptr, d);
    double top = -std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k < c.mean.size(); ++k) {
      SmallMatrix convolved = c.covariance[k];
      convolved.diagonal() += variance;
      const Eigen::LLT<SmallMatrix> llt(convolved);
      if (llt.info() != Eigen::Success) {  // weight 0; moments kept finite
        responsibility[k] = -std::numeric_limits<double>::infinity();
        mean[k] = c.mean[k];
        if (want_covariance) covariance[k] = c.covariance[k];
        continue;
      }
      const SmallVector offset = x - c.mean[k];
      const SmallVector whitened = llt.solve(offset);
      const double log_det = 2.0 * llt.matrixLLT().diagonal().array().log().sum();
      responsibility[k] = c.ln_weight[k] -
                          0.5 * (static_cast<double>(d) * ln_2pi + log_det + offset.dot(whitened));
      mean[k] = c.mean[k] + c.covariance[k] * whitened;
      if (want_covariance) covariance[k] = c.covariance[k] - c.covariance[k] * llt.solve(c.covariance[k]);
      top = std::max(top, responsibility[k]);
    }
    if (!std::isfinite(top)) return top;
    double sum = 0.0;
    for (double& r : responsibility) sum += (r = std::exp(r - top));
    for (double& r : responsibility) r /= sum;
    return top + std::log(sum);
  }

  std::vector<double> responsibility;
  std::vector<SmallVector> mean;
  std::vector<SmallMatrix> covariance;
};

void check_shapes(const Eigen::MatrixXd& points, const Eigen::MatrixXd& variances, int dimension) {
  if (points.cols() == 0 || points.cols() > gmm_max_fast_dimension)
    throw UsageError("deconvolution: dimension " + std::to_string(points.cols()) + " outside 1.." +
                     std::to_string(gmm_max_fast_dimension));
  if (dimension >= 0 && points.cols() != dimension)
    throw UsageError("deconvolution: points and mixture differ in dimension");
  if (variances.rows() != points.rows() || variances.cols() != points.cols())
    throw UsageError("deconvolution: points and variances differ in shape");
  if (!points.allFinite()) throw UsageError("deconvolution: points contain NaN or infinite values");
  if (!variances.allFinite() || !(variances.array() > 0.0).all())
    throw UsageError("deconvolution: variances must be positive and finite");
}

// EM of the deconvolution in standardised units: z [D x N] points, s [D x N] variances, g the
// starting mixture (updated in place).
template <int Dim>
void deconvolve(const Eigen::MatrixXd& z, const Eigen::MatrixXd& s, const GmmFitSettings& settings,
                GaussianMixture& g) {
  using SmallVector = typename MixtureTypes<Dim>::Vector;
  using SmallMatrix = typename MixtureTypes<Dim>::Matrix;
  const Eigen::Index n = z.cols(), d = z.rows();
  const int k_count = g.components();
  std::vector<double> count(static_cast<std::size_t>(k_count));
  std::vector<SmallVector> first(static_cast<std::size_t>(k_count));
  std::vector<SmallMatrix> second(static_cast<std::size_t>(k_count));
  double previous = -std::numeric_limits<double>::infinity();
  for (int iteration = 0; iteration < settings.max_iterations; ++iteration) {
    const Components<Dim> components(g);
    PointPosterior<Dim> posterior(components);
    for (std::size_t k = 0; k < count.size(); ++k) {
      count[k] = 10.0 * std::numeric_limits<double>::epsilon();  // keeps an emptied component finite
      first[k] = SmallVector::Zero(d);
      second[k] = SmallMatrix::Zero(d, d);
    }
    double total = 0.0;
    for (Eigen::Index i = 0; i < n; ++i) {
      total += posterior.compute(components, z.col(i).data(), s.col(i).data(), true);
      for (std::size_t k = 0; k < count.size(); ++k) {
        const double r = posterior.responsibility[k];
        count[k] += r;
        first[k] += r * posterior.mean[k];
        second[k] += r * (posterior.mean[k] * posterior.mean[k].transpose() + posterior.covariance[k]);
      }
    }
    const double mean_ll = total / static_cast<double>(n);
    if (!std::isfinite(mean_ll)) throw UsageError("deconvolution: a component lost positive definiteness (raise reg_covar)");
    if (std::abs(mean_ll - previous) < settings.tolerance) break;
    previous = mean_ll;
    double all = 0.0;
    for (const double c : count) all += c;
    for (int k = 0; k < k_count; ++k) {
      const auto ks = static_cast<std::size_t>(k);
      g.weights(k) = count[ks] / all;
      const SmallVector mu = first[ks] / count[ks];
      SmallMatrix cov = second[ks] / count[ks] - mu * mu.transpose();
      cov.diagonal().array() += settings.reg_covar;
      g.means.row(k) = mu.transpose();
      g.covariances[ks] = 0.5 * (cov + cov.transpose());
    }
  }
}

template <int Dim>
double mean_log_likelihood_impl(const GaussianMixture& population, const Eigen::MatrixXd& x,
                                const Eigen::MatrixXd& s) {
  const Components<Dim> components(population);
  PointPosterior<Dim> posterior(components);
  double total = 0.0;
  for (Eigen::Index i = 0; i < x.cols(); ++i) total += posterior.compute(components, x.col(i).data(), s.col(i).data(), false);
  return total / static_cast<double>(x.cols());
}

template <int Dim>
Eigen::MatrixXd posterior_means_impl(const GaussianMixture& population, const Eigen::MatrixXd& x,
                                     const Eigen::MatrixXd& s) {
  const Components<Dim> components(population);
  PointPosterior<Dim> posterior(components);
  Eigen::MatrixXd means = Eigen::MatrixXd::Zero(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.cols(); ++i) {
    if (!std::isfinite(posterior.compute(components, x.col(i).data(), s.col(i).data(), false)))
      throw UsageError("posterior mean: no component of the population is positive definite");
    for (std::size_t k = 0; k < posterior.mean.size(); ++k)
      means.col(i) += posterior.responsibility[k] * posterior.mean[k];
  }
  return means.transpose();
}

}  // namespace

GaussianMixture fit_deconvolved_gaussian_mixture(const Eigen::MatrixXd& points,
                                                 const Eigen::MatrixXd& variances,
                                                 const GmmFitSettings& settings) {
  check_shapes(points, variances, -1);
  const MixtureStandardisation standardisation(points);
  const Eigen::MatrixXd z = standardisation.points(points).transpose();  // [D x N]
  const Eigen::MatrixXd s = standardisation.variances(variances).transpose();
  GaussianMixture g = fit_gaussian_mixture(z.transpose(), settings);
  if (points.cols() == 3)
    deconvolve<3>(z, s, settings, g);
  else
    deconvolve<Eigen::Dynamic>(z, s, settings, g);
  standardisation.restore(g);
  return g;
}

double mean_deconvolved_log_likelihood(const GaussianMixture& population, const Eigen::MatrixXd& points,
                                       const Eigen::MatrixXd& variances) {
  check_shapes(points, variances, population.dimension());
  const Eigen::MatrixXd x = points.transpose(), s = variances.transpose();
  return points.cols() == 3 ? mean_log_likelihood_impl<3>(population, x, s)
                            : mean_log_likelihood_impl<Eigen::Dynamic>(population, x, s);
}

Eigen::MatrixXd posterior_means(const GaussianMixture& population, const Eigen::MatrixXd& measured,
                                const Eigen::MatrixXd& variances) {
  check_shapes(measured, variances, population.dimension());
  const Eigen::MatrixXd x = measured.transpose(), s = variances.transpose();
  return measured.cols() == 3 ? posterior_means_impl<3>(population, x, s)
                              : posterior_means_impl<Eigen::Dynamic>(population, x, s);
}

}  // namespace xps
