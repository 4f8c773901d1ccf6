// The first-order optimisers of the training recipe, as allocation-free updates of a parameter
// block: SGD with (heavy-ball) momentum in PyTorch's convention and Adam (Kingma & Ba 2015).
// They return the step instead of applying it, so that a caller optimising in normalised units
// can scale it back to physical ones.
#pragma once

#include <cstdint>

#include "xpstellar/training_settings.hpp"

namespace xps {

// step = -lr * update(gradient), with the optimiser's moments advanced in place.
//   SGD:  m = momentum * m + g (m unused when momentum == 0), update = m
//   Adam: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, update = m_hat / (sqrt(v_hat) + eps)
// `adam_step` is the 1-based step count after this update (bias correction). `first` and `second`
// may be null when the optimiser does not use them.
void optimizer_step(const OptimizerSettings& settings, double learning_rate, const double* gradient,
                    double* first, double* second, std::int64_t adam_step, double* step, int n);

}  // namespace xps
