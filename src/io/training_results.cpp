#include "xpstellar/training_results.hpp"

#include <filesystem>
#include <limits>
#include <span>

#include "h5.hpp"
#include "xpstellar/error.hpp"

namespace xps {

void TrainingResultsTable::resize(std::size_t rows) {
  source_id.assign(rows, 0);
  for (auto* column : {&role, &exclusion, &outlier}) column->assign(rows, 0);
  for (auto* column : {&teff, &feh, &logg, &parallax, &E, &xi, &chi2})
    column->assign(rows, std::numeric_limits<float>::quiet_NaN());
}

std::string training_results_file_name(int level, std::int64_t pixel) {
  return "training_" + std::to_string(level) + "_" + std::to_string(pixel) + ".h5";
}

namespace {

template <class Table, class Visit>
void visit_columns(Table& t, Visit&& visit) {
  visit("training/source_id", "", t.source_id);
  visit("training/role", "0 unlabelled, 1 trained, 2 validation, 3 excluded", t.role);
  visit("training/exclusion", "reason code (docs/training.md)", t.exclusion);
  visit("training/outlier", "self-cleaning bits: 1 labels/parallax, 2 flux, 4 joint", t.outlier);
  visit("training/teff", "K", t.teff);
  visit("training/feh", "dex", t.feh);
  visit("training/logg", "dex", t.logg);
  visit("training/parallax", "mas", t.parallax);
  visit("training/E", "mag", t.E);
  visit("training/xi", "", t.xi);
  visit("training/chi2", "", t.chi2);
}

}  // namespace

void write_training_results(const std::string& path, const TrainingResultsTable& table) {
  const std::string temporary = path + ".tmp";
  const std::uint64_t rows = table.rows();
  {
    h5::File file = h5::File::create(temporary, MPI_COMM_SELF);
    h5::Group meta = file.create_group("meta");
    meta.write_attribute("schema_version", std::int32_t{training_results_schema_version});
    meta.write_attribute("healpix_level", std::int32_t{table.healpix_level});
    meta.write_attribute("healpix_pixel", table.healpix_pixel);
    meta.write_attribute("star_table", table.star_table);
    meta.write_attribute("model", table.model);
    file.create_group("training");
    const h5::Layout layout{std::max<std::uint64_t>(std::min<std::uint64_t>(rows, 16384), 1)};
    visit_columns(table, [&](const char* name, const char* unit, const auto& column) {
      using T = typename std::remove_cvref_t<decltype(column)>::value_type;
      if (column.size() != rows)
        throw std::logic_error(std::string("TrainingResultsTable: ") + name + " has the wrong size");
      h5::Dataset dataset = file.create_dataset<T>(name, {rows}, layout);
      dataset.write_attribute("units", std::string(unit));
      dataset.write_rows<T>(0, rows, std::span<const T>(column));
    });
    file.close();
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) throw IoError(path + ": cannot rename " + temporary + " to it: " + error.message());
}

TrainingResultsTable read_training_results(const std::string& path) {
  const h5::File file = h5::File::open_read_only(path, MPI_COMM_SELF);
  const h5::Group meta = file.open_group("meta");
  if (meta.read_integer_attribute("schema_version") != training_results_schema_version)
    throw IoError(path + ": /meta@schema_version is not " + std::to_string(training_results_schema_version));
  TrainingResultsTable table;
  table.healpix_level = static_cast<int>(meta.read_integer_attribute("healpix_level"));
  table.healpix_pixel = meta.read_integer_attribute("healpix_pixel");
  table.star_table = meta.read_string_attribute("star_table");
  table.model = meta.read_string_attribute("model");
  const std::uint64_t rows = h5::dataset_length(file, "training/source_id");
  table.resize(rows);
  visit_columns(table, [&](const char* name, const char*, auto& column) {
    using T = typename std::remove_cvref_t<decltype(column)>::value_type;
    h5::open_checked<T>(file, name, {rows}).template read_rows<T>(0, rows, std::span<T>(column));
  });
  return table;
}

}  // namespace xps
