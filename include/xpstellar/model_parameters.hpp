// The global parameters of the flux model as one flat vector, the form the model optimiser,
// the gradient reduction and the checkpoints use. Order: for each layer k, W_k (column-major)
// then b_k; then ln R (the prior is flat on ln R, DESIGN §1.4, so R > 0 is kept by construction);
// then R1 (only when the model uses xi).
#pragma once

#include <Eigen/Dense>

#include "xpstellar/flux_model.hpp"
#include "xpstellar/training_settings.hpp"

namespace xps {

Eigen::Index global_parameter_count(const FluxModel& model);
// Throws std::logic_error if R has a non-positive entry.
Eigen::VectorXd pack_global_parameters(const FluxModel& model);
// Inverse of pack_global_parameters into a model of the same shape.
void unpack_global_parameters(const Eigen::VectorXd& parameters, FluxModel& model);
// A gradient with respect to (W, b, R, R1) in the packed order, d/d ln R = R d/dR.
void pack_global_gradient(const FluxModelGradient& gradient, const FluxModel& model, double* out);
// Index ranges of the packed vector: the weights (for the L2 prior) are [begin, end) pairs.
std::vector<std::pair<Eigen::Index, Eigen::Index>> weight_ranges(const FluxModel& model);
// [begin, end) of ln R and R1 (the extinction curve) in the packed vector: its tail.
std::pair<Eigen::Index, Eigen::Index> extinction_range(const FluxModel& model);

// The starting model: Glorot weights from the seed, output biases `output_bias` (ln flux at
// 1 kpc), R from the configured law at the band wavelengths (E normalised like E(B-V):
// R = (ln 10 / 2.5) R_V A/A_V), R1 zero... except that R1 must not vanish for xi to move, so it
// starts as a small slope orthogonal to R.
FluxModel initial_flux_model(const NetworkSettings& settings, const std::vector<double>& wavelength_nm,
                             const Eigen::VectorXd& output_bias, std::uint64_t seed);

// Makes R1 orthogonal to R (the decomposition R + xi R1 is otherwise degenerate).
void orthogonalise_R1(FluxModel& model);

}  // namespace xps
