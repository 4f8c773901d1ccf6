// Writes a model file with random contents (tests/unit/model_file_fixture.hpp), reads it back, and
// evaluates it with the C++ forward pass (src/model/flux_model.cpp) and prior density on random
// stars, for tests/integration/check_model_file.py, which does the same with tools/xps_model.py.
// Output in OUTDIR: model.h5; predictions.csv (one star per line: teff, feh, logg, ln_parallax,
// ln_E, xi, ln_prior, then M values of ln f_abs, then M of f_pred); checksum.txt (file_checksum).
// Usage: model_file_fixture OUTDIR ACTIVATION USE_XI(0|1) [STARS [SEED]]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>

#include "../unit/model_file_fixture.hpp"
#include "xpstellar/gaussian_mixture.hpp"
#include "xpstellar/model_file.hpp"
#include "xpstellar/mpi_session.hpp"

int main(int argc, char** argv) {
  xps::MpiSession mpi(argc, argv);
  try {
    if (argc < 4 || argc > 6) {
      std::fprintf(stderr, "usage: model_file_fixture OUTDIR ACTIVATION USE_XI [STARS [SEED]]\n");
      return 2;
    }
    const std::string dir = argv[1];
    xps::test::ModelFixtureOptions options;
    options.activation = xps::parse_activation(argv[2]);
    options.use_xi = std::string(argv[3]) == "1";
    options.width = 32;
    const long stars = argc > 4 ? std::atol(argv[4]) : 200;
    options.seed = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 7;

    const std::string path = dir + "/model.h5";
    xps::write_model_file(path, xps::test::make_random_model_file(options));
    const xps::ModelFile file = xps::read_model_file(path);
    const xps::FluxModel& model = file.model;

    std::mt19937_64 engine(options.seed + 1);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    xps::StarBatch batch;
    batch.theta.resize(3, stars);
    batch.ln_parallax.resize(stars);
    batch.ln_E.resize(stars);
    batch.xi.resize(stars);
    for (Eigen::Index i = 0; i < stars; ++i) {
      // Stars over and beyond the training range, so that every activation branch is used.
      batch.theta(0, i) = 2500.0 + 9000.0 * uniform(engine);
      batch.theta(1, i) = -3.0 + 3.8 * uniform(engine);
      batch.theta(2, i) = -0.5 + 6.0 * uniform(engine);
      batch.ln_parallax(i) = std::log(0.05 + 10.0 * uniform(engine));
      batch.ln_E(i) = std::log(0.001 + 2.0 * uniform(engine));
      batch.xi(i) = -0.5 + uniform(engine);
    }
    xps::FluxModelWorkspace workspace;
    xps::flux_model_forward(model, batch, workspace);
    const xps::GaussianMixtureDensity prior(file.prior->mixture);

    FILE* out = std::fopen((dir + "/predictions.csv").c_str(), "w");
    if (out == nullptr) {
      std::fprintf(stderr, "model_file_fixture: cannot write %s/predictions.csv\n", dir.c_str());
      return 1;
    }
    for (Eigen::Index i = 0; i < stars; ++i) {
      const Eigen::Vector3d theta = batch.theta.col(i);
      std::fprintf(out, "%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g", theta(0), theta(1), theta(2),
                   batch.ln_parallax(i), batch.ln_E(i), batch.xi(i),
                   prior.evaluate(theta.data(), nullptr, nullptr));
      for (Eigen::Index b = 0; b < workspace.ln_flux_abs.rows(); ++b)
        std::fprintf(out, ",%.17g", workspace.ln_flux_abs(b, i));
      for (Eigen::Index b = 0; b < workspace.flux.rows(); ++b)
        std::fprintf(out, ",%.17g", workspace.flux(b, i));
      std::fprintf(out, "\n");
    }
    std::fclose(out);
    FILE* checksum = std::fopen((dir + "/checksum.txt").c_str(), "w");
    if (checksum == nullptr) return 1;
    std::fprintf(checksum, "%s\n", xps::file_checksum(path).c_str());
    std::fclose(checksum);
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "model_file_fixture: %s\n", error.what());
    return 1;
  }
}
