// The interpolating cubic spline with not-a-knot end conditions: what scipy's
// interpolate.splrep(x, y, s=0) (FITPACK curfit, k = 3, knots at the interior data points but the
// second and the second-to-last) followed by splev(ext=0) computes, which GaiaXPy uses for the
// dispersion and response curves. Outside [x_0, x_n-1] the end polynomials extrapolate, as splev.
#pragma once

#include <span>
#include <string>
#include <vector>

namespace xps::xp {

class CubicSpline {
 public:
  // `x` strictly increasing, at least 4 points. Throws std::invalid_argument (naming `what`).
  CubicSpline(std::span<const double> x, std::span<const double> y, const std::string& what);

  double operator()(double x) const;

 private:
  std::vector<double> m_x;
  std::vector<double> m_y;
  std::vector<double> m_second;  // second derivative at each point
};

}  // namespace xps::xp
