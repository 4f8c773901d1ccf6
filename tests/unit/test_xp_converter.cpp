// The XP converter against GaiaXPy's own outputs for the real spectra of shared/realdata
// (tolerances of the issue: 1e-6 on flux and error, 1e-5 on covariance relative to
// sqrt(C_ii C_jj)), on the reference grid and on a finer grid that contains it, plus the
// behaviour around missing bands, the two covariance modes and truncation.
#include <Eigen/Eigenvalues>
#include <fstream>
#include <regex>

#include "xp/text_fields.hpp"
#include "xp_test_support.hpp"

namespace xp = xps::xp;
using namespace xps::xp::testing;

namespace {

constexpr double flux_tolerance = 1e-6;
constexpr double covariance_tolerance = 1e-5;

// Compares `ours` on `grid` with the reference at the grid samples every `stride` from `offset`.
void expect_matches_reference(const std::string& name, const std::string& input,
                              const std::vector<double>& grid, std::size_t stride) {
  const auto reference = read_reference(name);
  const auto converted = convert_file(input, grid);
  ASSERT_EQ(converted.size(), reference.size());
  for (const auto& [source_id, ref] : reference) {
    const std::size_t m = ref.wavelength.size(), n = grid.size();
    ASSERT_TRUE(converted.count(source_id)) << source_id;
    const Converted& ours = converted.at(source_id);
    std::vector<double> flux(m), error(m), cov(m * m);
    for (std::size_t i = 0; i < m; ++i) {
      ASSERT_DOUBLE_EQ(grid[i * stride], ref.wavelength[i]);
      flux[i] = ours.flux[i * stride];
      error[i] = ours.flux_error[i * stride];
      for (std::size_t j = 0; j < m; ++j) cov[i * m + j] = ours.cov[i * stride * n + j * stride];
    }
    const double flux_error = max_relative_difference(flux, ref.flux, absolute(ref.flux));
    const double error_error = max_relative_difference(error, ref.flux_error, ref.flux_error);
    const double cov_error = max_relative_difference(cov, ref.cov, covariance_scale(ref.cov, m));
    EXPECT_LE(flux_error, flux_tolerance) << name << " " << source_id;
    EXPECT_LE(error_error, flux_tolerance) << name << " " << source_id;
    EXPECT_LE(cov_error, covariance_tolerance) << name << " " << source_id;
    std::printf("  %s %lld: max relative error flux %.2e, flux_error %.2e, flux_cov %.2e\n",
                name.c_str(), static_cast<long long>(source_id), flux_error, error_error,
                cov_error);
  }
}

std::vector<double> grid(double start, double stop, double step) {
  return xp::parse_sampling(std::to_string(start) + ":" + std::to_string(stop) + ":" +
                            std::to_string(step));
}

}  // namespace

TEST(XpConverter, ReproducesGaiaXPyOnTheReferenceGrid) {
  XPS_REQUIRE_REALDATA();
  expect_matches_reference("raw", raw_input, grid(392, 992, 10), 1);
  expect_matches_reference("missingbp", missing_bp_input, grid(392, 992, 10), 1);
}

TEST(XpConverter, FinerGridReproducesTheReferenceAtItsWavelengths) {
  XPS_REQUIRE_REALDATA();
  expect_matches_reference("raw", raw_input, grid(392, 992, 5), 2);
  expect_matches_reference("missingbp", missing_bp_input, grid(392, 992, 2.5), 4);
}

TEST(XpConverter, ShiftedGridAgreesWithSingleWavelengthConversions) {
  // Each sample (and each covariance element) depends only on its own wavelengths.
  XPS_REQUIRE_REALDATA();
  const std::vector<double> full = grid(330, 1050, 9.7);
  const auto converted = convert_file(missing_bp_input, full);
  for (std::size_t i = 0; i < full.size(); i += 7) {
    for (std::size_t j = i; j < full.size(); j += 11) {
      const std::vector<double> pair =
          i == j ? std::vector<double>{full[i]} : std::vector<double>{full[i], full[j]};
      const auto small = convert_file(missing_bp_input, pair);
      for (const auto& [source_id, c] : converted) {
        const Converted& s = small.at(source_id);
        const std::size_t n = full.size(), k = pair.size();
        const double expected[] = {c.flux[i], c.flux_error[i], c.cov[i * n + j]};
        const double actual[] = {s.flux[0], s.flux_error[0], s.cov[k - 1]};
        for (int q = 0; q < 3; ++q) {
          if (std::isnan(expected[q])) {
            EXPECT_TRUE(std::isnan(actual[q]));
          } else {
            EXPECT_NEAR(actual[q], expected[q], 1e-12 * std::abs(expected[q]) + 1e-300)
                << source_id << " " << i << "," << j;
          }
        }
      }
    }
  }
}

TEST(XpConverter, MissingBpIsNanAtAndBelow635nm) {
  XPS_REQUIRE_REALDATA();
  const std::vector<double> wavelengths = grid(330, 1050, 1);
  const auto converted = convert_file(missing_bp_input, wavelengths);
  const Converted& rp_only = converted.at(5405570973190252288);
  const std::size_t m = wavelengths.size();
  for (std::size_t i = 0; i < m; ++i) {
    const bool covered = wavelengths[i] > 635.0;
    EXPECT_EQ(std::isnan(rp_only.flux[i]), !covered) << wavelengths[i];
    EXPECT_EQ(std::isnan(rp_only.flux_error[i]), !covered) << wavelengths[i];
    for (std::size_t j = 0; j < m; ++j)
      EXPECT_EQ(std::isnan(rp_only.cov[i * m + j]), !covered || wavelengths[j] <= 635.0);
  }
  for (const auto& [source_id, c] : converted) {
    if (source_id == 5405570973190252288) continue;
    for (double f : c.flux) EXPECT_TRUE(std::isfinite(f)) << source_id;
  }
}

TEST(XpConverter, BpOnlyIsNanAtAndAbove643nm) {
  XPS_REQUIRE_REALDATA();
  const std::vector<double> wavelengths = grid(330, 1050, 1);
  const xp::DesignMatrices design(xp::builtin_calibration(), wavelengths);
  xp::XpCsvReader reader(raw_input, 55);
  xp::XpRow row;
  ASSERT_TRUE(reader.next(row));
  row.source.band[xp::band_index(xp::Band::rp)] = xp::BandCoefficients{};
  ASSERT_EQ(xp::check_source(row.source, design, {}), "");
  const std::size_t m = wavelengths.size();
  std::vector<double> flux(m), error(m), cov(m * m);
  xp::SourceConverter(design, {}).convert(row.source, flux, error, cov);
  for (std::size_t i = 0; i < m; ++i)
    EXPECT_EQ(std::isnan(flux[i]), wavelengths[i] >= 643.0) << wavelengths[i];
}

TEST(XpConverter, PropagatedCovarianceDiffersOnlyInTheOverlap) {
  XPS_REQUIRE_REALDATA();
  const std::vector<double> wavelengths = grid(600, 700, 1);
  const std::size_t m = wavelengths.size();
  xp::ConversionOptions propagated;
  propagated.covariance = xp::CovarianceMode::propagated;
  const auto gaiaxpy = convert_file(raw_input, wavelengths);
  const auto proper = convert_file(raw_input, wavelengths, propagated);
  for (const auto& [source_id, g] : gaiaxpy) {
    const Converted& p = proper.at(source_id);
    EXPECT_EQ(g.flux, p.flux);
    EXPECT_EQ(g.flux_error, p.flux_error);
    double overlap_difference = 0.0;
    Eigen::MatrixXd matrix(m, m);
    for (std::size_t i = 0; i < m; ++i) {
      EXPECT_NEAR(p.cov[i * m + i], p.flux_error[i] * p.flux_error[i], 1e-12 * p.cov[i * m + i]);
      EXPECT_NEAR(g.cov[i * m + i], g.flux_error[i] * g.flux_error[i], 1e-12 * g.cov[i * m + i]);
      for (std::size_t j = 0; j < m; ++j) {
        EXPECT_EQ(p.cov[i * m + j], p.cov[j * m + i]);
        EXPECT_EQ(g.cov[i * m + j], g.cov[j * m + i]);
        matrix(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = p.cov[i * m + j];
        const double scale = std::sqrt(p.cov[i * m + i] * p.cov[j * m + j]);
        const double difference = std::abs(p.cov[i * m + j] - g.cov[i * m + j]) / scale;
        const auto in_overlap = [](double w) { return w > 635.0 && w < 643.0; };
        if (!in_overlap(wavelengths[i]) && !in_overlap(wavelengths[j])) {
          EXPECT_LE(difference, 1e-12) << wavelengths[i] << "," << wavelengths[j];
        } else {
          overlap_difference = std::max(overlap_difference, difference);
        }
      }
    }
    // README of shared/realdata: up to 0.33 of sqrt(C_ii C_jj) at 636-642 nm.
    EXPECT_GT(overlap_difference, 0.01) << source_id;
    EXPECT_LT(overlap_difference, 0.5) << source_id;
    // A propagated covariance is positive semi-definite.
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(matrix);
    EXPECT_GT(eigen.eigenvalues().minCoeff(), -1e-10 * eigen.eigenvalues().maxCoeff()) << source_id;
  }
}

TEST(XpConverter, TruncationUsesTheRelevantBases) {
  XPS_REQUIRE_REALDATA();
  const std::vector<double> wavelengths = grid(392, 992, 10);
  xp::ConversionOptions truncated;
  truncated.truncate = true;
  const auto full = convert_file(raw_input, wavelengths);
  const auto cut = convert_file(raw_input, wavelengths, truncated);
  for (const auto& [source_id, f] : full) {
    const double difference =
        max_relative_difference(cut.at(source_id).flux, f.flux, absolute(f.flux));
    // README of shared/realdata: with truncation the flux differs by up to 2 % (here up to 7 %
    // relative to the flux at the faint blue end of the grid).
    EXPECT_GT(difference, 1e-6) << source_id;
    EXPECT_LT(difference, 0.1) << source_id;
  }
}

TEST(XpConverter, EcsvInputGivesTheSameSpectra) {
  XPS_REQUIRE_REALDATA();
  // The Archive's ECSV form of the same table: YAML header, arrays in brackets, 'nan' scalars.
  std::ifstream in(missing_bp_input);
  const fs::path ecsv =
      fs::temp_directory_path() / ("xps_xp_ecsv_" + std::to_string(getpid()) + ".ecsv");
  std::ofstream out(ecsv);
  out << "# %ECSV 1.0\n# ---\n# delimiter: ','\n# datatype:\n# - {name: source_id, datatype: "
         "int64}\n";
  std::string line;
  std::getline(in, line);
  out << line << '\n';
  const std::vector<std::string> names = split_commas(line);
  while (std::getline(in, line)) {
    xp::text::FieldScanner scanner(line);
    std::string_view field;
    const char* error = nullptr;
    for (std::size_t column = 0; scanner.next(field, error); ++column) {
      std::string text(field);
      if (text.starts_with("(")) {
        text = std::regex_replace(text, std::regex(", "), ",");
        text = "\"[" + text.substr(1, text.size() - 2) + "]\"";
      } else if (text.empty() && (names[column].ends_with("standard_deviation") ||
                                  names[column].ends_with("chi_squared") ||
                                  names[column].ends_with("relative_shrinking"))) {
        text = "nan";
      }
      out << (column ? "," : "") << text;
    }
    out << '\n';
  }
  out.close();
  const std::vector<double> wavelengths = grid(392, 992, 10);
  const auto from_csv = convert_file(missing_bp_input, wavelengths);
  const auto from_ecsv = convert_file(ecsv.string(), wavelengths);
  fs::remove(ecsv);
  ASSERT_EQ(from_csv.size(), from_ecsv.size());
  for (const auto& [source_id, c] : from_csv) {
    const Converted& e = from_ecsv.at(source_id);
    for (std::size_t i = 0; i < c.flux.size(); ++i) {
      EXPECT_TRUE(c.flux[i] == e.flux[i] || (std::isnan(c.flux[i]) && std::isnan(e.flux[i])));
    }
  }
}
