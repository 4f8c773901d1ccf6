// xps_prepare's library path on small inputs: units, NIR conversion, crowding, training cuts,
// skipped rows, and a star table that passes the same contract checks as a mock one.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "xpstellar/bands.hpp"
#include "xpstellar/config.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/partition.hpp"
#include "xpstellar/prepare.hpp"
#include "xpstellar/sampled_spectra.hpp"
#include "xpstellar/star_table.hpp"

namespace {

namespace fs = std::filesystem;
using namespace xps;

const std::string data_dir = std::string(XPS_TEST_DATA_DIR) + "/prepare";
constexpr std::int64_t isolated = 5853498713190525696, semi_crowded = 5762406957886626816,
                       crowded = 5405570973190252288, unknown = 4295806720;

// Three known sources plus one without a Gaia row, with a simple correlated XP covariance (W units).
std::string write_xp_file(const fs::path& directory, std::vector<double> wavelengths = {}) {
  SampledSpectra spectra;
  if (wavelengths.empty())
    for (std::size_t k = 0; k < xp_sample_count; ++k) wavelengths.push_back(392.0 + 10.0 * double(k));
  spectra.wavelength_nm = wavelengths;
  const std::size_t n = wavelengths.size();
  for (std::int64_t id : {isolated, semi_crowded, crowded, unknown}) {
    spectra.source_id.push_back(id);
    for (std::size_t i = 0; i < n; ++i) {
      spectra.flux.push_back(1e-16 * (1.0 + 0.01 * double(i)));
      spectra.flux_error.push_back(1e-18);
      for (std::size_t j = 0; j < n; ++j)
        spectra.flux_cov.push_back(i == j ? 1e-36 : (std::abs(double(i) - double(j)) == 1 ? 3e-37 : 0.0));
    }
  }
  const std::string path = (directory / "xp.h5").string();
  SampledSpectraWriter writer(path, wavelengths, "test");
  writer.append(spectra);
  writer.close();
  return path;
}

struct PreparedRun {
  fs::path directory;
  PrepareSummary summary;
  std::map<std::int64_t, StarTable> by_source;

  explicit PreparedRun(const std::string& name, bool training) {
    directory = fs::temp_directory_path() / name;
    fs::remove_all(directory);
    fs::create_directories(directory);
    ParameterSet parameters;
    declare_prepare_parameters(parameters);
    parameters.set("prepare.healpix_level", "3", "test");
    parameters.set("cuts.training", training ? "true" : "false", "test");
    const PrepareInputs inputs{write_xp_file(directory), data_dir + "/gaia.csv",
                               data_dir + "/tmass.csv", data_dir + "/unwise.csv",
                               data_dir + "/labels.csv"};
    summary = run_prepare(parameters, inputs, (directory / "tables").string(), MPI_COMM_WORLD);
    for (const auto& path : list_star_tables((directory / "tables").string())) {
      const StarTableInfo info = read_star_table_info(path);
      EXPECT_EQ(info.bands, standard_band_count);
      EXPECT_FALSE(info.has_truth);
      const StarTable table = read_star_table(path);
      for (std::size_t r = 0; r < table.rows(); ++r) {
        EXPECT_EQ(healpix_pixel_from_source_id(table.source_id[r], 3), table.healpix_pixel);
        by_source[table.source_id[r]] = table;  // a whole-table copy per star is fine for 3 stars
      }
    }
  }

  static std::size_t row_of(const StarTable& table, std::int64_t id) {
    for (std::size_t r = 0; r < table.rows(); ++r)
      if (table.source_id[r] == id) return r;
    return table.rows();
  }
  float flux(std::int64_t id, std::size_t band) const {
    const auto& t = by_source.at(id);
    return t.flux[row_of(t, id) * standard_band_count + band];
  }
  float covariance(std::int64_t id, std::size_t i, std::size_t j) const {
    const auto& t = by_source.at(id);
    return t.flux_cov[row_of(t, id) * packed_triangle_size(standard_band_count) +
                      packed_triangle_index(i, j, standard_band_count)];
  }
};

TEST(Prepare, JoinsConvertsUnitsAndDropsCrowdedBands) {
  PreparedRun run("xps_prepare_all", false);
  EXPECT_EQ(run.summary.xp_rows, 4);
  EXPECT_EQ(run.summary.written, 3);
  EXPECT_EQ(run.summary.skipped, 1);  // the source without a Gaia row
  EXPECT_EQ(run.summary.labelled, 2);
  ASSERT_EQ(run.by_source.size(), 3u);
  // XP: W m-2 nm-1 -> 1e-18 W m-2 nm-1, covariance squared.
  EXPECT_FLOAT_EQ(run.flux(isolated, 0), 100.0f);
  EXPECT_FLOAT_EQ(run.covariance(isolated, 3, 3), 1.0f);
  EXPECT_FLOAT_EQ(run.covariance(isolated, 3, 4), 0.3f);
  EXPECT_EQ(run.covariance(isolated, 3, band_j), 0.0f);
  // 2MASS J of the isolated star: magnitude 10.1 +- 0.02.
  const double j_flux = nir_magnitude_to_flux(0, 10.1);
  EXPECT_FLOAT_EQ(run.flux(isolated, band_j), static_cast<float>(j_flux));
  EXPECT_NEAR(run.covariance(isolated, band_j, band_j), std::pow(0.4 * std::log(10.0) * 0.02 * j_flux, 2), 1e-6 * j_flux * j_flux);
  // unWISE W1: 90000 +- 300 nanomaggies (Vega), linear.
  EXPECT_FLOAT_EQ(run.flux(isolated, band_w1), static_cast<float>(90000.0 * unwise_nanomaggy_flux(3)));
  // norm_dg -7.5: WISE dropped, 2MASS kept; norm_dg -2: both dropped, NaN across the covariance.
  EXPECT_TRUE(std::isnan(run.flux(semi_crowded, band_w1)));
  EXPECT_TRUE(std::isnan(run.covariance(semi_crowded, 10, band_w2)));
  EXPECT_FALSE(std::isnan(run.flux(semi_crowded, band_ks)));
  EXPECT_TRUE(std::isnan(run.flux(crowded, band_j)));
  EXPECT_TRUE(std::isnan(run.covariance(crowded, band_j, band_w2)));
  EXPECT_EQ(run.summary.unwise_bands_dropped, 4);
  EXPECT_EQ(run.summary.tmass_bands_dropped, 3);
  // Labels where given, NaN elsewhere.
  const auto& table = run.by_source.at(semi_crowded);
  EXPECT_FLOAT_EQ(table.labels.teff[PreparedRun::row_of(table, semi_crowded)], 4700.0f);
  const auto& unlabelled = run.by_source.at(crowded);
  EXPECT_TRUE(std::isnan(unlabelled.labels.teff[PreparedRun::row_of(unlabelled, crowded)]));
}

TEST(Prepare, TrainingCutsRemoveStarsAndPoorBands) {
  PreparedRun run("xps_prepare_training", true);
  // The crowded star has no labels; both others pass. Ks of semi_crowded has ph_qual B.
  EXPECT_EQ(run.summary.written, 2);
  EXPECT_EQ(run.summary.cut.at("no spectroscopic labels"), 1);
  EXPECT_TRUE(std::isnan(run.flux(semi_crowded, band_ks)));
  EXPECT_FALSE(std::isnan(run.flux(semi_crowded, band_h)));
  EXPECT_FALSE(std::isnan(run.flux(isolated, band_w2)));
}

TEST(Prepare, RejectsXpSpectraOnAnotherGrid) {
  const fs::path directory = fs::temp_directory_path() / "xps_prepare_grid";
  fs::remove_all(directory);
  fs::create_directories(directory);
  std::vector<double> grid;
  for (int k = 0; k < 61; ++k) grid.push_back(400.0 + 10.0 * k);
  const std::string xp = write_xp_file(directory, grid);
  ParameterSet parameters;
  declare_prepare_parameters(parameters);
  const PrepareInputs inputs{xp, data_dir + "/gaia.csv", "", "", ""};
  try {
    run_prepare(parameters, inputs, (directory / "tables").string(), MPI_COMM_WORLD);
    FAIL() << "no error for a wrong wavelength grid";
  } catch (const IoError& error) {
    EXPECT_NE(std::string(error.what()).find("xp.h5"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("392:992:10"), std::string::npos) << error.what();
  }
}

}  // namespace
