#include "xpstellar/catalog.hpp"

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <type_traits>

#include "h5.hpp"
#include "xpstellar/error.hpp"

namespace xps {

const char* fit_status_name(FitStatus status) {
  switch (status) {
    case FitStatus::converged:
      return "converged";
    case FitStatus::not_converged:
      return "not_converged";
    case FitStatus::no_bands:
      return "no_bands";
    case FitStatus::non_finite_flux:
      return "non_finite_flux";
    case FitStatus::non_positive_variance:
      return "non_positive_variance";
    case FitStatus::not_positive_definite:
      return "not_positive_definite";
    case FitStatus::no_information:
      return "no_information";
    case FitStatus::count:
      break;
  }
  return "unknown";
}

namespace {

constexpr const char* catalog_group = "catalog";
constexpr const char* parameter_units = "kK, dex, dex, mag, mas";
// One column of the catalog: dataset name (= CatalogRows member), values per row, attributes.
struct ColumnInfo {
  const char* name;
  std::uint64_t width;  // 1: shape [N]; otherwise [N, width]
  const char* unit;
  const char* description;
};

// Every column in file order, with the matching member of `rows` (const or not).
template <class Rows, class Visit>
void visit_columns(Rows& rows, Visit&& visit) {
  constexpr std::uint64_t p = catalog_parameters;
  constexpr std::uint64_t t = catalog_triangle;
  visit(ColumnInfo{"gdr3_source_id", 1, "", "Gaia DR3 source_id"}, rows.gdr3_source_id);
  visit(ColumnInfo{"ra", 1, "deg", "right ascension, ICRS (from the star table)"}, rows.ra);
  visit(ColumnInfo{"dec", 1, "deg", "declination, ICRS (from the star table)"}, rows.dec);
  visit(ColumnInfo{"stellar_params_est", p, parameter_units,
                   "estimates of Teff, [Fe/H], logg, E (extinction amplitude), parallax at the "
                   "optimum of the inference loss; if /catalog@calibrated is 1, less the "
                   "calibration offsets and with the parallax recombined from the calibrated "
                   "spectrophotometric one and the measured one; NaN when not fitted"},
        rows.stellar_params_est);
  visit(ColumnInfo{"stellar_params_err", p, parameter_units,
                   "1-sigma uncertainties: square roots of the diagonal of "
                   "stellar_params_cov_triu"},
        rows.stellar_params_err);
  visit(ColumnInfo{"chi2_opt", 1, "", "flux chi^2 at the optimum over the bands used"},
        rows.chi2_opt);
  visit(ColumnInfo{"ln_prior", 1, "",
                   "ln of the model's Gaussian-mixture prior density of (Teff, [Fe/H], logg) at "
                   "the estimate"},
        rows.ln_prior);
  visit(ColumnInfo{"teff_confidence", 1, "",
                   "classifier probability that Teff is reliable; NaN until the classifiers exist"},
        rows.teff_confidence);
  visit(ColumnInfo{"feh_confidence", 1, "",
                   "classifier probability that [Fe/H] is reliable; NaN until the classifiers "
                   "exist"},
        rows.feh_confidence);
  visit(ColumnInfo{"logg_confidence", 1, "",
                   "classifier probability that logg is reliable; NaN until the classifiers exist"},
        rows.logg_confidence);
  visit(ColumnInfo{"quality_flags", 1, "",
                   "bit mask (attribute quality_flags_bits of /catalog); keep quality_flags < 8"},
        rows.quality_flags);
  visit(ColumnInfo{"stellar_params_icov_triu", t, "1 / (unit_i unit_j)",
                   "inverse covariance of stellar_params_est (the Fisher matrix without the prior; "
                   "if /catalog@calibrated is 1, the inverse of stellar_params_cov_triu), packed "
                   "upper triangle, row-major: (0,0) (0,1) ... (0,4) (1,1) ... (4,4)"},
        rows.stellar_params_icov_triu);
  visit(ColumnInfo{"stellar_params_cov_triu", t, "unit_i unit_j",
                   "covariance of stellar_params_est (inverse of the Fisher matrix; if "
                   "/catalog@calibrated is 1, plus the calibration's error floors and with the "
                   "recombined parallax's variance, correlations kept), packed upper "
                   "triangle, row-major: (0,0) (0,1) ... (0,4) (1,1) ... (4,4)"},
        rows.stellar_params_cov_triu);
  visit(ColumnInfo{"chi2_dof", 1, "",
                   "chi2_opt / (bands used - fitted parameters); quality bit 3 above "
                   "flags.chi2_dof_max"},
        rows.chi2_dof);
  visit(ColumnInfo{"xi_est", 1, "",
                   "extinction-curve shape parameter at the optimum; NaN if the model has none"},
        rows.xi_est);
  visit(ColumnInfo{"loss_opt", 1, "",
                   "inference loss L_inf = chi^2 + parallax term - 2 ln prior - 2 ln parallax - 2 "
                   "ln E [+ (xi / sigma_xi)^2 with a xi prior] at the optimum"},
        rows.loss_opt);
  visit(ColumnInfo{"parallax_spectro", 1, "mas",
                   "spectrophotometric parallax: what the spectrum alone says, taken back out of "
                   "the joint fit (1/s^2 = 1/err^2 - 1/parallax_error^2); if /catalog@calibrated "
                   "is 1, calibrated (what the parallax estimate was recombined from); NaN when "
                   "not fitted or when the spectrum adds no parallax information"},
        rows.parallax_spectro);
  visit(ColumnInfo{"parallax_spectro_error", 1, "mas",
                   "1-sigma uncertainty of parallax_spectro (docs/catalog.md: what it is good "
                   "for)"},
        rows.parallax_spectro_error);
  visit(ColumnInfo{"fit_status", 1, "",
                   "how the fit ended or why there is none (attribute fit_status_names of "
                   "/catalog)"},
        rows.fit_status);
  visit(ColumnInfo{"iterations", 1, "", "optimiser iterations (or steps) used"}, rows.iterations);
  visit(ColumnInfo{"bands_used", 1, "", "bands with data"}, rows.bands_used);
}

h5::Dims column_shape(std::uint64_t rows, std::uint64_t width) {
  return width == 1 ? h5::Dims{rows} : h5::Dims{rows, width};
}

std::string quality_flags_bits_text() {
  return "bit 0 (1): Teff confidence < 0.5; bit 1 (2): [Fe/H] confidence < 0.5; bit 2 (4): logg "
         "confidence < 0.5 (bits 0-2 stay 0 until the confidence classifiers exist); bit 3 (8): "
         "chi2_dof > flags.chi2_dof_max (default 2); bit 4 (16): ln_prior below the model's "
         "ln_prior_cut; bit 5 (32): |parallax - parallax_est| / parallax_error > "
         "flags.parallax_pull_max (default 10), parallax being Gaia's minus parallax_zero_point; "
         "bit 6 (64): the optimiser stopped without "
         "converging; bit 7 (128): not fitted (fit_status says why), estimates NaN. Keep "
         "quality_flags < 8.";
}

std::string fit_status_names_text() {
  std::string text;
  for (int s = 0; s < static_cast<int>(FitStatus::count); ++s) {
    if (s > 0) text += ", ";
    text += std::to_string(s) + " " + fit_status_name(static_cast<FitStatus>(s));
  }
  return text;
}

}  // namespace

// ---- CatalogRows -------------------------------------------------------------------------------

void CatalogRows::reset(std::size_t n) {
  visit_columns(*this, [n](const ColumnInfo& column, auto& values) {
    using T = typename std::remove_cvref_t<decltype(values)>::value_type;
    const T missing = std::is_floating_point_v<T> ? std::numeric_limits<T>::quiet_NaN() : T{0};
    values.assign(n * column.width, missing);
  });
}

void CatalogRows::check_consistent() const {
  const std::size_t n = rows();
  visit_columns(*this, [n](const ColumnInfo& column, const auto& values) {
    if (values.size() != n * column.width) {
      throw std::logic_error("CatalogRows: " + std::string(column.name) + " has " +
                             std::to_string(values.size()) + " values, expected " +
                             std::to_string(n * column.width) + " for " + std::to_string(n) +
                             " rows");
    }
  });
}

// ---- CatalogWriter -----------------------------------------------------------------------------

struct CatalogWriter::Impl {
  std::string path;
  std::string temporary;
  std::uint64_t total_rows = 0;
  std::optional<h5::File> file;
  std::vector<h5::Dataset> datasets;               // in visit_columns order
  std::map<std::uint64_t, std::uint64_t> written;  // disjoint, merged row ranges [first, end)
  bool committed = false;

  void record_written(std::uint64_t first, std::uint64_t end);
  // Closes every HDF5 object; throws IoError if the file cannot be flushed.
  void close();
};

void CatalogWriter::Impl::record_written(std::uint64_t first, std::uint64_t end) {
  if (first == end) return;
  auto next = written.upper_bound(first);
  if (next != written.begin()) {
    auto previous = std::prev(next);
    if (previous->second >= first) {  // overlaps or touches the range before
      first = previous->first;
      end = std::max(end, previous->second);
      next = written.erase(previous);
    }
  }
  while (next != written.end() && next->first <= end) {
    end = std::max(end, next->second);
    next = written.erase(next);
  }
  written.emplace(first, end);
}

void CatalogWriter::Impl::close() {
  datasets.clear();
  if (file) {
    h5::File closing = std::move(*file);
    file.reset();
    closing.close();
  }
}

CatalogWriter::CatalogWriter(const std::string& path, std::size_t total_rows,
                             const CatalogAttributes& attributes)
    : m_impl(std::make_unique<Impl>()) {
  Impl& impl = *m_impl;
  impl.path = path;
  impl.temporary = path + ".tmp";
  impl.total_rows = total_rows;
  try {
    // One process, the POSIX driver: a rank writes its own partition while the others work.
    impl.file.emplace(h5::File::create(impl.temporary, MPI_COMM_SELF));
    h5::Group group = impl.file->create_group(catalog_group);
    group.write_attribute("schema_version", std::int32_t{attributes.schema_version});
    group.write_attribute("healpix_level", std::int32_t{attributes.healpix_level});
    group.write_attribute("healpix_pixel", attributes.healpix_pixel);
    group.write_text_attribute("star_table", attributes.star_table);
    group.write_text_attribute("model_file", attributes.model_file);
    group.write_text_attribute("model_checksum", attributes.model_checksum);
    group.write_attribute("parallax_zero_point", attributes.parallax_zero_point);
    group.write_attribute("model_error_level_frac", attributes.model_error_level_frac);
    group.write_attribute("model_error_smooth_frac", attributes.model_error_smooth_frac);
    group.write_attribute("model_error_smooth_length_nm", attributes.model_error_smooth_length_nm);
    group.write_attribute("calibrated", std::int32_t{attributes.calibrated ? 1 : 0});
    group.write_text_attribute("optimizer", attributes.optimizer);
    group.write_text_attribute("config_text", attributes.config_text);
    group.write_text_attribute("code_version", attributes.code_version);
    group.write_text_attribute("parameter_names", "teff,feh,logg,E,parallax");
    group.write_text_attribute("quality_flags_bits", quality_flags_bits_text());
    group.write_text_attribute("fit_status_names", fit_status_names_text());

    // Preallocated, unfiltered chunks: blocks may arrive in any order and the file's bytes depend
    // only on its contents. Not compressed: the float columns are mostly mantissa noise, and a
    // compressed chunk would move in the file each time a block rewrote part of it.
    h5::Layout layout;
    layout.chunk_rows = std::min<std::uint64_t>(total_rows, 16384);
    layout.deflate_level = 0;
    layout.preallocate = true;
    const CatalogRows no_rows;
    visit_columns(no_rows, [&](const ColumnInfo& column, const auto& values) {
      using T = typename std::remove_cvref_t<decltype(values)>::value_type;
      h5::Dataset dataset =
          group.create_dataset<T>(column.name, column_shape(total_rows, column.width), layout);
      dataset.write_text_attribute("unit", column.unit);
      dataset.write_text_attribute("description", column.description);
      impl.datasets.push_back(std::move(dataset));
    });
  } catch (...) {
    impl.close();
    std::error_code ignored;
    std::filesystem::remove(impl.temporary, ignored);
    throw;
  }
}

CatalogWriter::~CatalogWriter() {
  if (!m_impl || m_impl->committed) return;
  try {
    m_impl->close();
  } catch (...) {  // the file is discarded anyway
  }
  std::error_code ignored;
  std::filesystem::remove(m_impl->temporary, ignored);
}

void CatalogWriter::write(std::size_t first_row, const CatalogRows& rows) {
  Impl& impl = *m_impl;
  if (impl.committed || !impl.file)
    throw std::logic_error(impl.path + ": catalog written after commit");
  rows.check_consistent();
  const std::uint64_t n = rows.rows();
  if (first_row > impl.total_rows || n > impl.total_rows - first_row) {
    throw IoError(impl.temporary + ": rows [" + std::to_string(first_row) + "," +
                  std::to_string(first_row + n) + ") outside the catalog's " +
                  std::to_string(impl.total_rows) + " rows");
  }
  if (n == 0) return;
  std::size_t index = 0;
  visit_columns(rows, [&](const ColumnInfo&, const auto& values) {
    using T = typename std::remove_cvref_t<decltype(values)>::value_type;
    impl.datasets[index++].write_rows<T>(first_row, n, std::span<const T>(values));
  });
  impl.record_written(first_row, first_row + n);
}

void CatalogWriter::commit() {
  Impl& impl = *m_impl;
  if (impl.committed) throw std::logic_error(impl.path + ": catalog committed twice");
  const bool complete =
      impl.total_rows == 0 || (impl.written.size() == 1 && impl.written.begin()->first == 0 &&
                               impl.written.begin()->second == impl.total_rows);
  if (!complete) {
    std::uint64_t first_missing = 0;
    if (!impl.written.empty() && impl.written.begin()->first == 0)
      first_missing = impl.written.begin()->second;
    throw std::logic_error(impl.temporary + ": commit with row " + std::to_string(first_missing) +
                           " (of " + std::to_string(impl.total_rows) + ") never written");
  }
  impl.close();
  std::error_code error;
  std::filesystem::rename(impl.temporary, impl.path, error);
  if (error) {
    throw IoError(impl.path + ": cannot rename " + impl.temporary + " to it: " + error.message());
  }
  impl.committed = true;
}

// ---- reading -----------------------------------------------------------------------------------

CatalogRows read_catalog(const std::string& path) {
  const h5::File file = h5::File::open_read_only(path, MPI_COMM_SELF);
  file.open_group(catalog_group);  // a clear message when the file is not a catalog at all
  const std::uint64_t n = h5::dataset_length(file, std::string(catalog_group) + "/gdr3_source_id");
  CatalogRows rows;
  rows.reset(n);
  visit_columns(rows, [&](const ColumnInfo& column, auto& values) {
    using T = typename std::remove_cvref_t<decltype(values)>::value_type;
    const std::string name = std::string(catalog_group) + "/" + column.name;
    h5::open_checked<T>(file, name, column_shape(n, column.width))
        .template read_rows<T>(0, n, std::span<T>(values));
  });
  return rows;
}

CatalogAttributes read_catalog_attributes(const std::string& path) {
  const h5::File file = h5::File::open_read_only(path, MPI_COMM_SELF);
  const h5::Group group = file.open_group(catalog_group);
  CatalogAttributes attributes;
  attributes.schema_version = static_cast<int>(group.read_integer_attribute("schema_version"));
  attributes.healpix_level = static_cast<int>(group.read_integer_attribute("healpix_level"));
  attributes.healpix_pixel = group.read_integer_attribute("healpix_pixel");
  attributes.star_table = group.read_string_attribute("star_table");
  attributes.model_file = group.read_string_attribute("model_file");
  attributes.model_checksum = group.read_string_attribute("model_checksum");
  attributes.parallax_zero_point = group.read_double_attribute("parallax_zero_point");
  for (const auto& [name, value] : {std::pair{"model_error_level_frac", &attributes.model_error_level_frac},
                                    {"model_error_smooth_frac", &attributes.model_error_smooth_frac},
                                    {"model_error_smooth_length_nm", &attributes.model_error_smooth_length_nm}})
    if (group.has_attribute(name)) *value = group.read_double_attribute(name);  // older files: none
  if (group.has_attribute("calibrated")) attributes.calibrated = group.read_integer_attribute("calibrated") != 0;
  attributes.optimizer = group.read_string_attribute("optimizer");
  attributes.config_text = group.read_string_attribute("config_text");
  attributes.code_version = group.read_string_attribute("code_version");
  return attributes;
}

}  // namespace xps
