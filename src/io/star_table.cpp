// Star-table I/O (DESIGN §4; on-disk schema in docs/star_table.md).
#include "xpstellar/star_table.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <stdexcept>
#include <type_traits>

#include "io/h5.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/mpi_session.hpp"

namespace xps {

namespace {

// How many values each star has in a per-star array.
enum class Width { one, bands, packed_covariance };

std::size_t values_per_row(Width width, std::size_t bands) {
  switch (width) {
    case Width::one:
      return 1;
    case Width::bands:
      return bands;
    case Width::packed_covariance:
      return packed_triangle_size(bands);
  }
  return 1;
}

constexpr const char* flux_covariance_unit = "(1e-18 W m-2 nm-1)^2";

// Every per-star array of /stars with its path (relative to the root) and unit. `Table` is
// StarTable or const StarTable, so one list serves reading, writing, sizing and checking.
template <class Table, class Visit>
void visit_star_columns(Table& table, Visit&& visit) {
  visit("stars/source_id", "", Width::one, table.source_id);
  visit("stars/ra", "deg", Width::one, table.ra);
  visit("stars/dec", "deg", Width::one, table.dec);
  visit("stars/flux", star_table_flux_unit, Width::bands, table.flux);
  visit("stars/flux_cov", flux_covariance_unit, Width::packed_covariance, table.flux_cov);
  visit("stars/parallax", "mas", Width::one, table.parallax);
  visit("stars/parallax_error", "mas", Width::one, table.parallax_error);
  visit("stars/phot_g_mean_mag", "mag", Width::one, table.phot_g_mean_mag);
  visit("stars/bp_rp", "mag", Width::one, table.bp_rp);
  visit("stars/ruwe", "", Width::one, table.ruwe);
  visit("stars/fidelity_v2", "", Width::one, table.fidelity_v2);
  visit("stars/norm_dg", "", Width::one, table.norm_dg);
  visit("stars/phot_bp_rp_excess_factor", "", Width::one, table.phot_bp_rp_excess_factor);
  auto& labels = table.labels;
  visit("stars/labels/teff", "K", Width::one, labels.teff);
  visit("stars/labels/logg", "dex", Width::one, labels.logg);
  visit("stars/labels/feh", "dex", Width::one, labels.feh);
  visit("stars/labels/teff_err", "K", Width::one, labels.teff_err);
  visit("stars/labels/logg_err", "dex", Width::one, labels.logg_err);
  visit("stars/labels/feh_err", "dex", Width::one, labels.feh_err);
  visit("stars/labels/E_prior", "mag", Width::one, labels.E_prior);
  visit("stars/labels/E_prior_err", "mag", Width::one, labels.E_prior_err);
}

// The per-star arrays of /truth (mock tables only).
template <class Table, class Visit>
void visit_truth_columns(Table& table, Visit&& visit) {
  auto& truth = table.truth;
  visit("truth/teff", "K", Width::one, truth.teff);
  visit("truth/logg", "dex", Width::one, truth.logg);
  visit("truth/feh", "dex", Width::one, truth.feh);
  visit("truth/E", "mag", Width::one, truth.E);
  visit("truth/parallax", "mas", Width::one, truth.parallax);
  visit("truth/mass_ratio", "", Width::one, truth.mass_ratio);
  visit("truth/xi", "", Width::one, truth.xi);
  visit("truth/is_binary", "", Width::one, truth.is_binary);
  visit("truth/pathology", "", Width::one, truth.pathology);
  visit("truth/r_v", "", Width::one, truth.r_v);
  visit("truth/distance_pc", "pc", Width::one, truth.distance_pc);
  visit("truth/flux", star_table_flux_unit, Width::bands, truth.flux);
}

template <class Vector>
using element_t = typename std::remove_cvref_t<Vector>::value_type;

template <class T>
T missing_value() {
  if constexpr (std::is_floating_point_v<T>) {
    return std::numeric_limits<T>::quiet_NaN();
  } else {
    return T{0};
  }
}

void check_size(const char* name, std::size_t actual, std::size_t expected, std::size_t rows,
                std::size_t per_row) {
  if (actual == expected) return;
  throw std::logic_error("StarTable: " + std::string(name) + " has " + std::to_string(actual) +
                         " values, expected " + std::to_string(expected) + " (" +
                         std::to_string(rows) + " rows x " + std::to_string(per_row) + ")");
}

}  // namespace

// ---- StarTable ---------------------------------------------------------------------------------

void StarTable::resize(std::size_t rows) {
  const std::size_t m = bands();
  auto resize_column = [&](const char*, const char*, Width width, auto& column) {
    using T = element_t<decltype(column)>;
    column.resize(rows * values_per_row(width, m), missing_value<T>());
  };
  visit_star_columns(*this, resize_column);
  band_names.resize(m);
  if (has_truth) {
    visit_truth_columns(*this, resize_column);
    truth.extinction_R.resize(m, missing_value<double>());
  }
}

void StarTable::reset(std::size_t rows) {
  const std::size_t m = bands();
  auto reset_column = [&](const char*, const char*, Width width, auto& column) {
    using T = element_t<decltype(column)>;
    column.assign(rows * values_per_row(width, m), missing_value<T>());
  };
  visit_star_columns(*this, reset_column);
  band_names.resize(m);
  if (has_truth) {
    visit_truth_columns(*this, reset_column);
    truth.extinction_R.assign(m, missing_value<double>());
  }
}

void StarTable::check_consistent() const {
  const std::size_t n = rows();
  const std::size_t m = bands();
  auto check_column = [&](const char* name, const char*, Width width, const auto& column) {
    const std::size_t per_row = values_per_row(width, m);
    check_size(name, column.size(), n * per_row, n, per_row);
  };
  visit_star_columns(*this, check_column);
  check_size("meta/band_names", band_names.size(), m, 1, m);
  if (has_truth) {
    visit_truth_columns(*this, check_column);
    check_size("truth/meta/extinction_R", truth.extinction_R.size(), m, 1, m);
  }
}

// ---- writing -----------------------------------------------------------------------------------

namespace {

// This rank's rows within the file.
struct RowRange {
  std::uint64_t first = 0;
  std::uint64_t count = 0;
  std::uint64_t total = 0;
};

RowRange rank_row_range(std::size_t local_rows, MPI_Comm comm) {
  RowRange range;
  range.count = local_rows;
  MPI_Allreduce(&range.count, &range.total, 1, MPI_UINT64_T, MPI_SUM, comm);
  std::uint64_t first = 0;
  MPI_Exscan(&range.count, &first, 1, MPI_UINT64_T, MPI_SUM, comm);
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  range.first = rank == 0 ? 0 : first;  // MPI_Exscan leaves rank 0's result undefined
  return range;
}

// What every rank writes identically (attributes are collective), taken from rank 0.
struct TableMetadata {
  std::int32_t healpix_level = 0;
  std::int64_t healpix_pixel = 0;
  std::uint64_t bands = 0;
  std::int32_t has_truth = 0;
  std::vector<std::string> band_names;
  std::string provenance_config;
  std::string provenance_generator;
};

TableMetadata broadcast_metadata(const StarTable& local, MPI_Comm comm) {
  TableMetadata meta;
  meta.healpix_level = local.healpix_level;
  meta.healpix_pixel = local.healpix_pixel;
  meta.bands = local.bands();
  meta.has_truth = local.has_truth ? 1 : 0;
  meta.band_names = local.band_names;
  meta.provenance_config = local.provenance_config;
  meta.provenance_generator = local.provenance_generator;
  MPI_Bcast(&meta.healpix_level, 1, MPI_INT32_T, 0, comm);
  MPI_Bcast(&meta.healpix_pixel, 1, MPI_INT64_T, 0, comm);
  MPI_Bcast(&meta.bands, 1, MPI_UINT64_T, 0, comm);
  MPI_Bcast(&meta.has_truth, 1, MPI_INT32_T, 0, comm);
  meta.band_names.resize(meta.bands);
  for (std::string& name : meta.band_names) broadcast_string(name, comm);
  broadcast_string(meta.provenance_config, comm);
  broadcast_string(meta.provenance_generator, comm);
  return meta;
}

// Every rank learns whether any rank's rows are unusable, so that all give up together rather
// than leaving the others blocked in a collective HDF5 call.
void check_writable(const std::string& path, const StarTable& local, const TableMetadata& meta,
                    MPI_Comm comm) {
  std::string problem;
  try {
    local.check_consistent();
  } catch (const std::logic_error& error) {
    problem = error.what();
  }
  if (problem.empty() && local.bands() != meta.bands) {
    problem = "rank " + std::to_string(comm_rank(comm)) + " has " + std::to_string(local.bands()) +
              " bands, rank 0 has " + std::to_string(meta.bands);
  }
  if (problem.empty() && local.has_truth != (meta.has_truth != 0)) {
    problem = "ranks disagree on whether the table has truth";
  }
  int local_ok = problem.empty() ? 1 : 0;
  int all_ok = 0;
  MPI_Allreduce(&local_ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
  if (all_ok == 0) {
    throw IoError(path + ": cannot write star table: " +
                  (problem.empty() ? "another rank's rows are inconsistent" : problem));
  }
}

// Row chunks of at most 1024 rows and about 512 KiB, so one chunk fits HDF5's default 1 MiB
// chunk cache; never 0 rows, which HDF5 rejects even for an empty table.
std::uint64_t chunk_rows(std::uint64_t total_rows, std::uint64_t bytes_per_row) {
  constexpr std::uint64_t max_rows = 1024;
  constexpr std::uint64_t max_bytes = 512 * 1024;
  const std::uint64_t by_size =
      std::max<std::uint64_t>(max_bytes / std::max<std::uint64_t>(bytes_per_row, 1), 1);
  return std::max<std::uint64_t>(std::min({max_rows, by_size, total_rows}), 1);
}

template <class T>
void write_column(h5::Group& root, const std::string& name, const char* unit, Width width,
                  const std::vector<T>& values, const RowRange& range, std::uint64_t bands) {
  const std::uint64_t per_row = values_per_row(width, bands);
  h5::Dims shape{range.total};
  if (width != Width::one) shape.push_back(per_row);
  const h5::Layout layout{chunk_rows(range.total, per_row * sizeof(T))};
  h5::Dataset dataset = root.create_dataset<T>(name, shape, layout);
  dataset.write_attribute("units", std::string(unit));
  dataset.write_rows<T>(range.first, range.count, std::span<const T>(values));
}

// A small per-band array written by rank 0 alone (the others select nothing).
void write_band_array(h5::Group& root, const std::string& name, const char* unit,
                      const std::vector<double>& values, std::uint64_t bands, bool is_root) {
  h5::Dataset dataset = root.create_dataset<double>(name, {bands}, h5::Layout{});
  dataset.write_attribute("units", std::string(unit));
  const std::uint64_t rows = is_root ? bands : 0;
  dataset.write_rows<double>(0, rows,
                             is_root ? std::span<const double>(values) : std::span<const double>());
}

void write_metadata(h5::File& file, const TableMetadata& meta, const StarTable& local,
                    bool is_root) {
  h5::Group group = file.create_group("meta");
  group.write_attribute("schema_version", std::int32_t{star_table_schema_version});
  group.write_attribute("healpix_level", meta.healpix_level);
  group.write_attribute("healpix_pixel", meta.healpix_pixel);
  group.write_attribute("flux_unit", std::string(star_table_flux_unit));
  group.write_attribute("config", meta.provenance_config);
  group.write_attribute("generator", meta.provenance_generator);
  write_band_array(file, "meta/wavelength_nm", "nm", local.wavelength_nm, meta.bands, is_root);

  std::size_t longest = 0;
  for (const std::string& name : meta.band_names) longest = std::max(longest, name.size());
  h5::Dataset names = file.create_string_dataset("meta/band_names", meta.bands, longest);
  names.write_string_rows(
      0, is_root ? std::span<const std::string>(meta.band_names) : std::span<const std::string>());
}

void write_rows_and_truth(h5::File& file, const TableMetadata& meta, const StarTable& local,
                          const RowRange& range, bool is_root) {
  auto write = [&](const char* name, const char* unit, Width width, const auto& column) {
    write_column(file, name, unit, width, column, range, meta.bands);
  };
  file.create_group("stars");
  file.create_group("stars/labels");
  visit_star_columns(local, write);
  if (meta.has_truth == 0) return;
  file.create_group("truth");
  file.create_group("truth/meta");
  visit_truth_columns(local, write);
  write_band_array(file, "truth/meta/extinction_R", "", local.truth.extinction_R, meta.bands,
                   is_root);
}

// Rank 0 renames the finished file; every rank learns whether that worked.
void publish(const std::string& temporary, const std::string& path, MPI_Comm comm) {
  MPI_Barrier(comm);
  std::string failure;
  if (comm_rank(comm) == 0) {
    std::error_code error;
    std::filesystem::rename(temporary, path, error);
    if (error) failure = path + ": cannot rename " + temporary + " to it: " + error.message();
  }
  broadcast_string(failure, comm);
  if (!failure.empty()) throw IoError(failure);
}

}  // namespace

void write_star_table(const std::string& path, const StarTable& local_rows, MPI_Comm comm) {
  const TableMetadata meta = broadcast_metadata(local_rows, comm);
  check_writable(path, local_rows, meta, comm);
  const RowRange range = rank_row_range(local_rows.rows(), comm);
  const bool is_root = comm_rank(comm) == 0;
  const std::string temporary = path + ".tmp";
  {
    h5::File file = h5::File::create(temporary, comm);
    write_metadata(file, meta, local_rows, is_root);
    write_rows_and_truth(file, meta, local_rows, range, is_root);
    file.close();
  }
  publish(temporary, path, comm);
}

// ---- reading -----------------------------------------------------------------------------------

namespace {

h5::Dims expected_shape(Width width, std::uint64_t rows, std::uint64_t bands) {
  if (width == Width::one) return {rows};
  return {rows, values_per_row(width, bands)};
}

void check_meta_attributes(const h5::File& file, StarTableInfo& info) {
  const h5::Group meta = file.open_group("meta");
  const std::int64_t version = meta.read_integer_attribute("schema_version");
  if (version != star_table_schema_version) {
    throw IoError(file.file_name() + ": /meta@schema_version is " + std::to_string(version) +
                  ", expected " + std::to_string(star_table_schema_version));
  }
  info.schema_version = static_cast<int>(version);
  info.healpix_level = static_cast<int>(meta.read_integer_attribute("healpix_level"));
  info.healpix_pixel = meta.read_integer_attribute("healpix_pixel");
  const std::string unit = meta.read_string_attribute("flux_unit");
  if (unit != star_table_flux_unit) {
    throw IoError(file.file_name() + ": /meta@flux_unit is '" + unit + "', expected '" +
                  star_table_flux_unit + "'");
  }
}

// Checks the whole contract of DESIGN §4 and returns what the file holds.
StarTableInfo check_contract(const h5::File& file) {
  StarTableInfo info;
  check_meta_attributes(file, info);
  const std::uint64_t bands = h5::dataset_length(file, "meta/wavelength_nm");
  const std::uint64_t rows = h5::dataset_length(file, "stars/source_id");
  h5::open_checked<double>(file, "meta/wavelength_nm", {bands});
  const std::uint64_t names = h5::dataset_length(file, "meta/band_names");
  if (names != bands) {
    throw IoError(file.file_name() + ": /meta/band_names has " + std::to_string(names) +
                  " entries, /meta/wavelength_nm " + std::to_string(bands));
  }
  auto check_column = [&](const char* name, const char*, Width width, const auto& column) {
    using T = element_t<decltype(column)>;
    h5::open_checked<T>(file, name, expected_shape(width, rows, bands));
  };
  const StarTable layout;  // only the column list is used
  visit_star_columns(layout, check_column);
  info.has_truth = file.has("truth");
  if (info.has_truth) {
    visit_truth_columns(layout, check_column);
    h5::open_checked<double>(file, "truth/meta/extinction_R", {bands});
  }
  info.rows = rows;
  info.bands = bands;
  return info;
}

std::string optional_string_attribute(const h5::Group& group, const std::string& name) {
  return group.has_attribute(name) ? group.read_string_attribute(name) : std::string();
}

template <class T>
void read_all(const h5::File& file, const std::string& name, std::vector<T>& out) {
  h5::Dataset dataset = file.open_dataset(name);
  dataset.read_rows<T>(0, out.size(), std::span<T>(out));
}

StarTable read_checked_rows(const h5::File& file, const StarTableInfo& info,
                            std::uint64_t first_row, std::uint64_t row_count,
                            const StarTableColumns& columns = {}) {
  if (first_row > info.rows || row_count > info.rows - first_row) {
    throw IoError(file.file_name() + ": rows [" + std::to_string(first_row) + "," +
                  std::to_string(first_row + row_count) + ") requested, the file has " +
                  std::to_string(info.rows));
  }
  StarTable table;
  table.healpix_level = info.healpix_level;
  table.healpix_pixel = info.healpix_pixel;
  table.has_truth = info.has_truth && columns.truth;
  table.wavelength_nm.resize(info.bands);
  read_all(file, "meta/wavelength_nm", table.wavelength_nm);
  table.band_names = file.open_dataset("meta/band_names").read_strings();
  const h5::Group meta = file.open_group("meta");
  table.provenance_config = optional_string_attribute(meta, "config");
  table.provenance_generator = optional_string_attribute(meta, "generator");
  table.resize(row_count);
  auto read_column = [&](const char* name, const char*, Width width, auto& column) {
    using T = element_t<decltype(column)>;
    if (!columns.spectra && width != Width::one) {
      column.clear();
      column.shrink_to_fit();
      return;
    }
    file.open_dataset(name).read_rows<T>(first_row, row_count, std::span<T>(column));
  };
  visit_star_columns(table, read_column);
  if (table.has_truth) {
    visit_truth_columns(table, read_column);
    read_all(file, "truth/meta/extinction_R", table.truth.extinction_R);
  }
  return table;
}

}  // namespace

StarTableInfo read_star_table_info(const std::string& path) {
  const h5::File file = h5::File::open_read_only(path, MPI_COMM_SELF);
  return check_contract(file);
}

StarTable read_star_table(const std::string& path, MPI_Comm comm, std::size_t first_row,
                          std::size_t row_count) {
  const h5::File file = h5::File::open_read_only(path, comm);
  const StarTableInfo info = check_contract(file);
  return read_checked_rows(file, info, first_row, row_count);
}

StarTable read_star_table(const std::string& path) {
  const h5::File file = h5::File::open_read_only(path, MPI_COMM_SELF);
  const StarTableInfo info = check_contract(file);
  return read_checked_rows(file, info, 0, info.rows);
}

StarTable read_star_table_rows(const std::string& path, std::size_t first_row,
                               std::size_t row_count, const StarTableColumns& columns) {
  const h5::File file = h5::File::open_read_only(path, MPI_COMM_SELF);
  const StarTableInfo info = check_contract(file);
  return read_checked_rows(file, info, first_row, row_count, columns);
}

}  // namespace xps
