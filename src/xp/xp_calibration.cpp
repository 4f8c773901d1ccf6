// GaiaXPy's external-calibration instrument model: parsing its CSV files (built in, or from a
// directory). The file layouts are GaiaXPy's (calibrator/external_instrument_model.py,
// file_parser/parse_inverse.py).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "xp/text_fields.hpp"
#include "xp/xp_calibration_data.inc"
#include "xpstellar/error.hpp"
#include "xpstellar/xp_converter.hpp"

namespace xps::xp {

namespace {

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    const std::string_view line = text::trim(text.substr(0, end));
    if (!line.empty()) lines.push_back(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

std::vector<double> parse_number_row(std::string_view line, const std::string& name, int row) {
  std::vector<double> values;
  text::FieldScanner scanner(line);
  std::string_view field;
  const char* error = nullptr;
  while (scanner.next(field, error)) {
    double value = 0.0;
    if (!text::parse_double(field, value) || !std::isfinite(value)) {
      throw IoError(name + ": row " + std::to_string(row) + ": '" + std::string(field) +
                    "' is not a finite number");
    }
    values.push_back(value);
  }
  if (error) throw IoError(name + ": row " + std::to_string(row) + ": " + error);
  return values;
}

// Two rows of equally many numbers, the first strictly increasing (a sampled curve).
void parse_curve(const std::string& text, const std::string& name, std::vector<double>& x,
                 std::vector<double>& y) {
  const std::vector<std::string_view> lines = split_lines(text);
  if (lines.size() != 2) {
    throw IoError(name + ": expected 2 rows (wavelengths, values), found " +
                  std::to_string(lines.size()));
  }
  x = parse_number_row(lines[0], name, 1);
  y = parse_number_row(lines[1], name, 2);
  if (x.size() != y.size() || x.size() < 4) {
    throw IoError(name + ": rows have " + std::to_string(x.size()) + " and " +
                  std::to_string(y.size()) + " values, expected as many and at least 4");
  }
  if (!std::is_sorted(x.begin(), x.end(), std::less_equal<>())) {
    throw IoError(name + ": wavelengths (row 1) are not strictly increasing");
  }
}

// The bases file: a header row and one row of named fields.
class NamedFields {
 public:
  NamedFields(const std::string& text, const std::string& name) : m_name(name) {
    const std::vector<std::string_view> lines = split_lines(text);
    if (lines.size() != 2) {
      throw IoError(name + ": expected a header row and one data row, found " +
                    std::to_string(lines.size()) + " rows");
    }
    m_names = split(lines[0]);
    m_values = split(lines[1]);
    if (m_names.size() != m_values.size()) {
      throw IoError(name + ": header has " + std::to_string(m_names.size()) + " fields, data row " +
                    std::to_string(m_values.size()));
    }
  }

  double number(const std::string& key) const {
    double value = 0.0;
    if (!text::parse_double(field(key), value) || !std::isfinite(value)) {
      throw IoError(m_name + ": field " + key + " is not a finite number");
    }
    return value;
  }

  int count(const std::string& key) const {
    std::int64_t value = 0;
    if (!text::parse_int64(field(key), value) || value < 1 || value > 1000) {
      throw IoError(m_name + ": field " + key + " is not a count in [1, 1000]");
    }
    return static_cast<int>(value);
  }

  Eigen::MatrixXd matrix(const std::string& key, int rows, int columns) const {
    std::vector<double> values(static_cast<std::size_t>(rows) * static_cast<std::size_t>(columns));
    const text::ArrayParse parsed = text::parse_number_array(field(key), values);
    if (parsed.error) throw IoError(m_name + ": field " + key + ": " + parsed.error);
    if (parsed.count != values.size()) {
      throw IoError(m_name + ": field " + key + " has " + std::to_string(parsed.count) +
                    " values, expected " + std::to_string(rows) + " x " + std::to_string(columns));
    }
    // Row-major, as GaiaXPy's reshape(nBases, n).
    return Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        values.data(), rows, columns);
  }

 private:
  std::vector<std::string_view> split(std::string_view line) const {
    std::vector<std::string_view> fields;
    text::FieldScanner scanner(line);
    std::string_view field;
    const char* error = nullptr;
    while (scanner.next(field, error)) fields.push_back(field);
    if (error) throw IoError(m_name + ": " + error);
    return fields;
  }

  std::string_view field(const std::string& key) const {
    const auto found = std::find(m_names.begin(), m_names.end(), key);
    if (found == m_names.end()) throw IoError(m_name + ": no field " + key);
    return m_values[static_cast<std::size_t>(found - m_names.begin())];
  }

  std::string m_name;
  std::vector<std::string_view> m_names;
  std::vector<std::string_view> m_values;
};

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path.string() + ": cannot open calibration file");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void parse_calibration_file(std::string_view kind, const std::string& text, const std::string& name,
                            BandModel& model) {
  if (kind == "bases") {
    parse_bases_csv(text, name, model);
  } else if (kind == "dispersion") {
    parse_dispersion_csv(text, name, model);
  } else {
    parse_response_csv(text, name, model);
  }
}

Calibration parse_builtin() {
  Calibration calibration;
  std::string files;
  for (const embedded::CalibrationText& file : embedded::files) {
    std::string text;
    for (const char* const* piece = file.pieces; *piece != nullptr; ++piece) text += *piece;
    const Band band = std::string_view(file.band) == "bp" ? Band::bp : Band::rp;
    const std::string name = std::string("built-in ") + file.file;
    parse_calibration_file(file.kind, text, name, calibration.band[band_index(band)]);
    files += (files.empty() ? "" : ", ") + std::string(file.file);
  }
  calibration.description = "GaiaXPy external calibration (built in: " + files + ")";
  return calibration;
}

}  // namespace

const char* band_name(Band band) { return band == Band::bp ? "bp" : "rp"; }

void parse_dispersion_csv(const std::string& text, const std::string& name, BandModel& model) {
  parse_curve(text, name, model.dispersion_wavelength_nm, model.dispersion_pseudo_wavelength);
}

void parse_response_csv(const std::string& text, const std::string& name, BandModel& model) {
  parse_curve(text, name, model.response_wavelength_nm, model.response);
}

void parse_bases_csv(const std::string& text, const std::string& name, BandModel& model) {
  const NamedFields fields(text, name);
  model.n_bases = fields.count("nBases");
  const int n_inverse = fields.count("nInverseBasesCoefficients");
  const int n_transformed = fields.count("nTransformedBases");
  if (n_transformed != model.n_bases) {
    throw IoError(name + ": nTransformedBases (" + std::to_string(n_transformed) +
                  ") differs from nBases (" + std::to_string(model.n_bases) + ")");
  }
  model.pwl_range_min = fields.number("pwlRangeMin");
  model.pwl_range_max = fields.number("pwlRangeMax");
  model.norm_range_min = fields.number("normRangeMin");
  model.norm_range_max = fields.number("normRangeMax");
  if (!(model.pwl_range_max > model.pwl_range_min)) {
    throw IoError(name + ": pwlRangeMax is not above pwlRangeMin");
  }
  model.inverse_bases = fields.matrix("inverseBasesCoefficients", model.n_bases, n_inverse);
  model.transformation = fields.matrix("transformationMatrix", model.n_bases, n_transformed);
}

const Calibration& builtin_calibration() {
  static const Calibration calibration = parse_builtin();
  return calibration;
}

Calibration read_calibration(const std::string& directory) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(directory, error)) {
    throw IoError(directory + ": calibration directory does not exist");
  }
  Calibration calibration;
  std::string files;
  for (const Band band : bands) {
    for (const std::string kind : {"bases", "dispersion", "response"}) {
      std::vector<fs::path> matches;
      for (const auto& entry : fs::directory_iterator(directory)) {
        const std::string file = entry.path().filename().string();
        const std::string suffix = "_" + kind + ".csv";
        if (file.rfind(band_name(band), 0) == 0 && file.size() > suffix.size() &&
            file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0) {
          matches.push_back(entry.path());
        }
      }
      if (matches.size() != 1) {
        throw IoError(directory + ": expected exactly one " + band_name(band) + "*_" + kind +
                      ".csv, found " + std::to_string(matches.size()));
      }
      parse_calibration_file(kind, read_text_file(matches[0]), matches[0].string(),
                             calibration.band[band_index(band)]);
      files += (files.empty() ? "" : ", ") + matches[0].filename().string();
    }
  }
  calibration.description = "calibration files in " + directory + ": " + files;
  return calibration;
}

}  // namespace xps::xp
