#include "xpstellar/xp_csv.hpp"

#include <cerrno>
#include <cstring>
#include <map>

#include "xp/text_fields.hpp"
#include "xpstellar/error.hpp"

namespace xps::xp {

namespace {

// What a column holds. Band columns are coded as Field + band_stride * band_index.
enum Field : std::uint8_t {
  ignored,
  source_id,
  coefficients,
  coefficient_errors,
  coefficient_correlations,
  standard_deviation,
  n_parameters,
  n_relevant_bases,
  band_stride,
};

struct BandColumn {
  const char* suffix;  // after "bp_" / "rp_"
  Field field;
  bool required;
};
constexpr BandColumn band_columns[] = {
    {"coefficients", coefficients, true},
    {"coefficient_errors", coefficient_errors, true},
    {"coefficient_correlations", coefficient_correlations, true},
    {"standard_deviation", standard_deviation, true},
    {"n_parameters", n_parameters, false},
    {"n_relevant_bases", n_relevant_bases, false},
};

constexpr std::size_t initial_buffer_bytes = std::size_t{1} << 20;

std::uint8_t column_code(Field field, Band band) {
  return static_cast<std::uint8_t>(field + band_stride * band_index(band));
}

std::string column_name(Field field, Band band) {
  for (const BandColumn& column : band_columns)
    if (column.field == field) return std::string(band_name(band)) + "_" + column.suffix;
  return "source_id";
}

bool is_missing_scalar(std::string_view text) {
  text = text::trim(text);
  return text.empty() || text == "nan" || text == "NaN" || text == "NAN" || text == "null";
}

void set_problem(XpRow& row, const std::string& problem) {
  if (row.problem.empty()) row.problem = problem;
}

std::string quoted(std::string_view field) {
  std::string text(1, '\'');
  text.append(text::trim(field).substr(0, 40));
  text.push_back('\'');
  return text;
}

void parse_array(Field field, Band band, std::string_view text, XpRow& row) {
  if (text::trim(text).empty()) return;  // a missing band
  XpRow::BandBuffers& buffers = row.buffers[band_index(band)];
  BandCoefficients& target = row.source.band[band_index(band)];
  std::vector<double>& buffer = field == coefficients         ? buffers.coefficients
                                : field == coefficient_errors ? buffers.errors
                                                              : buffers.correlations;
  const text::ArrayParse parsed = text::parse_number_array(text, buffer);
  if (parsed.error) return set_problem(row, column_name(field, band) + ": " + parsed.error);
  if (parsed.count > buffer.size()) {
    return set_problem(row, column_name(field, band) + " has " + std::to_string(parsed.count) +
                                " values, expected " + std::to_string(buffer.size()));
  }
  const std::span<const double> values(buffer.data(), parsed.count);
  if (field == coefficients) {
    target.coefficients = values;
    target.present = true;
  } else if (field == coefficient_errors) {
    target.errors = values;
  } else {
    target.correlations = values;
  }
}

void parse_scalar(Field field, Band band, std::string_view text, XpRow& row) {
  if (is_missing_scalar(text)) return;
  BandCoefficients& target = row.source.band[band_index(band)];
  if (field == standard_deviation) {
    if (!text::parse_double(text, target.standard_deviation))
      set_problem(row, column_name(field, band) + " " + quoted(text) + " is not a number");
    return;
  }
  std::int64_t value = 0;
  if (!text::parse_int64(text, value) || value < 0 || value > 100000)
    return set_problem(row, column_name(field, band) + " " + quoted(text) + " is not a count");
  (field == n_parameters ? target.n_parameters : target.n_relevant_bases) = static_cast<int>(value);
}

void parse_field(std::uint8_t code, std::string_view text, XpRow& row) {
  if (code == source_id) {
    row.has_source_id = text::parse_int64(text, row.source.source_id);
    if (!row.has_source_id) set_problem(row, "source_id " + quoted(text) + " is not an integer");
    return;
  }
  const Band band = code >= band_stride ? Band::rp : Band::bp;
  const auto field = static_cast<Field>(code % band_stride);
  if (field >= coefficients && field <= coefficient_correlations) {
    parse_array(field, band, text, row);
  } else {
    parse_scalar(field, band, text, row);
  }
}

// Arrays of a band without its coefficients: neither a complete nor a missing band.
void check_band_complete(XpRow& row) {
  for (const Band band : bands) {
    const BandCoefficients& target = row.source.band[band_index(band)];
    if (!target.present && (!target.errors.empty() || !target.correlations.empty())) {
      set_problem(row, std::string(band_name(band)) +
                           "_coefficients is empty but the band's errors or correlations are not");
    }
  }
}

}  // namespace

std::string XpRow::where() const {
  if (!has_source_id) return "line " + std::to_string(line);
  return "source_id " + std::to_string(source.source_id) + " (line " + std::to_string(line) + ")";
}

XpCsvReader::XpCsvReader(const std::string& path, int max_bases)
    : m_path(path),
      m_buffer(initial_buffer_bytes),
      m_max_bases(static_cast<std::size_t>(max_bases)) {
  m_file = std::fopen(path.c_str(), "rb");
  if (!m_file) throw IoError(path + ": cannot open (" + std::strerror(errno) + ")");
  try {
    read_header();
  } catch (...) {
    std::fclose(m_file);
    throw;
  }
}

XpCsvReader::~XpCsvReader() {
  if (m_file) std::fclose(m_file);
}

bool XpCsvReader::next_line(std::string_view& line) {
  std::size_t scanned = m_begin;
  for (;;) {
    const void* newline = std::memchr(m_buffer.data() + scanned, '\n', m_end - scanned);
    if (newline) {
      const auto end =
          static_cast<std::size_t>(static_cast<const char*>(newline) - m_buffer.data());
      line = std::string_view(m_buffer.data() + m_begin, end - m_begin);
      m_begin = end + 1;
      break;
    }
    if (m_eof) {
      if (m_begin == m_end) return false;
      line = std::string_view(m_buffer.data() + m_begin, m_end - m_begin);
      m_begin = m_end;
      break;
    }
    // Keep the partial line, grow the buffer only for a line longer than it, read on.
    const std::size_t partial = m_end - m_begin;
    std::memmove(m_buffer.data(), m_buffer.data() + m_begin, partial);
    m_begin = 0;
    m_end = partial;
    scanned = partial;
    if (m_end == m_buffer.size()) m_buffer.resize(2 * m_buffer.size());
    const std::size_t got = std::fread(m_buffer.data() + m_end, 1, m_buffer.size() - m_end, m_file);
    if (got == 0) {
      if (std::ferror(m_file))
        throw IoError(m_path + ": read error (" + std::strerror(errno) + ")");
      m_eof = true;
    }
    m_end += got;
  }
  ++m_line;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return true;
}

void XpCsvReader::read_header() {
  std::string_view line;
  for (;;) {
    if (!next_line(line)) throw IoError(m_path + ": empty file, expected a CSV header row");
    if (m_line == 1 && line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);  // UTF-8 BOM
    if (line.starts_with("#")) {
      m_ecsv = m_ecsv || line.starts_with("# %ECSV");
      const std::string_view key = "# delimiter:";
      if (line.starts_with(key) && text::trim(line.substr(key.size())) != "','") {
        throw IoError(m_path + ": line " + std::to_string(m_line) +
                      ": only comma-delimited ECSV is supported");
      }
      continue;
    }
    if (!text::trim(line).empty()) break;
  }
  std::map<std::string, std::uint8_t, std::less<>> known{{"source_id", source_id}};
  for (const Band band : bands)
    for (const BandColumn& column : band_columns)
      known[column_name(column.field, band)] = column_code(column.field, band);

  std::map<std::uint8_t, bool> seen;
  text::FieldScanner scanner(line);
  std::string_view name;
  const char* error = nullptr;
  while (scanner.next(name, error)) {
    const auto found = known.find(text::trim(name));
    const std::uint8_t code = found == known.end() ? std::uint8_t{ignored} : found->second;
    if (code != ignored) seen[code] = true;
    m_columns.push_back(code);
    m_names.emplace_back(text::trim(name));
  }
  if (error) throw IoError(m_path + ": header: " + error);
  std::string missing = seen[source_id] ? "" : " source_id";
  for (const Band band : bands)
    for (const BandColumn& column : band_columns)
      if (column.required && !seen[column_code(column.field, band)])
        missing.append(" ").append(column_name(column.field, band));
  if (!missing.empty()) {
    throw IoError(m_path + ": not a Gaia XP continuous mean spectra file: missing column(s)" +
                  missing);
  }
}

void XpCsvReader::prepare(XpRow& row) const {
  const std::size_t correlations = m_max_bases * (m_max_bases - 1) / 2;
  for (XpRow::BandBuffers& buffers : row.buffers) {
    // Allocates only the first time a row is used.
    if (buffers.coefficients.size() != m_max_bases) buffers.coefficients.resize(m_max_bases);
    if (buffers.errors.size() != m_max_bases) buffers.errors.resize(m_max_bases);
    if (buffers.correlations.size() != correlations) buffers.correlations.resize(correlations);
  }
  row.line = m_line;
  row.has_source_id = false;
  row.problem.clear();
  row.source.source_id = 0;
  for (BandCoefficients& band : row.source.band) {
    band = BandCoefficients{};
    band.standard_deviation = text::not_a_number;
  }
}

bool XpCsvReader::next(XpRow& row) {
  std::string_view line;
  do {
    if (!next_line(line)) return false;
  } while (text::trim(line).empty() || line.starts_with("#"));
  prepare(row);
  parse_row(line, row);
  return true;
}

void XpCsvReader::parse_row(std::string_view line, XpRow& row) const {
  text::FieldScanner scanner(line);
  std::string_view field;
  const char* error = nullptr;
  std::size_t column = 0;
  while (scanner.next(field, error)) {
    if (column < m_columns.size() && m_columns[column] != ignored)
      parse_field(m_columns[column], field, row);
    ++column;
  }
  if (error) {
    const std::string where = column < m_names.size() ? m_names[column] + ": " : "";
    set_problem(row, where + error);
  }
  if (!error && column != m_columns.size()) {
    set_problem(row, "has " + std::to_string(column) + " fields, the header " +
                         std::to_string(m_columns.size()) + " (truncated or malformed line)");
  }
  check_band_complete(row);
}

}  // namespace xps::xp
