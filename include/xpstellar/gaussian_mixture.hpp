// The Gaussian-mixture prior on Theta = (Teff, [Fe/H], logg) of DESIGN §1.5: K full-covariance
// Gaussians fitted by EM to the training set's labels, its log density with analytic gradient and
// Hessian (the -2 ln p term of the inference loss), sampling (inference starts), and the ln p level
// enclosing a given probability mass (the catalogue's ln_prior cut, quality bit 4; the paper's
// value -7.43 for 99.9 %). Written for any dimension D; the evaluation is allocation-free for
// D <= gmm_max_fast_dimension and uses fixed-size Eigen types for D = 3.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace xps {
class ParameterSet;

struct GaussianMixture {
  Eigen::VectorXd weights;                   // [K], sum 1
  Eigen::MatrixXd means;                     // [K x D]
  std::vector<Eigen::MatrixXd> covariances;  // K matrices [D x D], symmetric positive definite

  int components() const { return static_cast<int>(weights.size()); }
  int dimension() const { return static_cast<int>(means.cols()); }
};

struct GmmFitSettings {
  int components = 16;
  int max_iterations = 1000;  // EM iterations per initialisation
  double tolerance = 1e-6;    // stop when the mean log-likelihood per point changes less
  double reg_covar = 1e-6;    // added to covariance diagonals, in standardised units (variance 1)
  int n_init = 4;             // k-means++ initialisations; the highest likelihood is kept
  std::uint64_t seed = 1;     // same seed and points -> bit-identical fit
  int kmeans_iterations = 50;  // Lloyd iterations after k-means++ seeding
};

struct GmmPriorSettings {
  GmmFitSettings fit;
  double prior_mass = 0.999;              // mass enclosed by the ln_prior cut
  std::int64_t level_samples = 1000000;   // samples estimating that level
};

// Declares the keys of `section` (e.g. "gmm") with the paper's values as defaults.
void declare_gmm_parameters(ParameterSet& parameters, const std::string& section);
GmmPriorSettings read_gmm_parameters(const ParameterSet& parameters, const std::string& section);

// Several processes (MPI ranks, say; the caller owns them) can fit one mixture together. Each holds
// every point; the EM's sums are taken per block of 4,096 points, process `part` of `parts` takes
// the blocks [gmm_first_block(blocks, part, parts), gmm_first_block(blocks, part + 1, parts)),
// and `share(rows, blocks, width)` must fill in the other processes' rows of a row-major
// [blocks x width] table of which this process filled its own. The blocks are then added in block
// order, so any number of processes (and of OpenMP threads) gives the bits of one process alone.
struct GmmBlockSharing {
  int part = 0;
  int parts = 1;
  std::function<void(double* rows, std::int64_t blocks, std::int64_t width)> share;
};
inline std::int64_t gmm_first_block(std::int64_t blocks, int part, int parts) {
  return blocks * part / parts;
}

// EM fit to `points` [N x D]. Works on internally standardised coordinates (zero mean, unit
// variance per dimension) and returns parameters in the original units. Throws UsageError for
// N < components, D = 0 or non-finite points. Deterministic; alone by default, or as one part of
// several processes that fit the same points together (`sharing`).
GaussianMixture fit_gaussian_mixture(const Eigen::MatrixXd& points, const GmmFitSettings& settings,
                                     const GmmBlockSharing& sharing = {});

// Mean ln p per point of `points` [N x D] (the quantity EM maximises).
double mean_log_likelihood(const GaussianMixture& mixture, const Eigen::MatrixXd& points);

// Largest D for which GaussianMixtureDensity::evaluate works on the stack (no allocation).
inline constexpr int gmm_max_fast_dimension = 8;

// A mixture with everything the hot path needs precomputed per component: ln w_k minus the
// normalisation (ln det via Cholesky), the precision matrix Sigma_k^-1 and the mean. Immutable,
// so one instance may be shared by threads.
class GaussianMixtureDensity {
public:
  explicit GaussianMixtureDensity(const GaussianMixture& mixture);  // UsageError if not SPD

  int dimension() const { return m_dimension; }
  int components() const { return m_components; }

  // ln p(x) for x [D]; optionally its gradient [D] and Hessian [D x D, row-major]:
  //   g = sum_k r_k a_k,  H = sum_k r_k (a_k a_k^T - P_k) - g g^T,  a_k = -P_k (x - mu_k),
  // r_k the responsibilities. One pass over the components with a running log-sum-exp; cost
  // O(K D^2), no allocation for D <= gmm_max_fast_dimension (heap temporaries above).
  double evaluate(const double* x, double* gradient, double* hessian) const noexcept;
  double log_density(const Eigen::VectorXd& x) const { return evaluate(x.data(), nullptr, nullptr); }

private:
  template <int Dim, int MaxDim>
  double evaluate_impl(const double* x, double* gradient, double* hessian) const noexcept;

  int m_dimension = 0;
  int m_components = 0;
  std::vector<double> m_log_norm;   // [K] ln w_k - D/2 ln 2pi - 1/2 ln det Sigma_k
  std::vector<double> m_means;      // [K x D]
  std::vector<double> m_precision;  // [K x D x D]
};

// Convenience (builds the precomputation each call: for tests, not for loops).
double log_density(const GaussianMixture& mixture, const Eigen::VectorXd& x);

// `count` points [count x D] drawn from the mixture; deterministic for a given seed.
Eigen::MatrixXd sample_gaussian_mixture(const GaussianMixture& mixture, std::int64_t count,
                                        std::uint64_t seed);

// The ln p threshold with `mass` of the mixture's probability above it: the (1 - mass) quantile
// of ln p over `samples` draws (seeded). This is the catalogue's ln_prior cut.
double density_level_enclosing(const GaussianMixture& mixture, double mass, std::int64_t samples,
                               std::uint64_t seed);

}  // namespace xps
