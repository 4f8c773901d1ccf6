// The small Eigen types of the mixture fits' per-point loops (gaussian_mixture.cpp,
// deconvolved_mixture.cpp): fixed-size for D = 3 (Theta), fixed-capacity up to
// gmm_max_fast_dimension, so that those loops do not allocate; MaxDim = Eigen::Dynamic for larger D.
#pragma once

#include <Eigen/Dense>

#include "xpstellar/gaussian_mixture.hpp"

namespace xps {

template <int Dim, int MaxDim = (Dim == Eigen::Dynamic ? gmm_max_fast_dimension : Dim)>
struct MixtureTypes {
  using Vector = Eigen::Matrix<double, Dim, 1, 0, MaxDim, 1>;
  using Matrix = Eigen::Matrix<double, Dim, Dim, 0, MaxDim, MaxDim>;
};

}  // namespace xps
