#include "xpstellar/coordinated_step.hpp"

#include <cmath>

namespace xps {
namespace {

// First column of each layer's bias block in the Jacobian (the first layer's weights come first);
// entry `hidden` is the output bias, the entry after it ln R.
std::vector<Eigen::Index> bias_columns(const FluxNetwork& net) {
  std::vector<Eigen::Index> columns(static_cast<std::size_t>(net.layers()) + 1);
  columns[0] = net.weight[0].size();
  for (int k = 0; k < net.layers(); ++k)
    columns[static_cast<std::size_t>(k) + 1] = columns[static_cast<std::size_t>(k)] + net.bias[static_cast<std::size_t>(k)].size();
  return columns;
}

}  // namespace

std::vector<Eigen::Index> coordinated_parameter_indices(const FluxModel& model, bool extinction) {
  const FluxNetwork& net = model.network;
  std::vector<Eigen::Index> indices;
  Eigen::Index offset = 0;
  std::vector<Eigen::Index> bias_offsets;
  for (int k = 0; k < net.layers(); ++k) {
    const auto ku = static_cast<std::size_t>(k);
    if (k == 0)
      for (Eigen::Index i = 0; i < net.weight[0].size(); ++i) indices.push_back(offset + i);
    offset += net.weight[ku].size();
    bias_offsets.push_back(offset);
    offset += net.bias[ku].size();
  }
  for (int k = 0; k < net.layers(); ++k)
    for (Eigen::Index i = 0; i < net.bias[static_cast<std::size_t>(k)].size(); ++i)
      indices.push_back(bias_offsets[static_cast<std::size_t>(k)] + i);
  if (extinction)
    for (Eigen::Index b = 0; b < model.bands(); ++b) indices.push_back(offset + b);
  return indices;
}

void coordinated_parameter_jacobian(const FluxModel& model, const StarBatch& stars,
                                    const FluxModelWorkspace& ws, Eigen::Index index, bool extinction,
                                    ParameterJacobianWorkspace& scratch, Eigen::MatrixXd& jacobian) {
  const FluxNetwork& net = model.network;
  const int hidden = net.layers() - 1;
  const Eigen::Index bands = net.outputs();
  const std::vector<Eigen::Index> bias_column = bias_columns(net);
  const Eigen::Index output_column = bias_column[static_cast<std::size_t>(hidden)];
  jacobian.resize(bands, output_column + bands + (extinction ? bands : 0));

  // d ln f / d z_k = (d ln f / d a_{k+1}) diag(activation'(z_k)), from the last hidden layer down.
  scratch.upstream = net.weight.back();
  for (int k = hidden - 1; k >= 0; --k) {
    const auto ku = static_cast<std::size_t>(k);
    const auto z = ws.pre_activation[ku].col(index);
    const auto a = ws.activation[ku + 1].col(index);
    scratch.slope.resize(z.size());
    for (Eigen::Index i = 0; i < z.size(); ++i) scratch.slope(i) = activation_slope(net.activation, z(i), a(i));
    auto bias_block = jacobian.middleCols(bias_column[ku], z.size());
    bias_block.noalias() = scratch.upstream * scratch.slope.asDiagonal();
    if (k > 0) {
      scratch.next.noalias() = bias_block * net.weight[ku];
      scratch.upstream.swap(scratch.next);
    }
  }
  // W_0(j, i) multiplies input i into unit j: column j + width * i.
  const auto input = ws.activation[0].col(index);
  const Eigen::Index width = net.weight[0].rows();
  const auto first_bias = jacobian.middleCols(bias_column[0], width);
  for (Eigen::Index i = 0; i < input.size(); ++i) jacobian.middleCols(width * i, width) = first_bias * input(i);
  jacobian.middleCols(output_column, bands).setIdentity();
  if (extinction) {
    // ln f_pred = ... - E (R + xi R1): d / d ln R_b = -E R_b.
    auto curve = jacobian.middleCols(output_column + bands, bands);
    curve.setZero();
    curve.diagonal() = -std::exp(stars.ln_E[index]) * model.extinction_R;
  }
}

ProfileSystem::ProfileSystem(Eigen::Index parameters, int bands, int stars_per_block)
    : m_hessian(Eigen::MatrixXd::Zero(parameters, parameters)),
      m_gradient(Eigen::VectorXd::Zero(parameters)),
      m_stacked_model(static_cast<Eigen::Index>(stars_per_block) * bands, parameters),
      m_stacked_schur(static_cast<Eigen::Index>(stars_per_block) * max_star_parameters, parameters),
      m_bands(bands) {}

bool ProfileSystem::add_star(const InferenceLoss& loss, const float* whitening,
                             const StarVector& star_gradient, const StarMatrix& star_hessian,
                             double weight, bool extinction) {
  const Eigen::LLT<StarMatrix> star_factor(star_hessian);
  if (star_factor.info() != Eigen::Success || !(weight > 0)) return false;
  const FluxModelWorkspace& ws = loss.flux_workspace();
  coordinated_parameter_jacobian(loss.model(), loss.star_batch(), ws, 0, extinction, m_jacobian_scratch,
                                 m_log_jacobian);
  if (m_log_jacobian.cols() != parameters()) return false;
  m_flux_jacobian.noalias() = ws.flux.col(0).asDiagonal() * m_log_jacobian;  // dF / dtheta
  auto whitened = m_stacked_model.middleRows(m_model_rows, m_bands);  // A
  whiten_columns(whitening, m_flux_jacobian, whitened);
  const Eigen::Index k = star_hessian.rows();
  m_coupling.noalias() = 2.0 * loss.whitened_jacobian().transpose() * whitened;  // C = d2L / ds dtheta
  star_factor.matrixL().solveInPlace(m_coupling);                               // L_ss^-1 C
  StarVector star_part = star_gradient;
  star_factor.matrixL().solveInPlace(star_part);
  m_gradient.noalias() += weight * (m_flux_jacobian.transpose() * loss.flux_gradient());
  m_gradient.noalias() -= weight * (m_coupling.transpose() * star_part);

  whitened *= std::sqrt(2.0 * weight);
  m_model_rows += m_bands;
  m_stacked_schur.middleRows(m_schur_rows, k) = std::sqrt(weight) * m_coupling;
  m_schur_rows += k;
  if (m_model_rows + m_bands > m_stacked_model.rows()) flush();
  return true;
}

void ProfileSystem::flush() {
  if (m_model_rows > 0)
    m_hessian.selfadjointView<Eigen::Lower>().rankUpdate(m_stacked_model.topRows(m_model_rows).transpose(), 1.0);
  if (m_schur_rows > 0)
    m_hessian.selfadjointView<Eigen::Lower>().rankUpdate(m_stacked_schur.topRows(m_schur_rows).transpose(), -1.0);
  m_model_rows = 0;
  m_schur_rows = 0;
}

const Eigen::MatrixXd& ProfileSystem::hessian() {
  flush();
  return m_hessian;
}

const Eigen::VectorXd& ProfileSystem::gradient() {
  flush();
  return m_gradient;
}

}  // namespace xps
