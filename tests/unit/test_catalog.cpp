// Catalog I/O (src/io/catalog.cpp): row blocks in any order, empty catalogs, byte-identical
// rewrites, the temporary file, errors naming the file, attributes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "io/h5.hpp"
#include "xpstellar/catalog.hpp"
#include "xpstellar/error.hpp"

namespace {

namespace fs = std::filesystem;
constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();

// A scratch directory per test (ctest runs tests as parallel processes).
class CatalogTest : public ::testing::Test {
protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    m_dir = fs::temp_directory_path() /
            ("xps_catalog_" + std::string(info->name()) + "_" + std::to_string(getpid()));
    fs::remove_all(m_dir);
    fs::create_directories(m_dir);
  }
  void TearDown() override { fs::remove_all(m_dir); }
  std::string path(const std::string& name) const { return (m_dir / name).string(); }

  fs::path m_dir;
};

xps::CatalogAttributes make_attributes() {
  xps::CatalogAttributes a;
  a.healpix_level = 12;
  a.healpix_pixel = 12LL * (1LL << 24) - 1;  // the last level-12 pixel
  a.star_table = "stars_12_201326591.h5";
  a.model_file = "model.h5";
  a.model_checksum = "0123456789abcdef";
  a.parallax_zero_point = -0.017;
  a.model_error_level_frac = 0.05;
  a.model_error_smooth_frac = 0.03;
  a.model_error_smooth_length_nm = 100;
  a.optimizer = "fast";
  a.config_text = "[inference]\noptimizer = fast\n# σ_ϖ in mas, [Fe/H] in dex\n";
  a.code_version = "0.1.0";
  return a;
}

// Rows [first, first + n) of a catalog whose every value depends on its row and column, with
// NaN where a star was not fitted (every seventh) and NaN confidences as inference writes them.
xps::CatalogRows make_rows(std::size_t first, std::size_t n) {
  xps::CatalogRows rows;
  rows.reset(n);
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = first + k;
    const auto x = static_cast<float>(i);
    rows.gdr3_source_id[k] = (std::int64_t{201326591} << 35) + static_cast<std::int64_t>(i);
    rows.ra[k] = 359.9 - 1e-9 * static_cast<double>(i);
    rows.dec[k] = -89.5 + 1e-9 * static_cast<double>(i);
    const bool fitted = i % 7 != 0;
    rows.quality_flags[k] = static_cast<std::uint8_t>(fitted ? i % 64 : 128 + i % 64);
    rows.fit_status[k] = static_cast<std::uint8_t>(fitted ? i % 2 : 2 + i % 5);
    rows.bands_used[k] = static_cast<std::uint8_t>(i % 67);
    rows.iterations[k] = fitted ? static_cast<std::int32_t>(i % 1000) : 0;
    if (!fitted) continue;
    for (std::size_t p = 0; p < 5; ++p) {
      rows.stellar_params_est[k * 5 + p] = 0.001f * x + static_cast<float>(p);
      rows.stellar_params_err[k * 5 + p] = 1e-6f * x + 0.01f * static_cast<float>(p + 1);
    }
    for (std::size_t t = 0; t < 15; ++t) {
      rows.stellar_params_icov_triu[k * 15 + t] = 1e3f + x + static_cast<float>(t);
      rows.stellar_params_cov_triu[k * 15 + t] = 1e-4f * static_cast<float>(t + 1) - 1e-9f * x;
    }
    rows.chi2_opt[k] = 60.0f + 0.01f * x;
    rows.ln_prior[k] = -1.0f - 1e-4f * x;
    rows.chi2_dof[k] = rows.chi2_opt[k] / 61.0f;
    rows.xi_est[k] = i % 3 == 0 ? nan_f : 0.1f - 1e-5f * x;
    rows.loss_opt[k] = 1e4 + 1e-3 * static_cast<double>(i);
    rows.parallax_spectro[k] = i % 5 == 0 ? nan_f : 0.5f + 1e-4f * x;
    rows.parallax_spectro_error[k] = i % 5 == 0 ? nan_f : 0.02f + 1e-7f * x;
  }
  return rows;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

void expect_same_rows(const xps::CatalogRows& expected, const xps::CatalogRows& actual) {
  ASSERT_EQ(actual.rows(), expected.rows());
  EXPECT_TRUE(same_bits(actual.gdr3_source_id, expected.gdr3_source_id));
  EXPECT_TRUE(same_bits(actual.ra, expected.ra));
  EXPECT_TRUE(same_bits(actual.dec, expected.dec));
  EXPECT_TRUE(same_bits(actual.stellar_params_est, expected.stellar_params_est));
  EXPECT_TRUE(same_bits(actual.stellar_params_err, expected.stellar_params_err));
  EXPECT_TRUE(same_bits(actual.chi2_opt, expected.chi2_opt));
  EXPECT_TRUE(same_bits(actual.ln_prior, expected.ln_prior));
  EXPECT_TRUE(same_bits(actual.teff_confidence, expected.teff_confidence));
  EXPECT_TRUE(same_bits(actual.feh_confidence, expected.feh_confidence));
  EXPECT_TRUE(same_bits(actual.logg_confidence, expected.logg_confidence));
  EXPECT_TRUE(same_bits(actual.quality_flags, expected.quality_flags));
  EXPECT_TRUE(same_bits(actual.stellar_params_icov_triu, expected.stellar_params_icov_triu));
  EXPECT_TRUE(same_bits(actual.stellar_params_cov_triu, expected.stellar_params_cov_triu));
  EXPECT_TRUE(same_bits(actual.chi2_dof, expected.chi2_dof));
  EXPECT_TRUE(same_bits(actual.xi_est, expected.xi_est));
  EXPECT_TRUE(same_bits(actual.loss_opt, expected.loss_opt));
  EXPECT_TRUE(same_bits(actual.parallax_spectro, expected.parallax_spectro));
  EXPECT_TRUE(same_bits(actual.parallax_spectro_error, expected.parallax_spectro_error));
  EXPECT_TRUE(same_bits(actual.fit_status, expected.fit_status));
  EXPECT_TRUE(same_bits(actual.iterations, expected.iterations));
  EXPECT_TRUE(same_bits(actual.bands_used, expected.bands_used));
}

// Writes a catalog of `total` rows as the blocks [first, end) in the order given.
void write_blocks(const std::string& file, std::size_t total,
                  const std::vector<std::pair<std::size_t, std::size_t>>& blocks) {
  xps::CatalogWriter writer(file, total, make_attributes());
  for (const auto& [first, end] : blocks) writer.write(first, make_rows(first, end - first));
  writer.commit();
}

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs `action`, expecting an `Error` whose message contains every one of `parts`.
template <class Error = xps::IoError, class Action>
void expect_error(Action&& action, const std::vector<std::string>& parts) {
  try {
    action();
    ADD_FAILURE() << "nothing thrown";
  } catch (const Error& error) {
    const std::string message = error.what();
    for (const std::string& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
    }
  }
}

TEST(Catalog, FitStatusNames) {
  EXPECT_STREQ(xps::fit_status_name(xps::FitStatus::converged), "converged");
  EXPECT_STREQ(xps::fit_status_name(xps::FitStatus::not_converged), "not_converged");
  EXPECT_STREQ(xps::fit_status_name(xps::FitStatus::no_bands), "no_bands");
  EXPECT_STREQ(xps::fit_status_name(xps::FitStatus::non_finite_flux), "non_finite_flux");
  EXPECT_STREQ(xps::fit_status_name(xps::FitStatus::non_positive_variance),
               "non_positive_variance");
  EXPECT_STREQ(xps::fit_status_name(xps::FitStatus::not_positive_definite),
               "not_positive_definite");
  EXPECT_STREQ(xps::fit_status_name(xps::FitStatus::no_information), "no_information");
  EXPECT_STREQ(xps::fit_status_name(xps::FitStatus::count), "unknown");
}

TEST(Catalog, ResetSizesColumnsWithMissingValues) {
  xps::CatalogRows rows = make_rows(1, 3);
  rows.reset(4);
  rows.check_consistent();
  EXPECT_EQ(rows.rows(), 4u);
  EXPECT_EQ(rows.stellar_params_est.size(), 20u);
  EXPECT_EQ(rows.stellar_params_cov_triu.size(), 60u);
  for (float v : rows.stellar_params_icov_triu) EXPECT_TRUE(std::isnan(v));
  for (float v : rows.teff_confidence) EXPECT_TRUE(std::isnan(v));
  for (double v : rows.loss_opt) EXPECT_TRUE(std::isnan(v));
  for (auto v : rows.gdr3_source_id) EXPECT_EQ(v, 0);
  for (auto v : rows.quality_flags) EXPECT_EQ(v, 0);
  for (auto v : rows.iterations) EXPECT_EQ(v, 0);
}

TEST(Catalog, InconsistentRowsNameTheColumn) {
  xps::CatalogRows rows = make_rows(0, 5);
  rows.stellar_params_cov_triu.pop_back();
  expect_error<std::logic_error>([&] { rows.check_consistent(); },
                                 {"stellar_params_cov_triu", "74", "75"});
  rows = make_rows(0, 5);
  rows.bands_used.push_back(1);
  expect_error<std::logic_error>([&] { rows.check_consistent(); }, {"bands_used"});
}

TEST_F(CatalogTest, BlocksWrittenOutOfOrderRoundTrip) {
  // More rows than one chunk (16,384), blocks that straddle chunk boundaries, in no order.
  const std::size_t total = 40000;
  const std::string file = path("catalog_12_201326591.h5");
  {
    xps::CatalogWriter writer(file, total, make_attributes());
    EXPECT_TRUE(fs::exists(file + ".tmp"));
    for (const auto& [first, end] : std::vector<std::pair<std::size_t, std::size_t>>{
             {30000, 40000}, {0, 7}, {16000, 30000}, {7, 7}, {7, 16000}}) {
      writer.write(first, make_rows(first, end - first));
    }
    EXPECT_FALSE(fs::exists(file));
    writer.commit();
    EXPECT_TRUE(fs::exists(file));
    EXPECT_FALSE(fs::exists(file + ".tmp"));
  }
  EXPECT_TRUE(fs::exists(file));  // the destructor leaves a committed file alone
  expect_same_rows(make_rows(0, total), xps::read_catalog(file));
}

TEST_F(CatalogTest, OverlappingBlocksCoverTheCatalog) {
  const std::string file = path("catalog.h5");
  xps::CatalogWriter writer(file, 100, make_attributes());
  writer.write(10, make_rows(10, 50));
  writer.write(0, make_rows(0, 20));
  writer.write(50, make_rows(50, 50));
  writer.commit();
  expect_same_rows(make_rows(0, 100), xps::read_catalog(file));
}

TEST_F(CatalogTest, EmptyCatalogRoundTrips) {
  const std::string file = path("catalog_0_0.h5");
  {
    xps::CatalogWriter writer(file, 0, make_attributes());
    writer.write(0, xps::CatalogRows{});
    writer.commit();
  }
  const xps::CatalogRows rows = xps::read_catalog(file);
  EXPECT_EQ(rows.rows(), 0u);
  rows.check_consistent();
  EXPECT_EQ(xps::read_catalog_attributes(file).model_checksum, "0123456789abcdef");
  const xps::h5::File h5file = xps::h5::File::open_read_only(file, MPI_COMM_SELF);
  EXPECT_EQ(h5file.open_dataset("catalog/stellar_params_cov_triu").shape(), (xps::h5::Dims{0, 15}));
}

TEST_F(CatalogTest, SameContentGivesIdenticalBytes) {
  const std::size_t total = 20000;
  const std::string first = path("catalog.h5");
  const std::string second = path("copy/catalog.h5");
  fs::create_directories(m_dir / "copy");
  write_blocks(first, total, {{0, total}});
  const std::vector<char> before = file_bytes(first);
  ASSERT_FALSE(before.empty());
  // Past a one-second clock tick, so that any time stamp left in the file would show.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  write_blocks(first, total, {{0, total}});                           // over the existing file
  write_blocks(second, total, {{12000, 20000}, {0, 5}, {5, 12000}});  // other blocks, other order
  EXPECT_TRUE(before == file_bytes(first));
  EXPECT_TRUE(before == file_bytes(second));
}

TEST_F(CatalogTest, WriterDestroyedWithoutCommitRemovesTheTemporaryFile) {
  const std::string file = path("catalog.h5");
  {
    xps::CatalogWriter writer(file, 50, make_attributes());
    writer.write(0, make_rows(0, 50));
    EXPECT_TRUE(fs::exists(file + ".tmp"));
  }
  EXPECT_FALSE(fs::exists(file + ".tmp"));
  EXPECT_FALSE(fs::exists(file));

  // An earlier catalog of the same name survives an abandoned rewrite.
  write_blocks(file, 10, {{0, 10}});
  const std::vector<char> committed = file_bytes(file);
  { xps::CatalogWriter writer(file, 20, make_attributes()); }
  EXPECT_FALSE(fs::exists(file + ".tmp"));
  EXPECT_TRUE(committed == file_bytes(file));
}

TEST_F(CatalogTest, MisuseIsRefused) {
  const std::string file = path("catalog.h5");
  xps::CatalogWriter writer(file, 30, make_attributes());
  expect_error([&] { writer.write(25, make_rows(25, 6)); },
               {file + ".tmp", "rows [25,31) outside the catalog's 30 rows"});
  expect_error([&] { writer.write(31, xps::CatalogRows{}); }, {file + ".tmp"});
  xps::CatalogRows bad = make_rows(0, 3);
  bad.ra.pop_back();
  expect_error<std::logic_error>([&] { writer.write(0, bad); }, {"ra"});
  writer.write(0, make_rows(0, 10));
  writer.write(20, make_rows(20, 10));
  expect_error<std::logic_error>([&] { writer.commit(); }, {file + ".tmp", "row 10", "of 30"});
  writer.write(10, make_rows(10, 10));
  writer.commit();
  expect_error<std::logic_error>([&] { writer.write(0, make_rows(0, 1)); }, {file});
  expect_same_rows(make_rows(0, 30), xps::read_catalog(file));
}

TEST_F(CatalogTest, UnwritableDirectoryIsNamed) {
  const std::string file = path("absent/catalog.h5");
  expect_error([&] { xps::CatalogWriter writer(file, 5, make_attributes()); }, {file + ".tmp"});
}

TEST_F(CatalogTest, MissingOrMalformedFilesAreNamed) {
  const std::string absent = path("absent.h5");
  expect_error([&] { xps::read_catalog(absent); }, {absent + ": no such file"});
  expect_error([&] { xps::read_catalog_attributes(absent); }, {absent + ": no such file"});

  const std::string text = path("text.h5");
  std::ofstream(text) << "gdr3_source_id,ra,dec\n1,2,3\n";
  expect_error([&] { xps::read_catalog(text); }, {text + " is not a readable HDF5 file"});

  const std::string truncated = path("truncated.h5");
  write_blocks(truncated, 2000, {{0, 2000}});
  fs::resize_file(truncated, fs::file_size(truncated) / 2);
  expect_error([&] { xps::read_catalog(truncated); }, {truncated});

  const std::string no_group = path("no_group.h5");
  write_blocks(no_group, 10, {{0, 10}});
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(no_group);
    h5file.move_link("catalog", "stars");
    h5file.close();
  }
  expect_error([&] { xps::read_catalog(no_group); }, {no_group + ": group /catalog missing"});
  expect_error([&] { xps::read_catalog_attributes(no_group); }, {"/catalog missing"});

  const std::string no_column = path("no_column.h5");
  write_blocks(no_column, 10, {{0, 10}});
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(no_column);
    h5file.move_link("catalog/xi_est", "catalog/xi");
    h5file.close();
  }
  expect_error([&] { xps::read_catalog(no_column); },
               {no_column + ": dataset /catalog/xi_est missing"});

  const std::string wrong_shape = path("wrong_shape.h5");
  write_blocks(wrong_shape, 10, {{0, 10}});
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(wrong_shape);
    h5file.move_link("catalog/stellar_params_err", "catalog/old");
    xps::h5::Group group = h5file.open_group("catalog");
    group.create_dataset<float>("stellar_params_err", {10, 4}, xps::h5::Layout{});
    h5file.close();
  }
  expect_error([&] { xps::read_catalog(wrong_shape); },
               {wrong_shape, "/catalog/stellar_params_err has shape [10,4], expected [10,5]"});

  const std::string no_ids = path("no_ids.h5");
  write_blocks(no_ids, 10, {{0, 10}});
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(no_ids);
    xps::h5::Group group = h5file.open_group("catalog");
    group.move_link("gdr3_source_id", "source_id");
    h5file.close();
  }
  expect_error([&] { xps::read_catalog(no_ids); }, {no_ids, "gdr3_source_id"});
}

TEST_F(CatalogTest, AttributesRoundTrip) {
  const std::string file = path("catalog.h5");
  write_blocks(file, 3, {{0, 3}});
  const xps::CatalogAttributes expected = make_attributes();
  const xps::CatalogAttributes read = xps::read_catalog_attributes(file);
  EXPECT_EQ(read.healpix_level, expected.healpix_level);
  EXPECT_EQ(read.healpix_pixel, expected.healpix_pixel);
  EXPECT_EQ(read.star_table, expected.star_table);
  EXPECT_EQ(read.model_file, expected.model_file);
  EXPECT_EQ(read.model_checksum, expected.model_checksum);
  EXPECT_EQ(read.parallax_zero_point, expected.parallax_zero_point);
  EXPECT_EQ(read.model_error_level_frac, expected.model_error_level_frac);
  EXPECT_EQ(read.model_error_smooth_frac, expected.model_error_smooth_frac);
  EXPECT_EQ(read.model_error_smooth_length_nm, expected.model_error_smooth_length_nm);
  EXPECT_EQ(read.optimizer, expected.optimizer);
  EXPECT_EQ(read.config_text, expected.config_text);
  EXPECT_EQ(read.code_version, expected.code_version);
  EXPECT_EQ(read.schema_version, xps::catalog_schema_version);

  // What users read besides the struct: the parameter order, the flag bits, every column's unit.
  const xps::h5::File h5file = xps::h5::File::open_read_only(file, MPI_COMM_SELF);
  const xps::h5::Group group = h5file.open_group("catalog");
  EXPECT_EQ(group.read_string_attribute("parameter_names"), "teff,feh,logg,E,parallax");
  EXPECT_NE(group.read_string_attribute("quality_flags_bits").find("quality_flags < 8"),
            std::string::npos);
  EXPECT_NE(group.read_string_attribute("fit_status_names").find("6 no_information"),
            std::string::npos);
  EXPECT_EQ(group.open_dataset("stellar_params_est").read_string_attribute("unit"),
            "kK, dex, dex, mag, mas");
  EXPECT_EQ(group.open_dataset("ra").read_string_attribute("unit"), "deg");
  EXPECT_FALSE(group.open_dataset("bands_used").read_string_attribute("description").empty());
}

}  // namespace
