// The coordinated training step (coordinated_step.hpp) against brute force: its parameter
// Jacobian against finite differences of the network, and its Gauss-Newton system against the
// profile loss F(theta) = sum_i min_s L_i(theta, s) with every star solved afresh at each theta.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model_file_fixture.hpp"
#include "xpstellar/coordinated_step.hpp"
#include "xpstellar/model_parameters.hpp"
#include "xpstellar/star_fit.hpp"

namespace xps {
namespace {

StarBatch one_star(const Eigen::Vector3d& theta, double parallax, double E) {
  StarBatch batch;
  batch.theta = theta;
  batch.ln_parallax = Eigen::VectorXd::Constant(1, std::log(parallax));
  batch.ln_E = Eigen::VectorXd::Constant(1, std::log(E));
  batch.xi = Eigen::VectorXd::Zero(1);
  return batch;
}

FluxModel random_model(int hidden_layers, int width, int bands, Activation activation, std::uint64_t seed) {
  test::ModelFixtureOptions options;
  options.hidden_layers = hidden_layers;
  options.width = width;
  options.bands = bands;
  options.activation = activation;
  options.with_prior = false;
  options.seed = seed;
  return test::make_random_model_file(options).model;
}

Eigen::VectorXd ln_flux(const FluxModel& model, const StarBatch& batch) {
  FluxModelWorkspace workspace;
  flux_model_forward(model, batch, workspace);
  return workspace.flux.col(0).array().log();
}

TEST(CoordinatedStep, ParameterJacobianMatchesFiniteDifferences) {
  for (const Activation activation : {Activation::tanh, Activation::silu}) {
    const FluxModel model = random_model(3, 6, 9, activation, 1);
    const StarBatch batch = one_star({5300, -0.4, 4.2}, 1.1, 0.35);
    FluxModelWorkspace workspace;
    flux_model_forward(model, batch, workspace);
    for (const bool extinction : {false, true}) {
      const std::vector<Eigen::Index> moved = coordinated_parameter_indices(model, extinction);
      // 3 x 6 first-layer weights, 6 + 6 + 6 + 9 biases, 9 entries of ln R.
      ASSERT_EQ(moved.size(), static_cast<std::size_t>(18 + 27 + (extinction ? 9 : 0)));
      ParameterJacobianWorkspace scratch;
      Eigen::MatrixXd jacobian;
      coordinated_parameter_jacobian(model, batch, workspace, 0, extinction, scratch, jacobian);
      ASSERT_EQ(jacobian.cols(), static_cast<Eigen::Index>(moved.size()));
      const Eigen::VectorXd packed = pack_global_parameters(model);
      FluxModel shifted = model;
      for (std::size_t j = 0; j < moved.size(); ++j) {
        const double h = 1e-6;
        Eigen::VectorXd up = packed, down = packed;
        up(moved[j]) += h;
        down(moved[j]) -= h;
        unpack_global_parameters(up, shifted);
        const Eigen::VectorXd ln_up = ln_flux(shifted, batch);
        unpack_global_parameters(down, shifted);
        const Eigen::VectorXd numeric = (ln_up - ln_flux(shifted, batch)) / (2 * h);
        for (Eigen::Index b = 0; b < numeric.size(); ++b)
          EXPECT_NEAR(jacobian(b, static_cast<Eigen::Index>(j)), numeric(b), 1e-6 * std::max(1.0, std::abs(numeric(b))))
              << activation_name(activation) << " parameter " << moved[j] << " band " << b;
      }
    }
  }
}

// Stars whose data come from `data_model`, labelled within their errors, fitted with `model`.
struct ProfileProblem {
  FluxModel model;
  std::vector<Eigen::Index> moved;
  std::vector<std::vector<float>> whitening, flux;
  std::vector<StarMeasurements> measured;
  std::vector<StarVector> truth;

  ProfileProblem(const FluxModel& fitted, const FluxModel& data_model, int stars, double relative_error)
      : model(fitted), moved(coordinated_parameter_indices(fitted, true)) {
    std::mt19937_64 engine(11);
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    const int m = fitted.bands();
    InferenceLoss coordinates(model, 0.0, 30.0);
    for (int i = 0; i < stars; ++i) {
      const Eigen::Vector3d theta(5000 + 600 * uniform(engine), -0.3 + 0.3 * uniform(engine), 4.0 + 0.4 * uniform(engine));
      const double parallax = 1.0 + 0.3 * uniform(engine), E = 0.3 + 0.1 * uniform(engine);
      const Eigen::VectorXd data = ln_flux(data_model, one_star(theta, parallax, E)).array().exp();
      std::vector<float> w(whitening_size(static_cast<std::size_t>(m)), 0.0f), f(static_cast<std::size_t>(m));
      for (int b = 0; b < m; ++b) {
        const auto band = static_cast<std::size_t>(b);
        f[band] = static_cast<float>(data(b));
        w[whitening_row_offset(band) + band] = static_cast<float>(1.0 / (relative_error * data(b)));
      }
      whitening.push_back(w);
      flux.push_back(f);
      StarMeasurements labels;
      labels.label = theta;
      labels.label_error = {100, 0.1, 0.15};
      labels.parallax = parallax;
      labels.parallax_error = 0.05 * parallax;
      labels.E_prior = E;
      labels.E_prior_error = 0.05;
      measured.push_back(labels);
      truth.push_back(coordinates.parameters_of(theta, parallax, E, 0));
    }
  }

  InferenceStar star(std::size_t i) const {
    InferenceStar view;
    view.whitening = whitening[i].data();
    view.flux_for_fit = flux[i].data();
    view.labels = &measured[i];
    return view;
  }

  // sum_i L_i at theta = packed + t d, every star solved to its optimum from its true parameters
  // (or held at `held` if given).
  double profile(const Eigen::VectorXd& packed, const Eigen::VectorXd& direction, double t,
                 const std::vector<StarVector>* held = nullptr, std::vector<StarVector>* solved = nullptr) {
    Eigen::VectorXd at = packed;
    for (std::size_t j = 0; j < moved.size(); ++j) at(moved[j]) += t * direction(static_cast<Eigen::Index>(j));
    unpack_global_parameters(at, model);
    InferenceLoss loss(model, 0.0, 30.0);
    FastOptimizerSettings lm;
    lm.decrement_tolerance = 1e-16;
    lm.max_iterations = 200;
    double total = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) {
      if (held) {
        total += loss.value(star(i), (*held)[i]);
        continue;
      }
      const StarFit fit = fit_star_fast(loss, star(i), truth[i], lm);
      total += fit.parts.total;
      if (solved) solved->push_back(fit.parameters);
    }
    unpack_global_parameters(packed, model);
    return total;
  }

  ProfileSystem system(const std::vector<StarVector>& at) {
    InferenceLoss loss(model, 0.0, 30.0);
    ProfileSystem sum(static_cast<Eigen::Index>(moved.size()), model.bands(), 2);  // flushes mid-way
    StarVector gradient;
    StarMatrix hessian;
    for (std::size_t i = 0; i < at.size(); ++i) {
      loss.value_gradient_hessian(star(i), at[i], gradient, hessian);
      EXPECT_TRUE(sum.add_star(loss, whitening[i].data(), gradient, hessian, 1.0, true));
    }
    return sum;
  }
};

FluxModel small_model(std::uint64_t seed) { return random_model(2, 5, 12, Activation::tanh, seed); }

TEST(CoordinatedStep, GradientIsTheProfileLossGradient) {
  // Data from a different model: residuals everywhere, a gradient in every direction.
  FluxModel data_model = small_model(3);
  FluxModel fitted = data_model;
  fitted.network.bias.back().array() += 0.03;
  fitted.network.bias[0](1) -= 0.2;
  fitted.network.weight[0](2, 0) += 0.1;
  ProfileProblem problem(fitted, data_model, 5, 0.01);
  const Eigen::VectorXd packed = pack_global_parameters(problem.model);
  std::vector<StarVector> solved;
  problem.profile(packed, Eigen::VectorXd::Zero(static_cast<Eigen::Index>(problem.moved.size())), 0, nullptr, &solved);
  ProfileSystem system = problem.system(solved);
  std::mt19937_64 engine(5);
  std::normal_distribution<double> normal;
  for (int trial = 0; trial < 3; ++trial) {
    Eigen::VectorXd direction(static_cast<Eigen::Index>(problem.moved.size()));
    for (Eigen::Index j = 0; j < direction.size(); ++j) direction(j) = normal(engine);
    const double h = 1e-5;
    const double numeric = (problem.profile(packed, direction, h) - problem.profile(packed, direction, -h)) / (2 * h);
    EXPECT_NEAR(system.gradient().dot(direction), numeric, 1e-4 * std::abs(numeric)) << "direction " << trial;
  }
}

TEST(CoordinatedStep, HessianIsTheCurvatureOfTheLossWithStarsFollowing) {
  // The model's own data, labels and parallaxes at the truth: residuals vanish at the optimum, so
  // the Gauss-Newton Schur complement is the profile loss's exact curvature.
  const FluxModel model = small_model(4);
  ProfileProblem problem(model, model, 4, 0.001);
  const Eigen::VectorXd packed = pack_global_parameters(problem.model);
  const auto P = static_cast<Eigen::Index>(problem.moved.size());
  std::vector<StarVector> solved;
  problem.profile(packed, Eigen::VectorXd::Zero(P), 0, nullptr, &solved);
  ProfileSystem system = problem.system(solved);
  const Eigen::MatrixXd hessian = system.hessian().selfadjointView<Eigen::Lower>();

  // The level direction (every output bias): the stars absorb it through their parallaxes, held
  // back only by the parallax measurements, so the profile is far flatter than with stars fixed.
  Eigen::VectorXd level = Eigen::VectorXd::Zero(P);
  const Eigen::Index output_bias = P - 2 * model.bands();
  level.segment(output_bias, model.bands()).setOnes();
  std::mt19937_64 engine(6);
  std::normal_distribution<double> normal;
  Eigen::VectorXd random(P);
  for (Eigen::Index j = 0; j < P; ++j) random(j) = normal(engine);
  for (const bool is_level : {true, false}) {
    const Eigen::VectorXd& direction = is_level ? level : random;
    const double predicted = direction.dot(hessian * direction);
    const double h = 0.1 / std::sqrt(predicted);  // a change of about 0.01 in the loss
    const double at_zero = problem.profile(packed, direction, 0);
    const double numeric = (problem.profile(packed, direction, h) - 2 * at_zero + problem.profile(packed, direction, -h)) / (h * h);
    // Along the level the stars cancel all but 1e-5 of the fixed-star curvature, and their
    // whitened Jacobian is computed in float (as the whitening is stored): 1 % there.
    EXPECT_NEAR(predicted, numeric, (is_level ? 1e-2 : 2e-4) * numeric);
    const double fixed = (problem.profile(packed, direction, h, &solved) - 2 * at_zero +
                          problem.profile(packed, direction, -h, &solved)) / (h * h);
    EXPECT_GT(fixed, predicted);
    if (is_level) {
      EXPECT_GT(fixed, 100 * predicted) << "the stars should absorb a level change";
    }
  }
}

TEST(CoordinatedStep, AStarWithoutCurvatureAddsNothing) {
  const FluxModel model = small_model(4);
  ProfileProblem problem(model, model, 1, 0.01);
  InferenceLoss loss(problem.model, 0.0, 30.0);
  StarVector gradient;
  StarMatrix hessian;
  loss.value_gradient_hessian(problem.star(0), problem.truth[0], gradient, hessian);
  ProfileSystem system(static_cast<Eigen::Index>(problem.moved.size()), model.bands());
  StarMatrix singular = hessian;
  singular.row(2).setZero();
  singular.col(2).setZero();
  EXPECT_FALSE(system.add_star(loss, problem.whitening[0].data(), gradient, singular, 1.0, true));
  EXPECT_FALSE(system.add_star(loss, problem.whitening[0].data(), gradient, hessian, 0.0, true));
  EXPECT_EQ(system.hessian().norm(), 0.0);
  EXPECT_EQ(system.gradient().norm(), 0.0);
}

}  // namespace
}  // namespace xps
