// A model file with random contents, shared by tests/unit/test_model_file.cpp and
// tests/tools/model_file_fixture.cpp (which checks tools/xps_model.py against the C++ forward
// pass).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "xpstellar/model_file.hpp"

namespace xps::test {

struct ModelFixtureOptions {
  int hidden_layers = 3;
  int width = 8;
  int bands = 66;
  Activation activation = Activation::tanh;
  bool use_xi = false;
  bool with_prior = true;
  int prior_components = 4;
  std::uint64_t seed = 1;
};

// Every number random (weights of order one, as after training), Theta normalised like the
// standard setup (teff around 5000 K), a mixture with random SPD covariances.
inline ModelFile make_random_model_file(const ModelFixtureOptions& options) {
  std::mt19937_64 engine(options.seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  auto random = [&] { return uniform(engine); };

  ModelFile file;
  for (int b = 0; b < options.bands; ++b) {
    file.wavelength_nm.push_back(392.0 + 10.0 * b);
    file.band_names.push_back("xp_" + std::to_string(392 + 10 * b));
  }
  if (options.bands >= 5) {  // the NIR bands of the standard setup, with their names
    const char* nir[] = {"J", "H", "Ks", "W1", "W2"};
    const double nir_nm[] = {1235.0, 1662.0, 2159.0, 3352.6, 4602.8};
    for (int i = 0; i < 5; ++i) {
      const auto b = static_cast<std::size_t>(options.bands - 5 + i);
      file.band_names[b] = nir[i];
      file.wavelength_nm[b] = nir_nm[i];
    }
  }
  FluxNetwork& network = file.model.network;
  network.activation = options.activation;
  network.input_offset = Eigen::Vector3d(5500.0, -0.3, 3.5);
  network.input_scale = Eigen::Vector3d(1500.0, 0.6, 1.2);
  int inputs = 3;
  for (int k = 0; k <= options.hidden_layers; ++k) {
    const int outputs = k == options.hidden_layers ? options.bands : options.width;
    Eigen::MatrixXd weight(outputs, inputs);
    for (Eigen::Index i = 0; i < weight.size(); ++i) weight(i) = random() / std::sqrt(inputs);
    Eigen::VectorXd bias(outputs);
    for (Eigen::Index i = 0; i < bias.size(); ++i) bias(i) = 0.3 * random();
    network.weight.push_back(weight);
    network.bias.push_back(bias);
    inputs = outputs;
  }
  file.model.use_xi = options.use_xi;
  file.model.extinction_R.resize(options.bands);
  file.model.extinction_R1.resize(options.bands);
  for (int b = 0; b < options.bands; ++b) {
    file.model.extinction_R(b) = 2.5 - 0.02 * b + 0.1 * random();
    file.model.extinction_R1(b) = 0.2 * random();
  }
  file.inflation.diag_frac = 0.006;
  file.inflation.joint_frac = 0.004;
  file.inflation.bp_frac = 0.0011;
  file.inflation.rp_frac = 0.0009;
  file.inflation.unwise_frac = 0.12;
  file.inflation.eigen_floor = 3e-10;
  file.inflation.merge_start_nm = 630.5;
  file.inflation.merge_end_nm = 645.25;
  file.inflation.negative_eigen_tolerance = 2e-6;
  file.inflation.level_frac = 0.021;
  file.inflation.smooth_frac = 0.013;
  file.inflation.smooth_length_nm = 87.5;

  if (options.with_prior) {
    ModelPrior prior;
    GaussianMixture& mixture = prior.mixture;
    const int k_count = options.prior_components;
    mixture.weights.resize(k_count);
    mixture.means.resize(k_count, 3);
    const Eigen::Vector3d scale(800.0, 0.4, 0.8);
    for (int k = 0; k < k_count; ++k) {
      mixture.weights(k) = 1.0 + random();
      Eigen::Matrix3d factor;
      for (Eigen::Index i = 0; i < 9; ++i) factor(i) = random();
      factor = scale.asDiagonal() * factor;
      Eigen::Matrix3d covariance = factor * factor.transpose();
      covariance.diagonal() += 0.05 * scale.cwiseProduct(scale);
      covariance = 0.5 * (covariance + covariance.transpose()).eval();  // exactly symmetric
      mixture.covariances.emplace_back(covariance);
      mixture.means.row(k) =
          (network.input_offset +
           network.input_scale.cwiseProduct(Eigen::Vector3d(random(), random(), random())))
              .transpose();
    }
    mixture.weights /= mixture.weights.sum();
    prior.ln_prior_cut = -7.43 + 0.01 * random();
    prior.prior_mass = 0.999;
    file.prior = prior;
  }
  file.provenance.config_text = "[train]\nseed = " + std::to_string(options.seed) +
                                "\nactivation = " + activation_name(options.activation) +
                                "\n# a comment with = signs and \"quotes\"\n";
  file.provenance.code_version = "0.1.0-test";
  file.provenance.seed = options.seed;
  file.provenance.creation_time = "2024-05-01T12:34:56Z";
  return file;
}

}  // namespace xps::test
