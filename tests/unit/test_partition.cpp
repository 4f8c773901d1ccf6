// HEALPix partitioning (src/io/partition.cpp): source_id shifts against healpix_cxx positions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "xpstellar/error.hpp"
#include "xpstellar/partition.hpp"

namespace {

namespace fs = std::filesystem;

TEST(Partition, PixelCounts) {
  EXPECT_EQ(xps::healpix_pixel_count(0), 12);
  EXPECT_EQ(xps::healpix_pixel_count(5), 12288);
  EXPECT_EQ(xps::healpix_pixel_count(12), 201326592);
  EXPECT_EQ(xps::healpix_pixel_count(29), std::int64_t{12} << 58);
  EXPECT_THROW(xps::healpix_pixel_count(30), xps::UsageError);
  EXPECT_THROW(xps::healpix_pixel_count(-1), xps::UsageError);
}

// Proxima Centauri, Gaia DR3 5853498713190525696: Gaia's own level-12 pixel (bits 35 and up)
// must be where healpix_cxx puts its DR3 position (epoch 2016.0), an external check of the
// theta/phi convention and of the nested scheme.
TEST(Partition, GaiaSourceIdMatchesItsPosition) {
  constexpr std::int64_t proxima = 5853498713190525696;
  constexpr double ra = 217.39232147200883;
  constexpr double dec = -62.67607511676666;
  EXPECT_EQ(xps::healpix_pixel_from_source_id(proxima, 12), 170359234);
  EXPECT_EQ(xps::healpix_pixel_from_source_id(proxima, 12), proxima >> 35);
  EXPECT_EQ(xps::healpix_pixel_from_source_id(proxima, 5), 10397);
  for (int level = 0; level <= 12; ++level) {
    SCOPED_TRACE("level " + std::to_string(level));
    EXPECT_EQ(xps::healpix_pixel_from_radec(ra, dec, level),
              xps::healpix_pixel_from_source_id(proxima, level));
  }
}

// Centres of level-0 base pixels (nested numbering: 0-3 north, 4-7 equator, 8-11 south).
TEST(Partition, KnownBasePixels) {
  const double polar_cap_dec = std::asin(2.0 / 3.0) * 180.0 / std::numbers::pi;  // 41.81 deg
  EXPECT_EQ(xps::healpix_pixel_from_radec(45.0, polar_cap_dec, 0), 0);
  EXPECT_EQ(xps::healpix_pixel_from_radec(135.0, polar_cap_dec, 0), 1);
  EXPECT_EQ(xps::healpix_pixel_from_radec(0.0, 0.0, 0), 4);
  EXPECT_EQ(xps::healpix_pixel_from_radec(90.0, 0.0, 0), 5);
  EXPECT_EQ(xps::healpix_pixel_from_radec(45.0, -polar_cap_dec, 0), 8);
  EXPECT_EQ(xps::healpix_pixel_from_radec(315.0, -polar_cap_dec, 0), 11);
  EXPECT_EQ(xps::healpix_pixel_from_radec(360.0 + 45.0, polar_cap_dec, 0), 0);  // ra wraps
  EXPECT_EQ(xps::healpix_pixel_from_radec(-315.0, polar_cap_dec, 0), 0);
}

// For random positions: the source_id built from the level-12 pixel gives, by shifting, the
// same pixel that healpix_cxx computes from the position at every level 0..12.
TEST(Partition, SourceIdShiftsAgreeWithHealpixAtEveryLevel) {
  std::mt19937_64 rng(20240501);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int star = 0; star < 2000; ++star) {
    const double ra = 360.0 * uniform(rng);
    const double dec = std::asin(2.0 * uniform(rng) - 1.0) * 180.0 / std::numbers::pi;
    const std::int64_t pixel12 = xps::healpix_pixel_from_radec(ra, dec, 12);
    const std::int64_t source_id = xps::make_source_id(pixel12, star * 1000003LL);
    for (int level = 0; level <= 12; ++level) {
      ASSERT_EQ(xps::healpix_pixel_from_source_id(source_id, level),
                xps::healpix_pixel_from_radec(ra, dec, level))
          << "ra " << ra << " dec " << dec << " level " << level;
    }
    // Nested: a finer pixel's parent is the coarser pixel, at levels beyond 12 as well.
    EXPECT_EQ(xps::healpix_pixel_from_radec(ra, dec, 20) >> 16, pixel12);
  }
}

TEST(Partition, LevelShifts) {
  const std::int64_t source_id = xps::make_source_id(201326591, 12345);  // last level-12 pixel
  for (int level = 0; level <= 12; ++level) {
    EXPECT_EQ(xps::healpix_pixel_from_source_id(source_id, level),
              xps::healpix_pixel_count(level) - 1);
  }
  EXPECT_EQ(xps::healpix_pixel_from_source_id(source_id, 0), 11);
  EXPECT_EQ(xps::healpix_pixel_from_source_id((std::int64_t{5} << 35) + 7, 11), 1);
  EXPECT_EQ(xps::healpix_pixel_from_source_id((std::int64_t{4} << 35), 11), 1);
  EXPECT_EQ(xps::healpix_pixel_from_source_id((std::int64_t{3} << 35), 11), 0);
  EXPECT_THROW(xps::healpix_pixel_from_source_id(source_id, 13), xps::UsageError);
  EXPECT_THROW(xps::healpix_pixel_from_source_id(source_id, -1), xps::UsageError);
  EXPECT_THROW(xps::healpix_pixel_from_source_id(-5, 3), xps::UsageError);
}

TEST(Partition, MakeSourceIdRoundTrip) {
  for (const std::int64_t pixel :
       {std::int64_t{0}, std::int64_t{170359234}, std::int64_t{201326591}}) {
    for (const std::int64_t running :
         {std::int64_t{0}, std::int64_t{1}, (std::int64_t{1} << 35) - 1}) {
      const std::int64_t source_id = xps::make_source_id(pixel, running);
      EXPECT_GE(source_id, 0);
      EXPECT_EQ(xps::healpix_pixel_from_source_id(source_id, 12), pixel);
      EXPECT_EQ(source_id & ((std::int64_t{1} << 35) - 1), running);
    }
  }
  EXPECT_EQ(xps::make_source_id(170359234, 4377635584), 5853498713190525696);
  EXPECT_THROW(xps::make_source_id(201326592, 0), xps::UsageError);
  EXPECT_THROW(xps::make_source_id(-1, 0), xps::UsageError);
  EXPECT_THROW(xps::make_source_id(0, std::int64_t{1} << 35), xps::UsageError);
  EXPECT_THROW(xps::make_source_id(0, -1), xps::UsageError);
}

TEST(Partition, InvalidPositionsAreRefused) {
  EXPECT_THROW(xps::healpix_pixel_from_radec(10.0, 90.5, 5), xps::UsageError);
  EXPECT_THROW(xps::healpix_pixel_from_radec(std::nan(""), 0.0, 5), xps::UsageError);
  EXPECT_THROW(xps::healpix_pixel_from_radec(10.0, 0.0, 30), xps::UsageError);
  EXPECT_NO_THROW(xps::healpix_pixel_from_radec(10.0, 90.0, 29));
  EXPECT_NO_THROW(xps::healpix_pixel_from_radec(10.0, -90.0, 29));
}

TEST(Partition, FileNames) {
  EXPECT_EQ(xps::star_table_file_name(1, 5), "stars_1_5.h5");
  EXPECT_EQ(xps::star_table_file_name(12, 201326591), "stars_12_201326591.h5");
}

TEST(Partition, ListStarTablesSortsByPixel) {
  const fs::path dir =
      fs::temp_directory_path() / ("xps_partition_list_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "stars_3_1.h5");  // a directory, not a table
  for (const char* name : {"stars_3_100.h5", "stars_3_2.h5", "stars_3_10.h5", "stars_3_7.h5.tmp",
                           "catalog_3_4.h5", "stars_3_x.h5", "notes.txt"}) {
    std::ofstream(dir / name) << "x";
  }
  const std::vector<std::string> expected{(dir / "stars_3_2.h5").string(),
                                          (dir / "stars_3_10.h5").string(),
                                          (dir / "stars_3_100.h5").string()};
  EXPECT_EQ(xps::list_star_tables(dir.string()), expected);
  fs::remove_all(dir);
  EXPECT_THROW(xps::list_star_tables(dir.string()), xps::IoError);
}

}  // namespace
