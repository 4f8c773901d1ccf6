// Parametrised interstellar extinction curves, A(lambda)/A(V), as functions of R_V.
//
// Fitzpatrick (1999, PASP 111, 63; "F99"):
//   * UV (lambda < 270 nm, x = 1/lambda[um] > 1/0.27): the Fitzpatrick & Massa (1990, ApJS 72, 163)
//     form, F99 eq. 2 (Table 3): k(x) = E(x-V)/E(B-V) = c1 + c2 x + c3 D(x, x0, gamma) + c4 F(x),
//     D = x^2 / ((x^2 - x0^2)^2 + x^2 gamma^2), F = 0.5392 (x - c5)^2 + 0.05644 (x - c5)^3 for
//     x >= c5, with x0 = 4.596, gamma = 0.99, c3 = 3.23, c4 = 0.41, c5 = 5.9 and the
//     R_V-dependent c2 = -0.824 + 4.717 / R_V, c1 = 2.030 - 3.007 c2 (F99 section 3).
//   * Optical/IR: a natural cubic spline in x through k at anchors x = 0, 1/2.65, 1/1.22 (IR,
//     k = 0.26469 R/3.1 - R and 0.82925 R/3.1 - R), 1/0.600, 1/0.547, 1/0.467, 1/0.411 (optical,
//     polynomials in R_V) and the two UV anchors 1/0.270, 1/0.260 from the FM90 form above.
//     The optical anchors are E. Fitzpatrick's updated ones rather than F99 Table 4, as in the
//     Goddard IDL astrolib FM_UNRED and the `extinction` Python package (K. Barbary), which we
//     reproduce: A(lambda)/A(V) = 1 + k(x) / R_V.
//
// Cardelli, Clayton & Mathis (1989, ApJ 345, 245; "CCM89"): A(lambda)/A(V) = a(x) + b(x) / R_V
//   with eq. 2 (IR, 0.3 <= x < 1.1), eq. 3 (optical, 1.1 <= x < 3.3, y = x - 1.82),
//   eq. 4 (UV, 3.3 <= x < 8) and eq. 5 (far UV, 8 <= x <= 10). The IR power law is extrapolated
//   below x = 0.3 (beyond 3.33 um: the WISE bands), as the Python package also does.
//
// CCM89 is discontinuous at its branch boundaries by up to ~3e-4 in A/A(V) (x = 1.1); F99 is C2
// over the spline and continuous (C0) at 270 nm, where the spline meets the UV formula.
#include "xpstellar/extinction_curve.hpp"

#include <array>
#include <cmath>
#include <cstddef>
#include <sstream>
#include <stdexcept>

#include "xpstellar/error.hpp"

namespace xps {
namespace {

// Accepted wavelength range of both laws, in nm (0.1 to 6 microns).
constexpr double k_min_wavelength_nm = 100.0;
constexpr double k_max_wavelength_nm = 6000.0;

void check_arguments(const char* law, double wavelength_nm, double r_v) {
  if (!(wavelength_nm >= k_min_wavelength_nm && wavelength_nm <= k_max_wavelength_nm)) {
    std::ostringstream message;
    message << law << ": wavelength " << wavelength_nm << " nm is outside the valid range ["
            << k_min_wavelength_nm << ", " << k_max_wavelength_nm << "] nm";
    throw std::domain_error(message.str());
  }
  if (!(r_v > 0.0 && std::isfinite(r_v))) {
    std::ostringstream message;
    message << law << ": R_V = " << r_v << " must be positive and finite";
    throw std::domain_error(message.str());
  }
}

// ---- Fitzpatrick (1999) ----------------------------------------------------------------------

constexpr double f99_x0 = 4.596;
constexpr double f99_gamma = 0.99;
constexpr double f99_c3 = 3.23;
constexpr double f99_c4 = 0.41;
constexpr double f99_c5 = 5.9;
// Inverse microns where the spline hands over to the FM90 form (270 nm).
constexpr double f99_x_uv = 1.0 / 0.27;

constexpr std::size_t f99_n_anchors = 9;
constexpr std::array<double, f99_n_anchors> f99_x_anchors = {
    0.0,        1.0 / 2.65,  1.0 / 1.22,  1.0 / 0.600, 1.0 / 0.547,
    1.0 / 0.467, 1.0 / 0.411, 1.0 / 0.270, 1.0 / 0.260};

struct F99UvCoefficients {
  double c1;
  double c2;
};

F99UvCoefficients f99_uv_coefficients(double r_v) {
  const double c2 = -0.824 + 4.717 / r_v;  // F99 section 3
  return {2.030 - 3.007 * c2, c2};
}

// FM90 Drude profile plus the linear background: E(x-V)/E(B-V) without the far-UV curvature.
double f99_uv_k_near(double x, const F99UvCoefficients& c) {
  const double x2 = x * x;
  const double shifted = x2 - f99_x0 * f99_x0;
  const double drude = x2 / (shifted * shifted + x2 * f99_gamma * f99_gamma);
  return c.c1 + c.c2 * x + f99_c3 * drude;
}

double f99_uv_k(double x, const F99UvCoefficients& c) {
  double k = f99_uv_k_near(x, c);
  if (x >= f99_c5) {
    const double y = x - f99_c5;
    k += f99_c4 * (0.5392 * y * y + 0.05644 * y * y * y);
  }
  return k;
}

// k = E(x-V)/E(B-V) at the spline anchors for this R_V.
std::array<double, f99_n_anchors> f99_k_anchors(double r_v) {
  const double r2 = r_v * r_v;
  const F99UvCoefficients c = f99_uv_coefficients(r_v);
  return {
      -r_v,                                              // x = 0: A(lambda) -> 0
      0.26469 * r_v / 3.1 - r_v,                          // 2.65 um
      0.82925 * r_v / 3.1 - r_v,                          // 1.22 um
      -0.422809 + 1.00270 * r_v + 2.13572e-04 * r2 - r_v,  // 600 nm
      -5.13540e-02 + 1.00216 * r_v - 7.35778e-05 * r2 - r_v,
      0.700127 + 1.00184 * r_v - 3.32598e-05 * r2 - r_v,
      1.19456 + 1.01707 * r_v - 5.46959e-03 * r2 + 7.97809e-04 * r2 * r_v -
          4.45636e-05 * r2 * r2 - r_v,  // 411 nm
      f99_uv_k_near(f99_x_anchors[7], c),
      f99_uv_k_near(f99_x_anchors[8], c),
  };
}

// Natural cubic spline (zero second derivative at both end anchors) through (xs, ys), at x.
double natural_spline_eval(const std::array<double, f99_n_anchors>& xs,
                           const std::array<double, f99_n_anchors>& ys, double x) {
  constexpr std::size_t n = f99_n_anchors;
  std::array<double, n> h{};
  for (std::size_t i = 0; i + 1 < n; ++i) h[i] = xs[i + 1] - xs[i];

  // Second derivatives m[1..n-2] from the tridiagonal continuity system (Thomas algorithm).
  std::array<double, n> m{};
  std::array<double, n> diag{};
  std::array<double, n> rhs{};
  for (std::size_t i = 1; i + 1 < n; ++i) {
    diag[i] = 2.0 * (h[i - 1] + h[i]);
    rhs[i] = 6.0 * ((ys[i + 1] - ys[i]) / h[i] - (ys[i] - ys[i - 1]) / h[i - 1]);
  }
  for (std::size_t i = 2; i + 1 < n; ++i) {
    const double w = h[i - 1] / diag[i - 1];
    diag[i] -= w * h[i - 1];
    rhs[i] -= w * rhs[i - 1];
  }
  for (std::size_t i = n - 2; i >= 1; --i) m[i] = (rhs[i] - h[i] * m[i + 1]) / diag[i];

  std::size_t j = 0;  // interval [xs[j], xs[j+1]] holding x
  while (j + 2 < n && x > xs[j + 1]) ++j;
  const double a = (xs[j + 1] - x) / h[j];
  const double b = (x - xs[j]) / h[j];
  return a * ys[j] + b * ys[j + 1] +
         ((a * a * a - a) * m[j] + (b * b * b - b) * m[j + 1]) * h[j] * h[j] / 6.0;
}

// ---- Cardelli, Clayton & Mathis (1989) -------------------------------------------------------

struct CcmAB {
  double a;
  double b;
};

CcmAB ccm89_ab(double x) {
  if (x < 1.1) {  // eq. 2, extrapolated below x = 0.3
    const double p = std::pow(x, 1.61);
    return {0.574 * p, -0.527 * p};
  }
  if (x < 3.3) {  // eq. 3
    const double y = x - 1.82;
    const double a =
        ((((((0.32999 * y - 0.77530) * y + 0.01979) * y + 0.72085) * y - 0.02427) * y - 0.50447) *
             y +
         0.17699) *
            y +
        1.0;
    const double b =
        ((((((-2.09002 * y + 5.30260) * y - 0.62251) * y - 5.38434) * y + 1.07233) * y + 2.28305) *
             y +
         1.41338) *
        y;
    return {a, b};
  }
  if (x < 8.0) {  // eq. 4
    const double ya = x - 4.67;
    const double yb = x - 4.62;
    double a = 1.752 - 0.316 * x - 0.104 / (ya * ya + 0.341);
    double b = -3.090 + 1.825 * x + 1.206 / (yb * yb + 0.263);
    if (x > 5.9) {
      const double y = x - 5.9;
      a += -0.04473 * y * y - 0.009779 * y * y * y;
      b += 0.2130 * y * y + 0.1207 * y * y * y;
    }
    return {a, b};
  }
  const double y = x - 8.0;  // eq. 5
  return {-1.073 - 0.628 * y + 0.137 * y * y - 0.070 * y * y * y,
          13.670 + 4.257 * y - 0.420 * y * y + 0.374 * y * y * y};
}

}  // namespace

double extinction_fitzpatrick99(double wavelength_nm, double r_v) {
  check_arguments("extinction_fitzpatrick99", wavelength_nm, r_v);
  const double x = 1000.0 / wavelength_nm;
  double k = 0.0;
  if (x < f99_x_uv) {
    k = natural_spline_eval(f99_x_anchors, f99_k_anchors(r_v), x);
  } else {
    k = f99_uv_k(x, f99_uv_coefficients(r_v));
  }
  return 1.0 + k / r_v;
}

double extinction_ccm89(double wavelength_nm, double r_v) {
  check_arguments("extinction_ccm89", wavelength_nm, r_v);
  const CcmAB ab = ccm89_ab(1000.0 / wavelength_nm);
  return ab.a + ab.b / r_v;
}

ExtinctionLaw parse_extinction_law(const std::string& name) {
  if (name == "fitzpatrick99") return ExtinctionLaw::fitzpatrick99;
  if (name == "ccm89") return ExtinctionLaw::ccm89;
  throw UsageError("unknown extinction law '" + name +
                   "': expected one of fitzpatrick99, ccm89");
}

double extinction_a_over_av(ExtinctionLaw law, double wavelength_nm, double r_v) {
  switch (law) {
    case ExtinctionLaw::fitzpatrick99: return extinction_fitzpatrick99(wavelength_nm, r_v);
    case ExtinctionLaw::ccm89: return extinction_ccm89(wavelength_nm, r_v);
  }
  throw std::logic_error("extinction_a_over_av: invalid ExtinctionLaw value");
}

}  // namespace xps
