// The XP converter's numerical building blocks against independent evaluations: Hermite functions
// (closed forms, orthonormality), the not-a-knot spline (exact on cubics; scipy's splrep/splev
// values), and the number parser (bit-identical to std::from_chars).
#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <vector>

#include "xp/cubic_spline.hpp"
#include "xp/hermite.hpp"
#include "xp/text_fields.hpp"

namespace xp = xps::xp;

namespace {

// psi_n(x) = H_n(x) exp(-x^2/2) / sqrt(2^n n! sqrt(pi)), H_n the physicists' polynomials.
double closed_form_psi(int n, double x) {
  const double h[] = {1.0,
                      2.0 * x,
                      4.0 * x * x - 2.0,
                      8.0 * std::pow(x, 3) - 12.0 * x,
                      16.0 * std::pow(x, 4) - 48.0 * x * x + 12.0,
                      32.0 * std::pow(x, 5) - 160.0 * std::pow(x, 3) + 120.0 * x};
  const double norm =
      std::sqrt(std::pow(2.0, n) * std::tgamma(n + 1.0) * std::sqrt(std::numbers::pi));
  return h[n] * std::exp(-x * x / 2.0) / norm;
}

}  // namespace

TEST(XpHermite, MatchesClosedFormsForLowOrders) {
  std::vector<double> psi(6);
  for (double x : {-9.5, -3.0, -0.7, 0.0, 0.25, 1.0, 2.5, 6.0, 9.4}) {
    xp::hermite_functions(x, psi);
    for (int n = 0; n < 6; ++n) {
      const double expected = closed_form_psi(n, x);
      EXPECT_NEAR(psi[static_cast<std::size_t>(n)], expected,
                  1e-13 * std::max(1.0, std::abs(expected)) + 1e-300)
          << "n=" << n << " x=" << x;
    }
  }
}

TEST(XpHermite, EvenOrdersAtZeroMatchClosedForm) {
  // psi_2m(0) = (-1)^m pi^-1/4 sqrt((2m)!) / (2^m m!)
  std::vector<double> psi(55);
  xp::hermite_functions(0.0, psi);
  for (int m = 0; 2 * m < 55; ++m) {
    const double log_value = -0.25 * std::log(std::numbers::pi) + 0.5 * std::lgamma(2.0 * m + 1.0) -
                             m * std::log(2.0) - std::lgamma(m + 1.0);
    const double expected = (m % 2 ? -1.0 : 1.0) * std::exp(log_value);
    EXPECT_NEAR(psi[static_cast<std::size_t>(2 * m)], expected, 1e-12 * std::abs(expected))
        << 2 * m;
    if (2 * m + 1 < 55) {
      EXPECT_EQ(psi[static_cast<std::size_t>(2 * m + 1)], 0.0);
    }
  }
}

TEST(XpHermite, AreOrthonormalUpToOrder54) {
  // The trapezoid rule is spectrally accurate for these rapidly decaying functions.
  constexpr int count = 55;
  constexpr double step = 0.01;
  std::vector<double> gram(count * count, 0.0), psi(count);
  for (double x = -16.0; x <= 16.0; x += step) {
    xp::hermite_functions(x, psi);
    for (int i = 0; i < count; ++i)
      for (int j = 0; j <= i; ++j) gram[i * count + j] += step * psi[i] * psi[j];
  }
  for (int i = 0; i < count; ++i)
    for (int j = 0; j <= i; ++j)
      EXPECT_NEAR(gram[i * count + j], i == j ? 1.0 : 0.0, 1e-10) << i << "," << j;
}

TEST(XpCubicSpline, ReproducesCubicsExactlyIncludingExtrapolation) {
  const std::vector<double> x{-2.0, -1.3, 0.1, 0.15, 1.7, 3.0, 4.4, 8.0};
  auto cubic = [](double t) { return 0.3 * t * t * t - 1.1 * t * t + 2.0 * t - 5.0; };
  std::vector<double> y;
  for (double t : x) y.push_back(cubic(t));
  const xp::CubicSpline spline(x, y, "test");
  for (double t = -3.0; t <= 9.0; t += 0.173)
    EXPECT_NEAR(spline(t), cubic(t), 1e-11 * (1 + std::abs(cubic(t)))) << t;
}

TEST(XpCubicSpline, MatchesScipySplrepS0) {
  // scipy 1.10: splev(q, splrep(x, sin(x) + x^2/10, s=0)) for these x and q.
  const std::vector<double> x{0.0, 0.7, 1.1, 2.0, 2.4, 3.9, 4.0, 5.5, 7.0};
  std::vector<double> y;
  for (double t : x) y.push_back(std::sin(t) + t * t / 10.0);
  const xp::CubicSpline spline(x, y, "test");
  const double scipy[][2] = {{-0.5, -0.4729200661760167}, {0.0, -4.3318038313848256e-18},
                             {0.35, 0.3558894415849897},  {1.5, 1.2197345676784135},
                             {2.2, 1.2928574686605865},   {3.95, 0.8368646796180944},
                             {5.0, 1.578261792004341},    {6.9, 5.30804281687942},
                             {7.0, 5.556986598718789},    {7.8, 7.630355668087745}};
  for (const auto& [q, expected] : scipy)
    EXPECT_NEAR(spline(q), expected, 1e-13 + 1e-13 * std::abs(expected)) << q;
}

TEST(XpCubicSpline, RejectsTooFewOrUnsortedPoints) {
  const std::vector<double> three{1.0, 2.0, 3.0};
  EXPECT_THROW(xp::CubicSpline(three, three, "t"), std::invalid_argument);
  const std::vector<double> unsorted{1.0, 3.0, 2.0, 4.0};
  EXPECT_THROW(xp::CubicSpline(unsorted, unsorted, "t"), std::invalid_argument);
}

TEST(XpText, FastDecimalPathIsBitIdenticalToFromChars) {
  std::mt19937_64 random(7);
  const char* formats[] = {"%.17g", "%.9g", "%.7f", "%.3e", "%.12g", "%.1f", "%.20f", "%g"};
  char text[80];
  int fast = 0;
  for (int i = 0; i < 200000; ++i) {
    const double value = std::ldexp(static_cast<double>(random() >> 11), -53) *
                         std::pow(10.0, static_cast<int>(random() % 30) - 15) *
                         ((random() & 1) ? -1 : 1);
    const int length = std::snprintf(text, sizeof text, formats[i % 8], value);
    std::string padded = std::string(text) + ", 1.0)";  // fast path reads 8 bytes ahead
    double ours = 0.0, theirs = 0.0;
    const char* end =
        xp::text::parse_decimal_fast(padded.data(), padded.data() + padded.size(), ours);
    const auto parsed = std::from_chars(padded.data(), padded.data() + padded.size(), theirs);
    if (!end) continue;
    ++fast;
    ASSERT_EQ(end, padded.data() + length) << text;
    ASSERT_EQ(parsed.ptr, end) << text;
    ASSERT_EQ(std::memcmp(&ours, &theirs, sizeof ours), 0) << text;
  }
  EXPECT_GT(fast, 100000);
}

TEST(XpText, ParsesArchiveArraysAndReportsMalformedOnes) {
  std::vector<double> out(4);
  auto parsed = xp::text::parse_number_array("(1.5, -2e-3, nan, 4)", out);
  ASSERT_EQ(parsed.error, nullptr);
  EXPECT_EQ(parsed.count, 4u);
  EXPECT_EQ(out[0], 1.5);
  EXPECT_EQ(out[1], -2e-3);
  EXPECT_TRUE(std::isnan(out[2]));
  parsed = xp::text::parse_number_array("[1,2,3,4,5,6]", out);
  EXPECT_EQ(parsed.error, nullptr);
  EXPECT_EQ(parsed.count, 6u);  // counted beyond the buffer
  EXPECT_STREQ(xp::text::parse_number_array("(1, 2, 3", out).error,
               "array not closed (truncated?)");
  EXPECT_NE(xp::text::parse_number_array("(1, x, 3)", out).error, nullptr);
  EXPECT_NE(xp::text::parse_number_array("(1, 2,)", out).error, nullptr);
  EXPECT_NE(xp::text::parse_number_array("1, 2", out).error, nullptr);
  EXPECT_EQ(xp::text::parse_number_array("()", out).count, 0u);
}

TEST(XpText, FieldScannerHandlesQuotes) {
  xp::text::FieldScanner scanner(R"csv(1,"(1, 2)",,x,"a""b")csv");
  std::string_view field;
  const char* error = nullptr;
  std::vector<std::string> fields;
  while (scanner.next(field, error)) fields.emplace_back(field);
  EXPECT_EQ(error, nullptr);
  EXPECT_EQ(fields, (std::vector<std::string>{"1", "(1, 2)", "", "x", "a\"\"b"}));
  xp::text::FieldScanner broken(R"csv(1,"(1, 2)csv");
  fields.clear();
  while (broken.next(field, error)) fields.emplace_back(field);
  EXPECT_NE(error, nullptr);
  EXPECT_EQ(fields.size(), 1u);
}
