#include "xp/cubic_spline.hpp"

#include <algorithm>
#include <cstddef>
#include <stdexcept>

namespace xps::xp {

namespace {

// Solves the tridiagonal system lower_i m_i-1 + diagonal_i m_i + upper_i m_i+1 = rhs_i (Thomas
// algorithm; the not-a-knot system is diagonally dominant, so no pivoting is needed).
std::vector<double> solve_tridiagonal(std::vector<double> lower, std::vector<double> diagonal,
                                      std::vector<double> upper, std::vector<double> rhs) {
  const std::size_t n = diagonal.size();
  for (std::size_t i = 1; i < n; ++i) {
    const double factor = lower[i] / diagonal[i - 1];
    diagonal[i] -= factor * upper[i - 1];
    rhs[i] -= factor * rhs[i - 1];
  }
  std::vector<double> solution(n);
  solution[n - 1] = rhs[n - 1] / diagonal[n - 1];
  for (std::size_t i = n - 1; i-- > 0;) {
    solution[i] = (rhs[i] - upper[i] * solution[i + 1]) / diagonal[i];
  }
  return solution;
}

}  // namespace

CubicSpline::CubicSpline(std::span<const double> x, std::span<const double> y,
                         const std::string& what)
    : m_x(x.begin(), x.end()), m_y(y.begin(), y.end()) {
  const std::size_t n = m_x.size();
  if (n != m_y.size() || n < 4) {
    throw std::invalid_argument(what + ": a cubic spline needs at least 4 points and as many " +
                                "abscissae as values (" + std::to_string(n) + ", " +
                                std::to_string(m_y.size()) + " given)");
  }
  std::vector<double> h(n - 1);
  std::vector<double> slope(n - 1);
  for (std::size_t i = 0; i + 1 < n; ++i) {
    h[i] = m_x[i + 1] - m_x[i];
    if (!(h[i] > 0.0)) throw std::invalid_argument(what + ": abscissae not strictly increasing");
    slope[i] = (m_y[i + 1] - m_y[i]) / h[i];
  }
  // Unknowns: the second derivatives at the interior points 1..n-2. The end ones follow from the
  // not-a-knot conditions (continuous third derivative at points 1 and n-2).
  const std::size_t unknowns = n - 2;
  std::vector<double> lower(unknowns, 0.0), diagonal(unknowns), upper(unknowns, 0.0), rhs(unknowns);
  for (std::size_t k = 0; k < unknowns; ++k) {
    const std::size_t i = k + 1;
    lower[k] = h[i - 1];
    diagonal[k] = 2.0 * (h[i - 1] + h[i]);
    upper[k] = h[i];
    rhs[k] = 6.0 * (slope[i] - slope[i - 1]);
  }
  // m_0 = (1 + h0/h1) m_1 - (h0/h1) m_2, substituted into the first equation.
  const double left = h[0] / h[1];
  diagonal[0] += h[0] * (1.0 + left);
  upper[0] -= h[0] * left;
  // m_n-1 = (1 + hL/hL-1) m_n-2 - (hL/hL-1) m_n-3, substituted into the last equation.
  const double right = h[n - 2] / h[n - 3];
  diagonal[unknowns - 1] += h[n - 2] * (1.0 + right);
  lower[unknowns - 1] -= h[n - 2] * right;

  const std::vector<double> interior = solve_tridiagonal(lower, diagonal, upper, rhs);
  m_second.assign(n, 0.0);
  std::copy(interior.begin(), interior.end(), m_second.begin() + 1);
  m_second[0] = (1.0 + left) * m_second[1] - left * m_second[2];
  m_second[n - 1] = (1.0 + right) * m_second[n - 2] - right * m_second[n - 3];
}

double CubicSpline::operator()(double x) const {
  // The interval [x_i, x_i+1] holding x; the first or last one outside the data.
  const auto above = std::upper_bound(m_x.begin() + 1, m_x.end() - 1, x);
  const std::size_t i = static_cast<std::size_t>(above - m_x.begin()) - 1;
  const double h = m_x[i + 1] - m_x[i];
  const double t = x - m_x[i];
  const double slope = (m_y[i + 1] - m_y[i]) / h;
  const double m0 = m_second[i];
  const double m1 = m_second[i + 1];
  return m_y[i] + t * (slope - h * (2.0 * m0 + m1) / 6.0) +
         t * t * (0.5 * m0 + t * (m1 - m0) / (6.0 * h));
}

}  // namespace xps::xp
