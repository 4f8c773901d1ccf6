#include "xpstellar/model_parameters.hpp"

#include <cmath>
#include <stdexcept>

#include "xpstellar/extinction_curve.hpp"

namespace xps {

Eigen::Index global_parameter_count(const FluxModel& model) {
  Eigen::Index n = 0;
  for (int k = 0; k < model.network.layers(); ++k)
    n += model.network.weight[static_cast<std::size_t>(k)].size() +
         model.network.bias[static_cast<std::size_t>(k)].size();
  n += model.bands();
  if (model.use_xi) n += model.bands();
  return n;
}

Eigen::VectorXd pack_global_parameters(const FluxModel& model) {
  Eigen::VectorXd out(global_parameter_count(model));
  Eigen::Index at = 0;
  for (int k = 0; k < model.network.layers(); ++k) {
    const auto& w = model.network.weight[static_cast<std::size_t>(k)];
    const auto& b = model.network.bias[static_cast<std::size_t>(k)];
    out.segment(at, w.size()) = w.reshaped();
    at += w.size();
    out.segment(at, b.size()) = b;
    at += b.size();
  }
  if ((model.extinction_R.array() <= 0).any())
    throw std::logic_error("pack_global_parameters: extinction curve R must be positive");
  out.segment(at, model.bands()) = model.extinction_R.array().log().matrix();
  at += model.bands();
  if (model.use_xi) out.segment(at, model.bands()) = model.extinction_R1;
  return out;
}

void unpack_global_parameters(const Eigen::VectorXd& parameters, FluxModel& model) {
  Eigen::Index at = 0;
  for (int k = 0; k < model.network.layers(); ++k) {
    auto& w = model.network.weight[static_cast<std::size_t>(k)];
    auto& b = model.network.bias[static_cast<std::size_t>(k)];
    w.reshaped() = parameters.segment(at, w.size());
    at += w.size();
    b = parameters.segment(at, b.size());
    at += b.size();
  }
  model.extinction_R = parameters.segment(at, model.bands()).array().exp().matrix();
  at += model.bands();
  if (model.use_xi) model.extinction_R1 = parameters.segment(at, model.bands());
}

void pack_global_gradient(const FluxModelGradient& gradient, const FluxModel& model, double* out) {
  Eigen::Index at = 0;
  for (std::size_t k = 0; k < gradient.weight.size(); ++k) {
    const auto& w = gradient.weight[k];
    const auto& b = gradient.bias[k];
    Eigen::Map<Eigen::VectorXd>(out + at, w.size()) = w.reshaped();
    at += w.size();
    Eigen::Map<Eigen::VectorXd>(out + at, b.size()) = b;
    at += b.size();
  }
  const Eigen::Index m = model.bands();
  Eigen::Map<Eigen::VectorXd>(out + at, m) =
      gradient.extinction_R.cwiseProduct(model.extinction_R);
  at += m;
  if (model.use_xi) Eigen::Map<Eigen::VectorXd>(out + at, m) = gradient.extinction_R1;
}

std::vector<std::pair<Eigen::Index, Eigen::Index>> weight_ranges(const FluxModel& model) {
  std::vector<std::pair<Eigen::Index, Eigen::Index>> ranges;
  Eigen::Index at = 0;
  for (int k = 0; k < model.network.layers(); ++k) {
    const auto& w = model.network.weight[static_cast<std::size_t>(k)];
    ranges.emplace_back(at, at + w.size());
    at += w.size() + model.network.bias[static_cast<std::size_t>(k)].size();
  }
  return ranges;
}

void orthogonalise_R1(FluxModel& model) {
  if (!model.use_xi) return;
  const double norm = model.extinction_R.squaredNorm();
  if (norm > 0) model.extinction_R1 -= (model.extinction_R1.dot(model.extinction_R) / norm) * model.extinction_R;
}

FluxModel initial_flux_model(const NetworkSettings& settings, const std::vector<double>& wavelength_nm,
                             const Eigen::VectorXd& output_bias, std::uint64_t seed) {
  const int bands = static_cast<int>(wavelength_nm.size());
  FluxModel model;
  model.network = FluxNetwork::initialise(settings.hidden_layers, settings.width, bands,
                                          settings.activation, settings.input_offset,
                                          settings.input_scale, seed, output_bias);
  model.use_xi = settings.use_xi;
  model.extinction_R.resize(bands);
  for (int b = 0; b < bands; ++b) {
    const double lambda = wavelength_nm[static_cast<std::size_t>(b)];
    if (settings.initial_extinction_law == "flat") {
      model.extinction_R(b) = 1.0;
    } else {
      const ExtinctionLaw law = parse_extinction_law(settings.initial_extinction_law);
      model.extinction_R(b) = 0.4 * std::log(10.0) * settings.initial_r_v *
                              extinction_a_over_av(law, lambda, settings.initial_r_v);
    }
  }
  // A gentle slope in 1/lambda, made orthogonal to R: a start from which xi can learn a shape.
  model.extinction_R1.resize(bands);
  for (int b = 0; b < bands; ++b)
    model.extinction_R1(b) = 0.1 * (1000.0 / wavelength_nm[static_cast<std::size_t>(b)] - 1.0);
  if (!model.use_xi) model.extinction_R1.setZero();
  orthogonalise_R1(model);
  return model;
}

std::pair<Eigen::Index, Eigen::Index> extinction_range(const FluxModel& model) {
  const Eigen::Index total = global_parameter_count(model);
  const Eigen::Index curves = model.use_xi ? 2 : 1;
  return {total - curves * model.bands(), total};
}

}  // namespace xps
