// Star tables written and read collectively by several ranks (run at 2 ranks by ctest).
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "xpstellar/error.hpp"
#include "xpstellar/star_table.hpp"

namespace {

namespace fs = std::filesystem;
constexpr std::size_t bands = 66;
constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();

int rank_of(MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return rank;
}

int size_of(MPI_Comm comm) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  return size;
}

float value(std::size_t row, std::size_t column, float scale) {
  return scale * static_cast<float>(row) + 0.001f * static_cast<float>(column) + 0.25f;
}

// Rows [first, first + count) of one deterministic table with truth: any rank can build any
// slice, so the expected file content is known everywhere.
xps::StarTable make_rows(std::size_t first, std::size_t count) {
  xps::StarTable table;
  table.healpix_level = 2;
  table.healpix_pixel = 17;
  table.has_truth = true;
  table.provenance_config = "[mock]\nseed = 3\n";
  table.provenance_generator = "xps mpi test";
  for (std::size_t b = 0; b < bands; ++b) {
    table.wavelength_nm.push_back(392.0 + 10.0 * static_cast<double>(b));
    table.band_names.push_back("band_" + std::to_string(b));
    table.truth.extinction_R.push_back(1.0 + 0.01 * static_cast<double>(b));
  }
  table.resize(count);
  const std::size_t packed = xps::packed_triangle_size(bands);
  for (std::size_t local = 0; local < count; ++local) {
    const std::size_t row = first + local;
    table.source_id[local] = (std::int64_t{1234567} << 35) + static_cast<std::int64_t>(row);
    table.ra[local] = 10.0 + 1e-6 * static_cast<double>(row);
    table.dec[local] = -5.0 + 1e-6 * static_cast<double>(row);
    for (std::size_t b = 0; b < bands; ++b) table.flux[local * bands + b] = value(row, b, 2.0f);
    for (std::size_t k = 0; k < packed; ++k)
      table.flux_cov[local * packed + k] = value(row, k, 0.5f);
    table.parallax[local] = value(row, 1, 0.01f);
    table.labels.teff[local] = row % 5 == 0 ? nan_f : value(row, 2, 1.0f) + 5000.0f;
    table.truth.E[local] = value(row, 3, 0.001f);
    table.truth.is_binary[local] = static_cast<std::uint8_t>(row % 2);
    for (std::size_t b = 0; b < bands; ++b)
      table.truth.flux[local * bands + b] = value(row, b, 3.0f);
  }
  return table;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

void expect_same(const xps::StarTable& expected, const xps::StarTable& actual) {
  EXPECT_EQ(actual.healpix_level, expected.healpix_level);
  EXPECT_EQ(actual.healpix_pixel, expected.healpix_pixel);
  EXPECT_EQ(actual.band_names, expected.band_names);
  EXPECT_EQ(actual.provenance_config, expected.provenance_config);
  EXPECT_TRUE(same_bits(actual.wavelength_nm, expected.wavelength_nm));
  EXPECT_TRUE(same_bits(actual.source_id, expected.source_id));
  EXPECT_TRUE(same_bits(actual.ra, expected.ra));
  EXPECT_TRUE(same_bits(actual.dec, expected.dec));
  EXPECT_TRUE(same_bits(actual.flux, expected.flux));
  EXPECT_TRUE(same_bits(actual.flux_cov, expected.flux_cov));
  EXPECT_TRUE(same_bits(actual.parallax, expected.parallax));
  EXPECT_TRUE(same_bits(actual.ruwe, expected.ruwe));
  EXPECT_TRUE(same_bits(actual.labels.teff, expected.labels.teff));
  EXPECT_TRUE(same_bits(actual.truth.E, expected.truth.E));
  EXPECT_TRUE(same_bits(actual.truth.is_binary, expected.truth.is_binary));
  EXPECT_TRUE(same_bits(actual.truth.flux, expected.truth.flux));
  EXPECT_TRUE(same_bits(actual.truth.extinction_R, expected.truth.extinction_R));
}

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A directory every rank agrees on (rank 0's pid), removed at the end.
class StarTableParallel : public ::testing::Test {
protected:
  void SetUp() override {
    long pid = static_cast<long>(getpid());
    MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    m_dir = fs::temp_directory_path() / ("xps_star_table_mpi_" + std::to_string(pid));
    if (rank_of(MPI_COMM_WORLD) == 0) fs::create_directories(m_dir);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  void TearDown() override {
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_of(MPI_COMM_WORLD) == 0) fs::remove_all(m_dir);
  }
  std::string path(const std::string& name) const { return (m_dir / name).string(); }

  fs::path m_dir;
};

// Each rank's (first, count) when rank r gets counts[r] rows (the last entry repeats).
std::pair<std::size_t, std::size_t> my_slice(const std::vector<std::size_t>& counts) {
  const auto rank = static_cast<std::size_t>(rank_of(MPI_COMM_WORLD));
  std::size_t first = 0;
  for (std::size_t r = 0; r < rank; ++r) first += counts[std::min(r, counts.size() - 1)];
  return {first, counts[std::min(rank, counts.size() - 1)]};
}

std::size_t total_rows(const std::vector<std::size_t>& counts) {
  std::size_t total = 0;
  for (int r = 0; r < size_of(MPI_COMM_WORLD); ++r) {
    total += counts[std::min(static_cast<std::size_t>(r), counts.size() - 1)];
  }
  return total;
}

TEST_F(StarTableParallel, CollectiveWriteHoldsTheConcatenation) {
  // Uneven slices across chunk boundaries; rank 0 without rows (its metadata is still used);
  // a table with no rows at all.
  for (const std::vector<std::size_t>& counts :
       std::vector<std::vector<std::size_t>>{{1300, 777}, {0, 2049}, {5, 0}, {0, 0}}) {
    SCOPED_TRACE("rank 0 rows " + std::to_string(counts[0]));
    const auto [first, count] = my_slice(counts);
    const std::string file = path("stars_2_17.h5");
    xps::write_star_table(file, make_rows(first, count), MPI_COMM_WORLD);
    EXPECT_TRUE(fs::exists(file));
    EXPECT_FALSE(fs::exists(file + ".tmp"));
    const xps::StarTable read = xps::read_star_table(file);  // each rank, serially
    expect_same(make_rows(0, total_rows(counts)), read);
    MPI_Barrier(MPI_COMM_WORLD);  // everyone has read before the next round rewrites
  }
}

TEST_F(StarTableParallel, ParallelSliceReadReturnsEachRanksRows) {
  const std::vector<std::size_t> counts{1600, 1400};
  const std::size_t total = total_rows(counts);
  const std::string file = path("stars_2_17.h5");
  const auto [first, count] = my_slice(counts);
  xps::write_star_table(file, make_rows(first, count), MPI_COMM_WORLD);
  const bool root = rank_of(MPI_COMM_WORLD) == 0;
  // Overlapping, chunk-crossing and empty requests, different on each rank.
  for (const auto& [want_first, want_count] : std::vector<std::pair<std::size_t, std::size_t>>{
           {root ? 0 : 1000, root ? 1025 : total - 1000},
           {root ? total - 1 : 0, 1},
           {root ? 500 : 0, root ? 0 : total}}) {
    const xps::StarTable read = xps::read_star_table(file, MPI_COMM_WORLD, want_first, want_count);
    expect_same(make_rows(want_first, want_count), read);
  }
}

// Determinism (DESIGN §2): the same rows on the same ranks give the same bytes.
TEST_F(StarTableParallel, RewriteAtTheSameRankCountIsByteIdentical) {
  const auto [first, count] = my_slice({900, 1234});
  const xps::StarTable rows = make_rows(first, count);
  xps::write_star_table(path("a.h5"), rows, MPI_COMM_WORLD);
  xps::write_star_table(path("b.h5"), rows, MPI_COMM_WORLD);
  if (rank_of(MPI_COMM_WORLD) == 0) {
    EXPECT_TRUE(file_bytes(path("a.h5")) == file_bytes(path("b.h5")));
  }
}

TEST_F(StarTableParallel, InconsistentRowsOnOneRankFailEveryRank) {
  xps::StarTable rows = make_rows(0, 10);
  if (rank_of(MPI_COMM_WORLD) == size_of(MPI_COMM_WORLD) - 1) rows.flux.pop_back();
  EXPECT_THROW(xps::write_star_table(path("stars_2_17.h5"), rows, MPI_COMM_WORLD), xps::IoError);
}

TEST_F(StarTableParallel, TruncatedFileFailsEveryRank) {
  const std::string file = path("stars_2_17.h5");
  const auto [first, count] = my_slice({700, 800});
  xps::write_star_table(file, make_rows(first, count), MPI_COMM_WORLD);
  if (rank_of(MPI_COMM_WORLD) == 0) fs::resize_file(file, fs::file_size(file) / 2);
  MPI_Barrier(MPI_COMM_WORLD);
  try {
    xps::read_star_table(file, MPI_COMM_WORLD, first, count);
    ADD_FAILURE() << "no IoError";
  } catch (const xps::IoError& error) {
    EXPECT_NE(std::string(error.what()).find(file), std::string::npos) << error.what();
  }
}

}  // namespace
