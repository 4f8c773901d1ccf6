// Star-table I/O (src/io/star_table.cpp): round trips, slices, the contract checks, determinism.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/h5.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/star_table.hpp"

namespace {

namespace fs = std::filesystem;
constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();

// A scratch directory per test (ctest runs tests as parallel processes).
class StarTableTest : public ::testing::Test {
protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    m_dir = fs::temp_directory_path() /
            ("xps_star_table_" + std::string(info->name()) + "_" + std::to_string(getpid()));
    fs::remove_all(m_dir);
    fs::create_directories(m_dir);
  }
  void TearDown() override { fs::remove_all(m_dir); }
  std::string path(const std::string& name) const { return (m_dir / name).string(); }

  fs::path m_dir;
};

float value(std::size_t row, std::size_t column, float scale) {
  return scale * static_cast<float>(row) + 0.001f * static_cast<float>(column) + 0.5f;
}

// A table with every array filled with distinct values, some NaN, optionally with truth.
xps::StarTable make_table(std::size_t rows, std::size_t bands, bool truth) {
  xps::StarTable table;
  table.healpix_level = 1;
  table.healpix_pixel = 5;
  table.has_truth = truth;
  table.provenance_config = "[mock]\nstars = 10\n";
  table.provenance_generator = "xps unit test";
  for (std::size_t b = 0; b < bands; ++b) {
    table.wavelength_nm.push_back(392.0 + 10.0 * static_cast<double>(b));
    table.band_names.push_back(b + 1 == bands ? "W2" : "xp_" + std::to_string(b));
  }
  table.resize(rows);
  for (std::size_t i = 0; i < rows; ++i) {
    table.source_id[i] = (std::int64_t{170359234} << 35) + static_cast<std::int64_t>(i);
    table.ra[i] = 217.39 + 1e-9 * static_cast<double>(i);
    table.dec[i] = -62.67 - 1e-9 * static_cast<double>(i);
    for (std::size_t b = 0; b < bands; ++b) table.flux[i * bands + b] = value(i, b, 1.5f);
    const std::size_t packed = xps::packed_triangle_size(bands);
    for (std::size_t k = 0; k < packed; ++k) table.flux_cov[i * packed + k] = value(i, k, 0.25f);
    table.parallax[i] = value(i, 0, 0.1f);
    table.parallax_error[i] = value(i, 1, 0.01f);
    table.phot_g_mean_mag[i] = value(i, 2, 0.2f);
    table.bp_rp[i] = value(i, 3, 0.05f);
    table.ruwe[i] = value(i, 4, 0.01f);
    table.fidelity_v2[i] = value(i, 5, 0.001f);
    table.norm_dg[i] = value(i, 6, -0.1f);
    table.phot_bp_rp_excess_factor[i] = value(i, 7, 0.002f);
    if (i % 3 != 0) {  // every third star has no spectrum: labels stay NaN
      table.labels.teff[i] = value(i, 8, 10.0f) + 4000.0f;
      table.labels.logg[i] = value(i, 9, 0.01f);
      table.labels.feh[i] = value(i, 10, -0.01f);
      table.labels.teff_err[i] = 50.0f;
      table.labels.logg_err[i] = 0.1f;
      table.labels.feh_err[i] = 0.05f;
    }
    table.labels.E_prior[i] = value(i, 11, 0.01f);
    table.labels.E_prior_err[i] = i % 2 == 0 ? nan_f : 0.02f;
    if (!truth) continue;
    table.truth.teff[i] = value(i, 12, 7.0f) + 4000.0f;
    table.truth.logg[i] = value(i, 13, 0.01f);
    table.truth.feh[i] = value(i, 14, -0.02f);
    table.truth.E[i] = value(i, 15, 0.003f);
    table.truth.parallax[i] = value(i, 16, 0.1f);
    table.truth.is_binary[i] = static_cast<std::uint8_t>(i % 2);
    table.truth.mass_ratio[i] = i % 2 == 1 ? 0.5f : 0.0f;
    table.truth.xi[i] = value(i, 17, 0.001f);
    table.truth.pathology[i] = static_cast<std::uint8_t>(i % 4);
    table.truth.r_v[i] = 3.1f;
    table.truth.distance_pc[i] = 1000.0f / table.truth.parallax[i];
    for (std::size_t b = 0; b < bands; ++b) table.truth.flux[i * bands + b] = value(i, b, 1.25f);
  }
  if (truth) {
    for (std::size_t b = 0; b < bands; ++b)
      table.truth.extinction_R[b] = 2.0 - 0.01 * static_cast<double>(b);
  }
  if (rows > 2 && bands > 1) {  // a missing band: NaN flux and NaN in its covariance row
    table.flux[2 * bands + 1] = nan_f;
    table.flux_cov[2 * xps::packed_triangle_size(bands) + xps::packed_triangle_index(1, 1, bands)] =
        nan_f;
  }
  table.check_consistent();
  return table;
}

// Bitwise comparison, so NaNs (and their payloads) count as equal.
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

template <class T>
std::vector<T> rows_of(const std::vector<T>& all, std::size_t first, std::size_t count,
                       std::size_t per_row) {
  return {all.begin() + static_cast<std::ptrdiff_t>(first * per_row),
          all.begin() + static_cast<std::ptrdiff_t>((first + count) * per_row)};
}

void expect_same_rows(const xps::StarTable& expected, std::size_t first, std::size_t count,
                      const xps::StarTable& actual) {
  const std::size_t m = expected.bands();
  const std::size_t packed = xps::packed_triangle_size(m);
  EXPECT_EQ(actual.healpix_level, expected.healpix_level);
  EXPECT_EQ(actual.healpix_pixel, expected.healpix_pixel);
  EXPECT_TRUE(same_bits(actual.wavelength_nm, expected.wavelength_nm));
  EXPECT_EQ(actual.band_names, expected.band_names);
  EXPECT_EQ(actual.provenance_config, expected.provenance_config);
  EXPECT_EQ(actual.provenance_generator, expected.provenance_generator);
  EXPECT_EQ(actual.has_truth, expected.has_truth);
  ASSERT_EQ(actual.rows(), count);
  EXPECT_TRUE(same_bits(actual.source_id, rows_of(expected.source_id, first, count, 1)));
  EXPECT_TRUE(same_bits(actual.ra, rows_of(expected.ra, first, count, 1)));
  EXPECT_TRUE(same_bits(actual.dec, rows_of(expected.dec, first, count, 1)));
  EXPECT_TRUE(same_bits(actual.flux, rows_of(expected.flux, first, count, m)));
  EXPECT_TRUE(same_bits(actual.flux_cov, rows_of(expected.flux_cov, first, count, packed)));
  EXPECT_TRUE(same_bits(actual.parallax, rows_of(expected.parallax, first, count, 1)));
  EXPECT_TRUE(same_bits(actual.norm_dg, rows_of(expected.norm_dg, first, count, 1)));
  EXPECT_TRUE(same_bits(actual.phot_bp_rp_excess_factor,
                        rows_of(expected.phot_bp_rp_excess_factor, first, count, 1)));
  EXPECT_TRUE(same_bits(actual.labels.teff, rows_of(expected.labels.teff, first, count, 1)));
  EXPECT_TRUE(
      same_bits(actual.labels.E_prior_err, rows_of(expected.labels.E_prior_err, first, count, 1)));
  if (!expected.has_truth) return;
  EXPECT_TRUE(same_bits(actual.truth.teff, rows_of(expected.truth.teff, first, count, 1)));
  EXPECT_TRUE(
      same_bits(actual.truth.is_binary, rows_of(expected.truth.is_binary, first, count, 1)));
  EXPECT_TRUE(
      same_bits(actual.truth.pathology, rows_of(expected.truth.pathology, first, count, 1)));
  EXPECT_TRUE(
      same_bits(actual.truth.distance_pc, rows_of(expected.truth.distance_pc, first, count, 1)));
  EXPECT_TRUE(same_bits(actual.truth.flux, rows_of(expected.truth.flux, first, count, m)));
  EXPECT_TRUE(same_bits(actual.truth.extinction_R, expected.truth.extinction_R));
}

// Every array, not just a sample: compare whole tables field by field through rows 0..N.
void expect_identical(const xps::StarTable& expected, const xps::StarTable& actual) {
  expect_same_rows(expected, 0, expected.rows(), actual);
  EXPECT_TRUE(same_bits(actual.parallax_error, expected.parallax_error));
  EXPECT_TRUE(same_bits(actual.phot_g_mean_mag, expected.phot_g_mean_mag));
  EXPECT_TRUE(same_bits(actual.bp_rp, expected.bp_rp));
  EXPECT_TRUE(same_bits(actual.ruwe, expected.ruwe));
  EXPECT_TRUE(same_bits(actual.fidelity_v2, expected.fidelity_v2));
  EXPECT_TRUE(same_bits(actual.labels.logg, expected.labels.logg));
  EXPECT_TRUE(same_bits(actual.labels.feh, expected.labels.feh));
  EXPECT_TRUE(same_bits(actual.labels.teff_err, expected.labels.teff_err));
  EXPECT_TRUE(same_bits(actual.labels.logg_err, expected.labels.logg_err));
  EXPECT_TRUE(same_bits(actual.labels.feh_err, expected.labels.feh_err));
  EXPECT_TRUE(same_bits(actual.labels.E_prior, expected.labels.E_prior));
  if (!expected.has_truth) return;
  EXPECT_TRUE(same_bits(actual.truth.logg, expected.truth.logg));
  EXPECT_TRUE(same_bits(actual.truth.feh, expected.truth.feh));
  EXPECT_TRUE(same_bits(actual.truth.E, expected.truth.E));
  EXPECT_TRUE(same_bits(actual.truth.parallax, expected.truth.parallax));
  EXPECT_TRUE(same_bits(actual.truth.mass_ratio, expected.truth.mass_ratio));
  EXPECT_TRUE(same_bits(actual.truth.xi, expected.truth.xi));
  EXPECT_TRUE(same_bits(actual.truth.r_v, expected.truth.r_v));
}

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs `action`, expecting an IoError whose message contains every one of `parts`.
template <class Action>
void expect_io_error(Action&& action, const std::vector<std::string>& parts) {
  try {
    action();
    ADD_FAILURE() << "no IoError thrown";
  } catch (const xps::IoError& error) {
    const std::string message = error.what();
    for (const std::string& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
    }
  }
}

TEST_F(StarTableTest, RoundTripIsBitwiseWithTruthAndNaNs) {
  const xps::StarTable table = make_table(37, 66, true);
  const std::string file = path("stars_1_5.h5");
  xps::write_star_table(file, table, MPI_COMM_SELF);
  EXPECT_FALSE(fs::exists(file + ".tmp"));
  expect_identical(table, xps::read_star_table(file));
}

TEST_F(StarTableTest, RoundTripWithoutTruth) {
  const xps::StarTable table = make_table(10, 66, false);
  const std::string file = path("stars_1_5.h5");
  xps::write_star_table(file, table, MPI_COMM_SELF);
  const xps::StarTable read = xps::read_star_table(file);
  EXPECT_FALSE(read.has_truth);
  EXPECT_TRUE(read.truth.teff.empty());
  expect_identical(table, read);
}

TEST_F(StarTableTest, InfoReadsMetadataOnly) {
  const std::string file = path("stars_1_5.h5");
  xps::write_star_table(file, make_table(12, 66, true), MPI_COMM_SELF);
  const xps::StarTableInfo info = xps::read_star_table_info(file);
  EXPECT_EQ(info.rows, 12u);
  EXPECT_EQ(info.bands, 66u);
  EXPECT_EQ(info.schema_version, xps::star_table_schema_version);
  EXPECT_EQ(info.healpix_level, 1);
  EXPECT_EQ(info.healpix_pixel, 5);
  EXPECT_TRUE(info.has_truth);
}

TEST_F(StarTableTest, SliceReadReturnsTheRequestedRows) {
  // More rows than one chunk (1024), so slices cross chunk boundaries.
  const xps::StarTable table = make_table(2500, 5, true);
  const std::string file = path("stars_1_5.h5");
  xps::write_star_table(file, table, MPI_COMM_SELF);
  for (const auto& [first, count] : std::vector<std::pair<std::size_t, std::size_t>>{
           {0, 3}, {1020, 10}, {2499, 1}, {700, 0}, {2500, 0}, {0, 2500}}) {
    SCOPED_TRACE("rows " + std::to_string(first) + "+" + std::to_string(count));
    expect_same_rows(table, first, count, xps::read_star_table(file, MPI_COMM_SELF, first, count));
  }
  expect_io_error([&] { xps::read_star_table(file, MPI_COMM_SELF, 2400, 101); },
                  {file, "rows [2400,2501) requested, the file has 2500"});
}

TEST_F(StarTableTest, EmptyTableRoundTrips) {
  const xps::StarTable table = make_table(0, 66, true);
  const std::string file = path("stars_1_5.h5");
  xps::write_star_table(file, table, MPI_COMM_SELF);
  EXPECT_EQ(xps::read_star_table_info(file).rows, 0u);
  const xps::StarTable read = xps::read_star_table(file);
  EXPECT_EQ(read.rows(), 0u);
  expect_identical(table, read);
}

TEST_F(StarTableTest, RewritingGivesByteIdenticalFiles) {
  const xps::StarTable table = make_table(300, 66, true);
  const std::string first = path("stars_1_5.h5");
  const std::string second = path("copy/stars_1_5.h5");
  fs::create_directories(m_dir / "copy");
  xps::write_star_table(first, table, MPI_COMM_SELF);
  const std::vector<char> before = file_bytes(first);
  xps::write_star_table(first, table, MPI_COMM_SELF);  // over the existing file
  xps::write_star_table(second, table, MPI_COMM_SELF);
  EXPECT_FALSE(before.empty());
  EXPECT_TRUE(before == file_bytes(first));
  EXPECT_TRUE(before == file_bytes(second));
}

TEST_F(StarTableTest, TruncatedFileNamesTheFile) {
  const std::string file = path("stars_1_5.h5");
  xps::write_star_table(file, make_table(500, 66, true), MPI_COMM_SELF);
  fs::resize_file(file, fs::file_size(file) / 2);
  expect_io_error([&] { xps::read_star_table(file); }, {file});
  expect_io_error([&] { xps::read_star_table_info(file); }, {file});
}

TEST_F(StarTableTest, NonHdf5FileIsReported) {
  const std::string file = path("stars_1_5.h5");
  std::ofstream(file) << "source_id,ra,dec\n1,2,3\n";
  expect_io_error([&] { xps::read_star_table_info(file); },
                  {file + " is not a readable HDF5 file (truncated or corrupt?)"});
  expect_io_error([&] { xps::read_star_table(path("absent.h5")); }, {"absent.h5: no such file"});
}

TEST_F(StarTableTest, MissingDatasetIsNamed) {
  const std::string file = path("stars_1_5.h5");
  xps::write_star_table(file, make_table(10, 66, true), MPI_COMM_SELF);
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(file);
    h5file.move_link("stars/flux", "stars/flux_renamed");
    h5file.close();
  }
  expect_io_error([&] { xps::read_star_table_info(file); },
                  {file + ": dataset /stars/flux missing"});
  expect_io_error([&] { xps::read_star_table(file); }, {"/stars/flux missing"});
}

TEST_F(StarTableTest, MissingTruthColumnIsNamed) {
  const std::string file = path("stars_1_5.h5");
  xps::write_star_table(file, make_table(10, 66, true), MPI_COMM_SELF);
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(file);
    h5file.move_link("truth/is_binary", "truth/binary");
    h5file.close();
  }
  expect_io_error([&] { xps::read_star_table_info(file); }, {"dataset /truth/is_binary missing"});
}

TEST_F(StarTableTest, WrongShapeIsReported) {
  const std::string file = path("stars_1_5.h5");
  xps::write_star_table(file, make_table(10, 66, true), MPI_COMM_SELF);
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(file);
    h5file.move_link("stars/flux", "stars/flux_old");
    std::vector<float> short_rows(10 * 65, 1.0f);
    xps::h5::Dataset flux = h5file.create_dataset<float>("stars/flux", {10, 65}, {});
    flux.write_rows<float>(0, 10, std::span<const float>(short_rows));
  }
  expect_io_error([&] { xps::read_star_table_info(file); },
                  {file + ": dataset /stars/flux has shape [10,65], expected [10,66]"});
}

TEST_F(StarTableTest, WrongSchemaVersionIsReported) {
  const std::string file = path("stars_1_5.h5");
  xps::write_star_table(file, make_table(10, 66, false), MPI_COMM_SELF);
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(file);
    h5file.open_group("meta").write_attribute("schema_version", std::int32_t{2});
  }
  expect_io_error([&] { xps::read_star_table(file); },
                  {file + ": /meta@schema_version is 2, expected 1"});
}

TEST_F(StarTableTest, InconsistentTableIsRefusedBeforeWriting) {
  xps::StarTable table = make_table(10, 66, true);
  table.flux.pop_back();
  EXPECT_THROW(table.check_consistent(), std::logic_error);
  const std::string file = path("stars_1_5.h5");
  expect_io_error([&] { xps::write_star_table(file, table, MPI_COMM_SELF); },
                  {file, "stars/flux has 659 values, expected 660"});
  EXPECT_FALSE(fs::exists(file));
  EXPECT_FALSE(fs::exists(file + ".tmp"));
}

TEST_F(StarTableTest, UnwritableDirectoryIsReported) {
  const std::string file = path("no/such/dir/stars_1_5.h5");
  expect_io_error([&] { xps::write_star_table(file, make_table(3, 4, false), MPI_COMM_SELF); },
                  {file + ".tmp: cannot create HDF5 file"});
}

TEST(StarTable, ResizeFillsWithNaNAndKeepsRows) {
  xps::StarTable table;
  table.wavelength_nm = {400.0, 500.0, 600.0};
  table.has_truth = true;
  table.resize(4);
  EXPECT_EQ(table.rows(), 4u);
  EXPECT_EQ(table.flux.size(), 12u);
  EXPECT_EQ(table.flux_cov.size(), 24u);
  EXPECT_EQ(table.truth.flux.size(), 12u);
  EXPECT_EQ(table.band_names.size(), 3u);
  EXPECT_TRUE(std::isnan(table.labels.teff[3]));
  EXPECT_TRUE(std::isnan(table.truth.E[0]));
  EXPECT_EQ(table.truth.is_binary[0], 0);
  EXPECT_NO_THROW(table.check_consistent());
  table.flux[0] = 1.0f;
  table.resize(6);
  EXPECT_EQ(table.flux[0], 1.0f);
  EXPECT_TRUE(std::isnan(table.flux[17]));
}

TEST(StarTable, PackedTriangleIndexing) {
  EXPECT_EQ(xps::packed_triangle_size(66), 2211u);
  EXPECT_EQ(xps::packed_triangle_index(0, 0, 66), 0u);
  EXPECT_EQ(xps::packed_triangle_index(0, 65, 66), 65u);
  EXPECT_EQ(xps::packed_triangle_index(1, 1, 66), 66u);
  EXPECT_EQ(xps::packed_triangle_index(65, 65, 66), 2210u);
}

}  // namespace

TEST(StarTable, ResetRefillsEveryColumnWithMissingValues) {
  xps::StarTable table;
  table.wavelength_nm = {400.0, 500.0};
  table.has_truth = true;
  table.resize(3);
  table.flux[1] = 2.0f;
  table.labels.teff[2] = 5000.0f;
  table.truth.is_binary[0] = 1;
  table.truth.extinction_R[1] = 3.0;
  table.reset(2);
  EXPECT_EQ(table.rows(), 2u);
  EXPECT_NO_THROW(table.check_consistent());
  EXPECT_TRUE(std::isnan(table.flux[1]));
  EXPECT_EQ(table.truth.is_binary[0], 0);
  EXPECT_TRUE(std::isnan(table.truth.extinction_R[1]));
  table.reset(3);
  EXPECT_TRUE(std::isnan(table.labels.teff[2]));
}
