// A small CSV reader for catalogue exports (Gaia Archive, 2MASS, unWISE, spectroscopic labels):
// a header row of column names, comma-separated fields, double quotes around fields that hold
// commas, empty fields for nulls, and '#' comment lines (as ECSV headers have). Columns are
// looked up by name; every error names the file, the line and the column.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace xps {

class CsvTable {
public:
  // Reads the whole file. Throws IoError if it cannot be read, has no header, or a row has a
  // different number of fields than the header.
  static CsvTable read(const std::string& path);

  const std::string& path() const { return m_path; }
  std::size_t rows() const { return m_rows; }
  bool has(const std::string& column) const { return m_index.count(column) > 0; }
  // Throws IoError if any of `columns` is absent, listing them.
  void require(const std::vector<std::string>& columns) const;

  // NaN for empty fields; IoError naming file, line and column for text that is not a number.
  std::vector<double> numbers(const std::string& column) const;
  // As numbers(), or all NaN when the column is absent (optional columns).
  std::vector<double> numbers_or_nan(const std::string& column) const;
  // IoError for empty or non-integer fields.
  std::vector<std::int64_t> integers(const std::string& column) const;
  std::vector<std::string> strings(const std::string& column) const;

private:
  std::size_t column_index(const std::string& column) const;
  std::string where(std::size_t row, const std::string& column) const;

  std::string m_path;
  std::vector<std::string> m_names;
  std::map<std::string, std::size_t> m_index;
  std::vector<std::string> m_cells;      // row-major
  std::vector<std::size_t> m_line_of_row;  // 1-based line numbers, for messages
  std::size_t m_rows = 0;
};

}  // namespace xps
