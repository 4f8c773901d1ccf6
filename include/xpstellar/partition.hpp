// HEALPix partitioning by Gaia source_id (DESIGN §2): a source_id carries its level-12 nested
// pixel in bits 35 and up, so the pixel of any coarser level is a shift away. ra/dec -> pixel uses
// healpix_cxx (nested scheme).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xps {

inline constexpr int source_id_healpix_level = 12;
inline constexpr int source_id_pixel_shift = 35;

// Nested HEALPix pixel at `level` (0..12) encoded in a Gaia source_id.
std::int64_t healpix_pixel_from_source_id(std::int64_t source_id, int level);
// Nested HEALPix pixel at `level` (0..29) of a sky position (ICRS degrees), via healpix_cxx.
std::int64_t healpix_pixel_from_radec(double ra_deg, double dec_deg, int level);
// Gaia-convention source_id: level-12 pixel << 35 plus a running number (< 2^35).
std::int64_t make_source_id(std::int64_t pixel12, std::int64_t running_number);
std::int64_t healpix_pixel_count(int level);

// `stars_<level>_<pixel>.h5` and `catalog_<level>_<pixel>.h5`
std::string star_table_file_name(int level, std::int64_t pixel);
std::string catalog_file_name(int level, std::int64_t pixel);
// Every star_table file in `directory`, sorted by pixel. Throws IoError if it cannot be listed.
std::vector<std::string> list_star_tables(const std::string& directory);

}  // namespace xps
