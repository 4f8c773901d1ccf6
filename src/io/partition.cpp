// HEALPix partitioning by Gaia source_id (DESIGN §2). Pixel maths is healpix_cxx's, never ours.
#include "xpstellar/partition.hpp"

#include <healpix_base.h>
#include <pointing.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <numbers>
#include <regex>
#include <tuple>
#include <utility>

#include "xpstellar/error.hpp"

namespace xps {

namespace {

constexpr int max_healpix_level = 29;  // T_Healpix_Base<int64>'s order_max
constexpr std::int64_t source_id_running_limit = std::int64_t{1} << source_id_pixel_shift;

void check_level(int level, int max_level, const char* what) {
  if (level < 0 || level > max_level) {
    throw UsageError(std::string(what) + ": HEALPix level " + std::to_string(level) +
                     " out of range 0.." + std::to_string(max_level));
  }
}

template <class Integer>
bool parse_number(const std::string& digits, Integer& value) {
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  return error == std::errc() && end == digits.data() + digits.size();
}

}  // namespace

std::int64_t healpix_pixel_count(int level) {
  check_level(level, max_healpix_level, "healpix_pixel_count");
  return std::int64_t{12} << (2 * level);
}

std::int64_t healpix_pixel_from_source_id(std::int64_t source_id, int level) {
  check_level(level, source_id_healpix_level, "healpix_pixel_from_source_id");
  if (source_id < 0) {
    throw UsageError("healpix_pixel_from_source_id: negative source_id " +
                     std::to_string(source_id));
  }
  // A level-k pixel is its level-12 descendant with the 2 (12 - k) finest bits dropped (nested).
  return source_id >> (source_id_pixel_shift + 2 * (source_id_healpix_level - level));
}

std::int64_t healpix_pixel_from_radec(double ra_deg, double dec_deg, int level) {
  check_level(level, max_healpix_level, "healpix_pixel_from_radec");
  if (!std::isfinite(ra_deg) || !std::isfinite(dec_deg) || std::abs(dec_deg) > 90.0) {
    throw UsageError("healpix_pixel_from_radec: invalid position ra=" + std::to_string(ra_deg) +
                     " dec=" + std::to_string(dec_deg));
  }
  constexpr double degree = std::numbers::pi / 180.0;
  const T_Healpix_Base<int64> base(level, NEST);
  // healpix_cxx wants colatitude theta (0 at the north pole) and longitude phi.
  return base.ang2pix(pointing(std::numbers::pi / 2 - dec_deg * degree, ra_deg * degree));
}

std::int64_t make_source_id(std::int64_t pixel12, std::int64_t running_number) {
  if (pixel12 < 0 || pixel12 >= healpix_pixel_count(source_id_healpix_level)) {
    throw UsageError("make_source_id: level-12 pixel " + std::to_string(pixel12) + " out of range");
  }
  if (running_number < 0 || running_number >= source_id_running_limit) {
    throw UsageError("make_source_id: running number " + std::to_string(running_number) +
                     " out of range 0..2^35-1");
  }
  return (pixel12 << source_id_pixel_shift) + running_number;
}

std::string star_table_file_name(int level, std::int64_t pixel) {
  return "stars_" + std::to_string(level) + "_" + std::to_string(pixel) + ".h5";
}

std::string catalog_file_name(int level, std::int64_t pixel) {
  return "catalog_" + std::to_string(level) + "_" + std::to_string(pixel) + ".h5";
}

std::vector<std::string> list_star_tables(const std::string& directory) {
  static const std::regex pattern(R"(stars_(\d{1,2})_(\d{1,19})\.h5)");
  struct Entry {
    std::int64_t pixel;
    int level;
    std::string path;
  };
  std::vector<Entry> entries;
  std::error_code error;
  std::filesystem::directory_iterator it(directory, error);
  if (error) throw IoError(directory + ": cannot list star tables: " + error.message());
  for (; it != std::filesystem::directory_iterator(); it.increment(error)) {
    if (error) throw IoError(directory + ": cannot list star tables: " + error.message());
    const std::string name = it->path().filename().string();
    std::smatch match;
    // Temporary files (".h5.tmp") of unfinished writes do not match.
    if (!std::regex_match(name, match, pattern) || !it->is_regular_file(error)) continue;
    Entry entry{0, 0, it->path().string()};
    if (!parse_number(match[1].str(), entry.level) || !parse_number(match[2].str(), entry.pixel)) {
      continue;  // digits beyond the integer's range: not a name we write
    }
    entries.push_back(std::move(entry));
  }
  if (error) throw IoError(directory + ": cannot list star tables: " + error.message());
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.pixel, a.level, a.path) < std::tie(b.pixel, b.level, b.path);
  });
  std::vector<std::string> paths;
  paths.reserve(entries.size());
  for (const Entry& entry : entries) paths.push_back(entry.path);
  return paths;
}

}  // namespace xps
