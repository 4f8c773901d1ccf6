// Orthonormal Hermite functions psi_n(x) = (2^n n! sqrt(pi))^-1/2 H_n(x) exp(-x^2/2), the basis
// of the Gaia XP continuous representation (Carrasco et al. 2021, A&A 652, A86, eq. 6), by the
// stable three-term recursion GaiaXPy uses (spectrum/sampled_basis_functions.py):
//   psi_0 = pi^-1/4 exp(-x^2/2),  psi_1 = sqrt(2) x psi_0,
//   psi_n = sqrt(2/n) x psi_n-1 - sqrt((n-1)/n) psi_n-2.
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>
#include <span>

namespace xps::xp {

// psi_0(x) .. psi_{out.size()-1}(x) into `out`.
inline void hermite_functions(double x, std::span<double> out) noexcept {
  if (out.empty()) return;
  const double pi_to_minus_quarter = std::pow(std::numbers::pi, -0.25);
  out[0] = pi_to_minus_quarter * std::exp(-x * x / 2.0);
  if (out.size() == 1) return;
  out[1] = out[0] * std::numbers::sqrt2 * x;
  for (std::size_t n = 2; n < out.size(); ++n) {
    const double order = static_cast<double>(n);
    out[n] =
        std::sqrt(2.0 / order) * x * out[n - 1] - std::sqrt((order - 1.0) / order) * out[n - 2];
  }
}

}  // namespace xps::xp
