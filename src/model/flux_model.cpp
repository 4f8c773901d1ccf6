// Forward, backward and Jacobian passes of the flux model (DESIGN §1.1).
#include "xpstellar/flux_model.hpp"

#include <cmath>
#include <cstdlib>
#include <numeric>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include "xpstellar/error.hpp"
#include "xpstellar/kernel_dispatch.hpp"
#include "xpstellar/network_product.hpp"
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

Eigen::MatrixXd slopes(Activation activation, const Eigen::MatrixXd& z, const Eigen::MatrixXd& a) {
  return z.binaryExpr(a, [activation](double zi, double ai) { return activation_slope(activation, zi, ai); });
}

// Element-wise tanh and exp over contiguous arrays, the two transcendental loops of a batch.
// The portable versions use Eigen's vectorised exp (SSE2 on x86-64), with
// tanh z = 1 - 2 / (exp(2z) + 1), accurate to a few 1e-16 in absolute terms (not in relative
// terms for |z| < 1e-3, which no consumer of an activation notices).
void tanh_portable(const double* z, double* a, Eigen::Index n) {
  const Eigen::Map<const Eigen::ArrayXd> in(z, n);
  Eigen::Map<Eigen::ArrayXd>(a, n) = 1.0 - 2.0 / ((2.0 * in).exp() + 1.0);
}

void exp_portable(const double* x, double* y, Eigen::Index n) {
  Eigen::Map<Eigen::ArrayXd>(y, n) = Eigen::Map<const Eigen::ArrayXd>(x, n).exp();
}

using ArrayKernel = void (*)(const double*, double*, Eigen::Index);
struct ArrayKernels {
  ArrayKernel tanh = tanh_portable;
  ArrayKernel exp = exp_portable;
};

#if defined(__GNUC__) && defined(__x86_64__)
// exp of four doubles with FMA: x = n ln2 + r, |r| <= ln2 / 2, exp(r) by its Taylor series to
// degree 13 (truncation < 1e-17), 2^n assembled in the exponent bits. Arguments are clamped to
// [-708, 709] (results stay normal and finite); NaN propagates. Max error about 2 ulp.
XPS_TARGET_AVX2 inline __m256d exp4(__m256d x) {
  x = _mm256_max_pd(_mm256_set1_pd(-708.0), _mm256_min_pd(_mm256_set1_pd(709.0), x));  // NaN stays
  const __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), x);  // ln2 high part
  r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);          // ln2 low part
  constexpr double inverse_factorial[] = {1.0 / 6227020800.0,
                                          1.0 / 479001600.0,
                                          1.0 / 39916800.0,
                                          1.0 / 3628800.0,
                                          1.0 / 362880.0,
                                          1.0 / 40320.0,
                                          1.0 / 5040.0,
                                          1.0 / 720.0,
                                          1.0 / 120.0,
                                          1.0 / 24.0,
                                          1.0 / 6.0,
                                          0.5,
                                          1.0,
                                          1.0};
  __m256d p = _mm256_set1_pd(inverse_factorial[0]);
  for (int k = 1; k < 14; ++k) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(inverse_factorial[k]));
  // 2^n: n + 1023 in the low mantissa bits of 2^52 + 1023 + n, shifted into the exponent field.
  const __m256i biased = _mm256_castpd_si256(_mm256_add_pd(n, _mm256_set1_pd(4503599627371519.0)));
  return _mm256_mul_pd(p, _mm256_castsi256_pd(_mm256_slli_epi64(biased, 52)));
}

XPS_TARGET_AVX2 void exp_avx2(const double* x, double* y, Eigen::Index n) {
  Eigen::Index i = 0;
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(y + i, exp4(_mm256_loadu_pd(x + i)));
  if (i < n) {
    alignas(32) double buffer[4] = {0.0, 0.0, 0.0, 0.0};
    for (Eigen::Index k = i; k < n; ++k) buffer[k - i] = x[k];
    _mm256_store_pd(buffer, exp4(_mm256_load_pd(buffer)));
    for (Eigen::Index k = i; k < n; ++k) y[k] = buffer[k - i];
  }
}

// tanh z = (e - 1) / (e + 1), e = exp(2z), with z clamped to [-20, 20] where tanh is +-1 in double.
XPS_TARGET_AVX2 inline __m256d tanh4(__m256d z) {
  z = _mm256_max_pd(_mm256_set1_pd(-20.0), _mm256_min_pd(_mm256_set1_pd(20.0), z));
  const __m256d e = exp4(_mm256_add_pd(z, z));
  const __m256d one = _mm256_set1_pd(1.0);
  return _mm256_div_pd(_mm256_sub_pd(e, one), _mm256_add_pd(e, one));
}

XPS_TARGET_AVX2 void tanh_avx2(const double* z, double* a, Eigen::Index n) {
  Eigen::Index i = 0;
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(a + i, tanh4(_mm256_loadu_pd(z + i)));
  if (i < n) {
    alignas(32) double buffer[4] = {0.0, 0.0, 0.0, 0.0};
    for (Eigen::Index k = i; k < n; ++k) buffer[k - i] = z[k];
    _mm256_store_pd(buffer, tanh4(_mm256_load_pd(buffer)));
    for (Eigen::Index k = i; k < n; ++k) a[k] = buffer[k - i];
  }
}

// Portable binaries (SSE2 baseline) take the AVX2 + FMA kernels when the CPU has them
// (kernel_dispatch.hpp).
ArrayKernels select_array_kernels() {
  ArrayKernels kernels;
  if (use_avx2_kernels()) {
    kernels.tanh = tanh_avx2;
    kernels.exp = exp_avx2;
  }
  return kernels;
}
#else
ArrayKernels select_array_kernels() { return {}; }
#endif

const ArrayKernels& array_kernels() {
  static const ArrayKernels kernels = select_array_kernels();
  return kernels;
}

// a = activation(z) for a whole layer of a batch.
void activate_layer(Activation activation, const Eigen::MatrixXd& z, Eigen::MatrixXd& a) {
  a.resize(z.rows(), z.cols());
  if (activation == Activation::tanh)
    array_kernels().tanh(z.data(), a.data(), z.size());
  else
    a = z.unaryExpr([activation](double zi) { return activate(activation, zi); });
}

// delta = upstream * activation'(z), in place on `upstream`.
void multiply_by_slopes(Activation activation, const Eigen::MatrixXd& z, const Eigen::MatrixXd& a,
                        Eigen::MatrixXd& upstream) {
  if (activation == Activation::tanh)
    upstream.array() *= 1.0 - a.array().square();
  else if (activation == Activation::sigmoid)
    upstream.array() *= a.array() * (1.0 - a.array());
  else
    upstream.array() *= slopes(activation, z, a).array();
}

}  // namespace

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
    network_product(net.weight[ku], ws.activation[ku], ws.pre_activation[ku]);
    ws.pre_activation[ku].colwise() += net.bias[ku];
    activate_layer(net.activation, ws.pre_activation[ku], ws.activation[ku + 1]);
  }
  const auto last = static_cast<std::size_t>(hidden);
  network_product(net.weight[last], ws.activation[last], ws.ln_flux_abs);
  ws.ln_flux_abs.colwise() += net.bias[last];

  const Eigen::Index batch = stars.size();
  ws.effective_R.resize(model.extinction_R.size(), batch);
  ws.flux.resize(ws.ln_flux_abs.rows(), batch);
  // ln f_pred = ln f_abs + 2 ln parallax - E R_eff, built in place, then one exp over the batch.
  for (Eigen::Index b = 0; b < batch; ++b) {
    auto effective = ws.effective_R.col(b);
    if (model.use_xi)
      effective = model.extinction_R + stars.xi[b] * model.extinction_R1;
    else
      effective = model.extinction_R;
    const double extinction = std::exp(stars.ln_E[b]);
    ws.flux.col(b) = (ws.ln_flux_abs.col(b).array() + 2.0 * stars.ln_parallax[b]) -
                     extinction * effective.array();
  }
  array_kernels().exp(ws.flux.data(), ws.flux.data(), ws.flux.size());
}

void flux_model_backward(const FluxModel& model, const StarBatch& stars,
                         FluxModelWorkspace& ws, const Eigen::MatrixXd& loss_flux_gradient,
                         FluxModelGradient* global, StarGradient* star) {
  const FluxNetwork& net = model.network;
  const Eigen::RowVectorXd extinction = stars.ln_E.array().exp().transpose();
  // f = exp(exponent): dLoss/d exponent = dLoss/df * f, shared by every parameter below. It is
  // also the first delta of the network's backward pass, which then overwrites it in place.
  Eigen::MatrixXd& delta = ws.delta;
  delta = loss_flux_gradient.cwiseProduct(ws.flux);
  const Eigen::MatrixXd& exponent_gradient = delta;  // valid until the network loop

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
  Eigen::MatrixXd& upstream = ws.upstream;
  for (int k = net.layers() - 1; k >= 0; --k) {
    const auto ku = static_cast<std::size_t>(k);
    if (global) {
      network_product_add_transposed_right(delta, ws.activation[ku], global->weight[ku]);
      global->bias[ku] += delta.rowwise().sum();
    }
    if (k == 0 && !star) break;
    network_product_transposed_left(net.weight[ku], delta, upstream, ws.transposed_weight);
    if (k > 0) {
      multiply_by_slopes(net.activation, ws.pre_activation[ku - 1], ws.activation[ku], upstream);
      delta.swap(upstream);
    } else if (star) {
      star->theta = upstream.array().colwise() / net.input_scale.array();
    }
  }
}

void flux_model_jacobian(const FluxModel& model, const StarBatch& stars,
                         const FluxModelWorkspace& ws, Eigen::Index index,
                         FluxJacobianWorkspace& jw, Eigen::MatrixXd& jacobian) {
  const FluxNetwork& net = model.network;
  // Forward-mode: the tangent of every layer's output with respect to Theta.
  jw.tangent = net.input_scale.cwiseInverse().asDiagonal();
  for (int k = 0; k < net.layers() - 1; ++k) {
    const auto ku = static_cast<std::size_t>(k);
    const auto z = ws.pre_activation[ku].col(index);
    const auto a = ws.activation[ku + 1].col(index);
    jw.slope.resize(z.size());
    for (Eigen::Index i = 0; i < z.size(); ++i) jw.slope(i) = activation_slope(net.activation, z(i), a(i));
    jw.next_tangent.noalias() = net.weight[ku] * jw.tangent;
    jw.tangent.noalias() = jw.slope.asDiagonal() * jw.next_tangent;
  }
  jw.next_tangent.noalias() = net.weight.back() * jw.tangent;  // d ln f / d Theta [M x 3]
  const auto flux = ws.flux.col(index);
  const double extinction = std::exp(stars.ln_E[index]);
  jacobian.resize(flux.size(), model.use_xi ? 6 : 5);
  jacobian.leftCols(3).noalias() = flux.asDiagonal() * jw.next_tangent;
  jacobian.col(3) = 2.0 * flux;
  jacobian.col(4) = -extinction * ws.effective_R.col(index).cwiseProduct(flux);
  if (model.use_xi) jacobian.col(5) = -extinction * model.extinction_R1.cwiseProduct(flux);
}

Eigen::MatrixXd flux_model_jacobian(const FluxModel& model, const StarBatch& stars,
                                    const FluxModelWorkspace& ws, Eigen::Index index) {
  FluxJacobianWorkspace jw;
  Eigen::MatrixXd jacobian;
  flux_model_jacobian(model, stars, ws, index, jw, jacobian);
  return jacobian;
}

}  // namespace xps
