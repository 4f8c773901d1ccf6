// Forward, backward and Jacobian passes of the flux model (DESIGN §1.1).
#include "xpstellar/flux_model.hpp"

#include <cmath>
#include <numeric>

#include "xpstellar/error.hpp"
#include "xpstellar/random_stream.hpp"

namespace xps {

namespace {

constexpr const char* activation_names[] = {"tanh", "silu", "relu", "softplus", "elu", "sigmoid"};

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

double activate(Activation activation, double z) {
  switch (activation) {
    case Activation::tanh: return std::tanh(z);
    case Activation::silu: return z * sigmoid(z);
    case Activation::relu: return z > 0.0 ? z : 0.0;
    case Activation::softplus: return z > 30.0 ? z : std::log1p(std::exp(z));
    case Activation::elu: return z > 0.0 ? z : std::expm1(z);
    case Activation::sigmoid: return sigmoid(z);
  }
  return z;
}

// d activation / dz, from the pre-activation z and the activation a = activation(z).
double activation_slope(Activation activation, double z, double a) {
  switch (activation) {
    case Activation::tanh: return 1.0 - a * a;
    case Activation::silu: {
      const double s = sigmoid(z);
      return s * (1.0 + z * (1.0 - s));
    }
    case Activation::relu: return z > 0.0 ? 1.0 : 0.0;
    case Activation::softplus: return sigmoid(z);
    case Activation::elu: return z > 0.0 ? 1.0 : a + 1.0;
    case Activation::sigmoid: return a * (1.0 - a);
  }
  return 1.0;
}

Eigen::MatrixXd slopes(Activation activation, const Eigen::MatrixXd& z, const Eigen::MatrixXd& a) {
  return z.binaryExpr(a, [activation](double zi, double ai) { return activation_slope(activation, zi, ai); });
}

}  // namespace

Activation parse_activation(const std::string& name) {
  for (int i = 0; i < 6; ++i)
    if (name == activation_names[i]) return static_cast<Activation>(i);
  throw UsageError("unknown activation '" + name + "' (tanh, silu, relu, softplus, elu, sigmoid)");
}

const char* activation_name(Activation activation) {
  return activation_names[static_cast<int>(activation)];
}

FluxNetwork FluxNetwork::initialise(int hidden_layers, int width, int outputs,
                                    Activation activation, const Eigen::Vector3d& offset,
                                    const Eigen::Vector3d& scale, std::uint64_t seed,
                                    const Eigen::VectorXd& output_bias) {
  FluxNetwork network;
  network.activation = activation;
  network.input_offset = offset;
  network.input_scale = scale;
  RandomStream random(seed, 0, StreamPurpose::model_initialisation);
  int inputs = 3;
  for (int layer = 0; layer <= hidden_layers; ++layer) {
    const int layer_outputs = layer == hidden_layers ? outputs : width;
    const double limit = std::sqrt(6.0 / (inputs + layer_outputs));
    Eigen::MatrixXd weight(layer_outputs, inputs);
    for (Eigen::Index j = 0; j < weight.cols(); ++j)
      for (Eigen::Index i = 0; i < weight.rows(); ++i) weight(i, j) = random.uniform(-limit, limit);
    network.weight.push_back(weight);
    network.bias.push_back(layer == hidden_layers && output_bias.size() == outputs
                               ? output_bias
                               : Eigen::VectorXd::Zero(layer_outputs));
    inputs = layer_outputs;
  }
  return network;
}

std::int64_t FluxNetwork::weight_count() const {
  return std::accumulate(weight.begin(), weight.end(), std::int64_t{0},
                         [](std::int64_t n, const Eigen::MatrixXd& w) { return n + w.size(); });
}

std::int64_t FluxNetwork::bias_count() const {
  return std::accumulate(bias.begin(), bias.end(), std::int64_t{0},
                         [](std::int64_t n, const Eigen::VectorXd& b) { return n + b.size(); });
}

void FluxModelGradient::reset_like(const FluxModel& model) {
  weight.clear();
  bias.clear();
  for (const auto& w : model.network.weight) weight.push_back(Eigen::MatrixXd::Zero(w.rows(), w.cols()));
  for (const auto& b : model.network.bias) bias.push_back(Eigen::VectorXd::Zero(b.size()));
  extinction_R = Eigen::VectorXd::Zero(model.extinction_R.size());
  extinction_R1 = Eigen::VectorXd::Zero(model.extinction_R.size());
}

void flux_model_forward(const FluxModel& model, const StarBatch& stars,
                        FluxModelWorkspace& ws) {
  const FluxNetwork& net = model.network;
  const int hidden = net.layers() - 1;
  ws.activation.resize(static_cast<std::size_t>(hidden) + 1);
  ws.pre_activation.resize(static_cast<std::size_t>(hidden));
  ws.activation[0] = (stars.theta.colwise() - net.input_offset).array().colwise() /
                     net.input_scale.array();
  for (int k = 0; k < hidden; ++k) {
    const auto ku = static_cast<std::size_t>(k);
    ws.pre_activation[ku].noalias() = net.weight[ku] * ws.activation[ku];
    ws.pre_activation[ku].colwise() += net.bias[ku];
    ws.activation[ku + 1] = ws.pre_activation[ku].unaryExpr(
        [activation = net.activation](double z) { return activate(activation, z); });
  }
  const auto last = static_cast<std::size_t>(hidden);
  ws.ln_flux_abs.noalias() = net.weight[last] * ws.activation[last];
  ws.ln_flux_abs.colwise() += net.bias[last];

  ws.effective_R = model.extinction_R.replicate(1, stars.size());
  if (model.use_xi) ws.effective_R.noalias() += model.extinction_R1 * stars.xi.transpose();
  const Eigen::RowVectorXd extinction = stars.ln_E.array().exp().transpose();
  const Eigen::RowVectorXd distance_term = 2.0 * stars.ln_parallax.transpose();
  ws.flux = (ws.ln_flux_abs.rowwise() + distance_term -
             (ws.effective_R.array().rowwise() * extinction.array()).matrix())
                .array()
                .exp();
}

void flux_model_backward(const FluxModel& model, const StarBatch& stars,
                         FluxModelWorkspace& ws, const Eigen::MatrixXd& loss_flux_gradient,
                         FluxModelGradient* global, StarGradient* star) {
  const FluxNetwork& net = model.network;
  const Eigen::RowVectorXd extinction = stars.ln_E.array().exp().transpose();
  // f = exp(exponent): dLoss/d exponent = dLoss/df * f, shared by every parameter below.
  const Eigen::MatrixXd exponent_gradient = loss_flux_gradient.cwiseProduct(ws.flux);

  if (star) {
    star->ln_parallax = 2.0 * exponent_gradient.colwise().sum().transpose();
    star->ln_E = -(ws.effective_R.cwiseProduct(exponent_gradient).colwise().sum().array() *
                   extinction.array())
                      .transpose();
    if (model.use_xi)
      star->xi = -((model.extinction_R1.transpose() * exponent_gradient).array() * extinction.array())
                      .transpose();
    else
      star->xi = Eigen::VectorXd::Zero(stars.size());
  }
  if (global) {
    global->extinction_R.noalias() -= exponent_gradient * extinction.transpose();
    if (model.use_xi)
      global->extinction_R1.noalias() -=
          exponent_gradient * (extinction.array() * stars.xi.transpose().array()).matrix().transpose();
  }

  // Back through the network: delta = dLoss / d(layer output before activation).
  Eigen::MatrixXd delta = exponent_gradient;
  for (int k = net.layers() - 1; k >= 0; --k) {
    const auto ku = static_cast<std::size_t>(k);
    if (global) {
      global->weight[ku].noalias() += delta * ws.activation[ku].transpose();
      global->bias[ku] += delta.rowwise().sum();
    }
    if (k == 0 && !star) break;
    Eigen::MatrixXd upstream = net.weight[ku].transpose() * delta;
    if (k > 0)
      delta = upstream.cwiseProduct(slopes(net.activation, ws.pre_activation[ku - 1], ws.activation[ku]));
    else if (star)
      star->theta = upstream.array().colwise() / net.input_scale.array();
  }
}

Eigen::MatrixXd flux_model_jacobian(const FluxModel& model, const StarBatch& stars,
                                    const FluxModelWorkspace& ws, Eigen::Index index) {
  const FluxNetwork& net = model.network;
  // Forward-mode: the tangent of every layer's output with respect to Theta.
  Eigen::MatrixXd tangent = net.input_scale.cwiseInverse().asDiagonal();
  for (int k = 0; k < net.layers() - 1; ++k) {
    const auto ku = static_cast<std::size_t>(k);
    const Eigen::VectorXd slope = slopes(net.activation, ws.pre_activation[ku].col(index),
                                         ws.activation[ku + 1].col(index));
    tangent = slope.asDiagonal() * (net.weight[ku] * tangent);
  }
  const Eigen::MatrixXd ln_flux_tangent = net.weight.back() * tangent;  // [M x 3]
  const Eigen::VectorXd flux = ws.flux.col(index);
  const double extinction = std::exp(stars.ln_E[index]);
  Eigen::MatrixXd jacobian(flux.size(), model.use_xi ? 6 : 5);
  jacobian.leftCols(3) = flux.asDiagonal() * ln_flux_tangent;
  jacobian.col(3) = 2.0 * flux;
  jacobian.col(4) = -extinction * ws.effective_R.col(index).cwiseProduct(flux);
  if (model.use_xi) jacobian.col(5) = -extinction * model.extinction_R1.cwiseProduct(flux);
  return jacobian;
}

}  // namespace xps
