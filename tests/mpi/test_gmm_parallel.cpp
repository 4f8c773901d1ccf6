// The Gaussian-mixture prior fitted by several ranks together (run at 2 ranks by ctest): the
// EM's block sums all-gathered over MPI (training_run.hpp's gmm_block_sharing) give every rank
// the fit that one process alone makes of the same points, bit for bit.
#include <gtest/gtest.h>
#include <mpi.h>

#include <Eigen/Dense>
#include <cstdint>
#include <random>
#include <vector>

#include "xpstellar/gaussian_mixture.hpp"
#include "xpstellar/mpi_session.hpp"
#include "xpstellar/training_run.hpp"

namespace {

// Three separated blobs in 3-D, the same on every rank.
Eigen::MatrixXd blob_points(Eigen::Index n) {
  std::mt19937_64 engine(11);
  std::normal_distribution<double> normal;
  Eigen::MatrixXd points(n, 3);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index k = 0; k < 3; ++k) points(i, k) = normal(engine) + (k == i % 3 ? 4.0 : 0.0);
  return points;
}

TEST(GmmParallel, RanksFittingTogetherGetTheSingleProcessFit) {
  const Eigen::MatrixXd points = blob_points(20000);  // 5 blocks of 4,096 points
  xps::GmmFitSettings settings;
  settings.components = 5;
  settings.max_iterations = 60;
  settings.n_init = 2;
  const xps::GaussianMixture alone = xps::fit_gaussian_mixture(points, settings);
  const xps::GaussianMixture together =
      xps::fit_gaussian_mixture(points, settings, xps::gmm_block_sharing(MPI_COMM_WORLD));
  EXPECT_TRUE(together.weights == alone.weights);
  EXPECT_TRUE(together.means == alone.means);
  for (std::size_t k = 0; k < alone.covariances.size(); ++k)
    EXPECT_TRUE(together.covariances[k] == alone.covariances[k]) << "component " << k;
}

double cell(std::int64_t row, std::int64_t column) { return static_cast<double>(10 * row + column); }

TEST(GmmParallel, RowsFilledByEachRankReachEveryRank) {
  const int rank = xps::comm_rank(MPI_COMM_WORLD), ranks = xps::comm_size(MPI_COMM_WORLD);
  const std::int64_t rows = 7, width = 3;
  std::vector<std::int64_t> first_row;
  for (int r = 0; r <= ranks; ++r) first_row.push_back(rows * r / ranks);
  std::vector<double> table(static_cast<std::size_t>(rows * width), -1.0);
  for (auto row = first_row[static_cast<std::size_t>(rank)]; row < first_row[static_cast<std::size_t>(rank) + 1]; ++row)
    for (std::int64_t c = 0; c < width; ++c) table[static_cast<std::size_t>(row * width + c)] = cell(row, c);
  xps::all_gather_rows(table.data(), first_row, width, MPI_COMM_WORLD);
  for (std::int64_t row = 0; row < rows; ++row)
    for (std::int64_t c = 0; c < width; ++c)
      EXPECT_EQ(table[static_cast<std::size_t>(row * width + c)], cell(row, c)) << row << "," << c;
}

}  // namespace
