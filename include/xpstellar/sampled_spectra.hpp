// The XP converter's output (issue: real Gaia data in): absolute flux sampled on a wavelength grid
// with its full covariance, one row per source, in W m-2 nm-1 as GaiaXPy writes it.
//   /source_id int64 [N], /wavelength_nm float64 [M], /flux float64 [N, M],
//   /flux_error float64 [N, M], /flux_cov float64 [N, M, M]
// NaN where a band is missing (e.g. missing BP: every wavelength <= 635 nm). Written by streaming
// batches, so memory does not grow with the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace xps {

struct SampledSpectra {
  std::vector<std::int64_t> source_id;  // [N]
  std::vector<double> wavelength_nm;    // [M]
  std::vector<double> flux;             // [N x M]
  std::vector<double> flux_error;       // [N x M]
  std::vector<double> flux_cov;         // [N x M x M]

  std::size_t rows() const { return source_id.size(); }
  std::size_t samples() const { return wavelength_nm.size(); }
};

// Appends batches of rows to a new file; the file appears under its name only after close()
// (written to path + ".tmp" and renamed). Throws IoError naming the file.
class SampledSpectraWriter {
public:
  SampledSpectraWriter(const std::string& path, const std::vector<double>& wavelength_nm,
                       const std::string& provenance);
  ~SampledSpectraWriter();  // an unclosed writer removes its temporary file
  SampledSpectraWriter(const SampledSpectraWriter&) = delete;
  SampledSpectraWriter& operator=(const SampledSpectraWriter&) = delete;

  void append(const SampledSpectra& batch);  // batch.wavelength_nm may be empty or must match
  void close();
  std::size_t rows_written() const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// Reads rows [first_row, first_row + row_count) (all rows by default). Throws IoError naming the
// file and the dataset when the file violates the layout above.
SampledSpectra read_sampled_spectra(const std::string& path, std::size_t first_row = 0,
                                    std::size_t row_count = static_cast<std::size_t>(-1));

}  // namespace xps
