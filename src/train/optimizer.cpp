#include "xpstellar/optimizer.hpp"

#include <cmath>

namespace xps {

void optimizer_step(const OptimizerSettings& settings, double learning_rate, const double* gradient,
                    double* first, double* second, std::int64_t adam_step, double* step, int n) {
  if (settings.kind == OptimizerKind::sgd) {
    if (settings.momentum == 0 || first == nullptr) {
      for (int i = 0; i < n; ++i) step[i] = -learning_rate * gradient[i];
      return;
    }
    for (int i = 0; i < n; ++i) {
      first[i] = settings.momentum * first[i] + gradient[i];
      step[i] = -learning_rate * first[i];
    }
    return;
  }
  const double b1 = settings.beta1, b2 = settings.beta2;
  const double t = static_cast<double>(adam_step);
  const double first_correction = 1.0 / (1.0 - std::pow(b1, t));
  const double second_correction = 1.0 / (1.0 - std::pow(b2, t));
  for (int i = 0; i < n; ++i) {
    first[i] = b1 * first[i] + (1.0 - b1) * gradient[i];
    second[i] = b2 * second[i] + (1.0 - b2) * gradient[i] * gradient[i];
    const double m_hat = first[i] * first_correction;
    const double v_hat = second[i] * second_correction;
    step[i] = -learning_rate * m_hat / (std::sqrt(v_hat) + settings.epsilon);
  }
}

}  // namespace xps
