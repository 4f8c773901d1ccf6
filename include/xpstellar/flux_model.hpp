// The forward model of DESIGN §1.1 (Zhang, Green & Rix 2023, eqs. 1-4):
//   ln f_abs(Theta) = NN((Theta - offset) / scale),   Theta = (Teff [K], [Fe/H], logg)
//   f_pred = f_abs * parallax^2 * exp(-E (R + xi R1))
// with a feed-forward network (hidden layers: activation(W x + b); output layer linear), one
// global extinction curve R and, optionally, a second curve R1 whose per-star amplitude xi changes
// the curve's shape. Per-star free variables are Theta, u = ln parallax, v = ln E and xi.
//
// Analytic passes for batches (columns = stars), written with Eigen: the forward pass, the
// backward pass (gradients of any loss given dLoss/df_pred, for the global parameters W, b, R, R1
// and for every star's parameters), and the per-star Jacobian of f_pred for the inference
// optimiser and the Fisher matrix. The kernels are pure: no MPI, no threads; callers own both.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

namespace xps {

enum class Activation { tanh, silu, relu, softplus, elu, sigmoid };
Activation parse_activation(const std::string& name);  // throws UsageError naming the choices
const char* activation_name(Activation activation);
// d activation / dz from the pre-activation z and the activation a = activation(z).
double activation_slope(Activation activation, double z, double a);

struct FluxNetwork {
  Activation activation = Activation::tanh;
  std::vector<Eigen::MatrixXd> weight;  // layer k: [outputs_k x inputs_k]; last layer is linear
  std::vector<Eigen::VectorXd> bias;
  Eigen::Vector3d input_offset = Eigen::Vector3d::Zero();
  Eigen::Vector3d input_scale = Eigen::Vector3d::Ones();

  // Glorot-uniform weights and zero biases from a deterministic seed; output biases start at
  // `output_bias` (a sensible mean ln flux speeds up training).
  static FluxNetwork initialise(int hidden_layers, int width, int outputs, Activation activation,
                                const Eigen::Vector3d& offset, const Eigen::Vector3d& scale,
                                std::uint64_t seed, const Eigen::VectorXd& output_bias);
  int layers() const { return static_cast<int>(weight.size()); }
  int outputs() const { return static_cast<int>(weight.back().rows()); }
  std::int64_t weight_count() const;  // n_W of the L2 prior
  std::int64_t bias_count() const;
};

struct FluxModel {
  FluxNetwork network;
  Eigen::VectorXd extinction_R;   // [M]
  Eigen::VectorXd extinction_R1;  // [M]; used only when use_xi
  bool use_xi = false;
  int bands() const { return static_cast<int>(extinction_R.size()); }
};

// Per-star parameters of a batch; column b (or entry b) is star b.
struct StarBatch {
  Eigen::Matrix3Xd theta;      // Teff [K], [Fe/H], logg
  Eigen::VectorXd ln_parallax;  // u = ln(parallax / mas)
  Eigen::VectorXd ln_E;         // v = ln E
  Eigen::VectorXd xi;           // ignored unless the model uses xi
  Eigen::Index size() const { return theta.cols(); }
};

// Everything the forward pass keeps for the backward pass; reused across batches of the same size
// so that the hot loop does not allocate.
struct FluxModelWorkspace {
  std::vector<Eigen::MatrixXd> pre_activation;  // per hidden layer
  std::vector<Eigen::MatrixXd> activation;      // layer inputs: [0] = normalised Theta
  Eigen::MatrixXd ln_flux_abs;                  // [M x B]
  Eigen::MatrixXd flux;                         // f_pred [M x B]
  Eigen::MatrixXd effective_R;                  // R + xi R1 per star [M x B]
  // Scratch of the backward pass, kept so that a batch allocates nothing once warm.
  Eigen::MatrixXd delta, upstream, transposed_weight;
};

struct FluxModelGradient {
  std::vector<Eigen::MatrixXd> weight;
  std::vector<Eigen::VectorXd> bias;
  Eigen::VectorXd extinction_R, extinction_R1;
  void reset_like(const FluxModel& model);  // zero, shaped like the model
};

struct StarGradient {
  Eigen::Matrix3Xd theta;
  Eigen::VectorXd ln_parallax, ln_E, xi;
};

// f_pred for every star of `stars` into workspace.flux.
void flux_model_forward(const FluxModel& model, const StarBatch& stars,
                        FluxModelWorkspace& workspace);

// Backward pass after flux_model_forward on the same batch: given dLoss/df_pred [M x B], adds
// the gradient of the global parameters to `global` (if not null) and writes every star's gradient
// into `star` (if not null).
void flux_model_backward(const FluxModel& model, const StarBatch& stars,
                         FluxModelWorkspace& workspace, const Eigen::MatrixXd& loss_flux_gradient,
                         FluxModelGradient* global, StarGradient* star);

// Jacobian of f_pred of star `index` of the batch after flux_model_forward, with respect to
// (Teff, [Fe/H], logg, ln parallax, ln E[, xi]): [M x 5] or [M x 6] when the model uses xi.
Eigen::MatrixXd flux_model_jacobian(const FluxModel& model, const StarBatch& stars,
                                    const FluxModelWorkspace& workspace, Eigen::Index index);

// The same into `jacobian`, with the tangents kept in `scratch`: no allocation once both have
// their sizes (the inference optimiser's loop).
struct FluxJacobianWorkspace {
  Eigen::MatrixXd tangent, next_tangent;
  Eigen::VectorXd slope;
};
void flux_model_jacobian(const FluxModel& model, const StarBatch& stars,
                         const FluxModelWorkspace& workspace, Eigen::Index index,
                         FluxJacobianWorkspace& scratch, Eigen::MatrixXd& jacobian);

}  // namespace xps
