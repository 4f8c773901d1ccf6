// Sampled-spectra files (include/xpstellar/sampled_spectra.hpp; written by xps_xpconvert, read by
// xps_prepare). One process writes and reads them (MPI_COMM_SELF): the converter streams rows.
#include "xpstellar/sampled_spectra.hpp"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <span>

#include "io/h5.hpp"
#include "xpstellar/error.hpp"

namespace xps {

namespace {

constexpr const char* flux_unit = "W m-2 nm-1";
constexpr const char* covariance_unit = "(W m-2 nm-1)^2";

// Row chunks of at most 512 KiB and 1024 rows, so one chunk fits HDF5's default 1 MiB chunk
// cache; a power of two, so that appended batches of a power-of-two size fill whole chunks.
std::uint64_t chunk_rows(std::uint64_t bytes_per_row) {
  constexpr std::uint64_t max_rows = 1024;
  constexpr std::uint64_t max_bytes = 512 * 1024;
  std::uint64_t rows = 1;
  while (rows < max_rows && 2 * rows * bytes_per_row <= max_bytes) rows *= 2;
  return rows;
}

// The covariance (M^2 values a row, ~30 KB at M = 61) is stored without filters: deflating its
// noise-dominated mantissas saves ~20 % of the space but costs more time than converting.
constexpr int covariance_deflate_level = 0;

template <class T>
h5::Dataset create_rows(h5::File& file, const std::string& name, h5::Dims row_shape,
                        const char* unit, int deflate_level = h5::Layout{}.deflate_level) {
  std::uint64_t values_per_row = 1;
  for (const auto extent : row_shape) values_per_row *= extent;
  h5::Dims shape{0};
  shape.insert(shape.end(), row_shape.begin(), row_shape.end());
  h5::Dataset dataset = file.create_dataset<T>(
      name, shape, h5::Layout{chunk_rows(values_per_row * sizeof(T)), deflate_level});
  if (unit) dataset.write_attribute("units", std::string(unit));
  return dataset;
}

template <class T>
void append_rows(h5::Dataset& dataset, std::uint64_t first_row, std::uint64_t rows,
                 const std::vector<T>& values) {
  dataset.resize_rows(first_row + rows);
  dataset.write_rows<T>(first_row, rows, std::span<const T>(values));
}

void check_size(const std::string& path, const char* name, std::size_t actual,
                std::size_t expected) {
  if (actual != expected) {
    throw IoError(path + ": cannot append " + name + " of " + std::to_string(actual) +
                  " values, expected " + std::to_string(expected));
  }
}

}  // namespace

struct SampledSpectraWriter::Impl {
  Impl(const std::string& final_path, const std::vector<double>& wavelength,
       const std::string& provenance)
      : path(final_path),
        temporary(final_path + ".tmp"),
        wavelength_nm(wavelength),
        file(h5::File::create(temporary, MPI_COMM_SELF)) {
    const std::uint64_t m = wavelength.size();
    file.write_attribute("provenance", provenance);
    file.write_attribute("flux_unit", std::string(flux_unit));
    h5::Dataset wavelengths = file.create_dataset<double>("wavelength_nm", {m}, h5::Layout{});
    wavelengths.write_attribute("units", std::string("nm"));
    wavelengths.write_rows<double>(0, m, std::span<const double>(wavelength));
    source_id.emplace(create_rows<std::int64_t>(file, "source_id", {}, nullptr));
    flux.emplace(create_rows<double>(file, "flux", {m}, flux_unit));
    flux_error.emplace(create_rows<double>(file, "flux_error", {m}, flux_unit));
    flux_cov.emplace(
        create_rows<double>(file, "flux_cov", {m, m}, covariance_unit, covariance_deflate_level));
  }

  void close_datasets() {
    source_id.reset();
    flux.reset();
    flux_error.reset();
    flux_cov.reset();
  }

  std::string path;
  std::string temporary;
  std::vector<double> wavelength_nm;
  h5::File file;
  std::optional<h5::Dataset> source_id, flux, flux_error, flux_cov;
  std::uint64_t rows = 0;
  bool closed = false;
};

SampledSpectraWriter::SampledSpectraWriter(const std::string& path,
                                           const std::vector<double>& wavelength_nm,
                                           const std::string& provenance)
    : m_impl(std::make_unique<Impl>(path, wavelength_nm, provenance)) {}

SampledSpectraWriter::~SampledSpectraWriter() {
  if (!m_impl || m_impl->closed) return;
  const std::string temporary = m_impl->temporary;
  m_impl.reset();  // closes every HDF5 object
  std::error_code ignored;
  std::filesystem::remove(temporary, ignored);
}

void SampledSpectraWriter::append(const SampledSpectra& batch) {
  Impl& impl = *m_impl;
  if (impl.closed) throw IoError(impl.path + ": append after close");
  if (!batch.wavelength_nm.empty() && batch.wavelength_nm != impl.wavelength_nm) {
    throw IoError(impl.path + ": appended rows are sampled on a different wavelength grid");
  }
  const std::size_t n = batch.rows();
  const std::size_t m = impl.wavelength_nm.size();
  check_size(impl.path, "flux", batch.flux.size(), n * m);
  check_size(impl.path, "flux_error", batch.flux_error.size(), n * m);
  check_size(impl.path, "flux_cov", batch.flux_cov.size(), n * m * m);
  if (n == 0) return;
  append_rows(*impl.source_id, impl.rows, n, batch.source_id);
  append_rows(*impl.flux, impl.rows, n, batch.flux);
  append_rows(*impl.flux_error, impl.rows, n, batch.flux_error);
  append_rows(*impl.flux_cov, impl.rows, n, batch.flux_cov);
  impl.rows += n;
}

void SampledSpectraWriter::close() {
  Impl& impl = *m_impl;
  if (impl.closed) return;
  impl.close_datasets();
  impl.file.close();
  std::error_code error;
  std::filesystem::rename(impl.temporary, impl.path, error);
  if (error) {
    throw IoError(impl.path + ": cannot rename " + impl.temporary + " to it: " + error.message());
  }
  impl.closed = true;
}

std::size_t SampledSpectraWriter::rows_written() const { return m_impl->rows; }

// ---- reading -----------------------------------------------------------------------------------

namespace {

template <class T>
void read_rows(const h5::Dataset& dataset, std::uint64_t first, std::uint64_t count,
               std::size_t per_row, std::vector<T>& out) {
  out.resize(count * per_row);
  dataset.read_rows<T>(first, count, std::span<T>(out));
}

}  // namespace

SampledSpectra read_sampled_spectra(const std::string& path, std::size_t first_row,
                                    std::size_t row_count) {
  const h5::File file = h5::File::open_read_only(path, MPI_COMM_SELF);
  const std::uint64_t n = h5::dataset_length(file, "source_id");
  const std::uint64_t m = h5::dataset_length(file, "wavelength_nm");
  const h5::Dataset source_id = h5::open_checked<std::int64_t>(file, "source_id", {n});
  const h5::Dataset wavelength = h5::open_checked<double>(file, "wavelength_nm", {m});
  const h5::Dataset flux = h5::open_checked<double>(file, "flux", {n, m});
  const h5::Dataset flux_error = h5::open_checked<double>(file, "flux_error", {n, m});
  const h5::Dataset flux_cov = h5::open_checked<double>(file, "flux_cov", {n, m, m});
  if (first_row > n) {
    throw IoError(path + ": rows from " + std::to_string(first_row) + " requested, the file has " +
                  std::to_string(n));
  }
  const std::uint64_t count = std::min<std::uint64_t>(row_count, n - first_row);
  SampledSpectra spectra;
  read_rows(wavelength, 0, m, 1, spectra.wavelength_nm);
  read_rows(source_id, first_row, count, 1, spectra.source_id);
  read_rows(flux, first_row, count, m, spectra.flux);
  read_rows(flux_error, first_row, count, m, spectra.flux_error);
  read_rows(flux_cov, first_row, count, m * m, spectra.flux_cov);
  return spectra;
}

}  // namespace xps
