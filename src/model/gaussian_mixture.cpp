// Gaussian-mixture prior (DESIGN §1.5): EM fit, log density with gradient and Hessian, sampling,
// and the density level enclosing a given mass.
#include "xpstellar/gaussian_mixture.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>

#include "xpstellar/config.hpp"
#include "xpstellar/error.hpp"
#include "mixture_standardisation.hpp"
#include "mixture_types.hpp"

namespace xps {
namespace {

// std::mt19937_64's output is fixed by the standard; std's distributions are not, so ours are
// written out to keep fits and samples identical across standard libraries.
class Random {
public:
  explicit Random(std::uint64_t seed) : m_engine(seed) {}
  double uniform() { return static_cast<double>(m_engine() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {
    if (m_has_spare) {
      m_has_spare = false;
      return m_spare;
    }
    double u = 0.0;
    do u = uniform(); while (u <= 0.0);
    const double radius = std::sqrt(-2.0 * std::log(u));
    const double angle = 2.0 * std::numbers::pi * uniform();
    m_spare = radius * std::sin(angle);
    m_has_spare = true;
    return radius * std::cos(angle);
  }
  // Index drawn with probability proportional to `cumulative` increments (last = total).
  Eigen::Index pick(const std::vector<double>& cumulative) {
    const double u = uniform() * cumulative.back();
    const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
    return std::min<Eigen::Index>(it - cumulative.begin(),
                                  static_cast<Eigen::Index>(cumulative.size()) - 1);
  }

private:
  std::mt19937_64 m_engine;
  double m_spare = 0.0;
  bool m_has_spare = false;
};

constexpr double ln_2pi = 1.8378770664093453;

// k-means++ seeding and a few Lloyd iterations: each point's cluster.
std::vector<int> kmeans_labels(const Eigen::MatrixXd& x, int k_count, int iterations, Random& random) {
  const Eigen::Index n = x.rows();
  Eigen::MatrixXd centres(k_count, x.cols());
  centres.row(0) = x.row(static_cast<Eigen::Index>(random.uniform() * static_cast<double>(n)) % n);
  Eigen::VectorXd nearest = (x.rowwise() - centres.row(0)).rowwise().squaredNorm();
  std::vector<double> cumulative(static_cast<std::size_t>(n));
  for (int c = 1; c < k_count; ++c) {
    double total = 0.0;
    for (Eigen::Index i = 0; i < n; ++i) cumulative[static_cast<std::size_t>(i)] = total += nearest(i);
    const Eigen::Index chosen = total > 0.0 ? random.pick(cumulative)
                                            : static_cast<Eigen::Index>(random.uniform() * static_cast<double>(n)) % n;
    centres.row(c) = x.row(chosen);
    nearest = nearest.cwiseMin((x.rowwise() - centres.row(c)).rowwise().squaredNorm());
  }
  std::vector<int> label(static_cast<std::size_t>(n), -1);
  for (int iteration = 0; iteration <= iterations; ++iteration) {
    bool changed = false;
    for (Eigen::Index i = 0; i < n; ++i) {
      Eigen::Index best = 0;
      (centres.rowwise() - x.row(i)).rowwise().squaredNorm().minCoeff(&best);
      if (label[static_cast<std::size_t>(i)] != static_cast<int>(best)) changed = true;
      label[static_cast<std::size_t>(i)] = static_cast<int>(best);
    }
    if (!changed || iteration == iterations) break;
    Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(k_count, x.cols());
    Eigen::VectorXd count = Eigen::VectorXd::Zero(k_count);
    for (Eigen::Index i = 0; i < n; ++i) {
      sum.row(label[static_cast<std::size_t>(i)]) += x.row(i);
      count(label[static_cast<std::size_t>(i)]) += 1.0;
    }
    for (int c = 0; c < k_count; ++c)
      if (count(c) > 0) centres.row(c) = sum.row(c) / count(c);  // an empty cluster keeps its centre
  }
  return label;
}

// ---- EM over one point at a time (the training prior: D = 3, 180,000+ points) -----------------
// Fixed-size (D = 3) or fixed-capacity types per point (mixture_types.hpp), so the loops neither
// allocate nor build N x D temporaries, and the responsibilities come from one exp per point and
// component. Sums are taken per block of em_block points and added in block order, so the fit
// does not depend on the number of OpenMP threads.
constexpr Eigen::Index em_block = 4096;

// visit(MixtureTypes<...>{}) with the types for dimension d.
template <class Visit>
decltype(auto) with_mixture_types(Eigen::Index d, Visit&& visit) {
  if (d == 3) return visit(MixtureTypes<3>{});
  if (d <= gmm_max_fast_dimension) return visit(MixtureTypes<Eigen::Dynamic>{});
  return visit(MixtureTypes<Eigen::Dynamic, Eigen::Dynamic>{});
}

// The blocks this process sums, and the step that completes a [blocks x width] table of per-block
// sums from every process's rows (nothing to do for one process).
struct BlockPlan {
  Eigen::Index blocks = 0, first = 0, last = 0;
  const GmmBlockSharing* sharing = nullptr;

  BlockPlan(Eigen::Index n, const GmmBlockSharing& s)
      : blocks((n + em_block - 1) / em_block),
        first(gmm_first_block(blocks, s.part, s.parts)),
        last(gmm_first_block(blocks, s.part + 1, s.parts)),
        sharing(&s) {}
  Eigen::Index begin_point(Eigen::Index b) const { return b * em_block; }
  Eigen::Index end_point(Eigen::Index b, Eigen::Index n) const { return std::min(n, (b + 1) * em_block); }
  // This process keeps the responsibilities of its own points only: row i - first_point().
  Eigen::Index first_point() const { return first * em_block; }
  Eigen::Index points(Eigen::Index n) const { return std::max<Eigen::Index>(0, std::min(n, last * em_block) - first_point()); }
  void complete(std::vector<double>& rows, Eigen::Index width) const {
    if (sharing->parts > 1) sharing->share(rows.data(), blocks, width);
  }
};

// The responsibilities of this process's points [its points x K] and the mean ln p per point over
// all points; `points` is [D x N].
template <class Types>
double e_step_points(const Eigen::MatrixXd& points, const GaussianMixture& g, Eigen::MatrixXd& responsibility,
                     const GmmBlockSharing& sharing) {
  using Vector = typename Types::Vector;
  using Matrix = typename Types::Matrix;
  const Eigen::Index d = points.rows(), n = points.cols();
  const int k_count = g.components();
  std::vector<Matrix> cholesky(static_cast<std::size_t>(k_count));
  std::vector<Vector> mean(static_cast<std::size_t>(k_count));
  std::vector<double> log_norm(static_cast<std::size_t>(k_count));
  for (int k = 0; k < k_count; ++k) {
    const auto ku = static_cast<std::size_t>(k);
    const Eigen::LLT<Matrix> llt(Matrix(g.covariances[ku]));
    if (llt.info() != Eigen::Success)
      throw UsageError("GMM fit: a covariance lost positive definiteness (raise reg_covar)");
    cholesky[ku] = llt.matrixL();
    mean[ku] = g.means.row(k).transpose();
    log_norm[ku] = std::log(g.weights(k)) - 0.5 * (static_cast<double>(d) * ln_2pi) -
                   cholesky[ku].diagonal().array().log().sum();
  }
  const BlockPlan plan(n, sharing);
  responsibility.resize(plan.points(n), k_count);
  const Eigen::Index offset = plan.first_point();
  std::vector<double> block_sum(static_cast<std::size_t>(plan.blocks), 0.0);
#pragma omp parallel for schedule(static)
  for (Eigen::Index b = plan.first; b < plan.last; ++b) {
    std::vector<double> term(static_cast<std::size_t>(k_count));
    double sum = 0.0;
    for (Eigen::Index i = plan.begin_point(b); i < plan.end_point(b, n); ++i) {
      const Vector x = points.col(i);
      double top = -std::numeric_limits<double>::infinity();
      for (std::size_t k = 0; k < term.size(); ++k) {
        const Vector z = cholesky[k].template triangularView<Eigen::Lower>().solve(x - mean[k]);
        term[k] = log_norm[k] - 0.5 * z.squaredNorm();
        top = std::max(top, term[k]);
      }
      double total = 0.0;
      for (double& t : term) total += (t = std::exp(t - top));
      for (int k = 0; k < k_count; ++k) responsibility(i - offset, k) = term[static_cast<std::size_t>(k)] / total;
      sum += top + std::log(total);
    }
    block_sum[static_cast<std::size_t>(b)] = sum;
  }
  plan.complete(block_sum, 1);
  double sum = 0.0;
  for (const double partial : block_sum) sum += partial;
  return sum / static_cast<double>(n);
}

// Weights, means and covariances (+ reg_covar on the diagonal) from the responsibilities of this
// process's points [its points x K] of `points` [D x N]; the other processes' sums come through
// sharing.
template <class Types>
void m_step_points(const Eigen::MatrixXd& points, const Eigen::MatrixXd& responsibility, double reg_covar,
                   const GmmBlockSharing& sharing, GaussianMixture& g) {
  using Vector = typename Types::Vector;
  using Matrix = typename Types::Matrix;
  const Eigen::Index d = points.rows(), n = points.cols();
  const auto k_count = static_cast<Eigen::Index>(responsibility.cols());
  const BlockPlan plan(n, sharing);
  const Eigen::Index offset = plan.first_point();
  // Per block: the responsibility sums [K] and the weighted point sums [K x D].
  const Eigen::Index moment_width = k_count * (1 + d);
  std::vector<double> moments(static_cast<std::size_t>(plan.blocks * moment_width), 0.0);
#pragma omp parallel for schedule(static)
  for (Eigen::Index b = plan.first; b < plan.last; ++b) {
    Eigen::Map<Eigen::MatrixXd> row(moments.data() + b * moment_width, 1 + d, k_count);
    for (Eigen::Index i = plan.begin_point(b); i < plan.end_point(b, n); ++i)
      for (Eigen::Index k = 0; k < k_count; ++k) {
        const double r = responsibility(i - offset, k);
        row(0, k) += r;
        row.col(k).tail(d) += r * points.col(i);
      }
  }
  plan.complete(moments, moment_width);
  Eigen::MatrixXd moment_total = Eigen::MatrixXd::Zero(1 + d, k_count);
  for (Eigen::Index b = 0; b < plan.blocks; ++b)
    moment_total += Eigen::Map<const Eigen::MatrixXd>(moments.data() + b * moment_width, 1 + d, k_count);
  // The 10 eps floor keeps an emptied component finite, as scikit-learn does.
  const Eigen::VectorXd nk = moment_total.row(0).transpose().array() + 10.0 * std::numeric_limits<double>::epsilon();
  g.weights = nk / nk.sum();
  g.means = moment_total.bottomRows(d).transpose().array().colwise() / nk.array();

  const Eigen::Index scatter_width = k_count * d * d;
  std::vector<double> scatters(static_cast<std::size_t>(plan.blocks * scatter_width), 0.0);
#pragma omp parallel for schedule(static)
  for (Eigen::Index b = plan.first; b < plan.last; ++b) {
    for (Eigen::Index k = 0; k < k_count; ++k) {
      const Vector mean = g.means.row(k).transpose();
      Matrix sum = Matrix::Zero(d, d);
      for (Eigen::Index i = plan.begin_point(b); i < plan.end_point(b, n); ++i) {
        const Vector centred = points.col(i) - mean;
        sum.noalias() += responsibility(i - offset, k) * centred * centred.transpose();
      }
      Eigen::Map<Eigen::MatrixXd>(scatters.data() + b * scatter_width + k * d * d, d, d) = sum;
    }
  }
  plan.complete(scatters, scatter_width);
  g.covariances.resize(static_cast<std::size_t>(k_count));
  for (Eigen::Index k = 0; k < k_count; ++k) {
    Eigen::MatrixXd total = Eigen::MatrixXd::Zero(d, d);
    for (Eigen::Index b = 0; b < plan.blocks; ++b)
      total += Eigen::Map<const Eigen::MatrixXd>(scatters.data() + b * scatter_width + k * d * d, d, d);
    Eigen::MatrixXd cov = total / nk(k);
    cov.diagonal().array() += reg_covar;
    g.covariances[static_cast<std::size_t>(k)] = 0.5 * (cov + cov.transpose());
  }
}

// EM from n_init k-means++ starts on standardised points [N x D]; the best fit. The k-means starts
// are computed by every process alike; the EM sums are split over the processes by `sharing`.
template <class Types>
GaussianMixture fit_points(const Eigen::MatrixXd& x, const GmmFitSettings& settings, const GmmBlockSharing& sharing) {
  const Eigen::MatrixXd points = x.transpose();
  Random random(settings.seed);
  double best_ll = -std::numeric_limits<double>::infinity();
  GaussianMixture best;
  Eigen::MatrixXd responsibility;
  for (int init = 0; init < settings.n_init; ++init) {
    // Hard responsibilities of this process's points from every point's k-means cluster.
    const std::vector<int> label = kmeans_labels(x, settings.components, settings.kmeans_iterations, random);
    const BlockPlan plan(x.rows(), sharing);
    responsibility = Eigen::MatrixXd::Zero(plan.points(x.rows()), settings.components);
    for (Eigen::Index i = 0; i < responsibility.rows(); ++i)
      responsibility(i, label[static_cast<std::size_t>(plan.first_point() + i)]) = 1.0;
    GaussianMixture g;
    m_step_points<Types>(points, responsibility, settings.reg_covar, sharing, g);
    double ll = -std::numeric_limits<double>::infinity();
    for (int iteration = 0; iteration < settings.max_iterations; ++iteration) {
      const double previous = ll;
      ll = e_step_points<Types>(points, g, responsibility, sharing);
      if (std::abs(ll - previous) < settings.tolerance) break;
      m_step_points<Types>(points, responsibility, settings.reg_covar, sharing, g);
    }
    // Score the parameters actually returned.
    ll = e_step_points<Types>(points, g, responsibility, sharing);
    if (ll > best_ll) {
      best_ll = ll;
      best = std::move(g);
    }
  }
  return best;
}

}  // namespace

void declare_gmm_parameters(ParameterSet& p, const std::string& section) {
  const GmmPriorSettings d;
  p.declare_integer(section + ".components", d.fit.components, "", "number of full-covariance Gaussians", 1, 1000);
  p.declare_integer(section + ".max_iterations", d.fit.max_iterations, "", "EM iterations per initialisation", 1, 1000000);
  p.declare_real(section + ".tolerance", d.fit.tolerance, "", "EM stops when the mean ln-likelihood per point changes less", 0, 1);
  p.declare_real(section + ".reg_covar", d.fit.reg_covar, "", "added to covariance diagonals in standardised units", 0, 1);
  p.declare_integer(section + ".n_init", d.fit.n_init, "", "k-means++ initialisations; the best fit is kept", 1, 1000);
  p.declare_integer(section + ".kmeans_iterations", d.fit.kmeans_iterations, "", "Lloyd iterations after k-means++ seeding", 0, 100000);
  p.declare_integer(section + ".seed", static_cast<std::int64_t>(d.fit.seed), "", "random seed of the fit and of the prior-level sampling", 0);
  p.declare_real(section + ".prior_mass", d.prior_mass, "", "probability mass above the ln_prior cut (quality bit 4)", 0, 1);
  p.declare_integer(section + ".level_samples", d.level_samples, "", "samples estimating the ln_prior cut", 100, 1000000000);
}

GmmPriorSettings read_gmm_parameters(const ParameterSet& p, const std::string& section) {
  GmmPriorSettings s;
  s.fit.components = static_cast<int>(p.integer(section + ".components"));
  s.fit.max_iterations = static_cast<int>(p.integer(section + ".max_iterations"));
  s.fit.tolerance = p.real(section + ".tolerance");
  s.fit.reg_covar = p.real(section + ".reg_covar");
  s.fit.n_init = static_cast<int>(p.integer(section + ".n_init"));
  s.fit.kmeans_iterations = static_cast<int>(p.integer(section + ".kmeans_iterations"));
  s.fit.seed = static_cast<std::uint64_t>(p.integer(section + ".seed"));
  s.prior_mass = p.real(section + ".prior_mass");
  s.level_samples = p.integer(section + ".level_samples");
  if (!(s.prior_mass > 0.0 && s.prior_mass < 1.0))
    throw UsageError(section + ".prior_mass must lie strictly between 0 and 1");
  return s;
}

GaussianMixture fit_gaussian_mixture(const Eigen::MatrixXd& points, const GmmFitSettings& settings,
                                     const GmmBlockSharing& sharing) {
  const Eigen::Index n = points.rows(), d = points.cols();
  if (d == 0) throw UsageError("GMM fit: points have no dimensions");
  if (settings.components < 1 || n < settings.components)
    throw UsageError("GMM fit: " + std::to_string(n) + " points cannot fit " +
                     std::to_string(settings.components) + " components");
  if (settings.n_init < 1 || settings.max_iterations < 1)
    throw UsageError("GMM fit: n_init and max_iterations must be at least 1");
  if (!points.allFinite()) throw UsageError("GMM fit: points contain NaN or infinite values");
  if (sharing.parts < 1 || sharing.part < 0 || sharing.part >= sharing.parts || (sharing.parts > 1 && !sharing.share))
    throw UsageError("GMM fit: block sharing needs 0 <= part < parts and, for several parts, a share step");

  const MixtureStandardisation standardisation(points);
  const Eigen::MatrixXd x = standardisation.points(points);

  GaussianMixture best =
      with_mixture_types(d, [&]<class Types>(Types) { return fit_points<Types>(x, settings, sharing); });

  standardisation.restore(best);
  return best;
}

double mean_log_likelihood(const GaussianMixture& mixture, const Eigen::MatrixXd& points) {
  if (points.cols() != mixture.dimension()) throw UsageError("GMM: points and mixture differ in dimension");
  const Eigen::MatrixXd columns = points.transpose();
  Eigen::MatrixXd responsibility;
  return with_mixture_types(points.cols(), [&]<class Types>(Types) {
    return e_step_points<Types>(columns, mixture, responsibility, GmmBlockSharing{});
  });
}

GaussianMixtureDensity::GaussianMixtureDensity(const GaussianMixture& mixture)
    : m_dimension(mixture.dimension()), m_components(mixture.components()) {
  const auto d = static_cast<std::size_t>(m_dimension), k_count = static_cast<std::size_t>(m_components);
  if (m_dimension < 1 || m_components < 1 || mixture.means.rows() != m_components ||
      mixture.covariances.size() != k_count)
    throw UsageError("GMM: weights, means and covariances disagree in shape");
  m_log_norm.resize(k_count);
  m_means.resize(k_count * d);
  m_precision.resize(k_count * d * d);
  for (std::size_t k = 0; k < k_count; ++k) {
    const Eigen::MatrixXd& cov = mixture.covariances[k];
    if (cov.rows() != m_dimension || cov.cols() != m_dimension)
      throw UsageError("GMM: covariance " + std::to_string(k) + " is not D x D");
    const Eigen::LLT<Eigen::MatrixXd> llt(cov);
    if (llt.info() != Eigen::Success)
      throw UsageError("GMM: covariance " + std::to_string(k) + " is not positive definite");
    const double w = mixture.weights(static_cast<Eigen::Index>(k));
    if (!(w > 0.0)) throw UsageError("GMM: weight " + std::to_string(k) + " is not positive");
    const Eigen::MatrixXd l = llt.matrixL();
    m_log_norm[k] = std::log(w) - 0.5 * (static_cast<double>(d) * ln_2pi) -
                    l.diagonal().array().log().sum();
    const Eigen::MatrixXd precision = llt.solve(Eigen::MatrixXd::Identity(m_dimension, m_dimension));
    for (std::size_t i = 0; i < d; ++i) {
      m_means[k * d + i] = mixture.means(static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(i));
      for (std::size_t j = 0; j < d; ++j)  // symmetrised so that H comes out exactly symmetric
        m_precision[(k * d + i) * d + j] =
            0.5 * (precision(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) +
                   precision(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(i)));
    }
  }
}

template <int Dim, int MaxDim>
double GaussianMixtureDensity::evaluate_impl(const double* x_ptr, double* gradient,
                                             double* hessian) const noexcept {
  using Vector = Eigen::Matrix<double, Dim, 1, 0, MaxDim, 1>;
  using Matrix = Eigen::Matrix<double, Dim, Dim, Eigen::RowMajor, MaxDim, MaxDim>;
  const Eigen::Index d = m_dimension;
  const Eigen::Map<const Vector> x(x_ptr, d);
  const bool want_gradient = gradient != nullptr || hessian != nullptr;
  // Running log-sum-exp: sums are kept relative to the largest term seen so far.
  double top = -std::numeric_limits<double>::infinity(), sum = 0.0;
  Vector g_sum = Vector::Zero(d);
  Matrix h_sum = Matrix::Zero(d, d);
  for (int k = 0; k < m_components; ++k) {
    const auto ks = static_cast<std::size_t>(k) * static_cast<std::size_t>(d);
    const Eigen::Map<const Vector> mean(m_means.data() + ks, d);
    const Eigen::Map<const Matrix> precision(m_precision.data() + ks * static_cast<std::size_t>(d), d, d);
    const Vector a = -(precision * (x - mean));  // grad of ln N_k
    const double term = m_log_norm[static_cast<std::size_t>(k)] + 0.5 * a.dot(x - mean);
    double weight = 1.0;
    if (term > top) {
      const double rescale = std::exp(top - term);
      sum *= rescale;
      if (want_gradient) {
        g_sum *= rescale;
        if (hessian) h_sum *= rescale;
      }
      top = term;
    } else {
      weight = std::exp(term - top);
    }
    sum += weight;
    if (want_gradient) {
      g_sum += weight * a;
      if (hessian) h_sum.noalias() += weight * (a * a.transpose() - precision);
    }
  }
  if (want_gradient) {
    const Vector g = g_sum / sum;
    if (gradient) Eigen::Map<Vector>(gradient, d) = g;
    if (hessian) Eigen::Map<Matrix>(hessian, d, d) = h_sum / sum - g * g.transpose();
  }
  return top + std::log(sum);
}

double GaussianMixtureDensity::evaluate(const double* x, double* gradient, double* hessian) const noexcept {
  if (m_dimension == 3) return evaluate_impl<3, 3>(x, gradient, hessian);
  if (m_dimension <= gmm_max_fast_dimension)
    return evaluate_impl<Eigen::Dynamic, gmm_max_fast_dimension>(x, gradient, hessian);
  return evaluate_impl<Eigen::Dynamic, Eigen::Dynamic>(x, gradient, hessian);
}

double log_density(const GaussianMixture& mixture, const Eigen::VectorXd& x) {
  if (x.size() != mixture.dimension()) throw UsageError("GMM: point and mixture differ in dimension");
  return GaussianMixtureDensity(mixture).log_density(x);
}

Eigen::MatrixXd sample_gaussian_mixture(const GaussianMixture& mixture, std::int64_t count,
                                        std::uint64_t seed) {
  if (count < 0) throw UsageError("GMM: negative sample count");
  const int d = mixture.dimension(), k_count = mixture.components();
  std::vector<Eigen::MatrixXd> factors;
  std::vector<double> cumulative;
  double total = 0.0;
  for (int k = 0; k < k_count; ++k) {
    const Eigen::LLT<Eigen::MatrixXd> llt(mixture.covariances[static_cast<std::size_t>(k)]);
    if (llt.info() != Eigen::Success)
      throw UsageError("GMM: covariance " + std::to_string(k) + " is not positive definite");
    factors.emplace_back(llt.matrixL());
    cumulative.push_back(total += mixture.weights(k));
  }
  Random random(seed);
  Eigen::MatrixXd out(count, d);
  Eigen::VectorXd z(d);
  for (Eigen::Index i = 0; i < count; ++i) {
    const Eigen::Index k = random.pick(cumulative);
    for (int j = 0; j < d; ++j) z(j) = random.normal();
    out.row(i) = mixture.means.row(k) + (factors[static_cast<std::size_t>(k)] * z).transpose();
  }
  return out;
}

double density_level_enclosing(const GaussianMixture& mixture, double mass, std::int64_t samples,
                               std::uint64_t seed) {
  if (!(mass > 0.0 && mass < 1.0)) throw UsageError("GMM: enclosed mass must lie in (0, 1)");
  if (samples < 1) throw UsageError("GMM: density level needs at least one sample");
  const Eigen::MatrixXd drawn = sample_gaussian_mixture(mixture, samples, seed).transpose();  // [D x n]
  const GaussianMixtureDensity density(mixture);
  std::vector<double> level(static_cast<std::size_t>(samples));
  for (Eigen::Index i = 0; i < samples; ++i)
    level[static_cast<std::size_t>(i)] = density.evaluate(drawn.col(i).data(), nullptr, nullptr);
  const auto rank = static_cast<std::size_t>(
      std::floor((1.0 - mass) * static_cast<double>(samples)));
  const auto nth = level.begin() + static_cast<std::ptrdiff_t>(std::min(rank, level.size() - 1));
  std::nth_element(level.begin(), nth, level.end());
  return *nth;
}

}  // namespace xps
