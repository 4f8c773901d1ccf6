#include "xpstellar/star_fit.hpp"

#include <algorithm>
#include <cmath>

namespace xps {

namespace {

// The Newton decrement g^T H^-1 g / 2 if H is positive definite, else -1.
double newton_decrement(const StarMatrix& hessian, const StarVector& gradient) {
  const Eigen::LLT<StarMatrix> cholesky(hessian);
  if (cholesky.info() != Eigen::Success) return -1;
  return 0.5 * gradient.dot(cholesky.solve(gradient));
}

}  // namespace

StarFit fit_star_fast(InferenceLoss& loss, const InferenceStar& star, const StarVector& start,
                      const FastOptimizerSettings& settings) {
  StarFit fit;
  fit.parameters = start;
  StarVector gradient, step, trial;
  StarMatrix hessian, damped;
  double current = loss.value_gradient_hessian(star, fit.parameters, gradient, hessian, &fit.parts);
  if (!std::isfinite(current)) return fit;
  double damping = settings.initial_damping;
  for (int iteration = 0; iteration < settings.max_iterations; ++iteration) {
    const double decrement = newton_decrement(hessian, gradient);
    fit.hessian_positive_definite = decrement >= 0;
    if (fit.hessian_positive_definite && decrement < settings.decrement_tolerance) {
      fit.converged = true;
      break;
    }
    fit.iterations = iteration + 1;
    // Marquardt's scaling by the diagonal; directions the data do not constrain get the largest
    // diagonal's small share so that damping still bounds the step there.
    const double largest = std::max(hessian.diagonal().maxCoeff(), 1e-12);
    StarVector scaling = hessian.diagonal().cwiseMax(1e-6 * largest);
    bool accepted = false;
    while (damping < 1e12) {
      damped = hessian;
      damped.diagonal() += damping * scaling;
      const Eigen::LLT<StarMatrix> cholesky(damped);
      if (cholesky.info() != Eigen::Success) {
        damping = std::max(damping * 10, 1e-6);
        continue;
      }
      step = -cholesky.solve(gradient);
      trial = fit.parameters + step;
      const double candidate = loss.value(star, trial);
      if (candidate < current) {
        fit.parameters = trial;
        current = loss.value_gradient_hessian(star, fit.parameters, gradient, hessian, &fit.parts);
        damping = std::max(damping / 5, 1e-12);
        accepted = true;
        break;
      }
      damping = std::max(damping * 4, 1e-6);
    }
    if (!accepted) {  // no step lowers the loss: a minimum to within rounding, if H is PD
      fit.hessian_positive_definite = newton_decrement(hessian, gradient) >= 0;
      fit.converged = fit.hessian_positive_definite;
      break;
    }
  }
  if (!fit.converged && fit.iterations == settings.max_iterations) {
    const double decrement = newton_decrement(hessian, gradient);
    fit.hessian_positive_definite = decrement >= 0;
    fit.converged = fit.hessian_positive_definite && decrement < settings.decrement_tolerance;
  }
  return fit;
}

StarFit fit_star_paper(InferenceLoss& loss, const InferenceStar& star, const StarVector& start,
                       const PaperOptimizerSettings& settings) {
  StarFit fit;
  fit.parameters = start;
  const int k = loss.parameters();
  StarVector gradient(k), first_moment = StarVector::Zero(k), second_moment = StarVector::Zero(k);
  constexpr double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
  double beta1_power = 1, beta2_power = 1;
  StarVector last_good = fit.parameters;
  for (std::int64_t step = 0; step < settings.adam_steps; ++step) {
    const double value = loss.value_gradient(star, fit.parameters, gradient);
    if (!std::isfinite(value)) {  // overflow: keep the last finite point
      fit.parameters = last_good;
      break;
    }
    last_good = fit.parameters;
    const double rate =
        settings.adam_lr * std::pow(settings.adam_decay_factor, static_cast<double>(step / settings.adam_decay_every));
    beta1_power *= beta1;
    beta2_power *= beta2;
    first_moment = beta1 * first_moment + (1 - beta1) * gradient;
    second_moment = beta2 * second_moment + (1 - beta2) * gradient.cwiseAbs2();
    fit.parameters.array() -= rate * (first_moment.array() / (1 - beta1_power)) /
                              ((second_moment.array() / (1 - beta2_power)).sqrt() + epsilon);
    ++fit.iterations;
  }
  StarMatrix hessian;
  loss.value_gradient_hessian(star, fit.parameters, gradient, hessian, &fit.parts);
  fit.hessian_positive_definite = newton_decrement(hessian, gradient) >= 0;
  for (int round = 1; round <= settings.sgd_rounds && !fit.hessian_positive_definite; ++round) {
    const double initial = settings.sgd_lr / std::pow(2.0, round - 1);
    last_good = fit.parameters;
    for (std::int64_t step = 0; step < settings.sgd_steps; ++step) {
      const double value = loss.value_gradient(star, fit.parameters, gradient);
      if (!std::isfinite(value)) {
        fit.parameters = last_good;
        break;
      }
      last_good = fit.parameters;
      const double rate = initial * std::pow(0.5, static_cast<double>(step / settings.sgd_halve_every));
      fit.parameters -= rate * gradient;
      ++fit.iterations;
    }
    loss.value_gradient_hessian(star, fit.parameters, gradient, hessian, &fit.parts);
    fit.hessian_positive_definite = newton_decrement(hessian, gradient) >= 0;
  }
  if (!std::isfinite(fit.parts.total)) fit.parameters = start;
  loss.value(star, fit.parameters, &fit.parts);
  fit.converged = fit.hessian_positive_definite && std::isfinite(fit.parts.total);
  return fit;
}

}  // namespace xps
