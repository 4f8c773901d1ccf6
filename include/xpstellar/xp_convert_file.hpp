// The whole xps_xpconvert stage as a library call: stream an Archive XP continuous-spectra file
// (xp_csv.hpp), convert each row (xp_converter.hpp) and append it to a sampled-spectra file
// (sampled_spectra.hpp). Rows that cannot be converted are skipped, each reported once.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "xpstellar/xp_converter.hpp"

namespace xps::xp {

struct FileConversionOptions {
  ConversionOptions conversion;  // with_covariance is ignored: the file always holds flux_cov
  std::size_t batch_rows = 256;  // rows converted and written together (bounds the memory)
  int threads = 1;               // OpenMP threads converting one batch (parsing is sequential)
};

struct FileConversionSummary {
  std::size_t rows = 0;       // data rows in the input
  std::size_t converted = 0;  // rows written
  std::size_t skipped = 0;    // rows reported through `warn` and not written
};

// One line per skipped row: "<input>: source_id <id> (line <n>): <reason>; row skipped".
using WarningSink = std::function<void(const std::string&)>;

// Converts `input` into `output` (written as output + ".tmp" and renamed when complete). Throws
// IoError when a file cannot be read or written or the input lacks a required column.
FileConversionSummary convert_xp_file(const std::string& input, const std::string& output,
                                      const DesignMatrices& design,
                                      const FileConversionOptions& options,
                                      const std::string& provenance, const WarningSink& warn);

}  // namespace xps::xp
