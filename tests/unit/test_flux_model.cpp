// The flux model's analytic passes against central finite differences, for every activation and
// for every kind of parameter (DESIGN §1.1; issue: gradients to 1e-6 relative in double).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>

#include "xpstellar/flux_model.hpp"
#include "xpstellar/network_product.hpp"

namespace {

using namespace xps;
using Eigen::Index;

constexpr int bands = 66;

FluxModel small_model(Activation activation, bool use_xi) {
  FluxModel model;
  const Eigen::VectorXd mean_ln_flux = Eigen::VectorXd::LinSpaced(bands, 3.0, 5.0);
  model.network = FluxNetwork::initialise(3, 8, bands, activation, {5000.0, -0.2, 3.5},
                                          {1500.0, 0.5, 1.2}, 11, mean_ln_flux);
  // Give biases non-zero values so that their gradients are exercised in general position.
  for (auto& b : model.network.bias) b += Eigen::VectorXd::LinSpaced(b.size(), -0.3, 0.4);
  model.extinction_R = Eigen::VectorXd::LinSpaced(bands, 3.5, 0.2);
  model.extinction_R1 = Eigen::VectorXd::LinSpaced(bands, 0.3, -0.1);
  model.use_xi = use_xi;
  return model;
}

StarBatch small_batch() {
  StarBatch stars;
  stars.theta.resize(3, 4);
  stars.theta << 4800, 6100, 5200, 7300,  //
      -0.4, 0.1, -1.2, 0.3,               //
      2.6, 4.2, 3.1, 4.0;
  stars.ln_parallax = Eigen::Vector4d(std::log(0.8), std::log(2.5), std::log(0.3), 0.0);
  stars.ln_E = Eigen::Vector4d(std::log(0.05), std::log(0.4), std::log(1.2), std::log(0.2));
  stars.xi = Eigen::Vector4d(0.2, -0.3, 0.0, 0.5);
  return stars;
}

// A chi^2-like loss with per-entry weights: L = sum w (f - o)^2, dL/df = 2 w (f - o).
struct Loss {
  Eigen::MatrixXd weight, observed;
  explicit Loss(const FluxModelWorkspace& ws) {
    weight = (Eigen::MatrixXd::Random(ws.flux.rows(), ws.flux.cols()).array() + 1.5).matrix();
    observed = ws.flux.cwiseProduct((Eigen::MatrixXd::Random(ws.flux.rows(), ws.flux.cols()).array() * 0.2 + 1.0).matrix());
  }
  double value(const Eigen::MatrixXd& flux) const {
    return (weight.array() * (flux - observed).array().square()).sum();
  }
  Eigen::MatrixXd gradient(const Eigen::MatrixXd& flux) const {
    return 2.0 * weight.cwiseProduct(flux - observed);
  }
};

// Central difference of the loss along one scalar, with a step relative to its size.
double numeric_derivative(double& parameter, const std::function<double()>& loss) {
  const double saved = parameter;
  const double step = 1e-5 * std::max(1.0, std::abs(saved));
  parameter = saved + step;
  const double up = loss();
  parameter = saved - step;
  const double down = loss();
  parameter = saved;
  return (up - down) / (2.0 * step);
}

// Every entry of `analytic` against finite differences, relative to the largest entry.
void expect_gradient(const Eigen::Ref<const Eigen::MatrixXd>& analytic,
                     const std::function<double&(Index, Index)>& parameter,
                     const std::function<double()>& loss, const std::string& what) {
  const double scale = std::max(analytic.cwiseAbs().maxCoeff(), 1e-300);
  for (Index j = 0; j < analytic.cols(); ++j)
    for (Index i = 0; i < analytic.rows(); ++i) {
      const double numeric = numeric_derivative(parameter(i, j), loss);
      ASSERT_NEAR(analytic(i, j), numeric, 1e-6 * scale) << what << " (" << i << ", " << j << ")";
    }
}

class FluxModelGradients : public ::testing::TestWithParam<std::tuple<Activation, bool>> {};

TEST_P(FluxModelGradients, AnalyticGradientsMatchFiniteDifferences) {
  const auto [activation, use_xi] = GetParam();
  FluxModel model = small_model(activation, use_xi);
  StarBatch stars = small_batch();
  FluxModelWorkspace ws;
  flux_model_forward(model, stars, ws);
  const Loss loss(ws);
  FluxModelGradient global;
  global.reset_like(model);
  StarGradient star;
  flux_model_backward(model, stars, ws, loss.gradient(ws.flux), &global, &star);

  FluxModelWorkspace probe;
  const auto evaluate = [&] {
    flux_model_forward(model, stars, probe);
    return loss.value(probe.flux);
  };
  for (std::size_t k = 0; k < model.network.weight.size(); ++k) {
    expect_gradient(global.weight[k], [&](Index i, Index j) -> double& { return model.network.weight[k](i, j); },
                    evaluate, "weight layer " + std::to_string(k));
    expect_gradient(global.bias[k], [&](Index i, Index) -> double& { return model.network.bias[k](i); },
                    evaluate, "bias layer " + std::to_string(k));
  }
  expect_gradient(global.extinction_R, [&](Index i, Index) -> double& { return model.extinction_R(i); }, evaluate, "R");
  if (use_xi) {
    expect_gradient(global.extinction_R1, [&](Index i, Index) -> double& { return model.extinction_R1(i); }, evaluate, "R1");
    expect_gradient(star.xi, [&](Index i, Index) -> double& { return stars.xi(i); }, evaluate, "xi");
  } else {
    EXPECT_EQ(global.extinction_R1.cwiseAbs().maxCoeff(), 0.0);
  }
  expect_gradient(star.theta, [&](Index i, Index j) -> double& { return stars.theta(i, j); }, evaluate, "theta");
  expect_gradient(star.ln_parallax, [&](Index i, Index) -> double& { return stars.ln_parallax(i); }, evaluate, "ln parallax");
  expect_gradient(star.ln_E, [&](Index i, Index) -> double& { return stars.ln_E(i); }, evaluate, "ln E");
}

TEST_P(FluxModelGradients, JacobianMatchesFiniteDifferencesOfTheFlux) {
  const auto [activation, use_xi] = GetParam();
  FluxModel model = small_model(activation, use_xi);
  StarBatch stars = small_batch();
  FluxModelWorkspace ws, probe;
  flux_model_forward(model, stars, ws);
  for (Index star = 0; star < stars.size(); ++star) {
    const Eigen::MatrixXd jacobian = flux_model_jacobian(model, stars, ws, star);
    ASSERT_EQ(jacobian.cols(), use_xi ? 6 : 5);
    double* parameters[6] = {&stars.theta(0, star), &stars.theta(1, star), &stars.theta(2, star),
                             &stars.ln_parallax(star), &stars.ln_E(star), &stars.xi(star)};
    for (Index p = 0; p < jacobian.cols(); ++p) {
      const double scale = std::max(jacobian.col(p).cwiseAbs().maxCoeff(), 1e-300);
      for (Index m = 0; m < bands; ++m) {
        const double numeric = numeric_derivative(*parameters[p], [&] {
          flux_model_forward(model, stars, probe);
          return probe.flux(m, star);
        });
        ASSERT_NEAR(jacobian(m, p), numeric, 1e-6 * scale) << "star " << star << " parameter " << p << " band " << m;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    EveryActivation, FluxModelGradients,
    ::testing::Combine(::testing::Values(Activation::tanh, Activation::silu, Activation::relu,
                                         Activation::softplus, Activation::elu, Activation::sigmoid),
                       ::testing::Bool()),
    [](const auto& parameter_info) {
      return std::string(activation_name(std::get<0>(parameter_info.param))) +
             (std::get<1>(parameter_info.param) ? "_xi" : "_noxi");
    });

TEST(FluxModel, DefaultNetworkHasThePapersParameterCount) {
  // DESIGN §1.1: 3 hidden layers of width 32 and 66 outputs give 4,256 weights and 162 biases.
  const FluxNetwork network = FluxNetwork::initialise(3, 32, 66, Activation::tanh, Eigen::Vector3d::Zero(),
                                                      Eigen::Vector3d::Ones(), 1, Eigen::VectorXd());
  EXPECT_EQ(network.weight_count(), 4256);
  EXPECT_EQ(network.bias_count(), 162);
}

TEST(FluxModel, FluxScalesWithParallaxSquaredAndDimsWithExtinction) {
  const FluxModel model = small_model(Activation::tanh, false);
  StarBatch stars = small_batch();
  FluxModelWorkspace near, far;
  flux_model_forward(model, stars, near);
  stars.ln_parallax.array() -= std::log(2.0);
  flux_model_forward(model, stars, far);
  EXPECT_LT((near.flux - 4.0 * far.flux).cwiseAbs().maxCoeff(), 1e-12 * near.flux.maxCoeff());
  const Eigen::VectorXd expected = near.ln_flux_abs.col(1).array() + 2.0 * std::log(2.5) -
                                   0.4 * model.extinction_R.array();
  EXPECT_LT((near.flux.col(1).array().log() - expected.array()).abs().maxCoeff(), 1e-12);
}

// The vectorised tanh and exp of the forward pass (AVX2 + FMA where the CPU has it, Eigen's SSE2
// exp otherwise; XPS_KERNELS=portable forces the latter) against the C library, over
// pre-activations from -200 to 200 and batch sizes that leave partial vectors.
TEST(FluxModel, ActivationsAndFluxesMatchTheCLibrary) {
  FluxModel model = small_model(Activation::tanh, true);
  model.network =
      FluxNetwork::initialise(3, 7, bands, Activation::tanh, {5000.0, -0.2, 3.5},
                              {1500.0, 0.5, 1.2}, 5, Eigen::VectorXd::LinSpaced(bands, -2.0, 3.0));
  model.network.weight[0] *= 60.0;  // saturates some units, leaves others near zero
  for (const Index batch : {1, 3, 5, 8}) {
    StarBatch stars;
    stars.theta.resize(3, batch);
    stars.ln_parallax.resize(batch);
    stars.ln_E.resize(batch);
    stars.xi.resize(batch);
    for (Index b = 0; b < batch; ++b) {
      stars.theta.col(b) << 3500.0 + 900.0 * double(b), -2.0 + 0.5 * double(b),
          0.5 + 0.7 * double(b);
      stars.ln_parallax(b) = -3.0 + 1.1 * double(b);
      stars.ln_E(b) = -4.0 + 0.9 * double(b);
      stars.xi(b) = 0.1 * double(b);
    }
    FluxModelWorkspace ws;
    flux_model_forward(model, stars, ws);
    double smallest = 1e300, largest = 0;
    for (std::size_t k = 0; k + 1 < ws.activation.size(); ++k)
      for (Index j = 0; j < ws.activation[k + 1].size(); ++j) {
        const double z = ws.pre_activation[k](j);
        smallest = std::min(smallest, std::abs(z));
        largest = std::max(largest, std::abs(z));
        ASSERT_NEAR(ws.activation[k + 1](j), std::tanh(z), 4e-16) << "layer " << k << " z " << z;
      }
    if (batch == 8) {
      EXPECT_LT(smallest, 0.1);
      EXPECT_GT(largest, 100.0);
    }
    for (Index b = 0; b < batch; ++b)
      for (Index i = 0; i < bands; ++i) {
        const double extinction = std::exp(stars.ln_E(b));
        const double exponent =
            ws.ln_flux_abs(i, b) + 2.0 * stars.ln_parallax(b) -
            extinction * (model.extinction_R(i) + stars.xi(b) * model.extinction_R1(i));
        const double expected = std::exp(exponent);
        ASSERT_NEAR(ws.flux(i, b), expected, 1e-14 * expected) << "star " << b << " band " << i;
        ASSERT_EQ(ws.effective_R(i, b),
                  model.extinction_R(i) + stars.xi(b) * model.extinction_R1(i));
      }
  }
}

TEST(FluxModel, NotANumberPropagatesToTheStarsFluxesOnly) {
  const FluxModel model = small_model(Activation::tanh, false);
  StarBatch stars = small_batch();
  stars.theta(2, 1) = std::nan("");
  stars.ln_E(3) = std::nan("");
  FluxModelWorkspace ws;
  flux_model_forward(model, stars, ws);
  EXPECT_TRUE(ws.flux.col(0).allFinite());
  EXPECT_TRUE(ws.flux.col(2).allFinite());
  EXPECT_TRUE(ws.flux.col(1).array().isNaN().all());
  EXPECT_TRUE(ws.flux.col(3).array().isNaN().all());
}

// The network's products (network_product.hpp) against long-double sums, within the classic
// bound depth * eps * sum |a_ik b_kj| (plus rounding of the added c), for shapes that leave
// every partial panel (8 and 4 rows, a masked tail of 1-3, 1-5 columns) and the layer shapes.
struct ProductShape {
  Index rows, depth, cols;
};

template <class Left, class Right>
void expect_within_rounding(const Eigen::MatrixXd& result, const Eigen::MatrixXd& start,
                            const Left& left, const Right& right, const std::string& what) {
  ASSERT_EQ(result.rows(), left.rows()) << what;
  ASSERT_EQ(result.cols(), right.cols()) << what;
  const double eps = std::numeric_limits<double>::epsilon();
  for (Index j = 0; j < result.cols(); ++j)
    for (Index i = 0; i < result.rows(); ++i) {
      long double exact = start.size() ? start(i, j) : 0.0;
      double magnitude = start.size() ? std::abs(start(i, j)) : 0.0;
      for (Index k = 0; k < left.cols(); ++k) {
        exact += static_cast<long double>(left(i, k)) * right(k, j);
        magnitude += std::abs(left(i, k) * right(k, j));
      }
      ASSERT_NEAR(result(i, j), static_cast<double>(exact),
                  static_cast<double>(left.cols() + 2) * eps * magnitude)
          << what << " entry " << i << ", " << j << " (" << network_product_kernel_name() << ")";
    }
}

TEST(NetworkProduct, MatchesLongDoubleSumsForEveryPanelShape) {
  std::mt19937_64 engine(17);
  std::normal_distribution<double> normal;
  const auto random_matrix = [&](Index rows, Index cols) {
    Eigen::MatrixXd m(rows, cols);
    for (Index i = 0; i < m.size(); ++i) m(i) = normal(engine) * std::exp(2 * normal(engine));
    return m;
  };
  for (const ProductShape shape : {ProductShape{32, 3, 512}, {66, 32, 512}, {32, 32, 7},
                                   {1, 1, 1}, {3, 5, 2}, {5, 9, 11}, {9, 4, 6}, {13, 17, 5},
                                   {66, 1, 13}, {71, 40, 4}}) {
    const std::string what = std::to_string(shape.rows) + " x " + std::to_string(shape.depth) +
                             " x " + std::to_string(shape.cols);
    const Eigen::MatrixXd a = random_matrix(shape.rows, shape.depth);
    const Eigen::MatrixXd b = random_matrix(shape.depth, shape.cols);
    Eigen::MatrixXd c = random_matrix(2, 2), scratch;  // wrong shape: the product resizes it
    network_product(a, b, c);
    expect_within_rounding(c, Eigen::MatrixXd(), a, b, "a b " + what);

    const Eigen::MatrixXd a_t = a.transpose();
    network_product_transposed_left(a_t, b, c, scratch);
    expect_within_rounding(c, Eigen::MatrixXd(), a, b, "a^T b " + what);

    const Eigen::MatrixXd b_t = b.transpose();
    const Eigen::MatrixXd start = random_matrix(shape.rows, shape.cols);
    c = start;
    network_product_add_transposed_right(a, b_t, c);
    expect_within_rounding(c, start, a, b, "c + a b^T " + what);
  }
  Eigen::MatrixXd a(3, 4), b(5, 2), c(3, 5);
  EXPECT_THROW(network_product(a, b, c), std::logic_error);
  EXPECT_THROW(network_product_add_transposed_right(a, b, c), std::logic_error);
  Eigen::MatrixXd wrong_shape(2, 2), b_rows(6, 4);
  EXPECT_THROW(network_product_add_transposed_right(a, b_rows, wrong_shape), std::logic_error);
}

// The AVX2 kernel sums every entry over k in order, so a star's column does not depend on the
// batch it is in (Eigen's blocked products promise no such thing, hence avx2 only).
TEST(NetworkProduct, AColumnDoesNotDependOnTheBatchAroundIt) {
  if (std::string(network_product_kernel_name()) != "avx2") GTEST_SKIP() << "portable products";
  std::mt19937_64 engine(3);
  std::normal_distribution<double> normal;
  Eigen::MatrixXd weight(66, 32), batch(32, 512), out_batch, out_part;
  for (Index i = 0; i < weight.size(); ++i) weight(i) = normal(engine);
  for (Index i = 0; i < batch.size(); ++i) batch(i) = normal(engine);
  network_product(weight, batch, out_batch);
  const Eigen::MatrixXd part = batch.middleCols(100, 7);
  network_product(weight, part, out_part);
  EXPECT_EQ(out_part, out_batch.middleCols(100, 7));
}

}  // namespace
