#include "xpstellar/csv_table.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>

#include "xpstellar/error.hpp"

namespace xps {
namespace {

// Splits one line into fields, honouring double quotes ("" inside quotes is a quote).
std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') fields.back() += '"', ++i;
      else if (c == '"') quoted = false;
      else fields.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  return fields;
}

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

bool is_null(const std::string& text) {
  return text.empty() || text == "null" || text == "NULL" || text == "--" || text == "nan" ||
         text == "NaN";
}

}  // namespace

CsvTable CsvTable::read(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw IoError(path + ": cannot open CSV file");
  CsvTable table;
  table.m_path = path;
  std::string line;
  std::size_t line_number = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (line.empty() || line[0] == '#' || line == "\r") continue;
    std::vector<std::string> fields = split_fields(line);
    for (auto& field : fields) field = trim(field);
    if (table.m_names.empty()) {
      table.m_names = fields;
      for (std::size_t i = 0; i < fields.size(); ++i) {
        if (!table.m_index.emplace(fields[i], i).second)
          throw IoError(path + ": column '" + fields[i] + "' appears twice in the header");
      }
      continue;
    }
    if (fields.size() != table.m_names.size())
      throw IoError(path + ":" + std::to_string(line_number) + ": " +
                    std::to_string(fields.size()) + " fields, the header has " +
                    std::to_string(table.m_names.size()));
    table.m_cells.insert(table.m_cells.end(), fields.begin(), fields.end());
    table.m_line_of_row.push_back(line_number);
    ++table.m_rows;
  }
  if (file.bad()) throw IoError(path + ": read error");
  if (table.m_names.empty()) throw IoError(path + ": no header row (empty file?)");
  return table;
}

void CsvTable::require(const std::vector<std::string>& columns) const {
  std::string missing;
  for (const auto& column : columns)
    if (!has(column)) missing += (missing.empty() ? "" : ", ") + column;
  if (!missing.empty()) throw IoError(m_path + ": missing column(s) " + missing);
}

std::size_t CsvTable::column_index(const std::string& column) const {
  const auto it = m_index.find(column);
  if (it == m_index.end()) throw IoError(m_path + ": missing column " + column);
  return it->second;
}

std::string CsvTable::where(std::size_t row, const std::string& column) const {
  return m_path + ":" + std::to_string(m_line_of_row[row]) + ": column " + column;
}

std::vector<double> CsvTable::numbers(const std::string& column) const {
  const std::size_t c = column_index(column);
  std::vector<double> values(m_rows, std::numeric_limits<double>::quiet_NaN());
  for (std::size_t row = 0; row < m_rows; ++row) {
    const std::string& text = m_cells[row * m_names.size() + c];
    if (is_null(text)) continue;
    const char* end = text.data() + text.size();
    const auto [last, error] = std::from_chars(text.data(), end, values[row]);
    if (error != std::errc() || last != end)
      throw IoError(where(row, column) + ": '" + text + "' is not a number");
  }
  return values;
}

std::vector<double> CsvTable::numbers_or_nan(const std::string& column) const {
  if (!has(column)) return std::vector<double>(m_rows, std::numeric_limits<double>::quiet_NaN());
  return numbers(column);
}

std::vector<std::int64_t> CsvTable::integers(const std::string& column) const {
  const std::size_t c = column_index(column);
  std::vector<std::int64_t> values(m_rows);
  for (std::size_t row = 0; row < m_rows; ++row) {
    const std::string& text = m_cells[row * m_names.size() + c];
    const char* end = text.data() + text.size();
    const auto [last, error] = std::from_chars(text.data(), end, values[row]);
    if (text.empty() || error != std::errc() || last != end)
      throw IoError(where(row, column) + ": '" + text + "' is not an integer");
  }
  return values;
}

std::vector<std::string> CsvTable::strings(const std::string& column) const {
  const std::size_t c = column_index(column);
  std::vector<std::string> values(m_rows);
  for (std::size_t row = 0; row < m_rows; ++row) values[row] = m_cells[row * m_names.size() + c];
  return values;
}

}  // namespace xps
