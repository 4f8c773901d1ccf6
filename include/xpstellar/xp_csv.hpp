// Streaming reader of Gaia DR3 XP continuous mean spectra as the Gaia Archive exports them
// (table gaiadr3.xp_continuous_mean_spectrum): CSV with array columns as quoted parenthesised
// lists "(a, b, ...)", or ECSV ('#' header lines, arrays as "[a,b,...]", 'nan' for missing
// scalars). A missing band has empty fields. One row is read at a time into buffers the caller
// reuses, so memory is bounded by the longest row, whatever the file's size.
//
// Columns used (others are ignored): source_id, and per band (bp_, rp_) coefficients,
// coefficient_errors, coefficient_correlations, standard_deviation (required), n_parameters and
// n_relevant_bases (optional; the latter is needed for truncation).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "xpstellar/xp_converter.hpp"

namespace xps::xp {

// One row of the file: `source` points into the row's own buffers (valid until the row is read
// into again). A row that could not be read has a non-empty `problem`.
struct XpRow {
  std::size_t line = 0;  // 1-based line number in the file
  bool has_source_id = false;
  std::string problem;  // why the row cannot be used; "" when it was read
  SourceCoefficients source;

  struct BandBuffers {
    std::vector<double> coefficients;
    std::vector<double> errors;
    std::vector<double> correlations;
  };
  std::array<BandBuffers, 2> buffers;

  // "source_id 123 (line 5)", or "line 5" when the source_id could not be read: for messages.
  std::string where() const;
};

class XpCsvReader {
 public:
  // Opens `path` and reads its header. `max_bases` sizes the row buffers (arrays longer than
  // that are reported as wrong lengths). Throws IoError naming the file when it cannot be
  // opened, has no header, or lacks a required column.
  XpCsvReader(const std::string& path, int max_bases);
  ~XpCsvReader();
  XpCsvReader(const XpCsvReader&) = delete;
  XpCsvReader& operator=(const XpCsvReader&) = delete;

  // Reads the next data row into `row` (blank lines are skipped). Returns false at the end of
  // the file. Throws IoError only when the file cannot be read.
  bool next(XpRow& row);

  const std::string& path() const { return m_path; }
  bool is_ecsv() const { return m_ecsv; }

 private:
  bool next_line(std::string_view& line);
  void read_header();
  void prepare(XpRow& row) const;
  void parse_row(std::string_view line, XpRow& row) const;

  std::string m_path;
  std::FILE* m_file = nullptr;
  std::vector<char> m_buffer;
  std::size_t m_begin = 0;  // unread text is m_buffer[m_begin, m_end)
  std::size_t m_end = 0;
  bool m_eof = false;
  std::size_t m_line = 0;
  bool m_ecsv = false;
  std::size_t m_max_bases = 0;
  std::vector<std::uint8_t> m_columns;  // per header column: what it holds (see xp_csv.cpp)
  std::vector<std::string> m_names;     // per header column, for messages
};

}  // namespace xps::xp
