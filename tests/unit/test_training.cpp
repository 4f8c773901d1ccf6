// The training pieces that can be checked alone: the recipe's declared parameters, learning-rate
// schedules, the optimisers against their textbook recurrences, the packed global parameters
// against finite differences through the flux model, the measurement terms of the star loss
// against finite differences, and the train/validation split against an independent Python
// evaluation of the same hash.
#include <gtest/gtest.h>

#include <cmath>

#include "test_support.hpp"
#include "xpstellar/config.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/model_parameters.hpp"
#include "xpstellar/optimizer.hpp"
#include "xpstellar/star_loss.hpp"
#include "xpstellar/training_set.hpp"
#include "xpstellar/training_settings.hpp"

namespace {

using namespace xps;
using xps::test::error_message;

ParameterSet training_parameters() {
  ParameterSet p;
  declare_training_parameters(p);
  return p;
}

TEST(TrainingRecipe, DefaultsAreThePapersSixPhases) {
  const TrainingSettings s = read_training_parameters(training_parameters());
  ASSERT_EQ(s.phases.size(), 6u);
  EXPECT_EQ(s.batch_size, 512);
  EXPECT_EQ(s.phases[0].kind, PhaseKind::model);
  EXPECT_EQ(s.phases[0].selection, StarSelection::high_quality);
  EXPECT_EQ(s.phases[0].epochs, 128);
  EXPECT_DOUBLE_EQ(s.phases[0].model_optimizer.momentum, 0.5);
  EXPECT_EQ(s.phases[1].kind, PhaseKind::alternate);
  EXPECT_DOUBLE_EQ(s.phases[1].model_optimizer.learning_rate.initial, 1e-5);
  EXPECT_DOUBLE_EQ(s.phases[1].star_optimizer.learning_rate.initial, 1e-4);
  EXPECT_EQ(s.phases[2].kind, PhaseKind::stars);
  EXPECT_EQ(s.phases[2].steps, 128);
  EXPECT_EQ(s.phases[3].kind, PhaseKind::self_cleaning);
  EXPECT_EQ(s.phases[4].selection, StarSelection::clean);
  EXPECT_DOUBLE_EQ(s.phases[4].model_optimizer.learning_rate.initial, 1e-7);
  EXPECT_EQ(s.phases[5].star_optimizer.kind, OptimizerKind::adam);
  EXPECT_EQ(s.phases[5].steps, 4096);
  EXPECT_EQ(s.phases[5].star_optimizer.learning_rate.decay_every, 512);
  EXPECT_DOUBLE_EQ(s.data.hq_teff_err, 200);
  EXPECT_DOUBLE_EQ(s.data.validation_fraction, 0.2);
}

TEST(TrainingRecipe, OffPhasesAreSkippedAndBadValuesNamed) {
  ParameterSet p = training_parameters();
  p.set("phase2.kind", "off", "test");
  EXPECT_EQ(read_training_parameters(p).phases.size(), 5u);
  p.set("phase1.lr_drops", "32,x", "test");
  const std::string message = error_message<UsageError>([&] { read_training_parameters(p); });
  EXPECT_NE(message.find("phase1.lr_drops"), std::string::npos) << message;
  p.set("phase1.lr_drops", "32", "test");
  p.set("phase1.epochs", "0", "test");
  EXPECT_NE(error_message<UsageError>([&] { read_training_parameters(p); }).find("phase1.epochs"),
            std::string::npos);
}

TEST(TrainingRecipe, LearningRateDropsAndDecay) {
  LearningRateSchedule drops;
  drops.initial = 1e-3;
  drops.drop_at = {32, 64, 96};
  EXPECT_DOUBLE_EQ(drops.at(0), 1e-3);
  EXPECT_DOUBLE_EQ(drops.at(31), 1e-3);
  EXPECT_NEAR(drops.at(32), 1e-4, 1e-18);
  EXPECT_NEAR(drops.at(64), 1e-5, 1e-19);
  EXPECT_NEAR(drops.at(127), 1e-6, 1e-20);
  LearningRateSchedule halving;
  halving.initial = 0.01;
  halving.decay_every = 512;
  EXPECT_DOUBLE_EQ(halving.at(511), 0.01);
  EXPECT_DOUBLE_EQ(halving.at(512), 0.005);
  EXPECT_DOUBLE_EQ(halving.at(4095), 0.01 / 128);
}

TEST(Optimizer, SgdMomentumFollowsItsRecurrence) {
  OptimizerSettings sgd;
  sgd.momentum = 0.5;
  double x = 1.0, velocity = 0, step = 0;
  double reference_x = 1.0, reference_v = 0;
  for (int t = 1; t <= 4; ++t) {
    const double g = 2 * x;  // d/dx of x^2
    optimizer_step(sgd, 0.1, &g, &velocity, nullptr, t, &step, 1);
    x += step;
    const double reference_g = 2 * reference_x;
    reference_v = 0.5 * reference_v + reference_g;
    reference_x -= 0.1 * reference_v;
    EXPECT_DOUBLE_EQ(x, reference_x);
  }
  OptimizerSettings plain;  // no momentum: the buffer is not touched
  double untouched = 7, g = 3;
  optimizer_step(plain, 0.1, &g, &untouched, nullptr, 1, &step, 1);
  EXPECT_DOUBLE_EQ(step, -0.3);
  EXPECT_DOUBLE_EQ(untouched, 7);
}

TEST(Optimizer, AdamFirstStepIsTheLearningRateAgainstTheGradientSign) {
  OptimizerSettings adam;
  adam.kind = OptimizerKind::adam;
  adam.epsilon = 0;
  const double gradient[3] = {250.0, -1e-4, 3.0};
  double m[3] = {}, v[3] = {}, step[3];
  optimizer_step(adam, 0.01, gradient, m, v, 1, step, 3);
  // Bias correction makes the first step exactly -lr * sign(g), whatever the scale of g.
  EXPECT_NEAR(step[0], -0.01, 1e-15);
  EXPECT_NEAR(step[1], 0.01, 1e-15);
  EXPECT_NEAR(step[2], -0.01, 1e-15);
  // Second step with the same gradient: m_hat = g, v_hat = g^2 again.
  optimizer_step(adam, 0.01, gradient, m, v, 2, step, 3);
  EXPECT_NEAR(step[0], -0.01, 1e-15);
}

FluxModel test_model(bool use_xi) {
  NetworkSettings n;
  n.width = 6;
  n.use_xi = use_xi;
  std::vector<double> wavelengths;
  for (int b = 0; b < 12; ++b) wavelengths.push_back(400.0 + 50.0 * b);
  FluxModel model = initial_flux_model(n, wavelengths, Eigen::VectorXd::Constant(12, 2.0), 5);
  for (auto& b : model.network.bias) b += Eigen::VectorXd::LinSpaced(b.size(), -0.2, 0.3);
  return model;
}

TEST(ModelParameters, PackUnpackRoundTripAndCount) {
  for (const bool use_xi : {false, true}) {
    const FluxModel model = test_model(use_xi);
    const Eigen::VectorXd packed = pack_global_parameters(model);
    EXPECT_EQ(packed.size(), global_parameter_count(model));
    FluxModel copy = test_model(use_xi);
    copy.extinction_R.setOnes();
    for (auto& w : copy.network.weight) w.setZero();
    unpack_global_parameters(packed, copy);
    EXPECT_TRUE(pack_global_parameters(copy).isApprox(packed, 1e-15));
    for (std::size_t k = 0; k < model.network.weight.size(); ++k)
      EXPECT_EQ(copy.network.weight[k], model.network.weight[k]);
  }
}

TEST(ModelParameters, InitialCurveIsTheLawAndR1OrthogonalToIt) {
  const FluxModel model = test_model(true);
  EXPECT_GT(model.extinction_R(0), model.extinction_R(11));  // blue extinguished more
  EXPECT_NEAR(model.extinction_R1.dot(model.extinction_R), 0.0, 1e-12);
  EXPECT_GT(model.extinction_R1.norm(), 0.0);
}

// The packed gradient (with d/d ln R) of a linear functional of f_pred against central finite
// differences of the packed vector: checks the order and the chain rule of every entry.
TEST(ModelParameters, PackedGradientMatchesFiniteDifferences) {
  for (const bool use_xi : {false, true}) {
    FluxModel model = test_model(use_xi);
    StarBatch stars;
    stars.theta.resize(3, 3);
    stars.theta << 4800, 6100, 5300, -0.4, 0.1, -1.0, 2.6, 4.2, 3.9;
    stars.ln_parallax = Eigen::Vector3d(std::log(0.8), std::log(2.5), 0.1);
    stars.ln_E = Eigen::Vector3d(std::log(0.1), std::log(0.4), std::log(0.02));
    stars.xi = Eigen::Vector3d(0.3, -0.2, 0.1);
    const Eigen::MatrixXd weights = Eigen::MatrixXd::Random(12, 3);
    auto loss = [&](const FluxModel& m) {
      FluxModelWorkspace w;
      flux_model_forward(m, stars, w);
      return (w.flux.array() * weights.array()).sum();
    };
    FluxModelWorkspace workspace;
    flux_model_forward(model, stars, workspace);
    FluxModelGradient gradient;
    gradient.reset_like(model);
    flux_model_backward(model, stars, workspace, weights, &gradient, nullptr);
    Eigen::VectorXd analytic(global_parameter_count(model));
    pack_global_gradient(gradient, model, analytic.data());
    const Eigen::VectorXd packed = pack_global_parameters(model);
    for (Eigen::Index i = 0; i < packed.size(); ++i) {
      const double h = 1e-6 * std::max(1.0, std::abs(packed(i)));
      FluxModel plus = model, minus = model;
      Eigen::VectorXd p = packed, q = packed;
      p(i) += h;
      q(i) -= h;
      unpack_global_parameters(p, plus);
      unpack_global_parameters(q, minus);
      const double numeric = (loss(plus) - loss(minus)) / (2 * h);
      EXPECT_NEAR(analytic(i), numeric, 1e-6 * std::max(1.0, analytic.cwiseAbs().maxCoeff()))
          << "packed entry " << i << (use_xi ? " with xi" : "");
    }
  }
}

TEST(StarLoss, MeasurementTermsMatchFiniteDifferences) {
  StarMeasurements m;
  m.label = {5300, -0.3, 4.1};
  m.label_error = {120, 0.08, 0.15};
  m.parallax = 1.7;
  m.parallax_error = 0.05;
  for (const double E_prior : {0.3, std::nan("")}) {
    m.E_prior = E_prior;
    m.E_prior_error = 0.05;
    const double p[5] = {5450, -0.1, 3.9, std::log(1.65), std::log(0.25)};
    double gradient[5], scratch[5];
    const double value = star_measurement_terms(p, m, gradient);
    const double expected = std::pow(150.0 / 120, 2) + std::pow(0.2 / 0.08, 2) +
                            std::pow(0.2 / 0.15, 2) + std::pow(0.05 / 0.05, 2) -
                            2 * std::log(1.65) - 2 * std::log(0.25) +
                            (std::isnan(E_prior) ? 0.0 : std::pow(0.05 / 0.05, 2));
    EXPECT_NEAR(value, expected, 1e-9);
    for (int k = 0; k < 5; ++k) {
      const double h = 1e-6 * std::max(1.0, std::abs(p[k]));
      double plus[5], minus[5];
      std::copy(p, p + 5, plus);
      std::copy(p, p + 5, minus);
      plus[k] += h;
      minus[k] -= h;
      const double numeric =
          (star_measurement_terms(plus, m, scratch) - star_measurement_terms(minus, m, scratch)) / (2 * h);
      EXPECT_NEAR(gradient[k], numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << "parameter " << k;
    }
  }
}

// Reference values from an independent numpy evaluation of SplitMix64 (tools reproduce it).
TEST(TrainingSplit, HashMatchesPythonAndHoldsOutTheFraction) {
  EXPECT_TRUE(is_validation_star(123456789, 0.1338, 0));   // u = 0.133735
  EXPECT_FALSE(is_validation_star(123456789, 0.1337, 0));
  EXPECT_TRUE(is_validation_star(4295229440123, 0.6679, 0));  // u = 0.667827
  EXPECT_FALSE(is_validation_star(4295229440123, 0.6678, 0));
  EXPECT_FALSE(is_validation_star(4295229440123, 0.9855, 7));  // u = 0.985536 with salt 7
  EXPECT_TRUE(is_validation_star(4295229440123, 0.9856, 7));
  int held_out = 0;
  const int n = 200000;
  for (std::int64_t id = 0; id < n; ++id) held_out += is_validation_star((id << 20) + 17, 0.2, 0);
  EXPECT_NEAR(held_out / double(n), 0.2, 0.005);
}

}  // namespace
