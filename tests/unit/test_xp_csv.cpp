// Reading Archive XP files: malformed rows (truncated array, wrong length, NaN, both bands
// missing, bad source_id, truncated line) are skipped, each reported once with its source_id and
// reason, and the rest of the file is converted; files that are not XP tables are errors.
#include <fstream>

#include "xp/text_fields.hpp"
#include "xp_test_support.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/sampled_spectra.hpp"
#include "xpstellar/xp_convert_file.hpp"

namespace xp = xps::xp;
using namespace xps::xp::testing;

namespace {

// The header and the fields of the first data row of the real raw input.
struct RealRow {
  std::string header;
  std::vector<std::string> names;
  std::vector<std::string> fields;

  std::size_t index(const std::string& name) const {
    return static_cast<std::size_t>(std::find(names.begin(), names.end(), name) - names.begin());
  }
  std::string& operator[](const std::string& name) { return fields[index(name)]; }

  std::string line() const {
    std::string text;
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const bool quote = fields[i].find(',') != std::string::npos;
      text += (i ? "," : "") + (quote ? "\"" + fields[i] + "\"" : fields[i]);
    }
    return text;
  }
};

RealRow read_real_row() {
  std::ifstream in(raw_input);
  RealRow row;
  std::getline(in, row.header);
  row.names = split_commas(row.header);
  std::string line;
  std::getline(in, line);
  xp::text::FieldScanner scanner(line);
  std::string_view field;
  const char* error = nullptr;
  while (scanner.next(field, error)) row.fields.emplace_back(field);
  return row;
}

class XpCsvTest : public ScratchTest {};

}  // namespace

TEST_F(XpCsvTest, MalformedRowsAreSkippedWithTheirSourceIdAndReason) {
  XPS_REQUIRE_REALDATA();
  const RealRow good = read_real_row();
  std::ofstream out(path("bad.csv"));
  out << good.header << '\n';
  auto write = [&](const std::string& source_id, auto&& edit) {
    RealRow row = good;
    row["source_id"] = source_id;
    edit(row);
    out << row.line() << '\n';
  };
  write("1001", [](RealRow&) {});
  write("1002", [](RealRow& r) { r["bp_coefficients"].pop_back(); });  // no ')': truncated array
  write("1003", [](RealRow& r) {
    std::string& errors = r["rp_coefficient_errors"];
    errors.erase(1, errors.find(',') + 1);  // 54 values
  });
  write("1004", [](RealRow& r) {
    std::string& coefficients = r["rp_coefficients"];
    coefficients = "(NaN" + coefficients.substr(coefficients.find(','));
  });
  write("1005", [](RealRow& r) {
    for (std::size_t i = 0; i < r.names.size(); ++i)
      if (r.names[i].starts_with("bp_") || r.names[i].starts_with("rp_")) r.fields[i].clear();
  });
  write("x1006", [](RealRow&) {});
  write("1007", [](RealRow& r) { r["rp_n_relevant_bases"] = "40"; });
  const std::string last = [&] {
    RealRow row = good;
    row["source_id"] = "1008";
    return row.line();
  }();
  out << last.substr(0, last.size() / 2);  // the file ends inside a quoted array
  out.close();

  const xp::DesignMatrices design(xp::builtin_calibration(), xp::parse_sampling("392:992:10"));
  std::vector<std::string> warnings;
  const auto summary = xp::convert_xp_file(path("bad.csv"), path("out.h5"), design, {}, "test",
                                           [&](const std::string& w) { warnings.push_back(w); });
  EXPECT_EQ(summary.rows, 8u);
  EXPECT_EQ(summary.converted, 2u);
  EXPECT_EQ(summary.skipped, 6u);
  const std::vector<std::pair<std::string, std::string>> expected{
      {"source_id 1002 (line 3)", "bp_coefficients: array not closed"},
      {"source_id 1003 (line 4)", "rp_coefficient_errors has 54 values, expected 55"},
      {"source_id 1004 (line 5)", "rp_coefficients contain NaN"},
      {"source_id 1005 (line 6)", "both bands missing"},
      {"line 7", "source_id 'x1006' is not an integer"},
      {"source_id 1008 (line 9)", "unterminated quoted field"},
  };
  ASSERT_EQ(warnings.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NE(warnings[i].find(path("bad.csv") + ": " + expected[i].first + ": "),
              std::string::npos)
        << warnings[i];
    EXPECT_NE(warnings[i].find(expected[i].second), std::string::npos) << warnings[i];
    EXPECT_NE(warnings[i].find("row skipped"), std::string::npos) << warnings[i];
  }
  const xps::SampledSpectra written = xps::read_sampled_spectra(path("out.h5"));
  EXPECT_EQ(written.source_id, (std::vector<std::int64_t>{1001, 1007}));
  EXPECT_EQ(written.samples(), 61u);
  for (double f : written.flux) EXPECT_TRUE(std::isfinite(f));
}

TEST_F(XpCsvTest, CheckSourceNamesWhatIsWrong) {
  XPS_REQUIRE_REALDATA();
  const xp::DesignMatrices design(xp::builtin_calibration(), xp::parse_sampling("400:900:50"));
  xp::XpCsvReader reader(raw_input, 55);
  xp::XpRow row;
  ASSERT_TRUE(reader.next(row));
  ASSERT_EQ(row.problem, "");
  EXPECT_EQ(row.line, 2u);
  EXPECT_EQ(row.where(), "source_id 5853498713190525696 (line 2)");
  EXPECT_EQ(row.source[xp::Band::bp].n_relevant_bases, 53);
  EXPECT_EQ(row.source[xp::Band::rp].n_parameters, 55);
  EXPECT_FLOAT_EQ(static_cast<float>(row.source[xp::Band::bp].standard_deviation), 1.1224667f);
  EXPECT_EQ(xp::check_source(row.source, design, {}), "");

  xp::SourceCoefficients source = row.source;
  source.band[0].standard_deviation = 0.0;
  EXPECT_EQ(xp::check_source(source, design, {}), "bp_standard_deviation missing or not positive");
  source = row.source;
  source.band[1].correlations = source.band[1].correlations.first(100);
  EXPECT_EQ(xp::check_source(source, design, {}),
            "rp_coefficient_correlations has 100 values, expected 1485");
  source = row.source;
  source.band[1].n_parameters = 50;
  EXPECT_EQ(xp::check_source(source, design, {}), "rp_n_parameters is 50, expected 55");
  std::vector<double> errors(source.band[0].errors.begin(), source.band[0].errors.end());
  errors[3] = -1.0;
  source = row.source;
  source.band[0].errors = errors;
  EXPECT_EQ(xp::check_source(source, design, {}),
            "bp_coefficient_errors contain NaN, Inf or negative values");
  source = row.source;
  source.band[0].present = source.band[1].present = false;
  EXPECT_EQ(xp::check_source(source, design, {}), "both bands missing");
}

TEST_F(XpCsvTest, FilesThatAreNotXpTablesAreErrors) {
  EXPECT_THROW(xp::XpCsvReader(path("absent.csv"), 55), xps::IoError);
  std::ofstream(path("empty.csv")).close();
  EXPECT_THROW(xp::XpCsvReader(path("empty.csv"), 55), xps::IoError);
  std::ofstream(path("other.csv")) << "source_id,ra,dec\n1,2,3\n";
  try {
    xp::XpCsvReader reader(path("other.csv"), 55);
    FAIL() << "a table without XP columns was accepted";
  } catch (const xps::IoError& error) {
    EXPECT_NE(std::string(error.what()).find("bp_coefficients"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find(path("other.csv")), std::string::npos) << error.what();
  }
  std::ofstream(path("space.ecsv")) << "# %ECSV 1.0\n# ---\n# delimiter: ' '\nsource_id\n";
  EXPECT_THROW(xp::XpCsvReader(path("space.ecsv"), 55), xps::IoError);
}

TEST_F(XpCsvTest, LongLinesAndCrLfAreRead) {
  XPS_REQUIRE_REALDATA();
  // Rows longer than the reader's initial 1 MiB buffer, and Windows line ends.
  const RealRow good = read_real_row();
  std::ofstream out(path("wide.csv"));
  out << good.header << ",padding\r\n";
  for (int i = 0; i < 3; ++i) out << good.line() << ",\"" << std::string(1500000, ' ') << "\"\r\n";
  out.close();
  xp::XpCsvReader reader(path("wide.csv"), 55);
  xp::XpRow row;
  int rows = 0;
  while (reader.next(row)) {
    EXPECT_EQ(row.problem, "");
    ++rows;
  }
  EXPECT_EQ(rows, 3);
}
