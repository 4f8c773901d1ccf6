// Fits xpstellar's Gaussian mixture (src/model/gaussian_mixture.cpp) to points read from a text
// file (one point per line, values separated by commas or blanks, '#' lines and a non-numeric
// header skipped) and prints `mean_log_likelihood <value>` per point in the input's units, for
// tests/integration/check_gmm_vs_sklearn.py. Under mpirun the ranks fit together (training's
// gmm_block_sharing) and rank 0 also prints `fit_seconds`, the wall time of the fit.
// Usage: [mpirun -np K] fit_gmm POINTS [components [n_init [seed [tolerance]]]]
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <chrono>

#include "xpstellar/gaussian_mixture.hpp"
#include "xpstellar/mpi_session.hpp"
#include "xpstellar/training_run.hpp"

int main(int argc, char** argv) {
  xps::MpiSession mpi(argc, argv);
  try {
    if (argc < 2 || argc > 6) {
      std::fprintf(stderr, "usage: fit_gmm POINTS [components [n_init [seed [tolerance]]]]\n");
      return 2;
    }
    std::ifstream in(argv[1]);
    if (!in) {
      std::fprintf(stderr, "fit_gmm: cannot open %s\n", argv[1]);
      return 1;
    }
    std::vector<std::vector<double>> rows;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      if (line.empty() || line[0] == '#') continue;
      for (char& c : line)
        if (c == ',') c = ' ';
      std::istringstream fields(line);
      std::vector<double> row;
      double value = 0.0;
      while (fields >> value) row.push_back(value);
      if (!fields.eof()) {
        if (rows.empty()) continue;  // a header
        std::fprintf(stderr, "fit_gmm: %s line %d: not a number\n", argv[1], number);
        return 1;
      }
      if (!rows.empty() && row.size() != rows.front().size()) {
        std::fprintf(stderr, "fit_gmm: %s line %d: %zu values, expected %zu\n", argv[1], number,
                     row.size(), rows.front().size());
        return 1;
      }
      if (!row.empty()) rows.push_back(std::move(row));
    }
    if (rows.empty()) {
      std::fprintf(stderr, "fit_gmm: %s holds no points\n", argv[1]);
      return 1;
    }
    Eigen::MatrixXd points(static_cast<Eigen::Index>(rows.size()),
                           static_cast<Eigen::Index>(rows.front().size()));
    for (std::size_t i = 0; i < rows.size(); ++i)
      for (std::size_t j = 0; j < rows[i].size(); ++j)
        points(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = rows[i][j];

    xps::GmmFitSettings settings;
    if (argc > 2) settings.components = std::atoi(argv[2]);
    if (argc > 3) settings.n_init = std::atoi(argv[3]);
    if (argc > 4) settings.seed = std::strtoull(argv[4], nullptr, 10);
    if (argc > 5) settings.tolerance = std::atof(argv[5]);
    const auto start = std::chrono::steady_clock::now();
    const xps::GaussianMixture mixture =
        xps::fit_gaussian_mixture(points, settings, xps::gmm_block_sharing(mpi.world()));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (mpi.is_io_rank()) {
      std::printf("mean_log_likelihood %.17g\n", xps::mean_log_likelihood(mixture, points));
      std::printf("fit_seconds %.3f on %d rank(s)\n", seconds, mpi.size());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fit_gmm: %s\n", e.what());
    return 1;
  }
}
