// Shared by the test_xp_*.cpp unit tests: the real Gaia data of shared/realdata, GaiaXPy's
// reference outputs, a scratch directory, and a file converted through the library in memory.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "xpstellar/xp_converter.hpp"
#include "xpstellar/xp_csv.hpp"

namespace xps::xp::testing {

namespace fs = std::filesystem;

inline const fs::path realdata_dir{XPS_REALDATA_DIR};
inline const fs::path gaiaxpy_dir = realdata_dir / "gaiaxpy";
inline const fs::path raw_input = gaiaxpy_dir / "input" / "XP_CONTINUOUS_RAW.csv";
inline const fs::path missing_bp_input =
    gaiaxpy_dir / "input" / "XP_CONTINUOUS_RAW_with_missing_BP.csv";

#define XPS_REQUIRE_REALDATA()                                                \
  do {                                                                        \
    if (!std::filesystem::exists(::xps::xp::testing::raw_input))              \
      GTEST_SKIP() << "no real data at " << ::xps::xp::testing::realdata_dir; \
  } while (0)

// A scratch directory per test (ctest runs tests as parallel processes).
class ScratchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    m_dir = fs::temp_directory_path() / ("xps_" + std::string(info->test_suite_name()) + "_" +
                                         info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(m_dir);
    fs::create_directories(m_dir);
  }
  void TearDown() override { fs::remove_all(m_dir); }
  std::string path(const std::string& name) const { return (m_dir / name).string(); }
  fs::path m_dir;
};

inline std::vector<std::string> split_commas(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream stream(line);
  for (std::string field; std::getline(stream, field, ',');) fields.push_back(field);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

inline double number_or_nan(const std::string& text) {
  return text.empty() ? std::nan("") : std::stod(text);
}

// GaiaXPy's output for one source: wavelengths, flux, error, full covariance (NaN where empty).
struct ReferenceSpectrum {
  std::vector<double> wavelength, flux, flux_error, cov;
};

inline std::map<std::int64_t, ReferenceSpectrum> read_reference(const std::string& name) {
  std::map<std::int64_t, ReferenceSpectrum> spectra;
  const fs::path reference = gaiaxpy_dir / "reference";
  std::ifstream fluxes(reference / (name + "_392_992_10.csv"));
  std::string line;
  std::getline(fluxes, line);
  while (std::getline(fluxes, line)) {
    const auto f = split_commas(line);
    ReferenceSpectrum& s = spectra[std::stoll(f[0])];
    s.wavelength.push_back(std::stod(f[1]));
    s.flux.push_back(number_or_nan(f[2]));
    s.flux_error.push_back(number_or_nan(f[3]));
  }
  for (auto& [id, s] : spectra)
    s.cov.assign(s.wavelength.size() * s.wavelength.size(), std::nan(""));
  std::ifstream covariances(reference / (name + "_392_992_10_cov.csv"));
  std::getline(covariances, line);
  while (std::getline(covariances, line)) {
    const auto f = split_commas(line);
    ReferenceSpectrum& s = spectra.at(std::stoll(f[0]));
    const std::size_t m = s.wavelength.size(), i = std::stoul(f[1]), j = std::stoul(f[2]);
    s.cov[i * m + j] = s.cov[j * m + i] = number_or_nan(f[3]);
  }
  return spectra;
}

// Every row of a file converted on `grid` through the library (no HDF5).
struct Converted {
  std::vector<double> flux, flux_error, cov;
};

inline std::map<std::int64_t, Converted> convert_file(const std::string& input,
                                                      const std::vector<double>& grid,
                                                      const ConversionOptions& options = {}) {
  const DesignMatrices design(builtin_calibration(), grid);
  XpCsvReader reader(input, design.n_bases(Band::bp));
  SourceConverter converter(design, options);
  std::map<std::int64_t, Converted> result;
  XpRow row;
  const std::size_t m = grid.size();
  while (reader.next(row)) {
    EXPECT_EQ(row.problem, "") << row.where();
    EXPECT_EQ(check_source(row.source, design, options), "") << row.where();
    Converted& c = result[row.source.source_id];
    c.flux.resize(m);
    c.flux_error.resize(m);
    c.cov.resize(m * m);
    converter.convert(row.source, c.flux, c.flux_error, c.cov);
  }
  return result;
}

// Largest |a - b| / scale over the entries where both are numbers; NaN patterns must agree.
inline double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b,
                                      const std::vector<double>& scale) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) {
      if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
      continue;
    }
    worst = std::max(worst, std::abs(a[i] - b[i]) / scale[i]);
  }
  return worst;
}

// sqrt(C_ii C_jj) for every element of an M x M covariance.
inline std::vector<double> covariance_scale(const std::vector<double>& cov, std::size_t m) {
  std::vector<double> scale(m * m);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < m; ++j)
      scale[i * m + j] = std::sqrt(cov[i * m + i] * cov[j * m + j]);
  return scale;
}

inline std::vector<double> absolute(std::vector<double> values) {
  for (double& v : values) v = std::abs(v);
  return values;
}

}  // namespace xps::xp::testing
