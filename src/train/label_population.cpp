// The deconvolved population of the training labels, fitted once on rank 0 and broadcast.
#include "xpstellar/label_population.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "xpstellar/deconvolved_mixture.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/mpi_session.hpp"

namespace xps {
namespace {

constexpr int dimension = 3;  // teff, feh, logg

std::vector<double> pack(const GaussianMixture& g) {
  std::vector<double> packed(g.weights.data(), g.weights.data() + g.weights.size());
  for (int k = 0; k < g.components(); ++k)
    for (int j = 0; j < dimension; ++j) packed.push_back(g.means(k, j));
  for (const auto& cov : g.covariances) packed.insert(packed.end(), cov.data(), cov.data() + cov.size());
  return packed;
}

GaussianMixture unpack(const std::vector<double>& packed, int components) {
  GaussianMixture g;
  g.weights = Eigen::Map<const Eigen::VectorXd>(packed.data(), components);
  const double* next = packed.data() + components;
  g.means.resize(components, dimension);
  for (int k = 0; k < components; ++k)
    for (int j = 0; j < dimension; ++j) g.means(k, j) = *next++;
  for (int k = 0; k < components; ++k, next += dimension * dimension)
    g.covariances.emplace_back(Eigen::Map<const Eigen::MatrixXd>(next, dimension, dimension));
  return g;
}

}  // namespace

GaussianMixture fit_label_population(const TrainingStars& stars, const PopulationPriorSettings& settings,
                                     MPI_Comm comm) {
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::int64_t> usable;
  for (std::int64_t i = 0; i < stars.size(); ++i)
    if (stars.usable(i)) usable.push_back(i);
  const std::vector<std::int64_t> per_rank = all_gather_int64({static_cast<std::int64_t>(usable.size())}, comm);
  const int rank = comm_rank(comm);
  std::int64_t total = 0, offset = 0;
  for (std::size_t r = 0; r < per_rank.size(); ++r) {
    if (static_cast<int>(r) < rank) offset += per_rank[r];
    total += per_rank[r];
  }
  const std::int64_t stride = std::max<std::int64_t>(1, (total + settings.max_stars - 1) / settings.max_stars);
  std::vector<double> local;  // label[3], label variance[3] per star
  for (std::size_t j = 0; j < usable.size(); ++j) {
    if ((offset + static_cast<std::int64_t>(j)) % stride != 0) continue;
    const auto i = static_cast<Eigen::Index>(usable[j]);
    for (int d = 0; d < dimension; ++d) local.push_back(stars.label(d, i));
    for (int d = 0; d < dimension; ++d) local.push_back(stars.label_error(d, i) * stars.label_error(d, i));
  }
  const std::vector<double> all = gather_doubles_to_root(local, comm);  // canonical order

  std::string failure;
  std::vector<double> packed;
  if (rank == 0) {
    const auto n = static_cast<Eigen::Index>(all.size() / (2 * dimension));
    Eigen::MatrixXd labels(n, dimension), variances(n, dimension);
    for (Eigen::Index i = 0; i < n; ++i)
      for (int d = 0; d < dimension; ++d) {
        labels(i, d) = all[static_cast<std::size_t>(2 * dimension * i + d)];
        variances(i, d) = all[static_cast<std::size_t>(2 * dimension * i + dimension + d)];
      }
    try {
      packed = pack(fit_deconvolved_gaussian_mixture(labels, variances, settings.fit));
    } catch (const std::exception& e) {
      failure = "population_prior: " + std::string(e.what()) + " (" + std::to_string(n) + " stars)";
    }
    if (failure.empty())
      io_out(comm) << "population prior: " << settings.fit.components << " Gaussians deconvolved from the labels of "
                   << n << " training stars (one in " << stride << ") in "
                   << std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() << " s\n";
  }
  broadcast_string(failure, comm);
  if (!failure.empty()) throw UsageError(failure);
  packed.resize(static_cast<std::size_t>(settings.fit.components * (1 + dimension + dimension * dimension)));
  MPI_Bcast(packed.data(), static_cast<int>(packed.size()), MPI_DOUBLE, 0, comm);
  return unpack(packed, settings.fit.components);
}

}  // namespace xps
